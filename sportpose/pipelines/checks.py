"""Checks a pipeline makes before anything trains: the files a spec reads and nobody generates, the metric the
registry compares, and whether every stage fits the cluster (SPEC §6: failures come before the work, not after)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import ray

from sportpose.errors import SpecError
from sportpose.spec.experiment import ExperimentSpec


def started_here() -> bool:
    """Whether this driver started its Ray (a local instance, where no autoscaler will ever add a node) rather
    than joining a cluster."""
    node = getattr(ray._private.worker, "_global_node", None)  # noqa: SLF001 - Ray has no public flag for it
    try:
        return bool(node is not None and node.is_head())
    except Exception:  # noqa: BLE001 - a Ray without it: assume a cluster (warn, never refuse)
        return False


def check_resources(spec: ExperimentSpec, log: Callable[[str], None] = print) -> None:
    """Every stage fits the cluster: on a Ray this process started (no autoscaler) a stage asking for more CPUs or
    GPUs than it has is refused before anything trains; on a cluster it joined, a line says the stage will wait
    for nodes (an autoscaler may add them).

    Raises:
        SpecError: naming the stage's ``scaling`` key, what it asks for and what the local Ray has.
    """
    total = ray.cluster_resources()
    for name, stage in spec.train.stages.items():
        s = stage.scaling
        need = {"CPU": s.num_workers * s.cpus_per_worker, "GPU": s.num_workers * s.gpus_per_worker if s.use_gpu else 0}
        for kind, amount in need.items():
            if amount <= total.get(kind, 0.0) + 1e-9:
                continue
            key = f"train.stages.{name}.scaling." + ("num_workers" if kind == "CPU" else "use_gpu")
            what = (f"{s.num_workers} workers x {s.cpus_per_worker if kind == 'CPU' else s.gpus_per_worker:g} "
                    f"{kind} = {amount:g} {kind}, the cluster has {total.get(kind, 0.0):g}")
            if started_here():
                raise SpecError(key, f"{what} (a local Ray: no node will join; lower scaling.num_workers, use "
                                     "scaling.num_workers=0 for local mode, or pass --address of a bigger cluster)")
            log(f"warning: stage {name}: {what}; it waits until nodes join (an autoscaler, or ray start on more "
                "machines)")


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
    for f in fields(spec.model):
        path = getattr(spec.model, f.name)
        if f.name.endswith("pretrained") and path and not Path(path).is_file():
            raise SpecError(f"model.{f.name}", f"pretrained file not found: {path!r} (a local file: nothing "
                                               f"downloads; override -o model.{f.name}=PATH, or null for scratch)")
