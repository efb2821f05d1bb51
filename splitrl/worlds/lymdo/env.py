"""The LyMDO MDP (Section IV-B) on :class:`~splitrl.worlds.lymdo.system.LyMDOSystem`.

``LyMDOEnv`` (registered as ``splitrl/LyMDO-v0``)

* **Action** -- ``scenario.partition_mapping``: ``bins`` / ``paper``: ``Box(-inf, inf, (N,))``, one
  real ``y_n`` per UE mapped to the partition point ``l_n = min(floor((L_n + 1)(tanh y + 1) / 2), L_n)``
  (``paper``: eq. 13, ``floor(L_n (tanh y + 1) / 2)``, which reaches ``L_n`` only at ``tanh y = 1``);
  ``categorical``: ``MultiDiscrete([L_1 + 1, ..., L_N + 1])``.  ``l = 0`` sends the raw input,
  ``l = L_n`` runs the whole model on the UE.  ``action_mode: joint`` (the PPO baseline):
  ``Box(-inf, inf, (4 N,))``, per UE ``(y_l, y_alpha, y_ue, y_es)`` mapped as
  :func:`joint_allocation` says, without the allocators.
* **Step** -- one slot: the exact allocators (P3-P5) for the partition points, the delays
  (eqs. 1-4), energies (eq. 5) and memory (eq. 6), the reward, then the virtual queues (8)-(9)
  and the next slot's fading and arrival rates.
* **Observation** -- ``float32`` ``(4 N,)``: ``[beta_n, lam_n / lam_max, log1p(Q_n), log1p(W_n)]``
  with ``beta = h / h_mean`` the fading and the queues in their units.
* **Reward** -- eq. (14), ``-sum_n (Q_n E_n / u_E + W_n C_n / u_C + V T_n)`` with the queues before
  the update.
* **Termination** -- none; truncated after ``slots_per_episode`` slots.
* **Info** -- means over the UEs of the slot: ``delay_s``, ``energy_j``, ``memory_bytes``, ``Q``,
  ``W`` (queues before the update), ``tx_util``; ``partition``.

Examples
--------
>>> import gymnasium as gym, splitrl
>>> env = gym.make("splitrl/LyMDO-v0", config={"slots_per_episode": 3})
>>> obs, _ = env.reset(seed=0)
>>> obs.shape, env.action_space.shape
((20,), (5,))
>>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
>>> bool(reward < 0), round(float(obs[15]), 3) == 0.0, info["partition"].shape
(True, True, (5,))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from splitrl.rl.vector_env import BatchedVectorEnv

from .scenario import LyMDOScenario, make_lymdo_scenario
from .system import LyMDOSystem

SHARE_FLOOR = 1e-3  # the joint baseline's lowest share of a resource (a share of 0 would be a queue that never drains)


def map_partition(y, num_points, mapping: str) -> np.ndarray:
    """Reals ``(..., N)`` -> partition points ``0..L_n`` (``bins`` or the paper's eq. 13)."""
    L = np.asarray(num_points) - 1
    z = (np.tanh(np.asarray(y, dtype=float)) + 1.0) / 2.0
    if mapping == "paper":
        return np.floor(L * z).astype(np.int64)
    return np.minimum(np.floor((L + 1) * z), L).astype(np.int64)


def joint_allocation(system: LyMDOSystem, y: np.ndarray, mapping: str) -> tuple[np.ndarray, tuple]:
    """The PPO baseline's mapping of ``y`` ``(B, 4N)`` (no convex solver): with
    ``s(y) = max((tanh y + 1) / 2, 1e-3)``, the partition as LyMDO's, ``f_ue = c + (f_max - c) s``
    with ``c = lam d_ue`` (so the M/D/1 queue is always stable, C7), and bandwidth and edge CPU
    shared in proportion to ``s`` over all N UEs (a fully local UE's share is wasted)."""
    sc = system.scenario
    N = sc.num_ues
    y = np.asarray(y, dtype=float).reshape(-1, 4, N)
    partition = map_partition(y[:, 0], system.num_points, "paper" if mapping == "paper" else "bins")
    share = np.maximum((np.tanh(y[:, 1:]) + 1.0) / 2.0, SHARE_FLOOR)
    d_ue, _, _, _ = system.loads(partition)
    c = system.rate * d_ue
    f_ue = np.where(d_ue > 0, c + (sc.f_ue_max_hz - c) * share[:, 1], 0.0)
    alpha = share[:, 0] / share[:, 0].sum(-1, keepdims=True)
    f_es = sc.f_es_max_hz * share[:, 2] / share[:, 2].sum(-1, keepdims=True)
    return partition, (f_ue, f_es, alpha)


def _action_space(s: LyMDOScenario, mode: str, num_points) -> gym.Space:
    if mode == "joint":
        return gym.spaces.Box(-np.inf, np.inf, (4 * s.num_ues,), np.float32)
    if s.partition_mapping == "categorical":
        return gym.spaces.MultiDiscrete(np.asarray(num_points, dtype=np.int64))
    return gym.spaces.Box(-np.inf, np.inf, (s.num_ues,), np.float32)


def _split(config: Mapping[str, Any] | None) -> tuple[LyMDOScenario, str, float]:
    cfg = dict(config or {})
    mode = cfg.pop("action_mode", "partition")
    scale = float(cfg.pop("reward_scale", 1.0))  # the learner's reward units; infos stay physical
    cfg.pop("num_envs", None)
    if mode not in ("partition", "joint"):
        raise ValueError(f"action_mode must be 'partition' or 'joint', got {mode!r}")
    return make_lymdo_scenario(cfg), mode, scale


INFO_KEYS = ("delay_s", "energy_j", "memory_bytes", "Q", "W", "tx_util")


def apply_action(system: LyMDOSystem, action, mode: str) -> dict:
    s = system.scenario
    a = np.asarray(action).reshape(system.batch, -1)
    if mode == "joint":
        partition, allocation = joint_allocation(system, a.astype(float), s.partition_mapping)
        return system.step(partition, allocation)
    if s.partition_mapping == "categorical":
        partition = a.astype(np.int64)
        if (partition < 0).any() or (partition >= system.num_points).any():
            raise ValueError(f"actions outside 0..L_n: {partition}")
    else:
        partition = map_partition(a, system.num_points, s.partition_mapping)
    return system.step(partition)


class LyMDOEnv(gym.Env):
    __doc__ = __doc__
    metadata = {"render_modes": []}

    def __init__(self, config: Mapping[str, Any] | None = None, **overrides):
        self.scenario, self.action_mode, self.reward_scale = _split({**dict(config or {}), **overrides})
        self.system: LyMDOSystem | None = None
        probe = LyMDOSystem(self.scenario, np.random.default_rng(0))
        self.num_points = probe.num_points
        self.action_space = _action_space(self.scenario, self.action_mode, self.num_points)
        self.observation_space = gym.spaces.Box(0.0, np.inf, (4 * self.scenario.num_ues,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.system = LyMDOSystem(self.scenario, np.random.default_rng(seed) if seed is not None else self.np_random)
        return self.system.observe()[0], {}

    def step(self, action):
        if self.system is None:
            raise RuntimeError("call reset() before step()")
        out = apply_action(self.system, action, self.action_mode)
        info = {k: float(out[k][0].mean()) for k in INFO_KEYS}
        info["partition"] = out["partition"][0]
        truncated = self.system.slot >= self.scenario.slots_per_episode
        return self.system.observe()[0], float(out["reward"][0]) * self.reward_scale, False, truncated, info


class LyMDOVectorEnv(BatchedVectorEnv):
    """``num_envs`` LyMDO envs stepped as one batched system (gymnasium ``VectorEnv``; RLlib's
    ``vector_entry_point``): the same spaces, observation, reward and info scalars as
    :class:`LyMDOEnv`; all sub-envs reset together (NEXT_STEP autoreset, as RLlib expects)."""

    def __init__(self, config: Mapping[str, Any] | None = None, num_envs: int | None = None, **overrides):
        merged = {**dict(config or {}), **overrides}
        self._single = LyMDOEnv(merged)
        self.scenario, self.action_mode, self.reward_scale = (
            self._single.scenario,
            self._single.action_mode,
            self._single.reward_scale,
        )
        self.init_batch(
            num_envs or merged.get("num_envs") or 1, self._single.action_space, self._single.observation_space
        )

    def start(self, rng):
        self.system = LyMDOSystem(self.scenario, rng, batch=self.num_envs)
        return self.system.observe()

    def advance(self, actions):
        out = apply_action(self.system, actions, self.action_mode)
        info = {k: out[k].mean(-1) for k in INFO_KEYS}
        last = self.system.slot >= self.scenario.slots_per_episode
        return self.system.observe(), out["reward"] * self.reward_scale, last, info


def make_lymdo_env(config: Mapping[str, Any] | None = None):
    """RLlib env creator: the vector env when ``num_envs`` is in the config, else a single env."""
    cfg = dict(config or {})
    return LyMDOVectorEnv(cfg) if "num_envs" in cfg else LyMDOEnv(cfg)
