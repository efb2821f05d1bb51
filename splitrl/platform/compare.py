"""Comparisons: run policies on a world's seeded evaluation episodes; the table, JSON and figure.

Everything shown is derived from the world's metric table (:class:`~splitrl.worlds.base.Metric`):
the JSON holds SI values, the table and progress lines the display units.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from splitrl import worlds
from splitrl.core.files import atomic_write_text


def compare(policies: Iterable, cfg: dict, progress: Callable[[str], None] | None = None) -> dict:
    """``{"policies": {name: metrics}, "scenario": ..., "evaluation": ...}`` on common seeded episodes."""
    from splitrl.platform.config import set_torch_threads

    world = worlds.of(cfg)
    set_torch_threads(cfg)
    sc, ev = cfg["scenario"], cfg["evaluation"]
    results = {}
    for policy in policies:
        t0 = time.perf_counter()
        m = world.evaluate(policy, sc, ev)
        m["wall_s"] = time.perf_counter() - t0
        results[policy.name] = m
        if progress:
            progress(f"{policy.name}: {world.progress_text(m)} ({m['wall_s']:.1f} s)")
    results = world.summarize(results, sc, ev)
    return {"policies": results, "scenario": sc, "evaluation": {k: ev.get(k) for k in world.evaluation_record_keys}}


def format_table(result: dict, world) -> str:
    """The comparison as a text table: one row per policy, a column per table metric."""
    shown = [m for m in world.metrics if m.table]
    rows = [["policy"] + [m.heading for m in shown]]
    for name, values in result["policies"].items():
        rows.append([name] + [m.show(values.get(m.key)) for m in shown])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def write_json(result: dict, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(result, indent=2, default=float) + "\n")
