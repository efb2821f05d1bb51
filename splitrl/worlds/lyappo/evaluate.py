"""Evaluation of partition policies on seeded LyaPPO episodes, and the paper-style figure of a comparison."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from splitrl.core.files import save_figure
from splitrl.worlds.base import Policy
from splitrl.worlds.lyappo.env import make_lyappo_env

STEP_KEYS = ("energy_local", "energy_tx", "backlog_local_s", "backlog_tx_s", "backlog_edge_s", "completed", "latency_s")


def physics_metrics(steps: list[dict], num_devices: int, period_seconds: float) -> dict:
    """Physics metrics of a run of env steps (their infos, :data:`STEP_KEYS` at least).

    ``energy*``: device energy per slot in J (mean over devices and slots); ``backlog*``: total
    backlog over all queues in seconds of work at full capacity (mean over slots);
    ``throughput``: finished tasks per second; ``latency``: mean task latency in s.
    """
    n = len(steps)
    tot = {k: sum(float(step[k]) for step in steps) for k in STEP_KEYS}
    out = {
        "energy_local": tot["energy_local"] / n / num_devices,
        "energy_tx": tot["energy_tx"] / n / num_devices,
        "backlog_local": tot["backlog_local_s"] / n,
        "backlog_tx": tot["backlog_tx_s"] / n,
        "backlog_edge": tot["backlog_edge_s"] / n,
    }
    out["energy"] = out["energy_local"] + out["energy_tx"]
    out["backlog"] = out["backlog_local"] + out["backlog_tx"] + out["backlog_edge"]
    out["throughput"] = tot["completed"] / (n * period_seconds)
    out["latency"] = tot["latency_s"] / tot["completed"] if tot["completed"] else float("nan")
    return out


def evaluate_policy(
    policy: Policy, scenario: dict, episodes: int, seed: int, episode_periods: int | None = None
) -> dict:
    """Average metrics of ``policy`` over ``episodes`` episodes seeded ``seed, seed+1, ...``.

    :func:`physics_metrics` over all steps, plus ``partition``: mean partition point as a
    fraction of each model's ``K`` (0 = edge, 1 = local), and ``reward``: mean episode return.
    """
    overrides = dict(scenario)
    if episode_periods is not None:
        overrides["episode_periods"] = episode_periods
    # Trained agents act in their own action mode (continuous / joint); baselines in partitions.
    overrides["action_mode"] = getattr(policy, "action_mode", "partition")
    env = make_lyappo_env(overrides)
    M = env.scenario.num_devices
    top = env.partition_nvec.reshape(M, -1) - 1
    steps, partition, returns = [], 0.0, []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        policy.reset(env, seed + i)
        ret, done = 0.0, False
        while not done:
            action = policy.act(env, obs)
            obs, reward, terminated, truncated, info = env.step(action)
            ret += reward
            done = terminated or truncated
            steps.append({k: info[k] for k in STEP_KEYS})
            partition += float(np.mean(info["partition"] / top))
        returns.append(ret)
    out = physics_metrics(steps, M, env.scenario.period_seconds)
    out["partition"] = partition / len(steps)
    out["reward"] = float(np.mean(returns))
    out["reward_std"] = float(np.std(returns))
    out["episodes"] = episodes
    return out


def plot(result: dict, path: str | Path) -> None:
    """Bar charts in the paper's style: energy split, backlog split, partition point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["policies"])
    pol = result["policies"]
    x = np.arange(len(names))
    fig, axes = plt.subplots(1, 3, figsize=(4.2 * 3, 4.0), constrained_layout=True)
    el = np.array([pol[n]["energy_local"] for n in names]) * 1e3
    et = np.array([pol[n]["energy_tx"] for n in names]) * 1e3
    axes[0].bar(x, el, label="local computing")
    axes[0].bar(x, et, bottom=el, label="transmission")
    axes[0].set_ylabel("average device energy [mJ / slot]")
    axes[0].set_title("(a) energy")
    bottom = np.zeros(len(names))
    for key, label in (("backlog_local", "local"), ("backlog_tx", "transmission"), ("backlog_edge", "edge")):
        v = np.array([pol[n][key] for n in names])
        axes[1].bar(x, v, bottom=bottom, label=label)
        bottom += v
    axes[1].set_ylabel("average backlog [s of work at full capacity]")
    axes[1].set_title("(b) queue backlog")
    axes[2].bar(x, [pol[n]["partition"] for n in names], color="tab:gray")
    axes[2].set_ylim(0, 1)
    axes[2].set_ylabel("mean partition point k/K (0 = edge, 1 = local)")
    axes[2].set_title("(c) partition point")
    for ax in axes:
        ax.set_xticks(x, names, rotation=30, ha="right")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend()
    axes[1].legend()
    ev = result.get("evaluation", {})
    fig.suptitle(f"{result.get('scenario', {}).get('name', '')}: {ev.get('episodes', '?')} seeded episodes")
    save_figure(fig, path)
