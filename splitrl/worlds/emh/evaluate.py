"""Evaluation of policies on the seeded EMH-PPO test episodes, the change against Local-only, and
the paper's Fig. 6-style figure.

Metrics (SI): ``latency`` -- total inference latency of an episode in s (sum over windows of the
slowest device's time, the paper's "total inference latency"), ``energy`` -- device energy per
task in J, ``reward`` -- episode return (eq. 8 summed), ``waiting`` -- device idle time per task
in s, ``device_share`` -- share of the MACs run on devices; all averaged over the seeded
evaluation episodes, which fix every device's tasks and distance (``evaluation.fixed_tasks`` /
``fixed_distance_m``, the paper's test setting).
"""

from __future__ import annotations

import numpy as np

from splitrl.core.files import save_figure
from splitrl.worlds.base import Policy
from splitrl.worlds.emh.env import step_system
from splitrl.worlds.emh.scenario import make_emh_scenario
from splitrl.worlds.emh.system import EMHSystem


def episode_metrics(totals: dict) -> dict:
    """Metrics of one episode from its totals (the last step info's ``"episode"``)."""
    tasks = totals["tasks"]
    return {
        "latency": totals["time_s"],
        "energy": totals["energy_j"] / max(tasks, 1),
        "waiting": totals["idle_s"] / max(tasks, 1),
        "return": totals["reward"],
        "device_share": totals["device_macs_share"] / max(tasks, 1),
        "tasks": tasks,
    }


def evaluate_emh_policy(policy: Policy, scenario: dict, evaluation: dict) -> dict:
    """Average metrics of ``policy`` over the seeded evaluation episodes (seeds ``seed + i``)."""
    sc = {
        **scenario,
        **policy.scenario_overrides,
        "fixed_tasks": evaluation["fixed_tasks"],
        "fixed_distance_m": evaluation["fixed_distance_m"],
    }
    world = EMHSystem(make_emh_scenario(sc))
    per_episode = []
    for i in range(evaluation["episodes"]):
        seed = evaluation["seed"] + i
        world.reset(np.random.default_rng(seed))
        policy.reset(world, seed)
        info = {}
        while not world.done and world.steps < world.scenario.max_steps:
            info = step_system(world, policy.act(world, world.observation()))
        per_episode.append(episode_metrics(info["episode"]))
        per_episode[-1]["steps"] = world.steps
    out = {k: float(np.mean([m[k] for m in per_episode])) for k in per_episode[0]}
    out["reward"] = out.pop("return")
    for key, src in (("reward", "return"), ("latency", "latency"), ("energy", "energy")):
        out[f"{key}_std"] = float(np.std([m[src] for m in per_episode]))  # spread over episodes
    out["episodes"] = evaluation["episodes"]
    return out


def summarize(results: dict[str, dict], scenario: dict, evaluation: dict) -> dict[str, dict]:
    """Adds ``latency_vs_local`` and ``energy_vs_local`` (relative change against Local-only, which
    is evaluated here when the comparison does not hold it)."""
    from splitrl.worlds.emh.baselines import LocalOnly

    local = results.get("Local-only") or evaluate_emh_policy(LocalOnly(), scenario, evaluation)
    for m in results.values():
        m["latency_vs_local"] = m["latency"] / local["latency"] - 1.0
        m["energy_vs_local"] = m["energy"] / local["energy"] - 1.0
    return results


def plot_emh(result: dict, path) -> None:
    """Bar charts in the shape of the paper's Fig. 6: reward, total latency, energy, waiting."""

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["policies"])
    pol = result["policies"]
    x = np.arange(len(names))
    fig, axes = plt.subplots(1, 4, figsize=(4.0 * 4, 4.0), constrained_layout=True)
    for ax, (key, label, scale) in zip(
        axes,
        (
            ("reward", "(a) average reward", 1.0),
            ("latency", "(b) total inference latency [s]", 1.0),
            ("energy", "(c) energy per task [mJ]", 1e3),
            ("waiting", "(d) waiting per task [ms]", 1e3),
        ),
    ):
        ax.bar(x, [pol[n][key] * scale for n in names], color="tab:blue")
        ax.set_title(label)
        ax.set_xticks(x, names, rotation=30, ha="right")
        ax.grid(axis="y", alpha=0.3)
    ev = result.get("evaluation", {})
    fig.suptitle(
        f"{result.get('scenario', {}).get('name', '')}: {ev.get('episodes', '?')} seeded episodes, "
        f"{ev.get('fixed_tasks', '?')} tasks per device"
    )
    save_figure(fig, path)
