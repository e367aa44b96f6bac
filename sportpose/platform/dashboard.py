"""``sportpose dashboard``: the MLflow UI and, where installed, optuna-dashboard, both on 127.0.0.1.

The MLflow UI is an ``mlflow server`` on the local tracking database and artifact folder (the commands of
:mod:`sportpose.platform.mlflow_server`); with ``MLFLOW_TRACKING_URI`` pointing at a server there is nothing to
start and its URL is printed. optuna-dashboard reads the sweeps' Optuna studies (``sqlite:///runs/optuna.db``
by default); it is not a dependency of sportpose (``pip install optuna-dashboard``). Both run in the
foreground until Ctrl-C, each in its own process group, which is stopped on the way out.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from sportpose.errors import SpecError
from sportpose.paths import runs_dir
from sportpose.platform.mlflow_server import ServerArgs, _stop_group, server_command
from sportpose.registry import tracking


@dataclass(frozen=True)
class DashboardArgs:
    mlflow_port: int = 5000
    optuna_port: int = 8080
    storage: str | None = None  # Optuna storage URL; None: sqlite:///<runs>/optuna.db

    def __post_init__(self):
        for name in ("mlflow_port", "optuna_port"):
            if not 0 < getattr(self, name) < 65536:
                raise SpecError(f"--{name.replace('_', '-')}", f"must be a TCP port, got {getattr(self, name)}")


def optuna_dashboard_command(storage: str, port: int) -> list[str] | None:
    """The optuna-dashboard command line, or None when it is not installed.

    optuna-dashboard has no ``__main__`` module (``python -m optuna_dashboard`` exits at once): its console
    script's entry point, ``optuna_dashboard._cli.main``, is run under this interpreter instead."""
    if importlib.util.find_spec("optuna_dashboard") is not None:
        return [sys.executable, "-c", "from optuna_dashboard._cli import main; main()", storage,
                "--host", "127.0.0.1", "--port", str(port)]
    exe = shutil.which("optuna-dashboard")
    return [exe, storage, "--host", "127.0.0.1", "--port", str(port)] if exe else None


def plan(args: DashboardArgs) -> tuple[list[tuple[str, list[str], str]], list[str]]:
    """What to start: ``[(name, command, url)]``, and lines to print about what is not started."""

    services, notes = [], []
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if uri.startswith(("http://", "https://")):
        notes.append(f"MLflow: {uri} (the tracking server in MLFLOW_TRACKING_URI; nothing to start)")
    else:
        backend = tracking.tracking_uri()
        services.append(("MLflow UI", server_command(ServerArgs(port=args.mlflow_port, backend_store_uri=backend, workers=1)),
                         f"http://127.0.0.1:{args.mlflow_port}"))
    storage = args.storage or f"sqlite:///{runs_dir() / 'optuna.db'}"
    command = optuna_dashboard_command(storage, args.optuna_port)
    if command is None:
        notes.append(f"optuna-dashboard is not installed (pip install optuna-dashboard); the sweeps' studies are in {storage}")
    else:
        services.append(("optuna-dashboard", command, f"http://127.0.0.1:{args.optuna_port}"))
    return services, notes


def serve(args: DashboardArgs) -> int:
    """Start the dashboards, print their URLs, and keep them up until Ctrl-C (or one of them exits)."""

    services, notes = plan(args)
    for line in notes:
        print(line, flush=True)
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    logs = runs_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for name, command, url in services:
        log = logs / f"{name.lower().replace(' ', '-')}.log"
        with open(log, "w") as f:  # the child keeps its own handle
            procs.append((name, log, subprocess.Popen(command, env=env, start_new_session=True, stdout=f, stderr=f)))
        print(f"{name}: {url}   (log: {log})", flush=True)
        if name == "MLflow UI":  # each experiment in MLflow's training view (its UI opens GenAI by default)
            for experiment, link in tracking.experiment_links(url):
                print(f"  {experiment}: {link}", flush=True)
    if not procs:
        return 0
    print("Ctrl-C stops them.", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # a SIGTERM stops them as Ctrl-C does
    status = 0
    try:
        while all(p.poll() is None for _, _, p in procs):
            time.sleep(0.5)
        for name, log, p in procs:
            if p.poll() is not None:
                tail = log.read_text().strip().splitlines()
                print(f"{name} exited ({p.returncode}): {tail[-1] if tail else 'no message'}", file=sys.stderr)
                status = 1
    except KeyboardInterrupt:
        pass
    finally:
        for _, _, p in procs:
            if p.poll() is None:
                _stop_group(p)
    return status


def _interrupt(signum, frame):
    raise KeyboardInterrupt
