"""End-to-end training flows on real Ray and real MLflow (a server on 127.0.0.1 and the embedded store).

Tiny budgets: 2-device scenarios, 20-period episodes, a few hundred env steps per iteration.
"""

import json
import os
import signal
import subprocess
import sys

import pytest
import yaml
from mlflow.tracking import MlflowClient

TINY = {
    "scenario": {"name": "tiny", "num_devices": 2, "episode_periods": 20},
    "algorithm": {
        "train_batch_size": 200,
        "minibatch_size": 50,
        "num_epochs": 2,
        "learning_starts": 50,
        "ddpg_batch_size": 32,
    },
    "stop": {"iterations": 2},
    "evaluation": {"episodes": 1, "episode_periods": 10, "baselines": ["Local-only", "Random-Cov"]},
    "resources": {"num_cpus": 2, "num_env_runners": 0, "num_envs_per_env_runner": 4, "checkpoint_every": 1},
}


def splitrl(*args, cwd, timeout=420):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # the default store is tested
    return subprocess.run(
        [sys.executable, "-m", "splitrl.platform.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def write_cfg(path, **sections):
    cfg = json.loads(json.dumps(TINY))
    for section, values in sections.items():
        cfg.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(cfg))
    return path


def runs_of(uri, experiment="splitrl"):
    """The `splitrl train` runs in the (session-wide) server: not the sweep tests' runs."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id]) if exp else []
    return [r for r in runs if "splitrl.sweep" not in r.data.tags]


@pytest.mark.timeout(900)
def test_train_evaluate_compare_resume_against_mlflow_server(tmp_path, mlflow_server):
    cfg = write_cfg(tmp_path / "tiny.yaml")
    out = splitrl("train", str(cfg), "--out", "run", "--mlflow-uri", mlflow_server, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    run_dir = tmp_path / "run"
    # plain progress lines when not on a terminal, one per iteration
    assert [ln.split()[1] for ln in out.stderr.splitlines() if ln.startswith("iter ")] == ["1/2", "2/2"]
    ckpt = run_dir / "checkpoints" / (run_dir / "checkpoints" / "latest").read_text().strip()
    state = json.loads((ckpt / "splitrl.json").read_text())
    assert state["iteration"] == 2 and state["env_steps"] >= 400
    assert not list((run_dir / "checkpoints").glob(".tmp-*"))

    [run] = runs_of(mlflow_server)
    assert run.info.status == "FINISHED"
    assert run.data.params["algorithm.lr"] == "0.0003" and run.data.params["scenario.num_devices"] == "2"
    assert run.data.tags["scenario"] == "tiny" and run.data.tags["algorithm"] == "LyaPPO"
    assert len(run.data.tags["git_commit"]) >= 7
    client = MlflowClient(mlflow_server)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "env_steps")] == [1, 2]
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"checkpoint", "compare"} <= arts
    compare = json.loads((run_dir / "compare.json").read_text())
    assert list(compare["policies"]) == ["LyaPPO", "Local-only", "Random-Cov"]

    ev = splitrl("evaluate", "run", "--episodes", "2", "--json", "eval.json", cwd=tmp_path)
    assert ev.returncode == 0, ev.stderr[-3000:]
    metrics = json.loads((tmp_path / "eval.json").read_text())["metrics"]
    assert metrics["episodes"] == 2 and metrics["energy"] == pytest.approx(
        metrics["energy_local"] + metrics["energy_tx"]
    )

    cmp_ = splitrl("compare", str(cfg), "--checkpoint", "run", "--json", "cmp.json", "--plot", "cmp.png", cwd=tmp_path)
    assert cmp_.returncode == 0, cmp_.stderr[-3000:]
    policies = json.loads((tmp_path / "cmp.json").read_text())["policies"]
    assert list(policies) == ["LyaPPO", "Local-only", "Random-Cov"]
    # the trained agent in `compare` is evaluated on the same seeded episodes as in `evaluate`
    assert "LyaPPO" in cmp_.stdout

    res = splitrl("train", str(cfg), "--resume", "run", "--set", "stop.iterations=3", "--no-compare", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resumed from" in res.stderr
    [run2] = runs_of(mlflow_server)
    assert run2.info.run_id == run.info.run_id and run2.info.status == "FINISHED"
    steps = client.get_metric_history(run.info.run_id, "env_steps")
    assert [m.step for m in steps] == [1, 2, 3]
    assert steps[-1].value > steps[1].value
    latest = (run_dir / "checkpoints" / "latest").read_text().strip()
    assert latest == "iter_000003"


@pytest.mark.timeout(900)
@pytest.mark.parametrize("algorithm, name", [("ppo", "PPO"), ("ddpg-cov", "DDPG-Cov")])
def test_learning_baselines_train_through_the_same_cli(tmp_path, algorithm, name):
    cfg = write_cfg(
        tmp_path / "c.yaml",
        algorithm={"name": algorithm},
        stop={"iterations": 1},
        evaluation={"baselines": ["Local-only"]},
    )
    out = splitrl("train", str(cfg), "--out", "run", cwd=tmp_path)  # embedded SQLite store
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "mlflow.db").exists()
    [run] = runs_of(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert run.info.status == "FINISHED" and run.data.tags["algorithm"] == name
    compare = json.loads((tmp_path / "run" / "compare.json").read_text())
    assert list(compare["policies"]) == [name, "Local-only"]
    m = compare["policies"][name]
    assert m["energy"] == pytest.approx(m["energy_local"] + m["energy_tx"]) and m["energy"] >= 0
    assert 0.0 <= m["partition"] <= 1.0


@pytest.mark.parametrize(
    "sets, key",
    [
        (["algorithm.name=a2c"], "algorithm.name"),
        (["stop.iterations=0"], "stop.iterations"),
        (["scenario.arrival_rate=-1"], "scenario.arrival_rate"),
        (["resources.num_env_runnerz=2"], "resources.num_env_runnerz"),
    ],
)
def test_bad_train_config_creates_nothing(tmp_path, sets, key):
    cfg = write_cfg(tmp_path / "c.yaml")
    args = ["train", str(cfg), "--out", "run"]
    for s in sets:
        args += ["--set", s]
    out = splitrl(*args, cwd=tmp_path, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith(f"splitrl: error: {key}")
    assert not (tmp_path / "run").exists() and not (tmp_path / "mlflow.db").exists()


def _refusing_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.timeout(120)
def test_unreachable_mlflow_server_is_one_line_and_exit_2_in_seconds(tmp_path):
    """``train`` and ``sweep`` against a tracking URI where no server listens, and one whose
    ``/health`` fails: exit 2, one ``splitrl: error:`` line naming where the URI came from, no
    traceback, nothing written, well before MLflow's own minutes of retries."""
    import http.server
    import threading
    import time

    cfg = write_cfg(tmp_path / "c.yaml")
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({"name": "s", "base": "c.yaml", "grid": {"algorithm.lr": [1e-3]}, "seeds": [0]}))

    class Failing(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_error(503, "down for maintenance")

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for uri, why in (
            (f"http://127.0.0.1:{_refusing_port()}", "Connection refused"),
            (f"http://127.0.0.1:{server.server_address[1]}", "HTTP 503"),
        ):
            for args in (["train", str(cfg), "--out", "run"], ["sweep", str(sweep), "--out", "sw"]):
                t0 = time.monotonic()
                out = splitrl(*args, "--mlflow-uri", uri, cwd=tmp_path, timeout=100)
                took = time.monotonic() - t0
                assert out.returncode == 2, out.stderr[-2000:]
                lines = [ln for ln in out.stderr.strip().splitlines() if "Token authentication" not in ln]
                assert len(lines) == 1 and lines[0].startswith("splitrl: error: --mlflow-uri: no MLflow server")
                assert why in lines[0] and "Traceback" not in out.stderr
                assert took < 60  # seconds (interpreter and imports included), not MLflow's minutes
                assert not (tmp_path / "run").exists() and not (tmp_path / "sw").exists()
                assert not (tmp_path / "mlflow.db").exists()
    finally:
        server.shutdown()
        server.server_close()
    # the same URI from the config file names the config key
    cfg = write_cfg(tmp_path / "c2.yaml", tracking={"mlflow_uri": f"http://127.0.0.1:{_refusing_port()}"})
    out = splitrl("train", str(cfg), "--out", "run", cwd=tmp_path, timeout=100)
    assert out.returncode == 2 and out.stderr.strip().splitlines()[-1].startswith("splitrl: error: tracking.mlflow_uri")


@pytest.mark.timeout(300)
def test_failed_training_ends_the_mlflow_run_failed(tmp_path, monkeypatch):
    """An exception inside training leaves no dangling (RUNNING) MLflow run."""
    import ray

    from splitrl.platform.config import resolve_config
    from splitrl.platform.train import train
    from splitrl.worlds.lyappo import algorithms

    cfg = resolve_config(TINY)
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    real_build = algorithms.build_algo_config

    class Boom:
        def __init__(self, algo):
            self.algo = algo

        def train(self):
            raise RuntimeError("simulated failure in an iteration")

        def __getattr__(self, name):
            return getattr(self.algo, name)

    def build(cfg_):
        config = real_build(cfg_)
        original = config.build_algo
        config.build_algo = lambda: Boom(original())
        return config

    monkeypatch.setattr(algorithms, "build_algo_config", build)
    try:
        with pytest.raises(RuntimeError, match="simulated failure"):
            train(cfg, out=tmp_path / "run", mlflow_uri=uri, compare_after=False)
    finally:
        ray.shutdown()
    [run] = runs_of(uri)
    assert run.info.status == "FAILED"
    assert not (tmp_path / "run" / "checkpoints" / "latest").exists()


def interrupt_training(tmp_path, sig, at_iteration):
    """`splitrl train` (200 tiny iterations) sent ``sig`` once it reports ``at_iteration``:
    (config path, exit status, stderr)."""
    import time

    cfg = write_cfg(tmp_path / "c.yaml", stop={"iterations": 200})
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    # as from a terminal: a shell without job control (`cmd &`, nohup) starts its children with
    # SIGINT ignored, and Python then installs no KeyboardInterrupt handler: undo that inheritance
    proc = subprocess.Popen(
        [sys.executable, "-m", "splitrl.platform.cli", "train", str(cfg), "--out", "run", "--no-compare"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    seen = []
    deadline = time.time() + 300
    for line in proc.stderr:
        seen.append(line)
        if line.startswith(f"iter {at_iteration}/"):
            proc.send_signal(sig)
            break
        assert time.time() < deadline, "".join(seen[-20:])
    err = proc.communicate(timeout=120)[1]
    return cfg, proc.returncode, err


@pytest.mark.timeout(600)
def test_interrupted_run_leaves_a_complete_checkpoint_and_resumes(tmp_path):
    """SIGTERM mid-training: no RUNNING MLflow run, `latest` names a complete checkpoint, resume works."""
    cfg, code, err = interrupt_training(tmp_path, signal.SIGTERM, 3)
    # 128 + SIGTERM and one line each from train and the CLI; not Ray's C++ stack dump and SIGABRT (134)
    assert code == 143, err[-3000:]
    assert "SIGTERM received" not in err and "Traceback" not in err
    assert "the MLflow run ends KILLED; the last complete checkpoint is run/checkpoints/iter_" in err
    assert err.rstrip().endswith("splitrl: terminated (SIGTERM)")
    [run] = runs_of(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert run.info.status in ("KILLED", "FAILED")
    ckpt_root = tmp_path / "run" / "checkpoints"
    latest = ckpt_root / (ckpt_root / "latest").read_text().strip()
    state = json.loads((latest / "splitrl.json").read_text())
    assert 2 <= state["iteration"] <= 4 and (latest / "algorithm").is_dir()

    # a row of an iteration trained after the last checkpoint (lost with the interruption)
    mlog = tmp_path / "run" / "metrics.jsonl"
    mlog.write_text(mlog.read_text() + json.dumps({"iteration": state["iteration"] + 1, "env_steps": -1.0}) + "\n")
    res = splitrl(
        "train",
        str(cfg),
        "--resume",
        "run",
        "--set",
        f"stop.iterations={state['iteration'] + 1}",
        "--no-compare",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [json.loads(line) for line in mlog.read_text().splitlines()]
    assert [r["iteration"] for r in rows] == list(range(1, state["iteration"] + 2))  # each iteration once
    assert rows[-1]["env_steps"] > 0
    [run2] = runs_of(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert run2.info.run_id == run.info.run_id and run2.info.status == "FINISHED"
    done = json.loads((ckpt_root / (ckpt_root / "latest").read_text().strip() / "splitrl.json").read_text())
    assert done["iteration"] == state["iteration"] + 1 and done["env_steps"] > state["env_steps"]

    # resumed against another store (a copied run directory): a new run there, linked to the old one
    other = f"sqlite:///{tmp_path / 'other.db'}"
    res = splitrl(
        "train",
        str(cfg),
        "--resume",
        "run",
        "--mlflow-uri",
        other,
        "--set",
        f"stop.iterations={state['iteration'] + 2}",
        "--no-compare",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"MLflow run {run.info.run_id} is not in {other}" in res.stderr
    [run3] = runs_of(other)
    assert run3.info.status == "FINISHED" and run3.data.tags["splitrl.resumed_from_run"] == run.info.run_id
    assert json.loads((tmp_path / "run" / "run.json").read_text()) == {
        "mlflow_uri": other,
        "mlflow_run_id": run3.info.run_id,
    }

    # its MLflow run deleted (MLflow refuses to restart a deleted run): again a new, linked run
    MlflowClient(other).delete_run(run3.info.run_id)
    res = splitrl(
        "train",
        str(cfg),
        "--resume",
        "run",
        "--set",
        f"stop.iterations={state['iteration'] + 3}",
        "--no-compare",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    [run4] = runs_of(other)
    assert run4.info.status == "FINISHED" and run4.data.tags["splitrl.resumed_from_run"] == run3.info.run_id


def test_resume_keeps_each_metrics_row_up_to_the_checkpoint_once(tmp_path):
    from splitrl.platform.train import drop_metrics_after

    path = tmp_path / "metrics.jsonl"
    rows = [json.dumps({"iteration": i, "env_steps": 100.0 * i}) + "\n" for i in (1, 2, 3, 4)]
    path.write_text("".join(rows) + '{"iteration": 5, "env_st')  # the last line cut by a kill
    drop_metrics_after(path, 3)
    assert path.read_text() == "".join(rows[:3])
    drop_metrics_after(path, 3)  # nothing to drop: unchanged
    assert path.read_text() == "".join(rows[:3])


@pytest.mark.timeout(300)
def test_ctrl_c_ends_training_with_130_and_no_traceback(tmp_path):
    _, code, err = interrupt_training(tmp_path, signal.SIGINT, 2)
    assert code == 130, err[-3000:]
    assert "Traceback" not in err and err.rstrip().endswith("splitrl: interrupted")
    [run] = runs_of(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert run.info.status == "KILLED"


EMH_TINY = {
    "scenario": {"world": "emh", "name": "emh-tiny", "l0_s": 0.1, "task_mean": 8},
    "algorithm": {"train_batch_size": 64, "minibatch_size": 32, "num_epochs": 1},
    "stop": {"iterations": 1},
    "evaluation": {"episodes": 2, "fixed_tasks": 6},
    "resources": {"num_cpus": 2, "num_env_runners": 0, "num_envs_per_env_runner": 2, "checkpoint_every": 1},
}


@pytest.mark.timeout(900)
def test_emh_train_then_compare_json_names_every_policy(tmp_path, mlflow_server):
    runs = {}
    for name, extra in (
        ("emh", {}),
        ("time", {"scenario": {"mdp": "time", "slot_ms": 300}}),
        ("vertical", {"scenario": {"partitioning": "vertical"}}),
        ("hppo", {"algorithm": {"name": "h-ppo"}}),
        ("mahppo", {"algorithm": {"name": "mahppo"}}),
    ):
        cfg = json.loads(json.dumps(EMH_TINY))
        for section, values in extra.items():
            cfg[section].update(values)
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
        args = ["train", f"{name}.yaml", "--out", name, "--mlflow-uri", mlflow_server]
        if name != "emh":
            args.append("--no-compare")
        out = splitrl(*args, cwd=tmp_path)
        assert out.returncode == 0, out.stderr[-3000:]
        runs[name] = tmp_path / name
    # the training run compared itself with the world's baselines
    own = json.loads((runs["emh"] / "compare.json").read_text())
    assert set(own["policies"]) == {"EMH-PPO", "Local-only", "AgileNN", "Round-robin", "CSI-sharing"}
    out = splitrl(
        "compare",
        "emh.yaml",
        *sum((["--checkpoint", str(r)] for r in runs.values()), []),
        "--json",
        "cmp.json",
        "--plot",
        "cmp.png",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    pol = json.loads((tmp_path / "cmp.json").read_text())["policies"]
    assert set(pol) == {
        "EMH-PPO",
        "EMH-PPO (time-based)",
        "EMH-PPO (vertical)",
        "H-PPO",
        "MAHPPO",
        "Local-only",
        "AgileNN",
        "Round-robin",
        "CSI-sharing",
    }
    for m in pol.values():
        assert {"latency", "energy", "reward", "waiting"} <= set(m)
    local = pol["Local-only"]
    # local-only: 6 tasks x 5 L0 per device, zeta * MACs per task, nobody waits
    assert local["latency"] == pytest.approx(6 * 5 * 0.1) and local["waiting"] == 0.0
    assert local["energy"] == pytest.approx(1e-5 * 4089184256 / 1e6, rel=1e-6)
    assert (tmp_path / "cmp.png").stat().st_size > 10_000
    # the emh run is in MLflow with the world's params and the team-return metric
    run = [
        r
        for r in runs_of(mlflow_server)
        if r.data.tags.get("scenario") == "emh-tiny" and r.data.tags.get("algorithm") == "EMH-PPO"
    ][0]
    assert run.info.status == "FINISHED" and run.data.params["scenario.world"] == "emh"
    assert "episode_return_mean" in run.data.metrics and "latency" in run.data.metrics
