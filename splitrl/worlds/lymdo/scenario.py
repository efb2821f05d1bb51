"""The LyMDO scenario: every key, its unit, its default (the paper's Table I) and its validation,
and the per-UE layer tables the system reads (eqs. 1-6 for every partition point).

Units are SI; the choices the paper leaves open are in ``docs/assumptions/lymdo.md``, one heading
per key (queue units, encodings, the slot, the arrival process, the partition mapping).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import ConfigDict

from splitrl.core.errors import ConfigError, ScenarioError
from splitrl.core.schema import Float, NonNegativeFloat, PositiveFloat, PositiveInt, Section, key, parse_section
from splitrl.dnn import FEATURE_BYTES, available_models, load_profile
from splitrl.physics.channel import average_gain, dbm_per_hz_to_w_per_hz

#: the paper's UEs: two run AlexNet (type I tasks), three ResNet-18 (type II)
PAPER_MODELS = ("alexnet", "alexnet", "resnet18", "resnet18", "resnet18")


class LyMDOScenario(Section):
    """Parameters of the cooperative edge-inference system (LyMDO Section II, Table I)."""

    model_config = ConfigDict(**Section.model_config, frozen=True)

    world: Literal["lymdo"] = key("lymdo", "the world")
    name: str = key("lymdo-table1", "the scenario's name (run names, tables)", min_length=1)
    models: tuple[str, ...] = key(
        PAPER_MODELS,
        "the DNN of every UE (N = the list's length)",
        type="list of model names",
        strict=False,
        min_length=1,
    )
    bandwidth_hz: PositiveFloat = key(5e6, "W: uplink bandwidth, shared by FDMA")
    noise_dbm_per_hz: Float = key(-174.0, "N_0: noise power spectral density")
    tx_power_w: PositiveFloat = key(0.1, "p_n: every UE's transmit power (no power control)")
    antenna_gain: PositiveFloat = key(3.0, "A_d: antenna gain")
    carrier_hz: PositiveFloat = key(915e6, "f_c: carrier frequency")
    path_loss_exponent: PositiveFloat = key(3.0, "d_e: path-loss exponent")
    distance_m: PositiveFloat = key(150.0, "d_n: every UE's distance to the AP (fixed)")
    cycles_per_mac: PositiveFloat = key(0.12, "rho: CPU cycles per MAC", unit="cycles/MAC")
    energy_coefficient: PositiveFloat = key(1e-28, "kappa: effective switched capacitance", unit="J s^2/cycle^3")
    f_ue_max_hz: PositiveFloat = key(1.5e9, "f^max_ue: every UE's CPU", unit="cycles/s")
    f_es_max_hz: PositiveFloat = key(15e9, "f^max_es: the edge server's CPU, shared by the UEs' VMs", unit="cycles/s")
    lyapunov_v: PositiveFloat = key(10.0, "V: weight of the delay in the drift-plus-penalty", unit="1/s")
    energy_budget_j: tuple[PositiveFloat, ...] = key(
        (0.04, 0.04, 0.06, 0.06, 0.06),
        "e_n: every UE's long-term energy per slot (AlexNet 40 mJ, ResNet 60 mJ)",
        type="list of float > 0 (one per UE)",
        strict=False,
    )
    memory_budget_bytes: tuple[PositiveFloat, ...] = key(
        (1e8, 1e8, 3e7, 3e7, 3e7),
        "epsilon_n: every UE's long-term memory cost (AlexNet 100 MB, ResNet 30 MB)",
        type="list of float > 0 (one per UE)",
        strict=False,
    )
    memory_cost_ue: NonNegativeFloat = key(0.2, "gamma_n: weight of the parameters held on the UE in eq. (6)")
    memory_cost_es: NonNegativeFloat = key(0.8, "gamma_es: weight of the parameters held on the edge in eq. (6)")
    memory_activation_weighting: Literal["unweighted", "weighted"] = key(
        "unweighted", "eq. (6) literally (activation peaks at weight 1) or gamma times (params + peak)"
    )
    energy_queue_scale: PositiveFloat = key(100.0, "nu_e: step of the energy virtual queue, eq. (8)")
    memory_queue_scale: PositiveFloat = key(10.0, "nu_c: step of the memory virtual queue, eq. (9)")
    energy_unit_j: PositiveFloat = key(1.0, "u_E: the energy queue's unit (E / u_E enters eqs. 8, 11, 14)")
    memory_unit_bytes: PositiveFloat = key(1e9, "u_C: the memory queue's unit (C / u_C enters eqs. 9, 11, 14)")
    slot_s: PositiveFloat = key(1.0, "tau: slot length; energies are tau times the per-second rates of eq. (5)")
    slots_per_episode: PositiveInt = key(200, "K: slots per episode (truncation)")
    arrival_process: Literal["uniform", "episode", "episode_common", "constant"] = key(
        "uniform",
        "uniform: every UE's rate drawn from [min, max] every slot (training); episode: every UE's "
        "rate drawn from [min, max] once per episode; episode_common: one rate for all UEs drawn "
        "once per episode; constant: arrival_rate_per_s for every UE (evaluation)",
    )
    arrival_rate_min_per_s: PositiveFloat = key(0.5, "lower end of the uniform arrival rate")
    arrival_rate_max_per_s: PositiveFloat = key(
        2.5, "upper end of the uniform arrival rate (also lambda_max of the observation)"
    )
    arrival_rate_per_s: PositiveFloat = key(2.5, "the constant arrival rate")
    input_bits_per_element: PositiveFloat = key(8.0, "raw input as sent (8: an 8-bit camera frame)", unit="bit")
    feature_bits_per_element: PositiveFloat = key(32.0, "intermediate features as sent (32: float32)", unit="bit")
    partition_mapping: Literal["bins", "paper", "categorical"] = key(
        "categorical",
        "action -> partition point: bins (L+1 equal bins of tanh), paper (eq. 13's floor), categorical "
        "(one categorical per UE)",
    )

    @property
    def num_ues(self) -> int:
        return len(self.models)

    @property
    def noise_psd_w_per_hz(self) -> float:
        return float(dbm_per_hz_to_w_per_hz(self.noise_dbm_per_hz))

    @property
    def mean_gain(self) -> float:
        return float(
            average_gain(
                self.distance_m,
                antenna_gain=self.antenna_gain,
                carrier_hz=self.carrier_hz,
                path_loss_exp=self.path_loss_exponent,
            )
        )

    @property
    def peak_rate_per_s(self) -> float:
        """The largest arrival rate the process can give (C7 must hold at it)."""
        return self.arrival_rate_per_s if self.arrival_process == "constant" else self.arrival_rate_max_per_s

    def tables(self) -> LayerTables:
        return layer_tables(self)

    def to_dict(self) -> dict[str, Any]:
        d = self.model_dump()
        for k in ("models", "energy_budget_j", "memory_budget_bytes"):
            d[k] = list(d[k])
        return d


@dataclass(frozen=True)
class LayerTables:
    """Per UE and partition point ``l = 0..L_n`` (padded to the longest model with the last
    point): cycles on the UE and on the edge per task, bits sent per task, memory cost in bytes
    (eq. 6), shapes ``(N, L_max + 1)``; ``num_points`` ``(N,)`` = ``L_n + 1``."""

    ue_cycles: np.ndarray
    edge_cycles: np.ndarray
    bits: np.ndarray
    memory_bytes: np.ndarray
    num_points: np.ndarray


def layer_tables(s: LyMDOScenario) -> LayerTables:
    rows = {k: [] for k in ("ue", "es", "bits", "mem")}
    counts = []
    for model in s.models:
        pts = load_profile(model)["layer_points"]
        prof = load_profile(model)
        total_cycles = prof["total_macs"] * s.cycles_per_mac
        ue = np.array([p["device_macs"] for p in pts]) * s.cycles_per_mac
        elements = float(np.prod(prof["input_shape"]))
        bits = np.array([p["tx_bytes"] / FEATURE_BYTES * s.feature_bits_per_element for p in pts])
        bits[0] = elements * s.input_bits_per_element
        bits[-1] = 0.0  # fully local: nothing is sent (results are not returned, as in the paper)
        params = np.array([p["device_param_bytes"] for p in pts])
        psi = np.array([p["out_bytes"] for p in pts])  # float32 tensors held, whatever is sent
        total_params = params[-1]
        L = len(pts) - 1
        mem = np.empty(L + 1)
        for l in range(L + 1):
            ue_peak = psi[: l + 1].max()
            es_peak = psi[l + 1 :].max() if l < L else 0.0
            ue_par, es_par = params[l], total_params - params[l]
            if s.memory_activation_weighting == "unweighted":
                mem[l] = s.memory_cost_ue * ue_par + ue_peak + s.memory_cost_es * es_par + es_peak
            else:
                mem[l] = s.memory_cost_ue * (ue_par + ue_peak) + s.memory_cost_es * (es_par + es_peak)
        rows["ue"].append(ue)
        rows["es"].append(total_cycles - ue)
        rows["bits"].append(bits)
        rows["mem"].append(mem)
        counts.append(L + 1)
    width = max(counts)

    def pad(rs):
        return np.stack([np.concatenate([r, np.full(width - len(r), r[-1])]) for r in rs])

    es = pad(rows["es"])
    es[np.isclose(es, 0.0, atol=1e-6)] = 0.0
    return LayerTables(pad(rows["ue"]), es, pad(rows["bits"]), pad(rows["mem"]), np.array(counts))


SCENARIO_KEYS = tuple(LyMDOScenario.model_fields)


def make_lymdo_scenario(overrides: Mapping[str, Any] | None = None) -> LyMDOScenario:
    """Validate ``overrides`` on top of Table I; raises :class:`ScenarioError` naming the key for
    what cannot work: per-UE lists of the wrong length, an unknown model, an arrival range upside
    down, or a rate at which some UE cannot run its whole model locally (M/D/1 stability, C7)."""
    try:
        s = parse_section(LyMDOScenario, dict(overrides or {}), "scenario")
    except ConfigError as exc:
        raise ScenarioError(exc.key.removeprefix("scenario."), exc.message) from None
    known = available_models()
    for m in s.models:
        if m not in known:
            raise ScenarioError("models", f"unknown model {m!r}; known profiles: {', '.join(known)}")
    for k in ("energy_budget_j", "memory_budget_bytes"):
        if len(getattr(s, k)) != s.num_ues:
            raise ScenarioError(
                k, f"expected {s.num_ues} values (one per UE, as scenario.models), got {len(getattr(s, k))}"
            )
    if s.arrival_rate_min_per_s > s.arrival_rate_max_per_s:
        raise ScenarioError(
            "arrival_rate_min_per_s",
            f"must be <= arrival_rate_max_per_s ({s.arrival_rate_max_per_s}), got {s.arrival_rate_min_per_s}",
        )
    check_stability(
        s, s.peak_rate_per_s, "arrival_rate_per_s" if s.arrival_process == "constant" else "arrival_rate_max_per_s"
    )
    return s


def check_stability(s: LyMDOScenario, rate_per_s: float, key: str) -> None:
    """C7 at the fully local point: ``rate * d_ue(L_n) < f_ue_max`` for every UE, so that every
    partition point keeps the UE's M/D/1 queue stable."""
    for model in dict.fromkeys(s.models):
        d = load_profile(model)["total_macs"] * s.cycles_per_mac
        if rate_per_s * d >= s.f_ue_max_hz:
            raise ScenarioError(
                key,
                f"{rate_per_s:g} tasks/s cannot be served by a UE running {model} locally "
                f"({d:.4g} cycles per task need more than f_ue_max_hz={s.f_ue_max_hz:g}; "
                f"the limit is {s.f_ue_max_hz / d:.4g} tasks/s)",
            )
