"""Checks a pipeline makes before anything trains: the files a spec reads and nobody generates, the metric the
registry compares, and whether every stage fits the cluster (SPEC §6: failures come before the work, not after)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import ray

from sportpose.errors import SpecError, os_problem
from sportpose.spec.experiment import ExperimentSpec


def started_here() -> bool:
    """Whether this driver started its Ray (a local instance, where no autoscaler will ever add a node) rather
    than joining a cluster."""
    node = getattr(ray._private.worker, "_global_node", None)  # noqa: SLF001 - Ray has no public flag for it
    try:
        return bool(node is not None and node.is_head())
    except Exception:  # noqa: BLE001 - a Ray without it: assume a cluster (warn, never refuse)
        return False


def autoscaler() -> bool | None:
    """Whether an autoscaler may add nodes to the cluster this driver uses.

    Ray's monitor on the head publishes its status in the GCS. A cluster started by hand (``ray start``,
    cluster/local/start.sh, a local ``ray.init``) runs the monitor with Ray's read-only provider, which names
    each node's type after the node's own id (``node_<id>``); a launcher or KubeRay autoscaler names the node
    types of its config (``ray.head.default``, a worker group).

    Returns:
        False for a read-only monitor, True for a configured autoscaler, None when the cluster says neither
        (no status published, or autoscaler v2, whose status this check does not read).
    """
    from ray._private import ray_constants
    from ray.experimental.internal_kv import _internal_kv_get

    try:
        raw = _internal_kv_get(ray_constants.DEBUG_AUTOSCALING_STATUS)
        report = json.loads(raw)["autoscaler_report"] if raw else None
    except Exception:  # noqa: BLE001 - a status Ray changed the form of: undecided, never a refusal
        return None
    types = (report or {}).get("node_type_mapping") or {}
    if not types:
        return None
    return any(kind != f"node_{node}" for node, kind in types.items()) or bool(report.get("pending_launches"))


def _nodes() -> list[dict[str, float]]:
    """The total resources of every alive node."""
    return [n["Resources"] for n in ray.nodes() if n.get("Alive")]


def check_resources(spec: ExperimentSpec, log: Callable[[str], None] = print) -> None:
    """Every stage fits the cluster: on a cluster without an autoscaler (a Ray this process started, or one
    started by hand) a stage whose workers cannot all be placed - more CPUs or GPUs than the cluster has, or a
    worker bigger than any node - is refused before anything starts, since Ray Train would wait for them
    forever. With an autoscaler, or when the cluster does not say, a line says the stage waits for nodes.

    Raises:
        SpecError: naming the stage's ``scaling`` key, what the stage asks for and what the cluster has.
    """
    nodes = _nodes()
    total = {kind: sum(n.get(kind, 0.0) for n in nodes) for kind in ("CPU", "GPU")}
    fixed = None
    for name, stage in spec.train.stages.items():
        s = stage.scaling
        if s.num_workers == 0:  # local mode: the training runs in the driver
            continue
        per_worker = {"CPU": s.cpus_per_worker, "GPU": s.gpus_per_worker if s.use_gpu else 0.0}
        room = sum(min(int(n.get(kind, 0.0) / amount + 1e-9) for kind, amount in per_worker.items() if amount)
                   for n in nodes)
        if room >= s.num_workers:
            continue
        short = [k for k, v in per_worker.items() if s.num_workers * v > total[k] + 1e-9] or \
                [k for k, v in per_worker.items() if v]
        key = f"train.stages.{name}.scaling." + ("num_workers" if short[0] == "CPU" else "use_gpu")
        asked = " + ".join(f"{s.num_workers} workers x {per_worker[k]:g} {k} = {s.num_workers * per_worker[k]:g} {k}"
                           for k in per_worker if per_worker[k])
        what = (f"stage {name} asks for {asked}; the cluster has {total['CPU']:g} CPU, {total['GPU']:g} GPU on "
                f"{len(nodes)} node{'s' if len(nodes) != 1 else ''}, room for {room} such worker{'s' if room != 1 else ''}")
        if fixed is None:  # asked once, and only when a stage does not fit
            fixed = "a local Ray" if started_here() else "no autoscaler" if autoscaler() is False else ""
        if fixed:
            raise SpecError(key, f"{what} ({fixed}: no node will join; lower scaling.num_workers or "
                                 "cpus_per_worker, use scaling.num_workers=0 for local mode, or run on a bigger cluster)")
        log(f"warning: {what}; it waits until nodes join (an autoscaler, or ray start on more machines)")


def evaluation_metrics(spec: ExperimentSpec) -> tuple[str, ...]:
    """The numbers the final evaluation of ``spec`` reports (what ``register.metric`` may name)."""
    if spec.model.kind == "stsp":
        return ("mpjpe", "p_mpjpe", "pck3d", "auc3d", "ts", "ts_mm_per_s2", "jitter", "mpjpe_mean_pose",
                "mpjpe_no_tmp", "ts_no_tmp")
    return ("pckh", "pckh_untrained") + (("ap", "ap_untrained") if spec.data.joint_set == "posetrack" else ())


def check_inputs(spec: ExperimentSpec) -> None:
    """The files a spec reads and nobody generates must exist before anything starts: an imported manifest
    (``data.source: manifest``), VideoPose3D's files (``h36m``) and every ``model.*pretrained`` file; and the
    registry's metric must be one the evaluation reports.

    Raises:
        SpecError: naming the key and the missing path.
    """
    data = spec.data
    if data.source == "manifest" and not (Path(data.root) / "manifest.json").is_file():
        raise SpecError("data.root", f"no manifest.json in {data.root!r} (write one with `sportpose data import "
                                     f"posetrack18|posetrack17|h36m|folder ROOT --out {data.root}`, or override "
                                     f"-o data.root=DIR)")
    if data.source == "h36m":
        for name in ("data_3d", "data_2d"):
            if not Path(getattr(data.h36m, name)).is_file():
                raise SpecError(f"data.h36m.{name}", f"file not found: {getattr(data.h36m, name)!r}")
    if spec.register.enabled and spec.register.metric not in evaluation_metrics(spec):
        raise SpecError("register.metric", f"the evaluation of this spec reports no {spec.register.metric!r}; it "
                                           f"reports {', '.join(evaluation_metrics(spec))}")
    _check_writable(spec.train.storage_path)
    for f in fields(spec.model):
        path = getattr(spec.model, f.name)
        if f.name.endswith("pretrained") and path and not Path(path).is_file():
            raise SpecError(f"model.{f.name}", f"pretrained file not found: {path!r} (a local file: nothing "
                                               f"downloads; override -o model.{f.name}=PATH, or null for scratch)")


def _check_writable(storage_path: str | None) -> None:
    """A local ``train.storage_path`` can be made and written, or the first checkpoint would fail the stage after
    its first epoch (a URI is checked by its own file system when Ray Train writes to it).

    Raises:
        SpecError: naming ``train.storage_path``, the folder and what is wrong with it.
    """
    if not storage_path or "://" in storage_path:
        return
    try:
        Path(storage_path).mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=storage_path, prefix=".sportpose-write-check-"):
            pass
    except OSError as e:
        raise SpecError("train.storage_path", f"{storage_path!r} cannot be written: {os_problem(e)}") from None
