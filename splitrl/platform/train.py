"""``splitrl train``: run a world's RLlib algorithm with checkpoints, resume, comparison and MLflow.

Output directory layout (``--out``, default ``runs/<run name>-<UTC time>``)::

    config.yaml               the resolved config
    run.json                  MLflow URI and run id, so a resumed job continues the same run
    metrics.jsonl             one line of metrics per iteration
    checkpoints/iter_000010/  algorithm/ (RLlib checkpoint) + splitrl.json (counters, config)
    checkpoints/latest        name of the newest complete checkpoint
    compare.json/.txt/.png    trained agent vs. the baselines on the evaluation episodes

A checkpoint is written into a temporary directory and renamed into place, then ``latest`` is
replaced atomically, so an interrupted job never leaves a corrupt "latest" checkpoint
(:mod:`splitrl.platform.checkpoints`).  The loop itself is :mod:`splitrl.platform.loop`, shared
with the sweep trials.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from splitrl import worlds
from splitrl.core.errors import ConfigError
from splitrl.core.files import atomic_write_text, check_writable, storage_error
from splitrl.platform.checkpoints import checkpoint_state, latest_checkpoint, save_checkpoint
from splitrl.platform.config import set_torch_threads
from splitrl.platform.loop import new_state, training_iterations
from splitrl.platform.tracking import Tracker, git_commit, public_config, redact_uri, run_params


# ---- progress ------------------------------------------------------------------------------------
class Progress:
    """A live one-line display on a terminal; plain lines otherwise.  Shows the iteration, env
    steps, throughput, return and the world's progress metrics (:attr:`Metric.progress`)."""

    def __init__(self, stream=None, enabled: bool = True, world=None):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self.world = world or worlds.get(worlds.DEFAULT)

    def update(self, it: int, stop: dict, m: dict) -> None:
        if not self.enabled:
            return
        total = f"/{stop['iterations']}" if stop.get("iterations") else ""
        ret = format(m["episode_return_mean"], ".1f") if "episode_return_mean" in m else "-"
        body = self.world.progress_text(m, training=True, sep="  ")
        line = (
            f"iter {it}{total}  steps {int(m['env_steps']):,}  {m['env_steps_per_s']:,.0f} steps/s  "
            f"return {ret}  {body}  {m['time_s']:.0f} s"
        )
        if self.tty:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def log(self, msg: str) -> None:
        if self.enabled:
            if self.tty:
                self.stream.write("\r\033[K")
            self.stream.write(msg + "\n")
            self.stream.flush()


def init_ray(cfg: dict, address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        try:
            ray.init(address=address, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError("--address", f"cannot connect to a Ray cluster at {address!r}: {exc}") from None
    else:
        # A private local instance on loopback only (token authentication stays on).
        ray.init(
            num_cpus=cfg["resources"]["num_cpus"] or os.cpu_count(),
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            _node_ip_address="127.0.0.1",
        )
    _exit_on_sigterm()


class Terminated(SystemExit):
    """SIGTERM (``ray job stop``, Kubernetes, ``kill``): unwinds like Ctrl-C, exit status 143."""


def _exit_on_sigterm() -> None:
    """Take SIGTERM back from Ray's core worker, whose C++ failure handler (installed when the
    driver connects, over ``ray.init``'s Python one) prints a stack trace and ends the process with
    SIGABRT (status 134) after the Python unwinding.  Here it raises :class:`Terminated` in the main
    thread: the MLflow run ends KILLED, the last checkpoint stays complete, and the status is 143."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum, frame):
        raise Terminated(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def drop_metrics_after(path: Path, iteration: int) -> None:
    """Resuming from the checkpoint of ``iteration``: the rows of later iterations (trained after
    that checkpoint and lost with the interruption) leave metrics.jsonl, which the resumed run
    continues, so every iteration appears once; so does a line cut short by a kill mid-write.
    Rewritten atomically."""
    if not path.is_file():
        return

    def kept(line: str) -> bool:
        try:
            return json.loads(line).get("iteration", 0) <= iteration
        except ValueError:
            return False

    lines = path.read_text().splitlines(keepends=True)
    keep = [line for line in lines if line.endswith("\n") and kept(line)]
    if len(keep) != len(lines):
        atomic_write_text(path, "".join(keep))


def check_resume_matches(saved: dict, cfg: dict) -> None:
    for section in ("scenario", "algorithm"):
        for key, value in saved[section].items():
            if cfg[section].get(key) != value:
                raise ConfigError(
                    f"{section}.{key}",
                    f"differs from the run being resumed ({value!r} there, {cfg[section].get(key)!r} here)",
                )


def train(
    cfg: dict,
    *,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    address: str | None = None,
    mlflow_uri: str | None = None,
    progress: Progress | None = None,
    compare_after: bool = True,
) -> dict:
    """Train per ``cfg`` (resolved); returns a summary with the final checkpoint and metrics."""
    world = worlds.of(cfg)
    progress = progress or Progress()
    progress.world = world
    alg_name = cfg["algorithm"]["name"]
    run_name = cfg["tracking"]["run_name"] or f"{alg_name}-{cfg['scenario']['name']}"
    state: dict[str, Any] = new_state()
    run_info: dict[str, Any] = {}
    if resume:
        ckpt = latest_checkpoint(resume)
        saved = checkpoint_state(ckpt)
        check_resume_matches(saved["config"], cfg)
        run_dir = ckpt.parent.parent
        state.update({k: saved[k] for k in state})
        drop_metrics_after(run_dir / "metrics.jsonl", state["iteration"])
        if (run_dir / "run.json").is_file():
            run_info = json.loads((run_dir / "run.json").read_text())
    else:
        ckpt = None
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        run_dir = Path(out) if out else Path("runs") / f"{run_name}-{stamp}"
        if run_dir.exists() and any(run_dir.iterdir()):
            raise ConfigError(str(run_dir), "output directory exists and is not empty (use --resume to continue it)")

    tracker = Tracker(cfg["tracking"], uri_override=mlflow_uri or run_info.get("mlflow_uri"), notify=progress.log)
    if not mlflow_uri and run_info.get("mlflow_uri"):
        tracker.source = f"{run_dir / 'run.json'} (the resumed run's MLflow store)"
    tracker.check()  # an unreachable server: one line and exit 2 in seconds, before anything is written
    check_writable(run_dir, "--resume" if resume else "--out")  # a read-only or full disk, likewise
    init_ray(cfg, address)
    set_torch_threads(cfg)
    algo = None
    status = "FAILED"
    try:
        algo = world.build_algorithm(cfg).build_algo()
        if ckpt is not None:
            try:
                algo.restore_from_path(str((ckpt / "algorithm").resolve()))
            except Exception as exc:  # a checkpoint from before the manifest, damaged inside
                raise ConfigError(
                    "--resume", f"RLlib cannot restore {ckpt / 'algorithm'} ({type(exc).__name__}: {exc})"
                ) from None
            progress.log(f"resumed from {ckpt} (iteration {state['iteration']}, {int(state['env_steps']):,} env steps)")
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(public_config(cfg), sort_keys=False))
        run_id = tracker.start(
            run_name,
            {
                "git_commit": git_commit(),
                "scenario": cfg["scenario"]["name"],
                "world": world.name,
                "algorithm": world.policy_name(cfg),
                "run_dir": str(run_dir),
            },
            run_id=run_info.get("mlflow_run_id"),
        )
        if tracker.resumed_elsewhere:
            progress.log(
                f"MLflow run {tracker.resumed_elsewhere} is not in {redact_uri(tracker.uri)} or was deleted there: "
                f"continuing in a new run {run_id} there (tag splitrl.resumed_from_run; earlier metrics "
                f"stay in {run_info.get('mlflow_uri')})"
            )
        if run_id:
            write_run_info(run_dir, tracker, run_id)
            tracker.log_params(run_params(cfg))
            missed = run_info.get("mlflow_pending_from") if run_info.get("mlflow_run_id") == run_id else None
            if missed is not None:  # the store was away when the run stopped: send what it missed
                tracker.replay(read_metrics(run_dir / "metrics.jsonl"), since=missed)
                write_run_info(run_dir, tracker, run_id)

        every = cfg["resources"]["checkpoint_every"]
        metrics: dict[str, float] = {}
        last_saved = None
        with (run_dir / "metrics.jsonl").open("a") as mlog:
            for metrics, last in training_iterations(algo, cfg, world, state):
                mlog.write(json.dumps({"iteration": state["iteration"], **metrics}) + "\n")
                mlog.flush()
                missed = tracker.pending_from
                tracker.log_metrics(metrics, step=state["iteration"])
                if tracker.pending_from != missed:  # the store went away or came back
                    write_run_info(run_dir, tracker, run_id)
                progress.update(state["iteration"], cfg["stop"], metrics)
                if last or state["iteration"] % every == 0:
                    last_saved = save_checkpoint(algo, run_dir, state, cfg)
        progress.done()
        if last_saved is None:  # nothing trained (a resumed run that had already stopped)
            last_saved = latest_checkpoint(run_dir) if ckpt is not None else save_checkpoint(algo, run_dir, state, cfg)
        progress.log(f"checkpoint: {last_saved}")
        tracker.log_artifact(last_saved, artifact_path="checkpoint")
        summary = {
            "run_dir": str(run_dir),
            "checkpoint": str(last_saved),
            "mlflow_run_id": tracker.run_id,
            "mlflow_uri": redact_uri(tracker.uri) if tracker.enabled else None,
            "mlflow_experiment_id": tracker.experiment_id,
            **state,
            "metrics": metrics,
        }
        if compare_after:
            summary["compare"] = compare_trained(cfg, last_saved, run_dir, tracker, progress)
        status = "FINISHED"
        return summary
    except OSError as exc:  # a full or read-only disk mid-run: one line; the last complete checkpoint stays
        err = storage_error(exc, f"the run directory {run_dir}")
        if err is None:
            raise
        try:
            kept = f"; the last complete checkpoint is {latest_checkpoint(run_dir)}, continue with --resume {run_dir}"
        except ConfigError:
            kept = "; no checkpoint was written"
        raise type(err)(err.key, err.message + kept) from None
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C, or SIGTERM (Terminated)
        status = "KILLED"
        try:
            where = f"the last complete checkpoint is {latest_checkpoint(run_dir)}; continue with --resume {run_dir}"
        except ConfigError:
            where = "no checkpoint was written"
        print(
            f"splitrl: training interrupted at iteration {state['iteration']}: the MLflow run ends KILLED; {where}",
            file=sys.stderr,
            flush=True,
        )
        raise
    finally:
        if algo is not None:
            algo.stop()
        run_id = tracker.run_id
        if not tracker.end(status):
            write_run_info(run_dir, tracker, run_id)
            print(
                f"splitrl: warning: the MLflow store at {redact_uri(tracker.uri)} does not answer: its run {run_id} "
                + (
                    f"misses iterations {tracker.pending_from} onwards (they are in {run_dir / 'metrics.jsonl'}) and "
                    if tracker.pending_from is not None
                    else ""
                )
                + f"is not ended there; when it answers, `splitrl train CONFIG --resume {run_dir}` "
                + ("sends them and ends it" if tracker.pending_from is not None else "ends it"),
                file=sys.stderr,
                flush=True,
            )


def write_run_info(run_dir: Path, tracker: Tracker, run_id: str | None) -> None:
    """``run.json``: the MLflow store and run a resume continues, and the first iteration that
    store lacks (``mlflow_pending_from``) while it does not answer."""
    info = {"mlflow_uri": redact_uri(tracker.uri), "mlflow_run_id": run_id}
    if tracker.pending_from is not None:
        info["mlflow_pending_from"] = tracker.pending_from
    atomic_write_text(run_dir / "run.json", json.dumps(info) + "\n")


def read_metrics(path: Path) -> list[dict]:
    """The rows of ``metrics.jsonl`` (none if it is missing)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def compare_trained(cfg: dict, ckpt: Path, run_dir: Path, tracker: Tracker, progress: Progress) -> dict:
    """The trained agent of ``ckpt`` against the world's baselines: printed, written to
    ``compare.{json,txt,png}`` in ``run_dir`` and logged to MLflow (``eval/<metric>``)."""
    from splitrl.platform.checkpoints import load_policy
    from splitrl.platform.compare import compare, format_table, write_json

    world = worlds.of(cfg)
    policies = [load_policy(ckpt)] + world.make_baselines(cfg["evaluation"])
    result = compare(policies, cfg, progress.log)
    table = format_table(result, world)
    print(table)
    write_json(result, run_dir / "compare.json")
    (run_dir / "compare.txt").write_text(table + "\n")
    world.plot(result, run_dir / "compare.png")
    for name in ("compare.json", "compare.txt", "compare.png"):
        tracker.log_artifact(run_dir / name, artifact_path="compare")
    trained = result["policies"][policies[0].name]
    tracker.log_metrics(eval_metrics(trained), step=json.loads((ckpt / "splitrl.json").read_text())["iteration"])
    return result


def eval_metrics(values: dict) -> dict[str, float]:
    """A policy's evaluation results as ``eval/<metric>`` numbers (MLflow, Tune reports)."""
    return {f"eval/{k}": float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
