"""Env steps/s of LyaPPO training (configs/lyappo.yaml) with 0, 1 and 2 env runners on this machine.

Each setting builds the algorithm on a fresh local Ray (num_cpus = this machine's), runs one
warm-up iteration, then times ``ITERS`` training iterations (4,000 periods each: sampling on the
runners + 10 epochs of PPO on the driver's learner).  Besides the steps/s of a whole iteration it
reports the sampling share (RLlib's env_runner timer) and the ratio against 1 runner in the same
run.  Prints a table and writes benchmarks/out/scaling.json.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ITERS = int(os.environ.get("BENCH_SCALING_ITERS", "5"))


def bench(num_env_runners: int) -> dict:
    import ray

    from splitrl.platform.config import load_config
    from splitrl.worlds.lyappo.algorithms import build_algo_config

    cfg = load_config(ROOT / "configs" / "lyappo.yaml", [f"resources.num_env_runners={num_env_runners}"])
    ray.init(
        num_cpus=os.cpu_count(),
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        _node_ip_address="127.0.0.1",
    )
    try:
        algo = build_algo_config(cfg).build_algo()
        steps0 = algo.train()["num_env_steps_sampled_lifetime"]  # warm-up: actor start, first paths
        t0 = time.perf_counter()
        sample_s = 0.0
        for _ in range(ITERS):
            r = algo.train()
            sample_s += float(r.get("timers", {}).get("env_runner_sampling_timer", 0.0))
        wall = time.perf_counter() - t0
        steps = r["num_env_steps_sampled_lifetime"] - steps0
        algo.stop()
        return {
            "num_env_runners": num_env_runners,
            "iterations": ITERS,
            "env_steps": steps,
            "wall_s": wall,
            "env_steps_per_s": steps / wall,
            "sampling_s_per_iter": sample_s / ITERS,
        }
    finally:
        ray.shutdown()


def bench_tracking(calls: int = 300) -> dict:
    """What one Tune result costs the sweep driver in MLflow: a batched log of the curated
    metrics (15 values) into a fresh SQLite store, ms per call."""
    import tempfile

    from splitrl.tuning.tracking import SweepState, Tracking

    with tempfile.TemporaryDirectory() as d:
        tr = Tracking(f"sqlite:///{d}/mlflow.db", "bench", SweepState(Path(d) / "state.json"))
        tr.start_parent({"name": "bench"}, {"sweep": "bench"})
        run = tr.child("t0", "t0", {"sweep": "bench"}, {})
        metrics = {f"m{i}": float(i) for i in range(15)}
        tr.log_metrics(run, metrics, 0)
        t0 = time.perf_counter()
        for step in range(1, calls + 1):
            tr.log_metrics(run, metrics, step)
        ms = (time.perf_counter() - t0) / calls * 1e3
    return {"mlflow_sqlite_ms_per_result": ms, "results_per_s": 1e3 / ms}


def main() -> None:
    track = bench_tracking()
    print(
        f"driver: {track['mlflow_sqlite_ms_per_result']:.1f} ms per trial result logged to MLflow (SQLite), "
        f"i.e. {track['results_per_s']:.0f} results/s"
    )
    rows = [bench(n) for n in (0, 1, 2)]
    ref = next(r for r in rows if r["num_env_runners"] == 1)["env_steps_per_s"]
    print(f"LyaPPO training throughput on {os.cpu_count()} CPU(s), {ITERS} iterations of 4,000 periods")
    print(f"{'env runners':>11} {'steps/s':>9} {'vs 1 runner':>12} {'sampling s/iter':>16}")
    for r in rows:
        r["vs_1_runner"] = r["env_steps_per_s"] / ref
        print(
            f"{r['num_env_runners']:>11} {r['env_steps_per_s']:>9.0f} {r['vs_1_runner']:>11.2f}x "
            f"{r['sampling_s_per_iter']:>16.2f}"
        )
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "scaling.json").write_text(
        json.dumps({"cpus": os.cpu_count(), "rows": rows, "tracking": track}, indent=1) + "\n"
    )


if __name__ == "__main__":
    main()
