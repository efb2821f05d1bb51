"""Storage faults (issue 22): damaged checkpoints, a read-only or full disk, at start and mid-run.

Real faults, not mocks: checkpoints of a real tiny training damaged on disk the ways copies and
crashes damage them, and real file systems (a tmpfs mounted read-only, one that is full or fills
up under a running training).  The mount tests need root (or CAP_SYS_ADMIN) and skip otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_train import runs_of, splitrl, write_cfg

from splitrl.core.errors import ConfigError
from splitrl.platform.checkpoints import checkpoint_problem, latest_checkpoint


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("splitrl: error:")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny LyaPPO run with checkpoints of iterations 1, 2 and 3 (a pristine copy to damage)."""
    root = tmp_path_factory.mktemp("trained")
    cfg = write_cfg(root / "c.yaml", stop={"iterations": 3})
    res = splitrl("train", str(cfg), "--out", "run", "--no-compare", cwd=root)
    assert res.returncode == 0, res.stderr[-3000:]
    names = sorted(p.name for p in (root / "run" / "checkpoints").glob("iter_*"))
    assert names == ["iter_000001", "iter_000002", "iter_000003"]
    return root


@pytest.fixture
def run(trained, tmp_path):
    """A fresh copy of the trained run directory (and its config and MLflow store) to damage."""
    for name in ("run", "c.yaml", "mlflow.db"):
        src = trained / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    return tmp_path


def _largest_file(ckpt: Path) -> Path:
    return max((p for p in (ckpt / "algorithm").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGES = {
    "truncated": (lambda c: _truncate(_largest_file(c)), "bytes,"),
    "flipped byte": (lambda c: _flip_byte(_largest_file(c)), "does not match the SHA-256"),
    "file deleted": (lambda c: _largest_file(c).unlink(), "is missing"),
    "splitrl.json cut": (lambda c: _truncate(c / "splitrl.json"), "splitrl.json is not readable JSON"),
    "algorithm/ deleted": (lambda c: shutil.rmtree(c / "algorithm"), "algorithm is missing"),
}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_every_damage_is_named_and_the_previous_complete_checkpoint_is_used(run, damage):
    """Each damage of the newest checkpoint: the damaged file named in one warning, the previous
    complete checkpoint used; asked for by its own path, one error line naming the file and
    pointing at the previous one; with every checkpoint damaged, one error line."""
    ckpts = run / "run" / "checkpoints"
    assert all(checkpoint_problem(c) is None for c in ckpts.glob("iter_*"))
    do, words = DAMAGES[damage]
    do(ckpts / "iter_000003")
    problem = checkpoint_problem(ckpts / "iter_000003")
    assert problem is not None and words in problem and str(ckpts / "iter_000003") in problem

    warnings = []
    assert latest_checkpoint(run / "run", warn=warnings.append) == ckpts / "iter_000002"
    [warning] = warnings
    assert warning.startswith(f"damaged checkpoint: {problem}; using the previous complete checkpoint")

    with pytest.raises(ConfigError, match="damaged checkpoint") as exc:
        latest_checkpoint(ckpts / "iter_000003")
    assert problem in str(exc.value) and str(exc.value).endswith(
        f"previous complete checkpoint is {ckpts / 'iter_000002'}"
    )

    for older in ("iter_000001", "iter_000002"):
        do(ckpts / older)
    with pytest.raises(ConfigError, match="no earlier complete checkpoint is left"):
        latest_checkpoint(run / "run")


def test_a_garbled_latest_pointer_falls_back_to_the_newest_complete_checkpoint(run):
    ckpts = run / "run" / "checkpoints"
    (ckpts / "latest").write_bytes(b"\xff\xfe garbage")
    assert latest_checkpoint(run / "run", warn=pytest.fail) == ckpts / "iter_000003"
    (ckpts / "latest").unlink()
    assert latest_checkpoint(run / "run", warn=pytest.fail) == ckpts / "iter_000003"


@pytest.mark.timeout(600)
def test_evaluate_and_resume_name_the_damaged_file_and_continue_from_the_previous_checkpoint(run):
    _flip_byte(_largest_file(run / "run" / "checkpoints" / "iter_000003"))
    ckpts = Path("run", "checkpoints")  # as named on the command line, run from `run`
    bad = _largest_file(run / ckpts / "iter_000003").relative_to(run)

    ev = splitrl("evaluate", "run", "--episodes", "1", "--json", "eval.json", cwd=run)
    assert ev.returncode == 0, ev.stderr[-3000:]
    [warning] = [line for line in ev.stderr.splitlines() if line.startswith("splitrl: warning:")]
    assert str(bad) in warning and warning.endswith(f"using the previous complete checkpoint {ckpts / 'iter_000002'}")
    assert str(ckpts / "iter_000002") in ev.stdout

    ev = splitrl("evaluate", str(ckpts / "iter_000003"), "--episodes", "1", cwd=run)
    assert ev.returncode == 2 and "Traceback" not in ev.stderr
    [line] = _error_lines(ev.stderr)
    assert str(bad) in line and str(ckpts / "iter_000002") in line

    res = splitrl("train", "c.yaml", "--resume", "run", "--set", "stop.iterations=4", "--no-compare", cwd=run)
    assert res.returncode == 0, res.stderr[-3000:]
    assert str(bad) in res.stderr and "resumed from" in res.stderr and "(iteration 2," in res.stderr
    rows = [json.loads(line) for line in (run / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4]  # iteration 3 retrained once, not twice
    assert checkpoint_problem(run / ckpts / "iter_000003") is None  # rewritten whole
    assert (run / ckpts / "latest").read_text().strip() == "iter_000004"
    [mlrun] = runs_of(f"sqlite:///{run / 'mlflow.db'}")
    assert mlrun.info.status == "FINISHED"


# ---- full and read-only disks ----------------------------------------------------------------------
@pytest.fixture
def mount(tmp_path):
    """``mount(size, ro)``: a fresh tmpfs of ``size`` under tmp_path; unmounted at the end."""
    points = []

    def make(size: str, ro: bool = False) -> Path:
        point = tmp_path / f"mnt{len(points)}"
        point.mkdir()
        opts = f"size={size}" + (",ro" if ro else "")
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(point)], capture_output=True)
        if res.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {res.stderr.decode().strip()}")
        points.append(point)
        return point

    yield make
    for point in reversed(points):
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_a_read_only_or_full_output_disk_is_one_line_and_exit_2_before_training(tmp_path, mount, fault):
    point = mount("1M", ro=True) if fault == "read-only" else mount("4M")
    if fault == "full":
        (point / "filler").write_bytes(b"\0" * (3 * 2**20))
    cfg = write_cfg(tmp_path / "c.yaml")
    before = sorted(p.name for p in tmp_path.iterdir())
    for cmd in (
        ["train", str(cfg), "--out", str(point / "run")],
        ["sweep", "configs/sweeps/smoke.yaml", "--out", str(point / "sweep")],
    ):
        if cmd[0] == "sweep":
            cmd[1] = str(Path(__file__).resolve().parents[1] / cmd[1])
        t0 = time.perf_counter()
        res = splitrl(*cmd, cwd=tmp_path, timeout=120)
        elapsed = time.perf_counter() - t0
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
        [line] = _error_lines(res.stderr)
        assert line.startswith("splitrl: error: --out: ") and str(point) in line
        assert ("cannot write in" in line) if fault == "read-only" else ("MiB free; a run needs at least" in line)
        assert elapsed < 60, elapsed
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no run directory, no mlflow.db
    assert sorted(p.name for p in point.iterdir()) == ([] if fault == "read-only" else ["filler"])

    # the MLflow store's folder read-only: named as the store's key, nothing written
    res = splitrl("train", str(cfg), "--out", "run", "--mlflow-uri", f"sqlite:///{point}/m.db", cwd=tmp_path)
    assert res.returncode == 2
    [line] = _error_lines(res.stderr)
    assert line.startswith("splitrl: error: --mlflow-uri: ") and str(point) in line
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.timeout(600)
def test_a_disk_filling_up_mid_run_is_one_line_keeps_the_last_checkpoint_and_resumes(tmp_path, mount):
    """Another process fills the output disk while training: one line naming the path, exit 2,
    the MLflow run ended FAILED, no half-written checkpoint; with space freed, --resume goes on."""
    point = mount("160M")
    cfg = write_cfg(tmp_path / "c.yaml", stop={"iterations": 200})
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "splitrl.platform.cli", "train", str(cfg), "--out", str(point / "run"), "--no-compare"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    seen = []
    try:
        for line in proc.stderr:
            seen.append(line)
            if line.startswith("iter 2/"):
                fd = os.open(point / "filler", os.O_WRONLY | os.O_CREAT)  # fill the disk to the last block
                for block in (2**20, 4096, 1):
                    try:
                        while True:
                            os.write(fd, b"\0" * block)
                    except OSError:
                        pass
                os.close(fd)
                break
        err = "".join(seen) + proc.communicate(timeout=300)[1]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
    assert proc.returncode == 2 and "Traceback" not in err, err[-3000:]
    [line] = _error_lines(err)
    assert "No space left on device" in line and str(point / "run") in line
    ckpts = point / "run" / "checkpoints"
    assert "continue with --resume" in line and str(latest_checkpoint(point / "run")) in line
    assert not list(ckpts.glob(".tmp-*"))  # the checkpoint that did not fit was removed
    assert all(checkpoint_problem(c) is None for c in ckpts.glob("iter_*"))
    [mlrun] = runs_of(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert mlrun.info.status == "FAILED"

    (point / "filler").unlink()
    last = json.loads((latest_checkpoint(point / "run") / "splitrl.json").read_text())["iteration"]
    res = splitrl(
        "train",
        str(cfg),
        "--resume",
        str(point / "run"),
        "--set",
        f"stop.iterations={last + 1}",
        "--no-compare",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [json.loads(r) for r in (point / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == list(range(1, last + 2))


# ---- the MLflow server going away mid-run -------------------------------------------------------------
class MlflowServer:
    """A real ``mlflow server`` on 127.0.0.1 that a test stops and starts again on the same port."""

    def __init__(self, root: Path):
        from conftest import VENV_BIN, _free_port

        self.root, self.port, self.bin = root, _free_port(), VENV_BIN / "mlflow"
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self) -> None:
        import urllib.request

        log = open(self.root / "server.log", "a")
        self.proc = subprocess.Popen(
            [
                str(self.bin),
                "server",
                "--backend-store-uri",
                f"sqlite:///{self.root / 'mlflow.db'}",
                "--artifacts-destination",
                str(self.root / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.time() + 90
        while True:
            try:
                if urllib.request.urlopen(f"{self.uri}/health", timeout=2).read() == b"OK":
                    return
            except OSError:
                pass
            assert self.proc.poll() is None and time.time() < deadline, (self.root / "server.log").read_text()[-2000:]
            time.sleep(0.3)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # gone at once, as a crashed or unplugged server
            self.proc.wait(timeout=30)


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "server"
    root.mkdir()
    srv = MlflowServer(root)
    srv.start()
    yield srv
    srv.stop()


def _train_until(cfg: Path, cwd: Path, uri: str, events):
    """`splitrl train` (no compare) against ``uri``; ``events``: ``[(prefix, action)]`` run in order,
    each when a stderr line starts with its prefix.  Returns (exit status, stderr)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "splitrl.platform.cli", "train", str(cfg), "--out", "run", "--no-compare"]
        + ["--mlflow-uri", uri],
        cwd=cwd,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    seen, todo = [], list(events)
    try:
        for line in proc.stderr:
            seen.append(line)
            if todo and line.startswith(todo[0][0]):
                todo.pop(0)[1](proc)
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not todo, f"never saw {todo[0][0]!r}:\n" + "".join(seen[-30:])
    return proc.returncode, "".join(seen)


def _metric_steps(uri: str, run_id: str) -> list[int]:
    from mlflow.tracking import MlflowClient

    return sorted(m.step for m in MlflowClient(uri).get_metric_history(run_id, "env_steps"))


def _rows(run: Path) -> list[dict]:
    return [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.timeout(600)
def test_the_mlflow_server_going_away_and_back_loses_no_iteration(tmp_path, server, monkeypatch):
    """The server killed at iteration 2 and started again later: training goes on with one line,
    says when the server is back, and the run's record has every iteration exactly once."""
    monkeypatch.setenv("SPLITRL_MLFLOW_RETRY_S", "2")
    cfg = write_cfg(tmp_path / "c.yaml", stop={"iterations": 200})
    back = []
    code, err = _train_until(
        cfg,
        tmp_path,
        server.uri,
        [
            ("iter 2/", lambda p: server.stop()),
            ("splitrl: warning: the MLflow store", lambda p: server.start()),
            ("splitrl: the MLflow store at", lambda p: back.append(time.time())),
            ("iter ", lambda p: p.send_signal(signal.SIGINT)),
        ],
    )
    assert code == 130 and "Traceback" not in err, err[-3000:]
    [away] = [line for line in err.splitlines() if line.startswith("splitrl: warning: the MLflow store")]
    assert "stopped answering at iteration 3" in away and "training goes on" in away
    [again] = [line for line in err.splitlines() if line.startswith("splitrl: the MLflow store at")]
    assert again.endswith(" sent") and "iterations 3-" in again
    [mlrun] = runs_of(server.uri)
    assert mlrun.info.status == "KILLED"
    rows = _rows(tmp_path / "run")
    assert (
        _metric_steps(server.uri, mlrun.info.run_id) == [r["iteration"] for r in rows] == list(range(1, len(rows) + 1))
    )
    assert "mlflow_pending_from" not in json.loads((tmp_path / "run" / "run.json").read_text())


@pytest.mark.timeout(600)
def test_a_run_ending_while_mlflow_is_away_is_completed_by_resume(tmp_path, server, monkeypatch):
    """The server killed at iteration 2 for good: the training still ends normally (exit 0), says
    which iterations the store lacks and how to send them; `--resume` with the server back sends
    them and ends the run FINISHED, each iteration once."""
    monkeypatch.setenv("SPLITRL_MLFLOW_RETRY_S", "1")
    cfg = write_cfg(tmp_path / "c.yaml", stop={"iterations": 5})
    t0 = time.perf_counter()
    code, err = _train_until(cfg, tmp_path, server.uri, [("iter 2/", lambda p: server.stop())])
    elapsed = time.perf_counter() - t0
    assert code == 0 and "Traceback" not in err, err[-3000:]
    [end] = [line for line in err.splitlines() if "does not answer: its run" in line]
    assert "misses iterations 3 onwards" in end and f"--resume {Path('run')}" in end
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["mlflow_pending_from"] == 3
    assert [r["iteration"] for r in _rows(tmp_path / "run")] == [1, 2, 3, 4, 5]
    assert elapsed < 240, elapsed  # bounded retries, not MLflow's minutes per call

    server.start()
    [mlrun] = runs_of(server.uri)
    assert mlrun.info.status == "RUNNING" and _metric_steps(server.uri, mlrun.info.run_id) == [1, 2]
    res = splitrl("train", str(cfg), "--resume", "run", "--no-compare", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "iterations 3 onwards sent to the MLflow store" in res.stderr
    [mlrun] = runs_of(server.uri)
    assert mlrun.info.status == "FINISHED"
    assert _metric_steps(server.uri, mlrun.info.run_id) == [1, 2, 3, 4, 5]
    assert "mlflow_pending_from" not in json.loads((tmp_path / "run" / "run.json").read_text())


# ---- secrets ---------------------------------------------------------------------------------------
def _holders(root: Path, secret: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and secret in p.read_bytes()]


@pytest.mark.timeout(600)
def test_no_planted_secret_reaches_the_run_directory_or_the_mlflow_record(tmp_path, server, monkeypatch):
    """A password in the tracking URI and credentials in the environment: the run trains against
    the server, and neither its run directory (config, checkpoints, metrics, run.json) nor the
    server's database and artifacts nor the output hold them."""
    secrets = {"uri": "uri-pw-4f1c9e", "MLFLOW_TRACKING_PASSWORD": "env-pw-8b2d71", "SPLITRL_API_TOKEN": "tok-63a0f5"}
    for name in ("MLFLOW_TRACKING_PASSWORD", "SPLITRL_API_TOKEN"):
        monkeypatch.setenv(name, secrets[name])
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "splitrl")
    uri = server.uri.replace("http://", f"http://splitrl:{secrets['uri']}@")
    cfg = write_cfg(tmp_path / "c.yaml", stop={"iterations": 1})
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    res = subprocess.run(
        [sys.executable, "-m", "splitrl.platform.cli", "train", str(cfg), "--out", "run", "--mlflow-uri", uri],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=500,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    [mlrun] = runs_of(server.uri)
    assert mlrun.info.status == "FINISHED"
    for secret in secrets.values():
        assert secret not in res.stdout + res.stderr
        assert _holders(tmp_path / "run", secret.encode()) == []
        assert _holders(server.root, secret.encode()) == []  # the store's database and artifacts
    assert json.loads((tmp_path / "run" / "run.json").read_text())["mlflow_uri"].startswith("http://splitrl:***@")
