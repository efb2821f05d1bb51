"""Env steps/s of LyaPPO training (configs/lyappo.yaml) with 0, 1 and 2 env runners on this machine,
and (``--cluster``) with 1, 2 and 4 env runners on a ``ray.cluster_utils.Cluster`` of as many
single-CPU raylets (the learner in the driver, one runner per raylet).

Each setting builds the algorithm on a fresh local Ray (num_cpus = this machine's), runs one
warm-up iteration, then times ``ITERS`` training iterations (4,000 periods each: sampling on the
runners + 10 epochs of PPO on the driver's learner).  Besides the steps/s of a whole iteration it
reports the time spent sampling (PPO's sampling call, timed by wrapping it) and the ratio against 1 runner in the same
run.  Prints a table and writes benchmarks/out/scaling.json.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ITERS = int(os.environ.get("BENCH_SCALING_ITERS", "5"))


def bench(num_env_runners: int, address: str | None = None) -> dict:
    import ray

    from splitrl.platform.config import load_config, set_torch_threads
    from splitrl.worlds.lyappo.algorithms import build_algo_config

    cfg = load_config(ROOT / "configs" / "lyappo.yaml", [f"resources.num_env_runners={num_env_runners}"])
    set_torch_threads(cfg)
    if address:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    else:
        ray.init(
            num_cpus=os.cpu_count(),
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            _node_ip_address="127.0.0.1",
        )
    import ray.rllib.algorithms.ppo.ppo as ppo_module
    from bench_training import _timed  # the sampling call timed by wrapping it (benchmarks/ on sys.path)

    totals = {"sample": 0.0}
    sampler = ppo_module.synchronous_parallel_sample
    try:
        algo = build_algo_config(cfg).build_algo()
        ppo_module.synchronous_parallel_sample = _timed(sampler, totals, "sample")
        steps0 = algo.train()["num_env_steps_sampled_lifetime"]  # warm-up: actor start, first paths
        totals["sample"] = 0.0
        t0 = time.perf_counter()
        for _ in range(ITERS):
            r = algo.train()
        wall = time.perf_counter() - t0
        sample_s = totals["sample"]
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
        ppo_module.synchronous_parallel_sample = sampler
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


def bench_cluster(runners: tuple[int, ...] = (1, 2, 4)) -> list[dict]:
    """LyaPPO training with ``k`` env runners on a local ``Cluster`` of ``k`` single-CPU raylets."""
    from ray.cluster_utils import Cluster

    rows = []
    for k in runners:
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        try:
            for _ in range(k - 1):
                cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            rows.append({**bench(k, address=cluster.address), "raylets": k})
        finally:
            cluster.shutdown()
    ref = rows[0]["env_steps_per_s"]
    for r in rows:
        r["vs_1_runner"] = r["env_steps_per_s"] / ref
    return rows


def main() -> None:
    import sys

    if "--cluster" in sys.argv[1:]:
        rows = bench_cluster()
        print(f"LyaPPO training on a local Cluster of single-CPU raylets ({os.cpu_count()} cores), {ITERS} iterations")
        print(f"{'raylets = runners':>17} {'steps/s':>9} {'vs 1 runner':>12} {'sampling s/iter':>16}")
        for r in rows:
            print(
                f"{r['raylets']:>17} {r['env_steps_per_s']:>9.0f} {r['vs_1_runner']:>11.2f}x "
                f"{r['sampling_s_per_iter']:>16.2f}"
            )
        out = ROOT / "benchmarks" / "out"
        out.mkdir(parents=True, exist_ok=True)
        (out / "scaling_cluster.json").write_text(json.dumps({"cpus": os.cpu_count(), "rows": rows}, indent=1) + "\n")
        return
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
