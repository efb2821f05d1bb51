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
    reason = ""
    for attempt in range(attempts):
        try:
            with urlopen(uri.rstrip("/") + "/health", timeout=timeout_s):
                return
        except HTTPError as exc:
            if exc.code in (401, 403):  # an authenticating server answers: MLflow's client has the credentials
                return
            reason = f"it answered HTTP {exc.code} {exc.reason} to /health"
        except (URLError, OSError) as exc:
            reason = str(getattr(exc, "reason", exc))
        if attempt + 1 < attempts:
            time.sleep(0.5)
    raise ConfigError(key, f"no MLflow server answers at {uri} ({reason}); start one or pick another store")


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


def run_params(cfg: Mapping[str, Any]) -> dict[str, str]:
    """The resolved config, flattened to ``section.key`` strings (lists as text)."""
    return {k: str(v)[:500] for k, v in flatten(cfg).items()}


class Tracker:
    """Thin wrapper over the MLflow fluent API; a no-op when tracking is disabled."""

    def __init__(self, tracking_cfg: Mapping[str, Any], uri_override: str | None = None):
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

    def check(self) -> None:
        """:func:`check_store` for this tracker's URI (nothing when tracking is disabled)."""
        if self.enabled:
            check_store(self.uri, self.source)

    def start(self, run_name: str, tags: Mapping[str, str], run_id: str | None = None) -> str | None:
        if not self.enabled:
            return None
        import mlflow
        from mlflow.tracking import MlflowClient

        mlflow.set_tracking_uri(self.uri)
        self.experiment_id = experiment_id(MlflowClient(self.uri), self.experiment)
        mlflow.set_experiment(experiment_id=self.experiment_id)
        tags = dict(tags)
        if run_id is not None and not self._has_run(run_id):
            # a resumed job pointed at another store (a copied run directory, a new server), or
            # whose run was deleted: continue in a new run there, linked to the old one, rather
            # than fail after the build
            self.resumed_elsewhere = run_id
            tags["splitrl.resumed_from_run"] = run_id
            run_id = None
        run = mlflow.start_run(run_id=run_id, run_name=None if run_id else run_name)
        self.run_id = run.info.run_id
        mlflow.set_tags(tags)
        return self.run_id

    def _has_run(self, run_id: str) -> bool:
        """Whether the store holds ``run_id`` as a run that can be continued (not deleted: MLflow
        refuses to start a deleted run)."""
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        try:
            return MlflowClient(self.uri).get_run(run_id).info.lifecycle_stage == "active"
        except MlflowException:
            return False

    def log_params(self, params: Mapping[str, Any]) -> None:
        if self.run_id:
            import mlflow
            from mlflow.exceptions import MlflowException

            try:
                mlflow.log_params(dict(params))
            except MlflowException:
                # A resumed run already holds these params (MLflow forbids changing them).
                pass

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        if self.run_id:
            import mlflow

            clean = {k: float(v) for k, v in metrics.items() if v is not None and v == v}
            if clean:
                mlflow.log_metrics(clean, step=step)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self.run_id:
            import mlflow

            p = Path(path)
            if p.is_dir():
                mlflow.log_artifacts(str(p), artifact_path=artifact_path)
            else:
                mlflow.log_artifact(str(p), artifact_path=artifact_path)

    def end(self, status: str = "FINISHED") -> None:
        if self.run_id:
            import mlflow

            mlflow.end_run(status=status)
            self.run_id = None
