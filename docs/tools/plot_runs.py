#!/usr/bin/env python3
"""Training curves of run directories: a metric of ``metrics.jsonl`` against env steps, one line per run.

    .venv/bin/python docs/tools/plot_runs.py RUN_DIR [RUN_DIR ...] --metric episode_return_mean \\
        [--per-episode 200] [--label NAME ...] --out curves.png

``--per-episode K`` puts episodes (env steps / K) on the x axis, as the papers' convergence figures
do.  Any world: the metric names are the world's training metrics (``splitrl config --explain``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--metric", default="episode_return_mean")
    p.add_argument("--per-episode", type=int, default=None, help="env steps per episode (x axis in episodes)")
    p.add_argument("--label", action="append", help="a legend label per run (default: the directory name)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), constrained_layout=True)
    labels = args.label or [r.name for r in args.runs]
    for run, label in zip(args.runs, labels):
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        pts = [(r["env_steps"], r[args.metric]) for r in rows if args.metric in r]
        x = [s / args.per_episode if args.per_episode else s for s, _ in pts]
        ax.plot(x, [v for _, v in pts], label=label)
    ax.set_xlabel("episodes" if args.per_episode else "env steps")
    ax.set_ylabel(args.metric)
    ax.grid(alpha=0.3)
    ax.legend()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
