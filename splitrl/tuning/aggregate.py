"""Sweep results: one row per trial and per (scenario point, baseline); a seed-averaged summary; figures.

``results.csv`` columns: ``kind`` (trial | baseline), ``policy`` (display name), the grid keys, the
search keys, ``seed``, ``status``, ``trial_id``, ``node_id``, the last training metrics
(``train/<metric>``) and the evaluation metrics (``eval/<metric>``, the comparison's units).
``summary.csv`` groups by policy, grid keys and search keys: mean and standard deviation over
seeds (``<metric>_mean``, ``<metric>_std``, ``n``).  Figures, one per plot metric, follow the
papers' style: the metric against the first grid key, one line per policy (mean +- std).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from splitrl import worlds
from splitrl.core.files import save_figure
from splitrl.tuning.spec import eval_metrics, fmt_value, train_metrics


def _labels(spec: dict) -> dict[str, tuple[str, float]]:
    """Axis label (with the display unit) and display scale of every evaluation metric."""
    return {m.key: (m.axis_label, m.scale) for m in worlds.get(spec["world"]).metrics}


def trial_row(spec: dict, config: dict, metrics: dict, status: str, trial_id: str) -> dict[str, Any]:
    world = worlds.get(spec["world"])
    point = spec["points"][config["point"]]
    name = world.policy_name({"algorithm": {"name": config["algorithm.name"]}, "scenario": point["config"]["scenario"]})
    row = {
        "kind": "trial",
        "policy": name,
        **point["values"],
        **{k: config.get(k) for k in spec["search"]},
        "seed": config["algorithm.seed"],
        "status": status,
        "trial_id": trial_id,
        "node_id": metrics.get("node_id", ""),
    }
    for key in train_metrics(world) + ("env_steps", "time_s", "iteration"):
        if key in metrics:
            row[f"train/{key}"] = metrics[key]
    for key in eval_metrics(world):
        row[f"eval/{key}"] = metrics.get(f"eval/{key}", float("nan"))
    if status == "FINISHED" and not any(k.startswith("eval/") for k in metrics):
        row["status"] = "STOPPED"  # stopped early by the scheduler (ASHA): no evaluation
    return row


def baseline_row(spec: dict, point_key: str, name: str, metrics: dict) -> dict[str, Any]:
    row = {
        "kind": "baseline",
        "policy": name,
        **spec["points"][point_key]["values"],
        **{k: "" for k in spec["search"]},
        "seed": "",
        "status": "FINISHED",
        "trial_id": "",
        "node_id": "",
    }
    for key in eval_metrics(worlds.get(spec["world"])):
        row[f"eval/{key}"] = metrics.get(key, float("nan"))
    return row


def write_csv(rows: list[dict], path: Path) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        for row in rows:
            w.writerow(row)
    tmp.replace(path)


def summarize(spec: dict, rows: list[dict]) -> list[dict]:
    """Mean and std over seeds of every evaluation metric, per policy, grid point and search values."""
    keys = ["policy", *spec["grid"], *spec["search"]]
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(str(row.get(k, "")) for k in keys), []).append(row)
    out = []
    for group in groups.values():
        s = {k: group[0].get(k, "") for k in keys}
        s["n"] = len(group)
        for metric in eval_metrics(worlds.get(spec["world"])):
            vals = np.array([float(r[f"eval/{metric}"]) for r in group], dtype=float)
            vals = vals[np.isfinite(vals)]
            s[f"{metric}_mean"] = float(vals.mean()) if vals.size else float("nan")
            s[f"{metric}_std"] = float(vals.std()) if vals.size else float("nan")
        out.append(s)
    return out


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def x_axis(values: list) -> tuple[Any, list[str] | None]:
    """``(position, ticks)`` for a grid key's values on a plot's x axis: numbers at their value
    (``ticks`` None), anything else (a model name, a partitioning, a coefficient schedule) at its
    index in the grid's order, labelled by ``ticks``."""
    if all(_is_number(v) for v in values):
        return float, None
    order = [str(v) for v in values]
    return (lambda v: float(order.index(str(v)))), [fmt_value(v) for v in values]


def log_x(values: list) -> bool:
    """Whether a grid key's values belong on a log axis: all positive numbers spanning at least
    two decades (e.g. Lyapunov V from 0.1 to 10,000)."""
    nums = [v for v in values if _is_number(v)]
    return len(nums) == len(values) > 2 and min(nums) > 0 and max(nums) / min(nums) >= 100


def _order(value) -> tuple:
    """Sort key of a grid value: numbers by value, before anything else by its text."""
    if _is_number(value):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def plot_sweep(spec: dict, summary: list[dict], out_dir: Path) -> list[Path]:
    """One PNG per plot metric: metric vs the first grid key, one line per policy (and per value of
    the other grid / search keys when they vary).  No grid: nothing to draw against; returns []."""
    if not spec["grid"]:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xkey, others = next(iter(spec["grid"])), [*list(spec["grid"])[1:], *spec["search"]]
    position, ticks = x_axis(spec["grid"][xkey])
    lines: dict[str, list[dict]] = {}
    for s in summary:
        label = s["policy"] + "".join(f", {k.split('.')[-1]}={s[k]}" for k in others)
        lines.setdefault(label, []).append(s)
    paths = []
    labels = _labels(spec)
    markers = "osD^vP*X<>"
    for metric in spec["plot_metrics"]:
        ylabel, scale = labels.get(metric, (metric, 1.0))
        fig, ax = plt.subplots(figsize=(6.0, 4.2), constrained_layout=True)
        for i, (label, pts) in enumerate(sorted(lines.items())):
            pts = sorted(pts, key=lambda s: position(s[xkey]))
            x = np.array([position(s[xkey]) for s in pts])
            y = np.array([s[f"{metric}_mean"] for s in pts]) * scale
            e = np.array([s[f"{metric}_std"] for s in pts]) * scale
            ax.errorbar(
                x, y, yerr=np.where(np.isfinite(e), e, 0.0), marker=markers[i % len(markers)], capsize=3, label=label
            )
        if ticks:
            ax.set_xticks(range(len(ticks)), ticks)
        elif log_x(spec["grid"][xkey]):
            ax.set_xscale("log")
        ax.set_xlabel(xkey)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title(f"{spec['name']}: {metric} vs {xkey.split('.')[-1]}")
        path = out_dir / f"fig_{metric}.png"
        save_figure(fig, path)
        paths.append(path)
    return paths


def format_summary(spec: dict, summary: list[dict]) -> str:
    keys = ["policy", *spec["grid"], *spec["search"]]
    metrics = spec["plot_metrics"]
    labels = _labels(spec)
    header = [k.split(".")[-1] for k in keys] + [labels.get(m, (m,))[0] for m in metrics] + ["n"]
    rows = [header]
    for s in sorted(summary, key=lambda s: tuple(_order(s[k]) for k in keys[1:]) + (s["policy"],)):
        cells = [fmt_value(s[k]) for k in keys]
        for m in metrics:
            scale = labels.get(m, (m, 1.0))[1]
            mean, std = s[f"{m}_mean"] * scale, s[f"{m}_std"] * scale
            cells.append("-" if math.isnan(mean) else (f"{mean:.4g}" + (f" ± {std:.2g}" if s["n"] > 1 else "")))
        cells.append(str(s["n"]))
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) if i < len(keys) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
