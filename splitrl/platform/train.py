"""``splitrl train``: run an RLlib algorithm on the LyaPPO world with checkpoints, resume and MLflow.

Output directory layout (``--out``, default ``runs/<run name>-<UTC time>``)::

    config.yaml               the resolved config
    run.json                  MLflow URI and run id, so a resumed job continues the same run
    metrics.jsonl             one line of metrics per iteration
    checkpoints/iter_000010/  algorithm/ (RLlib checkpoint) + splitrl.json (counters, config)
    checkpoints/latest        name of the newest complete checkpoint
    compare.json/.txt/.png    trained agent vs. the baselines on the evaluation episodes

A checkpoint is written into a temporary directory and renamed into place, then ``latest`` is
replaced atomically, so an interrupted job never leaves a corrupt "latest" checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from splitrl.platform.algorithms import EPISODE_METRICS
from splitrl.platform.config import ConfigError, policy_name
from splitrl.platform.emh import EPISODE_METRICS as EMH_EPISODE_METRICS
from splitrl.platform.files import atomic_write_text
from splitrl.platform.tracking import Tracker, git_commit, run_params

KEEP_CHECKPOINTS = 3


# ---- checkpoints ---------------------------------------------------------------------------------
def latest_checkpoint(path: str | Path) -> Path:
    """The newest complete checkpoint under a run directory (or ``path`` itself if it is one)."""
    p = Path(path)
    if (p / "splitrl.json").is_file() and (p / "algorithm").is_dir():
        return p
    latest = p / "checkpoints" / "latest"
    if latest.is_file():
        ckpt = p / "checkpoints" / latest.read_text().strip()
        if (ckpt / "splitrl.json").is_file():
            return ckpt
    raise ConfigError(str(path), "no complete splitrl checkpoint found (expected a run directory with "
                      "checkpoints/latest or a checkpoint directory with splitrl.json)")


def save_checkpoint(algo, run_dir: Path, state: dict) -> Path:
    ckpt_root = run_dir / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    name = f"iter_{state['iteration']:06d}"
    tmp = ckpt_root / f".tmp-{name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    algo.save_to_path(str((tmp / "algorithm").resolve()))
    (tmp / "splitrl.json").write_text(json.dumps(state, indent=1, default=str) + "\n")
    final = ckpt_root / name
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    atomic_write_text(ckpt_root / "latest", name + "\n")
    old = sorted(p for p in ckpt_root.glob("iter_*") if p.is_dir())[:-KEEP_CHECKPOINTS]
    for p in old:
        shutil.rmtree(p, ignore_errors=True)
    return final


# ---- progress ------------------------------------------------------------------------------------
class Progress:
    """A live one-line display on a terminal; plain lines otherwise."""

    def __init__(self, stream=None, enabled: bool = True):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self.world = "lyappo"  # which metrics the line shows; train() sets it from the config

    def update(self, it: int, stop: dict, m: dict) -> None:
        if not self.enabled:
            return
        total = f"/{stop['iterations']}" if stop.get("iterations") else ""
        def fmt(key, spec, scale=1.0):
            return format(m[key] * scale, spec) if key in m else "-"

        head = (f"iter {it}{total}  steps {int(m['env_steps']):,}  {m['env_steps_per_s']:,.0f} steps/s  "
                f"return {fmt('episode_return_mean', '.1f')}  ")
        if self.world == "emh":
            body = (f"latency {fmt('latency', '.2f')} s  energy {fmt('energy', '.4f')} J/task  "
                    f"waiting {fmt('waiting', '.3f')} s/task")
        else:
            body = f"energy {fmt('energy', '.3f', 1e3)} mJ/slot  backlog {fmt('backlog', '.3f')} s"
        line = f"{head}{body}  {m['time_s']:.0f} s"
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


def _metrics(result: dict, t_start: float, steps0: float, time0: float, reward_scale: float = 1.0) -> dict:
    """Curated per-iteration metrics.  ``episode_return_mean`` is in the env's reward units: the
    learner's scaled return, or in the EMH world the team return (RLlib would sum the agents')."""
    er = result.get("env_runners", {})
    steps = float(result.get("num_env_steps_sampled_lifetime", 0.0))
    elapsed = time.perf_counter() - t_start
    out = {
        "env_steps": steps,
        "time_s": time0 + elapsed,
        "env_steps_per_s": (steps - steps0) / max(elapsed, 1e-9),
        # in the env's reward units (the learner sees them times reward_scale)
        "episode_return_mean": (er["episode_return_mean"] / reward_scale
                                if er.get("episode_return_mean") is not None else None),
    }
    if "return" in er:  # EMH world: the team return logged by the metrics callback (unscaled)
        out["episode_return_mean"] = er["return"]
    for key in EPISODE_METRICS + EMH_EPISODE_METRICS:
        if key in er and key != "return":
            out[key] = er[key]
    learners = result.get("learners", {})
    learner = learners.get("default_policy", learners.get("md_0", {}))
    for key in ("policy_loss", "vf_loss", "entropy", "mean_kl_loss", "qf_loss"):
        if key in learner:
            out[f"learner/{key}"] = learner[key]
    # the coefficients' current values (they may follow a schedule over env steps)
    for key, name in (("curr_entropy_coeff", "entropy_coeff"), ("curr_window_entropy_coeff", "window_entropy_coeff")):
        if key in learner:
            out[f"learner/{name}"] = learner[key]
    # the window-size entropy of the agent closest to a deterministic window (EMH task MDP)
    window = [m["window_entropy"] for m in learners.values() if isinstance(m, dict) and "window_entropy" in m]
    if window:
        out["learner/window_entropy_min"] = min(window)
    return {k: float(v) for k, v in out.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}


def _init_ray(cfg: dict, address: str | None) -> None:
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
        ray.init(num_cpus=cfg["resources"]["num_cpus"] or os.cpu_count(), include_dashboard=False,
                 log_to_driver=False, configure_logging=False, _node_ip_address="127.0.0.1")
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


def _drop_metrics_after(path: Path, iteration: int) -> None:
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


def _check_resume_matches(saved: dict, cfg: dict) -> None:
    for section in ("scenario", "algorithm"):
        for key, value in saved[section].items():
            if cfg[section].get(key) != value:
                raise ConfigError(f"{section}.{key}", f"differs from the run being resumed "
                                  f"({value!r} there, {cfg[section].get(key)!r} here)")


def train(cfg: dict, *, out: str | Path | None = None, resume: str | Path | None = None,
          address: str | None = None, mlflow_uri: str | None = None, progress: Progress | None = None,
          compare_after: bool = True) -> dict:
    """Train per ``cfg`` (resolved); returns a summary with the final checkpoint and metrics."""
    if cfg["scenario"].get("world") == "emh":
        from splitrl.platform.emh import build_algo_config
    else:
        from splitrl.platform.algorithms import build_algo_config

    progress = progress or Progress()
    progress.world = cfg["scenario"].get("world", "lyappo")
    alg_name = cfg["algorithm"]["name"]
    run_name = cfg["tracking"]["run_name"] or f"{alg_name}-{cfg['scenario']['name']}"
    state: dict[str, Any] = {"iteration": 0, "env_steps": 0.0, "time_s": 0.0}
    run_info: dict[str, Any] = {}
    if resume:
        ckpt = latest_checkpoint(resume)
        saved = json.loads((ckpt / "splitrl.json").read_text())
        _check_resume_matches(saved["config"], cfg)
        run_dir = ckpt.parent.parent
        state.update({k: saved[k] for k in ("iteration", "env_steps", "time_s")})
        _drop_metrics_after(run_dir / "metrics.jsonl", state["iteration"])
        if (run_dir / "run.json").is_file():
            run_info = json.loads((run_dir / "run.json").read_text())
    else:
        ckpt = None
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        run_dir = Path(out) if out else Path("runs") / f"{run_name}-{stamp}"
        if run_dir.exists() and any(run_dir.iterdir()):
            raise ConfigError(str(run_dir), "output directory exists and is not empty (use --resume to continue it)")

    tracker = Tracker(cfg["tracking"], uri_override=mlflow_uri or run_info.get("mlflow_uri"))
    _init_ray(cfg, address)
    algo = None
    status = "FAILED"
    try:
        algo = build_algo_config(cfg).build_algo()
        if ckpt is not None:
            algo.restore_from_path(str((ckpt / "algorithm").resolve()))
            progress.log(f"resumed from {ckpt} (iteration {state['iteration']}, {int(state['env_steps']):,} env steps)")
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        run_id = tracker.start(run_name, {"git_commit": git_commit(), "scenario": cfg["scenario"]["name"],
                                          "algorithm": policy_name(cfg), "run_dir": str(run_dir)},
                               run_id=run_info.get("mlflow_run_id"))
        if tracker.resumed_elsewhere:
            progress.log(f"MLflow run {tracker.resumed_elsewhere} is not in {tracker.uri} or was deleted there: "
                         f"continuing in a new "
                         f"run {run_id} there (tag splitrl.resumed_from_run; earlier metrics stay in "
                         f"{run_info.get('mlflow_uri')})")
        if run_id:
            (run_dir / "run.json").write_text(json.dumps({"mlflow_uri": tracker.uri, "mlflow_run_id": run_id}) + "\n")
            tracker.log_params(run_params(cfg))

        stop = cfg["stop"]
        t_start, steps0, time0 = time.perf_counter(), state["env_steps"], state["time_s"]
        every = cfg["resources"]["checkpoint_every"]
        metrics: dict[str, float] = {}
        last_saved = None
        with (run_dir / "metrics.jsonl").open("a") as mlog:
            while not _should_stop(stop, state):
                result = algo.train()
                state["iteration"] += 1
                metrics = _metrics(result, t_start, steps0, time0, cfg["algorithm"]["reward_scale"])
                state["env_steps"], state["time_s"] = metrics["env_steps"], metrics["time_s"]
                tracker.log_metrics(metrics, step=state["iteration"])
                mlog.write(json.dumps({"iteration": state["iteration"], **metrics}) + "\n")
                mlog.flush()
                progress.update(state["iteration"], stop, metrics)
                if state["iteration"] % every == 0:
                    last_saved = save_checkpoint(algo, run_dir, {**state, "config": cfg})
        progress.done()
        if last_saved is None or json.loads((last_saved / "splitrl.json").read_text())["iteration"] != state["iteration"]:
            last_saved = save_checkpoint(algo, run_dir, {**state, "config": cfg})
        progress.log(f"checkpoint: {last_saved}")
        tracker.log_artifact(last_saved, artifact_path="checkpoint")
        summary = {"run_dir": str(run_dir), "checkpoint": str(last_saved), "mlflow_run_id": tracker.run_id,
                   "mlflow_uri": tracker.uri if tracker.enabled else None, **state, "metrics": metrics}
        if compare_after:
            summary["compare"] = _compare_trained(cfg, last_saved, run_dir, tracker, progress)
        status = "FINISHED"
        return summary
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C, or SIGTERM (Terminated)
        status = "KILLED"
        try:
            where = f"the last complete checkpoint is {latest_checkpoint(run_dir)}; continue with --resume {run_dir}"
        except ConfigError:
            where = "no checkpoint was written"
        print(f"splitrl: training interrupted at iteration {state['iteration']}: the MLflow run ends KILLED; "
              f"{where}", file=sys.stderr, flush=True)
        raise
    finally:
        if algo is not None:
            algo.stop()
        tracker.end(status)


def _should_stop(stop: dict, state: dict) -> bool:
    return ((stop["iterations"] is not None and state["iteration"] >= stop["iterations"])
            or (stop["env_steps"] is not None and state["env_steps"] >= stop["env_steps"])
            or (stop["time_s"] is not None and state["time_s"] >= stop["time_s"]))


def run_comparison(policies: list, cfg: dict, progress) -> tuple[dict, str, Any]:
    """Compare ``policies`` on ``cfg``'s world; returns ``(result, table, plot function)``."""
    if cfg["scenario"].get("world") == "emh":
        from splitrl.platform.emh import compare_emh, format_emh_table, plot_emh

        result = compare_emh(policies, cfg["scenario"], cfg["evaluation"], progress=progress)
        return result, format_emh_table(result), plot_emh
    from splitrl.platform.compare import compare, format_table, plot

    result = compare(policies, cfg["scenario"], cfg["evaluation"], progress=progress)
    return result, format_table(result), plot


def make_world_baselines(cfg: dict) -> list:
    if cfg["scenario"].get("world") == "emh":
        from splitrl.platform.emh import make_emh_baselines

        return make_emh_baselines(cfg["evaluation"])
    from splitrl.platform.baselines import make_baselines

    return make_baselines(cfg["evaluation"])


def _compare_trained(cfg: dict, ckpt: Path, run_dir: Path, tracker: Tracker, progress: Progress) -> dict:
    from splitrl.platform.compare import write_json
    from splitrl.platform.policies import load_trained_policy

    policies = [load_trained_policy(ckpt)] + make_world_baselines(cfg)
    result, table, plot = run_comparison(policies, cfg, progress.log)
    print(table)
    write_json(result, run_dir / "compare.json")
    (run_dir / "compare.txt").write_text(table + "\n")
    plot(result, run_dir / "compare.png")
    for name in ("compare.json", "compare.txt", "compare.png"):
        tracker.log_artifact(run_dir / name, artifact_path="compare")
    trained = result["policies"][policies[0].name]
    tracker.log_metrics({f"eval/{k}": v for k, v in trained.items() if isinstance(v, (int, float))},
                        step=json.loads((ckpt / "splitrl.json").read_text())["iteration"])
    return result

