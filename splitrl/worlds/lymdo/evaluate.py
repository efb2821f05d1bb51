"""Evaluation of policies on seeded LyMDO episodes at every arrival rate of the evaluation (the
paper's Fig. 4 protocol: one trained agent, constant rates), and the figures of Figs. 4 and 5.

Per rate, over the seeded episodes: ``delay`` (mean over UEs and slots of the E2E delay, s; the
quantity the reward optimises, not weighted by the tasks), ``delay_task_weighted`` (``sum lam T /
sum lam``), ``energy`` (J per UE per slot), ``memory`` (bytes per UE), ``energy_queue`` and
``memory_queue`` (time means of Q and W over the UEs, in queue units), ``reward`` (mean episode
return, eq. 14), ``energy_vs_budget`` / ``memory_vs_budget`` (the largest time-average over its
budget of any UE, minus 1: <= 0 is within budget); per model type (``by_model``) and the
energy-queue trace of the first episode (Fig. 5).  The top-level figures are the means over the
rates.
"""

from __future__ import annotations

import numpy as np

from splitrl.core.files import save_figure
from splitrl.worlds.base import Policy

from .env import apply_action
from .scenario import make_lymdo_scenario
from .system import LyMDOSystem

METRICS = (
    "delay",
    "delay_task_weighted",
    "energy",
    "memory",
    "energy_queue",
    "memory_queue",
    "reward",
    "energy_vs_budget",
    "memory_vs_budget",
)


def run_episodes(
    policy: Policy, scenario: dict, rate: float, episodes: int, seed: int, slots: int | None = None
) -> dict:
    """The metrics of ``policy`` at the constant arrival ``rate`` over ``episodes`` seeded episodes
    of ``slots`` slots (default the scenario's)."""
    fixed = {"arrival_process": "constant", "arrival_rate_per_s": rate}
    if slots:
        fixed["slots_per_episode"] = slots
    sc = make_lymdo_scenario({**scenario, **policy.scenario_overrides, **fixed})
    models = np.array(sc.models)
    per_episode, traces = [], []
    for i in range(episodes):
        system = LyMDOSystem(sc, np.random.default_rng(seed + i))
        policy.reset(system, seed + i)
        rows = []
        for _ in range(sc.slots_per_episode):
            action = policy.act(system, system.observe()[0])
            if getattr(policy, "action_mode", "index") == "index":
                out = system.step(np.asarray(action, dtype=np.int64)[None])
            else:
                out = apply_action(system, action, policy.action_mode)
            rows.append(
                {k: out[k][0] for k in ("delay_s", "energy_j", "memory_bytes", "Q", "W", "arrival_rate_per_s")}
                | {"reward": out["reward"][0]}
            )
        stack = {k: np.stack([r[k] for r in rows]) for k in rows[0]}  # (K, N) per UE, (K,) reward
        mean_e, mean_c = stack["energy_j"].mean(0), stack["memory_bytes"].mean(0)
        per_episode.append(
            {
                "delay": stack["delay_s"].mean(),
                "delay_task_weighted": (stack["arrival_rate_per_s"] * stack["delay_s"]).sum()
                / stack["arrival_rate_per_s"].sum(),
                "energy": stack["energy_j"].mean(),
                "memory": stack["memory_bytes"].mean(),
                "energy_queue": stack["Q"].mean(),
                "memory_queue": stack["W"].mean(),
                "reward": stack["reward"].sum(),
                "energy_vs_budget": float(np.max(mean_e / system.energy_budget) - 1.0),
                "memory_vs_budget": float(np.max(mean_c / system.memory_budget) - 1.0),
                "by_model": {
                    m: {
                        "energy": float(stack["energy_j"][:, models == m].mean()),
                        "memory": float(stack["memory_bytes"][:, models == m].mean()),
                        "energy_queue": float(stack["Q"][:, models == m].mean()),
                        "energy_queue_peak": float(stack["Q"][:, models == m].mean(1).max()),
                    }
                    for m in dict.fromkeys(sc.models)
                },
            }
        )
        if i == 0:
            traces = {m: stack["Q"][:, models == m].mean(1).tolist() for m in dict.fromkeys(sc.models)}
    out = {k: float(np.mean([e[k] for e in per_episode])) for k in METRICS}
    out["reward_std"] = float(np.std([e["reward"] for e in per_episode]))
    out["by_model"] = {
        m: {k: float(np.mean([e["by_model"][m][k] for e in per_episode])) for k in per_episode[0]["by_model"][m]}
        for m in per_episode[0]["by_model"]
    }
    out["energy_queue_trace"] = traces
    return out


def evaluate_policy(policy: Policy, scenario: dict, evaluation: dict) -> dict:
    """Every metric at every rate of ``evaluation["arrival_rates"]`` (``by_rate``) and their
    means over the rates at the top level."""
    by_rate = {
        f"{r:g}": run_episodes(
            policy,
            scenario,
            float(r),
            evaluation["episodes"],
            evaluation["seed"],
            evaluation.get("slots_per_episode"),
        )
        for r in evaluation["arrival_rates"]
    }
    out = {k: float(np.mean([m[k] for m in by_rate.values()])) for k in METRICS}
    out["episodes"] = evaluation["episodes"]
    out["by_rate"] = by_rate
    return out


def plot(comparison: dict, path) -> None:
    """Fig. 4 (a)-(d) against the arrival rate, and Fig. 5 (the energy queue per slot at the
    largest rate, per model type, first episode)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pol = comparison["policies"]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8), constrained_layout=True)
    panels = (
        ("delay", "(a) average E2E delay [s]", 1.0),
        ("energy", "(b) energy per UE per slot [mJ]", 1e3),
        ("memory", "(c) memory cost per UE [MB]", 1e-6),
        ("energy_queue", "(d) energy queue Q", 1.0),
    )
    for ax, (key, title, scale) in zip(axes.flat[:4], panels):
        for name, m in pol.items():
            rates = sorted(m["by_rate"], key=float)
            ax.plot([float(r) for r in rates], [m["by_rate"][r][key] * scale for r in rates], marker="o", label=name)
        ax.set_title(title)
        ax.set_xlabel("arrival rate [tasks/s]")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    for ax, idx in zip(axes.flat[4:], (0, 1)):
        for name, m in pol.items():
            top = max(m["by_rate"], key=float)
            traces = m["by_rate"][top]["energy_queue_trace"]
            if idx < len(traces):
                model = list(traces)[idx]
                ax.plot(traces[model], label=name)
                ax.set_title(f"energy queue per slot, {model} UEs, {top} tasks/s")
        ax.set_xlabel("slot")
        ax.grid(alpha=0.3)
    axes.flat[4].legend(fontsize=8)
    ev = comparison.get("evaluation", {})
    slots = ev.get("slots_per_episode") or comparison.get("scenario", {}).get("slots_per_episode", "?")
    fig.suptitle(
        f"{comparison.get('scenario', {}).get('name', '')}: {ev.get('episodes', '?')} seeded episodes "
        f"of {slots} slots per rate"
    )
    save_figure(fig, path)
