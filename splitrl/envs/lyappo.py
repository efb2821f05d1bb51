"""The LyaPPO world and its upper-level MDP (LyaPPO Sections III-IV).

:class:`LyaPPOSystem` is the physics: M XR devices with N DNN services each, one BS with an MEC
server, FDMA uplink with Rayleigh fading, the three coupled FIFO queues per service, and the three
exact per-slot Lyapunov allocators (Problems 3-5).  :class:`LyaPPOEnv` is the gymnasium MDP on it.

``LyaPPOEnv`` (registered as ``splitrl/LyaPPO-v0``)

* **Action** -- ``MultiDiscrete([K_1+1, ..., K_N+1] * M)``: the partition point of every (device,
  service) pair in device-major order; ``0`` offloads the raw input, ``K_n`` runs all locally.
* **Step** -- one partition-adjustment period of ``G`` slots: the action is applied to tasks that
  arrive from now on; in each slot the channel gains are drawn, the allocators run on the current
  backlogs, the queues are served, new Poisson tasks arrive.
* **Observation** -- eq. (25), ``float32`` vector of ``9 M N + 2 M`` non-negative features:
  for every (m, n): period-mean backlogs ``Q^l, Q^t, Q^e`` and the current per-task workloads
  ``c^local, d, c^edge`` -- each as seconds of work at full capacity (``F^l``, the reference rate at
  ``p_max``, ``F^e``) divided by the period length and passed through ``log1p`` --, then the
  period-mean allocations ``f^l/F^l, r/R_ref, f^e/F^e``; for every m: mean ``p/p_max`` and mean
  ``R/R_ref``.
* **Reward** -- eq. (34): ``-sum_m [w1 (E^l_m + E^t_m) / (tau p_max) + w2 Qbar_m]`` where ``E`` are
  period-mean device energies per slot and ``Qbar_m = sum_n (b1 Q^l/F^l + b2 Q^t/R_ref + b3 Q^e/F^e)
  / (G tau)`` is the weighted backlog in periods of work.
* **Termination** -- none (infinite-horizon MDP); ``truncated`` after ``episode_periods`` steps.
* **Info** -- ``info["slots"]``: the per-slot trace (backlogs at slot start, allocations, gains,
  energies), plus period totals ``energy_local``, ``energy_tx`` (J per device, summed over
  devices, mean per slot), ``backlog_s`` (seconds of work), ``completed`` and ``latency_s``.
"""

from __future__ import annotations

from typing import Any, Mapping

import gymnasium as gym
import numpy as np

from .allocators import allocate_edge_cpu, allocate_local_cpu, allocate_transmission
from .channel import shannon_rate
from .dnn import partition_table
from .energy import local_energy, transmission_energy
from .queues import TaskPipeline
from .scenario import LyaPPOScenario, make_scenario

SLOT_KEYS_MN = ("Q_local", "Q_tx", "Q_edge", "f_local", "rate", "f_edge")
SLOT_KEYS_M = ("power", "gain", "energy_local", "energy_tx")


class LyaPPOSystem:
    """Simulator state and dynamics; cheap to copy for look-ahead (``copy(rng)``)."""

    def __init__(self, scenario: LyaPPOScenario, rng: np.random.Generator):
        s = self.scenario = scenario
        self.rng = rng
        M, N = s.num_devices, s.services_per_device
        self.tables = [partition_table(m, s.input_bits_per_element) for m in s.models]
        self.num_points = np.array([t.num_points for t in self.tables])
        # Per-point workloads per service: cycles on device, bits sent, cycles on the edge.
        cyc = [t.total_macs * s.cycles_per_mac for t in self.tables]
        self.point_local = [t.c * c for t, c in zip(self.tables, cyc)]
        self.point_bits = [t.d * t.input_bits for t in self.tables]
        self.point_edge = [(1 - t.c) * c for t, c in zip(self.tables, cyc)]
        self.distance = rng.uniform(s.distance_min_m, s.distance_max_m, size=M)
        self.mean_gain = s.mean_gain(self.distance)
        self.pipeline = TaskPipeline(M, N)
        init = self.num_points - 1 if s.initial_partition == "local" else np.zeros(N, dtype=int)
        self.partition = np.broadcast_to(init, (M, N)).astype(np.int64)
        self.slot = 0
        self._noise = s.noise_psd_w_per_hz
        self._b = s.bandwidth_per_device_hz
        self._lam_slot = s.arrival_rate * s.slot_seconds

    def copy(self, rng: np.random.Generator) -> "LyaPPOSystem":
        new = object.__new__(LyaPPOSystem)
        new.__dict__.update(self.__dict__)
        new.rng = rng
        new.pipeline = self.pipeline.copy()
        new.partition = self.partition.copy()
        return new

    def workloads(self, partition: np.ndarray):
        """``(c_local, bits, c_edge)`` per (m, n) for a partition array of shape ``(M, N)``."""
        cl = np.empty(partition.shape)
        bits = np.empty(partition.shape)
        ce = np.empty(partition.shape)
        for n in range(partition.shape[1]):
            k = partition[:, n]
            cl[:, n], bits[:, n], ce[:, n] = self.point_local[n][k], self.point_bits[n][k], self.point_edge[n][k]
        return cl, bits, ce

    def run_period(self, partition: np.ndarray) -> dict[str, Any]:
        """Apply ``partition`` and simulate ``G`` slots; returns the per-slot trace and totals."""
        s = self.scenario
        M, N = s.num_devices, s.services_per_device
        G, tau = s.slots_per_period, s.slot_seconds
        self.partition = np.asarray(partition, dtype=np.int64).reshape(M, N)
        cl, bits, ce = self.workloads(self.partition)
        tr = {k: np.zeros((G, M, N)) for k in SLOT_KEYS_MN}
        tr["power"], tr["gain"] = np.zeros((G, M)), np.zeros((G, M))
        completed = np.zeros((M, N), dtype=np.int64)
        latency = np.zeros((M, N))
        work = np.zeros((3, M, N))
        for g in range(G):
            Q = self.pipeline.backlog()
            gain = self.mean_gain * self.rng.exponential(1.0, size=M)
            f_l = allocate_local_cpu(Q[0], tau=tau, weight=s.lyapunov_weight_local,
                                     kappa=s.energy_coefficient, f_max=s.f_local_max_hz)
            rate, power = allocate_transmission(Q[1], gain, tau=tau, weight=s.lyapunov_weight_tx,
                                                bandwidth=self._b, noise_psd=self._noise, p_max=s.p_max_w)
            f_e = allocate_edge_cpu(Q[2].reshape(M * N), tau=tau, f_max=s.f_edge_max_hz).reshape(M, N)
            work[0], work[1], work[2] = f_l * tau, rate * tau, f_e * tau
            done, lat = self.pipeline.serve(work, self.slot)
            completed += done
            latency += lat
            arrivals = self.rng.poisson(self._lam_slot, size=(M, N))
            self.pipeline.arrive(arrivals, cl, bits, ce, self.slot)
            tr["Q_local"][g], tr["Q_tx"][g], tr["Q_edge"][g] = Q
            tr["f_local"][g], tr["rate"][g], tr["f_edge"][g] = f_l, rate, f_e
            tr["power"][g], tr["gain"][g] = power, gain
            self.slot += 1
        # Per-slot quantities that need no feedback are computed for the whole period at once.
        tr["rate_max"] = shannon_rate(s.p_max_w, tr["gain"], bandwidth_hz=self._b,
                                      noise_psd_w_per_hz=self._noise)
        tr["energy_local"] = local_energy(tr["f_local"], tau_s=tau, kappa=s.energy_coefficient)
        tr["energy_tx"] = transmission_energy(tr["power"], tau_s=tau)
        return {"slots": tr, "completed": completed, "latency_slots": latency}


class LyaPPOEnv(gym.Env):
    __doc__ = __doc__
    metadata = {"render_modes": []}

    def __init__(self, env_config: Mapping[str, Any] | None = None, **overrides):
        merged = dict(env_config or {})
        merged.update(overrides)
        self.scenario = make_scenario(merged)
        s = self.scenario
        M, N = s.num_devices, s.services_per_device
        tables = [partition_table(m, s.input_bits_per_element) for m in s.models]
        self.action_space = gym.spaces.MultiDiscrete(np.tile([t.num_points for t in tables], M))
        self.obs_dim = 9 * M * N + 2 * M
        self.observation_space = gym.spaces.Box(0.0, np.inf, shape=(self.obs_dim,), dtype=np.float32)
        self._r_ref = s.reference_rate_bps
        self.system: LyaPPOSystem | None = None
        self.period = 0

    # ---- normalisation -----------------------------------------------------------------------
    def _seconds(self, Q_local, Q_tx, Q_edge):
        s = self.scenario
        return Q_local / s.f_local_max_hz, Q_tx / self._r_ref, Q_edge / s.f_edge_max_hz

    def _observe(self, trace: dict | None) -> np.ndarray:
        s, sys_ = self.scenario, self.system
        M, N = s.num_devices, s.services_per_device
        P = s.period_seconds
        cl, bits, ce = sys_.workloads(sys_.partition)
        work = np.stack(self._seconds(cl, bits, ce))
        if trace is None:
            q = np.zeros((3, M, N))
            alloc = np.zeros((3, M, N))
            dev = np.zeros((2, M))
        else:
            q = np.stack(self._seconds(trace["Q_local"].mean(0), trace["Q_tx"].mean(0), trace["Q_edge"].mean(0)))
            alloc = np.stack([trace["f_local"].mean(0) / s.f_local_max_hz, trace["rate"].mean(0) / self._r_ref,
                              trace["f_edge"].mean(0) / s.f_edge_max_hz])
            dev = np.stack([trace["power"].mean(0) / s.p_max_w, trace["rate_max"].mean(0) / self._r_ref])
        per_service = np.concatenate([np.log1p(q / P), np.log1p(work / P), alloc])  # (9, M, N)
        obs = np.concatenate([per_service.transpose(1, 2, 0).reshape(-1), dev.T.reshape(-1)])
        return obs.astype(np.float32)

    def _reward(self, trace: dict) -> tuple[float, dict]:
        s = self.scenario
        e_loc = trace["energy_local"].mean(0)  # (M,) J per slot
        e_tx = trace["energy_tx"].mean(0)
        ql, qt, qe = self._seconds(trace["Q_local"].mean(0), trace["Q_tx"].mean(0), trace["Q_edge"].mean(0))
        b1, b2, b3 = s.backlog_weights
        qbar = (b1 * ql + b2 * qt + b3 * qe).sum(-1) / s.period_seconds  # (M,)
        energy_term = (e_loc + e_tx) / (s.slot_seconds * s.p_max_w)
        reward = -float(np.sum(s.reward_energy_weight * energy_term + s.reward_backlog_weight * qbar))
        parts = {
            "energy_local": float(e_loc.sum()), "energy_tx": float(e_tx.sum()),
            "backlog_s": float((ql + qt + qe).sum()),
            "backlog_local_s": float(ql.sum()), "backlog_tx_s": float(qt.sum()), "backlog_edge_s": float(qe.sum()),
        }
        return reward, parts

    # ---- gymnasium API -----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.system = LyaPPOSystem(self.scenario, self.np_random)
        self.period = 0
        return self._observe(None), {"distance_m": self.system.distance.copy()}

    def step(self, action):
        if self.system is None:
            raise RuntimeError("call reset() before step()")
        action = np.asarray(action, dtype=np.int64).reshape(-1)
        if action.shape != self.action_space.shape or not self.action_space.contains(action):
            raise ValueError(f"action {action.tolist()} is outside {self.action_space}")
        M, N = self.scenario.num_devices, self.scenario.services_per_device
        out = self.system.run_period(action.reshape(M, N))
        trace = out["slots"]
        reward, parts = self._reward(trace)
        self.period += 1
        info = {"slots": trace, **parts,
                "completed": int(out["completed"].sum()),
                "latency_s": float(out["latency_slots"].sum() * self.scenario.slot_seconds),
                "partition": self.system.partition.copy()}
        truncated = self.period >= self.scenario.episode_periods
        return self._observe(trace), reward, False, truncated, info
