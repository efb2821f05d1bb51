"""One sweep trial: train an RLlib algorithm on one scenario point, report to Tune, evaluate at the end.

A trial is a Tune function trainable.  It reports the curated training metrics of
:func:`splitrl.platform.train._metrics` every iteration, a checkpoint (RLlib checkpoint +
``splitrl.json``, the same layout as ``splitrl train``'s) every ``resources.checkpoint_every``
iterations and at the end, and in its last report the evaluation of the final policy on the
seeded evaluation episodes as ``eval/<metric>``, plus the node it ran on (``node_id``).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from splitrl.platform.config import _apply, resolve_config

#: Tune config keys that are not config overrides.
POINT = "point"


def trial_config(points: dict, config: dict[str, Any]) -> dict:
    """The resolved run config of a trial: its scenario point's config with the trial's keys applied."""
    raw = copy.deepcopy(points[config[POINT]]["config"])
    for key, value in config.items():
        if key != POINT:
            _apply(raw, key, value)
    return resolve_config(raw)


def _save(algo, state: dict, cfg: dict) -> str:
    d = tempfile.mkdtemp(prefix="splitrl-ckpt-")
    algo.save_to_path(str(Path(d, "algorithm").resolve()))
    Path(d, "splitrl.json").write_text(json.dumps({**state, "config": cfg}, indent=1, default=str) + "\n")
    return d


def run_trial(config: dict[str, Any], points: dict, metric: str) -> None:
    """The Tune trainable (bound to the sweep's scenario points with ``tune.with_parameters``)."""
    import ray
    import torch
    from ray import tune

    from splitrl.platform.policies import load_trained_policy
    from splitrl.platform.train import _metrics, _should_stop, run_comparison

    cfg = trial_config(points, config)
    if cfg["scenario"].get("world") == "emh":
        from splitrl.platform.emh import build_algo_config
    else:
        from splitrl.platform.algorithms import build_algo_config
    # one thread per CPU this trial holds (its bundle), not per core of the node
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    node_id = ray.get_runtime_context().get_node_id()
    algo = build_algo_config(cfg).build_algo()
    state = {"iteration": 0, "env_steps": 0.0, "time_s": 0.0}
    try:
        ckpt = tune.get_checkpoint()
        if ckpt is not None:
            with ckpt.as_directory() as d:
                algo.restore_from_path(str(Path(d, "algorithm").resolve()))
                saved = json.loads(Path(d, "splitrl.json").read_text())
            state.update({k: saved[k] for k in state})
        t_start, steps0, time0 = time.perf_counter(), state["env_steps"], state["time_s"]
        every = cfg["resources"]["checkpoint_every"]
        score = float("nan")  # the sweep metric is in every report (carried forward until an episode ends)
        while True:
            result = algo.train()
            state["iteration"] += 1
            metrics = _metrics(result, t_start, steps0, time0, cfg["algorithm"]["reward_scale"])
            state["env_steps"], state["time_s"] = metrics["env_steps"], metrics["time_s"]
            last = _should_stop(cfg["stop"], state)
            score = metrics.get(metric, score)
            report = {**metrics, metric: score, "iteration": state["iteration"]}
            if last:
                d = _save(algo, state, cfg)
                policy = load_trained_policy(d)
                res, _, _ = run_comparison([policy], cfg, None)
                m = res["policies"][policy.name]
                report.update({f"eval/{k}": float(v) for k, v in m.items() if isinstance(v, (int, float))})
                report["node_id"] = node_id
                tune.report(report, checkpoint=tune.Checkpoint.from_directory(d))
                shutil.rmtree(d, ignore_errors=True)
                return
            if state["iteration"] % every == 0:
                d = _save(algo, state, cfg)
                tune.report({**report, "node_id": node_id}, checkpoint=tune.Checkpoint.from_directory(d))
                shutil.rmtree(d, ignore_errors=True)
            else:
                tune.report({**report, "node_id": node_id})
    finally:
        algo.stop()


def evaluate_baselines(cfg: dict, names: list[str]) -> dict:
    """Evaluation metrics of the named non-learning baselines on ``cfg``'s scenario point."""
    from splitrl.platform.train import make_world_baselines, run_comparison

    ev = {**cfg["evaluation"], "baselines": names}
    cfg = {**cfg, "evaluation": ev}
    policies = [p for p in make_world_baselines(cfg) if p.name in names]
    res, _, _ = run_comparison(policies, cfg, None)
    return {name: {k: float(v) for k, v in m.items() if isinstance(v, (int, float))}
            for name, m in res["policies"].items()}
