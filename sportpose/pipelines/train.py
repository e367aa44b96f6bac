"""A training pipeline: data -> stages (a small DAG, each one Ray Train job) -> evaluation -> registry.

One invocation is one MLflow parent run with a child run per stage. The pipeline's progress is recorded in
``runs/pipelines/<name>/state.json`` so that ``--resume`` reuses the parent run, skips finished stages and
lets Ray Train continue an unfinished one from its latest checkpoint: a finished stage is never recomputed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch

from sportpose.data import h36m, synthcourt
from sportpose.data.dataset import load_clips, numpy_batches
from sportpose.data.prepare import open_split
from sportpose.errors import DataError, SpecError
from sportpose.evaluation import evaluate3d
from sportpose.evaluation import report as eval_report
from sportpose.evaluation.evaluate2d import ap_score, pckh_score, predict, save_stream_cache, search_fusion_weights
from sportpose.models.pretrained import reports_markdown
from sportpose.models.skeleton import JOINT_SETS
from sportpose.paths import runs_dir
from sportpose.pipelines.checks import check_inputs, check_resources
from sportpose.pipelines.resume import check_resume
from sportpose.registry import tracking
from sportpose.registry.register import Promotion, register_model, unregistrable
from sportpose.spec.experiment import ExperimentSpec, spec_from_dict, spec_hash, spec_to_dict, spec_yaml, stage_order
from sportpose.training import loop
from sportpose.training.stage import StageResult, plan_init, prepare_stage_model, run_stage, stage_weights


@dataclass
class PipelineResult:
    spec: ExperimentSpec
    parent_run_id: str
    stages: dict[str, StageResult]
    data_reports: dict[str, dict[str, Any]]
    evaluation: dict[str, Any] = field(default_factory=dict)
    promotion: Promotion | None = None
    output_dir: str = ""
    seconds: float = 0.0


def prepare_data(spec: ExperimentSpec, log: Callable[[str], None] = print) -> Path:
    """Make sure the spec's clips exist: SynthCourt is generated into ``data.root`` when missing or stale; the
    inputs nobody generates are checked first (:func:`check_inputs`)."""
    check_inputs(spec)
    root = Path(spec.data.root).resolve()
    if spec.data.source == "synthcourt":
        log(f"data: SynthCourt -> {root}")
        synthcourt.generate(root, spec.data.synth, progress=True)
    elif spec.data.source == "h36m":
        log(f"data: Human3.6M (VideoPose3D layout) {spec.data.h36m.data_3d}, {spec.data.h36m.data_2d}")
    return root


def data_fingerprint(root: Path, clips: list[dict[str, Any]], spec: ExperimentSpec) -> str:
    """Identifies the evaluation data: the manifest's bytes, the split assignment and the sample shape."""
    h = hashlib.sha256((root / "manifest.json").read_bytes())
    h.update(json.dumps(sorted((c["name"], c["split"]) for c in clips)).encode())
    d = spec.data
    h.update(json.dumps([d.joint_set, list(d.input_size), d.box_scale, d.window, d.interval, d.frame_stride,
                         d.max_samples_per_clip, d.min_visible_joints]).encode())
    return h.hexdigest()[:16]


def _state_path(spec: ExperimentSpec) -> Path:
    return runs_dir() / "pipelines" / spec.name / "state.json"


def read_state(path: Path) -> dict[str, Any]:
    """A pipeline's saved state, its resolved spec brought to the current spec's form: a field added to the
    spec since that run reads as its default (a run is not "changed" by an upgrade that adds a setting)."""
    state = json.loads(path.read_text())
    try:
        state["spec"] = spec_to_dict(spec_from_dict(state["spec"]))
    except SpecError:  # a field removed or renamed since: compared as stored, and so found changed
        pass
    return state


def _load_state(spec: ExperimentSpec, resume: bool | str) -> dict[str, Any] | None:
    """The saved state to continue, or None for a new run.

    An unfinished run is never abandoned silently: without ``resume`` it is refused, naming the run and the
    two ways on; ``"restart"`` starts a new run beside it (its MLflow runs are kept, ended KILLED where they
    were left RUNNING, and tagged superseded; its checkpoints stay under their own Ray run names);
    ``"auto"`` continues it when its resolved spec is this one and starts a new run otherwise (the tour, studies).
    """
    path = _state_path(spec)
    if not path.exists():
        return None
    state = read_state(path)
    if not state.get("finished"):
        _end_dead_driver_runs(state, path)
    if resume in (True, "refuse-changed", "rerun-changed"):
        return state
    if state.get("finished"):
        return None
    if resume == "auto" and state["spec"] == spec_to_dict(spec):
        return state
    if resume is False:
        done = [s for s, v in state["stages"].items() if v.get("status") == "finished"]
        left = [s for s in stage_order(spec.train.stages) if s not in done]
        raise SpecError("--resume", f"the last run of {spec.name!r} did not finish (MLflow parent run "
                                    f"{state['parent_run_id']}; stages finished {done}, not finished {left}): "
                                    "continue it with --resume, or start a new run with --restart (the old run's "
                                    "MLflow records and checkpoints are kept)", str(path))
    _supersede(state)
    return None


def _driver_record() -> dict[str, Any]:
    """Who runs a pipeline: this process (host, pid, its start time, so a reused pid is not taken for it)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": _process_start(os.getpid())}


def _process_start(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]  # field 22: start time
    except (OSError, IndexError):
        return ""


def _end_dead_driver_runs(state: dict[str, Any], path: Path) -> None:
    """An unfinished run whose driver died without a word (SIGKILL, a lost node) on this host: its MLflow runs
    still RUNNING are ended FAILED, saying so, instead of running forever."""
    driver = state.get("driver") or {}
    if driver.get("host") != socket.gethostname() or not driver.get("pid"):
        return  # another machine's driver (or a state without a record): not ours to judge
    if _process_start(driver["pid"]) and _process_start(driver["pid"]) == driver.get("started"):
        return  # still alive
    ids = [state["parent_run_id"], *(v["run_id"] for v in state["stages"].values() if v.get("run_id"))]
    for run_id in ids:
        with contextlib.suppress(Exception):  # a run deleted by hand
            if tracking.client().get_run(run_id).info.status == "RUNNING":
                tracking.set_tags(run_id, {"sportpose.ended": f"driver pid {driver['pid']} died (found by the next "
                                                              f"start; state {path})"})
                tracking.end_run(run_id, "FAILED")


def _supersede(state: dict[str, Any]) -> None:
    """Keep an abandoned run's MLflow records, marked: RUNNING ones ended KILLED, all tagged superseded."""
    ids = [state["parent_run_id"], *(v["run_id"] for v in state["stages"].values() if v.get("run_id"))]
    for run_id in ids:
        with contextlib.suppress(Exception):  # a run deleted by hand: nothing to keep
            if tracking.client().get_run(run_id).info.status == "RUNNING":
                tracking.end_run(run_id, "KILLED")
            tracking.set_tags(run_id, {"sportpose.superseded": "true"})


def _save_state(spec: ExperimentSpec, state: dict[str, Any]) -> None:
    path = _state_path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(path)


def run_pipeline(spec: ExperimentSpec, resume: bool | str = False, log: Callable[[str], None] = print) -> PipelineResult:
    """Run every stage of ``spec`` on the current Ray, evaluate, and register the final model.

    Args:
        resume: False for a new run (refused while the last run of this spec is unfinished); True (or
            ``"refuse-changed"``) to continue the last run of this spec, refusing a changed setting that affects
            a finished stage; ``"rerun-changed"`` to retrain the changed stages and those after them;
            ``"restart"`` for a new run beside an unfinished one; ``"auto"`` to continue an unfinished run of
            this very spec and start a new one otherwise (see :func:`_load_state`).

    Raises:
        SpecError: ``resume`` with a spec whose finished stages were trained under other settings; no
            ``resume`` while the last run is unfinished.
        DataError: unreadable data beyond the spec's tolerance.
    """
    start = time.perf_counter()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    state = _load_state(spec, resume)
    resolved = spec_to_dict(spec)
    # a refused resume fails here, before any clip is generated, decoded or cut
    rerun = check_resume(state, resolved, spec, rerun_changed=(resume == "rerun-changed")) \
        if state is not None else []
    check_resources(spec, log)  # before any clip is generated or read
    root = prepare_data(spec, log)
    from_h36m = spec.data.source == "h36m"  # sequences (subject/action/camera) of VideoPose3D's files
    clips = h36m.clip_list(spec.data) if from_h36m else load_clips(root, spec.data.splits, spec.seed)
    log(f"data: {len(clips)} clips: " + ", ".join(f"{s} {sum(c['split'] == s for c in clips)}" for s in ("train", "val", "test")))
    datasets, reports = {}, {}
    # Lazy (Parquet, Human3.6M) datasets need a free CPU for their read tasks while the training workers run.
    busy = max(s.scaling.num_workers * s.scaling.cpus_per_worker for s in spec.train.stages.values())
    materialize = (spec.data.prepared or from_h36m) and busy >= ray.cluster_resources().get("CPU", 0.0)
    for split in ("train", "val", "test"):
        ds, report = open_split(spec, split, clips, evaluation=(split == spec.evaluate.split))
        datasets[split], reports[split] = (ds.materialize() if materialize else ds), report.as_dict()
        skipped = f", {len(report.skipped)} skipped" if report.skipped else ""
        log(f"data: {split}: {report.samples} samples from {report.clips} clips{skipped}"
            + (f" (boxes: {report.boxes})" if report.boxes != "gt" else ""))
    for split, why in (("train", "training"), (spec.evaluate.split, "the final evaluation (evaluate.split)")):
        if reports[split]["samples"] == 0:  # refused now, not after the stages have trained
            raise DataError(str(root), f"{split} split", f"has no samples ({reports[split]['clips']} clips); {why} "
                                       "needs at least one (see data.splits, data.min_visible_joints, the import)")
    fingerprint = h36m.fingerprint(spec.data) if from_h36m else data_fingerprint(root, clips, spec)

    if state is not None:
        for name in rerun:  # a changed stage and everything after it train again, under a new Ray run name
            info = state["stages"].pop(name, {})
            state.setdefault("attempts", {})[name] = state.get("attempts", {}).get(name, 0) + 1
            if info.get("run_id"):
                tracking.set_tags(info["run_id"], {"sportpose.superseded": "true"})
        state["spec"] = resolved
        parent_id = state["parent_run_id"]
        tracking.client().update_run(parent_id, status="RUNNING")
        finished = [s for s, v in state["stages"].items() if v.get("status") == "finished"]
        log(f"resume: parent run {parent_id}; finished stages {finished}" + (f"; rerunning {rerun}" if rerun else ""))
    else:
        parent_id = tracking.start_run(spec.name, run_name=f"{spec.name}-pipeline", tags={
            "sportpose.kind": "pipeline", "sportpose.spec_hash": spec_hash(spec), "sportpose.git_commit": tracking.git_commit(),
            "sportpose.dataset_fingerprint": fingerprint, "sportpose.ray_address": ray.get_runtime_context().gcs_address,
        })
        tracking.log_params(parent_id, resolved)
        tracking.log_text(parent_id, spec_yaml(spec), "spec/resolved.yaml")
        state = {"parent_run_id": parent_id, "spec": resolved, "stages": {}}
    state["driver"] = _driver_record()
    _save_state(spec, state)
    for split, report in reports.items():
        tracking.log_text(parent_id, json.dumps(report, indent=2), f"data/data_report_{split}.json")
        tracking.log_metrics(parent_id, {f"data_{split}_samples": report["samples"], f"data_{split}_skipped": report["skipped_clips"]})

    try:
        results = _run_stages(spec, state, parent_id, datasets, log)
    except BaseException as e:
        for name, info in state["stages"].items():
            if info.get("status") == "running":
                tracking.end_run(info["run_id"], _ended(e))
        _save_state(spec, state)
        tracking.end_run(parent_id, _ended(e))
        raise
    try:
        return _finish(spec, state, parent_id, results, reports, datasets, clips, fingerprint, log, start)
    except BaseException as e:  # the stages stay finished (state.json); the parent run says it did not end well
        tracking.end_run(parent_id, _ended(e))
        raise


def _ended(error: BaseException) -> str:
    """The MLflow status of a run that an exception ended: KILLED for Ctrl-C, FAILED otherwise."""
    return "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"


def _finish(spec: ExperimentSpec, state: dict[str, Any], parent_id: str, results: dict[str, StageResult],
            reports: dict[str, dict[str, Any]], datasets: dict[str, ray.data.Dataset], clips: list[dict[str, Any]],
            fingerprint: str, log: Callable[[str], None], start: float) -> PipelineResult:
    """After the stages: evaluate the final stage, log the figures and register the model."""
    final = stage_order(spec.train.stages)[-1]
    out_dir = runs_dir() / "outputs" / spec.name / parent_id[:8]
    out_dir.mkdir(parents=True, exist_ok=True)
    evaluation, weights, spec = evaluate_final(spec, results[final].checkpoint, datasets, clips, out_dir, log)
    log("evaluation on " + spec.evaluate.split + ": " + summary_line(evaluation))
    tracking.log_metrics(parent_id, {k: v for k, v in evaluation.items() if isinstance(v, float) and np.isfinite(v)})
    if spec.model.kind == "stsp":  # the 3D figures per clip group as metrics (mpjpe.sideline_adult) and a table
        tracking.log_metrics(parent_id, evaluate3d.group_metrics(evaluation["groups"]))
        table = evaluate3d.group_table(evaluation["groups"], evaluation["group_keys"])
        tracking.log_text(parent_id, table + "\n", "evaluation/groups_3d.md")
        log("per group:\n" + table)
    tracking.log_text(parent_id, json.dumps(evaluation, indent=2, default=_json_default), "evaluation/metrics.json")
    if "stream_cache" in evaluation:
        tracking.log_artifact(parent_id, evaluation["stream_cache"], "streams")
    (out_dir / "evaluation.json").write_text(json.dumps(evaluation, indent=2, default=_json_default))
    (out_dir / "resolved.yaml").write_text(spec_yaml(spec))
    curves = {n: {"history": results[n].history, "metric": s.metric, "mode": s.mode} for n, s in spec.train.stages.items()}
    if eval_report.write_learning_curves(curves, out_dir):
        tracking.log_artifact(parent_id, out_dir / "learning_curves.png", "evaluation")
    promotion = None
    refused = unregistrable(weights, float(evaluation.get(spec.register.metric, float("nan")))) \
        if spec.register.enabled else ""
    if refused:
        log(f"registry: {spec.registered_name} not registered: {refused}")
        tracking.set_tags(parent_id, {"sportpose.not_registered": refused})
    elif spec.register.enabled:
        promotion = register(spec, parent_id, weights, datasets[spec.evaluate.split], evaluation, fingerprint)
        log(f"registry: {promotion.name} v{promotion.version} -> candidate; "
            f"{'champion' if promotion.promoted else 'not champion'} ({promotion.reason})")
    tracking.end_run(parent_id)
    state["finished"] = True
    _save_state(spec, state)
    return PipelineResult(spec, parent_id, results, reports, evaluation, promotion, str(out_dir), time.perf_counter() - start)


def _log_pretrained(model: torch.nn.Module, init: list[dict[str, Any]], run_id: str, stage: str,
                    log: Callable[[str], None]) -> None:
    """Print each pretrained file's key counts and log the full key table (``pretrained/keys.md``, marking the
    keys an earlier stage's checkpoint then overwrites) to the stage's run."""
    reports = getattr(model, "pretrained_reports", [])
    if not reports:
        return
    for report in reports:
        log(f"stage {stage}: {report.summary()}")
    replaced = {i["stage"]: tuple(i["prefixes"]) or ("",) for i in init}
    tracking.log_text(run_id, reports_markdown(reports, replaced), "pretrained/keys.md")
    tracking.log_text(run_id, json.dumps({"files": [r.to_dict() for r in reports]}, indent=1), "pretrained/summary.json")


def _run_stages(spec: ExperimentSpec, state: dict[str, Any], parent_id: str, datasets: dict[str, ray.data.Dataset],
                log: Callable[[str], None]) -> dict[str, StageResult]:
    """Run the stage DAG: every stage whose dependencies are done starts as soon as the cluster has room for
    its workers, each in its own thread driving one TorchTrainer; independent stages run concurrently.
    Finished stages are recorded as they finish; when one fails, the others still running are waited for,
    so no finished work is lost."""
    lock = threading.Lock()
    results: dict[str, StageResult] = {}
    for name, info in state["stages"].items():
        if info.get("status") == "finished":
            results[name] = StageResult(name=name, checkpoint=info["checkpoint"], metrics=info["metrics"],
                                        history=info.get("history", []), run_path=info.get("run_path", ""))
            log(f"stage {name}: finished earlier, reusing {info['checkpoint']}")
    pending = [n for n in stage_order(spec.train.stages) if n not in results]

    def run_one(name: str) -> StageResult:
        stage = spec.train.stages[name]
        init = plan_init(spec, name, {d: results[d].checkpoint for d in stage.after})
        model, _ = prepare_stage_model(spec, name, init)  # checks the hand-off and freezing before the job starts
        with lock:
            info = state["stages"].get(name, {})
            run_id = info.get("run_id") or tracking.start_run(spec.name, run_name=name, parent_id=parent_id, tags={
                "sportpose.kind": "stage", "sportpose.stage": name, "sportpose.task": stage.task,
                "sportpose.after": ",".join(stage.after)})
            state["stages"][name] = {"status": "running", "run_id": run_id}
            _save_state(spec, state)
        tracking.log_params(run_id, {"stage": spec_to_dict(stage), "stage_name": name})
        _log_pretrained(model, init, run_id, name, log)
        tracking.log_text(run_id, spec_yaml(spec), "spec/resolved.yaml")
        tracking.set_tags(run_id, {f"sportpose.init.{i['stage']}": f"{i['uri']} modules={','.join(i['prefixes']) or '<all>'}"
                                   for i in init})
        attempt = state.get("attempts", {}).get(name, 0)
        run_name = f"{spec.name}-{parent_id[:8]}-{name}" + (f"-r{attempt}" if attempt else "")
        where = (f"{stage.scaling.num_workers} Ray Train workers" if stage.scaling.num_workers
                 else "Ray Train local mode (in this process)")
        log(f"stage {name}: training {stage.epochs} epochs on {where}"
            + (f" from {[i['stage'] for i in init]}" if init else ""))
        result = run_stage(spec, name, {"train": datasets["train"], "val": datasets["val"]}, run_name=run_name,
                           tracking_uri=tracking.tracking_uri(), run_id=run_id, init=init)
        if loop.STOP.is_set():  # Ctrl-C as the stage ended: it stays unfinished (KILLED), not FINISHED
            raise loop.StageInterrupted(f"stage {name}: interrupted")
        tracking.set_tags(run_id, {"sportpose.checkpoint": result.checkpoint, "sportpose.ray_run": result.run_path})
        tracking.log_metrics(run_id, {f"best_{k}": v for k, v in result.metrics.items() if isinstance(v, (int, float))})
        tracking.end_run(run_id)
        with lock:
            state["stages"][name] = {"status": "finished", "run_id": run_id, "checkpoint": result.checkpoint,
                                     "metrics": result.metrics, "history": result.history, "run_path": result.run_path}
            _save_state(spec, state)
        log(f"stage {name}: done in {result.seconds:.0f}s, best {stage.metric}="
            f"{result.metrics.get(stage.metric, float('nan')):.4g}")
        return result

    capacity = ray.cluster_resources()
    claimed = {"CPU": 0.0, "GPU": 0.0}

    def need(name: str) -> dict[str, float]:
        scaling = spec.train.stages[name].scaling
        return {"CPU": scaling.num_workers * scaling.cpus_per_worker,
                "GPU": scaling.num_workers * scaling.gpus_per_worker if scaling.use_gpu else 0.0}

    def fits(name: str) -> bool:
        """Room on the cluster now; a stage bigger than the whole cluster starts alone (autoscaling may
        bring the nodes)."""
        if not any(v for v in claimed.values()):
            return True
        return all(claimed[k] + v <= capacity.get(k, 0.0) + 1e-9 for k, v in need(name).items() if v)

    error: BaseException | None = None
    pool = ThreadPoolExecutor(max_workers=max(1, len(pending)), thread_name_prefix="stage")
    running: dict[Future, str] = {}
    try:
        while (pending and error is None) or running:
            if error is None:
                for name in [n for n in pending if all(d in results for d in spec.train.stages[n].after)]:
                    if not fits(name):
                        continue
                    pending.remove(name)
                    for k, v in need(name).items():
                        claimed[k] += v
                    running[pool.submit(run_one, name)] = name
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                for k, v in need(name).items():
                    claimed[k] -= v
                try:
                    results[name] = future.result()
                except BaseException as e:  # keep waiting for the others; re-raise the first failure
                    error = error or e
    except KeyboardInterrupt:
        _stop_stages(pool, running, log)
        raise
    pool.shutdown()
    if error is not None:
        raise error
    return results


def _stop_stages(pool: ThreadPoolExecutor, running: dict[Future, str], log: Callable[[str], None]) -> None:
    """Ctrl-C: stop the running stages now. Local-mode loops stop at their next step (:data:`loop.STOP`), waited
    for up to 5 s so that none reads its Ray dataset after ``ray.shutdown`` (Ray would end the process with status
    1); Ray Train workers stop with the driver's Ray (at most ~10 s). A second Ctrl-C exits at once."""
    log(f"interrupted: stopping {', '.join(running.values()) or 'the pipeline'} (Ctrl-C again to exit at once)")
    with contextlib.suppress(ValueError):  # not the main thread: the first interrupt's handling is all there is
        signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    loop.STOP.set()
    pool.shutdown(wait=False, cancel_futures=True)
    wait(list(running), timeout=5)
    stopper = threading.Thread(target=ray.shutdown, daemon=True)
    stopper.start()
    stopper.join(timeout=10)


def summary_line(evaluation: dict[str, Any]) -> str:
    """The headline numbers next to their baselines."""
    if "mpjpe" in evaluation:
        return (f"MPJPE {evaluation['mpjpe']:.1f} mm (mean pose {evaluation['mpjpe_mean_pose']:.1f}), "
                f"TS {evaluation['ts']:.2f} mm/frame² (without TMP {evaluation['ts_no_tmp']:.2f})")
    line = f"PCKh {evaluation['pckh']:.1f} (untrained {evaluation['pckh_untrained']:.1f})"
    if "ap" in evaluation:
        line += f", AP {evaluation['ap']:.1f} (untrained {evaluation['ap_untrained']:.1f})"
    return line


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def evaluate_final(spec: ExperimentSpec, checkpoint: str, datasets: dict[str, ray.data.Dataset],
                   clips: list[dict[str, Any]], out_dir: Path, log: Callable[[str], None] = print
                   ) -> tuple[dict[str, Any], dict, ExperimentSpec]:
    """Evaluate the final checkpoint on the spec's evaluation split, next to the same architecture untrained.

    2D models: PCKh, and PoseTrack AP on the posetrack joint set; MultiStream with late fusion first finds
    its stream weights on the validation split (grid over the simplex, recorded), and every MultiStream
    run caches its per-stream validation heatmaps (``streams/val_streams.npz``) for weight sweeps.
    STSP-Net: the 3D metrics per clip group, with the mean-pose baseline and the same model without TMP.

    Returns:
        the evaluation (flat numbers first), the weights, and the spec to register (with the late-fusion
        weights found).
    """
    if spec.model.kind == "stsp":
        return _evaluate_3d(spec, checkpoint, datasets), stage_weights(checkpoint), spec
    return _evaluate_2d(spec, checkpoint, datasets, clips, out_dir, log)


def _evaluate_2d(spec: ExperimentSpec, checkpoint: str, datasets: dict[str, ray.data.Dataset],
                 clips: list[dict[str, Any]], out_dir: Path, log: Callable[[str], None]
                 ) -> tuple[dict[str, Any], dict, ExperimentSpec]:
    joint_set = JOINT_SETS[spec.data.joint_set]
    weights = stage_weights(checkpoint)
    bs = spec.evaluate.batch_size
    extra: dict[str, Any] = {}
    if spec.model.kind == "multistream" and set(spec.model.streams) == {"spatial", "temporal", "context"}:
        model = spec.build_model()
        model.load_state_dict(weights)
        val = predict(model, numpy_batches(datasets["val"], bs), tuple(model.input_names()), keep_streams=True)
        cache = save_stream_cache(val, clips, out_dir / "streams" / "val_streams.npz")
        extra["stream_cache"] = str(cache)
        if spec.model.fusion == "late" and joint_set.name == "posetrack":
            best, ap, table = search_fusion_weights(val, clips, joint_set)
            log(f"late fusion: weights (w_s, w_t, w_c) = {best} give val AP {ap:.1f} ({len(table)} grid points)")
            spec = replace(spec, model=replace(spec.model, fusion_weights=best))
            extra |= {"fusion_weights": list(best), "fusion_weights_val_ap": ap}
    torch.manual_seed(spec.seed)
    untrained = spec.build_model()
    model = spec.build_model()
    model.load_state_dict(weights)
    names = tuple(model.input_names())
    flip = joint_set.flip_permutation() if spec.evaluate.flip_test else None
    ds = datasets[spec.evaluate.split]
    trained_p = predict(model, numpy_batches(ds, bs), names, flip_perm=flip)
    untrained_p = predict(untrained, numpy_batches(ds, bs), names, flip_perm=flip)
    alpha = spec.evaluate.pckh_alpha
    detections = spec.data.boxes != "gt"
    nan = {"mean": float("nan"), "per_joint": np.full(joint_set.num_joints, np.nan)}
    # PCKh pairs each sample with its own person: only defined with ground-truth boxes (AP matches by frame).
    trained = nan if detections else pckh_score(trained_p, alpha)
    baseline = nan if detections else pckh_score(untrained_p, alpha)
    evaluation: dict[str, Any] = {
        "pckh": float(trained["mean"]), "pckh_untrained": float(baseline["mean"]),
    }
    if joint_set.name == "posetrack":
        ap, ap_base = ap_score(trained_p, clips, joint_set), ap_score(untrained_p, clips, joint_set)
        evaluation |= {"ap": float(ap["groups"]["Total"]), "ap_untrained": float(ap_base["groups"]["Total"]),
                       "ap_groups": ap["groups"], "ap_per_joint": ap["per_joint"]}
    evaluation |= {
        "pckh_per_joint": {joint_set.joints[i]: float(v) for i, v in enumerate(trained["per_joint"]) if np.isfinite(v)},
        "split": spec.evaluate.split, "boxes": spec.data.boxes_label, "flip_test": spec.evaluate.flip_test,
        "seed": spec.seed, "samples": int(len(trained_p.pred)), **extra,
    }
    return evaluation, weights, spec


def _evaluate_3d(spec: ExperimentSpec, checkpoint: str, datasets: dict[str, ray.data.Dataset]) -> dict[str, Any]:
    model = spec.build_model()
    model.load_state_dict(stage_weights(checkpoint))
    bs = spec.evaluate.batch_size
    from_h36m = spec.data.source == "h36m"
    task = "lift" if from_h36m else "full"  # Human3.6M rows hold 2D keypoints, which only the lifting task reads
    names = tuple(model.input_names(task))
    p = evaluate3d.predict(model, numpy_batches(datasets[spec.evaluate.split], bs), names, task=task)
    fps = {"synthcourt": spec.data.synth.fps, "h36m": h36m.FPS}.get(spec.data.source)
    groups = h36m.GROUPS if from_h36m else ("view", "body")
    result = evaluate3d.evaluate(p, stride=spec.data.frame_stride, fps=fps, groups=groups)
    mean = evaluate3d.mean_pose(numpy_batches(datasets["train"], bs))
    baseline = evaluate3d.evaluate(evaluate3d.Predictions3D(np.broadcast_to(mean, p.gt.shape).copy(),
                                                            np.broadcast_to(mean, p.gt.shape).copy(), p.gt, p.info),
                                   stride=spec.data.frame_stride, fps=fps, groups=groups)
    g, nt = result["group_mean"], result["group_mean_no_tmp"]
    for name, row in result["groups"].items():  # the baseline and the no-TMP figures beside each group's own
        row.update(mpjpe_mean_pose=baseline["groups"][name]["mpjpe"], mpjpe_no_tmp=result["groups_no_tmp"][name]["mpjpe"],
                   ts_no_tmp=result["groups_no_tmp"][name].get("ts_mm_per_frame2", float("nan")))
    return {
        "mpjpe": g["mpjpe"], "p_mpjpe": g["p_mpjpe"], "pck3d": g["pck3d"], "auc3d": g["auc3d"],
        "ts": g.get("ts_mm_per_frame2", float("nan")), "ts_mm_per_s2": g.get("ts_mm_per_s2", float("nan")),
        "jitter": g.get("jitter_mm_per_frame2", float("nan")),
        "mpjpe_mean_pose": baseline["group_mean"]["mpjpe"],
        "mpjpe_no_tmp": nt["mpjpe"], "ts_no_tmp": nt.get("ts_mm_per_frame2", float("nan")),
        "groups": result["groups"], "group_keys": result["group_keys"], "pooled": result["pooled"],
        "split": spec.evaluate.split, "boxes": f"2D keypoints of {Path(spec.data.h36m.data_2d).name}" if from_h36m
        else "ground truth", "flip_test": False, "seed": spec.seed,
        "samples": int(len(p.pred)),
        # EPE's 2D error at the anchor frame (crop px, visible joints): the lifter's input quality
        **({"epe_err_px": float(np.nanmean(p.err_2d)), "crop_px": int(spec.data.input_size[1])}
           if p.err_2d is not None and np.isfinite(p.err_2d).any() else {}),
    }


def register(spec: ExperimentSpec, parent_id: str, weights: dict, ds: ray.data.Dataset, evaluation: dict,
             fingerprint: str) -> Promotion:
    """Register the final model, with one sample of ``ds`` as its input example."""
    first = next(iter(numpy_batches(ds, 1)))
    example = {n: first[n] for n in spec.build_model().input_names()}
    return register_model(spec, parent_id, weights, example, float(evaluation[spec.register.metric]), fingerprint)
