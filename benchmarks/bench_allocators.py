"""Speed of the closed-form allocators against a parametrised cvxpy solve of the same problem.

Prints a table and writes benchmarks/out/allocators.json.  Both sides are timed in this run on the
same random instances (Table II magnitudes), so the speed-up ratios are robust to machine noise:
* ``closed_us``: one closed-form call for one instance (the env's per-slot use),
* ``closed_batched_us``: per-instance cost when 4096 instances are solved in one vectorised call,
* ``cvxpy_ms``: one solve of a DPP-parametrised cvxpy problem built once (Clarabel), i.e. the
  cheapest way to "use CVX each slot" as the paper does.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from cvx_twins import SOLVER_OPTS, cvx_edge_cpu, cvx_local_cpu, cvx_transmission  # noqa: E402

from splitrl.worlds.lyappo.allocators import allocate_edge_cpu, allocate_local_cpu, allocate_transmission  # noqa: E402

TAU, KAPPA, B, N0 = 0.01, 1e-28, 2.5e5, 3.98e-21


def _time(fn, n):
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - t0) / n


def main():
    rng = np.random.default_rng(0)
    n_inst = 300
    results = {}
    cases = {
        "local_cpu (N=2)": (
            rng.uniform(0, 2e9, size=(n_inst, 2)),
            lambda Q: allocate_local_cpu(Q, tau=TAU, weight=1e18, kappa=KAPPA, f_max=1.5e9),
            lambda Q: cvx_local_cpu(Q, tau=TAU, weight=1e18, kappa=KAPPA, f_max=1.5e9),
        ),
        "transmission (N=2)": (
            rng.uniform(0, 5e6, size=(n_inst, 2)),
            lambda Q: allocate_transmission(Q, 6e-11, tau=TAU, weight=1e13, bandwidth=B, noise_psd=N0, p_max=0.3),
            lambda Q: cvx_transmission(Q, 6e-11, tau=TAU, weight=1e13, bandwidth=B, noise_psd=N0, p_max=0.3),
        ),
        "edge_cpu (K=8)": (
            rng.uniform(0, 2e9, size=(n_inst, 8)),
            lambda Q: allocate_edge_cpu(Q, tau=TAU, f_max=20e9),
            lambda Q: cvx_edge_cpu(Q, tau=TAU, f_max=20e9),
        ),
    }
    for name, (Q, closed, ref) in cases.items():
        ref(Q[0])  # build/compile the parametrised problem once
        big = np.tile(Q, (4096 // n_inst + 1, 1))[:4096]
        t_cvx = _time(lambda i, ref=ref, Q=Q: ref(Q[i]), n_inst)
        t_closed = _time(lambda i, closed=closed, Q=Q: closed(Q[i]), n_inst)
        t_batch = _time(lambda i, closed=closed, big=big: closed(big), 20) / len(big)
        results[name] = {
            "closed_us": t_closed * 1e6,
            "closed_batched_us": t_batch * 1e6,
            "cvxpy_ms": t_cvx * 1e3,
            "speedup": t_cvx / t_closed,
            "speedup_batched": t_cvx / t_batch,
        }
    print(
        f"{'allocator':<20} {'closed [us]':>12} {'batched [us]':>13} {'cvxpy [ms]':>11} {'speed-up':>9} {'batched':>9}"
    )
    for name, r in results.items():
        print(
            f"{name:<20} {r['closed_us']:>12.1f} {r['closed_batched_us']:>13.3f} {r['cvxpy_ms']:>11.2f} "
            f"{r['speedup']:>8.0f}x {r['speedup_batched']:>8.0f}x"
        )
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "allocators.json").write_text(
        json.dumps({"solver": SOLVER_OPTS["solver"], "results": results}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
