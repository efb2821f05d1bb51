"""Throughput of the LyaPPO simulator on one core: periods/s and slots/s.

Prints a table and writes benchmarks/out/env.json.  Measured for the gymnasium env (one system,
random actions, Table II scenario) and for the batched system (``B`` copies stepped together,
the form a vectorised env runner uses).  The 1-system env is the reference for the ratios.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from splitrl.worlds.lyappo.env import LyaPPOEnv, LyaPPOSystem

ROOT = Path(__file__).resolve().parent.parent


def main():
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    env = LyaPPOEnv()
    G = env.scenario.slots_per_period
    nv = env.action_space.nvec
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    periods = 600
    actions = rng.integers(0, nv, size=(periods, len(nv)))
    t0 = time.perf_counter()
    for a in actions:
        env.step(a)
    single = periods / (time.perf_counter() - t0)
    results = {"env (B=1)": {"periods_per_s": single, "slots_per_s": single * G, "ratio": 1.0}}
    for batch in (16, 64, 256):
        system = LyaPPOSystem(env.scenario, np.random.default_rng(1), batch=batch)
        reps = max(3, 3000 // batch)
        acts = rng.integers(0, nv, size=(reps, batch, len(nv))).reshape(reps, batch, *system.partition.shape[1:])
        t0 = time.perf_counter()
        for a in acts:
            system.run_period(a)
        rate = reps * batch / (time.perf_counter() - t0)
        results[f"batched system (B={batch})"] = {
            "periods_per_s": rate,
            "slots_per_s": rate * G,
            "ratio": rate / single,
        }
    print(f"{'simulator':<26} {'periods/s':>10} {'slots/s':>10} {'x env':>7}")
    for name, r in results.items():
        print(f"{name:<26} {r['periods_per_s']:>10.0f} {r['slots_per_s']:>10.0f} {r['ratio']:>7.1f}")
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "env.json").write_text(json.dumps({"scenario": env.scenario.name, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
