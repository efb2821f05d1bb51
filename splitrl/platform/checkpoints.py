"""The one checkpoint writer, and reading checkpoints back (their config, their trained policy).

A splitrl checkpoint is a directory holding ``algorithm/`` (RLlib's checkpoint of the whole
algorithm) and ``splitrl.json`` (the counters ``iteration``, ``env_steps``, ``time_s`` and the
resolved ``config``).  It is written into a temporary sibling and renamed into place, so a
directory named like a checkpoint is always complete.  A run directory keeps the last
:data:`KEEP_CHECKPOINTS` under ``checkpoints/iter_<n>/`` and names the newest in
``checkpoints/latest`` (replaced atomically).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from splitrl import worlds
from splitrl.core.errors import ConfigError
from splitrl.core.files import atomic_write_text

KEEP_CHECKPOINTS = 3


def write_checkpoint(algo, path: Path, state: dict, cfg: dict) -> Path:
    """Write ``algo`` with ``state`` and ``cfg`` as the checkpoint directory ``path`` (atomically)."""
    path = Path(path)
    tmp = path.parent / f".tmp-{path.name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    algo.save_to_path(str((tmp / "algorithm").resolve()))
    (tmp / "splitrl.json").write_text(json.dumps({**state, "config": cfg}, indent=1, default=str) + "\n")
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)
    return path


def save_checkpoint(algo, run_dir: Path, state: dict, cfg: dict) -> Path:
    """A run directory's next checkpoint ``checkpoints/iter_<n>``; updates ``latest``, prunes old ones."""
    root = Path(run_dir) / "checkpoints"
    name = f"iter_{state['iteration']:06d}"
    final = write_checkpoint(algo, root / name, state, cfg)
    atomic_write_text(root / "latest", name + "\n")
    for old in sorted(p for p in root.glob("iter_*") if p.is_dir())[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def is_checkpoint(path: Path) -> bool:
    return (Path(path) / "splitrl.json").is_file() and (Path(path) / "algorithm").is_dir()


def latest_checkpoint(path: str | Path) -> Path:
    """The newest complete checkpoint under a run directory (or ``path`` itself if it is one)."""
    p = Path(path)
    if is_checkpoint(p):
        return p
    latest = p / "checkpoints" / "latest"
    if latest.is_file():
        ckpt = p / "checkpoints" / latest.read_text().strip()
        if (ckpt / "splitrl.json").is_file():
            return ckpt
    raise ConfigError(
        str(path),
        "no complete splitrl checkpoint found (expected a run directory with "
        "checkpoints/latest or a checkpoint directory with splitrl.json)",
    )


def checkpoint_state(ckpt: str | Path) -> dict:
    """``splitrl.json`` of a checkpoint, its config in today's schema (:meth:`BaseWorld.upgrade_config`)."""
    saved = json.loads((Path(ckpt) / "splitrl.json").read_text())
    saved["config"] = worlds.of(saved["config"]).upgrade_config(saved["config"], saved=True)
    return saved


def checkpoint_config(ckpt: str | Path) -> dict:
    return checkpoint_state(ckpt)["config"]


def load_policy(path: str | Path, name: str | None = None):
    """The trained policy in a splitrl checkpoint (a run directory or one of its checkpoints)."""
    ckpt = latest_checkpoint(path)
    cfg = checkpoint_config(ckpt)
    return worlds.of(cfg).load_policy(ckpt, cfg, name)
