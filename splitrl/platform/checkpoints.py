"""The one checkpoint writer, and reading checkpoints back (their config, their trained policy).

A splitrl checkpoint is a directory holding ``algorithm/`` (RLlib's checkpoint of the whole
algorithm) and ``splitrl.json`` (the counters ``iteration``, ``env_steps``, ``time_s`` and the
resolved ``config``).  It is written into a temporary sibling and renamed into place, so a
directory named like a checkpoint is always complete.  A run directory keeps the last
:data:`KEEP_CHECKPOINTS` under ``checkpoints/iter_<n>/`` and names the newest in
``checkpoints/latest`` (replaced atomically).

``splitrl.json`` also lists every file of ``algorithm/`` with its size and SHA-256 (``files``),
and the files are synced to disk before the rename.  A checkpoint damaged afterwards (a
truncated copy, a flipped byte, a deleted file, a cut ``splitrl.json``) is found by
:func:`checkpoint_problem` before RLlib unpickles it: :func:`latest_checkpoint` names the damaged
file and falls back to the run's previous complete checkpoint, or fails with one line when
there is none.  Checkpoints written before the manifest are checked for their files only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable
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
    try:
        tmp.mkdir(parents=True)
        algo.save_to_path(str((tmp / "algorithm").resolve()))
        files = _manifest(tmp / "algorithm", sync=True)
        meta = tmp / "splitrl.json"
        from splitrl.platform.tracking import public_config  # no credential in a file MLflow may store

        meta.write_text(
            json.dumps({**state, "config": public_config(cfg), "files": files}, indent=1, default=str) + "\n"
        )
        _fsync(meta)
    except BaseException as exc:  # a full disk, an interruption: no half-written checkpoint stays behind
        shutil.rmtree(tmp, ignore_errors=True)
        fault = None if isinstance(exc, OSError) else _storage_fault(path.parent)
        if fault is not None:  # torch and pickle report a full disk as their own errors
            raise OSError(fault.errno, fault.strerror, str(path)) from exc
        raise
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)
    return path


def _storage_fault(folder: Path) -> OSError | None:
    """The storage fault (full, read-only) that writing 1 MiB into ``folder`` meets now, if any."""
    from splitrl.core.files import STORAGE_ERRNOS

    probe = folder / ".splitrl-space-probe"
    try:
        with open(probe, "wb") as f:
            f.write(b"\0" * 2**20)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        return exc if exc.errno in STORAGE_ERRNOS else None
    finally:
        probe.unlink(missing_ok=True)
    return None


def _digest(path: Path, sync: bool = False) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
        if sync:
            os.fsync(f.fileno())
    return h.hexdigest()


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _manifest(root: Path, sync: bool = False) -> dict[str, list]:
    """``{relative path: [size in bytes, sha256]}`` of every file under ``root``."""
    return {
        p.relative_to(root).as_posix(): [p.stat().st_size, _digest(p, sync)]
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


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


def checkpoint_problem(ckpt: str | Path) -> str | None:
    """What is wrong with checkpoint directory ``ckpt``, naming the file (``None``: complete)."""
    ckpt = Path(ckpt)
    meta = ckpt / "splitrl.json"
    try:
        saved = json.loads(meta.read_text())
        if not isinstance(saved, dict) or "config" not in saved or "iteration" not in saved:
            return f"{meta} lacks its counters or config"
    except FileNotFoundError:
        return f"{meta} is missing"
    except (OSError, ValueError) as exc:  # cut short, not UTF-8, not JSON
        return f"{meta} is not readable JSON ({type(exc).__name__})"
    algo = ckpt / "algorithm"
    if not algo.is_dir():
        return f"{algo} is missing"
    for rel, (size, sha) in (saved.get("files") or {}).items():
        f = algo / rel
        if not f.is_file():
            return f"{f} is missing"
        if f.stat().st_size != size:
            return f"{f} has {f.stat().st_size:,} bytes, {size:,} were written"
        if _digest(f) != sha:
            return f"{f} does not match the SHA-256 it was written with"
    return None


def _warn(msg: str) -> None:
    print(f"splitrl: warning: {msg}", file=sys.stderr, flush=True)


def latest_checkpoint(path: str | Path, warn: Callable[[str], None] = _warn) -> Path:
    """The newest complete checkpoint under a run directory (or ``path`` itself if it is a
    complete checkpoint).  A damaged newest checkpoint of a run directory is skipped for the
    previous complete one, with one ``warn`` line naming the damaged file; a damaged checkpoint
    asked for by its own path, or a run with no complete one, is a :class:`ConfigError`."""
    p = Path(path)
    if is_checkpoint(p) or (p / "splitrl.json").exists():
        problem = checkpoint_problem(p)
        if problem:
            older = _complete_checkpoints(p.parent, below=p.name) if p.name.startswith("iter_") else []
            hint = f"; the previous complete checkpoint is {older[0]}" if older else ""
            raise ConfigError(str(path), f"damaged checkpoint: {problem}{hint}")
        return p
    root = p / "checkpoints"
    named = None
    latest = root / "latest"
    if latest.is_file():
        try:
            named = latest.read_text().strip()
        except (OSError, ValueError):
            named = None
    candidates = [root / named] if named and (root / named).is_dir() else []
    candidates += [c for c in _checkpoint_dirs(root) if c not in candidates]
    skipped = []
    for ckpt in candidates:
        problem = checkpoint_problem(ckpt)
        if problem is None:
            if skipped:
                warn(f"{skipped[0]}; using the previous complete checkpoint {ckpt}")
            return ckpt
        skipped.append(f"damaged checkpoint: {problem}")
    if skipped:
        raise ConfigError(str(path), f"{skipped[0]}, and no earlier complete checkpoint is left")
    raise ConfigError(
        str(path),
        "no complete splitrl checkpoint found (expected a run directory with "
        "checkpoints/latest or a checkpoint directory with splitrl.json)",
    )


def _checkpoint_dirs(root: Path) -> list[Path]:
    """A run's ``iter_<n>`` checkpoint directories, newest first."""
    return sorted((c for c in root.glob("iter_*") if c.is_dir()), reverse=True) if root.is_dir() else []


def _complete_checkpoints(root: Path, below: str) -> list[Path]:
    return [c for c in _checkpoint_dirs(root) if c.name < below and checkpoint_problem(c) is None]


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
