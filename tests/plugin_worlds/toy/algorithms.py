"""The toy world's one algorithm: RLlib PPO with the shared central actor-critic module."""

from __future__ import annotations

import numpy as np
from ray.rllib.callbacks.callbacks import RLlibCallback

from plugin_worlds.toy.env import ToyEnv
from splitrl.rl.checkpoint import load_rl_module
from splitrl.rl.ppo import ppo_training
from splitrl.worlds.base import Policy


class ToyMetrics(RLlibCallback):
    def on_episode_end(self, *, episode, metrics_logger=None, **kwargs):
        infos = [i for i in episode.get_infos() if isinstance(i, dict) and "latency_s" in i]
        if infos and metrics_logger is not None:
            metrics_logger.log_value("latency", float(np.mean([i["latency_s"] for i in infos])), reduce="mean")
            metrics_logger.log_value("offload", float(np.mean([i["offload"] for i in infos])), reduce="mean")


def build(cfg: dict):
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from splitrl.rl.central import CentralPPOModule

    alg, res = cfg["algorithm"], cfg["resources"]
    env = ToyEnv(cfg["scenario"])
    return (
        PPOConfig()
        .environment(env=ToyEnv, env_config={**cfg["scenario"], "reward_scale": alg["reward_scale"]})
        .env_runners(num_env_runners=res["num_env_runners"], num_envs_per_env_runner=res["num_envs_per_env_runner"])
        .learners(num_learners=0)
        .rl_module(
            rl_module_spec=RLModuleSpec(
                module_class=CentralPPOModule,
                observation_space=env.observation_space,
                action_space=env.action_space,
                model_config={"hidden": alg["hidden"], "activation": alg["activation"]},
            )
        )
        .callbacks(ToyMetrics)
        .debugging(seed=alg["seed"], log_level="ERROR")
        .training(**ppo_training(alg))
    )


class TrainedToyPolicy(Policy):
    def __init__(self, module, name):
        self.module, self.name = module, name

    def act(self, env, obs):
        import torch
        from ray.rllib.core.columns import Columns

        with torch.no_grad():
            out = self.module.forward_inference({Columns.OBS: torch.as_tensor(obs)[None]})
            dist = self.module.get_inference_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
            return dist.to_deterministic().sample()[0].numpy()


def load_policy(checkpoint, cfg, name):
    return TrainedToyPolicy(load_rl_module(checkpoint), name)
