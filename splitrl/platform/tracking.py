"""MLflow tracking: one run per training job, a curated flat set of params, batched calls.

The default store is an embedded SQLite database, ``mlflow.db`` in the working directory (recent
MLflow refuses a plain ``./mlruns`` file store).  A run that fails is ended ``FAILED`` (never left
dangling); an interrupted one ``KILLED``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from splitrl.platform.config import flatten

#: Experiment tags: MLflow's experiment kind "custom model development" (a model-training
#: experiment, not GenAI traces).  MLflow 3.17's UI does not read it yet -- it opens whatever its
#: GenAI / Model training switch says -- so links carry ``?workflowType=machine_learning``
#: (:func:`ui_link`); the tag is for versions that sync the switch to the experiment's kind.
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


def experiment_id(client, name: str) -> str:
    """The id of experiment ``name`` in ``client``'s store, created (tagged) if missing."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return client.create_experiment(name, tags=EXPERIMENT_TAGS)


def ui_link(experiment: str, run_id: str | None = None, base: str = "http://127.0.0.1:5000") -> str:
    """The ``mlflow ui`` address of an experiment (or run) in the model-training view."""
    path = f"experiments/{experiment}" + (f"/runs/{run_id}" if run_id else "/runs")
    return f"{base}/#/{path}?workflowType=machine_learning"


def default_uri() -> str:
    return f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def check_store(uri: str, key: str, *, timeout_s: float = 5.0, attempts: int = 2) -> None:
    """Fail fast before anything is written when ``uri`` is an ``http(s)`` tracking server that
    does not answer: :class:`~splitrl.core.errors.ConfigError` naming ``key`` (where the URI came
    from) within ``attempts * timeout_s`` seconds, instead of MLflow's own minutes of retries.
    A ``sqlite:`` store's folder must be writable with 10 MiB free (:func:`check_writable`); other
    stores (``file:``, ``databricks``) are checked when they are opened."""
    import time
    from urllib.error import HTTPError, URLError
    from urllib.parse import urlparse
    from urllib.request import urlopen

    from splitrl.core.errors import ConfigError

    parsed = urlparse(uri)
    if parsed.scheme == "sqlite" and uri.startswith("sqlite:///") and ":memory:" not in uri:
        from splitrl.core.files import check_writable

        check_writable(Path(uri[len("sqlite:///") :]).parent, key, min_free_bytes=10 * 2**20)
        return
    if parsed.scheme not in ("http", "https"):
        return
    if not parsed.hostname:
        raise ConfigError(key, f"{uri!r} has no host (expected e.g. http://127.0.0.1:5000)")
    # the URL without its user part (urllib cannot open it), the credentials as a header
    from urllib.request import Request

    netloc = parsed.netloc.rsplit("@", 1)[-1]
    health = Request(parsed._replace(netloc=netloc).geturl().rstrip("/") + "/health")
    if parsed.username is not None:
        import base64

        pair = f"{parsed.username}:{parsed.password or ''}".encode()
        health.add_header("Authorization", "Basic " + base64.b64encode(pair).decode())
    reason = ""
    for attempt in range(attempts):
        try:
            with urlopen(health, timeout=timeout_s):
                return
        except HTTPError as exc:
            if exc.code in (401, 403):  # an authenticating server answers: MLflow's client has the credentials
                return
            reason = f"it answered HTTP {exc.code} {exc.reason} to /health"
        except (URLError, OSError) as exc:
            reason = str(getattr(exc, "reason", exc))
        if attempt + 1 < attempts:
            time.sleep(0.5)
    raise ConfigError(key, f"no MLflow server answers at {redact_uri(uri)} ({reason}); start one or pick another store")


def git_commit() -> str:
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha + ("-dirty" if dirty else "")) if sha else "unknown"


#: parts of a key's name that mark a credential: its value is never logged
SECRET_WORDS = ("token", "password", "passwd", "secret", "credential", "api_key", "apikey")


def redact_uri(uri: str) -> str:
    """``uri`` without a password in its user part (``http://user:***@host``); MLflow takes the
    credentials from ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` instead."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    if parts.password is None:
        return uri
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def public_config(cfg: Any) -> Any:
    """``cfg`` as it may be written and logged: credential-named keys ``***``, URI passwords cut."""
    if isinstance(cfg, Mapping):
        return {
            k: "***" if v is not None and any(w in str(k).lower() for w in SECRET_WORDS) else public_config(v)
            for k, v in cfg.items()
        }
    if isinstance(cfg, list):
        return [public_config(v) for v in cfg]
    return redact_uri(cfg) if isinstance(cfg, str) else cfg


def run_params(cfg: Mapping[str, Any]) -> dict[str, str]:
    """The resolved config, flattened to ``section.key`` strings (lists as text); a key named like
    a credential (:data:`SECRET_WORDS`) is shown as ``***`` and URIs lose their passwords."""
    out = {}
    for k, v in flatten(cfg).items():
        text = "***" if any(w in k.lower() for w in SECRET_WORDS) and v is not None else redact_uri(str(v))
        out[k] = text[:500]
    return out


#: MLflow's HTTP client waits minutes (7 retries, 120 s timeouts) before it reports a server that
#: went away; a training keeps going instead, so one attempt may take at most ~30 s.  An
#: environment variable the user sets wins.
HTTP_LIMITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}

#: seconds between attempts to reach a tracking server that stopped answering
#: (``SPLITRL_MLFLOW_RETRY_S`` overrides it)
RETRY_S = float(os.environ.get("SPLITRL_MLFLOW_RETRY_S", "20"))


class Tracker:
    """One MLflow run of a training job; a no-op when tracking is disabled.

    A server that stops answering mid-run does not stop the training: metrics wait in memory
    (``metrics.jsonl`` in the run directory holds them all anyway) and are sent when the server
    answers again, tried every :data:`RETRY_S` seconds; ``notify`` gets one line when it goes
    away and one when it is back.  :attr:`pending_from` is the first iteration the store lacks
    (``None``: it has them all); the train loop keeps it in ``run.json``, and a ``--resume``
    sends those rows from ``metrics.jsonl`` and ends the run properly (:meth:`replay`)."""

    def __init__(self, tracking_cfg: Mapping[str, Any], uri_override: str | None = None, notify=None):
        self.enabled = bool(tracking_cfg.get("enabled", True))
        self.uri = (
            uri_override or tracking_cfg.get("mlflow_uri") or os.environ.get("MLFLOW_TRACKING_URI") or default_uri()
        )
        #: where the URI came from, for error messages
        self.source = (
            "--mlflow-uri"
            if uri_override
            else "tracking.mlflow_uri"
            if tracking_cfg.get("mlflow_uri")
            else "MLFLOW_TRACKING_URI"
        )
        self.experiment = tracking_cfg.get("experiment", "splitrl")
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self.resumed_elsewhere: str | None = None  # a resumed run's id that the store does not hold
        self.notify = notify or (lambda msg: None)
        self.pending: list[tuple[dict[str, float], int]] = []
        self.pending_from: int | None = None
        self._next_try = 0.0
        if self.uri.startswith(("http://", "https://")):
            for name, value in HTTP_LIMITS.items():
                os.environ.setdefault(name, value)
            if redact_uri(self.uri) != self.uri:  # MLflow prints run links with the URI's password
                os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"

    def check(self) -> None:
        """:func:`check_store` for this tracker's URI (nothing when tracking is disabled)."""
        if self.enabled:
            check_store(self.uri, self.source)

    def _client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(self.uri)

    def start(self, run_name: str, tags: Mapping[str, str], run_id: str | None = None) -> str | None:
        if not self.enabled:
            return None
        client = self._client()
        self.experiment_id = experiment_id(client, self.experiment)
        tags = dict(tags)
        if run_id is not None and not self._has_run(run_id):
            # a resumed job pointed at another store (a copied run directory, a new server), or
            # whose run was deleted: continue in a new run there, linked to the old one, rather
            # than fail after the build
            self.resumed_elsewhere = run_id
            tags["splitrl.resumed_from_run"] = run_id
            run_id = None
        if run_id is None:
            run_id = client.create_run(self.experiment_id, run_name=run_name).info.run_id
        else:
            client.update_run(run_id, status="RUNNING")
        self.run_id = run_id
        from mlflow.entities import RunTag

        client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
        return self.run_id

    def _has_run(self, run_id: str) -> bool:
        """Whether the store holds ``run_id`` as a run that can be continued (not deleted: MLflow
        refuses to start a deleted run)."""
        from mlflow.exceptions import MlflowException

        try:
            return self._client().get_run(run_id).info.lifecycle_stage == "active"
        except MlflowException:
            return False

    def log_params(self, params: Mapping[str, Any]) -> None:
        if self.run_id:
            from mlflow.entities import Param
            from mlflow.exceptions import MlflowException

            try:
                self._client().log_batch(self.run_id, params=[Param(k, str(v)) for k, v in params.items()])
            except MlflowException:
                # A resumed run already holds these params (MLflow forbids changing them).
                pass

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Send one iteration's metrics, or keep them until the server answers again."""
        if not self.run_id:
            return
        clean = {k: float(v) for k, v in metrics.items() if v is not None and v == v}
        if clean:
            self.pending.append((clean, step))
        self.flush()

    def flush(self, force: bool = False) -> bool:
        """Send what waits; ``False`` while the server does not answer (tried again after
        :data:`RETRY_S`, or now with ``force``)."""
        import time

        if not self.run_id or not self.pending:
            return True
        if self.pending_from is not None and not force and time.monotonic() < self._next_try:
            return False
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        rows = [Metric(k, v, now, step) for values, step in self.pending for k, v in values.items()]
        try:
            client = self._client()
            for i in range(0, len(rows), 1000):  # MLflow's limit per batch
                client.log_batch(self.run_id, metrics=rows[i : i + 1000])
        except Exception as exc:  # noqa: BLE001 -- any failure of the store: keep the rows, go on
            self._next_try = time.monotonic() + RETRY_S
            if self.pending_from is None:
                self.pending_from = self.pending[0][1]
                self.notify(
                    f"splitrl: warning: the MLflow store at {redact_uri(self.uri)} stopped answering at iteration "
                    f"{self.pending_from} ({_reason(exc)}); training goes on, metrics are kept in "
                    f"metrics.jsonl and sent when it is back (tried every {RETRY_S:.0f} s)"
                )
            return False
        if self.pending_from is not None:
            self.notify(
                f"splitrl: the MLflow store at {redact_uri(self.uri)} answers again: iterations "
                f"{self.pending_from}-{self.pending[-1][1]} sent"
            )
        self.pending.clear()
        self.pending_from = None
        return True

    def replay(self, rows: list[dict], since: int) -> None:
        """A resumed run whose store missed iterations ``since`` onwards: send those rows of
        ``metrics.jsonl`` (each ``{"iteration": n, **metrics}``)."""
        for row in rows:
            if row.get("iteration", 0) >= since:
                metrics = {k: v for k, v in row.items() if k != "iteration" and isinstance(v, (int, float))}
                self.pending.append((metrics, int(row["iteration"])))
        if self.flush(force=True) and self.pending_from is None:
            self.notify(f"splitrl: iterations {since} onwards sent to the MLflow store (missed before)")

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self.run_id:
            p = Path(path)
            try:
                if p.is_dir():
                    self._client().log_artifacts(self.run_id, str(p), artifact_path=artifact_path)
                else:
                    self._client().log_artifact(self.run_id, str(p), artifact_path=artifact_path)
            except Exception as exc:  # noqa: BLE001 -- the store went away: the file stays in the run directory
                self.notify(f"splitrl: warning: {p} not sent to the MLflow store ({_reason(exc)}); it stays on disk")

    def end(self, status: str = "FINISHED") -> bool:
        """End the run with ``status`` after sending what waits; ``False`` when the store could
        not be reached (the run stays open there until a ``--resume`` ends it)."""
        if not self.run_id:
            return True
        run_id, self.run_id = self.run_id, None
        if not self._flush_for(run_id):
            return False  # its end is the resume's job, after the missing metrics
        try:
            self._client().set_terminated(run_id, status)
        except Exception:  # noqa: BLE001 -- the store went away after the last metrics
            return False
        return True

    def _flush_for(self, run_id: str) -> bool:
        self.run_id = run_id
        try:
            return self.flush(force=True)
        finally:
            self.run_id = None


def _reason(exc: BaseException) -> str:
    """A failure of the store in a few words (MLflow's messages run to screens of retries)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    for marker in ("Connection refused", "timed out", "Name or service not known", "Max retries exceeded"):
        if marker in str(exc):
            return marker.lower() if marker != "Max retries exceeded" else "no answer after retries"
    return text[:160]
