"""RLlib algorithm configs of the LyMDO world, its metrics callback and its trained policies.

* ``lymdo`` -- the paper's Algorithm 1: RLlib PPO picks every UE's partition point (a Gaussian
  over reals mapped by ``scenario.partition_mapping``, or categoricals), the exact allocators
  P3-P5 run inside the env runners.
* ``ppo``   -- the paper's joint baseline: PPO over a 4N-dimensional Gaussian action (partition,
  bandwidth share, UE and edge CPU per UE) mapped without a convex solver
  (:func:`~splitrl.worlds.lymdo.env.joint_allocation`).

Both sample the batched :class:`~splitrl.worlds.lymdo.env.LyMDOVectorEnv` (one vectorised system
per env runner).
"""

from __future__ import annotations

import numpy as np
from ray.rllib.callbacks.callbacks import RLlibCallback

from splitrl.rl.checkpoint import load_rl_module
from splitrl.rl.ppo import ppo_training
from splitrl.worlds.base import Policy
from splitrl.worlds.lymdo.env import LyMDOEnv, LyMDOVectorEnv

ACTION_MODES = {"lymdo": "partition", "ppo": "joint"}
#: per-episode means of these step infos are logged as the metrics of the same name
EPISODE_METRICS = {
    "delay": "delay_s",
    "energy": "energy_j",
    "memory": "memory_bytes",
    "energy_queue": "Q",
    "memory_queue": "W",
}


class LyMDOMetrics(RLlibCallback):
    """Per-episode means of the slot infos (SI) under ``env_runners``."""

    def on_episode_end(self, *, episode, metrics_logger=None, **kwargs) -> None:
        infos = [i for i in episode.get_infos() if isinstance(i, dict) and "delay_s" in i]
        if not infos or metrics_logger is None:
            return
        for name, key in EPISODE_METRICS.items():
            metrics_logger.log_value(name, float(np.mean([i[key] for i in infos])), reduce="mean", window=100)


def env_config(cfg: dict) -> dict:
    return {
        **cfg["scenario"],
        "action_mode": ACTION_MODES[cfg["algorithm"]["name"]],
        "reward_scale": cfg["algorithm"]["reward_scale"],
    }


def build_algo_config(cfg: dict):
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from splitrl.rl.central import CentralPPOModule
    from splitrl.rl.schedules import ScheduledPPOTorchLearner

    alg, res = cfg["algorithm"], cfg["resources"]
    env = LyMDOEnv(env_config(cfg))
    spec = RLModuleSpec(
        module_class=CentralPPOModule,
        observation_space=env.observation_space,
        action_space=env.action_space,
        model_config={"hidden": alg["hidden"], "activation": alg["activation"], "init_log_std": alg["init_log_std"]},
    )
    return (
        PPOConfig()
        .environment(env=LyMDOVectorEnv, env_config=env_config(cfg), normalize_actions=False, clip_actions=False)
        .env_runners(
            num_env_runners=res["num_env_runners"],
            num_envs_per_env_runner=res["num_envs_per_env_runner"],
            gym_env_vectorize_mode="vector_entry_point",
            num_cpus_per_env_runner=1,
        )
        .learners(num_learners=0, learner_class=ScheduledPPOTorchLearner)
        .rl_module(rl_module_spec=spec)
        .callbacks(LyMDOMetrics)
        .debugging(seed=alg["seed"], log_level="ERROR")
        .reporting(metrics_num_episodes_for_smoothing=20)
        .training(**ppo_training(alg))
    )


class TrainedLyMDOPolicy(Policy):
    """A trained agent acting deterministically (the Gaussian's mean, the categoricals' mode)."""

    def __init__(self, module, cfg: dict, name: str):
        self.module = module
        self.name = name
        self.action_mode = ACTION_MODES[cfg["algorithm"]["name"]]
        self.scenario_overrides = {"partition_mapping": cfg["scenario"]["partition_mapping"]}

    def act(self, system, obs):
        import torch
        from ray.rllib.core.columns import Columns

        with torch.no_grad():
            out = self.module.forward_inference({Columns.OBS: torch.as_tensor(obs, dtype=torch.float32)[None]})
            dist = self.module.get_inference_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
            return dist.to_deterministic().sample()[0].cpu().numpy()


def load_policy(checkpoint, cfg: dict, name: str) -> TrainedLyMDOPolicy:
    return TrainedLyMDOPolicy(load_rl_module(checkpoint), cfg, name)
