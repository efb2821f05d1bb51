"""LyMDO: the exact allocators P3-P5 against cvxpy twins, and the simulator's slots/s.

Prints tables and writes benchmarks/out/lymdo.json.  Both sides of every ratio are timed in this
run on the same random instances (Table I magnitudes), so the ratios are robust to machine noise:

* ``closed_us``: one call for one instance (5 UEs); ``closed_batched_us``: per instance when 4096
  instances are solved in one vectorised call (the vector env's use); ``cvxpy_ms``: one solve of
  the cvxpy twin (Clarabel; the paper uses CVX for P5 every slot); ``speedup*``: the ratios.
* the simulator: slots/s of ``LyMDOVectorEnv`` with the exact allocators at B = 1, 16, 64, and of
  the single gym env, with random actions.

    python benchmarks/bench_lymdo.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from cvx_twins import cvx_bandwidth, cvx_edge_cpu_sqrt, cvx_ue_cpu  # noqa: E402

from splitrl.worlds.lymdo.allocators import allocate_bandwidth, allocate_edge_cpu_sqrt, allocate_ue_cpu  # noqa: E402
from splitrl.worlds.lymdo.env import LyMDOEnv, LyMDOVectorEnv  # noqa: E402

V, KAPPA, FMAX, W = 10.0, 1e-28, 1.5e9, 5e6


def _per_call(fn, n):
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - t0) / n


def allocators(n_inst: int = 100) -> dict:
    rng = np.random.default_rng(0)
    Q = rng.uniform(0, 200, (n_inst, 5))
    d = rng.uniform(10e6, 217e6, (n_inst, 5))
    lam = rng.uniform(0.5, 2.5, (n_inst, 5))
    w = 10 ** rng.uniform(6, 7.5, (n_inst, 5))
    s = 10 ** rng.uniform(1, 2.3, (n_inst, 5))
    big = 4096
    rep = lambda x: np.tile(x, (big // n_inst + 1, 1))[:big]  # noqa: E731
    cases = {
        "P3 UE CPU (5 UEs)": (
            lambda i: allocate_ue_cpu(Q[i], d[i], lam[i], V=V, kappa=KAPPA, f_max=FMAX),
            lambda: allocate_ue_cpu(rep(Q), rep(d), rep(lam), V=V, kappa=KAPPA, f_max=FMAX),
            lambda i: [cvx_ue_cpu(Q[i, n], d[i, n], lam[i, n], V=V, kappa=KAPPA, f_max=FMAX) for n in range(5)],
        ),
        "P4 edge CPU (5 UEs)": (
            lambda i: allocate_edge_cpu_sqrt(d[i], f_max=15e9),
            lambda: allocate_edge_cpu_sqrt(rep(d), f_max=15e9),
            lambda i: cvx_edge_cpu_sqrt(d[i], f_max=15e9),
        ),
        "P5 bandwidth (5 UEs)": (
            lambda i: allocate_bandwidth(w[i], s[i], bandwidth_hz=W),
            lambda: allocate_bandwidth(rep(w), rep(s), bandwidth_hz=W),
            lambda i: cvx_bandwidth(w[i], s[i], bandwidth_hz=W),
        ),
    }
    out = {}
    for name, (one, batched, ref) in cases.items():
        ref(0)  # build the problem once
        t_ref = _per_call(ref, n_inst)
        t_one = _per_call(one, n_inst)
        t0 = time.perf_counter()
        for _ in range(10):
            batched()
        t_batch = (time.perf_counter() - t0) / 10 / big
        out[name] = {
            "closed_us": t_one * 1e6,
            "closed_batched_us": t_batch * 1e6,
            "cvxpy_ms": t_ref * 1e3,
            "speedup": t_ref / t_one,
            "speedup_batched": t_ref / t_batch,
        }
    return out


def simulator(slots: int = 200) -> dict:
    out = {}
    env = LyMDOEnv({})
    env.reset(seed=0)
    env.action_space.seed(0)
    t0 = time.perf_counter()
    for _ in range(slots):
        env.step(env.action_space.sample())
    out["gym env (B = 1)"] = slots / (time.perf_counter() - t0)
    rng = np.random.default_rng(0)
    for B in (16, 64):
        vec = LyMDOVectorEnv({}, num_envs=B)
        vec.reset(seed=0)
        t0 = time.perf_counter()
        for _ in range(slots):
            vec.step(rng.integers(0, vec.single_action_space.nvec, (B, 5)))  # the categorical head's actions
        out[f"vector env, B = {B}"] = B * slots / (time.perf_counter() - t0)
    return out


def main():
    res = {"allocators": allocators(), "simulator_slots_per_s": simulator()}
    print(
        f"{'allocator':<22} {'closed [us]':>12} {'batched [us]':>13} {'cvxpy [ms]':>11} {'speed-up':>9} {'batched':>9}"
    )
    for name, r in res["allocators"].items():
        print(
            f"{name:<22} {r['closed_us']:>12.1f} {r['closed_batched_us']:>13.3f} {r['cvxpy_ms']:>11.2f} "
            f"{r['speedup']:>8.0f}x {r['speedup_batched']:>8.0f}x"
        )
    for name, v in res["simulator_slots_per_s"].items():
        print(f"{name:<22} {v:>12,.0f} slots/s")
    out = ROOT / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    (out / "lymdo.json").write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
