"""The EMH-PPO scenario: every key, its unit, its default (the paper's Table III) and its validation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from splitrl.core.errors import ScenarioError
from splitrl.core.validation import as_number, check_ranges
from splitrl.dnn import available_models, partition_table


@dataclass(frozen=True)
class EMHScenario:
    """Parameters of the EMH-PPO world (Table III defaults)."""

    world: str = "emh"                     # the world (splitrl.worlds.names())
    name: str = "emh-table3"               # the scenario's name (run names, tables)
    num_devices: int = 3                   # N: mobile devices
    num_servers: int = 2                   # M computing MEC servers
    num_channels: int = 2                  # C shared channels
    model: str = "resnet50"                # the inference model of every device
    partitioning: str = "operator"         # operator (Algorithm 1) | vertical (layer chain)
    mdp: str = "task"                      # task (task windows) | time (fixed slots)
    slot_ms: float = 50.0                  # slot length of the time-based MDP [ms]
    task_mean: float = 50.0                # X_n ~ Poisson(task_mean)
    fixed_tasks: int | None = None         # every device gets exactly this many tasks (testing)
    max_window: int = 5                    # W_max: largest task window
    p_limit_w: float = 1.0                 # P_limit [W]
    p_floor: float = 0.001                 # lowest power as a fraction of P_limit (avoids R = 0)
    bandwidth_hz: float = 1e6              # B_c per channel
    noise_w: float = 1e-9                  # sigma_c [W]
    path_loss_exponent: float = 3.0        # h
    ref_distance_m: float = 1.0            # d_hat
    distance_min_m: float = 1.0            # d ~ U[min, max] per decision
    distance_max_m: float = 100.0          # upper end of the distance draw [m]
    fixed_distance_m: float | None = None  # every device at this distance (testing)
    shadow_std_db: float = 8.0             # shadow fading std [dB]
    energy_per_mmac_j: float = 1e-5        # zeta [J per MMAC]
    energy_weight: float = 50.0            # beta
    waiting_weight: float = 0.05           # alpha
    l0_s: float | None = None              # server baseline latency L0 [s]; null: timed here
    local_factor: float = 5.0              # L_local = local_factor * L0 for the whole model
    input_bits_per_element: float = 0.5    # raw input as sent: an encoded (JPEG-class) frame, 9.4 kB
    feature_bits_per_element: float = 8.0  # intermediate features as sent: 8-bit quantised
    observe_gain: bool = True              # the state also holds each device's uplink gain (CSI)
    queue_obs_cap: float | None = None     # queue feature min(X_n, cap) / cap; null: X_n / task_mean
    max_steps: int = 100_000               # truncation (time-based MDP; windows always end)

    def table(self):
        points = "operator" if self.partitioning == "operator" else "all"
        return partition_table(self.model, self.input_bits_per_element, points, self.feature_bits_per_element)

    @property
    def slot_seconds(self) -> float:
        return self.slot_ms / 1e3

    def resolved_l0(self) -> float:
        if self.l0_s is not None:
            return float(self.l0_s)
        from .latency import measure_server_latency

        return measure_server_latency(self.model)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


EMH_KEYS = tuple(f.name for f in fields(EMHScenario))
_INT1 = ("num_devices", "num_servers", "num_channels", "max_window", "max_steps")
_POS = ("slot_ms", "task_mean", "p_limit_w", "p_floor", "bandwidth_hz", "noise_w", "path_loss_exponent",
        "ref_distance_m", "distance_min_m", "distance_max_m", "local_factor", "input_bits_per_element",
        "feature_bits_per_element")
_NONNEG = ("shadow_std_db", "energy_per_mmac_j", "energy_weight", "waiting_weight")


def make_emh_scenario(overrides: Mapping[str, Any] | None = None, *, resolve_l0: bool = False) -> EMHScenario:
    """Validate ``overrides`` on top of Table III; ``resolve_l0`` replaces a null ``l0_s`` with
    the timed value (so that a run records the number it used)."""
    values = EMHScenario().to_dict()
    for key, value in dict(overrides or {}).items():
        if key not in values:
            raise ScenarioError(key, f"unknown key for world 'emh'; allowed keys: {', '.join(EMH_KEYS)}")
        values[key] = value
    if values["world"] != "emh":
        raise ScenarioError("world", f"expected 'emh', got {values['world']!r}")
    check_ranges(values, _INT1, _POS, _NONNEG)
    if values["p_floor"] > 1:
        raise ScenarioError("p_floor", f"must be in (0, 1] (a fraction of p_limit_w), got {values['p_floor']}")
    for key, lo in (("fixed_tasks", 1), ("fixed_distance_m", None), ("l0_s", None), ("queue_obs_cap", None)):
        if values[key] is not None:
            values[key] = as_number(key, values[key], integer=key == "fixed_tasks")
            if values[key] < (lo or 0) or (lo is None and values[key] <= 0):
                raise ScenarioError(key, f"must be {'>= 1' if lo else '> 0'} or null, got {values[key]}")
    if not isinstance(values["observe_gain"], bool):
        raise ScenarioError("observe_gain", f"expected true or false, got {values['observe_gain']!r}")
    if not isinstance(values["name"], str) or not values["name"]:
        raise ScenarioError("name", f"expected a non-empty string, got {values['name']!r}")
    if values["distance_min_m"] > values["distance_max_m"]:
        raise ScenarioError("distance_min_m", f"must be <= distance_max_m ({values['distance_max_m']}), "
                            f"got {values['distance_min_m']}")
    for key, allowed in (("partitioning", ("operator", "vertical")), ("mdp", ("task", "time"))):
        if values[key] not in allowed:
            raise ScenarioError(key, f"expected one of {', '.join(allowed)}, got {values[key]!r}")
    if values["model"] not in available_models():
        raise ScenarioError("model", f"unknown model {values['model']!r}; known profiles: "
                            f"{', '.join(available_models())}")
    scenario = EMHScenario(**values)
    if resolve_l0 and scenario.l0_s is None:
        scenario = EMHScenario(**{**values, "l0_s": scenario.resolved_l0()})
    return scenario
