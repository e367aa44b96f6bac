"""A training pipeline: data -> stages (a small DAG, each one Ray Train job) -> evaluation -> registry.

One invocation is one MLflow parent run with a child run per stage. The pipeline's progress is recorded in
``runs/pipelines/<name>/state.json`` so that ``--resume`` reuses the parent run, skips finished stages and
lets Ray Train continue an unfinished one from its latest checkpoint: a finished stage is never recomputed.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch

from sportpose.errors import SpecError
from sportpose.models import build_model
from sportpose.models.skeleton import JOINT_SETS
from sportpose.pipelines.data import synth
from sportpose.pipelines.data.dataset import DataReport, build_split, load_clips
from sportpose.pipelines.evaluation.evaluate2d import pckh_score, predict
from sportpose.pipelines.training.stage import StageResult, load_checkpoint, run_stage
from sportpose.platform import tracking
from sportpose.platform.config import ExperimentSpec, spec_hash, spec_to_dict, spec_yaml, stage_order


@dataclass
class PipelineResult:
    spec: ExperimentSpec
    parent_run_id: str
    stages: dict[str, StageResult]
    data_reports: dict[str, dict[str, Any]]
    evaluation: dict[str, Any] = field(default_factory=dict)
    promotion: tracking.Promotion | None = None
    output_dir: str = ""
    seconds: float = 0.0


def prepare_data(spec: ExperimentSpec, log: Callable[[str], None] = print) -> Path:
    """Make sure the spec's clips exist: SynthCourt is generated into ``data.root`` when missing or stale."""
    root = Path(spec.data.root).resolve()
    if spec.data.source == "synthcourt":
        log(f"data: SynthCourt -> {root}")
        synth.generate(root, spec.data.synth, progress=True)
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
    return tracking.runs_dir() / "pipelines" / spec.name / "state.json"


def _load_state(spec: ExperimentSpec, resume: bool) -> dict[str, Any] | None:
    path = _state_path(spec)
    if not resume or not path.exists():
        return None
    state = json.loads(path.read_text())
    return state


def _save_state(spec: ExperimentSpec, state: dict[str, Any]) -> None:
    path = _state_path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(path)


def run_pipeline(spec: ExperimentSpec, resume: bool = False, log: Callable[[str], None] = print) -> PipelineResult:
    """Run every stage of ``spec`` on the current Ray, evaluate, and register the final model.

    Raises:
        SpecError: ``resume`` with a spec whose finished stages were trained under other settings.
        DataError: unreadable data beyond the spec's tolerance.
    """
    start = time.perf_counter()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    root = prepare_data(spec, log)
    clips = load_clips(root, spec.data.splits, spec.seed)
    log(f"data: {len(clips)} clips: " + ", ".join(f"{s} {sum(c['split'] == s for c in clips)}" for s in ("train", "val", "test")))
    datasets, reports = {}, {}
    for split in ("train", "val", "test"):
        ds, report = build_split(clips, spec.data, split, spec.seed)
        datasets[split], reports[split] = ds, report.as_dict()
        skipped = f", {len(report.skipped)} skipped" if report.skipped else ""
        log(f"data: {split}: {report.samples} samples from {report.clips} clips{skipped}")
    fingerprint = data_fingerprint(root, clips, spec)

    state = _load_state(spec, resume)
    resolved = spec_to_dict(spec)
    if state is not None:
        _check_resume(state, resolved)
        parent_id = state["parent_run_id"]
        log(f"resume: parent run {parent_id}, finished stages: {[s for s, v in state['stages'].items() if v.get('status') == 'finished']}")
    else:
        parent_id = tracking.start_run(spec.name, run_name=f"{spec.name}-pipeline", tags={
            "sportpose.kind": "pipeline", "sportpose.spec_hash": spec_hash(spec), "sportpose.git_commit": tracking.git_commit(),
            "sportpose.dataset_fingerprint": fingerprint, "sportpose.ray_address": ray.get_runtime_context().gcs_address,
        })
        tracking.log_params(parent_id, resolved)
        tracking.log_text(parent_id, spec_yaml(spec), "spec/resolved.yaml")
        state = {"parent_run_id": parent_id, "spec": resolved, "stages": {}}
        _save_state(spec, state)
    for split, report in reports.items():
        tracking.log_text(parent_id, json.dumps(report, indent=2), f"data/data_report_{split}.json")
        tracking.log_metrics(parent_id, {f"data_{split}_samples": report["samples"], f"data_{split}_skipped": report["skipped_clips"]})

    results: dict[str, StageResult] = {}
    try:
        for name in stage_order(spec.train.stages):
            done = state["stages"].get(name, {})
            if done.get("status") == "finished":
                results[name] = StageResult(name=name, checkpoint=done["checkpoint"], metrics=done["metrics"],
                                            history=done.get("history", []), run_path=done.get("run_path", ""))
                log(f"stage {name}: finished earlier, reusing {done['checkpoint']}")
                continue
            stage = spec.train.stages[name]
            run_id = done.get("run_id") or tracking.start_run(spec.name, run_name=name, parent_id=parent_id, tags={
                "sportpose.kind": "stage", "sportpose.stage": name, "sportpose.after": ",".join(stage.after)})
            init = [results[d].checkpoint for d in stage.after]
            state["stages"][name] = {"status": "running", "run_id": run_id}
            _save_state(spec, state)
            tracking.log_params(run_id, {"stage": spec_to_dict(stage), "stage_name": name})
            tracking.log_text(run_id, spec_yaml(spec), "spec/resolved.yaml")
            tracking.set_tags(run_id, {f"sportpose.init.{i}": uri for i, uri in enumerate(init)})
            log(f"stage {name}: training {stage.epochs} epochs on {stage.scaling.num_workers} Ray Train workers")
            result = run_stage(spec, name, {"train": datasets["train"], "val": datasets["val"]},
                               run_name=f"{spec.name}-{parent_id[:8]}-{name}", tracking_uri=tracking.tracking_uri(),
                               run_id=run_id, init_checkpoints=init)
            tracking.set_tags(run_id, {"sportpose.checkpoint": result.checkpoint, "sportpose.ray_run": result.run_path})
            tracking.log_metrics(run_id, {f"best_{k}": v for k, v in result.metrics.items() if isinstance(v, (int, float))})
            tracking.end_run(run_id)
            results[name] = result
            state["stages"][name] = {"status": "finished", "run_id": run_id, "checkpoint": result.checkpoint,
                                     "metrics": result.metrics, "history": result.history, "run_path": result.run_path}
            _save_state(spec, state)
            log(f"stage {name}: done in {result.seconds:.0f}s, best {stage.metric}={result.metrics.get(stage.metric, float('nan')):.4g}")
    except BaseException:
        for name, info in state["stages"].items():
            if info.get("status") == "running":
                tracking.end_run(info["run_id"], "FAILED")
        tracking.end_run(parent_id, "FAILED")
        raise

    final = stage_order(spec.train.stages)[-1]
    evaluation, weights = evaluate_checkpoint(spec, results[final].checkpoint, datasets[spec.evaluate.split])
    log(f"evaluation on {spec.evaluate.split}: PCKh@{spec.evaluate.pckh_alpha} trained {evaluation['pckh']:.1f} "
        f"vs untrained {evaluation['pckh_untrained']:.1f}")
    tracking.log_metrics(parent_id, {k: v for k, v in evaluation.items() if isinstance(v, float)})
    tracking.log_text(parent_id, json.dumps(evaluation, indent=2), "evaluation/metrics.json")
    out_dir = tracking.runs_dir() / "outputs" / spec.name / parent_id[:8]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "evaluation.json").write_text(json.dumps(evaluation, indent=2))
    (out_dir / "resolved.yaml").write_text(spec_yaml(spec))

    promotion = None
    if spec.register.enabled:
        promotion = register(spec, parent_id, weights, datasets[spec.evaluate.split], evaluation, fingerprint)
        log(f"registry: {promotion.name} v{promotion.version} -> candidate; "
            f"{'champion' if promotion.promoted else 'not champion'} ({promotion.reason})")
    tracking.end_run(parent_id)
    state["finished"] = True
    _save_state(spec, state)
    return PipelineResult(spec, parent_id, results, reports, evaluation, promotion, str(out_dir), time.perf_counter() - start)


def _check_resume(state: dict[str, Any], resolved: dict[str, Any]) -> None:
    """Refuse to resume when a setting that shaped a finished stage changed."""
    before = state["spec"]
    for key in ("data", "model", "seed"):
        if before.get(key) != resolved.get(key):
            raise SpecError(_first_difference(before.get(key), resolved.get(key), key),
                            "changed since the run being resumed; finished stages were trained with the old value")
    for name, info in state["stages"].items():
        if info.get("status") == "finished" and before["train"]["stages"].get(name) != resolved["train"]["stages"].get(name):
            raise SpecError(_first_difference(before["train"]["stages"].get(name), resolved["train"]["stages"].get(name),
                                              f"train.stages.{name}"),
                            "changed since the run being resumed; that stage is finished")


def _first_difference(a: Any, b: Any, key: str) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{key}.{k}")
    return key


def _batches(ds: ray.data.Dataset, batch_size: int):
    return ds.iter_batches(batch_size=batch_size, batch_format="numpy")


def evaluate_checkpoint(spec: ExperimentSpec, checkpoint: str, ds: ray.data.Dataset) -> tuple[dict[str, Any], dict]:
    """PCKh of the trained model and of the same architecture untrained, on the same samples."""
    num_joints = JOINT_SETS[spec.data.joint_set].num_joints
    torch.manual_seed(spec.seed)
    untrained = build_model(spec.model, num_joints)
    model = build_model(spec.model, num_joints)
    with ray.train.Checkpoint(checkpoint).as_directory() as d:
        weights = load_checkpoint(d)["model"]
    model.load_state_dict(weights)
    names = tuple(model.input_names())
    alpha = spec.evaluate.pckh_alpha
    trained = pckh_score(predict(model, _batches(ds, spec.evaluate.batch_size), names), alpha)
    baseline = pckh_score(predict(untrained, _batches(ds, spec.evaluate.batch_size), names), alpha)
    joint_names = JOINT_SETS[spec.data.joint_set].joints
    return {
        "pckh": float(trained["mean"]), "pckh_untrained": float(baseline["mean"]),
        "pckh_per_joint": {joint_names[i]: float(v) for i, v in enumerate(trained["per_joint"]) if np.isfinite(v)},
        "split": spec.evaluate.split, "boxes": "ground truth", "flip_test": spec.evaluate.flip_test,
        "seed": spec.seed, "samples": int(ds.count()),
    }, weights


def register(spec: ExperimentSpec, parent_id: str, weights: dict, ds: ray.data.Dataset, evaluation: dict,
             fingerprint: str) -> tracking.Promotion:
    """Log the final model as a pyfunc from code with signature and input example, and register it."""
    from mlflow.models import infer_signature

    from sportpose.platform.pyfunc_model import SportposeModel

    num_joints = JOINT_SETS[spec.data.joint_set].num_joints
    model = build_model(spec.model, num_joints)
    model.load_state_dict(weights)
    model.eval()
    names = tuple(model.input_names())
    first = next(iter(ds.iter_batches(batch_size=1, batch_format="numpy")))
    example = {n: first[n] for n in names}
    wrapper = SportposeModel()
    wrapper.model = model
    signature = infer_signature(example, wrapper.predict(None, example))
    with tempfile.TemporaryDirectory() as d:
        spec_path, weights_path = Path(d) / "spec.yaml", Path(d) / "weights.pt"
        spec_path.write_text(spec_yaml(spec))
        torch.save(weights, weights_path)
        return tracking.log_and_register(parent_id, spec.registered_name, spec_path, weights_path, signature, example,
                                         spec.register.metric, float(evaluation[spec.register.metric]),
                                         spec.register.mode, fingerprint)
