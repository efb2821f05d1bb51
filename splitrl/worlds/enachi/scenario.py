"""The ENACHI scenario: every key, its unit, its default (the paper's Table I and the design notes'
calibrations) and its validation, and the per-candidate split tables the system reads.

Units are SI; the choices the paper leaves open (its extraction lost most of Table I) are in
``docs/assumptions/enachi.md``, one heading per key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import ConfigDict

from splitrl.core.errors import ConfigError, ScenarioError
from splitrl.core.schema import Float, NonNegativeFloat, PositiveFloat, PositiveInt, Section, key, parse_section
from splitrl.dnn import FEATURE_BYTES, load_profile
from splitrl.physics.channel import dbm_per_hz_to_w_per_hz

from .accuracy import load_table
from .allocators import LOCAL, PROGRESSIVE, RAW
from .physics import edge_delay, local_delay

#: ResNet-50 layer points of the split candidates: raw input, the paper's L1-L4 (the stem and the
#: ends of layer1, layer2, layer3) and fully local
PAPER_SPLITS = (0, 1, 4, 8, 14, 18)


class ENACHIScenario(Section):
    """Parameters of the ENACHI system (paper Section II and Table I; design notes section 3)."""

    model_config = ConfigDict(**Section.model_config, frozen=True)

    world: Literal["enachi"] = key("enachi", "the world")
    name: str = key("enachi-table1", "the scenario's name (run names, tables)", min_length=1)
    num_devices: PositiveInt = key(5, "N: devices, each running one ResNet-50 task per frame")
    split_points: tuple[int, ...] = key(
        PAPER_SPLITS,
        "candidate split points: ResNet-50 layer-point indices (0 raw input, 18 fully local)",
        type="list of int in 0..18, ascending",
        strict=False,
        min_length=1,
    )
    deadline_s: PositiveFloat = key(0.3, "T_d: the frame's hard deadline (a task arrives every frame)")
    slot_s: PositiveFloat = key(1e-3, "tau: slot length (one packet, constant channel)")
    bandwidth_hz: PositiveFloat = key(20e6, "B: total FDMA bandwidth shared per frame")
    f_local_hz: PositiveFloat = key(2.0e9, "f_n: device CPU clock", unit="cycles/s")
    f_edge_hz: PositiveFloat = key(20e9, "f_e: edge server clock", unit="cycles/s")
    cycles_per_mac: PositiveFloat = key(0.125, "rho: cycles per MAC (device and edge)", unit="cycles/MAC")
    kappa: PositiveFloat = key(3e-28, "kappa: device chip constant", unit="J s^2/cycle^3")
    p_max_w: PositiveFloat = key(2.0, "p_max: device transmit power limit")
    noise_dbm_per_hz: Float = key(-174.0, "N_0: noise power spectral density")
    rx_snr_db_hz: Float = key(
        69.2, "10 log10(p_max g_bar / N_0): the mean received SNR density that sets g_bar", unit="dB-Hz"
    )
    snr_spread_db: NonNegativeFloat = key(
        6.0, "per-device offset of the mean gain, U[-spread/2, spread/2] dB, drawn per episode", unit="dB"
    )
    feature_bits: PositiveFloat = key(8.0, "b: bits per feature-map element as sent", unit="bit")
    input_bits_per_element: PositiveFloat = key(8.0, "bits per raw input element (an 8-bit frame)", unit="bit")
    energy_budget_j: PositiveFloat = key(0.25, "E_bar: every device's long-term energy per frame")
    lyapunov_v: PositiveFloat = key(50.0, "V: outer drift-plus-penalty weight of the accuracy", unit="J")
    inner_u: PositiveFloat = key(5.0, "U: inner (per-slot) Lyapunov weight of the maps sent", unit="W slot/map")
    inner_queue_init: Literal["zero", "matched"] = key(
        "zero", "Z at a frame's start: 0, or the value at which (25) gives p_ref at g_bar"
    )
    accuracy_source: Literal["digits", "surrogate"] = key(
        "digits",
        "digits: the shipped per-sample table (real correctness and stopping); surrogate: the "
        "curves rescaled to accuracy_max with a latent per-task difficulty",
    )
    accuracy_max: PositiveFloat = key(0.8038, "A_max under accuracy_source: surrogate (ResNet-50's 80.38 %)", le=1)
    predictor_noise: NonNegativeFloat = key(
        0.05, "surrogate: std of the uncertainty predictor's error in the stopping fraction"
    )
    bandwidth_allocator: Literal["paper", "exact"] = key(
        "paper", "Stage I bandwidth: the paper's Algorithm 1, or the exact fixed-split optimum"
    )
    alg1_max_iter: PositiveInt = key(50, "Algorithm 1: iterations at most")
    alg1_tol: PositiveFloat = key(1e-6, "Algorithm 1: relative change of the utility that stops it")
    alg1_delta_bw_fraction: PositiveFloat = key(1e-3, "Algorithm 1: the bandwidth unit, as a fraction of B", lt=1)
    episode_frames: PositiveInt = key(200, "frames per episode (truncation); Q and Z reset at its start")

    @property
    def noise_psd(self) -> float:
        return float(dbm_per_hz_to_w_per_hz(self.noise_dbm_per_hz))

    @property
    def mean_gain(self) -> float:
        """``g_bar`` of the calibration: ``p_max g_bar / N_0 = 10^(rx_snr_db_hz / 10)``."""
        return 10 ** (self.rx_snr_db_hz / 10) * self.noise_psd / self.p_max_w

    @property
    def frame_slots(self) -> int:
        return int(np.floor(self.deadline_s / self.slot_s + 1e-9))

    def tables(self) -> SplitTables:
        return split_tables(self)

    def to_dict(self) -> dict[str, Any]:
        d = self.model_dump()
        d["split_points"] = list(d["split_points"])
        return d


@dataclass(frozen=True)
class SplitTables:
    """Per candidate split ``s`` (``(S,)`` arrays): workloads [MAC], feature maps and their bits,
    the kind (raw / progressive / local), the digits split it reads (-1: none) and the planning
    surrogate ``(a, b, c)``; ``a_max`` is the accuracy of the whole model."""

    points: np.ndarray
    macs_local: np.ndarray
    macs_edge: np.ndarray
    num_maps: np.ndarray
    map_bits: np.ndarray
    total_bits: np.ndarray
    kind: np.ndarray
    digits_split: np.ndarray
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    a_max: float


#: ResNet-50 layer point -> (feature maps, side) at the paper's L1-L4 (and layer4), tested against
#: the profile's tensor sizes
FEATURE_SHAPES = {1: (64, 56), 4: (256, 56), 8: (512, 28), 14: (1024, 14), 16: (2048, 7)}
#: the paper's L1-L4 -> the digits CNN's split j1-j4
DIGITS_SPLIT = {1: 0, 4: 1, 8: 2, 14: 3, 16: 3}  # layer4 (optional) reads the deepest


def split_tables(s: ENACHIScenario) -> SplitTables:
    prof = load_profile("resnet50")
    pts = prof["layer_points"]
    total = float(prof["total_macs"])
    last = len(pts) - 1
    digits = load_table()
    rows = []
    for point in s.split_points:
        macs = float(pts[point]["device_macs"])
        if point == 0:
            elements = float(np.prod(prof["input_shape"]))
            rows.append((macs, total - macs, 1, elements * s.input_bits_per_element, RAW, -1, (1.0, 0.0, 1.0)))
        elif point == last:
            rows.append((total, 0.0, 0, 0.0, LOCAL, -1, (1.0, 0.0, 1.0)))
        else:
            maps, side = FEATURE_SHAPES[point]
            elements = pts[point]["tx_bytes"] / FEATURE_BYTES
            assert elements == maps * side * side, (point, elements)
            j = DIGITS_SPLIT.get(point, -1)
            fit = digits.splits[j].fit
            rows.append((macs, total - macs, maps, side * side * s.feature_bits, PROGRESSIVE, j, fit))
    macs_l, macs_e, maps, map_bits, kind, dj, fits = zip(*rows)
    fits = np.array(fits, dtype=float)
    a, b, c = fits[:, 0], fits[:, 1], fits[:, 2]
    a_max = digits.full_accuracy
    if s.accuracy_source == "surrogate":  # rescale the curves so that A(1) = accuracy_max
        with np.errstate(divide="ignore", invalid="ignore"):
            k = np.where(np.asarray(kind) == PROGRESSIVE, s.accuracy_max / (a - b / (1 + c)), 1.0)
        a, b, a_max = a * k, b * k, s.accuracy_max
    maps = np.array(maps, dtype=np.int64)
    map_bits = np.array(map_bits, dtype=float)
    return SplitTables(
        points=np.array(s.split_points, dtype=np.int64),
        macs_local=np.array(macs_l),
        macs_edge=np.where(np.isclose(macs_e, 0.0), 0.0, np.array(macs_e)),
        num_maps=maps,
        map_bits=map_bits,
        total_bits=np.where(np.asarray(kind) == RAW, map_bits, maps * map_bits),
        kind=np.array(kind, dtype=np.int64),
        digits_split=np.array(dj, dtype=np.int64),
        a=a,
        b=b,
        c=c,
        a_max=float(a_max),
    )


SCENARIO_KEYS = tuple(ENACHIScenario.model_fields)


def make_enachi_scenario(overrides: Mapping[str, Any] | None = None) -> ENACHIScenario:
    """Validate ``overrides`` on top of the defaults; raises :class:`ScenarioError` naming the key
    for what cannot work: split points outside ResNet-50's layer points, unknown feature shapes,
    a slot longer than the deadline, or no candidate split that fits the deadline."""
    try:
        s = parse_section(ENACHIScenario, dict(overrides or {}), "scenario")
    except ConfigError as exc:
        raise ScenarioError(exc.key.removeprefix("scenario."), exc.message) from None
    last = len(load_profile("resnet50")["layer_points"]) - 1
    pts = list(s.split_points)
    allowed = sorted({0, last, *FEATURE_SHAPES})
    for p in pts:
        if p not in allowed:
            raise ScenarioError("split_points", f"{p} is not a split point with known feature maps; allowed: {allowed}")
    if pts != sorted(set(pts)):
        raise ScenarioError("split_points", f"must be ascending without repeats, got {pts}")
    if s.slot_s >= s.deadline_s:
        raise ScenarioError("slot_s", f"must be shorter than deadline_s ({s.deadline_s:g} s), got {s.slot_s:g}")
    check_feasible(s)
    return s


def check_feasible(s: ENACHIScenario) -> None:
    """At least one candidate must fit the deadline for a lone device: the local run within
    ``T_d``, or a transmitting split with a positive window."""
    t = split_tables(s)
    t_local = local_delay(t.macs_local, cycles_per_mac=s.cycles_per_mac, f_local_hz=s.f_local_hz)
    t_edge = edge_delay(t.macs_edge, cycles_per_mac=s.cycles_per_mac, f_edge_hz=s.f_edge_hz)
    ok = np.where(t.kind == LOCAL, t_local <= s.deadline_s, s.deadline_s - t_local - t_edge >= s.slot_s)
    if not ok.any():
        best = float(np.min(t_local + t_edge))
        raise ScenarioError(
            "deadline_s",
            f"no candidate split fits a {s.deadline_s:g} s deadline (the fastest needs {best:.4g} s of "
            "computing alone); raise deadline_s, f_local_hz or f_edge_hz",
        )
