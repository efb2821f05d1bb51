"""Small file helpers shared by the runners and the sweeps."""

from __future__ import annotations

from pathlib import Path


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a sibling ``<name>.tmp`` and a rename, so a reader (or a
    run killed mid-write) sees the old file or the new one, never half of it."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
