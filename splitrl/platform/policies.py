"""Trained agents as partition policies: an RLModule loaded from a splitrl checkpoint, acting greedily."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from splitrl.platform.algorithms import ACTION_MODES
from splitrl.platform.baselines import Policy
from splitrl.platform.config import ALGORITHM_NAMES, policy_name

MODULE_DIR = Path("algorithm") / "learner_group" / "learner" / "rl_module"
MODULE_SUBDIR = MODULE_DIR / "default_policy"


class TrainedPolicy(Policy):
    """Deterministic (mode / mean) action of a trained RLModule on the env of its action mode."""

    def __init__(self, module, algorithm: str, name: str | None = None):
        self.module = module
        self.algorithm = algorithm
        self.action_mode = ACTION_MODES[algorithm]
        self.name = name or ALGORITHM_NAMES[algorithm]

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


def checkpoint_config(ckpt: Path) -> dict:
    return json.loads((Path(ckpt) / "splitrl.json").read_text())["config"]


def load_trained_policy(path: str | Path, name: str | None = None) -> TrainedPolicy:
    """The policy in a splitrl checkpoint (a run directory or one of its checkpoints)."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    from splitrl.platform.train import latest_checkpoint

    ckpt = latest_checkpoint(path)
    cfg = checkpoint_config(ckpt)
    if cfg["scenario"].get("world") == "emh":
        from splitrl.platform.emh import MULTI_AGENT, TrainedEMHPolicy

        sub = MODULE_DIR if cfg["algorithm"]["name"] in MULTI_AGENT else MODULE_SUBDIR
        module = RLModule.from_checkpoint(str((ckpt / sub).resolve()))
        for m in (module.values() if hasattr(module, "values") else [module]):
            m.eval()
        return TrainedEMHPolicy(module, cfg, name or policy_name(cfg))
    module = RLModule.from_checkpoint(str((ckpt / MODULE_SUBDIR).resolve()))
    module.eval()
    return TrainedPolicy(module, cfg["algorithm"]["name"], name)
