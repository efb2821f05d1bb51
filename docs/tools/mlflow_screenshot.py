#!/usr/bin/env python3
"""Take a headless-chromium screenshot of one MLflow experiment's page.

Starts ``mlflow ui`` on 127.0.0.1 (a free port outside 10002-19999), waits for
``/health``, looks the experiment up by name with ``MlflowClient``, screenshots its
page with ``chromium --headless --screenshot`` and stops the server again (its whole
process group: uvicorn workers and job runners included), also on errors or Ctrl-C.

Run it with the project's venv (it needs mlflow; chromium from ``apt-get install
chromium``)::

    .venv/bin/python docs/tools/mlflow_screenshot.py \\
        --store sqlite:///mlflow.db --experiment lyappo --out /tmp/lyappo.png

    # metric charts instead of the runs table, larger window:
    .venv/bin/python docs/tools/mlflow_screenshot.py --store sqlite:///mlflow.db \\
        --experiment lyappo --out /tmp/charts.png --view chart --window-size 1920,1080

Why ``--workflow-type``: the MLflow 3.17 UI does not choose the experiment view from the
``mlflow.experimentKind`` experiment tag. It follows a per-browser "GenAI / Model training"
switch, which comes from the ``?workflowType=`` URL parameter, or else from localStorage
``mlflow.workflowType_v1``, and is ``genai`` by default. A fresh browser profile
therefore lands on the GenAI "Overview" (traces) page unless the URL says
``workflowType=machine_learning``. The default here is ``machine_learning`` (runs table);
``--workflow-type none`` opens the plain ``#/experiments/<id>`` URL, which is what a
newcomer sees.

Exit status: 0 on success, 1 on error (the last lines of the server log are printed).
Only the standard library and mlflow are used.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

FORBIDDEN_PORTS = range(10002, 20000)  # 10002-19999 are reserved on our machines
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A port that is free on 127.0.0.1 and lies outside 10002-19999."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in FORBIDDEN_PORTS:
            return port
    for port in random.sample(range(5100, 10000), 200):
        if _port_is_free(port):
            return port
    raise RuntimeError("no free port found outside 10002-19999")


def find_chromium(explicit: str | None) -> str:
    if explicit:
        return explicit
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError("chromium not found (apt-get install -y chromium), or pass --chromium PATH")


def mlflow_command() -> list[str]:
    """The `mlflow` CLI of the running interpreter's environment."""
    exe = Path(sys.executable).with_name("mlflow")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "mlflow"]


def experiment_id(store: str, name: str) -> str:
    from mlflow.tracking import MlflowClient

    exp = MlflowClient(tracking_uri=store).get_experiment_by_name(name)
    if exp is None:
        raise RuntimeError(f"no experiment named {name!r} in {store}")
    return exp.experiment_id


def experiment_url(base: str, exp_id: str, workflow_type: str, view: str) -> str:
    if workflow_type == "none":
        return f"{base}/#/experiments/{exp_id}"
    query = f"workflowType={workflow_type}"
    if view == "chart":
        query += "&compareRunsMode=CHART"
    tab = "runs" if workflow_type == "machine_learning" else ""
    return f"{base}/#/experiments/{exp_id}{'/' + tab if tab else ''}?{query}"


def wait_for_health(base: str, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow ui exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"mlflow ui not healthy after {timeout_s:.0f} s")


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL, the server's own process group (started with a new session)."""
    if proc.poll() is not None and not _group_alive(proc.pid):
        return
    for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            proc.poll()
            if not _group_alive(proc.pid):
                return
            time.sleep(0.2)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def screenshot(chromium: str, url: str, out: Path, window_size: str, budget_ms: int) -> None:
    with tempfile.TemporaryDirectory(prefix="mlflow-shot-profile-") as profile:
        cmd = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--window-size={window_size}",
            f"--virtual-time-budget={budget_ms}",
            f"--screenshot={out}",
            url,
        ]
        res = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=budget_ms / 1000 + 120
        )
    if res.returncode != 0 or not out.exists() or out.stat().st_size == 0:
        raise RuntimeError(f"chromium failed (rc={res.returncode}):\n{res.stdout[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", required=True, help="backend store URI, e.g. sqlite:///mlflow.db")
    ap.add_argument("--experiment", required=True, help="experiment name")
    ap.add_argument("--out", required=True, type=Path, help="PNG file to write")
    ap.add_argument(
        "--workflow-type",
        choices=("machine_learning", "genai", "none"),
        default="machine_learning",
        help="UI workflow switch put in the URL (default machine_learning; "
        "'none' = plain experiment URL, as a new visitor sees it)",
    )
    ap.add_argument(
        "--view",
        choices=("table", "chart"),
        default="table",
        help="runs table or metric charts (machine_learning only)",
    )
    ap.add_argument("--window-size", default="1400,900")
    ap.add_argument(
        "--budget-ms",
        type=int,
        default=30000,
        help="chromium --virtual-time-budget (15000 was too short for charts on a cold server)",
    )
    ap.add_argument("--port", type=int, help="port for mlflow ui (default: a free one)")
    ap.add_argument("--chromium", help="chromium binary (default: found on PATH)")
    ap.add_argument("--startup-timeout", type=float, default=90.0)
    args = ap.parse_args(argv)

    if args.port is not None and args.port in FORBIDDEN_PORTS:
        ap.error("ports 10002-19999 are not allowed")
    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)

    # SIGTERM/SIGHUP -> SystemExit, so the finally-block below still stops the server.
    def _exit(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGHUP, _exit)

    proc = None
    log = tempfile.NamedTemporaryFile(prefix="mlflow-ui-", suffix=".log", delete=False)
    try:
        chromium = find_chromium(args.chromium)
        exp_id = experiment_id(args.store, args.experiment)
        port = args.port or free_port()
        base = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen(
            [*mlflow_command(), "ui", "--backend-store-uri", args.store, "--host", "127.0.0.1", "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group, so we can stop all of it
        )
        wait_for_health(base, proc, args.startup_timeout)
        url = experiment_url(base, exp_id, args.workflow_type, args.view)
        screenshot(chromium, url, out, args.window_size, args.budget_ms)
        print(f"{out}  <-  {url}")
        return 0
    except Exception as exc:  # noqa: BLE001 - report any failure, then clean up
        print(f"error: {exc}", file=sys.stderr)
        log.flush()
        tail = Path(log.name).read_text(errors="replace").splitlines()[-20:]
        if tail:
            print("--- mlflow ui log (tail) ---\n" + "\n".join(tail), file=sys.stderr)
        return 1
    finally:
        if proc is not None:
            stop_group(proc)
        log.close()
        os.unlink(log.name)


if __name__ == "__main__":
    sys.exit(main())
