"""RLlib algorithm configs of the LyaPPO world, its metrics callback, and its trained policies.

* ``lyappo``   -- RLlib PPO, :class:`~splitrl.rl.central.CentralPPOModule`, MultiDiscrete
  partition points, the exact Lyapunov allocators inside the env runners (Algorithm 1).
* ``ppo``      -- the paper's joint PPO baseline: the same module with a hybrid head outputs the
  partition points *and* the period's resource allocation (no allocators).
* ``ddpg-cov`` -- DDPG with a continuous action mapped to partition points, allocators for the
  resources (:mod:`splitrl.worlds.lyappo.ddpg`).

All three sample the batched :class:`~splitrl.worlds.lyappo.env.LyaPPOVectorEnv` (one vectorised
simulator per env runner) and report the same custom metrics.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ray.rllib.callbacks.callbacks import RLlibCallback

from splitrl.rl.checkpoint import load_rl_module
from splitrl.rl.ppo import ppo_training
from splitrl.worlds.base import Policy
from splitrl.worlds.lyappo.env import LyaPPOVectorEnv, make_lyappo_env
from splitrl.worlds.lyappo.evaluate import STEP_KEYS, physics_metrics

ACTION_MODES = {"lyappo": "partition", "ppo": "joint", "ddpg-cov": "continuous"}
EPISODE_METRICS = ("energy", "energy_local", "energy_tx", "backlog", "throughput", "latency")


class LyaPPOMetrics(RLlibCallback):
    """Per-episode physics metrics from the env infos, logged under ``env_runners``.

    ``energy*``: device energy per slot in J (mean over devices and slots); ``backlog``: total
    backlog in seconds of work; ``throughput``: finished tasks per second; ``latency``: mean task
    latency in s.
    """

    def on_episode_end(self, *, episode, metrics_logger=None, env=None, **kwargs) -> None:
        steps = [i for i in episode.get_infos() if isinstance(i, dict) and STEP_KEYS[0] in i]
        if not steps or metrics_logger is None:
            return
        scenario = env.unwrapped.scenario if env is not None and hasattr(env.unwrapped, "scenario") else None
        values = physics_metrics(
            steps, scenario.num_devices if scenario else 1, scenario.period_seconds if scenario else 1.0
        )
        for key in EPISODE_METRICS:
            if np.isfinite(values[key]):
                metrics_logger.log_value(key, values[key], reduce="mean", window=100)


def env_config(cfg: dict) -> dict:
    return {
        **cfg["scenario"],
        "action_mode": ACTION_MODES[cfg["algorithm"]["name"]],
        "reward_scale": cfg["algorithm"]["reward_scale"],
    }


def probe_env(cfg: dict):
    """A single env of the algorithm's action mode (for spaces and evaluation)."""
    return make_lyappo_env(env_config(cfg))


def module_spec(cfg: dict):
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    alg = cfg["algorithm"]
    env = probe_env(cfg)
    if alg["name"] == "ddpg-cov":
        from splitrl.worlds.lyappo.ddpg import DDPGModule

        return RLModuleSpec(
            module_class=DDPGModule,
            observation_space=env.observation_space,
            action_space=env.action_space,
            model_config={"hidden": alg["hidden"], "activation": "relu", "exploration_noise": alg["exploration_noise"]},
        )
    from splitrl.rl.central import CentralPPOModule

    model_config: dict[str, Any] = {"hidden": alg["hidden"], "activation": alg["activation"]}
    if alg["name"] == "ppo":
        model_config["discrete_nvec"] = [int(n) for n in env.partition_nvec]
    return RLModuleSpec(
        module_class=CentralPPOModule,
        observation_space=env.observation_space,
        action_space=env.action_space,
        model_config=model_config,
    )


def build_algo_config(cfg: dict):
    """The RLlib ``AlgorithmConfig`` for a resolved splitrl config."""
    alg, res = cfg["algorithm"], cfg["resources"]
    name = alg["name"]
    if name == "ddpg-cov":
        from splitrl.worlds.lyappo.ddpg import DDPGConfig

        config = DDPGConfig()
    else:
        from ray.rllib.algorithms.ppo import PPOConfig

        config = PPOConfig()
    config = (
        config.environment(
            env=LyaPPOVectorEnv,
            env_config=env_config(cfg),
            # hybrid/continuous actions are mapped by the env itself
            normalize_actions=False,
            clip_actions=False,
        )
        .env_runners(
            num_env_runners=res["num_env_runners"],
            num_envs_per_env_runner=res["num_envs_per_env_runner"],
            gym_env_vectorize_mode="vector_entry_point",
            num_cpus_per_env_runner=1,
        )
        .learners(num_learners=0)
        .rl_module(rl_module_spec=module_spec(cfg))
        .callbacks(LyaPPOMetrics)
        .debugging(seed=alg["seed"], log_level="ERROR")
        .reporting(metrics_num_episodes_for_smoothing=20)
    )
    if name == "ddpg-cov":
        config = config.training(
            gamma=alg["gamma"],
            actor_lr=alg["actor_lr"],
            critic_lr=alg["critic_lr"],
            tau=alg["tau"],
            train_batch_size_per_learner=alg["ddpg_batch_size"],
            num_steps_sampled_before_learning_starts=alg["learning_starts"],
            replay_buffer_config={"type": "EpisodeReplayBuffer", "capacity": alg["buffer_size"]},
            grad_clip=alg["grad_clip"],
        )
        # One env step per sub-env between updates: an update of ddpg_batch_size transitions per
        # num_envs_per_env_runner new ones; an iteration spans >= train_batch_size env steps.
        config = config.env_runners(rollout_fragment_length=1).reporting(
            min_sample_timesteps_per_iteration=alg["train_batch_size"]
        )
    else:
        from splitrl.rl.schedules import ScheduledPPOTorchLearner

        config = config.training(**ppo_training(alg)).learners(learner_class=ScheduledPPOTorchLearner)
    return config


class TrainedPolicy(Policy):
    """Deterministic (mode / mean) action of a trained RLModule on the env of its action mode."""

    def __init__(self, module, algorithm: str, name: str):
        self.module = module
        self.algorithm = algorithm
        self.action_mode = ACTION_MODES[algorithm]
        self.name = name

    def act(self, env, obs):
        import torch
        from ray.rllib.core.columns import Columns

        with torch.no_grad():
            out = self.module.forward_inference({Columns.OBS: torch.as_tensor(obs, dtype=torch.float32)[None]})
            if Columns.ACTIONS in out:
                action = out[Columns.ACTIONS]
            else:
                dist = self.module.get_inference_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
                action = dist.to_deterministic().sample()
        action = action[0].cpu().numpy()
        if self.action_mode == "partition":
            return action.astype(np.int64)
        return action.astype(np.float32)


def load_policy(checkpoint, cfg: dict, name: str) -> TrainedPolicy:
    """The trained agent of a splitrl checkpoint of this world."""
    return TrainedPolicy(load_rl_module(checkpoint), cfg["algorithm"]["name"], name)
