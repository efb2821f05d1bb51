"""The ENACHI MDP on :class:`~splitrl.worlds.enachi.system.ENACHISystem`: an agent picks every
device's split per frame; ENACHI's Stage I (bandwidth, reference power) and Stage II (per-slot
tracking power, progressive transmission, early stopping) run inside the env.

``ENACHIEnv`` (registered as ``splitrl/ENACHI-v0``)

* **Action** -- ``MultiDiscrete([S] * N)``: the candidate split index per device
  (``scenario.split_points``: raw input, L1-L4, fully local).
* **Step** -- one frame (:meth:`ENACHISystem.step`), then the energy queue update (12).
* **Observation** -- ``float32`` ``(6 N + 2,)``: per device ``log1p(Q / E_bar)``, the frame's
  large-scale SNR at an equal band ``(10 log10(p_max g_bar / (B/N N_0)) - 10) / 10``, and the last
  frame's ``E / E_bar``, correctness, fraction of maps sent and stop slot / frame slots; then
  ``B / (N x 1 MHz)`` and ``T_d / 0.3 s``.
* **Reward** -- ``(V A_m - sum_n Q_n E_n) / V`` (the realised per-frame drift-plus-penalty of
  Lemma 1, queues before the update), times ``reward_scale``.
* **Termination** -- none; truncated after ``episode_frames`` frames (Q resets with the episode).
* **Info** -- means over the devices of the frame: ``accuracy``, ``energy_j``, ``energy_local_j``,
  ``energy_tx_j``, ``miss``, ``fraction``, ``stop_slot``, ``Q``; ``split``.

Examples
--------
>>> import gymnasium as gym, splitrl
>>> env = gym.make("splitrl/ENACHI-v0", config={"episode_frames": 3, "num_devices": 2})
>>> obs, _ = env.reset(seed=0)
>>> obs.shape, env.action_space.nvec.tolist()
((14,), [6, 6])
>>> obs, reward, terminated, truncated, info = env.step([1, 5])
>>> 0.0 <= info["accuracy"] <= 1.0, info["split"].tolist()
(True, [1, 5])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from splitrl.rl.vector_env import BatchedVectorEnv

from .scenario import ENACHIScenario, make_enachi_scenario
from .system import ENACHISystem

INFO_KEYS = ("energy_j", "energy_local_j", "energy_tx_j", "miss", "fraction", "stop_slot", "Q")


def _split(config: Mapping[str, Any] | None) -> tuple[ENACHIScenario, float]:
    cfg = dict(config or {})
    scale = float(cfg.pop("reward_scale", 1.0))  # the learner's reward units; infos stay physical
    cfg.pop("num_envs", None)
    return make_enachi_scenario(cfg), scale


def observe(system: ENACHISystem) -> np.ndarray:
    s = system.scenario
    N = s.num_devices
    snr_db = 10 * np.log10(s.p_max_w * system.gain / (s.bandwidth_hz / N * s.noise_psd))
    last = system.last
    per_device = np.concatenate(
        [
            np.log1p(system.Q / s.energy_budget_j),
            (snr_db - 10.0) / 10.0,
            last["energy_j"] / s.energy_budget_j,
            last["correct"],
            last["fraction"],
            last["stop_slot"],
        ],
        axis=-1,
    )
    glob = np.broadcast_to(np.array([s.bandwidth_hz / (N * 1e6), s.deadline_s / 0.3]), (system.batch, 2))
    return np.concatenate([per_device, glob], axis=-1).astype(np.float32)


def frame_info(out: dict, index=slice(None)) -> dict:
    info = {"accuracy": out["accuracy"][index]}
    info.update({k: out[k][index].mean(-1) for k in INFO_KEYS})
    return info


class ENACHIEnv(gym.Env):
    __doc__ = __doc__
    metadata = {"render_modes": []}

    def __init__(self, config: Mapping[str, Any] | None = None, **overrides):
        self.scenario, self.reward_scale = _split({**dict(config or {}), **overrides})
        self.system: ENACHISystem | None = None
        S = len(self.scenario.split_points)
        self.action_space = gym.spaces.MultiDiscrete(np.full(self.scenario.num_devices, S, dtype=np.int64))
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (6 * self.scenario.num_devices + 2,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng = np.random.default_rng(seed) if seed is not None else self.np_random
        self.system = ENACHISystem(self.scenario, rng)
        return observe(self.system)[0], {}

    def step(self, action):
        if self.system is None:
            raise RuntimeError("call reset() before step()")
        out = self.system.step(np.asarray(action, dtype=np.int64)[None])
        info = {k: float(v[0]) for k, v in frame_info(out).items()}
        info["split"] = out["split"][0]
        truncated = self.system.frame >= self.scenario.episode_frames
        return observe(self.system)[0], float(out["reward"][0]) * self.reward_scale, False, truncated, info


class ENACHIVectorEnv(BatchedVectorEnv):
    """``num_envs`` ENACHI envs stepped as one batched system (gymnasium ``VectorEnv``; RLlib's
    ``vector_entry_point``): the spaces, observation, reward and info scalars of :class:`ENACHIEnv`."""

    def __init__(self, config: Mapping[str, Any] | None = None, num_envs: int | None = None, **overrides):
        merged = {**dict(config or {}), **overrides}
        single = ENACHIEnv(merged)
        self.scenario, self.reward_scale = single.scenario, single.reward_scale
        self.init_batch(num_envs or merged.get("num_envs") or 1, single.action_space, single.observation_space)

    def start(self, rng):
        self.system = ENACHISystem(self.scenario, rng, batch=self.num_envs)
        return observe(self.system)

    def advance(self, actions):
        out = self.system.step(np.asarray(actions, dtype=np.int64))
        last = self.system.frame >= self.scenario.episode_frames
        return observe(self.system), out["reward"] * self.reward_scale, last, frame_info(out)


def make_enachi_env(config: Mapping[str, Any] | None = None):
    """RLlib env creator: the vector env when ``num_envs`` is in the config, else a single env."""
    cfg = dict(config or {})
    return ENACHIVectorEnv(cfg) if "num_envs" in cfg else ENACHIEnv(cfg)
