"""The Ray runtime: a local Ray by default, or a cluster given by ``--address`` / ``RAY_ADDRESS``.

A local Ray takes its CPUs from the machine and serves its dashboard on 127.0.0.1 only. The dashboard also
runs the State API, which Ray Train's placement-group cleanup needs (SPEC §8).

Worker lines Ray streams to the driver pass through :func:`sportpose.platform.console.console_noise`.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
from typing import Any

import ray

from sportpose.platform.console import quiet_console, without_noise


def init_ray(address: str | None = None, num_cpus: int | None = None, quiet: bool = True) -> str:
    """Start or connect to Ray; returns the address in use.

    Args:
        address: a cluster address (``ray://``, ``HOST:PORT`` or ``auto``); falls back to ``RAY_ADDRESS``;
            neither starts a local Ray.
        num_cpus: CPUs of a local Ray (default: the machine's).
        quiet: keep Ray Data progress bars, Ray's INFO logs and the worker lines of :func:`console_noise` off
            the console (``--verbose`` turns it off).
    """
    if ray.is_initialized():
        return ray.get_runtime_context().gcs_address
    address = address or os.environ.get("RAY_ADDRESS") or None
    if quiet:
        quiet_console()
    # Train's print patch would echo every worker print twice on the driver's console.
    env_vars = {"PYTHONWARNINGS": "ignore::DeprecationWarning", "RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}
    for name in ("MLFLOW_TRACKING_URI", "SPORTPOSE_RUNS", "MLFLOW_LOGGING_LEVEL"):
        if name in os.environ:
            env_vars[name] = os.environ[name]
    kwargs = dict(logging_level=logging.WARNING if quiet else logging.INFO, runtime_env={"env_vars": env_vars})
    # Ray Train's PlacementGroupCleaner (a detached actor) asks the State API about its controller without an
    # address; with several Ray instances on one machine it cannot tell which is its own, dies, and the
    # placement group of a trial that Tune stops (ASHA) leaks, so the next trial waits forever (SPEC §8). Every
    # worker of this job is therefore told its cluster's address; a local Ray gets a GCS port chosen up front.
    if address:
        if ":" in address and "://" not in address:
            env_vars["RAY_ADDRESS"] = address
        ray.init(address=address, **kwargs)
    else:
        preset = os.environ.get("RAY_GCS_SERVER_PORT")
        port = preset or str(_free_port())
        env_vars["RAY_ADDRESS"] = f"{ray.util.get_node_ip_address()}:{port}"
        os.environ["RAY_GCS_SERVER_PORT"] = port
        try:
            ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=True, dashboard_host="127.0.0.1", **kwargs)
        finally:
            if preset is None:
                os.environ.pop("RAY_GCS_SERVER_PORT", None)
    if quiet:
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = not quiet
    ctx.print_on_execution_start = not quiet
    if quiet:
        _filter_worker_lines()
    _hold_working_dir()
    return ray.get_runtime_context().gcs_address


def _filter_worker_lines() -> None:
    """Drop the lines of :func:`console_noise` from what Ray streams from the workers to this console.

    Ray prints worker output through the handlers of its standard-stream dispatcher (``ray_print_logs``, added
    by ``ray.init``), and the raylet's warnings (the worker-count one) straight through its module's
    ``print_to_stdstream``; both are wrapped so each batch of lines loses its noise first. Where a Ray version
    has moved them, nothing is filtered (the console is noisier, nothing is lost).
    """
    try:
        from ray._private import worker as ray_worker
        from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher
    except ImportError:
        return
    with dispatcher._lock:  # noqa: SLF001 - the dispatcher has no public way to wrap a handler
        dispatcher.handlers = [(name, _without_noise(h) if name == "ray_print_logs" and not _is_filtered(h) else h)
                               for name, h in dispatcher.handlers]
    if callable(getattr(ray_worker, "print_to_stdstream", None)) and not _is_filtered(ray_worker.print_to_stdstream):
        ray_worker.print_to_stdstream = _without_noise(ray_worker.print_to_stdstream)


def _is_filtered(handler: Any) -> bool:
    return getattr(handler, "_sportpose_filtered", False)


def _without_noise(handler: Any) -> Any:
    @functools.wraps(handler)
    def emit(data: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        lines = without_noise(data.get("lines", []))
        if lines:
            handler({**data, "lines": lines}, *args, **kwargs)

    emit._sportpose_filtered = True
    return emit


@ray.remote(num_cpus=0)
class _WorkingDirHolder:
    """Does nothing: while it lives, its node's runtime-env agent counts the job's working_dir as in use."""

    def ping(self) -> bool:
        return True


_HOLDER = None


def _hold_working_dir() -> None:
    """Keep a submitted job's working_dir on the driver's node for the driver's lifetime.

    Ray's runtime-env agent deletes a working_dir package when no worker on the node uses it any more; the job's
    driver runs inside that folder but is not counted, so once the training workers of the last stage exit, the
    folder (the driver's cwd and the project's code) can vanish before the driver evaluates and registers
    (``os.getcwd()`` failing inside ``mlflow.pyfunc.log_model``). A zero-CPU actor with the job's runtime_env,
    pinned to the driver's node, is such a user until the driver exits (the actor dies with its job).
    """
    global _HOLDER
    if _HOLDER is not None or not (ray.get_runtime_context().runtime_env or {}).get("working_dir"):
        return
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = ray.get_runtime_context().get_node_id()
    _HOLDER = _WorkingDirHolder.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=True)).remote()
    try:
        ray.get(_HOLDER.ping.remote(), timeout=120)
    except Exception as e:  # noqa: BLE001 - the job still runs; say why the guard is missing
        logging.getLogger(__name__).warning("could not pin the job's working_dir on its node: %s", e)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def shutdown_ray() -> None:
    if ray.is_initialized():
        ray.shutdown()
