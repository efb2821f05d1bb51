"""The training loop of ``splitrl train`` and of every sweep trial: iterate, report, stop.

:func:`training_iterations` runs ``algo.train()`` until the config's ``stop`` criteria are met
and yields the curated metrics of every iteration (:func:`curate`); the caller reports them (a
progress line, ``metrics.jsonl`` and MLflow for ``train``; ``tune.report`` for a trial) and
checkpoints with :mod:`splitrl.platform.checkpoints` every ``resources.checkpoint_every``
iterations and at the end.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

#: Learner stats of the first module reported as ``learner/<name>``.
LEARNER_KEYS = (
    ("policy_loss", "policy_loss"),
    ("vf_loss", "vf_loss"),
    ("entropy", "entropy"),
    ("mean_kl_loss", "mean_kl_loss"),
    ("qf_loss", "qf_loss"),
    # the coefficients' current values (they may follow a schedule over env steps)
    ("curr_entropy_coeff", "entropy_coeff"),
    ("curr_window_entropy_coeff", "window_entropy_coeff"),
)


def new_state() -> dict[str, Any]:
    """The counters a run carries across checkpoints and resumes."""
    return {"iteration": 0, "env_steps": 0.0, "time_s": 0.0}


def should_stop(stop: dict, state: dict) -> bool:
    return (
        (stop["iterations"] is not None and state["iteration"] >= stop["iterations"])
        or (stop["env_steps"] is not None and state["env_steps"] >= stop["env_steps"])
        or (stop["time_s"] is not None and state["time_s"] >= stop["time_s"])
    )


def curate(result: dict, world, *, elapsed_s: float, steps0: float, time0: float, reward_scale: float) -> dict:
    """The per-iteration metrics of an RLlib result: ``env_steps``, ``time_s``, ``env_steps_per_s``,
    ``episode_return_mean`` (in the env's reward units: RLlib's return divided by
    ``reward_scale``, or the world's :attr:`~splitrl.worlds.base.BaseWorld.return_metric`), the
    world's training metrics and ``learner/*`` stats."""
    er = result.get("env_runners", {})
    steps = float(result.get("num_env_steps_sampled_lifetime", 0.0))
    out = {
        "env_steps": steps,
        "time_s": time0 + elapsed_s,
        "env_steps_per_s": (steps - steps0) / max(elapsed_s, 1e-9),
        "episode_return_mean": (
            er["episode_return_mean"] / reward_scale if er.get("episode_return_mean") is not None else None
        ),
    }
    if world.return_metric and world.return_metric in er:
        out["episode_return_mean"] = er[world.return_metric]
    for name in world.train_metric_keys():
        if name in er:
            out[name] = er[name]
    learners = {k: v for k, v in result.get("learners", {}).items() if isinstance(v, dict) and not k.startswith("__")}
    first = learners[min(learners)] if learners else {}
    for name, as_name in LEARNER_KEYS:
        if name in first:
            out[f"learner/{as_name}"] = first[name]
    for name in world.learner_min_keys:
        values = [m[name] for m in learners.values() if name in m]
        if values:
            out[f"learner/{name}_min"] = min(values)
    return {k: float(v) for k, v in out.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}


def training_iterations(algo, cfg: dict, world, state: dict) -> Iterator[tuple[dict, bool]]:
    """Train until ``cfg["stop"]`` is met; after every iteration yields ``(metrics, last)`` with
    ``state`` (``iteration``, ``env_steps``, ``time_s``, continued from a resumed run) updated."""
    t_start, steps0, time0 = time.perf_counter(), state["env_steps"], state["time_s"]
    while not should_stop(cfg["stop"], state):
        result = algo.train()
        state["iteration"] += 1
        metrics = curate(
            result,
            world,
            elapsed_s=time.perf_counter() - t_start,
            steps0=steps0,
            time0=time0,
            reward_scale=cfg["algorithm"]["reward_scale"],
        )
        state["env_steps"], state["time_s"] = metrics["env_steps"], metrics["time_s"]
        yield metrics, should_stop(cfg["stop"], state)
