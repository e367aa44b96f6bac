"""Experiment specs: YAML files loaded into typed, frozen config objects.

A spec is validated completely before anything starts. An unknown key, a wrong type or an impossible value is
a :class:`~sportpose.errors.SpecError` naming the dotted key and the file. ``-o a.b=c`` overrides any key
(the value is parsed as YAML). The resolved spec (every default filled in) is what runs, what is saved with
every run, and what crosses the Ray boundary as a plain dict (:func:`spec_to_dict` / :func:`spec_from_dict`).

Layout of a spec::

    name: demo            # MLflow experiment name and run-folder prefix
    seed: 0
    data: {...}           # DataSpec: where the clips come from, how samples are cut
    model: {kind: ...}    # one of MODEL_CONFIGS, told apart by `kind`
    train: {stages: {...}}  # TrainSpec: a small DAG of stages, each one Ray Train job
    evaluate: {...}
    register: {...}
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from sportpose.errors import SpecError
from sportpose.models.multistream import MultiStreamConfig
from sportpose.models.simplebaseline import SimpleBaselineConfig
from sportpose.models.stsp import STSPConfig
from sportpose.models.skeleton import JOINT_SETS
from sportpose.data.h36m import H36MConfig
from sportpose.data.synth import SynthConfig
from sportpose.spec.fill import fill, to_dict

# The model section is one of these, chosen by its `kind`.
ModelConfig = SimpleBaselineConfig | MultiStreamConfig | STSPConfig
MODEL_CONFIGS: dict[str, type] = {"simplebaseline": SimpleBaselineConfig, "multistream": MultiStreamConfig,
                                  "stsp": STSPConfig}


@dataclass(frozen=True)
class AugmentSpec:
    """Training-split augmentation; one transform per tube, the same for each of its frames."""

    flip: bool = True  # horizontal flip with left/right joint swap
    rotation: float = 30.0  # degrees, uniform in [-rotation, rotation]
    scale: tuple[float, float] = (0.75, 1.25)
    color_jitter: float = 0.2  # brightness/contrast/saturation factor range, 0 = off
    probability: float = 1.0  # chance that a training tube is augmented at all

    def __post_init__(self):
        if not 0.0 <= self.rotation <= 180.0:
            raise SpecError("rotation", f"must be in [0, 180] degrees, got {self.rotation}")
        if not 0.0 < self.scale[0] <= self.scale[1]:
            raise SpecError("scale", f"must be [low, high] with 0 < low <= high, got {list(self.scale)}")
        if not 0.0 <= self.color_jitter < 1.0:
            raise SpecError("color_jitter", f"must be in [0, 1), got {self.color_jitter}")
        if not 0.0 <= self.probability <= 1.0:
            raise SpecError("probability", f"must be in [0, 1], got {self.probability}")


@dataclass(frozen=True)
class DataSpec:
    """Where clips come from and how samples are cut from them (SPEC §3.3).

    The defaults cut MultiStream-style samples (tubes centred on the annotated frame, centre-frame targets,
    PoseTrack joints); STSP-Net takes ``tube_anchor: end``, ``targets: all``, ``joint_set: h36m``,
    ``points3d: true`` and ``flow: dis``.
    """

    # synthcourt: generated into `root` if missing; manifest: clips listed in root/manifest.json;
    # h36m: Human3.6M 2D keypoint windows and 3D joints from VideoPose3D's files (`h36m`), no images
    source: Literal["synthcourt", "manifest", "h36m"] = "synthcourt"
    root: str = "runs/data/synthcourt"  # folder holding manifest.json (relative paths: to the working dir)
    synth: SynthConfig = field(default_factory=SynthConfig)  # used when source is synthcourt
    h36m: H36MConfig = field(default_factory=H36MConfig)  # used when source is h36m
    splits: tuple[float, float, float] = (0.7, 0.15, 0.15)  # train/val/test fractions of videos (never frames)
    joint_set: str = "posetrack"  # posetrack: 2D from the PoseTrack JSON; h36m: 2D + visibility from the 3D npz
    input_size: tuple[int, int] = (128, 128)  # crop H, W; heatmaps are H/4 x W/4
    heatmap_sigma: float = 2.0  # Gaussian sigma in heatmap pixels
    box_scale: float = 1.25  # person box enlargement before cropping
    window: int = 1  # T: frames per person tube (odd with tube_anchor centre; 1 = single frame)
    interval: int = 1  # Δ: frame interval within a tube
    tube_anchor: Literal["centre", "end"] = "centre"  # centre: t-(T//2)Δ..t+(T//2)Δ (MultiStream); end: t-(T-1)Δ..t
    context_len: int = 0  # L: full frames ending at t for the context stream (column `context`); 0 = none
    context_size: tuple[int, int] = (128, 128)  # Hc, Wc of the context frames (multiples of 32)
    targets: Literal["centre", "all"] = "centre"  # centre: targets of the annotated frame; all: of every tube frame
    points3d: bool = False  # joints_3d: root-relative mm h36m joints from the clip's 3D file (joint_set h36m)
    flow: Literal["none", "dis", "farneback"] = "none"  # dense optical flow between consecutive crops (column `flow`)
    boxes: str = "gt"  # evaluation samples' boxes: gt, or a COCO-style detections file (training always uses gt)
    det_threshold: float = 0.5  # detections scoring below this are dropped
    frame_stride: int = 1  # use every n-th annotated frame as a tube anchor
    max_samples_per_clip: int | None = None  # cap on tubes per clip (evenly spread), None = all
    min_visible_joints: int = 4  # training tubes whose anchor person shows fewer labeled joints are not used
    # Training rows each Ray Train worker holds and draws its batches from at random (at least 4 batches;
    # stage.shard_batches). Samples are cut clip by clip, so a buffer of a few batches makes every batch a
    # handful of neighbouring clips' tubes.
    shuffle_buffer: int = 256
    augment: AugmentSpec = field(default_factory=AugmentSpec)
    prepared: bool = False  # true: stream samples from Parquet shards written once (`sportpose data prepare`)
    stream: bool = False  # true: re-cut the train split from video each epoch, fresh augmentation (needs a free CPU)
    max_skip_fraction: float = 0.05  # fail when more clips than this are unreadable
    on_error: Literal["skip", "raise"] = "skip"  # raise: the first bad clip is fatal

    def __post_init__(self):
        cut_sets = [s for s in JOINT_SETS if s in ("posetrack", "h36m")]  # the sets the pipeline has sources for
        if self.joint_set not in cut_sets:
            raise SpecError("joint_set", f"expected one of {cut_sets}, got {self.joint_set!r}")
        if len(self.splits) != 3 or any(s < 0 for s in self.splits) or abs(sum(self.splits) - 1.0) > 1e-6:
            raise SpecError("splits", f"must be three non-negative fractions summing to 1, got {list(self.splits)}")
        for name in ("input_size", "context_size"):
            h, w = getattr(self, name)
            if h < 32 or w < 32 or h % 32 or w % 32:
                raise SpecError(name, f"must be multiples of 32 (stride of C5), at least 32, got {[h, w]}")
        if self.heatmap_sigma <= 0:
            raise SpecError("heatmap_sigma", f"must be positive, got {self.heatmap_sigma}")
        if self.box_scale < 1.0:
            raise SpecError("box_scale", f"must be at least 1, got {self.box_scale}")
        if self.window < 1:
            raise SpecError("window", f"must be at least 1, got {self.window}")
        if self.tube_anchor == "centre" and self.window % 2 == 0:
            raise SpecError("window", f"must be odd with tube_anchor centre (a centre frame), got {self.window}")
        if self.interval < 1:
            raise SpecError("interval", f"must be at least 1, got {self.interval}")
        if self.context_len < 0:
            raise SpecError("context_len", f"must be 0 (no context clip) or more, got {self.context_len}")
        if self.points3d and self.joint_set != "h36m":
            raise SpecError("points3d", f"3D joints are h36m joints: needs joint_set h36m, got {self.joint_set!r}")
        if self.flow != "none" and self.window < 2:
            raise SpecError("flow", f"flow between consecutive crops needs window >= 2, got {self.window}")
        if not self.boxes:
            raise SpecError("boxes", "expected gt or the path of a detections file, got an empty string")
        if not 0.0 <= self.det_threshold <= 1.0:
            raise SpecError("det_threshold", f"must be in [0, 1], got {self.det_threshold}")
        if self.frame_stride < 1:
            raise SpecError("frame_stride", f"must be at least 1, got {self.frame_stride}")
        if self.max_samples_per_clip is not None and self.max_samples_per_clip < 1:
            raise SpecError("max_samples_per_clip", f"must be at least 1, got {self.max_samples_per_clip}")
        if self.min_visible_joints < 0:
            raise SpecError("min_visible_joints", f"must be non-negative, got {self.min_visible_joints}")
        if self.shuffle_buffer < 0:
            raise SpecError("shuffle_buffer", f"must be non-negative, got {self.shuffle_buffer}")
        if self.prepared and self.stream:
            raise SpecError("stream", "cutting from video each epoch and reading prepared Parquet exclude each other")
        if not 0.0 <= self.max_skip_fraction <= 1.0:
            raise SpecError("max_skip_fraction", f"must be in [0, 1], got {self.max_skip_fraction}")
        if self.source == "h36m":  # 2D keypoint windows ending at the current frame, nothing to decode or prepare
            for name, value in (("joint_set", "h36m"), ("tube_anchor", "end"), ("flow", "none"), ("context_len", 0),
                                ("prepared", False), ("stream", False), ("boxes", "gt")):
                if getattr(self, name) != value:
                    raise SpecError(name, f"must be {value!r} with source h36m (2D keypoints, no images), "
                                          f"got {getattr(self, name)!r}")
            for name in ("data_3d", "data_2d"):
                if not getattr(self.h36m, name):
                    raise SpecError(f"h36m.{name}", "the VideoPose3D file is required with source h36m")


@dataclass(frozen=True)
class OptimizerSpec:
    kind: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd only
    module_lr: dict[str, float] = field(default_factory=dict)  # learning rate per module prefix

    def __post_init__(self):
        if self.lr <= 0:
            raise SpecError("lr", f"must be positive, got {self.lr}")
        if self.weight_decay < 0:
            raise SpecError("weight_decay", f"must be non-negative, got {self.weight_decay}")
        for name, lr in self.module_lr.items():
            if lr <= 0:
                raise SpecError(f"module_lr.{name}", f"must be positive, got {lr}")


@dataclass(frozen=True)
class ScheduleSpec:
    kind: Literal["none", "step", "cosine", "plateau"] = "none"
    step_size: int = 10  # step: epochs between decays
    gamma: float = 0.1  # step and plateau: decay factor
    patience: int = 10  # plateau: epochs without improvement before a decay
    warmup_epochs: int = 0

    def __post_init__(self):
        if self.step_size < 1:
            raise SpecError("step_size", f"must be at least 1, got {self.step_size}")
        if not 0.0 < self.gamma <= 1.0:
            raise SpecError("gamma", f"must be in (0, 1], got {self.gamma}")
        if self.patience < 0 or self.warmup_epochs < 0:
            raise SpecError("patience", "patience and warmup_epochs must be non-negative")


@dataclass(frozen=True)
class ScalingSpec:
    """Ray Train's ScalingConfig for one stage."""

    # 0: Ray Train local mode, for debugging and tiny runs: the training function runs in the driver process
    # with the same ray.train APIs (dataset shards, report, checkpoints), no worker actors to start
    num_workers: int = 2
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 1.0  # with use_gpu
    torch_threads: int = 1  # intra-op threads per worker process

    def __post_init__(self):
        if self.num_workers < 0:
            raise SpecError("num_workers", f"must be 0 (Ray Train local mode) or more, got {self.num_workers}")
        if self.cpus_per_worker <= 0:
            raise SpecError("cpus_per_worker", f"must be positive, got {self.cpus_per_worker}")
        if self.torch_threads < 1:
            raise SpecError("torch_threads", f"must be at least 1, got {self.torch_threads}")


@dataclass(frozen=True)
class StageSpec:
    """One training stage: one Ray Train TorchTrainer job."""

    after: tuple[str, ...] = ()  # stages whose best checkpoints this one starts from
    task: str = "default"  # what the model trains in this stage (one of the model's TASKS)
    # Modules (prefixes) loaded from each `after` stage's best checkpoint. Unset: from each stage, the
    # modules it trained (the model's trainable_prefixes of that stage's task); "" loads the whole model.
    load: dict[str, tuple[str, ...]] = field(default_factory=dict)
    epochs: int = 1
    batch_size: int = 32  # per worker
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    scaling: ScalingSpec = field(default_factory=ScalingSpec)
    freeze: tuple[str, ...] = ()  # module prefixes kept frozen in this stage
    freeze_layers: int | None = None  # freeze the first N backbone stages (the model's freeze_prefixes(N))
    grad_clip: float | None = None  # max gradient norm
    early_stopping: int | None = None  # patience in epochs on the stage metric
    max_failures: int = 0  # worker-group restarts from the latest checkpoint
    amp: Literal["none", "bf16"] = "none"  # bf16 autocast on GPU
    # true: run the model's frozen prefix once per worker over its shard and train on its cached outputs and the
    # loss's targets (a task of the model's CACHEABLE_TASKS, e.g. STSP-Net's "lift" with EPE frozen); the data
    # are not re-read per epoch
    cache_frozen: bool = False
    metric: str = "val_loss"  # picks the best checkpoint
    mode: Literal["min", "max"] = "min"

    def __post_init__(self):
        if self.epochs < 1:
            raise SpecError("epochs", f"must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise SpecError("batch_size", f"must be at least 1, got {self.batch_size}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise SpecError("grad_clip", f"must be positive, got {self.grad_clip}")
        if self.early_stopping is not None and self.early_stopping < 1:
            raise SpecError("early_stopping", f"must be at least 1, got {self.early_stopping}")
        if self.max_failures < 0:
            raise SpecError("max_failures", f"must be non-negative, got {self.max_failures}")
        if self.freeze_layers is not None and self.freeze_layers < 0:
            raise SpecError("freeze_layers", f"must be non-negative, got {self.freeze_layers}")
        for source in self.load:
            if source not in self.after:
                raise SpecError(f"load.{source}", f"loads from a stage not listed in `after` {list(self.after)}")


@dataclass(frozen=True)
class TrainSpec:
    stages: dict[str, StageSpec] = field(default_factory=lambda: {"main": StageSpec()})
    # Ray Train checkpoints; None: <runs>/ray (SPORTPOSE_RUNS or ./runs); a shared URI (s3://, gs://, NFS) on clusters
    storage_path: str | None = None

    def __post_init__(self):
        if not self.stages:
            raise SpecError("stages", "at least one stage is required")
        for name, stage in self.stages.items():
            for dep in stage.after:
                if dep not in self.stages:
                    raise SpecError(f"stages.{name}.after", f"unknown stage {dep!r}; stages are {list(self.stages)}")
        order = stage_order(self.stages)  # raises on cycles
        assert len(order) == len(self.stages)


def stage_order(stages: dict[str, StageSpec]) -> list[str]:
    """Stages in an order that respects ``after`` (spec order among independent stages)."""
    done: list[str] = []
    pending = list(stages)
    while pending:
        ready = [s for s in pending if all(d in done for d in stages[s].after)]
        if not ready:
            raise SpecError(f"stages.{pending[0]}.after", f"stage dependencies form a cycle among {pending}")
        done.extend(ready)
        pending = [s for s in pending if s not in ready]
    return done


@dataclass(frozen=True)
class EvaluateSpec:
    split: Literal["train", "val", "test"] = "test"
    flip_test: bool = False
    pckh_alpha: float = 0.5
    batch_size: int = 64

    def __post_init__(self):
        if not 0.0 < self.pckh_alpha <= 1.0:
            raise SpecError("pckh_alpha", f"must be in (0, 1], got {self.pckh_alpha}")


@dataclass(frozen=True)
class RegisterSpec:
    """Registering the final model in the MLflow registry (SPEC §9)."""

    enabled: bool = True
    name: str | None = None  # registered model name; None: sportpose-<model kind>
    metric: str = "pckh"  # the primary metric deciding `champion`
    mode: Literal["max", "min"] = "max"


@dataclass(frozen=True)
class ExperimentSpec:
    name: str
    model: ModelConfig
    seed: int = 0
    data: DataSpec = field(default_factory=DataSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    evaluate: EvaluateSpec = field(default_factory=EvaluateSpec)
    register: RegisterSpec = field(default_factory=RegisterSpec)

    def __post_init__(self):
        if not self.name or not all(c.isalnum() or c in "-_." for c in self.name):
            raise SpecError("name", f"must be non-empty letters, digits, '-', '_' or '.', got {self.name!r}")
        _check_model_against_data(self.model, self.data)
        from sportpose.models import MODELS

        tasks = MODELS[self.model.kind].TASKS
        for name, stage in self.train.stages.items():
            if stage.task not in tasks:
                raise SpecError(f"train.stages.{name}.task", f"model {self.model.kind!r} has tasks {list(tasks)}, got {stage.task!r}")
            if stage.cache_frozen:
                cacheable = getattr(MODELS[self.model.kind], "CACHEABLE_TASKS", ())
                if stage.task not in cacheable:
                    raise SpecError(f"train.stages.{name}.cache_frozen",
                                    f"model {self.model.kind!r} has no frozen part to cache in task {stage.task!r} "
                                    f"(cacheable tasks: {list(cacheable) or 'none'})")
                if self.data.source == "h36m":
                    raise SpecError(f"train.stages.{name}.cache_frozen",
                                    "data.source h36m reads 2D keypoints: no frozen image model runs to be cached")
        if self.data.source == "h36m":  # 2D keypoints only: the lifting stage, and no registered image model
            if self.model.kind != "stsp":
                raise SpecError("model.kind", f"data.source h36m serves STSP-Net's lifting stage, got {self.model.kind!r}")
            for name, stage in self.train.stages.items():
                if stage.task != "lift":
                    raise SpecError(f"train.stages.{name}.task", f"must be 'lift' with data.source h36m (no images), "
                                                                 f"got {stage.task!r}")
            if self.register.enabled:
                raise SpecError("register.enabled", "must be false with data.source h36m: the registered model "
                                                    "reads image tubes")

    @property
    def registered_name(self) -> str:
        return self.register.name or f"sportpose-{self.model.kind}"


def _check_model_against_data(model: Any, data: DataSpec) -> None:
    """The facts both sections state must agree: what the model consumes is what the data side cuts."""
    def same(model_key: str, data_key: str) -> None:
        m, d = getattr(model, model_key), getattr(data, data_key)
        if (tuple(m) if isinstance(m, list) else m) != (tuple(d) if isinstance(d, list) else d):
            raise SpecError(f"model.{model_key}", f"is {m!r} but data.{data_key} is {d!r}; they must match")

    def need(data_key: str, value: Any, why: str) -> None:
        if getattr(data, data_key) != value:
            raise SpecError(f"data.{data_key}", f"must be {value!r} for {why}, got {getattr(data, data_key)!r}")

    if model.kind == "multistream":
        same("input_size", "input_size")
        need("tube_anchor", "centre", "MultiStream (tubes centred on the annotated frame)")
        if "temporal" in model.streams:
            same("window", "window")
        if "context" in model.streams:
            same("context_len", "context_len")
            same("context_size", "context_size")
    elif model.kind == "stsp":
        same("window", "window")
        if (model.lift_input == "keypoints_2d") != (data.source == "h36m"):
            raise SpecError("model.lift_input", f"is {model.lift_input!r} but data.source is {data.source!r}: 2D "
                                                "keypoints alone come from source h36m, which has no images")
        if model.lift_input == "images":
            need("tube_anchor", "end", "STSP-Net (the current frame is the last of the tube)")
            need("targets", "all", "STSP-Net (targets for every frame of the tube)")
            need("joint_set", "h36m", "STSP-Net (3D on the Human3.6M skeleton)")
            need("points3d", True, "STSP-Net (3D targets)")
            if model.use_motion and data.flow == "none":
                raise SpecError("data.flow", "must be dis or farneback when model.use_motion is true (motion enhancement)")


def read_spec_file(path: str | Path) -> dict[str, Any]:
    """A YAML spec file (experiment or sweep) as plain data: a mapping at the top level (empty file: ``{}``).

    Raises:
        SpecError: the file is missing, not valid YAML, or not a mapping (key ``<file>``, ``<yaml>``, ``<root>``).
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SpecError("<file>", "spec file not found", str(path)) from None
    except yaml.YAMLError as e:
        raise SpecError("<yaml>", f"not valid YAML: {str(e).splitlines()[0]}", str(path)) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SpecError("<root>", "expected a mapping at the top level", str(path))
    return raw


def load_spec(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentSpec:
    """Read a YAML spec, apply ``-o key=value`` overrides, and validate it completely.

    Raises:
        SpecError: naming the key and the file.
    """
    path = Path(path)
    raw = apply_overrides(read_spec_file(path), overrides, str(path))
    try:
        return fill(ExperimentSpec, raw)
    except SpecError as e:
        raise e.within(file=str(path)) from None


def apply_overrides(raw: dict, overrides: list[str] | tuple[str, ...], file: str | None = None) -> dict:
    """Set ``a.b.c=value`` keys in a copy of ``raw``; values are parsed as YAML (``3``, ``[1, 2]``, ``null``)."""
    raw = json.loads(json.dumps(raw))  # deep copy of plain data
    for item in overrides:
        if "=" not in item:
            raise SpecError(item, "an override must look like key.path=value", file)
        key, _, text = item.partition("=")
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise SpecError(item, "an override needs a key before '='", file)
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        node = raw
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise SpecError(".".join(parts[: i + 1]), f"is not a section, cannot set {key}", file)
            node = nxt
        node[parts[-1]] = value
    return raw


def spec_to_dict(spec: ExperimentSpec) -> dict[str, Any]:
    """The resolved spec as plain data (for YAML, MLflow params, and the Ray boundary)."""
    return to_dict(spec)


def spec_from_dict(data: dict[str, Any]) -> ExperimentSpec:
    """Rebuild a spec from :func:`spec_to_dict` output (on a Ray worker, from a saved run)."""
    return fill(ExperimentSpec, data)


def spec_yaml(spec: ExperimentSpec) -> str:
    return yaml.safe_dump(spec_to_dict(spec), sort_keys=False)


def spec_hash(spec: ExperimentSpec | dict) -> str:
    """A stable hash of the resolved spec (hex, 16 chars)."""
    data = spec_to_dict(spec) if isinstance(spec, ExperimentSpec) else spec
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
