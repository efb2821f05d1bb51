"""``splitrl sweep``: a Ray Tune sweep over scenario points, algorithms, seeds and hyperparameters.

Output directory layout (``--out``, default ``sweeps/<name>``)::

    sweep.yaml        the resolved sweep (``--resume`` checks that it still matches)
    state.json        MLflow ids; which trials and baseline points finished; best checkpoints
    tune/trials/      the Ray Tune experiment (trial logs, checkpoints; Tuner.restore resumes it)
    results.csv       one row per trial and per (scenario point, baseline)
    summary.csv       mean / std over seeds per policy and point
    summary.txt       the same as a table (also printed)
    fig_<metric>.png  metric vs the first grid key, one line per policy

MLflow: a parent run ``sweep <name>`` (params: what varies; artifacts: sweep.yaml, results.csv,
summary.csv/.txt and the figures) with a child run per trial and per baseline point.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import yaml

from splitrl.core.errors import ConfigError
from splitrl.core.files import check_writable
from splitrl.tuning import aggregate
from splitrl.tuning.spec import fmt_value, spec_fingerprint
from splitrl.tuning.tracking import SweepCallback, SweepState, Tracking, point_params

#: Exit status of an interrupted sweep (resume it with ``--resume``).
INTERRUPTED = 130


def _search_space(spec: dict) -> dict:
    from ray import tune

    space = {
        "point": tune.grid_search(list(spec["points"])),
        "algorithm.name": tune.grid_search(spec["algorithms"]),
        "algorithm.seed": tune.grid_search(spec["seeds"]),
    }
    for key, s in spec["search"].items():
        space[key] = {
            "grid": lambda s: tune.grid_search(s["values"]),
            "choice": lambda s: tune.choice(s["values"]),
            "uniform": lambda s: tune.uniform(s["low"], s["high"]),
            "loguniform": lambda s: tune.loguniform(s["low"], s["high"]),
        }[s["kind"]](s)
    return space


def cpus_per_trial(spec: dict) -> int:
    """The trial process plus one CPU per env runner of the base config."""
    cfg = next(iter(spec["points"].values()))["config"]
    return 1 + int(cfg["resources"]["num_env_runners"])


def _trainable(spec: dict):
    from ray import tune
    from ray.tune import PlacementGroupFactory

    from splitrl.tuning.trial import run_trial

    bundles = [{"CPU": 1}] + [{"CPU": 1}] * (cpus_per_trial(spec) - 1)
    return tune.with_resources(
        tune.with_parameters(run_trial, points=spec["points"], metric=spec["metric"]), PlacementGroupFactory(bundles)
    )


def make_scheduler(spec: dict):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    s = spec["scheduler"]
    if s["name"] == "asha":
        return ASHAScheduler(
            time_attr="training_iteration",
            max_t=int(s["max_t"]),
            grace_period=int(s["grace_period"]),
            reduction_factor=float(s["reduction_factor"]),
        )
    return FIFOScheduler()


def _parent_params(spec: dict) -> dict[str, str]:
    return {
        "sweep": spec["name"],
        "world": spec["world"],
        "base": Path(spec["base"]).name,
        "grid": ", ".join(f"{k}={v}" for k, v in spec["grid"].items()) or "-",
        "algorithms": ", ".join(spec["algorithms"]),
        "seeds": ", ".join(map(str, spec["seeds"])),
        "search": ", ".join(f"{k}~{s}" for k, s in spec["search"].items()) or "-",
        "num_samples": str(spec["num_samples"]),
        "scheduler": spec["scheduler"]["name"],
        "metric": f"{spec['metric']} ({spec['mode']})",
        "baselines": ", ".join(spec["baselines"]) or "-",
        "num_trials": str(spec["num_trials"]),
        **{f"set.{k}": str(v) for k, v in spec["set"].items()},
    }


def saved_spec(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k != "points"}


def _check_resume(spec: dict, out: Path) -> None:
    saved = yaml.safe_load((out / "sweep.yaml").read_text())
    mine, theirs = spec_fingerprint(saved_spec(spec)), spec_fingerprint(saved)
    for key in mine:
        if yaml.safe_dump(mine[key], sort_keys=True) != yaml.safe_dump(theirs[key], sort_keys=True):
            raise ConfigError(
                key, f"differs from the sweep being resumed in {out} (a resumed sweep must define the same trials)"
            )


def run_sweep(
    spec: dict,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    address: str | None = None,
    mlflow_uri: str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Run (or resume) a validated sweep; returns ``{"status", "out", "rows", "summary", "figures"}``.

    ``status`` is ``FINISHED`` or ``INTERRUPTED`` (Ctrl-C / SIGTERM: the Tune state is saved and
    ``--resume`` finishes the trials that had not finished).
    """
    import ray
    from ray import tune

    from splitrl.platform.tracking import check_store, default_uri
    from splitrl.platform.train import init_ray

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    # Tune warns whenever checkpoints (kept: 2 per trial) force state snapshots; frequent by design
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    out = Path(out or Path("sweeps") / spec["name"]).resolve()
    exp_dir = out / "tune" / "trials"
    if resume:
        if not (out / "sweep.yaml").is_file():
            raise ConfigError("--resume", f"no sweep to resume in {out} (no sweep.yaml)")
        _check_resume(spec, out)
    elif out.exists() and any(out.iterdir()):
        raise ConfigError(str(out), "output directory exists and is not empty (use --resume to continue it)")

    cfg0 = next(iter(spec["points"].values()))["config"]
    state = SweepState(out / "state.json")  # read if resuming; nothing is written yet
    tracking_cfg = cfg0["tracking"]
    uri = None
    if tracking_cfg.get("enabled", True):
        uri = state.data.get("mlflow_uri")  # a resumed sweep stays in its store
        source = (
            f"{out / 'state.json'} (the resumed sweep's MLflow store)"
            if uri
            else "--mlflow-uri"
            if mlflow_uri
            else "tracking.mlflow_uri"
            if tracking_cfg.get("mlflow_uri")
            else "MLFLOW_TRACKING_URI"
        )
        if uri and mlflow_uri and mlflow_uri != uri:
            raise ConfigError(
                "--mlflow-uri", f"differs from the sweep being resumed ({uri!r} there, {mlflow_uri!r} here)"
            )
        uri = (
            uri
            or mlflow_uri
            or tracking_cfg.get("mlflow_uri")
            or os.environ.get("MLFLOW_TRACKING_URI")
            or default_uri()
        )
        check_store(uri, source)  # an unreachable server: one line in seconds, before Ray starts
    check_writable(out, "--out")  # a read-only or full disk: one line before Ray starts
    init_ray(cfg0, address)
    if threading.current_thread() is threading.main_thread():
        # `ray job stop` and Kubernetes send SIGTERM: stop as on Ctrl-C, so Tune saves its state for
        # --resume (installed after ray.init, whose own SIGTERM handler would abort the process)
        signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))
    try:
        tracking = Tracking(uri, tracking_cfg.get("experiment", "splitrl"), state)
    except Exception as exc:  # an unreachable server or a bad URI: before anything is written
        raise ConfigError("--mlflow-uri", f"cannot use the MLflow tracking store {uri!r}: {exc}") from None
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        (out / "sweep.yaml").write_text(yaml.safe_dump(saved_spec(spec), sort_keys=False))
    tracking.start_parent(spec, _parent_params(spec))
    state.save()
    status = "FAILED"
    try:
        callback = SweepCallback(spec, out, uri, tracking_cfg.get("experiment", "splitrl"), log)
        per_trial = cpus_per_trial(spec)
        max_conc = spec["max_concurrent"]
        if max_conc is None and not (address or os.environ.get("RAY_ADDRESS")):
            max_conc = max(1, int(ray.cluster_resources().get("CPU", 1)) // per_trial)
        log(
            f"sweep {spec['name']}: {spec['num_trials']} trials ({len(spec['points'])} scenario points x "
            f"{len(spec['algorithms'])} algorithms x {len(spec['seeds'])} seeds"
            + (f" x {spec['num_samples']} samples" if spec["search"] else "")
            + f"), {per_trial} CPU each, at most {max_conc or 'as many as fit'} at once, "
            f"{spec['scheduler']['name']} scheduler; output {out}"
        )
        if resume and (exp_dir / "tuner.pkl").exists():
            tuner = tune.Tuner.restore(
                str(exp_dir), trainable=_trainable(spec), resume_unfinished=True, resume_errored=True
            )
        else:
            tuner = tune.Tuner(
                _trainable(spec),
                param_space=_search_space(spec),
                tune_config=tune.TuneConfig(
                    metric=spec["metric"],
                    mode=spec["mode"],
                    scheduler=make_scheduler(spec),
                    num_samples=spec["num_samples"],
                    max_concurrent_trials=max_conc,
                    trial_dirname_creator=lambda t: f"trial_{t.trial_id}",
                ),
                run_config=tune.RunConfig(
                    name="trials",
                    storage_path=str(out / "tune"),
                    callbacks=[callback],
                    verbose=0,
                    checkpoint_config=tune.CheckpointConfig(
                        num_to_keep=2, checkpoint_score_attribute=spec["metric"], checkpoint_score_order=spec["mode"]
                    ),
                    failure_config=tune.FailureConfig(max_failures=1),
                ),
            )
        grid = tuner.fit()

        state = tracking.state = SweepState(out / "state.json")  # the callback's record
        trials = state.data["trials"]
        finished = [t for t, e in trials.items() if e["status"] in ("FINISHED", "FAILED")]
        if len(finished) < spec["num_trials"]:
            status = "KILLED"
            log(
                f"sweep interrupted: {len(finished)} of {spec['num_trials']} trials finished; "
                f"continue with --resume (--out {out})"
            )
            return {"status": "INTERRUPTED", "out": str(out)}

        rows = []
        for result in grid:
            tid = result.metrics.get("trial_id") or Path(result.path).name.removeprefix("trial_")
            rows.append(
                aggregate.trial_row(
                    spec, result.config, result.metrics, trials.get(tid, {}).get("status", "UNKNOWN"), tid
                )
            )
        rows += _run_baselines(spec, state, tracking, log)
        aggregate.write_csv(rows, out / "results.csv")
        summary = aggregate.summarize(spec, rows)
        aggregate.write_csv(summary, out / "summary.csv")
        table = aggregate.format_summary(spec, summary)
        (out / "summary.txt").write_text(table + "\n")
        figures = aggregate.plot_sweep(spec, summary, out)
        print(table)
        for path in [out / "sweep.yaml", out / "results.csv", out / "summary.csv", out / "summary.txt", *figures]:
            tracking.log_artifacts(tracking.parent, path)
        failed = [e["name"] for e in trials.values() if e["status"] == "FAILED"]
        if failed:
            log(f"{len(failed)} trial(s) failed: {', '.join(failed)}")
        status = "FINISHED" if not failed else "FAILED"
        return {
            "status": status,
            "out": str(out),
            "rows": rows,
            "summary": summary,
            "figures": [str(p) for p in figures],
        }
    except (KeyboardInterrupt, SystemExit):
        status = "KILLED"
        raise
    finally:
        # nothing dangling: trials still RUNNING in MLflow end KILLED (interrupted) or FAILED
        state = tracking.state = SweepState(out / "state.json")
        for tid, entry in state.data["trials"].items():
            if entry["status"] == "RUNNING":
                entry["status"] = "KILLED" if status == "KILLED" else "FAILED"
                tracking.end(state.data.get("runs", {}).get(tid), entry["status"])
        tracking.end(tracking.parent, status)
        state.save()


def _run_baselines(spec: dict, state: SweepState, tracking: Tracking, log) -> list[dict]:
    """Evaluate the non-learning baselines at every scenario point (Ray tasks, cached in state.json)."""
    import ray

    from splitrl.tuning.trial import evaluate_baselines

    done = state.data["baselines"]
    todo = [(pk, b) for pk in spec["points"] for b in spec["baselines"] if f"{pk}|{b}" not in done]
    if todo:
        log(f"evaluating {len(todo)} baseline point(s) as Ray tasks")
        task = ray.remote(num_cpus=1)(evaluate_baselines)
        refs = {task.remote(spec["points"][pk]["config"], [b]): (pk, b) for pk, b in todo}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            pk, b = refs[ready[0]]
            metrics = ray.get(ready[0])[b]
            done[f"{pk}|{b}"] = metrics
            values = spec["points"][pk]["values"]
            name = " ".join([b] + [f"{k.split('.')[-1]}={fmt_value(v)}" for k, v in values.items()])
            run_id = tracking.child(
                f"baseline:{pk}:{b}", name, point_params(spec, pk, b, "-"), {"splitrl.kind": "baseline"}
            )
            tracking.log_metrics(run_id, {f"eval/{k}": v for k, v in metrics.items()}, step=0)
            tracking.end(run_id, "FINISHED")
            state.save()
            log(f"baseline {name}: {spec['plot_metrics'][0]} {metrics.get(spec['plot_metrics'][0], float('nan')):.6g}")
    return [aggregate.baseline_row(spec, pk, b, done[f"{pk}|{b}"]) for pk in spec["points"] for b in spec["baselines"]]
