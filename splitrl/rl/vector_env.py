"""A gymnasium ``VectorEnv`` over one batched simulator: every sub-env starts and ends together.

RLlib's env runners build it with ``gym_env_vectorize_mode="vector_entry_point"``.  Autoreset
follows gymnasium's ``NEXT_STEP`` mode, as RLlib expects: the step after the last one resets every
sub-env, ignores the actions and returns reward 0.  A world writes :meth:`start` (build the batched
system from the generator, return the first observations) and :meth:`advance` (one step of all
sub-envs).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class BatchedVectorEnv(gym.vector.VectorEnv):
    metadata = {"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP, "render_modes": []}

    def init_batch(self, num_envs: int, single_action_space: gym.Space, single_observation_space: gym.Space) -> None:
        """Set the sub-env count, the single and batched spaces, and the not-yet-reset state
        (a subclass's ``__init__`` calls it once)."""
        self.num_envs = int(num_envs)
        self.single_action_space = single_action_space
        self.single_observation_space = single_observation_space
        self.action_space = gym.vector.utils.batch_space(single_action_space, self.num_envs)
        self.observation_space = gym.vector.utils.batch_space(single_observation_space, self.num_envs)
        self.system = None  # the batched simulator, built by start()
        self._rng: np.random.Generator | None = None
        self._needs_reset = False

    def start(self, rng: np.random.Generator) -> np.ndarray:
        """Build a fresh batched system drawing from ``rng``; the first observations ``(B, ...)``."""
        raise NotImplementedError

    def advance(self, actions) -> tuple[np.ndarray, np.ndarray, bool, dict]:
        """One step of every sub-env: ``(observations, rewards (B,), last step?, info of (B,) arrays)``."""
        raise NotImplementedError

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None or self._rng is None:
            self._rng = np.random.default_rng(seed)
        self._needs_reset = False
        return self.start(self._rng), {}

    def step(self, actions):
        if self.system is None:
            raise RuntimeError("call reset() before step()")
        B = self.num_envs
        if self._needs_reset:
            obs, _ = self.reset()
            zeros = np.zeros(B, dtype=bool)
            return obs, np.zeros(B), zeros, zeros.copy(), {}
        obs, reward, last, info = self.advance(actions)
        self._needs_reset = bool(last)
        return obs, reward, np.zeros(B, dtype=bool), np.full(B, bool(last)), info
