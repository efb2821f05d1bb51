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
from .energy import local_energy, transmission_energy
from .queues import TaskPipeline
from .scenario import LyaPPOScenario, make_scenario

SLOT_KEYS_MN = ("Q_local", "Q_tx", "Q_edge", "f_local", "rate", "f_edge", "tasks_local", "tasks_tx",
                "tasks_edge", "arrivals")


class LyaPPOSystem:
    """Simulator state and dynamics for a batch of ``B`` independent copies of the system.

    Every array has a leading batch axis: queues ``(B, M, N)``, distances and gains ``(B, M)``.
    Random draws come from ``rng``; with ``shared_noise`` all copies see the same channel gains
    and arrivals (common random numbers, used for look-ahead over candidate actions).
    """

    def __init__(self, scenario: LyaPPOScenario, rng: np.random.Generator, batch: int = 1,
                 shared_noise: bool = False):
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

    def replicate(self, batch: int, rng: np.random.Generator) -> "LyaPPOSystem":
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

    def run_period(self, partition: np.ndarray, allocation: Mapping[str, np.ndarray] | None = None
                   ) -> dict[str, Any]:
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
                f_l = allocate_local_cpu(Q[0], tau=tau, weight=s.lyapunov_weight_local,
                                         kappa=s.energy_coefficient, f_max=s.f_local_max_hz)
                rate, power = allocate_transmission(Q[1], gain, tau=tau, weight=s.lyapunov_weight_tx,
                                                    bandwidth=self._b, noise_psd=self._noise, p_max=s.p_max_w)
                f_e = allocate_edge_cpu(Q[2].reshape(B, M * N), tau=tau, f_max=s.f_edge_max_hz).reshape(B, M, N)
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
        tr["rate_max"] = shannon_rate(s.p_max_w, tr["gain"], bandwidth_hz=self._b,
                                      noise_psd_w_per_hz=self._noise)
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
            alloc = np.stack([trace["f_local"].mean(0) / s.f_local_max_hz, trace["rate"].mean(0) / self.r_ref,
                              trace["f_edge"].mean(0) / s.f_edge_max_hz])
            dev = np.stack([trace["power"].mean(0) / s.p_max_w, trace["rate_max"].mean(0) / self.r_ref])
        per_service = np.concatenate([np.log1p(q / P), np.log1p(work / P), alloc])  # (9, B, M, N)
        obs = np.concatenate([per_service.transpose(1, 2, 3, 0).reshape(B, -1),
                              dev.transpose(1, 2, 0).reshape(B, -1)], axis=1)
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
            "energy_local": e_loc.sum(-1), "energy_tx": e_tx.sum(-1),
            "backlog_local_s": ql.sum((-2, -1)), "backlog_tx_s": qt.sum((-2, -1)),
            "backlog_edge_s": qe.sum((-2, -1)),
        }
        parts["backlog_s"] = parts["backlog_local_s"] + parts["backlog_tx_s"] + parts["backlog_edge_s"]
        return reward, parts


class LyaPPOEnv(gym.Env):
    __doc__ = __doc__
    metadata = {"render_modes": []}

    def __init__(self, env_config: Mapping[str, Any] | None = None, **overrides):
        merged = dict(env_config or {})
        merged.update(overrides)
        self.scenario = make_scenario(merged)
        s = self.scenario
        M = s.num_devices
        tables = s.tables()
        self.action_space = gym.spaces.MultiDiscrete(np.tile([t.num_points for t in tables], M))
        self.partition_nvec = self.action_space.nvec.copy()  # choices per partition point, in any action mode
        self.features = LyaPPOFeatures(s)
        self.observation_space = gym.spaces.Box(0.0, np.inf, shape=(self.features.obs_dim,), dtype=np.float32)
        self.system: LyaPPOSystem | None = None
        self.period = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.system = LyaPPOSystem(self.scenario, self.np_random)
        self.period = 0
        return self.features.observe(self.system, None)[0], {"distance_m": self.system.distance[0].copy()}

    def step(self, action):
        action = np.asarray(action, dtype=np.int64).reshape(-1)
        if action.shape != self.action_space.shape or not self.action_space.contains(action):
            raise ValueError(f"action {action.tolist()} is outside {self.action_space}")
        return self._run_partition(action)

    def _run_partition(self, partition: np.ndarray, allocation: Mapping[str, np.ndarray] | None = None):
        if self.system is None:
            raise RuntimeError("call reset() before step()")
        M, N = self.scenario.num_devices, self.scenario.services_per_device
        return self._finish(self.system.run_period(np.asarray(partition).reshape(1, M, N), allocation))

    def _finish(self, out: dict):
        """Observation, reward, flags and info of a simulated period (batch of one)."""
        trace = out["slots"]
        reward, parts = self.features.reward(trace)
        self.period += 1
        info = {"slots": {k: v[:, 0] for k, v in trace.items()},
                **{k: float(v[0]) for k, v in parts.items()},
                "completed": int(out["completed"].sum()),
                "latency_s": float(out["latency_slots"].sum() * self.scenario.slot_seconds),
                "partition": self.system.partition[0].copy()}
        truncated = self.period >= self.scenario.episode_periods
        return self.features.observe(self.system, trace)[0], float(reward[0]), False, truncated, info


class LyaPPOJointEnv(LyaPPOEnv):
    """The LyaPPO world without the Lyapunov allocators: the agent sets resources itself.

    The "PPO" baseline of the paper [36]: one action per period holds the partition points *and*
    the resource allocation for the period's ``G`` slots.  The action is one flat ``Box`` of
    ``M N + (3 M N + M)`` entries: the ``M N`` partition indices (as floats, rounded), then
    unbounded pre-activations ``a`` mapped through the logistic function ``sigma``: per device
    ``N`` local-CPU shares, one power level and ``N`` rate shares, then ``M N`` edge-CPU shares.
    ``f^l_n = F^l sigma_n / max(1, sum_n sigma_n)`` (likewise for rate shares of ``R(p, h)`` and for
    the edge over all ``M N`` queues) and ``p = p_max sigma``.  Observation, reward and info are
    those of :class:`LyaPPOEnv`.
    """

    def __init__(self, env_config: Mapping[str, Any] | None = None, **overrides):
        super().__init__(env_config, **overrides)
        s = self.scenario
        M, N = s.num_devices, s.services_per_device
        self.num_continuous = 3 * M * N + M
        low = np.concatenate([np.zeros(M * N), np.full(self.num_continuous, -np.inf)]).astype(np.float32)
        high = np.concatenate([self.partition_nvec - 1.0, np.full(self.num_continuous, np.inf)]).astype(np.float32)
        self.action_space = gym.spaces.Box(low, high, dtype=np.float32)

    def split_action(self, action) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``(partition (B, M, N), allocation)`` from flat actions ``(D,)`` or ``(B, D)``."""
        s = self.scenario
        M, N = s.num_devices, s.services_per_device
        a = np.asarray(action, dtype=np.float64)
        a = a.reshape(-1, a.shape[-1]) if a.ndim else a.reshape(1, 1)
        if a.shape[1:] != self.action_space.shape or not np.all(np.isfinite(a)):
            raise ValueError(f"action must be {self.action_space.shape[0]} finite numbers")
        B = a.shape[0]
        k = np.clip(np.rint(a[:, : M * N]), 0, self.partition_nvec - 1).astype(np.int64).reshape(B, M, N)
        sig = 1.0 / (1.0 + np.exp(-np.clip(a[:, M * N:], -50, 50)))
        dev = sig[:, : M * (2 * N + 1)].reshape(B, M, 2 * N + 1)
        local, power, rate = dev[..., :N], dev[..., N], dev[..., N + 1:]
        edge = sig[:, M * (2 * N + 1):]

        def share(x):
            return x / np.maximum(1.0, x.sum(axis=-1, keepdims=True))

        alloc = {"f_local": s.f_local_max_hz * share(local), "power": s.p_max_w * power,
                 "rate_share": share(rate), "f_edge": (s.f_edge_max_hz * share(edge)).reshape(B, M, N)}
        return k, alloc

    def step(self, action):
        k, alloc = self.split_action(action)
        return self._run_partition(k, alloc)


def continuous_to_partition(action, nvec) -> np.ndarray:
    """DDPG-Cov's mapping: ``a in [-1, 1]`` -> partition point ``round((a + 1) / 2 * K)``."""
    a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
    return np.rint((a + 1.0) / 2.0 * (np.asarray(nvec) - 1)).astype(np.int64)


class LyaPPOContinuousEnv(LyaPPOEnv):
    """:class:`LyaPPOEnv` with a continuous action ``Box(-1, 1, (M N,))`` mapped to partition
    points by :func:`continuous_to_partition` (DDPG-Cov [26]); allocators as in LyaPPO."""

    def __init__(self, env_config: Mapping[str, Any] | None = None, **overrides):
        super().__init__(env_config, **overrides)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=self.partition_nvec.shape, dtype=np.float32)

    def step(self, action):
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != self.action_space.shape or not np.all(np.isfinite(a)):
            raise ValueError(f"action must be {self.action_space.shape[0]} finite numbers in [-1, 1]")
        return self._run_partition(continuous_to_partition(a, self.partition_nvec))

    def to_partition(self, actions) -> np.ndarray:
        return continuous_to_partition(actions, self.partition_nvec)


class LyaPPOVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` LyaPPO envs stepped as one batched system (gymnasium ``VectorEnv``).

    Same spaces, observation, reward and per-step info scalars as :class:`LyaPPOEnv` (the per-slot
    trace is left out to keep sampled episodes small).  All sub-envs start together and have the
    same length, so they end together.  ``reward_scale`` (not a scenario key) multiplies the
    rewards handed to the learner (infos keep physical units).  Autoreset follows gymnasium's ``NEXT_STEP`` mode (the step
    after the last one resets every sub-env, ignores the actions and returns reward 0), which is
    what RLlib's env runners expect.  Built by RLlib with
    ``gym_env_vectorize_mode="vector_entry_point"``.
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP, "render_modes": []}
    INFO_KEYS = ("energy_local", "energy_tx", "backlog_s", "backlog_local_s", "backlog_tx_s",
                 "backlog_edge_s", "completed", "latency_s")

    SINGLE = {"partition": LyaPPOEnv, "continuous": LyaPPOContinuousEnv, "joint": LyaPPOJointEnv}

    def __init__(self, env_config: Mapping[str, Any] | None = None, num_envs: int | None = None,
                 action_mode: str = "partition", **overrides):
        merged = dict(env_config or {})
        merged.update(overrides)
        n = merged.pop("num_envs", None) if num_envs is None else num_envs
        self.action_mode = merged.pop("action_mode", action_mode)
        # A learning-side knob, not physics: rewards handed to the learner are multiplied by it.
        self.reward_scale = float(merged.pop("reward_scale", 1.0))
        if self.action_mode not in self.SINGLE:
            raise ValueError(f"action_mode must be one of {', '.join(self.SINGLE)}, got {self.action_mode!r}")
        self.num_envs = int(n or 1)
        self._single = self.SINGLE[self.action_mode](merged)
        self.scenario = self._single.scenario
        self.features = self._single.features
        self.single_action_space = self._single.action_space
        self.single_observation_space = self._single.observation_space
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.system: LyaPPOSystem | None = None
        self._rng: np.random.Generator | None = None
        self.period = 0
        self._needs_reset = False

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None or self._rng is None:
            self._rng = np.random.default_rng(seed)
        self.system = LyaPPOSystem(self.scenario, self._rng, batch=self.num_envs)
        self.period = 0
        self._needs_reset = False
        return self.features.observe(self.system, None), {}

    def step(self, actions):
        if self.system is None:
            raise RuntimeError("call reset() before step()")
        B = self.num_envs
        if self._needs_reset:
            obs, _ = self.reset()
            zeros = np.zeros(B, dtype=bool)
            return obs, np.zeros(B), zeros, zeros.copy(), {}
        s = self.scenario
        shape = (B, s.num_devices, s.services_per_device)
        allocation = None
        if self.action_mode == "joint":
            partition, allocation = self._single.split_action(np.asarray(actions).reshape(B, -1))
        elif self.action_mode == "continuous":
            partition = self._single.to_partition(np.asarray(actions, dtype=np.float64).reshape(B, -1))
        else:
            partition = np.asarray(actions, dtype=np.int64).reshape(B, -1)
            nv = self.single_action_space.nvec
            if partition.shape[1] != len(nv) or (partition < 0).any() or (partition >= nv).any():
                raise ValueError(f"actions outside {self.action_space}")
        out = self.system.run_period(partition.reshape(shape), allocation)
        reward, parts = self.features.reward(out["slots"])
        self.period += 1
        info = {k: parts[k] for k in self.INFO_KEYS if k in parts}
        info["completed"] = out["completed"].sum((1, 2))
        info["latency_s"] = out["latency_slots"].sum((1, 2)) * s.slot_seconds
        truncated = np.full(B, self.period >= s.episode_periods)
        self._needs_reset = bool(truncated[0])
        return (self.features.observe(self.system, out["slots"]), reward * self.reward_scale,
                np.zeros(B, dtype=bool), truncated, info)


def make_lyappo_env(env_config: Mapping[str, Any] | None = None):
    """RLlib env creator: a :class:`LyaPPOVectorEnv` when ``num_envs`` is in the config (RLlib's
    ``vector_entry_point`` mode), else the single env of ``action_mode`` (default "partition")."""
    cfg = dict(env_config or {})
    if "num_envs" in cfg:
        return LyaPPOVectorEnv(cfg)
    cfg.pop("reward_scale", None)
    mode = cfg.pop("action_mode", "partition")
    return LyaPPOVectorEnv.SINGLE[mode](cfg)
