"""The toy world's env and its evaluation loop.

* **Action** -- ``MultiDiscrete([2] * N)``: 0 runs device n's task locally, 1 offloads it.
* **Observation** -- ``float32`` ``(2 N,)``: every device's task work / ``work_mean_cycles`` and
  uplink rate / ``rate_mean_bps``.
* **Reward** -- minus the mean task latency in s: local ``w / f_device``; offloaded
  ``bits / rate + w / (f_edge / k)`` with ``k`` devices offloading.
* **Termination** -- none; truncated after ``episode_steps``.
* **Info** -- ``latency_s`` (mean task latency of the step), ``offload`` (share offloaded).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from plugin_worlds.toy import ToyScenario


class ToyEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, config=None):
        cfg = dict(config or {})
        self.reward_scale = float(cfg.pop("reward_scale", 1.0))  # the learner's reward units
        self.s = ToyScenario.model_validate(cfg)
        n = self.s.num_devices
        self.action_space = gym.spaces.MultiDiscrete([2] * n)
        self.observation_space = gym.spaces.Box(0.0, np.inf, (2 * n,), np.float32)
        self.rng = np.random.default_rng()
        self.t = 0

    def _draw(self):
        n = self.s.num_devices
        self.work = self.s.work_mean_cycles * self.rng.uniform(0.5, 1.5, n)
        self.rate = self.s.rate_mean_bps * self.rng.exponential(1.0, n) + 1.0
        return np.concatenate([self.work / self.s.work_mean_cycles, self.rate / self.s.rate_mean_bps]).astype(
            np.float32
        )

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.t = 0
        return self._draw(), {}

    def step(self, action):
        off = np.asarray(action, dtype=np.int64).reshape(-1) == 1
        k = max(int(off.sum()), 1)
        latency = np.where(
            off, self.s.input_bits / self.rate + self.work / (self.s.f_edge_hz / k), self.work / self.s.f_device_hz
        )
        self.t += 1
        info = {"latency_s": float(latency.mean()), "offload": float(off.mean())}
        reward = -float(latency.mean()) * self.reward_scale
        return self._draw(), reward, False, self.t >= self.s.episode_steps, info


def evaluate(policy, scenario: dict, evaluation: dict) -> dict:
    env = ToyEnv(scenario)
    lat, off, returns = [], [], []
    for i in range(evaluation["episodes"]):
        obs, _ = env.reset(seed=evaluation["seed"] + i)
        policy.reset(env, evaluation["seed"] + i)
        ret, done = 0.0, False
        while not done:
            obs, r, term, trunc, info = env.step(policy.act(env, obs))
            ret += r
            lat.append(info["latency_s"])
            off.append(info["offload"])
            done = term or trunc
        returns.append(ret)
    return {
        "latency": float(np.mean(lat)),
        "offload": float(np.mean(off)),
        "reward": float(np.mean(returns)),
        "episodes": evaluation["episodes"],
    }
