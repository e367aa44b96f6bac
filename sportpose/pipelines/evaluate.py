"""``sportpose evaluate MODEL SPEC``: a trained model on the spec's evaluation split, written up as a report.

setup -> predict -> report:

1. **setup**: the model (``models:/NAME@ALIAS``, a checkpoint folder or file;
   :mod:`sportpose.registry.load`) is paired with the spec's data and evaluation sections: the
   model section of the evaluated spec is the model's own, and the spec's checks of model against data
   (crop size, window, context, joint set…) run again, so a model cut for other samples is refused naming the
   key. The data is made (SynthCourt) or found, and the evaluation split (``evaluate.split``, default test)
   cut by the data pipeline (Ray Data, or prepared Parquet with ``data.prepared``) with ``data.boxes``.
2. **predict**: :func:`sportpose.evaluation.evaluate2d.predict` (with the spec's flip test) or
   :func:`sportpose.evaluation.evaluate3d.predict`, the functions the training pipeline evaluates
   with; the complexity row at batch 1 (:mod:`~sportpose.evaluation.complexity`); with
   ``similarity``, the feature similarity over time (:mod:`~sportpose.evaluation.similarity`).
3. **report**: :mod:`~sportpose.evaluation.report` writes ``report.md``, the PNGs and
   ``metrics.json`` (and, for PoseTrack joints, ``predictions/<video>.json`` in the PoseTrack 2018 layout that
   poseval reads) into the output folder (default ``<runs>/outputs/<spec name>/eval-<run id[:8]>``; it
   appears only when complete), and the same files become the artifacts (``evaluation/``) of a new MLflow run
   in the spec's experiment, tagged ``sportpose.kind=evaluation`` with the model's source (and, for a
   registered model, its name, version and source run), with the headline numbers as metrics.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from sportpose.data import h36m
from sportpose.data.dataset import load_clips, numpy_batches
from sportpose.data.prepare import open_split
from sportpose.errors import SpecError
from sportpose.evaluation import complexity as cost
from sportpose.evaluation import evaluate2d, evaluate3d, report
from sportpose.evaluation.similarity import similarity_on_clips
from sportpose.models.skeleton import JOINT_SETS
from sportpose.paths import check_output, runs_dir, staged_dir
from sportpose.pipelines.train import prepare_data
from sportpose.registry import tracking
from sportpose.registry.load import LoadedModel, find_spec, load_model
from sportpose.spec.experiment import ExperimentSpec, load_spec, spec_from_dict, spec_to_dict, spec_yaml
from sportpose.training.checkpoints import CHECKPOINT_FILE


@dataclass(frozen=True)
class EvaluateArgs:
    """What ``sportpose evaluate`` was asked to do."""

    model: str
    """``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, a checkpoint folder or a checkpoint file."""
    spec: str
    """The experiment spec whose data and evaluate sections say what to evaluate on (and, for a checkpoint
    without a spec beside it, what model it is)."""
    overrides: tuple[str, ...] = ()
    """``-o key=value`` overrides of the spec."""
    out: str | None = None
    """Output folder (default ``<runs>/outputs/<spec name>/eval-<run id[:8]>``)."""
    similarity: bool = False
    """Also compute the feature similarity over time (2D paper, Fig. 6) on a few clips of the split."""
    similarity_clips: int = 4
    """Clips the similarity is computed on."""
    overlays: int = 4
    """Best and worst frames drawn, each."""
    overwrite: bool = False
    """Replace a non-empty output folder."""
    mlflow: bool = True
    """Log the report as a new MLflow run."""

    def __post_init__(self):
        if self.similarity_clips < 1:
            raise SpecError("--similarity-clips", f"must be at least 1, got {self.similarity_clips}")
        if self.overlays < 0:
            raise SpecError("--overlays", f"must be non-negative, got {self.overlays}")


@dataclass
class EvaluateResult:
    out: Path
    metrics: dict[str, Any]
    run_id: str | None
    seconds: float


# Data fields that shape what a model consumes: an evaluation must cut its samples as its training did.
SAMPLE_FIELDS = ("joint_set", "input_size", "window", "tube_anchor", "context_len", "context_size", "flow", "targets",
                 "points3d")


def evaluation_spec(spec: ExperimentSpec, loaded: LoadedModel, file: str | None = None) -> ExperimentSpec:
    """The spec to evaluate with: ``spec``'s name, seed, data and evaluation sections around the model's own model
    and training sections.

    Raises:
        SpecError: the spec cuts samples of another shape than the model was trained on (naming the data key),
            or its data section does not fit the model (the spec's own model/data checks).
    """
    for key in SAMPLE_FIELDS:
        given, trained = getattr(spec.data, key), getattr(loaded.spec.data, key)
        if (list(given) if isinstance(given, tuple) else given) != (list(trained) if isinstance(trained, tuple) else trained):
            raise SpecError(f"data.{key}", f"is {given!r}, but {loaded.label} was trained on samples with "
                                           f"{key} {trained!r}", file)
    merged = spec_to_dict(spec)
    own = spec_to_dict(loaded.spec)
    merged["model"], merged["train"] = own["model"], own["train"]
    try:
        return spec_from_dict(merged)
    except SpecError as e:
        raise SpecError(e.key, f"{e.message} (with the model of {loaded.label})", file) from None


def machine() -> str:
    """This machine, for the complexity row: CPU model (or GPU) and torch threads."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {torch.get_num_threads()} torch threads, load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"


def model_complexity(loaded: LoadedModel, spec: ExperimentSpec) -> dict[str, Any]:
    """The complexity row of the model at batch 1 (samples shaped as the spec cuts them)."""
    row = cost.complexity(loaded.model, cost.example_inputs(loaded.model, spec.data))
    return row | {"machine": machine()}


def run_evaluate(args: EvaluateArgs, log: Callable[[str], None] = print) -> EvaluateResult:
    """Run ``sportpose evaluate`` on the current Ray (see the module doc).

    Raises:
        SpecError: a bad spec or override, or a model that does not fit the spec's samples.
        DataError: an unknown model, unreadable data, or an output folder in the way.
    """
    start = time.perf_counter()
    given = load_spec(args.spec, list(args.overrides))
    if args.out:
        check_output(args.out, args.overwrite)
    loaded = load_model(args.model, spec=None if args.model.startswith("models:/") else _spec_for(args))
    spec = evaluation_spec(given, loaded, str(args.spec))
    joint_set = JOINT_SETS[spec.data.joint_set]
    log(f"evaluate: {loaded.label} ({loaded.kind}) on {spec.name}'s {spec.evaluate.split} split")
    from_h36m = spec.data.source == "h36m"
    root = prepare_data(spec, log)
    clips = h36m.clip_list(spec.data) if from_h36m else load_clips(root, spec.data.splits, spec.seed)
    ds, data_report = open_split(spec, spec.evaluate.split, clips, evaluation=True)
    chosen = [c for c in clips if c["split"] == spec.evaluate.split]
    protocol = report.Protocol(split=spec.evaluate.split, boxes=spec.data.boxes_label, flip_test=spec.evaluate.flip_test,
                               seed=spec.seed, samples=0, clips=len(chosen), skipped=len(data_report.skipped),
                               data=f"{spec.name} ({spec.data.source}, {spec.data.root})")
    model = loaded.model
    bs = spec.evaluate.batch_size
    if loaded.kind == "stsp":
        task = "lift" if from_h36m else "full"
        p = evaluate3d.predict(model, numpy_batches(ds, bs), tuple(model.input_names(task)), task=task)
    else:
        flip = joint_set.flip_permutation() if spec.evaluate.flip_test else None
        p = evaluate2d.predict(model, numpy_batches(ds, bs), tuple(model.input_names()), flip_perm=flip,
                               keep_streams=loaded.kind == "multistream")  # the report's per-stream table
    protocol = replace(protocol, samples=int(len(p.pred)))
    log(f"evaluate: {protocol.samples} samples predicted; complexity at batch 1 ...")
    complexity = model_complexity(loaded, spec) if not from_h36m else None
    similarity = None
    if args.similarity and not from_h36m:
        log(f"evaluate: feature similarity over time on {min(args.similarity_clips, len(chosen))} clips ...")
        similarity = similarity_on_clips(model, spec, chosen, args.similarity_clips, bs)

    run_id = None
    if args.mlflow:
        run_id = tracking.start_run(spec.name, run_name=f"evaluate-{loaded.label.replace(' ', '-')}", tags={
            "sportpose.kind": "evaluation", "sportpose.model": loaded.source, "sportpose.model_label": loaded.label,
            "sportpose.git_commit": tracking.git_commit(),
            **{f"sportpose.model_{k}": v for k, v in loaded.registry.items()},
        })
    out = Path(args.out) if args.out else runs_dir() / "outputs" / spec.name / f"eval-{(run_id or 'local')[:8]}"
    try:
        with staged_dir(out, args.overwrite) as tmp:
            if loaded.kind == "stsp":
                fps = {"synthcourt": spec.data.synth.fps, "h36m": h36m.FPS}.get(spec.data.source)
                groups = h36m.GROUPS if from_h36m else ("view", "body")
                metrics = report.report_3d(p, clips, protocol, loaded.describe(), tmp, stride=spec.data.frame_stride,
                                           fps=fps, groups=groups, complexity=complexity, similarity=similarity,
                                           overlays=args.overlays)
            else:
                metrics = report.report_2d(p, chosen, joint_set, protocol, loaded.describe(), tmp,
                                           complexity=complexity, similarity=similarity,
                                           alpha=spec.evaluate.pckh_alpha, overlays=args.overlays)
                if joint_set.name == "posetrack":  # what poseval and the leaderboards read
                    evaluate2d.write_predictions(p, chosen, joint_set, tmp / "predictions")
            (tmp / "resolved.yaml").write_text(spec_yaml(spec))
        if run_id:
            tracking.log_params(run_id, {"evaluate": {"model": loaded.source, "spec": str(args.spec),
                                                      "split": protocol.split, "boxes": protocol.boxes,
                                                      "flip_test": protocol.flip_test, "seed": protocol.seed}})
            tracking.log_metrics(run_id, headline(metrics))
            tracking.log_artifact(run_id, out, "evaluation")
            tracking.end_run(run_id)
    except BaseException:
        if run_id:
            tracking.end_run(run_id, "FAILED")
        raise
    return EvaluateResult(out=out, metrics=metrics, run_id=run_id, seconds=time.perf_counter() - start)


def _spec_for(args: EvaluateArgs) -> str | None:
    """A checkpoint's spec: the one beside it when there is one (``load_model`` finds it), else SPEC."""
    path = Path(args.model)
    probe = path if path.is_file() else path / CHECKPOINT_FILE
    return None if find_spec(probe) is not None else args.spec


def headline(metrics: dict[str, Any]) -> dict[str, float]:
    """The report's numbers as flat MLflow metrics: the headline, AP groups (``ap.Head``), PCKh, 3D figures,
    each breakdown level's headline (``ap.view.sideline``, ``mpjpe.body.child``) and the complexity row."""
    out: dict[str, float] = {}

    def put(name: str, value: Any) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
            out[name] = float(value)

    for key in ("ap", "pckh", "mpjpe", "p_mpjpe", "n_mpjpe", "pck3d", "auc3d", "ts", "ts_mm_per_s2", "jitter",
                "mpjpe_no_tmp", "ts_no_tmp", "samples"):
        put(key, metrics.get(key))
    for group, value in (metrics.get("ap_groups") or {}).items():
        put(f"ap.{group}", value)
    for factor, levels in (metrics.get("breakdowns") or {}).items():
        for level, row in levels.items():
            label = "".join(c if c.isalnum() or c in "-_." else "_" for c in level)
            if "ap_groups" in row:
                put(f"ap.{factor}.{label}", row["ap_groups"]["Total"])
            put(f"pckh.{factor}.{label}", row.get("pckh"))
            put(f"mpjpe.{factor}.{label}", row.get("mpjpe"))
    for key in ("params_m", "gmacs", "gflops", "latency_ms", "fps"):
        put(f"complexity.{key}", (metrics.get("complexity") or {}).get(key))
    return out
