"""``sportpose mlflow-server``: a real MLflow tracking server for a team or a cluster (SPEC §9, §10).

A cluster's nodes cannot share a SQLite file, so jobs on a cluster track into a server: runs, metrics and
the model registry in its database, artifacts uploaded through the server into its artifact store (the
server proxies them, so neither the jobs nor the people browsing need credentials for the store).

Defaults suit one machine: the same SQLite database and artifact folder that local runs use
(``runs/mlflow.db``, ``runs/mlartifacts``, moved by ``SPORTPOSE_RUNS``), bound to 127.0.0.1. For a team::

    sportpose mlflow-server --host 0.0.0.0 --port 5000 \\
        --backend-store-uri postgresql://mlflow:PASSWORD@db:5432/mlflow \\
        --artifacts-destination s3://team-bucket/mlflow --allowed-hosts mlflow.internal:5000

and every client and job sets ``MLFLOW_TRACKING_URI=http://mlflow.internal:5000``. Any SQLAlchemy URI works
as the backend; the registry needs a database, so a plain folder (``file:``) is refused. Binding beyond
127.0.0.1 exposes the server to the network: MLflow's own server has no login, so put it behind the
cluster's network boundary or an authenticating proxy.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from sportpose.errors import SpecError
from sportpose.paths import runs_dir


@dataclass(frozen=True)
class ServerArgs:
    """Arguments of ``sportpose mlflow-server``."""

    host: str = "127.0.0.1"  # the interface to bind; 0.0.0.0 exposes the server to the network
    port: int = 5000
    backend_store_uri: str | None = None  # SQLAlchemy URI; None: sqlite:///<runs>/mlflow.db
    artifacts_destination: str | None = None  # folder or s3://, gs://...; None: <runs>/mlartifacts
    workers: int = 2  # server worker processes
    allowed_hosts: str | None = None  # Host headers accepted (MLflow's DNS-rebinding guard); None: MLflow's

    def __post_init__(self):
        if not 0 < self.port < 65536:
            raise SpecError("--port", f"must be a TCP port, got {self.port}")
        if self.workers < 1:
            raise SpecError("--workers", f"must be at least 1, got {self.workers}")
        if self.backend_store_uri is not None:
            scheme = urlparse(self.backend_store_uri).scheme
            if scheme in ("", "file") or len(scheme) == 1:
                raise SpecError("--backend-store-uri", "must be a database (SQLAlchemy URI such as sqlite:///path.db or "
                                f"postgresql://...): the model registry needs one, got {self.backend_store_uri!r}")


def server_command(args: ServerArgs) -> list[str]:
    """The ``mlflow server`` command line for ``args`` (defaults resolved under the runs folder)."""

    backend = args.backend_store_uri or f"sqlite:///{runs_dir() / 'mlflow.db'}"
    artifacts = args.artifacts_destination or str(runs_dir() / "mlartifacts")
    if backend.startswith("sqlite:///"):
        Path(backend.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if "://" not in artifacts:
        artifacts = str(Path(artifacts).resolve())
        Path(artifacts).mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
           "--artifacts-destination", artifacts, "--serve-artifacts",
           "--host", args.host, "--port", str(args.port), "--workers", str(args.workers)]
    if args.allowed_hosts:
        cmd += ["--allowed-hosts", args.allowed_hosts]
    return cmd


def serve(args: ServerArgs) -> int:
    """Run the server in the foreground until it exits or is interrupted; returns its exit status."""
    cmd = server_command(args)
    url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}"
    print(f"MLflow server: {url}  (backend {cmd[cmd.index('--backend-store-uri') + 1]}, "
          f"artifacts {cmd[cmd.index('--artifacts-destination') + 1]})", flush=True)
    print(f"clients and jobs: export MLFLOW_TRACKING_URI={url}" +
          ("   (use this machine's address as the nodes reach it)" if args.host != "127.0.0.1" else ""), flush=True)
    env = dict(os.environ, MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false")
    # MLflow 3's server also runs a pool of job workers for GenAI evaluation; sportpose never uses them.
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    # Its own process group: `mlflow server` starts uvicorn workers that a signal to it alone would orphan,
    # so SIGINT/SIGTERM here go to that whole group and to nothing else.
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    signal.signal(signal.SIGTERM, _interrupt)  # a SIGTERM stops the server as Ctrl-C does
    try:
        return proc.wait()
    except KeyboardInterrupt:
        _stop_group(proc)
        return 0  # stopped as asked


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _stop_group(proc: subprocess.Popen, grace: float = 20.0) -> int:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        return proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait()
    except ProcessLookupError:
        return proc.wait()
