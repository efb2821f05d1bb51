"""One sweep trial: train a world's RLlib algorithm on one scenario point, report to Tune, evaluate at the end.

A trial is a Tune function trainable running the same loop as ``splitrl train``
(:func:`splitrl.platform.loop.training_iterations`).  It reports the curated training metrics
every iteration, a checkpoint (the layout of ``splitrl train``'s, written by
:func:`splitrl.platform.checkpoints.write_checkpoint`) every ``resources.checkpoint_every``
iterations and at the end, and in its last report the evaluation of the final policy on the
seeded evaluation episodes as ``eval/<metric>``, plus the node it ran on (``node_id``).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from splitrl import worlds
from splitrl.platform.config import apply_override, resolve_config

#: Tune config keys that are not config overrides.
POINT = "point"


def trial_config(points: dict, config: dict[str, Any]) -> dict:
    """The resolved run config of a trial: its scenario point's config with the trial's keys applied."""
    raw = copy.deepcopy(points[config[POINT]]["config"])
    for name, value in config.items():
        if name != POINT:
            apply_override(raw, name, value)
    return resolve_config(raw)


def run_trial(config: dict[str, Any], points: dict, metric: str) -> None:
    """The Tune trainable (bound to the sweep's scenario points with ``tune.with_parameters``)."""
    import ray
    import torch
    from ray import tune

    from splitrl.platform.checkpoints import load_policy, write_checkpoint
    from splitrl.platform.compare import compare
    from splitrl.platform.loop import new_state, training_iterations
    from splitrl.platform.train import eval_metrics

    cfg = trial_config(points, config)
    world = worlds.of(cfg)
    # one thread per CPU this trial holds (its bundle), not per core of the node
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    node_id = ray.get_runtime_context().get_node_id()
    algo = world.build_algorithm(cfg).build_algo()
    state = new_state()
    try:
        ckpt = tune.get_checkpoint()
        if ckpt is not None:
            with ckpt.as_directory() as d:
                algo.restore_from_path(str(Path(d, "algorithm").resolve()))
                saved = json.loads(Path(d, "splitrl.json").read_text())
            state.update({k: saved[k] for k in state})
        every = cfg["resources"]["checkpoint_every"]
        score = float("nan")  # the sweep metric is in every report (carried forward until an episode ends)
        for metrics, last in training_iterations(algo, cfg, world, state):
            score = metrics.get(metric, score)
            report = {**metrics, metric: score, "iteration": state["iteration"], "node_id": node_id}
            if not (last or state["iteration"] % every == 0):
                tune.report(report)
                continue
            tmp = Path(tempfile.mkdtemp(prefix="splitrl-trial-"))
            try:
                d = write_checkpoint(algo, tmp / "checkpoint", state, cfg)
                if last:
                    policy = load_policy(d)
                    result = compare([policy], cfg)
                    report.update(eval_metrics(result["policies"][policy.name]))
                tune.report(report, checkpoint=tune.Checkpoint.from_directory(str(d)))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    finally:
        algo.stop()


def evaluate_baselines(cfg: dict, names: list[str]) -> dict:
    """Evaluation metrics of the named non-learning baselines on ``cfg``'s scenario point."""
    from splitrl.platform.compare import compare

    cfg = {**cfg, "evaluation": {**cfg["evaluation"], "baselines": names}}
    result = compare(worlds.of(cfg).make_baselines(cfg["evaluation"]), cfg)
    return {
        name: {k: float(v) for k, v in m.items() if isinstance(v, (int, float))}
        for name, m in result["policies"].items()
    }
