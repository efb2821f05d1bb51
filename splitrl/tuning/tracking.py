"""MLflow for sweeps: one parent run per sweep, one child run per trial and per baseline point.

Everything is logged from the driver (a Tune callback), so the trials need no access to the
tracking store: a SQLite file on the head node works as well as a tracking server.  Child runs
carry only the meaningful params (the swept keys, the scenario, the algorithm, the seed), the
curated per-iteration metrics, the evaluation metrics and the trial's best checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from ray.tune import Callback

from splitrl import worlds
from splitrl.core.files import atomic_write_text
from splitrl.tuning.spec import fmt_value

#: Non-numeric or bookkeeping keys of a Tune result that are not logged as metrics.
_SKIP = {
    "iteration",
    "training_iteration",
    "time_this_iter_s",
    "time_total_s",
    "timestamp",
    "pid",
    "time_since_restore",
    "iterations_since_restore",
    "timesteps_since_restore",
    "done",
    "timesteps_total",
    "episodes_total",
    "episode_reward_mean",
}


class SweepState:
    """``state.json`` of a sweep directory: MLflow ids and which trials / baseline points finished."""

    def __init__(self, path: Path):
        self.path = path
        self.data: dict[str, Any] = (
            json.loads(path.read_text())
            if path.is_file()
            else {"mlflow_uri": None, "experiment_id": None, "parent_run_id": None, "trials": {}, "baselines": {}}
        )

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.data, indent=1, default=str) + "\n")


def curated_metrics(result: dict) -> dict[str, float]:
    out = {}
    for key, value in result.items():
        if key in _SKIP or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            out[key] = float(value)
    return out


def point_params(spec: dict, point_key: str, policy: str, seed: str) -> dict[str, str]:
    """A child run's params: the sweep, world, scenario, policy, seed and the point's swept keys."""
    point = spec["points"][point_key]
    return {
        "sweep": spec["name"],
        "world": spec["world"],
        "scenario": point["config"]["scenario"]["name"],
        "algorithm": policy,
        "seed": seed,
        **{k: str(v) for k, v in point["values"].items()},
    }


def trial_params(spec: dict, config: dict) -> dict[str, str]:
    title = worlds.get(spec["world"]).algorithm(config["algorithm.name"]).title
    params = point_params(spec, config["point"], title, str(config["algorithm.seed"]))
    params.update({k: str(v) for k, v in config.items() if k in spec["search"]})
    return params


class Tracking:
    """The sweep's MLflow client (``None`` URI: tracking disabled)."""

    def __init__(self, uri: str | None, experiment: str, state: SweepState):
        self.state = state
        self.client = None
        if uri is None:
            return
        from mlflow.tracking import MlflowClient

        from splitrl.platform.tracking import experiment_id

        self.client = MlflowClient(tracking_uri=uri)
        state.data["experiment_id"] = experiment_id(self.client, experiment)
        state.data["mlflow_uri"] = uri

    @property
    def parent(self) -> str | None:
        return self.state.data["parent_run_id"]

    def start_parent(self, spec: dict, params: dict[str, str]) -> None:
        if self.client is None:
            return
        if self.parent:
            self.client.update_run(self.parent, status="RUNNING")
            return
        run = self.client.create_run(
            self.state.data["experiment_id"],
            run_name=f"sweep {spec['name']}",
            tags={"splitrl.kind": "sweep", "splitrl.sweep": spec["name"]},
        )
        self.state.data["parent_run_id"] = run.info.run_id
        self.state.save()
        self.log_params(run.info.run_id, params)

    def child(self, key: str, name: str, params: dict[str, str], tags: dict[str, str]) -> str | None:
        """The child run for ``key`` (a trial id or ``baseline:<point>:<name>``), created once."""
        if self.client is None:
            return None
        runs = self.state.data.setdefault("runs", {})
        if key in runs:
            return runs[key]
        run = self.client.create_run(
            self.state.data["experiment_id"],
            run_name=name,
            tags={"mlflow.parentRunId": self.parent, "splitrl.sweep": params["sweep"], **tags},
        )
        runs[key] = run.info.run_id
        self.state.save()
        self.log_params(run.info.run_id, params)
        return run.info.run_id

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException

        try:
            self.client.log_batch(run_id, params=[Param(k, str(v)[:500]) for k, v in params.items()])
        except MlflowException:
            pass  # a resumed run already holds them (MLflow forbids changing a param)

    def log_metrics(self, run_id: str | None, metrics: dict[str, float], step: int) -> None:
        if self.client is None or run_id is None or not metrics:
            return
        import time

        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        self.client.log_batch(run_id, metrics=[Metric(k, v, ts, step) for k, v in metrics.items()])

    def log_artifacts(self, run_id: str | None, path: str | Path, artifact_path: str | None = None) -> None:
        if self.client is None or run_id is None:
            return
        p = Path(path)
        if p.is_dir():
            self.client.log_artifacts(run_id, str(p), artifact_path)
        elif p.is_file():
            self.client.log_artifact(run_id, str(p), artifact_path)

    def end(self, run_id: str | None, status: str) -> None:
        if self.client is not None and run_id is not None:
            self.client.set_terminated(run_id, status)


class SweepCallback(Callback):
    """Tune callback: child runs per trial, per-iteration metrics, best checkpoint, progress lines.

    It is pickled into the Tune experiment state (``tuner.pkl``) and restored with it on
    ``--resume``: it keeps only plain data and opens ``state.json`` and the MLflow client lazily.
    """

    def __init__(self, spec: dict, out: Path, uri: str | None, experiment: str, log=None):
        self.spec, self.out, self.uri, self.experiment = spec, Path(out), uri, experiment
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.sign = 1.0 if spec["mode"] == "max" else -1.0
        self._tracking: Tracking | None = None

    def __getstate__(self):
        return {**self.__dict__, "_tracking": None}

    @property
    def tracking(self) -> Tracking:
        if self._tracking is None:
            self._tracking = Tracking(self.uri, self.experiment, SweepState(self.out / "state.json"))
        return self._tracking

    @property
    def state(self) -> SweepState:
        return self.tracking.state

    def _entry(self, trial) -> dict:
        return self.state.data["trials"].setdefault(
            trial.trial_id, {"status": "RUNNING", "best": None, "best_score": None, "name": ""}
        )

    def _run(self, trial) -> str | None:
        config = trial.config
        params = trial_params(self.spec, config)
        point = self.spec["points"][config["point"]]["values"]
        name = " ".join(
            [params["algorithm"]]
            + [f"{k.split('.')[-1]}={fmt_value(v)}" for k, v in point.items()]
            + [
                f"{k.split('.')[-1]}={config[k]:.4g}"
                if isinstance(config[k], float)
                else f"{k.split('.')[-1]}={config[k]}"
                for k in self.spec["search"]
            ]
            + [f"seed={config['algorithm.seed']}"]
        )
        self._entry(trial)["name"] = name
        return self.tracking.child(
            trial.trial_id, name, params, {"splitrl.kind": "trial", "splitrl.trial_id": trial.trial_id}
        )

    def on_trial_start(self, iteration, trials, trial, **info):
        run_id = self._run(trial)
        if self.tracking.client is not None and self._entry(trial)["status"] != "RUNNING":  # resumed
            self.tracking.client.update_run(run_id, status="RUNNING")
            self._entry(trial)["status"] = "RUNNING"

    def on_trial_result(self, iteration, trials, trial, result, **info):
        run_id = self._run(trial)
        step = int(result.get("training_iteration", 0))
        self.tracking.log_metrics(run_id, curated_metrics(result), step)
        if result.get("node_id") and self._entry(trial).get("node_id") != result["node_id"]:
            self._entry(trial)["node_id"] = result["node_id"]
            if self.tracking.client is not None:
                self.tracking.client.set_tag(run_id, "node_id", result["node_id"])

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        score = trial.last_result.get(self.spec["metric"])
        entry = self._entry(trial)
        if score is None or not math.isfinite(score):
            return
        if entry["best_score"] is None or self.sign * score > self.sign * entry["best_score"]:
            entry["best"], entry["best_score"] = checkpoint.path, float(score)
            self.state.save()

    def on_trial_complete(self, iteration, trials, trial, **info):
        entry = self._entry(trial)
        entry["status"] = "FINISHED"
        run_id = self._run(trial)
        if entry["best"] and os.path.isdir(entry["best"]):
            self.tracking.log_artifacts(run_id, entry["best"], "best_checkpoint")
        elif entry["best"] and self.tracking.client is not None:
            self.tracking.client.set_tag(run_id, "best_checkpoint", entry["best"])
        self.tracking.end(run_id, "FINISHED")
        self.state.save()
        r = trial.last_result
        m = self.spec["plot_metrics"][0]
        tail = f"eval {m} {r[f'eval/{m}']:.6g}" if f"eval/{m}" in r else "stopped early by the scheduler"
        self.log(f"trial finished: {entry['name']}: {tail} ({len(self._finished())}/{self.spec['num_trials']})")

    def on_trial_error(self, iteration, trials, trial, **info):
        entry = self._entry(trial)
        entry["status"] = "FAILED"
        self.tracking.end(self._run(trial), "FAILED")
        self.state.save()
        self.log(f"trial FAILED: {entry['name']} ({getattr(trial, 'error_file', None) or 'see the trial log'})")

    def _finished(self) -> list[str]:
        return [t for t, e in self.state.data["trials"].items() if e["status"] == "FINISHED"]
