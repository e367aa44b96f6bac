"""``sportpose submit``, ``jobs list|status|logs|stop``, ``mlflow-server`` and ``dashboard``: the commands that
work with a Ray cluster's job API and the services a team shares (SPEC §8, §10).

The platform's imports are written inside the commands: the job client loads Ray, the servers MLflow, which
``sportpose --help`` should not wait for.
"""

from __future__ import annotations

import argparse
import sys
import time

from sportpose.cli.common import Commands, Run, columns, job_address_arg, override_arg
from sportpose.errors import SpecError

JOB_COLUMNS = ("id", "status", "started", "took", "spec")


def cluster_errors(func: Run) -> Run:
    """An unreachable cluster or a refused submission is a message and exit status 2, like a bad spec."""

    def run(args: argparse.Namespace) -> int:
        from sportpose.platform.jobs import ClusterError  # loads Ray: only when a cluster command runs

        try:
            return func(args)
        except ClusterError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2

    return run


# ---- submit ------------------------------------------------------------------------------------------------


def submit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="experiment spec (YAML); with --sweep a sweep spec")
    override_arg(p, help="override a spec key on the cluster, e.g. -o train.storage_path=s3://bucket/runs (repeatable)")
    job_address_arg(p)
    p.add_argument("--follow", action="store_true", help="stream the job's logs and exit with its status "
                                                         "(0 succeeded, 1 failed, 3 stopped)")
    p.add_argument("--sweep", action="store_true", help="run `sportpose sweep SPEC` instead of `sportpose train SPEC`")
    p.add_argument("--tracking-uri", default=None, metavar="URI",
                   help="MLFLOW_TRACKING_URI of the job, an MLflow server every node reaches (default: this shell's)")
    p.add_argument("--shared-storage", action="append", default=[], metavar="PATH",
                   help="a folder mounted at the same path on every node (NFS): local storage_path and data.root "
                        "under it are accepted on a multi-node cluster (repeatable; also SPORTPOSE_SHARED_STORAGE)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="an environment variable of the job, e.g. --env SPORTPOSE_RUNS=/mnt/nfs/runs (repeatable)")
    p.add_argument("--pip", action="store_true", help="install the project's requirements into the job's runtime_env "
                                                      "(slow; for a cluster whose image lacks them)")
    p.add_argument("--no-validate", action="store_true",
                   help="do not load the spec here: the job validates it first thing and fails with the key named")


def cmd_submit(args: argparse.Namespace) -> int:
    from sportpose.platform import jobs

    env = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpecError("--env", f"expected KEY=VALUE, got {item!r}")
        env[key] = value
    job_id = jobs.submit(args.spec, args.address, args.override, command="sweep" if args.sweep else "train",
                         tracking_uri=args.tracking_uri, env=env, pip=args.pip, shared_storage=args.shared_storage,
                         validate=not args.no_validate)
    print(job_id, flush=True)
    if not args.follow:
        print(f"follow it: sportpose jobs logs {job_id} --follow", file=sys.stderr)
        return 0
    return follow_job(job_id, args.address)


def follow_job(job_id: str, address: str | None) -> int:
    """Stream the job's logs; exit with its status (0 succeeded, 1 failed, 3 stopped)."""
    from sportpose.platform import jobs

    try:
        status = jobs.follow(job_id, address)
    except KeyboardInterrupt:
        print(f"\nstopped following; the job keeps running (stop it: sportpose jobs stop {job_id})", file=sys.stderr)
        return 130
    reason = "" if status == "SUCCEEDED" else f": {job_reason(jobs.job_info(job_id, address).message)}"
    print(f"job {job_id}: {status}{reason}", file=sys.stderr)
    return jobs.EXIT_CODES[status]


def job_reason(message: str | None) -> str:
    """A failed job's message holds the tail of its logs: the last `error:` line says why, else its first line."""
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or ["no message"])[-1 if errors else 0]


# ---- jobs list|status|logs|stop ----------------------------------------------------------------------------


def cmd_jobs_list(args: argparse.Namespace) -> int:
    from sportpose.platform import jobs

    rows = []
    for j in jobs.list_jobs(args.address):
        start = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(j.start_time / 1000)) if j.start_time else ""
        end = j.end_time or time.time() * 1000
        took = f"{(end - j.start_time) / 1000:.0f}s" if j.start_time else ""
        what = (j.metadata or {}).get("sportpose.spec") or (j.entrypoint or "")[:60]
        rows.append({"id": j.submission_id or j.job_id or "", "status": str(j.status.value), "started": start,
                     "took": took, "spec": what})
    print(columns(rows, JOB_COLUMNS) if rows else "no jobs")
    return 0


def cmd_jobs_status(args: argparse.Namespace) -> int:
    from sportpose.platform import jobs

    info = jobs.job_info(args.id, args.address)
    status = str(info.status.value)
    print(f"job:        {info.submission_id}")
    print(f"status:     {status}" + (f" (exit code {info.driver_exit_code})" if info.driver_exit_code is not None else ""))
    print(f"entrypoint: {info.entrypoint}")
    if status in ("FAILED", "STOPPED"):
        print(f"reason:     {job_reason(info.message)}")
    workers = jobs.train_workers(info, args.address)
    if workers:
        nodes = sorted({w["node_id"] for w in workers})
        print(f"Ray Train workers: {len(workers)} on {len(nodes)} node(s): " + ", ".join(n[:12] for n in nodes))
    if args.verbose and info.message:
        print("message:")
        print(info.message.rstrip())
    return 0


def cmd_jobs_logs(args: argparse.Namespace) -> int:
    from sportpose.platform import jobs

    if args.follow:
        return follow_job(args.id, args.address)
    print(jobs.job_logs(args.id, args.address), end="")
    return 0


def cmd_jobs_stop(args: argparse.Namespace) -> int:
    from sportpose.platform import jobs

    status = jobs.stop_job(args.id, args.address, timeout=args.timeout)
    print(f"job {args.id}: {status}")
    return 0 if status in jobs.TERMINAL else 1


def job_id_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", help="the job's submission id, as `sportpose submit` printed it")
    job_address_arg(p)


def jobs_status_args(p: argparse.ArgumentParser) -> None:
    job_id_args(p)
    p.add_argument("-v", "--verbose", action="store_true", help="also print the cluster's full status message")


def jobs_logs_args(p: argparse.ArgumentParser) -> None:
    job_id_args(p)
    p.add_argument("--follow", action="store_true", help="stream until the job ends; exit with its status")


def jobs_stop_args(p: argparse.ArgumentParser) -> None:
    job_id_args(p)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the job to stop (default 60)")


JOBS_COMMANDS: Commands = {
    "list": ("every job of the cluster: id, status, start, duration, spec", job_address_arg,
             cluster_errors(cmd_jobs_list)),
    "status": ("a job's status, why it failed, and the nodes its Ray Train workers ran on", jobs_status_args,
               cluster_errors(cmd_jobs_status)),
    "logs": ("a job's logs (--follow: stream them until it ends)", jobs_logs_args, cluster_errors(cmd_jobs_logs)),
    "stop": ("stop a running job and wait until it has stopped", jobs_stop_args, cluster_errors(cmd_jobs_stop)),
}


# ---- mlflow-server, dashboard ------------------------------------------------------------------------------


def mlflow_server_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1; 0.0.0.0 for a team or "
                                                       "cluster, behind your network boundary)")
    p.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    p.add_argument("--backend-store-uri", default=None, metavar="URI",
                   help="database for runs and the registry, any SQLAlchemy URI (default sqlite:///runs/mlflow.db)")
    p.add_argument("--artifacts-destination", default=None, metavar="URI",
                   help="artifact store the server proxies: a folder, s3://, gs://... (default runs/mlartifacts)")
    p.add_argument("--workers", type=int, default=2, help="server worker processes (default 2)")
    p.add_argument("--allowed-hosts", default=None, metavar="HOSTS",
                   help="Host headers to accept when reached by name, e.g. mlflow.internal:5000 (MLflow's guard "
                        "against DNS rebinding; default localhost and private addresses)")


def cmd_mlflow_server(args: argparse.Namespace) -> int:
    from sportpose.platform.mlflow_server import ServerArgs, serve

    return serve(ServerArgs(host=args.host, port=args.port, backend_store_uri=args.backend_store_uri,
                            artifacts_destination=args.artifacts_destination, workers=args.workers,
                            allowed_hosts=args.allowed_hosts))


def dashboard_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mlflow-port", type=int, default=5000, help="port of the MLflow UI (default 5000)")
    p.add_argument("--optuna-port", type=int, default=8080, help="port of optuna-dashboard (default 8080)")
    p.add_argument("--storage", default=None, metavar="URL",
                   help="Optuna storage of the sweeps' studies (default sqlite:///runs/optuna.db)")


def cmd_dashboard(args: argparse.Namespace) -> int:
    from sportpose.platform.dashboard import DashboardArgs, serve

    return serve(DashboardArgs(mlflow_port=args.mlflow_port, optuna_port=args.optuna_port, storage=args.storage))
