"""The LyaPPO scenario: every key, its unit, its default (the paper's Table II) and its validation.

A scenario is a frozen pydantic model (one declaration per key: type, default, range, unit,
meaning); :func:`make_scenario` builds one from a mapping of overrides and raises
:class:`ScenarioError` naming the offending key for unknown keys, wrong types, bad values and loads
that no partition choice can serve.  Units are SI; see ``docs/assumptions/lyappo.md`` for the
choices the paper leaves open (units of the Lyapunov weights, what lambda is per, the rewards).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from pydantic import ConfigDict

from splitrl.core.errors import ConfigError, ScenarioError
from splitrl.core.schema import Float, NonNegativeFloat, PositiveFloat, PositiveInt, Section, key, parse_section
from splitrl.dnn import available_models, partition_table
from splitrl.physics.channel import average_gain, dbm_per_hz_to_w_per_hz


class LyaPPOScenario(Section):
    """Parameters of the MEC-assisted XR inference system (LyaPPO Section III, Table II)."""

    model_config = ConfigDict(**Section.model_config, frozen=True)

    world: Literal["lyappo"] = key("lyappo", "the world")
    name: str = key("lyappo-table2", "the scenario's name (run names, tables)", min_length=1)
    num_devices: PositiveInt = key(4, "M: XR devices")
    services_per_device: PositiveInt = key(2, "N_m: DNN services per device (the same set on every device)")
    models: tuple[str, ...] = key(
        ("resnet50", "mobilenet_v2"),
        "one torchvision profile per service (a single name: every service)",
        type="list of model names",
        strict=False,
    )
    slots_per_period: PositiveInt = key(10, "G: slots per partition-adjustment period (one env step)")
    slot_seconds: PositiveFloat = key(0.01, "tau: slot length", unit="s")
    episode_periods: PositiveInt = key(200, "partition-adjustment periods per episode (truncation)")
    arrival_rate: PositiveFloat = key(1.0, "lambda: Poisson arrivals per service", unit="tasks/s")
    cycles_per_mac: PositiveFloat = key(0.12, "rho: CPU cycles per MAC", unit="cycles/MAC")
    input_bits_per_element: PositiveFloat = key(
        8.0, "raw input D = 3x224x224 x this (8: an 8-bit camera frame)", unit="bit"
    )
    feature_bits_per_element: PositiveFloat = key(32.0, "intermediate features as sent (32: float32)", unit="bit")
    f_local_max_hz: PositiveFloat = key(1.5e9, "F^l_m: device CPU", unit="cycles/s")
    f_edge_max_hz: PositiveFloat = key(20e9, "F^e: edge CPU", unit="cycles/s")
    energy_coefficient: PositiveFloat = key(
        1e-28, "delta (kappa): effective switched capacitance", unit="W s^3/cycle^3"
    )
    p_max_w: PositiveFloat = key(0.3, "p^max_m: device transmit power cap")
    bandwidth_hz: PositiveFloat = key(1e6, "B_w: uplink bandwidth, split evenly over the M devices (FDMA)")
    noise_dbm_per_hz: Float = key(-174.0, "N_0: noise power spectral density")
    antenna_gain: PositiveFloat = key(3.0, "A_d: antenna gain")
    carrier_hz: PositiveFloat = key(915e6, "f_c: carrier frequency")
    path_loss_exponent: PositiveFloat = key(3.0, "d_e: path-loss exponent")
    distance_min_m: PositiveFloat = key(150.0, "d_m ~ U[min, max], drawn per episode: lower end")
    distance_max_m: PositiveFloat = key(250.0, "upper end of the distance draw")
    lyapunov_weight_local: NonNegativeFloat = key(
        1e18, "U^l (V_1): local-energy weight of the drift-plus-penalty", unit="cycles^2/J"
    )
    lyapunov_weight_tx: NonNegativeFloat = key(
        1e13, "U^t (V_2): transmit-energy weight of the drift-plus-penalty", unit="bits^2/J"
    )
    reward_energy_weight: NonNegativeFloat = key(1.0, "omega_1: reward weight per unit of device power / p_max")
    reward_backlog_weight: NonNegativeFloat = key(0.1, "omega_2: reward weight per period (G tau) of backlog")
    backlog_weights: tuple[NonNegativeFloat, NonNegativeFloat, NonNegativeFloat] = key(
        (0.6, 0.2, 0.2),
        "beta_1..3: local, transmission, edge queue weights in the backlog term",
        type="3 numbers >= 0",
        strict=False,
    )
    initial_partition: Literal["local", "edge"] = key("local", "partition before the first action")
    partition_points: Literal["pareto", "all"] = key(
        "pareto", "the layer-level points not dominated in (device MACs, bits sent), or all of them"
    )

    def tables(self):
        """The partition table of every service's model."""
        return [
            partition_table(m, self.input_bits_per_element, self.partition_points, self.feature_bits_per_element)
            for m in self.models
        ]

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
        return average_gain(
            distance_m,
            antenna_gain=self.antenna_gain,
            carrier_hz=self.carrier_hz,
            path_loss_exp=self.path_loss_exponent,
        )

    @property
    def reference_rate_bps(self) -> float:
        """Rate at ``p_max`` with the average gain at the mid distance: the unit for bits queues."""
        d = 0.5 * (self.distance_min_m + self.distance_max_m)
        b = self.bandwidth_per_device_hz
        return float(b * np.log2(1 + self.p_max_w * self.mean_gain(d) / (b * self.noise_psd_w_per_hz)))

    def to_dict(self) -> dict[str, Any]:
        d = self.model_dump()
        d["models"] = list(self.models)
        d["backlog_weights"] = list(self.backlog_weights)
        return d


SCENARIO_KEYS = tuple(LyaPPOScenario.model_fields)


def make_scenario(
    overrides: Mapping[str, Any] | None = None, *, check_load: bool = True, base: LyaPPOScenario | None = None
) -> LyaPPOScenario:
    """Validate ``overrides`` on top of ``base`` (Table II defaults) and return the scenario;
    ``check_load`` also rejects a load that no partition can serve (:func:`check_feasible_load`)."""
    values = (base or LyaPPOScenario()).to_dict()
    values.update(dict(overrides or {}))
    if isinstance(values.get("models"), str):  # one name for every service
        n = values.get("services_per_device")
        values["models"] = [values["models"]] * (n if isinstance(n, int) and n > 0 else 1)
    try:
        scenario = parse_section(LyaPPOScenario, values, "scenario")
    except ConfigError as exc:
        raise ScenarioError(exc.key.removeprefix("scenario."), exc.message) from None
    if scenario.distance_min_m > scenario.distance_max_m:
        raise ScenarioError(
            "distance_min_m", f"must be <= distance_max_m ({scenario.distance_max_m}), got {scenario.distance_min_m}"
        )
    if len(scenario.models) != scenario.services_per_device:
        raise ScenarioError(
            "models",
            f"expected {scenario.services_per_device} names (one per service, "
            f"services_per_device), got {len(scenario.models)}",
        )
    known = available_models()
    for m in scenario.models:
        if m not in known:
            raise ScenarioError("models", f"unknown model {m!r}; known profiles: {', '.join(known)}")
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
        raise ScenarioError(
            "arrival_rate",
            f"{lam} tasks/s per service cannot be served by any "
            f"partition: every choice exceeds f_local_max_hz={s.f_local_max_hz:g} or "
            f"the uplink rate at p_max_w ({r_best:.3g} bit/s)",
        )
    if best_edge * s.num_devices > s.f_edge_max_hz:
        raise ScenarioError(
            "arrival_rate",
            f"{lam} tasks/s per service needs at least "
            f"{best_edge * s.num_devices:.3g} edge cycles/s, more than "
            f"f_edge_max_hz={s.f_edge_max_hz:g}",
        )
