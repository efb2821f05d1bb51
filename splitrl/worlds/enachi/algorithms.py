"""RLlib algorithm of the ENACHI world and its trained policy.

* ``enachi-ppo`` (not in the paper; ENACHI is a non-learning scheme): RLlib PPO picks every
  device's split per frame (one categorical per device over the candidates); ENACHI's Stage I
  (bandwidth, reference power) and Stage II (tracking power, progressive transmission, early
  stopping) run inside the env runners.  What it can learn that the planner cannot: the planner
  optimises the surrogate at the full window and ignores early stopping; the learner sees the
  realised accuracy and energy.

Samples the batched :class:`~splitrl.worlds.enachi.env.ENACHIVectorEnv`.
"""

from __future__ import annotations

from splitrl.rl.callbacks import EpisodeMeans
from splitrl.rl.checkpoint import load_rl_module
from splitrl.rl.ppo import central_ppo_config
from splitrl.worlds.base import Policy
from splitrl.worlds.enachi.env import ENACHIEnv, ENACHIVectorEnv

#: per-episode means of these frame infos are logged as the metrics of the same name
EPISODE_METRICS = {
    "accuracy": "accuracy",
    "energy": "energy_j",
    "miss_rate": "miss",
    "fraction": "fraction",
    "energy_queue": "Q",
}


class ENACHIMetrics(EpisodeMeans):
    """Per-episode means of the frame infos (SI) under ``env_runners``."""

    metrics = EPISODE_METRICS


def env_config(cfg: dict) -> dict:
    return {**cfg["scenario"], "reward_scale": cfg["algorithm"]["reward_scale"]}


def build_algo_config(cfg: dict):
    alg = cfg["algorithm"]
    return central_ppo_config(
        cfg,
        env=ENACHIVectorEnv,
        env_config=env_config(cfg),
        probe=ENACHIEnv(env_config(cfg)),
        model_config={"hidden": alg["hidden"], "activation": alg["activation"], "init_log_std": 0.0},
        callbacks=ENACHIMetrics,
    )


class TrainedENACHIPolicy(Policy):
    """A trained agent acting deterministically (every categorical's mode), ENACHI's scheme."""

    scheme = "enachi"

    def __init__(self, module, cfg: dict, name: str):
        self.module = module
        self.name = name

    def act(self, system, obs):
        import torch
        from ray.rllib.core.columns import Columns

        with torch.no_grad():
            out = self.module.forward_inference({Columns.OBS: torch.as_tensor(obs, dtype=torch.float32)})
            dist = self.module.get_inference_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
            return dist.to_deterministic().sample().cpu().numpy().reshape(system.Q.shape)


def load_policy(checkpoint, cfg: dict, name: str) -> TrainedENACHIPolicy:
    return TrainedENACHIPolicy(load_rl_module(checkpoint), cfg, name)
