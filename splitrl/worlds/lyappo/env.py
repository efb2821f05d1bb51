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

Examples
--------
>>> import gymnasium as gym, splitrl
>>> env = gym.make("splitrl/LyaPPO-v0", config={"num_devices": 2, "episode_periods": 3})
>>> obs, info = env.reset(seed=0)
>>> obs.shape, env.action_space
((40,), MultiDiscrete([3 6 3 6]))
>>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
>>> bool(reward <= 0), terminated, truncated, info["slots"]["Q_local"].shape
(True, False, False, (10, 2, 2))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from splitrl.rl.vector_env import BatchedVectorEnv

from .scenario import make_scenario
from .system import LyaPPOFeatures, LyaPPOSystem


class LyaPPOEnv(gym.Env):
    __doc__ = __doc__
    metadata = {"render_modes": []}

    def __init__(self, config: Mapping[str, Any] | None = None, **overrides):
        merged = dict(config or {})
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
        info = {
            "slots": {k: v[:, 0] for k, v in trace.items()},
            **{k: float(v[0]) for k, v in parts.items()},
            "completed": int(out["completed"].sum()),
            "latency_s": float(out["latency_slots"].sum() * self.scenario.slot_seconds),
            "partition": self.system.partition[0].copy(),
        }
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

    def __init__(self, config: Mapping[str, Any] | None = None, **overrides):
        super().__init__(config, **overrides)
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
        sig = 1.0 / (1.0 + np.exp(-np.clip(a[:, M * N :], -50, 50)))
        dev = sig[:, : M * (2 * N + 1)].reshape(B, M, 2 * N + 1)
        local, power, rate = dev[..., :N], dev[..., N], dev[..., N + 1 :]
        edge = sig[:, M * (2 * N + 1) :]

        def share(x):
            return x / np.maximum(1.0, x.sum(axis=-1, keepdims=True))

        alloc = {
            "f_local": s.f_local_max_hz * share(local),
            "power": s.p_max_w * power,
            "rate_share": share(rate),
            "f_edge": (s.f_edge_max_hz * share(edge)).reshape(B, M, N),
        }
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

    def __init__(self, config: Mapping[str, Any] | None = None, **overrides):
        super().__init__(config, **overrides)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=self.partition_nvec.shape, dtype=np.float32)

    def step(self, action):
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != self.action_space.shape or not np.all(np.isfinite(a)):
            raise ValueError(f"action must be {self.action_space.shape[0]} finite numbers in [-1, 1]")
        return self._run_partition(continuous_to_partition(a, self.partition_nvec))

    def to_partition(self, actions) -> np.ndarray:
        return continuous_to_partition(actions, self.partition_nvec)


class LyaPPOVectorEnv(BatchedVectorEnv):
    """``num_envs`` LyaPPO envs stepped as one batched system (gymnasium ``VectorEnv``).

    Same spaces, observation, reward and per-step info scalars as :class:`LyaPPOEnv` (the per-slot
    trace is left out to keep sampled episodes small).  All sub-envs start together and have the
    same length, so they end together.  ``reward_scale`` (not a scenario key) multiplies the
    rewards handed to the learner (infos keep physical units).  Autoreset follows gymnasium's
    ``NEXT_STEP`` mode (the step after the last one resets every sub-env, ignores the actions and
    returns reward 0), which is what RLlib's env runners expect.  Built by RLlib with
    ``gym_env_vectorize_mode="vector_entry_point"``.
    """

    INFO_KEYS = (
        "energy_local",
        "energy_tx",
        "backlog_s",
        "backlog_local_s",
        "backlog_tx_s",
        "backlog_edge_s",
        "completed",
        "latency_s",
    )

    SINGLE = {"partition": LyaPPOEnv, "continuous": LyaPPOContinuousEnv, "joint": LyaPPOJointEnv}

    def __init__(
        self,
        env_config: Mapping[str, Any] | None = None,
        num_envs: int | None = None,
        action_mode: str = "partition",
        **overrides,
    ):
        merged = dict(env_config or {})
        merged.update(overrides)
        n = merged.pop("num_envs", None) if num_envs is None else num_envs
        self.action_mode = merged.pop("action_mode", action_mode)
        # A learning-side knob, not physics: rewards handed to the learner are multiplied by it.
        self.reward_scale = float(merged.pop("reward_scale", 1.0))
        if self.action_mode not in self.SINGLE:
            raise ValueError(f"action_mode must be one of {', '.join(self.SINGLE)}, got {self.action_mode!r}")
        self._single = self.SINGLE[self.action_mode](merged)
        self.scenario = self._single.scenario
        self.features = self._single.features
        self.init_batch(n or 1, self._single.action_space, self._single.observation_space)
        self.period = 0

    def start(self, rng):
        self.system = LyaPPOSystem(self.scenario, rng, batch=self.num_envs)
        self.period = 0
        return self.features.observe(self.system, None)

    def advance(self, actions):
        B = self.num_envs
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
        last = self.period >= s.episode_periods
        return self.features.observe(self.system, out["slots"]), reward * self.reward_scale, last, info


def make_lyappo_env(env_config: Mapping[str, Any] | None = None):
    """RLlib env creator: a :class:`LyaPPOVectorEnv` when ``num_envs`` is in the config (RLlib's
    ``vector_entry_point`` mode), else the single env of ``action_mode`` (default "partition")."""
    cfg = dict(env_config or {})
    if "num_envs" in cfg:
        return LyaPPOVectorEnv(cfg)
    cfg.pop("reward_scale", None)
    mode = cfg.pop("action_mode", "partition")
    return LyaPPOVectorEnv.SINGLE[mode](cfg)
