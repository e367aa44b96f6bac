"""MLflow tracking and the model registry (SPEC §9).

- Tracking URI: ``MLFLOW_TRACKING_URI``, else ``sqlite:///runs/mlflow.db`` (made absolute) with artifacts
  under ``runs/mlartifacts``; the registry needs a database backend, which SQLite is.
- One experiment per spec name; a parent run per pipeline invocation; a child run per stage (and per trial).
  Params are the flattened resolved spec; tags carry the git commit, spec hash, dataset fingerprint and Ray
  address; the resolved spec is an artifact of every run.
- Every experiment carries ``mlflow.experimentKind = custom_model_development``: the tag MLflow's UI (3.x)
  reads to open an experiment in its training view (runs, charts, models) rather than its GenAI view (traces).
  Experiments made before the tag existed get it the next time a run is logged to them. MLflow 3.17's UI
  itself decides the view by a global GenAI / Model training switch (kept in the browser, GenAI by default)
  and reads it from the link's ``workflowType`` parameter first: links the platform prints carry
  ``?workflowType=machine_learning`` (:func:`ui_url`).
- The registry's versions are listed here (:func:`registry_rows`); :mod:`sportpose.registry.register` logs and
  registers them and keeps the champion rule.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from sportpose.errors import DataError
from sportpose.paths import REPO, runs_dir
from sportpose.spec.fill import flatten

PARENT_TAG = "mlflow.parentRunId"
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")  # MLflow UI: "Machine learning"
SECRET_WORDS = ("password", "secret", "token", "apikey", "api_key", "access_key", "credential")


def tracking_uri() -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    path = runs_dir() / "mlflow.db"
    if path not in _WRITABLE:  # SQLite cannot open a database it cannot write: MLflow retries it for minutes
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=path.parent):
                pass
        except OSError as e:
            raise OSError(e.errno, e.strerror, str(path)) from None
        _WRITABLE.add(path)
    return f"sqlite:///{path}"


_WRITABLE: set[Path] = set()  # runs folders whose database this process checked it can write


def ui_url(server: str, experiment_id: str | None = None) -> str:
    """A link into MLflow's UI at ``server`` (``http://HOST:PORT``) that opens the training view: the
    experiment's runs, or the list of experiments."""
    page = f"experiments/{experiment_id}" if experiment_id else "experiments"
    return f"{server.rstrip('/')}/#/{page}?workflowType=machine_learning"


def experiment_links(server: str) -> list[tuple[str, str]]:
    """``(name, ui_url)`` of every experiment with a run, newest first (nothing when no database is there)."""
    try:
        require_store()
    except DataError:
        return []
    c = client()
    out = []
    for exp in c.search_experiments(order_by=["last_update_time DESC"]):
        if c.search_runs([exp.experiment_id], max_results=1):
            out.append((exp.name, ui_url(server, exp.experiment_id)))
    return out


def require_store() -> str:
    """The tracking URI of a command that only reads (``registry list``, ``promote``), after checking that a
    local database is there: such a command must not create an empty ``runs/mlflow.db`` in whatever folder it
    runs from and then report nothing.

    Raises:
        DataError: naming the database looked for and how to point elsewhere.
    """
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    path = runs_dir() / "mlflow.db"
    existing = next(p for p in path.parents if p.exists())
    if not existing.is_dir():  # SPORTPOSE_RUNS under a file: the error a write there would meet
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(existing))
    if not path.is_file():
        where = "SPORTPOSE_RUNS" if "SPORTPOSE_RUNS" in os.environ else "./runs of the current folder"
        raise DataError(str(path), "", f"no MLflow database (the runs folder is {where}): run from the folder holding "
                                       "runs/, or set SPORTPOSE_RUNS=/path/to/runs or MLFLOW_TRACKING_URI")
    return tracking_uri()


def artifact_root() -> str | None:
    """Artifact location for new experiments on a local database; a server chooses its own."""
    if tracking_uri().startswith("sqlite:"):
        return (runs_dir() / "mlartifacts").as_uri()
    return None


def client() -> MlflowClient:
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(uri, registry_uri=uri)


def experiment_id(name: str) -> str:
    """The id of the experiment ``name``, created (tagged as a training experiment) when missing."""
    c = client()
    exp = c.get_experiment_by_name(name)
    if exp is None:
        try:
            return c.create_experiment(name, artifact_location=artifact_root(), tags=dict([EXPERIMENT_KIND]))
        except MlflowException:  # created concurrently
            exp = c.get_experiment_by_name(name)
    if exp.tags.get(EXPERIMENT_KIND[0]) is None:
        c.set_experiment_tag(exp.experiment_id, *EXPERIMENT_KIND)
    return exp.experiment_id


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=REPO)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


URL_CREDENTIALS = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@'\"]*):[^/\s@'\"]+@")  # scheme://user:password@
TEXT_SUFFIXES = (".yaml", ".yml", ".json", ".md", ".txt", ".csv", ".html", ".log")


def redact_text(text: str) -> str:
    """``text`` with the password of every URL masked (``postgresql://u:pw@h/db`` -> ``postgresql://u:***@h/db``)."""
    return URL_CREDENTIALS.sub(r"\1:***@", text)


def _redact(params: dict[str, Any]) -> dict[str, Any]:
    """No secrets in logged params: values under secret-looking keys are masked, and passwords inside URLs."""
    return {k: ("***" if any(w in k.lower() for w in SECRET_WORDS) else
                redact_text(v) if isinstance(v, str) else v) for k, v in params.items()}


def start_run(experiment: str, run_name: str, parent_id: str | None = None, tags: dict[str, str] | None = None) -> str:
    """Create a run (a child run when ``parent_id`` is given) and return its id."""
    all_tags = {k: redact_text(str(v)) for k, v in (tags or {}).items()}
    if parent_id:
        all_tags[PARENT_TAG] = parent_id
    run = client().create_run(experiment_id(experiment), run_name=run_name, tags=all_tags)
    return run.info.run_id


def end_run(run_id: str, status: str = "FINISHED") -> None:
    client().set_terminated(run_id, status=status)


def log_params(run_id: str, params: dict[str, Any]) -> None:
    """Log (flattened, redacted) params in batches of 100, MLflow's limit per call."""
    flat = _redact(flatten(params))
    items = [Param(k, redact_text(str(v))[:6000]) for k, v in flat.items()]
    c = client()
    for i in range(0, len(items), 100):
        c.log_batch(run_id, params=items[i : i + 100])


def log_metrics(run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, step or 0) for k, v in metrics.items() if v is not None]
    if items:
        client().log_batch(run_id, metrics=items)


def set_tags(run_id: str, tags: dict[str, Any]) -> None:
    client().log_batch(run_id, tags=[RunTag(k, redact_text(str(v))) for k, v in tags.items()])


def log_text(run_id: str, text: str, artifact_file: str) -> None:
    client().log_text(run_id, redact_text(text), artifact_file)


def log_artifact(run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
    """Log a file or a folder; text files holding a URL with a password are logged with it masked."""
    c = client()
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    secret = [p for p in files if p.suffix.lower() in TEXT_SUFFIXES and p.stat().st_size < 1 << 24
              and URL_CREDENTIALS.search(p.read_text(errors="replace"))]
    if not secret:
        if path.is_dir():
            c.log_artifacts(run_id, str(path), artifact_path)
        else:
            c.log_artifact(run_id, str(path), artifact_path)
        return
    with tempfile.TemporaryDirectory() as tmp:  # a masked copy; the user's files are left as they are
        copy = Path(tmp) / path.name
        if path.is_dir():
            shutil.copytree(path, copy)
        else:
            shutil.copy2(path, copy)
        for p in secret:
            target = copy / p.relative_to(path) if path.is_dir() else copy
            target.write_text(redact_text(p.read_text(errors="replace")))
        if path.is_dir():
            c.log_artifacts(run_id, str(copy), artifact_path)
        else:
            c.log_artifact(run_id, str(copy), artifact_path)


# -- registry --------------------------------------------------------------------------------------------


def registry_rows() -> list[dict[str, str]]:
    """Every version of every registered model, with aliases and primary metric."""
    c = client()
    rows = []
    for model in c.search_registered_models():
        aliases: dict[str, list[str]] = {}
        for alias, version in (model.aliases or {}).items():
            aliases.setdefault(str(version), []).append(alias)
        for v in c.search_model_versions(f"name='{model.name}'"):
            metric = v.tags.get("metric_name", "")
            rows.append({
                "name": model.name, "version": str(v.version),
                "aliases": ",".join(sorted(aliases.get(str(v.version), []))),
                "metric": f"{metric}={float(v.tags[f'metric.{metric}']):.4f}" if metric and f"metric.{metric}" in v.tags else "",
                "run_id": v.run_id or "", "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(v.creation_timestamp / 1000)),
            })
    return sorted(rows, key=lambda r: (r["name"], -int(r["version"])))
