"""The EMH-PPO scenario: every key, its unit, its default (the paper's Table III) and its validation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import ConfigDict

from splitrl.core.errors import ConfigError, ScenarioError
from splitrl.core.schema import NonNegativeFloat, PositiveFloat, PositiveInt, Section, key, parse_section
from splitrl.dnn import available_models, partition_table


class EMHScenario(Section):
    """Parameters of the EMH-PPO world (Table III defaults)."""

    model_config = ConfigDict(**Section.model_config, frozen=True)

    world: Literal["emh"] = key("emh", "the world")
    name: str = key("emh-table3", "the scenario's name (run names, tables)", min_length=1)
    num_devices: PositiveInt = key(3, "N: mobile devices")
    num_servers: PositiveInt = key(2, "M: computing MEC servers")
    num_channels: PositiveInt = key(2, "C: shared channels")
    model: str = key("resnet50", "the inference model of every device (a profile of splitrl.dnn)")
    partitioning: Literal["operator", "vertical"] = key(
        "operator", "operator (Algorithm 1's cuts, s = 1..S) or vertical (the layer chain)"
    )
    mdp: Literal["task", "time"] = key("task", "task (task windows, eq. 8) or time (fixed slots of slot_ms)")
    slot_ms: PositiveFloat = key(50.0, "slot of the time-based MDP")
    task_mean: PositiveFloat = key(50.0, "tasks per device ~ Poisson(task_mean) per episode (at least 1)")
    fixed_tasks: PositiveInt | None = key(None, "every device gets exactly this many tasks (evaluation sets it)")
    max_window: PositiveInt = key(5, "W_max: largest task window")
    p_limit_w: PositiveFloat = key(1.0, "P_limit: device transmit power cap")
    p_floor: PositiveFloat = key(0.001, "lowest power as a fraction of P_limit, in (0, 1] (avoids R = 0)")
    bandwidth_hz: PositiveFloat = key(1e6, "B_c: bandwidth per channel")
    noise_w: PositiveFloat = key(1e-9, "sigma_c: noise power per channel")
    path_loss_exponent: PositiveFloat = key(3.0, "h: gain (d_hat / d)^h")
    ref_distance_m: PositiveFloat = key(1.0, "d_hat: reference distance of the path gain")
    distance_min_m: PositiveFloat = key(1.0, "d ~ U[min, max], redrawn at every decision: lower end")
    distance_max_m: PositiveFloat = key(100.0, "upper end of the distance draw")
    fixed_distance_m: PositiveFloat | None = key(None, "every device at this distance (evaluation sets it)")
    shadow_std_db: NonNegativeFloat = key(8.0, "shadow fading std, redrawn at every decision")
    energy_per_mmac_j: NonNegativeFloat = key(1e-5, "zeta: device energy per MMAC", unit="J/MMAC")
    energy_weight: NonNegativeFloat = key(50.0, "beta of eq. (8)")
    waiting_weight: NonNegativeFloat = key(0.05, "alpha of eq. (8)")
    l0_s: PositiveFloat | None = key(
        None, "server baseline latency L0; null: timed once on this machine (cached) and written into the run's config"
    )
    local_factor: PositiveFloat = key(5.0, "L_local = local_factor * L0 for the whole model")
    input_bits_per_element: PositiveFloat = key(
        0.5,
        "the raw input as sent = 3x224x224 x this (0.5: an encoded, JPEG-class frame of 9.4 kB; 8: raw 8-bit)",
        unit="bit",
    )
    feature_bits_per_element: PositiveFloat = key(
        8.0, "intermediate features as sent (8: quantised; 32: float32)", unit="bit"
    )
    observe_gain: bool = key(True, "the state also holds each device's uplink gain in dB (CSI at the scheduler)")
    queue_obs_cap: PositiveFloat | None = key(None, "queue feature min(X_n, cap) / cap; null: X_n / task_mean")
    max_steps: PositiveInt = key(100_000, "truncation (time-based MDP; task windows always end)")

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
        return self.model_dump()


EMH_KEYS = tuple(EMHScenario.model_fields)


def make_emh_scenario(overrides: Mapping[str, Any] | None = None, *, resolve_l0: bool = False) -> EMHScenario:
    """Validate ``overrides`` on top of Table III; ``resolve_l0`` replaces a null ``l0_s`` with
    the timed value (so that a run records the number it used)."""
    try:
        scenario = parse_section(EMHScenario, overrides, "scenario")
    except ConfigError as exc:
        raise ScenarioError(exc.key.removeprefix("scenario."), exc.message) from None
    if scenario.p_floor > 1:
        raise ScenarioError("p_floor", f"must be in (0, 1] (a fraction of p_limit_w), got {scenario.p_floor}")
    if scenario.distance_min_m > scenario.distance_max_m:
        raise ScenarioError(
            "distance_min_m", f"must be <= distance_max_m ({scenario.distance_max_m}), got {scenario.distance_min_m}"
        )
    if scenario.model not in available_models():
        raise ScenarioError(
            "model", f"unknown model {scenario.model!r}; known profiles: {', '.join(available_models())}"
        )
    if resolve_l0 and scenario.l0_s is None:
        scenario = scenario.model_copy(update={"l0_s": scenario.resolved_l0()})
    return scenario
