"""The LyMDO system (Section II), batched over a leading dimension ``B``: N UEs, one edge server,
FDMA uplink with Rayleigh fading, per-slot arrival rates, and the energy and memory virtual queues.

The model is analytic: delays are the steady-state M/D/1 (UE), ``b / R`` (uplink) and ``d / f``
(edge) times of the slot's allocation; the only endogenous state is the virtual queues ``Q``
(energy, eq. 8) and ``W`` (memory, eq. 9).  Every random draw (fading, rates) comes from the
system's generator, so every policy meets the same exogenous sequence under a seed.
"""

from __future__ import annotations

import numpy as np

from .allocators import (
    allocate_bandwidth,
    allocate_edge_cpu_sqrt,
    allocate_ue_cpu,
    bandwidth_weight,
    fdma_rate,
    md1_sojourn,
    snr_full_band,
)
from .scenario import LyMDOScenario

#: per-UE quantities of a slot in the step's output, each ``(B, N)``
SLOT_KEYS = (
    "delay_s",
    "delay_ue_s",
    "delay_tx_s",
    "delay_es_s",
    "energy_j",
    "energy_comp_j",
    "energy_tx_j",
    "memory_bytes",
    "f_ue_hz",
    "f_es_hz",
    "alpha",
    "tx_util",
    "Q",
    "W",
    "arrival_rate_per_s",
)


class LyMDOSystem:
    """``B`` independent copies of the system, stepped together (one slot per :meth:`step`)."""

    def __init__(self, scenario: LyMDOScenario, rng: np.random.Generator, batch: int = 1):
        self.scenario = s = scenario
        self.rng = rng
        self.batch = batch
        self.tables = s.tables()
        self.num_points = self.tables.num_points
        N = s.num_ues
        self.energy_budget = np.asarray(s.energy_budget_j, dtype=float)
        self.memory_budget = np.asarray(s.memory_budget_bytes, dtype=float)
        self.Q = np.zeros((batch, N))
        self.W = np.zeros((batch, N))
        self.slot = 0
        self.draw()

    def draw(self) -> None:
        """The next slot's exogenous state: fading ``beta ~ Exp(1)`` and arrival rates (redrawn
        every slot under ``uniform``, once per system -- an episode -- under ``episode`` and
        ``episode_common``)."""
        s, shape = self.scenario, (self.batch, self.scenario.num_ues)
        self.beta = self.rng.exponential(1.0, shape)
        process = s.arrival_process
        first = self.slot == 0  # drawn in __init__; a new episode is a new system
        if process == "uniform" or (process == "episode" and first):
            self.rate = self.rng.uniform(s.arrival_rate_min_per_s, s.arrival_rate_max_per_s, shape)
        elif process == "episode_common" and first:
            common = self.rng.uniform(s.arrival_rate_min_per_s, s.arrival_rate_max_per_s, (self.batch, 1))
            self.rate = np.repeat(common, s.num_ues, axis=1)
        elif process == "constant":
            self.rate = np.full(shape, s.arrival_rate_per_s)

    def snr(self) -> np.ndarray:
        s = self.scenario
        return snr_full_band(
            self.beta * s.mean_gain, power_w=s.tx_power_w, bandwidth_hz=s.bandwidth_hz, noise_psd=s.noise_psd_w_per_hz
        )

    def loads(self, partition: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per-task UE cycles, edge cycles, bits sent and the memory cost of ``partition`` ``(..., N)``."""
        n = np.arange(self.scenario.num_ues)
        t = self.tables
        return (
            t.ue_cycles[n, partition],
            t.edge_cycles[n, partition],
            t.bits[n, partition],
            t.memory_bytes[n, partition],
        )

    def allocate(self, partition, Q=None, rate=None, snr=None):
        """The exact allocation of P3-P5 for ``partition`` ``(..., N)`` at the current state (or at
        the given ``Q``, ``rate``, ``snr``): ``(f_ue, f_es, alpha)``."""
        s = self.scenario
        Q = self.Q if Q is None else Q
        rate = self.rate if rate is None else rate
        snr = self.snr() if snr is None else snr
        d_ue, d_es, bits, _ = self.loads(partition)
        f_ue = allocate_ue_cpu.unchecked(
            Q,
            d_ue,
            rate,
            V=s.lyapunov_v,
            kappa=s.energy_coefficient,
            f_max=s.f_ue_max_hz,
            tau=s.slot_s,
            energy_unit=s.energy_unit_j,
        )
        f_es = allocate_edge_cpu_sqrt.unchecked(d_es, f_max=s.f_es_max_hz)
        w = bandwidth_weight(
            Q, bits, rate, V=s.lyapunov_v, power_w=s.tx_power_w, tau=s.slot_s, energy_unit=s.energy_unit_j
        )
        alpha = allocate_bandwidth.unchecked(w, snr, bandwidth_hz=s.bandwidth_hz)
        return f_ue, f_es, alpha

    def evaluate(self, partition, f_ue, f_es, alpha, Q=None, W=None, rate=None, snr=None) -> dict:
        """Delays, energies, memory and the drift-plus-penalty objective (the negative reward,
        eq. 14) of an allocation, ``(..., N)`` per UE and ``(...)`` for ``objective``."""
        s = self.scenario
        Q = self.Q if Q is None else Q
        W = self.W if W is None else W
        rate = self.rate if rate is None else rate
        snr = self.snr() if snr is None else snr
        d_ue, d_es, bits, memory = self.loads(partition)
        t_ue = md1_sojourn.unchecked(d_ue, rate, f_ue)
        r = fdma_rate(alpha, snr, bandwidth_hz=s.bandwidth_hz)
        with np.errstate(divide="ignore", invalid="ignore"):
            t_tx = np.where(bits > 0, bits / r, 0.0)
            t_es = np.where(d_es > 0, d_es / f_es, 0.0)
        e_comp = s.energy_coefficient * f_ue**2 * d_ue * rate * s.slot_s
        e_tx = s.tx_power_w * t_tx * rate * s.slot_s
        energy = e_comp + e_tx
        delay = t_ue + t_tx + t_es
        objective = (Q * energy / s.energy_unit_j + W * memory / s.memory_unit_bytes + s.lyapunov_v * delay).sum(-1)
        return {
            "delay_s": delay,
            "delay_ue_s": t_ue,
            "delay_tx_s": t_tx,
            "delay_es_s": t_es,
            "energy_j": energy,
            "energy_comp_j": e_comp,
            "energy_tx_j": e_tx,
            "memory_bytes": memory,
            "tx_util": rate * t_tx,
            "objective": objective,
        }

    def step(self, partition: np.ndarray, allocation: tuple | None = None) -> dict:
        """One slot with ``partition`` ``(B, N)`` (and the exact allocators, or a given
        ``(f_ue, f_es, alpha)``): the slot's figures (:data:`SLOT_KEYS`, ``reward`` ``(B,)``),
        then the queue updates (8)-(9) and the next slot's draws."""
        s = self.scenario
        partition = np.asarray(partition, dtype=np.int64)
        snr = self.snr()
        f_ue, f_es, alpha = self.allocate(partition, snr=snr) if allocation is None else allocation
        out = self.evaluate(partition, f_ue, f_es, alpha, snr=snr)
        out.update(
            f_ue_hz=f_ue,
            f_es_hz=f_es,
            alpha=alpha,
            Q=self.Q.copy(),
            W=self.W.copy(),
            arrival_rate_per_s=self.rate.copy(),
            partition=partition,
        )
        out["reward"] = -out.pop("objective")  # eq. (14): Q, W before the update
        self.Q = np.maximum(
            self.Q + s.energy_queue_scale * (out["energy_j"] - self.energy_budget) / s.energy_unit_j, 0.0
        )
        self.W = np.maximum(
            self.W + s.memory_queue_scale * (out["memory_bytes"] - self.memory_budget) / s.memory_unit_bytes, 0.0
        )
        self.slot += 1
        self.draw()
        return out

    def observe(self) -> np.ndarray:
        """``[beta, rate / rate_max, log1p(Q), log1p(W)]`` per UE, ``(B, 4N)`` float32."""
        s = self.scenario
        return np.concatenate(
            [self.beta, self.rate / s.arrival_rate_max_per_s, np.log1p(self.Q), np.log1p(self.W)], axis=-1
        ).astype(np.float32)

    def replicate(self, batch: int, rng: np.random.Generator) -> LyMDOSystem:
        """``batch`` copies of copy 0's state (queues, draws) with their own generator."""
        out = LyMDOSystem.__new__(LyMDOSystem)
        out.__dict__.update(self.__dict__)
        out.rng, out.batch = rng, batch
        for k in ("Q", "W", "beta", "rate"):
            setattr(out, k, np.repeat(getattr(self, k)[:1], batch, axis=0))
        return out
