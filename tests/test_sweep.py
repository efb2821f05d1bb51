"""``splitrl sweep``: the sweep file's errors, an end-to-end sweep tracked in a real MLflow server,
resume after an interrupt, ``ray job submit`` to a real head on loopback, and a two-node cluster."""

import copy
import csv
import json
import math
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from splitrl.platform.config import ConfigError
from splitrl.tuning.spec import load_sweep, validate_sweep
from splitrl.tuning.trial import trial_config

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SMOKE = REPO / "configs" / "sweeps" / "smoke.yaml"


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"
    env.update(extra)
    return env


def _smoke(**changes) -> dict:
    raw = yaml.safe_load(SMOKE.read_text())
    raw["base"] = str(REPO / "configs" / "lyappo.yaml")
    for key, value in changes.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    return raw


def _write(tmp_path: Path, raw: dict, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


def _rows(out: Path) -> list[dict]:
    with (out / "results.csv").open() as f:
        return list(csv.DictReader(f))


# ---- the sweep file -------------------------------------------------------------------------------
BAD = [
    ({"grids": {}}, "grids", "unknown sweep key"),
    ({"grid": {"scenario.num_devices": [2, 0]}}, "grid.scenario.num_devices", "scenario.num_devices"),
    ({"grid": {"scenario.num_device": [2]}}, "grid.scenario.num_device", "unknown"),
    ({"grid": {"scenario.num_devices": []}}, "grid.scenario.num_devices", "non-empty list"),
    ({"grid": {"algorithm.seed": [1, 2]}}, "grid.algorithm.seed", "seeds"),
    ({"algorithms": ["emh-ppo"]}, "algorithms", "does not run in world 'lyappo'"),
    ({"seeds": [0, 0]}, "seeds", "distinct"),
    ({"search": {"algorithm.lr": {"loguniform": [0, 1e-3]}}}, "search.algorithm.lr.loguniform", "> 0"),
    ({"search": {"algorithm.lr": {"uniform": [1e-3, 1e-4]}}}, "search.algorithm.lr.uniform", "low < high"),
    ({"search": {"algorithm.lr": {"normal": [0, 1]}}}, "search.algorithm.lr", "loguniform"),
    ({"search": {"algorithm.lr": {"choice": [1e-3, -1]}}}, "search.algorithm.lr", "algorithm.lr"),
    ({"metric": "reward"}, "metric", "episode_return_mean"),
    ({"mode": "up"}, "mode", "min or max"),
    ({"scheduler": "hyperband"}, "scheduler", "asha"),
    ({"scheduler": {"name": "asha", "grace": 2}}, "scheduler.grace", "grace_period"),
    ({"baselines": ["AgileNN"]}, "baselines", "Fix-Cov"),
    ({"max_concurrent": 0}, "max_concurrent", ">= 1"),
    ({"plot_metrics": ["latency_vs_local"]}, "plot_metrics", "energy"),
    ({"base": "nowhere.yaml"}, "base", "not found"),
    ({"set": {"scenario.p_max_w": "lots"}}, "set", "scenario.p_max_w"),
]


@pytest.mark.parametrize("change,key,words", BAD, ids=[b[1] + "-" + str(i) for i, b in enumerate(BAD)])
def test_bad_sweep_names_key(tmp_path, change, key, words):
    raw = _smoke(**change)
    with pytest.raises(ConfigError) as exc:
        validate_sweep(raw, tmp_path)
    assert exc.value.key == key, str(exc.value)
    assert words in str(exc.value)


def test_bad_sweep_cli_exits_2_and_writes_nothing(tmp_path):
    path = _write(tmp_path, _smoke(grid={"scenario.num_devices": [2, 0]}))
    out = tmp_path / "out"
    proc = subprocess.run(
        [str(VENV_BIN / "splitrl"), "sweep", str(path), "--out", str(out)],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("splitrl: error: grid.scenario.num_devices:")
    assert not out.exists() and not (tmp_path / "mlflow.db").exists()


def test_trials_are_the_product_of_what_varies(tmp_path):
    raw = _smoke(
        grid={"scenario.f_local_max_hz": [1e9, 2e9], "scenario.p_max_w": [0.2, 0.3, 0.4]},
        algorithms=["lyappo", "ppo"],
        seeds=[0, 1],
        search={"algorithm.num_epochs": {"grid": [2, 3]}, "algorithm.lr": {"loguniform": [1e-4, 1e-3]}},
        num_samples=3,
    )
    spec = validate_sweep(raw, tmp_path)
    assert spec["num_trials"] == 6 * 2 * 2 * 2 * 3
    assert len(spec["points"]) == 6 and spec["scheduler"]["name"] == "fifo"  # a scenario grid: FIFO
    assert validate_sweep(_smoke(grid=None, search=raw["search"]), tmp_path)["scheduler"]["name"] == "asha"
    key = "f_local_max_hz=2e+09,p_max_w=0.4"
    cfg = trial_config(
        spec["points"],
        {"point": key, "algorithm.name": "ppo", "algorithm.seed": 1, "algorithm.num_epochs": 3, "algorithm.lr": 2e-4},
    )
    assert cfg["scenario"]["f_local_max_hz"] == 2e9 and cfg["scenario"]["p_max_w"] == 0.4
    assert (cfg["algorithm"]["name"], cfg["algorithm"]["seed"], cfg["algorithm"]["num_epochs"]) == ("ppo", 1, 3)
    assert cfg["algorithm"]["lr"] == 2e-4 and cfg["stop"]["iterations"] == 2  # the sweep's `set`


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "configs" / "sweeps").glob("*.yaml")))
def test_every_shipped_sweep_file_validates(name):
    """The sweep files in configs/sweeps resolve (every key known, every value allowed) into the
    trials their comments describe."""
    spec = load_sweep(REPO / "configs" / "sweeps" / name)
    assert spec["num_trials"] >= 2 and spec["points"]
    if name == "emh_partitioning.yaml":  # Table V's shape: 2 partitionings x 3 models x 2 input models
        assert len(spec["points"]) == 12 and spec["num_trials"] == 24
        scenarios = [p["config"]["scenario"] for p in spec["points"].values()]
        assert {(s["partitioning"], s["model"], s["input_bits_per_element"]) for s in scenarios} == {
            (p, m, b)
            for p in ("operator", "vertical")
            for m in ("resnet50", "googlenet", "mobilenet_v2")
            for b in (0.5, 8.0)
        }


@pytest.mark.parametrize(
    "grid, ticks",
    [
        ({"scenario.partition_points": ["pareto", "all"]}, ["pareto", "all"]),
        (
            {"algorithm.entropy_coeff": [0.0, [[0, 0.03], [1000, 0]]], "scenario.p_max_w": [0.2, 0.3]},
            ["0", "[[0, 0.03], [1000, 0]]"],
        ),
        ({"scenario.p_max_w": [0.3, 0.2]}, None),
    ],
)
def test_sweep_figures_take_non_numeric_grid_values_in_grid_order(tmp_path, grid, ticks):
    """A grid over names or schedules plots at the values' places in the grid (labelled); numbers at
    their value.  Rows -> summary -> figures as a sweep's end does (baseline rows, no training)."""
    import matplotlib.image

    from splitrl import worlds
    from splitrl.tuning import aggregate
    from splitrl.tuning.spec import eval_metrics

    spec = validate_sweep(_smoke(grid=grid), tmp_path)
    xkey = next(iter(grid))
    position, got = aggregate.x_axis(spec["grid"][xkey])
    assert got == ticks
    want = range(len(grid[xkey])) if ticks else grid[xkey]
    assert [position(v) for v in grid[xkey]] == [float(x) for x in want]
    metrics = {m: 1.0 + i for i, m in enumerate(eval_metrics(worlds.get("lyappo")))}
    rows = [aggregate.baseline_row(spec, pk, b, metrics) for pk in spec["points"] for b in spec["baselines"]]
    figures = aggregate.plot_sweep(spec, aggregate.summarize(spec, rows), tmp_path)
    assert [f.name for f in figures] == [f"fig_{m}.png" for m in spec["plot_metrics"]]
    assert all(matplotlib.image.imread(f).ndim == 3 for f in figures)


def test_decades_go_on_a_log_axis_and_summaries_sort_numbers_by_value():
    from splitrl.tuning import aggregate

    assert aggregate.log_x([0.1, 1.0, 10.0, 1000.0])
    assert not aggregate.log_x([1.0, 2.0, 5.0, 50.0])  # under two decades
    assert not aggregate.log_x([0.0, 1.0, 1000.0])  # not all positive
    assert not aggregate.log_x(["resnet18", "alexnet", "vgg"])
    spec = {"grid": {"scenario.lyapunov_v": [0.1, 50, 1000]}, "search": {}, "plot_metrics": [], "world": "enachi"}
    summary = [{"policy": "ENACHI", "scenario.lyapunov_v": v, "n": 1} for v in (1000, 0.1, 50)]
    lines = aggregate.format_summary(spec, summary).splitlines()[2:]
    assert [line.split()[1] for line in lines] == ["0.1", "50", "1000"]


# ---- end to end, tracked in a real MLflow server -----------------------------------------------------
@pytest.mark.timeout(600)
def test_sweep_end_to_end_mlflow(tmp_path, mlflow_server):
    from mlflow.tracking import MlflowClient

    from splitrl import worlds
    from splitrl.platform.checkpoints import load_policy as load_trained_policy
    from splitrl.worlds.lyappo.evaluate import evaluate_policy

    out = tmp_path / "smoke"
    proc = subprocess.run(
        [str(VENV_BIN / "splitrl"), "sweep", str(SMOKE), "--out", str(out), "--mlflow-uri", mlflow_server],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=tmp_path,
        timeout=540,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _rows(out)
    trials = [r for r in rows if r["kind"] == "trial"]
    base = [r for r in rows if r["kind"] == "baseline"]
    assert len(trials) == 2 and len(base) == 4
    assert all(r["status"] == "FINISHED" and float(r["train/iteration"]) == 2 for r in trials)
    for name in ("summary.csv", "summary.txt", "fig_energy.png", "fig_backlog.png"):
        assert (out / name).stat().st_size > 0

    spec = load_sweep(SMOKE)
    state = json.loads((out / "state.json").read_text())
    # the baselines' numbers are the comparison's: the same seeded episodes give the same energy
    point = "f_local_max_hz=1e+09"
    cfg = spec["points"][point]["config"]
    fix = next(p for p in worlds.get("lyappo").make_baselines(cfg["evaluation"]) if p.name == "Fix-Cov")
    direct = evaluate_policy(
        fix,
        cfg["scenario"],
        cfg["evaluation"]["episodes"],
        cfg["evaluation"]["seed"],
        cfg["evaluation"]["episode_periods"],
    )
    row = next(r for r in base if r["policy"] == "Fix-Cov" and float(r["scenario.f_local_max_hz"]) == 1e9)
    assert math.isclose(float(row["eval/energy"]), direct["energy"], rel_tol=1e-9)
    # ... and a trial's evaluation is its final checkpoint's, reproduced here from the files
    trial = next(r for r in trials if float(r["scenario.f_local_max_hz"]) == 1e9)
    ckpts = sorted((out / "tune" / "trials" / f"trial_{trial['trial_id']}").glob("checkpoint_*"))
    final = load_trained_policy(ckpts[-1])
    again = evaluate_policy(
        final,
        cfg["scenario"],
        cfg["evaluation"]["episodes"],
        cfg["evaluation"]["seed"],
        cfg["evaluation"]["episode_periods"],
    )
    assert math.isclose(float(trial["eval/energy"]), again["energy"], rel_tol=1e-6)

    client = MlflowClient(mlflow_server)
    parent = client.get_run(state["parent_run_id"])
    assert parent.info.status == "FINISHED" and parent.info.run_name == "sweep smoke"
    assert parent.data.params["grid"].startswith("scenario.f_local_max_hz=")
    assert {"results.csv", "summary.csv", "fig_energy.png", "sweep.yaml"} <= {
        a.path for a in client.list_artifacts(parent.info.run_id)
    }
    children = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert len(children) == 6 and all(c.info.status == "FINISHED" for c in children)
    for child in children:  # only the meaningful params, not RLlib's internals
        assert set(child.data.params) == {"sweep", "world", "scenario", "algorithm", "seed", "scenario.f_local_max_hz"}
    for child in (c for c in children if c.data.tags["splitrl.kind"] == "trial"):
        history = client.get_metric_history(child.info.run_id, "env_steps")
        assert [m.step for m in history] == [1, 2] and history[1].value > history[0].value  # per iteration
        assert "eval/energy" in child.data.metrics and child.data.tags["node_id"]
        best = client.list_artifacts(child.info.run_id, "best_checkpoint")
        assert {"splitrl.json", "best_checkpoint/splitrl.json"} & {a.path for a in best}


# ---- interrupt and resume -----------------------------------------------------------------------------
@pytest.mark.timeout(600)
def test_interrupted_sweep_resumes_only_unfinished_trials(tmp_path):
    from mlflow.tracking import MlflowClient

    raw = _smoke(
        name="resume",
        grid={"scenario.f_local_max_hz": [1.0e9, 1.5e9, 2.0e9]},
        max_concurrent=1,
        baselines=["Local-only"],
    )
    raw["set"]["stop.iterations"] = 3
    path = _write(tmp_path, raw)
    out, uri = tmp_path / "out", f"sqlite:///{tmp_path / 'mlflow.db'}"
    cmd = [str(VENV_BIN / "splitrl"), "sweep", str(path), "--out", str(out), "--mlflow-uri", uri]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path)
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            state = json.loads((out / "state.json").read_text()) if (out / "state.json").is_file() else {}
            if any(t["status"] == "FINISHED" for t in state.get("trials", {}).values()):
                break
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)  # as `ray job stop` / Kubernetes would
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-3000:]
    assert "continue with --resume" in err
    state = json.loads((out / "state.json").read_text())
    done = [t for t, e in state["trials"].items() if e["status"] == "FINISHED"]
    assert 1 <= len(done) < 3
    client = MlflowClient(uri)
    assert client.get_run(state["parent_run_id"]).info.status == "KILLED"
    lines = {t: len((out / "tune" / "trials" / f"trial_{t}" / "result.json").read_text().splitlines()) for t in done}

    proc = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads((out / "state.json").read_text())
    assert len(state["trials"]) == 3 and all(e["status"] == "FINISHED" for e in state["trials"].values())
    for t, n in lines.items():  # the finished trials did not run again
        assert len((out / "tune" / "trials" / f"trial_{t}" / "result.json").read_text().splitlines()) == n
    rows = _rows(out)
    assert sorted(float(r["scenario.f_local_max_hz"]) for r in rows if r["kind"] == "trial") == [1e9, 1.5e9, 2e9]
    parent = client.get_run(state["parent_run_id"])
    assert parent.info.status == "FINISHED"
    children = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert len(children) == 3 + 3 and all(c.info.status == "FINISHED" for c in children)  # no duplicates


# ---- a real cluster: `ray job submit` to a head on loopback; two raylets --------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill_tree(marker: str) -> None:
    """Stop every process of one Ray instance (their command lines name its temp dir); `ray stop`
    would stop every Ray instance on the machine."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        subprocess.run(["pkill", f"-{int(sig)}", "-f", marker], check=False)
        time.sleep(2)


@pytest.fixture
def ray_head():
    temp = tempfile.mkdtemp(prefix="rh", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    dash = _free_port()
    # token authentication on (Ray's default for local clusters; the CLI needs the mode set to send
    # the token); the job's `python` is this virtualenv's, as it would be a cluster image's
    # (a token of this test's own, so the test neither needs nor touches ~/.ray/auth_token)
    token = Path(temp) / "auth_token"
    token.write_text(secrets.token_hex(32))
    env = _env(
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN_PATH=str(token),
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    cmd = [
        str(VENV_BIN / "ray"),
        "start",
        "--head",
        "--node-ip-address",
        "127.0.0.1",
        "--port",
        str(_free_port()),
        "--dashboard-host",
        "127.0.0.1",
        "--dashboard-port",
        str(dash),
        "--include-dashboard",
        "true",
        "--dashboard-agent-listen-port",
        str(_free_port()),
        "--dashboard-agent-grpc-port",
        str(_free_port()),
        "--runtime-env-agent-port",
        str(_free_port()),
        "--metrics-export-port",
        str(_free_port()),
        "--ray-client-server-port",
        str(_free_port()),
        "--num-cpus",
        "2",
        "--temp-dir",
        temp,
        "--disable-usage-stats",
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
        assert proc.returncode == 0, proc.stderr[-3000:]
        yield f"http://127.0.0.1:{dash}", env
    finally:
        _kill_tree(temp)


@pytest.mark.timeout(600)
def test_ray_job_submit_sweep(tmp_path, mlflow_server, ray_head):
    from mlflow.tracking import MlflowClient

    address, env = ray_head
    out = tmp_path / "job"
    ray = str(VENV_BIN / "ray")
    sub = subprocess.run(
        [
            ray,
            "job",
            "submit",
            "--address",
            address,
            "--no-wait",
            "--working-dir",
            str(REPO),
            "--runtime-env",
            str(REPO / "configs" / "runtime_env.yaml"),
            "--",
            "python",
            "-m",
            "splitrl",
            "sweep",
            "configs/sweeps/smoke.yaml",
            "--address",
            "auto",
            "--out",
            str(out),
            "--mlflow-uri",
            mlflow_server,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert sub.returncode == 0, sub.stderr[-3000:]
    job_id = next(
        w.strip("'")
        for line in (sub.stdout + sub.stderr).splitlines()
        if "submitted successfully" in line
        for w in line.split()
        if w.strip("'").startswith("raysubmit_")
    )
    status = ""
    deadline = time.time() + 480
    while time.time() < deadline:
        st = subprocess.run(
            [ray, "job", "status", "--address", address, job_id], capture_output=True, text=True, env=env, timeout=60
        )
        said = (st.stdout + st.stderr).lower()
        status = next((s for s in ("succeeded", "failed", "stopped") if f"{job_id.lower()}' {s}" in said), "")
        if status:
            break
        time.sleep(3)
    logs = subprocess.run(
        [ray, "job", "logs", "--address", address, job_id], capture_output=True, text=True, env=env, timeout=60
    ).stdout
    assert status == "succeeded", logs[-3000:]
    state = json.loads((out / "state.json").read_text())
    client = MlflowClient(mlflow_server)
    parent = client.get_run(state["parent_run_id"])
    children = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    trials = [c for c in children if c.data.tags.get("splitrl.kind") == "trial"]
    assert len(trials) == 2 and all(c.info.status == "FINISHED" and "eval/energy" in c.data.metrics for c in trials)


@pytest.mark.timeout(600)
def test_trials_spread_over_two_nodes(tmp_path):
    from ray.cluster_utils import Cluster

    # two raylets on this machine with one CPU each: the two 1-CPU trials cannot share a node
    raw = _smoke(name="nodes", max_concurrent=2, baselines=["Local-only"])
    path = _write(tmp_path, raw)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        out = tmp_path / "out"
        proc = subprocess.run(
            [
                str(VENV_BIN / "splitrl"),
                "sweep",
                str(path),
                "--out",
                str(out),
                "--address",
                cluster.address,
                "--mlflow-uri",
                f"sqlite:///{tmp_path / 'mlflow.db'}",
            ],
            capture_output=True,
            text=True,
            env=_env(),
            cwd=tmp_path,
            timeout=540,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        nodes = {r["node_id"] for r in _rows(out) if r["kind"] == "trial"}
        live = {n.node_id for n in cluster.list_all_nodes()}
        assert len(nodes) == 2 and nodes == live
    finally:
        cluster.shutdown()


def test_sweep_spec_roundtrip_is_stable(tmp_path):
    """A resumed sweep must define the same trials: the saved spec matches a fresh load."""
    from splitrl.tuning.spec import spec_fingerprint
    from splitrl.tuning.sweep import saved_spec

    spec = load_sweep(SMOKE)
    saved = yaml.safe_load(yaml.safe_dump(saved_spec(spec)))
    assert yaml.safe_dump(spec_fingerprint(saved)) == yaml.safe_dump(spec_fingerprint(saved_spec(spec)))
    changed = copy.deepcopy(spec)
    changed["seeds"] = [0, 1]
    assert spec_fingerprint(changed) != spec_fingerprint(spec)


def test_asha_search_and_early_stopped_rows(tmp_path):
    """A pure search gets ASHA with the sweep's settings; a trial it stops has no evaluation and is
    reported STOPPED, not as a finished trial with missing numbers."""
    from ray.tune.schedulers import ASHAScheduler

    from splitrl.tuning import aggregate
    from splitrl.tuning.sweep import make_scheduler

    raw = _smoke(
        grid=None,
        search={"algorithm.lr": {"loguniform": [1e-4, 1e-3]}},
        num_samples=4,
        scheduler={"name": "asha", "grace_period": 2, "reduction_factor": 2},
    )
    spec = validate_sweep(raw, tmp_path)
    sched = make_scheduler(spec)
    assert isinstance(sched, ASHAScheduler) and spec["scheduler"]["max_t"] == 2  # stop.iterations of `set`
    assert spec["num_trials"] == 4 and list(spec["points"]) == [""]
    config = {"point": "", "algorithm.name": "lyappo", "algorithm.seed": 0, "algorithm.lr": 3e-4}
    stopped = aggregate.trial_row(spec, config, {"energy": 1e-4, "iteration": 1}, "FINISHED", "t0")
    done = aggregate.trial_row(spec, config, {"energy": 1e-4, "eval/energy": 2e-4}, "FINISHED", "t1")
    assert stopped["status"] == "STOPPED" and math.isnan(stopped["eval/energy"])
    assert done["status"] == "FINISHED" and done["eval/energy"] == 2e-4
    summary = aggregate.summarize(spec, [stopped, done])
    assert len(summary) == 1 and summary[0]["energy_mean"] == 2e-4  # the stopped one has no number
