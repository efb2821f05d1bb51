"""Throughput of the EMH-PPO world on one core: decision periods/s for N = 1, 6, 25, 100 devices.

Prints a table and writes benchmarks/out/emh.json.  Servers and channels scale with the devices
in Table III's ratio (M = C = max(1, round(2N / 3))); ResNet-50, operator-grained points, random
flat actions decoded as an agent's would be.  For each N: task-aware windows (``mdp: task``) and
time-based 50 ms slots (``mdp: time``) through the RLlib ``MultiAgentEnv`` (dict in, dicts out),
and the bare world (``EMHSystem``).  Ratios are against N = 1 of the same kind in the same run,
and ``per device`` normalises by N (how the vectorised physics scales).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from splitrl.worlds.emh.actions import decode_actions
from splitrl.worlds.emh.env import EMHMultiAgentEnv
from splitrl.worlds.emh.scenario import make_emh_scenario
from splitrl.worlds.emh.system import EMHSystem

ROOT = Path(__file__).resolve().parent.parent


def _scenario(N: int, mdp: str) -> dict:
    k = max(1, round(2 * N / 3))
    return {
        "num_devices": N,
        "num_servers": k,
        "num_channels": k,
        "mdp": mdp,
        "l0_s": 0.1,
        "fixed_tasks": 10_000,
    }  # long episodes: no resets inside the timed loop


def bench_env(N: int, mdp: str, steps: int) -> float:
    env = EMHMultiAgentEnv(_scenario(N, mdp))
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    dim = env.action_spaces["md_0"].shape[0]
    acts = rng.normal(0, 2, (steps, N, dim)).astype(np.float32)
    ids = env.possible_agents
    t0 = time.perf_counter()
    for a in acts:
        env.step(dict(zip(ids, a)))
    return steps / (time.perf_counter() - t0)


def bench_world(N: int, mdp: str, steps: int) -> float:
    world = EMHSystem(make_emh_scenario(_scenario(N, mdp)))
    rng = np.random.default_rng(0)
    world.reset(rng)
    dim = len(EMHMultiAgentEnv(_scenario(1, mdp)).action_spaces["md_0"].low)
    decs = [decode_actions(world, rng.normal(0, 2, (N, dim))) for _ in range(steps)]
    t0 = time.perf_counter()
    for d in decs:
        if mdp == "time":
            world.step_slot(d["point"], d["channel"], d["server"], d["power"])
        else:
            world.step_window(d["window"], d["point"], d["channel"], d["server"], d["power"])
    return steps / (time.perf_counter() - t0)


def main():
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    results = {}
    for mdp in ("task", "time"):
        for kind, fn in (("MultiAgentEnv", bench_env), ("world", bench_world)):
            ref = None
            for N in (1, 6, 25, 100):
                rate = fn(N, mdp, 1500 if N < 100 else 400)
                ref = ref or rate
                results[f"{mdp}/{kind}/N={N}"] = {
                    "mdp": mdp,
                    "kind": kind,
                    "devices": N,
                    "periods_per_s": rate,
                    "device_decisions_per_s": rate * N,
                    "ratio_vs_N1": rate / ref,
                }
    print(f"{'mdp':<5} {'interface':<14} {'N':>4} {'periods/s':>10} {'device-periods/s':>17} {'x N=1':>7}")
    for r in results.values():
        print(
            f"{r['mdp']:<5} {r['kind']:<14} {r['devices']:>4} {r['periods_per_s']:>10.0f} "
            f"{r['device_decisions_per_s']:>17.0f} {r['ratio_vs_N1']:>7.2f}"
        )
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "emh.json").write_text(json.dumps({"model": "resnet50", "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
