"""Plot `splitrl compare --json` results taken at several values of one key against that key,
one line per policy and one panel per metric, and print the markdown table of the results docs.

    python docs/tools/plot_compare_points.py 5=users-5.json 10=users-10.json ... \\
        --xlabel "devices sharing 20 MHz" --metric accuracy --metric energy --budget 0.25 --out fig.png
"""

from __future__ import annotations

import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("points", nargs="+", metavar="X=FILE", help="a compare JSON taken at x = X")
    p.add_argument("--xlabel", default="x")
    p.add_argument("--metric", action="append", help="default: accuracy and energy")
    p.add_argument("--budget", type=float, help="a horizontal line on the energy panel [J]")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    metrics = a.metric or ["accuracy", "energy"]
    xs, data = [], {}
    for item in a.points:
        x, path = item.split("=", 1)
        xs.append(float(x))
        data[float(x)] = json.load(open(path))["policies"]
    xs.sort()
    policies = list(data[xs[0]])
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        for pol in policies:
            scale = 100.0 if m == "accuracy" else 1.0
            ax.plot(xs, [scale * data[x][pol][m] for x in xs], marker="o", label=pol)
        if m == "energy" and a.budget is not None:
            ax.axhline(a.budget, color="k", ls="--", lw=0.8, label=f"budget {a.budget:g} J")
        ax.set_xlabel(a.xlabel)
        ax.set_ylabel("accuracy [%] (misses count 0)" if m == "accuracy" else m)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print("| policy | " + " | ".join(f"{x:g}" for x in xs) + " |")
    print("|---" * (len(xs) + 1) + "|")
    for pol in policies:
        cells = [f"{100 * data[x][pol]['accuracy']:.1f} % / {data[x][pol]['energy']:.3f} J" for x in xs]
        print(f"| {pol} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
