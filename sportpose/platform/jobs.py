"""Experiments as Ray jobs on a cluster: submission, the storage checks before it, and job control (SPEC §10).

``sportpose submit SPEC --address http://HEAD:8265`` runs ``python -m sportpose train SPEC -o ...`` (or
``sweep``) on the cluster through the Ray Jobs API. Decisions, and why:

- **Code and dependencies.** The job's ``working_dir`` is the project root, minus what never belongs in an
  upload (:data:`EXCLUDES`: virtualenvs, ``runs/``, ``.git``, caches, videos, checkpoints), so the cluster
  runs the code you have. Dependencies come from the cluster's image, which has the project installed
  (``cluster/Dockerfile``); ``--pip`` adds the project's requirements to the runtime_env for a cluster that
  lacks them, at the price of a pip install on every node.
- **The spec** is validated here first, so that a bad key is refused in a second, naming the key and the
  file (exit 2), before anything is submitted. ``--no-validate`` leaves it to the job, which validates it
  before doing anything else and fails within seconds with the same message in its logs and status. A spec
  inside the project travels in the working_dir; one outside it travels in the job's environment
  (``SPORTPOSE_SPEC_YAML``) and is written into the job's working dir under its own name.
- **Storage and tracking checks.** Every node of a cluster must see the same checkpoints, data and MLflow
  store. When the cluster has more than one node (or a head without CPUs, whose workers the autoscaler is
  still to add), a local ``train.storage_path`` or ``data.root`` and a ``sqlite:``/file tracking URI are
  refused, with what to use instead: ``s3://``/``gs://`` storage, an NFS path mounted on every node, an
  MLflow server. ``data.root`` counts because Ray Data tasks on every node read the clips from it; an unset
  ``storage_path`` is ``$SPORTPOSE_RUNS/ray`` of the job (``--env SPORTPOSE_RUNS=...``). For ``--sweep``
  the keys are read from the sweep spec as written. A local path counts as shared only when it lies under a folder declared with
  ``--shared-storage PATH`` (or ``SPORTPOSE_SHARED_STORAGE``, ``os.pathsep``-separated): nothing on this
  machine can tell whether the cluster's nodes mount it.
- **Tracking.** ``MLFLOW_TRACKING_URI`` (``--tracking-uri``, else this shell's) is handed to the job's
  environment. A ``localhost`` server is refused when the nodes have different addresses: each would talk
  to itself.
- **Token authentication** (Ray 2.60). The job API wants ``Authorization: Bearer TOKEN``. The token is
  found as Ray finds it: ``RAY_AUTH_TOKEN``, else the file named by ``RAY_AUTH_TOKEN_PATH``, else (with
  ``RAY_AUTH_MODE=token``) ``~/.ray/auth_token``; ``RAY_AUTH_MODE=disabled`` sends none. The token never
  goes into the job's runtime_env: the job's driver inherits it from the node it runs on.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import hashlib
import json
import logging
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlparse

import requests
import tomllib
import yaml
from ray.job_submission import JobSubmissionClient

from sportpose.errors import SpecError
from sportpose.paths import project_root
from sportpose.spec.experiment import DataSpec, TrainSpec, apply_overrides, load_spec
from sportpose.spec.fill import get_key

# Never uploaded with the working_dir (gitignore syntax, relative to the project root).
EXCLUDES = [
    ".venv/", "venv/", ".git/", "runs/", "reports/", "mlruns/", "mlartifacts/", "build/", "dist/",
    "**/__pycache__/", "*.pyc", "*.egg-info/", ".pytest_cache/", ".ipynb_checkpoints/",
    "*.mp4", "*.avi", "*.mov", "*.mkv", "*.npz", "*.parquet", "*.pt", "*.pth", "*.ckpt", "*.db",
]
# Storage every node reaches by itself: object stores and distributed file systems.
SHARED_SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss", "az", "hdfs", "viewfs")
# Tracking URIs served over the network (an MLflow server, Databricks, a database server).
SERVER_SCHEMES = ("http", "https", "databricks", "postgresql", "mysql", "mssql", "oracle")
SPEC_ENV = "SPORTPOSE_SPEC_YAML"
SHARED_ENV = "SPORTPOSE_SHARED_STORAGE"
SUBMITTED_DIR = ".sportpose-submitted"
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
EXIT_CODES = {"SUCCEEDED": 0, "FAILED": 1, "STOPPED": 3}  # --follow exits with these
TRAIN_WORKER_CLASS = "RayTrainWorker"  # Ray Train V2's worker actor
TOKEN_HINT = ("the cluster wants its token: export RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH, "
              "or ~/.ray/auth_token); for a cluster from cluster/local/start.sh: source DIR/env.sh")


class ClusterError(RuntimeError):
    """The cluster cannot be reached or refused a request, or a submission was refused before it was sent."""


# -- where the cluster is, and how to authenticate ---------------------------------------------------------


def api_address(address: str | None) -> str:
    """The job API's URL: ``address``, else ``RAY_API_SERVER_ADDRESS``, else ``RAY_ADDRESS`` when it is an
    http(s) address (a bare ``HOST:PORT`` there is the GCS address that ``ray.init`` reads, not the job API).

    Raises:
        ClusterError: no address at all.
    """
    if not address:
        from_env = os.environ.get("RAY_ADDRESS", "")
        address = os.environ.get("RAY_API_SERVER_ADDRESS") or (from_env if from_env.startswith("http") else "")
    if not address:
        raise ClusterError("no cluster address: give --address http://HEAD:8265, or set RAY_API_SERVER_ADDRESS "
                           "(or RAY_ADDRESS to an http:// address)")
    if "://" not in address:
        address = f"http://{address}"
    if not address.startswith(("http://", "https://")):
        raise ClusterError(f"{address}: the job API is the dashboard's http(s) address, e.g. http://HEAD:8265")
    return address.rstrip("/")


def auth_headers() -> dict[str, str]:
    """The ``Authorization`` header for a token-authenticated cluster, found as Ray finds its token.

    Raises:
        ClusterError: ``RAY_AUTH_TOKEN_PATH`` names an unreadable file, or ``RAY_AUTH_MODE=token`` and no
            token anywhere.
    """
    mode = os.environ.get("RAY_AUTH_MODE", "").lower()
    if mode == "disabled":
        return {}
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if not token and path:
        try:
            token = Path(path).expanduser().read_text().strip()
        except OSError as e:
            raise ClusterError(f"RAY_AUTH_TOKEN_PATH={path}: cannot read the token ({e.strerror})") from None
    default = Path.home() / ".ray" / "auth_token"
    if not token and mode == "token":
        if not default.is_file():
            raise ClusterError("RAY_AUTH_MODE=token but no token: set RAY_AUTH_TOKEN, or RAY_AUTH_TOKEN_PATH to "
                               f"the cluster's token file, or put it in {default}")
        token = default.read_text().strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


def connect(address: str | None = None):
    """A ``JobSubmissionClient`` for the cluster, authenticated when a token is configured.

    Raises:
        ClusterError: the address is missing or unreachable, or the cluster refused the token.
    """

    url = api_address(address)
    headers = auth_headers()
    try:
        return JobSubmissionClient(url, headers=headers)
    except Exception as e:  # Ray raises ConnectionError, RuntimeError or ValueError, each with a good message
        text, hint = str(e), ""
        if "403" in text or "Forbidden" in text:
            hint = "; the token is not this cluster's"
        elif "401" in text or "Unauthorized" in text:
            hint = f"; {TOKEN_HINT}"
        raise ClusterError(f"cannot use the Ray job API at {url}: {_first_line(e)}{hint}") from None


def _get(address: str | None, path: str, params: dict[str, Any] | None = None) -> Any:
    """GET one of the dashboard's JSON endpoints (the State API lives there too)."""

    url = api_address(address)
    try:
        r = requests.get(f"{url}{path}", params=params, headers=auth_headers(), timeout=30)
    except requests.RequestException as e:
        raise ClusterError(f"cannot reach {url}: {_first_line(e)}") from None
    if r.status_code in (401, 403):
        raise ClusterError(f"{url}: {r.status_code} {r.text.strip()}; {TOKEN_HINT}")
    r.raise_for_status()
    return r.json()


def _state_list(address: str | None, resource: str, filters: list[tuple[str, str, str]] = ()) -> list[dict]:
    params: dict[str, Any] = {"limit": 10000, "detail": "true", "filter_keys": [], "filter_predicates": [],
                              "filter_values": []}
    for key, predicate, value in filters:
        params["filter_keys"].append(key)
        params["filter_predicates"].append(predicate)
        params["filter_values"].append(value)
    return _get(address, f"/api/v0/{resource}", params)["data"]["result"]["result"]


@dataclass(frozen=True)
class ClusterInfo:
    """The nodes a cluster has now, as its State API reports them."""

    address: str
    nodes: list[dict[str, Any]] = field(default_factory=list)  # alive nodes: node_id, node_ip, is_head_node, ...

    @property
    def multi_node(self) -> bool:
        """More than one node, or a head that cannot run the job alone (its workers are still to come)."""
        if len(self.nodes) > 1:
            return True
        head = next((n for n in self.nodes if n.get("is_head_node")), None)
        return head is not None and not (head.get("resources_total") or {}).get("CPU")

    @property
    def node_ips(self) -> set[str]:
        return {n.get("node_ip", "") for n in self.nodes}

    def describe(self) -> str:
        if len(self.nodes) == 1 and self.multi_node:
            return "its head node has no CPUs, so its work runs on worker nodes"
        return f"it has {len(self.nodes)} nodes"


def cluster_info(address: str | None = None) -> ClusterInfo:
    nodes = [n for n in _state_list(address, "nodes") if n.get("state") == "ALIVE"]
    return ClusterInfo(api_address(address), nodes)


# -- the checks before a submission ------------------------------------------------------------------------


def shared_prefixes(declared: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Folders declared as mounted on every node: ``--shared-storage`` and ``SPORTPOSE_SHARED_STORAGE``."""
    from_env = [p for p in os.environ.get(SHARED_ENV, "").split(os.pathsep) if p]
    return [os.path.normpath(os.path.expanduser(p)) for p in [*declared, *from_env]]


def is_shared_path(value: str, shared: list[str] | tuple[str, ...] = ()) -> bool:
    """Whether every node of a cluster sees the same ``value`` (a path or a URI).

    Object-store and distributed-file-system URIs are shared; an absolute local path is shared only under a
    declared shared folder; a relative path never is (on the cluster it resolves inside the job's
    working_dir on the node that runs the driver).
    """
    scheme = urlparse(value).scheme.lower()
    if scheme in SHARED_SCHEMES:
        return True
    if scheme == "file":
        value = urlparse(value).path
    elif scheme and len(scheme) > 1:  # another URI scheme: not a local path we could judge
        return True
    if not os.path.isabs(value):
        return False
    path = os.path.normpath(value)
    prefixes = [os.path.normpath(p) for p in shared]
    return any(path == p or path.startswith(p.rstrip(os.sep) + os.sep) for p in prefixes)


def tracking_problem(uri: str | None, cluster: ClusterInfo, shared: list[str] | tuple[str, ...] = ()) -> str | None:
    """Why the job's MLflow tracking URI would not be one store for every node, or None when it is."""
    server_hint = ("run an MLflow server that every node reaches (sportpose mlflow-server --host 0.0.0.0 "
                   "--backend-store-uri postgresql://... --artifacts-destination s3://...) and pass "
                   "--tracking-uri http://HOST:5000")
    if not uri:
        return (f"MLFLOW_TRACKING_URI is not set, so the job would track into a SQLite file in its working dir "
                f"on one node: {server_hint}")
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    if scheme == "sqlite" or scheme.startswith("sqlite+"):
        return f"MLFLOW_TRACKING_URI {uri} is a SQLite file, local to one node: {server_hint}"
    if scheme in SERVER_SCHEMES:
        if parsed.hostname in ("localhost", "127.0.0.1", "::1") and len(cluster.node_ips) > 1:
            return (f"MLFLOW_TRACKING_URI {uri} names localhost, which is a different machine for each node: "
                    "give the server's address that every node reaches")
        return None
    if scheme in ("", "file") and not is_shared_path(uri, shared):
        return f"MLFLOW_TRACKING_URI {uri} is a local folder: {server_hint}"
    return None


def storage_problems(values: dict[str, str], tracking_uri: str | None, cluster: ClusterInfo,
                     shared: list[str] | tuple[str, ...] = ()) -> list[str]:
    """What would break on a multi-node ``cluster``: each problem says what to use instead.

    Args:
        values: the spec's storage keys and their values (``train.storage_path``, ``data.root``).
        tracking_uri: the job's ``MLFLOW_TRACKING_URI``.
        shared: folders declared as mounted on every node.
    """
    if not cluster.multi_node:
        return []
    problems = []
    for key, value in values.items():
        if not is_shared_path(value, shared):
            what = "a relative path" if "://" not in value and not os.path.isabs(value) else "a local path"
            problems.append(
                f"{key} {value!r} is {what}, not storage every node sees: use s3://bucket/path, gs://bucket/path, or "
                f"an NFS path mounted on every node, declared with --shared-storage /mnt/nfs (-o {key}=...)")
    problem = tracking_problem(tracking_uri, cluster, shared)
    if problem:
        problems.append(problem)
    return problems


def storage_values(spec_path: str | Path, overrides: list[str] | tuple[str, ...] = (), validate: bool = True,
                   job_env: dict[str, str] | None = None) -> dict[str, str]:
    """Where the job would put checkpoints and read data: the spec's storage keys after overrides.

    From the validated spec, or (``validate=False``) read raw with the spec's defaults. An unset
    ``train.storage_path`` means ``<runs>/ray``, with ``<runs>`` the job's ``SPORTPOSE_RUNS`` (``job_env``),
    else ``runs`` in the job's working dir.

    Raises:
        SpecError: ``validate`` and a bad spec, naming the key and the file.
    """

    if validate:
        spec = load_spec(spec_path, overrides)
        storage, root = spec.train.storage_path, spec.data.root
    else:
        try:
            raw = yaml.safe_load(Path(spec_path).read_text()) or {}
        except (OSError, yaml.YAMLError):
            raw = {}
        raw = apply_overrides(raw if isinstance(raw, dict) else {}, overrides, str(spec_path))

        storage = get_key(raw, "train.storage_path") or TrainSpec().storage_path
        root = get_key(raw, "data.root") or DataSpec().root
    runs = (job_env or {}).get("SPORTPOSE_RUNS") or "runs"
    return {"train.storage_path": str(storage or f"{runs.rstrip('/')}/ray"), "data.root": str(root)}


# -- the job: runtime_env, entrypoint, submission ----------------------------------------------------------


def project_requirements(root: Path) -> list[str]:
    """The project's dependencies from pyproject.toml (for ``--pip``)."""

    data = tomllib.loads((root / "pyproject.toml").read_text())
    return list(data["project"]["dependencies"])


def runtime_env(root: Path | None, tracking_uri: str | None = None, env: dict[str, str] | None = None,
                pip: bool = False) -> dict[str, Any]:
    """The job's runtime_env: the project as working_dir, the environment, and (``pip``) the requirements."""
    env_vars = {
        "PYTHONUNBUFFERED": "1",  # logs stream as they are written
        # sportpose's driver calls ray.init with env_vars of its own (MLFLOW_TRACKING_URI among them); without
        # this Ray refuses to merge a key that the job's runtime_env sets too.
        "RAY_OVERRIDE_JOB_RUNTIME_ENV": "1",
    }
    if tracking_uri:
        env_vars["MLFLOW_TRACKING_URI"] = tracking_uri
    env_vars.update(env or {})
    out: dict[str, Any] = {"env_vars": env_vars}
    if root is not None:
        out["working_dir"] = str(root)
        out["excludes"] = list(EXCLUDES)
        if pip:
            out["pip"] = {"packages": project_requirements(root), "pip_check": False}
    elif pip:
        raise ClusterError("--pip needs the project's source tree (pyproject.toml); install the package in the image")
    return out


@dataclass(frozen=True)
class JobPlan:
    """What is submitted: the command line run on the cluster, its runtime_env and metadata."""

    entrypoint: str
    runtime_env: dict[str, Any]
    metadata: dict[str, str]
    submission_id: str


def plan_job(spec_path: str | Path, overrides: list[str] | tuple[str, ...] = (), command: str = "train",
             tracking_uri: str | None = None, env: dict[str, str] | None = None, pip: bool = False,
             root: Path | None = None) -> JobPlan:
    """Build the job for ``sportpose COMMAND SPEC -o ...`` without contacting the cluster."""
    spec_path = Path(spec_path)
    text = spec_path.read_text()
    env = dict(env or {})
    prefix: list[str] = []
    if _uploaded(spec_path, root):
        spec_arg = spec_path.resolve().relative_to(root).as_posix()
    else:
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        spec_arg = f"{SUBMITTED_DIR}/{digest}/{spec_path.name}"
        env[SPEC_ENV] = text
        write = (f"import os, pathlib; p = pathlib.Path({json.dumps(spec_arg)}); "
                 f"p.parent.mkdir(parents=True, exist_ok=True); p.write_text(os.environ[{json.dumps(SPEC_ENV)}])")
        prefix = [shlex.join(["python", "-c", write]), "&&"]
    args = ["python", "-m", "sportpose", command, spec_arg]
    for item in overrides:
        args += ["-o", item]
    name = _spec_name(text, spec_path)
    return JobPlan(
        entrypoint=" ".join([*prefix, shlex.join(args)]),
        runtime_env=runtime_env(root, tracking_uri, env, pip),
        metadata={"sportpose.spec": str(spec_path), "sportpose.command": command, "sportpose.name": name,
                  "sportpose.user": getpass.getuser()},
        submission_id=f"sportpose-{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(2).hex()}",
    )


def _uploaded(path: Path, root: Path | None) -> bool:
    """Whether the working_dir upload carries ``path``: inside the project, not excluded, not gitignored."""
    if root is None or not path.resolve().is_relative_to(root):
        return False
    rel = path.resolve().relative_to(root)
    excluded_dirs = {e.strip("/") for e in EXCLUDES if e.endswith("/") and "*" not in e}
    if any(part in excluded_dirs for part in rel.parts[:-1]):
        return False
    try:  # Ray leaves out what .gitignore ignores, too
        ignored = subprocess.run(["git", "check-ignore", "-q", str(rel)], cwd=root, capture_output=True, timeout=10)
        return ignored.returncode != 0
    except (OSError, subprocess.SubprocessError):
        return True


def _spec_name(text: str, path: Path) -> str:
    try:
        name = str((yaml.safe_load(text) or {}).get("name") or path.stem)
    except (yaml.YAMLError, AttributeError):
        name = path.stem
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)[:40]


def submit(spec_path: str | Path, address: str | None = None, overrides: list[str] | tuple[str, ...] = (),
           command: str = "train", tracking_uri: str | None = None, env: dict[str, str] | None = None,
           pip: bool = False, shared_storage: list[str] | tuple[str, ...] = (), validate: bool = True) -> str:
    """Check the spec against the cluster, then submit it; returns the job's submission id.

    Raises:
        SpecError: ``validate`` and a bad spec (nothing is submitted).
        ClusterError: the cluster is unreachable, or the spec's storage or tracking would not be shared by
            the cluster's nodes (nothing is submitted).
    """
    spec_path = Path(spec_path)
    if not spec_path.is_file():
        raise SpecError("<file>", "spec file not found", str(spec_path))
    values = storage_values(spec_path, overrides, validate=validate and command == "train", job_env=env)
    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None
    client = connect(address)
    cluster = cluster_info(address)
    problems = storage_problems(values, tracking_uri, cluster, shared_prefixes(shared_storage))
    if problems:
        raise ClusterError(f"refused to submit {spec_path} to {cluster.address}: {cluster.describe()}, and\n"
                           + "\n".join(f"  - {p}" for p in problems))
    plan = plan_job(spec_path, overrides, command, tracking_uri, env, pip, project_root())
    try:
        with _quiet_upload():
            return client.submit_job(entrypoint=plan.entrypoint, runtime_env=plan.runtime_env,
                                     metadata=plan.metadata, submission_id=plan.submission_id)
    except Exception as e:  # upload or API errors come back as RuntimeError with the server's message
        raise ClusterError(f"the cluster at {cluster.address} refused the job: {_first_line(e)}") from None


@contextlib.contextmanager
def _quiet_upload():
    """Keep Ray's per-file packaging notes (INFO) and its notes on its own default excludes off the console."""

    def keep(record: logging.LogRecord) -> bool:
        return "ignored by default" not in record.getMessage()

    loggers = [logging.getLogger(f"ray._private.runtime_env.{m}") for m in ("packaging", "working_dir")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
        lg.addFilter(keep)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
            lg.removeFilter(keep)


# -- following and controlling jobs ------------------------------------------------------------------------


def follow(job_id: str, address: str | None = None, out: TextIO = sys.stdout) -> str:
    """Stream a job's logs to ``out`` until it ends; returns its final status."""
    client = connect(address)
    logging.getLogger("ray.dashboard.modules.job.sdk").setLevel(logging.WARNING)  # "WebSocket closed ..." notes

    async def tail() -> None:
        async for lines in client.tail_job_logs(job_id):
            out.write(lines)
            out.flush()

    asyncio.run(tail())
    return wait(job_id, address, client=client)


def wait(job_id: str, address: str | None = None, timeout: float | None = None, client=None) -> str:
    """Poll until the job reaches a terminal status (or ``timeout`` seconds); returns the status."""
    client = client or connect(address)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        status = str(client.get_job_status(job_id).value)
        if status in TERMINAL or (deadline is not None and time.monotonic() > deadline):
            return status
        time.sleep(0.5)


def job_info(job_id: str, address: str | None = None):
    """The job's ``JobDetails`` (status, message, entrypoint, times, driver node, Ray job id)."""
    client = connect(address)
    try:
        return client.get_job_info(job_id)
    except RuntimeError as e:
        raise ClusterError(f"no job {job_id} at {api_address(address)}: {_first_line(e)}") from None


def list_jobs(address: str | None = None) -> list:
    """Every job the cluster knows, oldest first."""
    return sorted(connect(address).list_jobs(), key=lambda j: j.start_time or 0)


def job_logs(job_id: str, address: str | None = None) -> str:
    return connect(address).get_job_logs(job_id)


def stop_job(job_id: str, address: str | None = None, timeout: float = 60.0) -> str:
    """Ask the cluster to stop the job and wait until it has; returns the final status."""
    client = connect(address)
    try:
        client.stop_job(job_id)
    except RuntimeError as e:
        raise ClusterError(f"cannot stop {job_id}: {_first_line(e)}") from None
    return wait(job_id, address, timeout=timeout, client=client)


def train_workers(job, address: str | None = None) -> list[dict[str, Any]]:
    """The Ray Train worker actors a job ran (alive or finished), each with its ``node_id``, from the State API."""
    if not getattr(job, "job_id", None):
        return []
    actors = _state_list(address, "actors", [("class_name", "=", TRAIN_WORKER_CLASS), ("job_id", "=", job.job_id)])
    return [{"actor_id": a["actor_id"], "node_id": a.get("node_id") or a.get("address", {}).get("raylet_id", ""),
             "state": a.get("state", "")} for a in actors]


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
