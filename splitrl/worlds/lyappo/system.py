"""The LyaPPO system (Section III): M XR devices with N DNN services each, one BS with an MEC
server, FDMA uplink with Rayleigh fading, the three coupled FIFO queues per service and the three
exact per-slot Lyapunov allocators (Problems 3-5), batched over a leading dimension; and the
features (observation, reward) the MDP reads off it.  The MDP itself is :mod:`.env`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from splitrl.physics.channel import shannon_rate

from .allocators import allocate_edge_cpu, allocate_local_cpu, allocate_transmission
from .energy import local_energy, transmission_energy
from .queues import TaskPipeline
from .scenario import LyaPPOScenario

SLOT_KEYS_MN = (
    "Q_local",
    "Q_tx",
    "Q_edge",
    "f_local",
    "rate",
    "f_edge",
    "tasks_local",
    "tasks_tx",
    "tasks_edge",
    "arrivals",
)


class LyaPPOSystem:
    """Simulator state and dynamics for a batch of ``B`` independent copies of the system.

    Every array has a leading batch axis: queues ``(B, M, N)``, distances and gains ``(B, M)``.
    Random draws come from ``rng``; with ``shared_noise`` all copies see the same channel gains
    and arrivals (common random numbers, used for look-ahead over candidate actions).
    """

    def __init__(self, scenario: LyaPPOScenario, rng: np.random.Generator, batch: int = 1, shared_noise: bool = False):
        s = self.scenario = scenario
        self.rng = rng
        self.batch = batch
        self.shared_noise = shared_noise
        M, N = s.num_devices, s.services_per_device
        tables = s.tables()
        self.num_points = np.array([t.num_points for t in tables])
        # Per-point workloads per service: cycles on device, bits sent, cycles on the edge.
        cyc = [t.total_macs * s.cycles_per_mac for t in tables]
        self.point_local = [t.c * c for t, c in zip(tables, cyc)]
        self.point_bits = [t.d * t.input_bits for t in tables]
        self.point_edge = [(1 - t.c) * c for t, c in zip(tables, cyc)]
        self.distance = rng.uniform(s.distance_min_m, s.distance_max_m, size=(batch, M))
        self.mean_gain = s.mean_gain(self.distance)
        self.pipeline = TaskPipeline((batch, M, N))
        init = self.num_points - 1 if s.initial_partition == "local" else np.zeros(N, dtype=np.int64)
        self.partition = np.broadcast_to(init, (batch, M, N)).astype(np.int64)
        self.slot = 0
        self._noise = s.noise_psd_w_per_hz
        self._b = s.bandwidth_per_device_hz
        self._lam_slot = s.arrival_rate * s.slot_seconds

    def replicate(self, batch: int, rng: np.random.Generator) -> LyaPPOSystem:
        """``batch`` copies of this (single) system's state driven by common random numbers."""
        if self.batch != 1:
            raise ValueError("replicate() needs a system with batch == 1")
        new = object.__new__(LyaPPOSystem)
        new.__dict__.update(self.__dict__)
        new.rng, new.batch, new.shared_noise = rng, batch, True
        new.distance = np.repeat(self.distance, batch, axis=0)
        new.mean_gain = np.repeat(self.mean_gain, batch, axis=0)
        new.pipeline = self.pipeline.broadcast(batch)
        new.pipeline.shape = (batch,) + self.pipeline.shape[1:]
        new.partition = np.repeat(self.partition, batch, axis=0)
        return new

    def workloads(self, partition: np.ndarray):
        """``(c_local, bits, c_edge)`` for a partition array of shape ``(..., N)``."""
        cl = np.empty(partition.shape)
        bits = np.empty(partition.shape)
        ce = np.empty(partition.shape)
        for n in range(partition.shape[-1]):
            k = partition[..., n]
            cl[..., n], bits[..., n], ce[..., n] = self.point_local[n][k], self.point_bits[n][k], self.point_edge[n][k]
        return cl, bits, ce

    def _draw(self, M: int, N: int):
        lead = () if self.shared_noise else (self.batch,)
        fading = self.rng.exponential(1.0, size=lead + (M,))
        arrivals = self.rng.poisson(self._lam_slot, size=lead + (M, N))
        if self.shared_noise:
            arrivals = np.broadcast_to(arrivals, (self.batch, M, N))
        return fading, arrivals

    def run_period(self, partition: np.ndarray, allocation: Mapping[str, np.ndarray] | None = None) -> dict[str, Any]:
        """Apply ``partition`` (``(B, M, N)``) and simulate ``G`` slots.

        Resources come from the exact Lyapunov allocators, unless ``allocation`` fixes them for the
        period (the joint PPO baseline): ``f_local`` and ``f_edge`` in Hz ``(B, M, N)``, ``power``
        in W ``(B, M)`` (spent only in slots with something to send) and ``rate_share``
        ``(B, M, N)``, the fraction of the achievable rate ``R(p, h)`` each service gets; every
        queue still serves at most its backlog.

        Returns ``{"slots": trace, "completed": (B, M, N), "latency_slots": (B, M, N)}`` where
        the trace arrays have shape ``(G, B, M, N)`` or ``(G, B, M)``.
        """
        s = self.scenario
        B, M, N = self.batch, s.num_devices, s.services_per_device
        G, tau = s.slots_per_period, s.slot_seconds
        self.partition = np.asarray(partition, dtype=np.int64).reshape(B, M, N)
        cl, bits, ce = self.workloads(self.partition)
        tr = {k: np.zeros((G, B, M, N)) for k in SLOT_KEYS_MN}
        tr["power"], tr["gain"] = np.zeros((G, B, M)), np.zeros((G, B, M))
        completed = np.zeros((B, M, N), dtype=np.int64)
        latency = np.zeros((B, M, N))
        work = np.zeros((3, B, M, N))
        for g in range(G):
            Q = self.pipeline.backlog()
            tr["tasks_local"][g], tr["tasks_tx"][g], tr["tasks_edge"][g] = self.pipeline.num_tasks()
            fading, arrivals = self._draw(M, N)
            gain = self.mean_gain * fading
            if allocation is None:
                f_l = allocate_local_cpu.unchecked(
                    Q[0], tau=tau, weight=s.lyapunov_weight_local, kappa=s.energy_coefficient, f_max=s.f_local_max_hz
                )
                rate, power = allocate_transmission.unchecked(
                    Q[1],
                    gain,
                    tau=tau,
                    weight=s.lyapunov_weight_tx,
                    bandwidth=self._b,
                    noise_psd=self._noise,
                    p_max=s.p_max_w,
                )
                f_e = allocate_edge_cpu.unchecked(Q[2].reshape(B, M * N), tau=tau, f_max=s.f_edge_max_hz).reshape(
                    B, M, N
                )
            else:
                f_l = np.minimum(allocation["f_local"], Q[0] / tau)
                power = np.where(Q[1].sum(-1) > 0, allocation["power"], 0.0)
                r_cap = shannon_rate(power, gain, bandwidth_hz=self._b, noise_psd_w_per_hz=self._noise)
                rate = np.minimum(allocation["rate_share"] * r_cap[..., None], Q[1] / tau)
                f_e = np.minimum(allocation["f_edge"], Q[2] / tau)
            work[0], work[1], work[2] = f_l * tau, rate * tau, f_e * tau
            done, lat = self.pipeline.serve(work, self.slot)
            completed += done
            latency += lat
            self.pipeline.arrive(arrivals, cl, bits, ce, self.slot)
            tr["Q_local"][g], tr["Q_tx"][g], tr["Q_edge"][g] = Q
            tr["f_local"][g], tr["rate"][g], tr["f_edge"][g] = f_l, rate, f_e
            tr["power"][g], tr["gain"][g], tr["arrivals"][g] = power, gain, arrivals
            self.slot += 1
        # Per-slot quantities that need no feedback are computed for the whole period at once.
        tr["rate_max"] = shannon_rate(s.p_max_w, tr["gain"], bandwidth_hz=self._b, noise_psd_w_per_hz=self._noise)
        tr["energy_local"] = local_energy(tr["f_local"], tau_s=tau, kappa=s.energy_coefficient)
        tr["energy_tx"] = transmission_energy(tr["power"], tau_s=tau)
        return {"slots": tr, "completed": completed, "latency_slots": latency}


class LyaPPOFeatures:
    """Observation (eq. 25) and reward (eq. 34) of a batch of systems, in normalised units."""

    def __init__(self, scenario: LyaPPOScenario):
        self.s = scenario
        self.r_ref = scenario.reference_rate_bps
        M, N = scenario.num_devices, scenario.services_per_device
        self.obs_dim = 9 * M * N + 2 * M

    def seconds(self, Q_local, Q_tx, Q_edge):
        """Work in seconds at full capacity: F^l, the reference rate R_ref, F^e."""
        s = self.s
        return Q_local / s.f_local_max_hz, Q_tx / self.r_ref, Q_edge / s.f_edge_max_hz

    def observe(self, system: LyaPPOSystem, trace: dict | None) -> np.ndarray:
        """``(B, obs_dim)`` float32; ``trace`` is the last period's (``None`` right after reset)."""
        s = self.s
        B, M, N = system.batch, s.num_devices, s.services_per_device
        P = s.period_seconds
        work = np.stack(self.seconds(*system.workloads(system.partition)))  # (3, B, M, N)
        if trace is None:
            q = np.zeros((3, B, M, N))
            alloc = np.zeros((3, B, M, N))
            dev = np.zeros((2, B, M))
        else:
            q = np.stack(self.seconds(trace["Q_local"].mean(0), trace["Q_tx"].mean(0), trace["Q_edge"].mean(0)))
            alloc = np.stack(
                [
                    trace["f_local"].mean(0) / s.f_local_max_hz,
                    trace["rate"].mean(0) / self.r_ref,
                    trace["f_edge"].mean(0) / s.f_edge_max_hz,
                ]
            )
            dev = np.stack([trace["power"].mean(0) / s.p_max_w, trace["rate_max"].mean(0) / self.r_ref])
        per_service = np.concatenate([np.log1p(q / P), np.log1p(work / P), alloc])  # (9, B, M, N)
        obs = np.concatenate(
            [per_service.transpose(1, 2, 3, 0).reshape(B, -1), dev.transpose(1, 2, 0).reshape(B, -1)], axis=1
        )
        return obs.astype(np.float32)

    def reward(self, trace: dict) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Reward ``(B,)`` and its parts (per batch element, summed over devices)."""
        s = self.s
        e_loc = trace["energy_local"].mean(0)  # (B, M) J per slot
        e_tx = trace["energy_tx"].mean(0)
        ql, qt, qe = self.seconds(trace["Q_local"].mean(0), trace["Q_tx"].mean(0), trace["Q_edge"].mean(0))
        b1, b2, b3 = s.backlog_weights
        qbar = (b1 * ql + b2 * qt + b3 * qe).sum(-1) / s.period_seconds  # (B, M) periods of work
        energy_term = (e_loc + e_tx) / (s.slot_seconds * s.p_max_w)
        reward = -(s.reward_energy_weight * energy_term + s.reward_backlog_weight * qbar).sum(-1)
        parts = {
            "energy_local": e_loc.sum(-1),
            "energy_tx": e_tx.sum(-1),
            "backlog_local_s": ql.sum((-2, -1)),
            "backlog_tx_s": qt.sum((-2, -1)),
            "backlog_edge_s": qe.sum((-2, -1)),
        }
        parts["backlog_s"] = parts["backlog_local_s"] + parts["backlog_tx_s"] + parts["backlog_edge_s"]
        return reward, parts
