"""Agent interfaces to the EMH-PPO world (:mod:`splitrl.worlds.emh.system`): RLlib, PettingZoo, single agent.

* **Agents** -- ``md_0 .. md_{N-1}``, one per device; all observe the global state.
* **Action** (per device) -- one flat ``Box`` read as a hybrid action: category indices first
  (``task`` MDP: window size ``W - 1``, then ``(s - 1, c, m)`` for each of the ``max_window``
  task slots; ``time`` MDP: ``(s - 1, c, m)``), then one real per task slot mapped to the power
  ``P = p_limit_w * max(sigmoid(a), p_floor)`` (:mod:`.actions`).
* **Step** -- ``task``: one task window, the ``x``-th tasks of all devices side by side
  (co-channel interference and server contention among them), lasting until the slowest device
  is done; ``time``: one slot of ``slot_ms`` (tasks run on across slots).
* **Observation** -- ``float32``: remaining tasks ``X_n / task_mean`` (``queue_obs_cap``:
  ``min(X_n, cap) / cap``) and distances ``d_n / distance_max_m`` of all devices, with
  ``observe_gain`` each device's uplink gain in dB / 60, and for ``time`` each device's residual
  busy time in slots.
* **Reward** -- shared by all agents: eq. (8) per window, ``-((T + alpha L_wait) / W + beta / N *
  E / W)``; ``time``: ``-(tau 1[tasks left] + beta / N * E_slot)``.  The learner sees it times
  ``reward_scale``, compressed above ``reward_clip`` (:func:`learner_reward`); infos keep it raw.
* **Termination** -- when every task is done; ``time`` episodes truncate at ``max_steps``.
* **Info** -- below.

Config keys besides the scenario's: ``reward_scale``, ``reward_clip`` and ``action_mode``
(``joint``: :class:`EMHJointEnv`).

* :class:`EMHMultiAgentEnv` -- RLlib ``MultiAgentEnv``, agents ``md_0 .. md_{N-1}`` (registered as
  ``splitrl/EMH-v0`` with RLlib's env registry by ``EMHWorld.register_rllib_envs``); every agent observes the global
  state and receives the shared reward (eq. 8, or the time-based reward).
* :class:`EMHParallelEnv` -- the same as a PettingZoo ``ParallelEnv``.
* :class:`EMHJointEnv` -- one gymnasium agent that acts for every device (the H-PPO baseline):
  its action is the devices' flat actions concatenated.

Every step's info (for every agent) holds ``time_s`` (window or slot duration), ``energy_j``
(all devices), ``tasks`` (tasks run), ``idle_s`` (device idle time waiting for the window's
slowest device), ``device_share`` (mean share of the MACs run on devices), ``window`` and
``episode`` (the running totals of ``reward``, ``time_s``, ``energy_j``, ``tasks``, ``idle_s``).

Examples
--------
>>> from splitrl.worlds.emh.env import EMHMultiAgentEnv
>>> env = EMHMultiAgentEnv({"l0_s": 0.0086, "fixed_tasks": 2})
>>> obs, infos = env.reset(seed=0)
>>> sorted(obs), obs["md_0"].shape
(['md_0', 'md_1', 'md_2'], (9,))
>>> obs, rewards, terminated, truncated, infos = env.step({a: env.action_spaces[a].sample() for a in obs})
>>> rewards["md_0"] == rewards["md_2"], infos["md_0"]["tasks"] > 0
(True, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from pettingzoo import ParallelEnv
from ray.rllib.env.multi_agent_env import MultiAgentEnv

from .actions import agent_action_space, agent_ids, agent_num_continuous, agent_nvec, decode_actions, observation_space
from .scenario import make_emh_scenario
from .system import EMHSystem

ENV_NAME = "splitrl/EMH-v0"
JOINT_ENV_NAME = "splitrl/EMH-Joint-v0"
INFO_KEYS = ("time_s", "energy_j", "tasks", "idle_s", "device_share", "window")


def build_system(config: Mapping[str, Any] | None) -> tuple[EMHSystem, tuple[float, float | None]]:
    """The simulator of a config (scenario keys plus ``reward_scale``, ``reward_clip``,
    ``action_mode``) and the learner's reward shaping ``(scale, clip)``."""
    cfg = dict(config or {})
    reward_scale = float(cfg.pop("reward_scale", 1.0))
    reward_clip = cfg.pop("reward_clip", None)
    cfg.pop("action_mode", None)
    return EMHSystem(make_emh_scenario(cfg)), (reward_scale, None if reward_clip is None else float(reward_clip))


def learner_reward(info: dict, shaping: tuple[float, float | None]) -> float:
    """The reward the learner sees (infos stay raw): ``r * reward_scale``, or with a
    ``reward_clip`` c the cost compressed smoothly above c, ``-c * log(1 + cost / c) * reward_scale``
    (monotone, ~linear for costs well below c, logarithmic in the heavy tail)."""
    scale, clip = shaping
    r = info["reward"]
    if clip is not None:
        r = -clip * float(np.log1p(-r / clip)) if r < 0 else r
    return r * scale


def step_system(world: EMHSystem, flat: np.ndarray) -> dict:
    """Decode ``(N, dim)`` flat actions, run one window/slot; the info carries the step's figures
    and, under ``"episode"``, the episode's running totals."""
    dec = decode_actions(world, flat)
    if world.scenario.mdp == "time":
        info = world.step_slot(dec["point"], dec["channel"], dec["server"], dec["power"])
    else:
        info = world.step_window(dec["window"], dec["point"], dec["channel"], dec["server"], dec["power"])
    t = world.totals
    for key in ("reward", "time_s", "energy_j", "tasks", "idle_s"):
        t[key] += info[key]
    t["device_macs_share"] += info["device_share"] * info["tasks"]
    info["episode"] = dict(t)
    return info


class EMHMultiAgentEnv(MultiAgentEnv):
    """RLlib multi-agent env of the EMH-PPO world; ``config`` holds scenario keys (and optionally
    ``reward_scale``, multiplying the reward the agents see; infos stay in SI)."""

    def __init__(self, config: Mapping[str, Any] | None = None):
        super().__init__()
        self.world, self.shaping = build_system(config)
        self.scenario = self.world.scenario
        self.possible_agents = agent_ids(self.scenario.num_devices)
        self.agents = list(self.possible_agents)
        obs_space = observation_space(self.world)
        act_space = agent_action_space(self.scenario, self.world.num_points)
        self.observation_spaces = {a: obs_space for a in self.possible_agents}
        self.action_spaces = {a: act_space for a in self.possible_agents}
        self.nvec = agent_nvec(self.scenario, self.world.num_points)
        self.num_continuous = agent_num_continuous(self.scenario)
        self._rng = np.random.default_rng()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.world.reset(self._rng)
        self.agents = list(self.possible_agents)
        obs = self.world.observation()
        return {a: obs for a in self.agents}, {a: {} for a in self.agents}

    def step(self, action_dict: dict):
        flat = np.stack([np.asarray(action_dict[a], dtype=float) for a in self.possible_agents])
        info = step_system(self.world, flat)
        obs = self.world.observation()
        done = self.world.done
        truncated = not done and self.world.steps >= self.scenario.max_steps
        r = learner_reward(info, self.shaping)
        agents = list(self.agents)
        if done or truncated:
            self.agents = []
        return (
            {a: obs for a in agents},
            {a: r for a in agents},
            {**{a: done for a in agents}, "__all__": done},
            {**{a: truncated for a in agents}, "__all__": truncated},
            {a: dict(info) for a in agents},
        )


class EMHJointEnv(gym.Env):
    """One agent for all devices (H-PPO): action = the devices' flat actions, concatenated."""

    metadata: dict = {"render_modes": []}

    def __init__(self, config: Mapping[str, Any] | None = None):
        self.world, self.shaping = build_system(config)
        self.scenario = self.world.scenario
        N = self.scenario.num_devices
        self.observation_space = observation_space(self.world)
        per = agent_action_space(self.scenario, self.world.num_points).shape[0]
        self.per_agent_dim = per
        self.action_space = gym.spaces.Box(-np.inf, np.inf, (N * per,), np.float32)
        nvec = agent_nvec(self.scenario, self.world.num_points)
        self.nvec = nvec * N  # discrete entries of all devices, then all continuous entries
        self.num_continuous = agent_num_continuous(self.scenario) * N

    def split(self, action) -> np.ndarray:
        return split_joint(self.world, action)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.world.reset(self.np_random)
        return self.world.observation(), {}

    def step(self, action):
        info = step_system(self.world, self.split(action))
        done = self.world.done
        truncated = not done and self.world.steps >= self.scenario.max_steps
        return self.world.observation(), learner_reward(info, self.shaping), done, truncated, info


def split_joint(world: EMHSystem, action) -> np.ndarray:
    """Joint action (every device's discrete entries, then every device's continuous ones) ->
    per-device flat actions ``(N, dim)``."""
    a = np.asarray(action, dtype=float)
    N = world.scenario.num_devices
    d = len(agent_nvec(world.scenario, world.num_points))
    disc = a[: N * d].reshape(N, d)
    return np.concatenate([disc, a[N * d :].reshape(N, -1)], axis=1)


def make_emh_env(config: Mapping[str, Any] | None = None):
    cfg = dict(config or {})
    if cfg.get("action_mode") == "joint":
        return EMHJointEnv(cfg)
    return EMHMultiAgentEnv(cfg)


class EMHParallelEnv(ParallelEnv):
    """PettingZoo ``ParallelEnv`` of the EMH-PPO world (agents ``md_0 .. md_{N-1}``), the same
    spaces, rewards and infos as :class:`EMHMultiAgentEnv`."""

    metadata = {"name": "splitrl_emh_v0", "render_modes": []}

    def __init__(self, config: Mapping[str, Any] | None = None):
        self._env = EMHMultiAgentEnv(config)
        self.possible_agents = list(self._env.possible_agents)
        self.agents: list[str] = []
        self.render_mode = None

    def observation_space(self, agent):
        return self._env.observation_spaces[agent]

    def action_space(self, agent):
        return self._env.action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict | None = None):
        obs, infos = self._env.reset(seed=seed, options=options)
        self.agents = list(self._env.agents)
        return obs, infos

    def step(self, actions: dict):
        obs, rew, term, trunc, infos = self._env.step(actions)
        term.pop("__all__", None)
        trunc.pop("__all__", None)
        self.agents = list(self._env.agents)
        return obs, rew, term, trunc, infos

    def state(self) -> np.ndarray:
        return self._env.world.observation()

    def render(self):
        return None

    def close(self):
        pass


def parallel_env(config: Mapping[str, Any] | None = None) -> EMHParallelEnv:
    """PettingZoo-style constructor."""
    return EMHParallelEnv(config)
