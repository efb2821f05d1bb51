"""RLModules out of a splitrl checkpoint (``<checkpoint>/algorithm`` is RLlib's own checkpoint)."""

from __future__ import annotations

from pathlib import Path

#: Where RLlib keeps the learner's (multi-)RLModule inside an algorithm checkpoint.
MODULE_DIR = Path("algorithm") / "learner_group" / "learner" / "rl_module"


def load_rl_module(checkpoint: str | Path, module_id: str | None = "default_policy"):
    """The RLModule ``module_id`` of a splitrl checkpoint (``None``: the whole MultiRLModule),
    in eval mode."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    path = Path(checkpoint) / MODULE_DIR
    if module_id is not None:
        path = path / module_id
    module = RLModule.from_checkpoint(str(path.resolve()))
    for m in module.values() if hasattr(module, "values") else [module]:
        m.eval()
    return module
