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

from splitrl.rl.callbacks import EpisodeMeans
from splitrl.rl.checkpoint import load_rl_module
from splitrl.rl.ppo import central_ppo_config
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


class LyMDOMetrics(EpisodeMeans):
    """Per-episode means of the slot infos (SI) under ``env_runners``."""

    metrics = EPISODE_METRICS


def env_config(cfg: dict) -> dict:
    return {
        **cfg["scenario"],
        "action_mode": ACTION_MODES[cfg["algorithm"]["name"]],
        "reward_scale": cfg["algorithm"]["reward_scale"],
    }


def build_algo_config(cfg: dict):
    alg = cfg["algorithm"]
    return central_ppo_config(
        cfg,
        env=LyMDOVectorEnv,
        env_config=env_config(cfg),
        probe=LyMDOEnv(env_config(cfg)),
        model_config={"hidden": alg["hidden"], "activation": alg["activation"], "init_log_std": alg["init_log_std"]},
        callbacks=LyMDOMetrics,
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
