"""Small file helpers shared by the platform and the worlds: atomic text files, figures."""

from __future__ import annotations

from pathlib import Path


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a sibling ``<name>.tmp`` and a rename, so a reader (or a
    run killed mid-write) sees the old file or the new one, never half of it."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Save a matplotlib figure as ``path`` (its folder created) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


#: free space an output directory needs before a job starts (checkpoints, metrics, figures)
MIN_FREE_BYTES = 100 * 2**20

#: ``errno`` values of a storage fault (full disk or quota, read-only file system, no permission)
STORAGE_ERRNOS = frozenset({28, 30, 122, 13, 1})  # ENOSPC, EROFS, EDQUOT, EACCES, EPERM


def check_writable(path: str | Path, key: str, min_free_bytes: int = MIN_FREE_BYTES) -> None:
    """Before a job writes anything: :class:`~splitrl.core.errors.ConfigError` naming ``key`` and
    the path when ``path`` (or the nearest folder above it that exists, where it would be
    created) cannot be written or has less than ``min_free_bytes`` free.  Probes by creating and
    removing a file there, so a read-only mount and a missing permission are both found."""
    import os
    import shutil
    import tempfile

    from splitrl.core.errors import ConfigError

    target = Path(path).absolute()
    base = target
    while not base.exists():
        base = base.parent
    if not base.is_dir():
        raise ConfigError(key, f"{base} is a file, not a folder (the output would go under it)")
    try:
        fd, probe = tempfile.mkstemp(prefix=".splitrl-probe-", dir=base)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(key, f"cannot write in {base} ({exc.strerror}); pick a writable folder") from None
    free = shutil.disk_usage(base).free
    if free < min_free_bytes:
        raise ConfigError(
            key,
            f"{base} has {free / 2**20:.1f} MiB free; a run needs at least {min_free_bytes / 2**20:.0f} MiB "
            "(checkpoints, metrics); free space or pick another folder",
        )


def storage_error(exc: OSError, what: str):
    """A full or read-only disk met mid-run as one :class:`ConfigError` line naming the path, or
    ``None`` when ``exc`` is not a storage fault."""
    from splitrl.core.errors import ConfigError

    if exc.errno not in STORAGE_ERRNOS:
        return None
    return ConfigError(str(exc.filename or what), f"{exc.strerror} while writing {what}")
