"""The LyaPPO scenario: every key, its unit, its default (the paper's Table II) and its validation.

A scenario is a frozen dataclass; :func:`make_scenario` builds one from a mapping of overrides and
raises :class:`ScenarioError` naming the offending key for unknown keys, wrong types, bad values
and loads that no partition choice can serve.  Units are SI; see ``docs/assumptions.md`` for the
choices the paper leaves open (units of the Lyapunov weights, what lambda is per, the rewards).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import numpy as np

from splitrl.core.errors import ScenarioError
from splitrl.core.validation import as_number, check_ranges
from splitrl.dnn import available_models, partition_table

from .channel import average_gain, dbm_per_hz_to_w_per_hz


@dataclass(frozen=True)
class LyaPPOScenario:
    """Parameters of the MEC-assisted XR inference system (LyaPPO Section III, Table II)."""

    world: str = "lyappo"                      # the world (splitrl.worlds.names())
    name: str = "lyappo-table2"                # the scenario's name (run names, tables)
    num_devices: int = 4                       # M: XR devices
    services_per_device: int = 2               # N_m (the same service set on every device)
    models: tuple[str, ...] = ("resnet50", "mobilenet_v2")  # one torchvision profile per service
    slots_per_period: int = 10                 # G: slots per partition-adjustment period
    slot_seconds: float = 0.01                 # tau: slot length [s]
    episode_periods: int = 200                 # partition-adjustment periods per episode
    arrival_rate: float = 1.0                  # lambda [tasks/s per service], Poisson per slot
    cycles_per_mac: float = 0.12               # rho [cycles/MAC]
    input_bits_per_element: float = 8.0        # raw input D: 3x224x224 8-bit camera frame
    feature_bits_per_element: float = 32.0     # intermediate features as sent: float32
    f_local_max_hz: float = 1.5e9              # F^l_m [cycles/s]
    f_edge_max_hz: float = 20e9                # F^e [cycles/s]
    energy_coefficient: float = 1e-28          # delta (kappa) [W s^3 / cycles^3]
    p_max_w: float = 0.3                       # p^max_m [W]
    bandwidth_hz: float = 1e6                  # B_w, split evenly over the M devices (FDMA)
    noise_dbm_per_hz: float = -174.0           # N_0 [dBm/Hz]
    antenna_gain: float = 3.0                  # A_d
    carrier_hz: float = 915e6                  # f_c
    path_loss_exponent: float = 3.0            # d_e
    distance_min_m: float = 150.0              # d_m ~ U[min, max], drawn per episode
    distance_max_m: float = 250.0              # upper end of the distance draw [m]
    lyapunov_weight_local: float = 1e18        # U^l (V_1) [cycles^2 / J]
    lyapunov_weight_tx: float = 1e13           # U^t (V_2) [bits^2 / J]
    reward_energy_weight: float = 1.0          # omega_1, per unit of device power / p_max
    reward_backlog_weight: float = 0.1         # omega_2, per period (G tau) of backlog
    backlog_weights: tuple[float, float, float] = (0.6, 0.2, 0.2)  # beta_1..3: local, tx, edge
    initial_partition: str = "local"           # partition before the first action: local | edge
    partition_points: str = "pareto"           # pareto (non-dominated layer-level points) | all

    def tables(self):
        """The partition table of every service's model."""
        return [partition_table(m, self.input_bits_per_element, self.partition_points, self.feature_bits_per_element)
                for m in self.models]

    # ---- derived quantities (SI) -------------------------------------------------------------
    @property
    def bandwidth_per_device_hz(self) -> float:
        return self.bandwidth_hz / self.num_devices

    @property
    def noise_psd_w_per_hz(self) -> float:
        return float(dbm_per_hz_to_w_per_hz(self.noise_dbm_per_hz))

    @property
    def period_seconds(self) -> float:
        return self.slots_per_period * self.slot_seconds

    def mean_gain(self, distance_m):
        return average_gain(distance_m, antenna_gain=self.antenna_gain, carrier_hz=self.carrier_hz,
                            path_loss_exp=self.path_loss_exponent)

    @property
    def reference_rate_bps(self) -> float:
        """Rate at ``p_max`` with the average gain at the mid distance: the unit for bits queues."""
        d = 0.5 * (self.distance_min_m + self.distance_max_m)
        b = self.bandwidth_per_device_hz
        return float(b * np.log2(1 + self.p_max_w * self.mean_gain(d) / (b * self.noise_psd_w_per_hz)))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["models"] = list(self.models)
        d["backlog_weights"] = list(self.backlog_weights)
        return d


SCENARIO_KEYS = tuple(f.name for f in fields(LyaPPOScenario))

_POSITIVE_INT = ("num_devices", "services_per_device", "slots_per_period", "episode_periods")
_POSITIVE = ("slot_seconds", "arrival_rate", "cycles_per_mac", "input_bits_per_element", "feature_bits_per_element",
             "f_local_max_hz", "f_edge_max_hz", "energy_coefficient", "p_max_w", "bandwidth_hz",
             "antenna_gain", "carrier_hz", "path_loss_exponent", "distance_min_m", "distance_max_m")
_NONNEG = ("lyapunov_weight_local", "lyapunov_weight_tx", "reward_energy_weight",
           "reward_backlog_weight")


def make_scenario(overrides: Mapping[str, Any] | None = None, *, check_load: bool = True,
                  base: LyaPPOScenario | None = None) -> LyaPPOScenario:
    """Validate ``overrides`` on top of ``base`` (Table II defaults) and return the scenario."""
    overrides = dict(overrides or {})
    values = (base or LyaPPOScenario()).to_dict()
    for key, value in overrides.items():
        if key not in values:
            raise ScenarioError(key, f"unknown key; allowed keys: {', '.join(SCENARIO_KEYS)}")
        values[key] = value

    check_ranges(values, _POSITIVE_INT, _POSITIVE, _NONNEG)
    values["noise_dbm_per_hz"] = as_number("noise_dbm_per_hz", values["noise_dbm_per_hz"])
    if values["world"] != "lyappo":
        raise ScenarioError("world", f"expected 'lyappo', got {values['world']!r}")
    if not isinstance(values["name"], str) or not values["name"]:
        raise ScenarioError("name", f"expected a non-empty string, got {values['name']!r}")
    if values["distance_min_m"] > values["distance_max_m"]:
        raise ScenarioError("distance_min_m", f"must be <= distance_max_m "
                            f"({values['distance_max_m']}), got {values['distance_min_m']}")
    if values["partition_points"] not in ("all", "pareto"):
        raise ScenarioError("partition_points",
                            f"must be 'all' or 'pareto', got {values['partition_points']!r}")
    if values["initial_partition"] not in ("local", "edge"):
        raise ScenarioError("initial_partition",
                            f"must be 'local' or 'edge', got {values['initial_partition']!r}")

    models = values["models"]
    if isinstance(models, str):
        models = [models] * values["services_per_device"]
    if not isinstance(models, (list, tuple)) or not all(isinstance(m, str) for m in models):
        raise ScenarioError("models", f"expected a list of model names, got {models!r}")
    if len(models) != values["services_per_device"]:
        raise ScenarioError("models", f"expected {values['services_per_device']} names (one per "
                            f"service, services_per_device), got {len(models)}")
    known = available_models()
    for m in models:
        if m not in known:
            raise ScenarioError("models", f"unknown model {m!r}; known profiles: {', '.join(known)}")
    values["models"] = tuple(models)

    bw = values["backlog_weights"]
    if not isinstance(bw, (list, tuple)) or len(bw) != 3:
        raise ScenarioError("backlog_weights", f"expected 3 numbers (local, tx, edge), got {bw!r}")
    values["backlog_weights"] = tuple(as_number("backlog_weights", x) for x in bw)
    if min(values["backlog_weights"]) < 0:
        raise ScenarioError("backlog_weights", f"must be >= 0, got {bw!r}")

    scenario = LyaPPOScenario(**values)
    if check_load:
        check_feasible_load(scenario)
    return scenario


def check_feasible_load(s: LyaPPOScenario) -> None:
    """Raise if no choice of partition points can keep every queue stable on average.

    Per device, some combination of partition points must need at most ``F^l`` local cycles/s and
    at most the ergodic rate at ``p_max`` (upper-bounded by the rate at the nearest distance's
    average gain, by Jensen); and the edge must be able to take the least edge load of those
    combinations, summed over the devices.  This is a necessary condition for mean stability.
    """
    lam = s.arrival_rate
    tables = s.tables()
    local = [lam * t.c * t.total_macs * s.cycles_per_mac for t in tables]
    edge = [lam * (1 - t.c) * t.total_macs * s.cycles_per_mac for t in tables]
    bits = [lam * t.d * t.input_bits for t in tables]
    b = s.bandwidth_per_device_hz
    r_best = b * np.log2(1 + s.p_max_w * s.mean_gain(s.distance_min_m) / (b * s.noise_psd_w_per_hz))
    best_edge = math.inf
    combos = itertools.product(*[range(t.num_points) for t in tables])
    for i, combo in enumerate(combos):
        if i > 200_000:  # too many to enumerate: skip the check rather than guess
            return
        loc = sum(local[n][k] for n, k in enumerate(combo))
        tx = sum(bits[n][k] for n, k in enumerate(combo))
        if loc <= s.f_local_max_hz and tx <= r_best:
            best_edge = min(best_edge, sum(edge[n][k] for n, k in enumerate(combo)))
    if best_edge == math.inf:
        raise ScenarioError("arrival_rate", f"{lam} tasks/s per service cannot be served by any "
                            f"partition: every choice exceeds f_local_max_hz={s.f_local_max_hz:g} or "
                            f"the uplink rate at p_max_w ({r_best:.3g} bit/s)")
    if best_edge * s.num_devices > s.f_edge_max_hz:
        raise ScenarioError("arrival_rate", f"{lam} tasks/s per service needs at least "
                            f"{best_edge * s.num_devices:.3g} edge cycles/s, more than "
                            f"f_edge_max_hz={s.f_edge_max_hz:g}")
