"""Evaluation of policies on seeded ENACHI episodes, and the comparison figure.

The ``episodes`` seeded episodes run as one batched system (seed ``evaluation.seed``), each of
``evaluation.frames`` frames (default the scenario's).  Reported (means over frames, devices and
episodes; SI): ``accuracy`` (fraction of tasks correct, misses count 0), ``energy`` (J per device
per frame) and its ``energy_local`` / ``energy_tx`` parts, ``energy_vs_budget`` (the largest
device's time-average energy over its budget, minus 1; <= 0 is within), ``miss_rate`` (tasks cut
at the deadline), ``fraction`` (of the maps sent), ``energy_queue`` (time mean of Q, J),
``reward`` (mean episode return); ``accuracy_trace`` and ``energy_trace`` per frame.
"""

from __future__ import annotations

import numpy as np

from splitrl.core.files import save_figure
from splitrl.worlds.base import Policy

from .env import observe
from .scenario import make_enachi_scenario
from .system import ENACHISystem

METRICS = (
    "accuracy",
    "energy",
    "energy_local",
    "energy_tx",
    "energy_vs_budget",
    "miss_rate",
    "fraction",
    "energy_queue",
    "reward",
)


def evaluate_policy(policy: Policy, scenario: dict, evaluation: dict) -> dict:
    sc = make_enachi_scenario({**scenario, **getattr(policy, "scenario_overrides", {})})
    frames = evaluation.get("frames") or sc.episode_frames
    episodes = evaluation["episodes"]
    system = ENACHISystem(sc, np.random.default_rng(evaluation["seed"]), batch=episodes)
    policy.reset(system, evaluation["seed"])
    rows = []
    for _ in range(frames):
        split = policy.act(system, observe(system))
        out = system.step(
            split, scheme=getattr(policy, "scheme", "enachi"), allocation=_allocation(policy, system, split)
        )
        if hasattr(policy, "observe"):
            policy.observe(system, out)
        rows.append(out)
    stack = {
        k: np.stack([r[k] for r in rows])
        for k in ("correct", "energy_j", "energy_local_j", "energy_tx_j", "miss", "fraction", "Q", "reward", "accuracy")
    }
    mean_e = stack["energy_j"].mean(0)  # (B, N)
    return {
        "accuracy": float(stack["correct"].mean()),
        "energy": float(stack["energy_j"].mean()),
        "energy_local": float(stack["energy_local_j"].mean()),
        "energy_tx": float(stack["energy_tx_j"].mean()),
        "energy_vs_budget": float(np.mean(mean_e.max(-1) / sc.energy_budget_j - 1.0)),
        "miss_rate": float(stack["miss"].mean()),
        "fraction": float(stack["fraction"].mean()),
        "energy_queue": float(stack["Q"].mean()),
        "reward": float(stack["reward"].sum(0).mean()),
        "reward_std": float(stack["reward"].sum(0).std()),
        "episodes": episodes,
        "frames": frames,
        "accuracy_trace": stack["accuracy"].mean(1).tolist(),
        "energy_trace": stack["energy_j"].mean((1, 2)).tolist(),
    }


def _allocation(policy, system, split):
    fn = getattr(policy, "allocation", None)
    return fn(system, split) if fn is not None else None


def plot(comparison: dict, path) -> None:
    """Accuracy and energy per policy (bars, the budget marked) and their traces per frame."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pol = comparison["policies"]
    names = list(pol)
    budget = comparison.get("scenario", {}).get("energy_budget_j")
    fig, axes = plt.subplots(2, 2, figsize=(14, 8), constrained_layout=True)
    axes[0, 0].bar(names, [pol[n]["accuracy"] for n in names])
    axes[0, 0].set_title("accuracy (fraction of tasks correct)")
    axes[0, 1].bar(names, [pol[n]["energy"] for n in names])
    if budget:
        axes[0, 1].axhline(budget, color="k", ls="--", lw=1, label="budget")
        axes[0, 1].legend()
    axes[0, 1].set_title("energy per device per frame [J]")
    for ax in axes[0]:
        ax.tick_params(axis="x", rotation=45)
    for name in names:
        if "accuracy_trace" in pol[name]:
            axes[1, 0].plot(pol[name]["accuracy_trace"], label=name, lw=1)
            axes[1, 1].plot(pol[name]["energy_trace"], label=name, lw=1)
    axes[1, 0].set_title("accuracy per frame (mean over episodes)")
    axes[1, 1].set_title("energy per frame [J]")
    for ax in axes[1]:
        ax.set_xlabel("frame")
        ax.grid(alpha=0.3)
    axes[1, 0].legend(fontsize=7)
    ev = comparison.get("evaluation", {})
    fig.suptitle(f"{comparison.get('scenario', {}).get('name', '')}: {ev.get('episodes', '?')} seeded episodes")
    save_figure(fig, path)
