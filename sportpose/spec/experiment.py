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

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from torch import nn

from sportpose.errors import SpecError
from sportpose.models import MODELS, build_model
from sportpose.models.multistream import MultiStreamConfig
from sportpose.models.pretrained import initialise
from sportpose.models.simplebaseline import SimpleBaselineConfig
from sportpose.models.skeleton import JOINT_SETS
from sportpose.models.stsp import STSPConfig
from sportpose.paths import check_name
from sportpose.spec.data import DataSpec
from sportpose.spec.fill import fill, to_dict

# The model section is one of these, chosen by its `kind`.
ModelConfig = SimpleBaselineConfig | MultiStreamConfig | STSPConfig
MODEL_CONFIGS: dict[str, type] = {"simplebaseline": SimpleBaselineConfig, "multistream": MultiStreamConfig,
                                  "stsp": STSPConfig}


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
    # DDP's gradient bucket size (MB): a bucket is all-reduced as soon as its gradients are ready, so buckets
    # smaller than the model let the all-reduce overlap the rest of the backward pass (torch's default: 25)
    bucket_cap_mb: float = 25.0

    def __post_init__(self):
        if self.num_workers < 0:
            raise SpecError("num_workers", f"must be 0 (Ray Train local mode) or more, got {self.num_workers}")
        if self.cpus_per_worker <= 0:
            raise SpecError("cpus_per_worker", f"must be positive, got {self.cpus_per_worker}")
        if self.gpus_per_worker < 0:
            raise SpecError("gpus_per_worker", f"must be 0 or more (a share of a GPU), got {self.gpus_per_worker}")
        if self.torch_threads < 1:
            raise SpecError("torch_threads", f"must be at least 1, got {self.torch_threads}")
        if self.bucket_cap_mb <= 0:
            raise SpecError("bucket_cap_mb", f"must be positive, got {self.bucket_cap_mb}")


@dataclass(frozen=True)
class StageSpec:
    """One training stage: one Ray Train TorchTrainer job."""

    after: tuple[str, ...] = ()  # stages whose best checkpoints this one starts from
    task: str = "default"  # what the model trains in this stage (one of the model's TASKS)
    # Modules (prefixes) loaded from each `after` stage's best checkpoint. Unset: from each stage, the
    # modules it trained (the model's trainable_prefixes of that stage's task); "" loads the whole model.
    load: dict[str, tuple[str, ...]] = field(default_factory=dict)
    epochs: int = 1
    # The global batch of a step (the papers' 32), divided among scaling.num_workers: each worker's batch is
    # worker_batch_size. It must divide, so that every spec and model means the same by it (SPEC §6).
    batch_size: int = 32
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    scaling: ScalingSpec = field(default_factory=ScalingSpec)
    freeze: tuple[str, ...] = ()  # module prefixes kept frozen in this stage
    freeze_layers: int | None = None  # freeze the first N backbone stages (the model's freeze_prefixes(N))
    grad_clip: float | None = None  # max gradient norm
    # Micro-batches per step: each worker's share of batch_size runs forward and backward in this many pieces,
    # their gradients summed locally (DDP no_sync) and all-reduced once per step: the same step as 1, in less
    # memory (BatchNorm sees the smaller pieces); worker_batch_size must divide by it
    accumulate: int = 1
    early_stopping: int | None = None  # patience in epochs on the stage metric
    max_failures: int = 0  # worker-group restarts from the latest checkpoint
    # bf16 autocast of the training forward pass and loss on the stage's device (validation stays float32): on a
    # GPU, or on a CPU with native bf16 (AVX512-BF16 / AMX; elsewhere PyTorch emulates it, slower than float32)
    amp: Literal["none", "bf16"] = "none"
    # true: run the model's frozen prefix once per worker over its shard and train on its cached outputs and the
    # loss's targets (a task of the model's CACHEABLE_TASKS, e.g. STSP-Net's "lift" with EPE frozen); the data
    # are not re-read per epoch
    cache_frozen: bool = False
    # true: each worker keeps the samples of its shard in memory once read (at the stage's start) and draws every
    # epoch's batches from them, in a new order per epoch (the rows a worker holds stay its own): for splits
    # that fit in the workers' memory, where reading them each epoch costs the CPUs the training processes use
    # (bench/train_throughput.py: 2 workers on 2 cores waited 44% of each epoch for batches)
    cache_samples: bool = False
    # The epoch metric that picks the stage's best checkpoint (its output) and drives early stopping and plateau
    # schedules. null: the task's validation metric (the model's task_metric: val_pckh for 2D heatmap tasks,
    # val_mpjpe_mm for 3D ones, val_loss for self-supervised ones); else one of it and the loss keys
    # (val_-prefixed for validation means, bare for training means)
    metric: str | None = None
    mode: Literal["min", "max"] | None = None  # null: the task metric's, "min" for a loss

    def __post_init__(self):
        if self.epochs < 1:
            raise SpecError("epochs", f"must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise SpecError("batch_size", f"must be at least 1, got {self.batch_size}")
        workers = max(1, self.scaling.num_workers)
        if self.batch_size % workers:
            raise SpecError("batch_size", f"{self.batch_size} does not divide among scaling.num_workers = "
                                          f"{self.scaling.num_workers}: it is the global batch of a step, split "
                                          f"equally among the workers; use a multiple of {workers}")
        if self.accumulate < 1 or self.batch_size // workers % self.accumulate:
            raise SpecError("accumulate", f"must be at least 1 and divide each worker's {self.batch_size // workers} "
                                          f"rows of batch_size, got {self.accumulate}")
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

    @property
    def worker_batch_size(self) -> int:
        """Rows each worker takes per step: the global ``batch_size`` over the workers (local mode, 0 workers, is
        one process)."""
        return self.batch_size // max(1, self.scaling.num_workers)


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
        if self.batch_size < 1:
            raise SpecError("batch_size", f"must be at least 1, got {self.batch_size}")


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
        check_name("name", self.name)
        for stage in self.train.stages:
            check_name(f"train.stages.{stage}", stage)
        _check_model_against_data(self.model, self.data)

        tasks = MODELS[self.model.kind].TASKS
        for name, stage in self.train.stages.items():
            if stage.task not in tasks:
                raise SpecError(f"train.stages.{name}.task", f"model {self.model.kind!r} has tasks {list(tasks)}, got {stage.task!r}")
            family = MODELS[self.model.kind]
            if stage.freeze_layers is not None and stage.freeze_layers > family.FREEZE_LAYERS:
                raise SpecError(f"train.stages.{name}.freeze_layers",
                                f"model {self.model.kind!r} can freeze at most {family.FREEZE_LAYERS} backbone "
                                f"stages, got {stage.freeze_layers}" if family.FREEZE_LAYERS else
                                f"model {self.model.kind!r} has no backbone stages to freeze; use "
                                f"`freeze` (module prefixes) or the task's trainable parts")
            self.train.stages[name] = _resolve_metric(stage, name, self.model, family)
            if stage.cache_samples and (stage.cache_frozen or self.data.stream):
                raise SpecError(f"train.stages.{name}.cache_samples",
                                "cache_frozen caches this stage's samples already: give one of the two"
                                if stage.cache_frozen else "data.stream re-cuts the train split every epoch (fresh "
                                "augmentation), which a cache would freeze: give one of the two")
            if stage.cache_frozen:
                cacheable = family.CACHEABLE_TASKS
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

    @property
    def num_joints(self) -> int:
        """Joints per person in the data's joint set (the model's output size)."""
        return JOINT_SETS[self.data.joint_set].num_joints

    def build_model(self, pretrained: bool = False) -> nn.Module:
        """The spec's network: its model section sized for the data's joint set.

        Args:
            pretrained: initialise from the ``model.*pretrained`` files (a training stage's starting point; the
                reports are on ``model.pretrained_reports``). Every other caller loads a checkpoint over the
                network, so by default the files are not read (they need not exist where a model is served).
        """
        model = build_model(self.model, self.num_joints)
        if pretrained:
            initialise(model, self.model, self.data.joint_set)
        return model


def _resolve_metric(stage: StageSpec, name: str, model: Any, family: Any) -> StageSpec:
    """The stage with its ``metric`` and ``mode`` filled in from the task (SPEC §6), a named metric checked
    against what the stage's epochs report."""
    task_metric = family.task_metric(stage.task)
    metric = stage.metric or task_metric.name
    losses = family.loss_names(model, stage.task)
    known = [task_metric.name] + [f"val_{k}" for k in losses] + list(losses)
    if metric not in known:
        raise SpecError(f"train.stages.{name}.metric", f"{metric!r} is not reported by task {stage.task!r} of model "
                                                       f"{model.kind!r}; it reports {known}")
    mode = stage.mode or (task_metric.mode if metric == task_metric.name else "min")
    if (metric, mode) == (stage.metric, stage.mode):
        return stage
    return dataclasses.replace(stage, metric=metric, mode=mode)


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
        SpecError: the file is missing, a folder, binary, not valid YAML (with its line and column), or not a
            mapping (key ``<file>``, ``<yaml>``, ``<root>``).
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError("<file>", "spec file not found", str(path)) from None
    except IsADirectoryError:
        raise SpecError("<file>", "is a folder; expected a YAML spec file", str(path)) from None
    except UnicodeDecodeError:
        raise SpecError("<file>", "is not a text file (not UTF-8); expected a YAML spec file", str(path)) from None
    except PermissionError:
        raise SpecError("<file>", "cannot be read (permission denied)", str(path)) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpecError("<yaml>", f"not valid YAML: {where}{problem}", str(path)) from None
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


def apply_overrides(raw: dict, overrides: list[str] | tuple[str, ...], file: str | None = None,
                    schema: type | None = None) -> dict:
    """Set ``a.b.c=value`` keys in a copy of ``raw``; values are parsed as YAML (``3``, ``[1, 2]``, ``null``).

    An override sets what the spec has; it does not add an entry to a mapping of free names (a stage of
    ``train.stages``, a stage of a ``load``) that the spec lacks, so that a typo (``train.stages.mian.epochs``)
    is an error instead of a new stage. ``+a.b.c=value`` adds it on purpose (Hydra's form). ``schema`` is the
    dataclass ``raw`` fills (default :class:`ExperimentSpec`).
    """
    raw = json.loads(json.dumps(raw))  # deep copy of plain data
    for item in overrides:
        if "=" not in item:
            raise SpecError(item, "an override must look like key.path=value", file)
        key, _, text = item.partition("=")
        key = key.strip()
        adding = key.startswith("+")
        parts = [p for p in key.lstrip("+").split(".") if p]
        if not parts:
            raise SpecError(item, "an override needs a key before '='", file)
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        if not adding:
            _refuse_new_entries(raw, parts, schema or ExperimentSpec, file)
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


def _refuse_new_entries(raw: dict, parts: list[str], cls: Any, file: str | None) -> None:
    """Raise when ``parts`` walks into an entry of a free-name mapping (``dict[str, ...]``) that neither ``raw``
    nor the field's default has; stops where the types stop being known (a union, a plain value)."""
    node: Any = raw
    defaults: Any = None  # the dataclass default of a mapping ``raw`` does not spell out
    for i, part in enumerate(parts):
        if dataclasses.is_dataclass(cls):
            fields = {f.name: f for f in dataclasses.fields(cls)}
            if part not in fields:
                return  # an unknown key: filling the spec names it
            f = fields[part]
            defaults = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
            cls = typing.get_type_hints(cls)[part]
        elif typing.get_origin(cls) is dict:
            have = set(node) if isinstance(node, dict) else set()
            if not isinstance(node, dict) and isinstance(defaults, dict):
                have = set(defaults)
            if part not in have:
                where = ".".join(parts[:i])
                raise SpecError(".".join(parts[: i + 1]), f"{where} has no entry {part!r} (it has {sorted(have)}); "
                                f"to add one on purpose, write -o +{'.'.join(parts)}=...", file)
            cls, defaults = typing.get_args(cls)[1], None
        else:
            return
        node = node.get(part) if isinstance(node, dict) else None


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
