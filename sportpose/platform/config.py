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
from sportpose.models.simplebaseline import SimpleBaselineConfig
from sportpose.models.skeleton import JOINT_SETS
from sportpose.pipelines.data.synth import SynthConfig
from sportpose.platform.specfill import fill, to_dict

# The model section is one of these, chosen by its `kind`.
ModelConfig = SimpleBaselineConfig
MODEL_CONFIGS: dict[str, type] = {"simplebaseline": SimpleBaselineConfig}


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
    """Where clips come from and how samples are cut from them (SPEC §3.3)."""

    source: Literal["synthcourt", "manifest"] = "synthcourt"  # synthcourt: generated into `root` if missing
    root: str = "runs/data/synthcourt"  # folder holding manifest.json (relative paths: to the working dir)
    synth: SynthConfig = field(default_factory=SynthConfig)  # used when source is synthcourt
    splits: tuple[float, float, float] = (0.7, 0.15, 0.15)  # train/val/test fractions of videos (never frames)
    joint_set: str = "posetrack"  # joints the 2D models predict
    input_size: tuple[int, int] = (128, 128)  # crop H, W; heatmaps are H/4 x W/4
    heatmap_sigma: float = 2.0  # Gaussian sigma in heatmap pixels
    box_scale: float = 1.25  # person box enlargement before cropping
    window: int = 1  # T: frames per person tube (odd; 1 = single frame)
    interval: int = 1  # Δ: frame interval within a tube
    frame_stride: int = 1  # use every n-th annotated frame as a tube centre
    max_samples_per_clip: int | None = None  # cap on tubes per clip (evenly spread), None = all
    min_visible_joints: int = 4  # tubes whose centre person shows fewer labeled joints are not used
    augment: AugmentSpec = field(default_factory=AugmentSpec)
    max_skip_fraction: float = 0.05  # fail when more clips than this are unreadable
    on_error: Literal["skip", "raise"] = "skip"  # raise: the first bad clip is fatal

    def __post_init__(self):
        if self.joint_set not in JOINT_SETS:
            raise SpecError("joint_set", f"expected one of {sorted(JOINT_SETS)}, got {self.joint_set!r}")
        if len(self.splits) != 3 or any(s < 0 for s in self.splits) or abs(sum(self.splits) - 1.0) > 1e-6:
            raise SpecError("splits", f"must be three non-negative fractions summing to 1, got {list(self.splits)}")
        h, w = self.input_size
        if h < 32 or w < 32 or h % 32 or w % 32:
            raise SpecError("input_size", f"must be multiples of 32 (stride of C5), at least 32, got {[h, w]}")
        if self.heatmap_sigma <= 0:
            raise SpecError("heatmap_sigma", f"must be positive, got {self.heatmap_sigma}")
        if self.box_scale < 1.0:
            raise SpecError("box_scale", f"must be at least 1, got {self.box_scale}")
        if self.window < 1 or self.window % 2 == 0:
            raise SpecError("window", f"must be odd and positive (a centre frame), got {self.window}")
        if self.interval < 1:
            raise SpecError("interval", f"must be at least 1, got {self.interval}")
        if self.frame_stride < 1:
            raise SpecError("frame_stride", f"must be at least 1, got {self.frame_stride}")
        if self.max_samples_per_clip is not None and self.max_samples_per_clip < 1:
            raise SpecError("max_samples_per_clip", f"must be at least 1, got {self.max_samples_per_clip}")
        if not 0.0 <= self.max_skip_fraction <= 1.0:
            raise SpecError("max_skip_fraction", f"must be in [0, 1], got {self.max_skip_fraction}")


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

    num_workers: int = 2
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 1.0  # with use_gpu
    torch_threads: int = 1  # intra-op threads per worker process

    def __post_init__(self):
        if self.num_workers < 1:
            raise SpecError("num_workers", f"must be at least 1, got {self.num_workers}")
        if self.cpus_per_worker <= 0:
            raise SpecError("cpus_per_worker", f"must be positive, got {self.cpus_per_worker}")
        if self.torch_threads < 1:
            raise SpecError("torch_threads", f"must be at least 1, got {self.torch_threads}")


@dataclass(frozen=True)
class StageSpec:
    """One training stage: one Ray Train TorchTrainer job."""

    after: tuple[str, ...] = ()  # stages whose best checkpoints this one starts from
    epochs: int = 1
    batch_size: int = 32  # per worker
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    scaling: ScalingSpec = field(default_factory=ScalingSpec)
    freeze: tuple[str, ...] = ()  # module prefixes kept frozen in this stage
    grad_clip: float | None = None  # max gradient norm
    early_stopping: int | None = None  # patience in epochs on the stage metric
    max_failures: int = 0  # worker-group restarts from the latest checkpoint
    amp: Literal["none", "bf16"] = "none"  # bf16 autocast on GPU
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


@dataclass(frozen=True)
class TrainSpec:
    stages: dict[str, StageSpec] = field(default_factory=lambda: {"main": StageSpec()})
    storage_path: str = "runs/ray"  # Ray Train checkpoints; a shared URI (s3://, gs://, NFS) on clusters

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

    @property
    def registered_name(self) -> str:
        return self.register.name or f"sportpose-{self.model.kind}"


def load_spec(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentSpec:
    """Read a YAML spec, apply ``-o key=value`` overrides, and validate it completely.

    Raises:
        SpecError: naming the key and the file.
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
    raw = apply_overrides(raw, overrides, str(path))
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
