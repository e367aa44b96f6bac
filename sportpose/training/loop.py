"""The plain PyTorch training loop: optimiser, schedule, freezing, the epoch loop with its best-epoch tracking
and early stopping, one epoch of training and validation.

Nothing here knows of Ray or MLflow; :mod:`sportpose.training.stage` wraps :func:`fit` for Ray Train, handing
in the batches of its shards, a cross-worker mean, and what to do with each epoch (checkpoint, report, log).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sportpose.errors import SpecError, TrainingError
from sportpose.spec.experiment import OptimizerSpec, ScheduleSpec, StageSpec

Batch = dict[str, torch.Tensor]
LossFn = Callable[[nn.Module, Batch], dict[str, torch.Tensor]]
# model, batch -> (named losses, {metric name: (hits, total)}): one validation batch (see validate)
EvalFn = Callable[[nn.Module, Batch], tuple[dict[str, torch.Tensor], dict[str, tuple[torch.Tensor, torch.Tensor]]]]


def freeze_modules(model: nn.Module, prefixes: Iterable[str]) -> list[str]:
    """Set ``requires_grad=False`` on every parameter under the given module prefixes.

    Frozen BatchNorm layers are also kept in eval mode by :func:`train_epoch` (their statistics stay put).

    Returns:
        the names of the frozen parameters.

    Raises:
        SpecError: a prefix matches no parameter (naming it and what the model has).
    """
    frozen = []
    names = [n for n, _ in model.named_parameters()]
    for prefix in prefixes:
        hit = [n for n in names if matches(n, prefix)]
        if not hit:
            top = sorted({n.split(".")[0] for n in names})
            raise SpecError("freeze", f"{prefix!r} matches no module of the model; top-level modules: {top}")
        frozen += hit
    params = dict(model.named_parameters())
    for name in frozen:
        params[name].requires_grad_(False)
    return frozen


def matches(name: str, prefix: str) -> bool:
    """``name`` lies under the module ``prefix`` ("" is the whole model)."""
    return prefix == "" or name == prefix or name.startswith(prefix + ".")


def freeze_outside(model: nn.Module, trainable: Iterable[str]) -> list[str]:
    """Freeze every parameter not under one of the ``trainable`` prefixes; returns the names frozen."""
    trainable = tuple(trainable)
    frozen = []
    for name, p in model.named_parameters():
        if not any(matches(name, t) for t in trainable):
            p.requires_grad_(False)
            frozen.append(name)
    return frozen


def load_modules(model: nn.Module, state: dict[str, torch.Tensor], prefixes: Iterable[str], source: str,
                 key: str) -> list[str]:
    """Copy the given modules from another stage's state dict into ``model``.

    Args:
        state: the source checkpoint's model state dict.
        prefixes: module prefixes to copy ("" copies everything).
        source: the source stage's name (for messages).
        key: the spec key that declared the hand-off (for messages).

    Returns:
        the state-dict keys loaded.

    Raises:
        SpecError: a module the model has is missing from the checkpoint, or shapes differ; names both.
    """
    own = model.state_dict()
    loaded = []
    for prefix in prefixes:
        wanted = [k for k in own if matches(k, prefix)]
        if not wanted:
            raise SpecError(key, f"module {prefix!r} does not exist in the model being trained")
        missing = [k for k in wanted if k not in state]
        if missing:
            raise SpecError(key, f"module {prefix!r}: stage {source!r}'s checkpoint lacks {missing[0]!r}"
                                 f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''}")
        for k in wanted:
            if tuple(state[k].shape) != tuple(own[k].shape):
                raise SpecError(key, f"module {prefix!r}: {k} has shape {tuple(state[k].shape)} in stage "
                                     f"{source!r}'s checkpoint but {tuple(own[k].shape)} in this stage's model")
            own[k] = state[k]
            loaded.append(k)
    model.load_state_dict(own)
    return loaded


def frozen_module_prefixes(model: nn.Module) -> list[nn.Module]:
    """Modules all of whose parameters are frozen (kept in eval mode during training)."""
    out = []
    for _, module in model.named_modules():
        params = list(module.parameters(recurse=True))
        if params and not any(p.requires_grad for p in params):
            out.append(module)
    return out


def build_optimizer(model: nn.Module, spec: OptimizerSpec) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD over trainable parameters, with ``module_lr`` learning rates per module prefix.

    Raises:
        SpecError: a ``module_lr`` prefix matches no trainable parameter.
    """
    groups: dict[str, list[nn.Parameter]] = {prefix: [] for prefix in spec.module_lr}
    rest: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        prefix = next((m for m in spec.module_lr if name == m or name.startswith(m + ".")), None)
        (groups[prefix] if prefix else rest).append(p)
    for prefix, params in groups.items():
        if not params:
            raise SpecError(f"optimizer.module_lr.{prefix}", "matches no trainable parameter of the model")
    param_groups = [{"params": rest, "lr": spec.lr}] if rest else []
    param_groups += [{"params": ps, "lr": spec.module_lr[m]} for m, ps in groups.items()]
    if not param_groups:
        raise SpecError("freeze", "every parameter of the model is frozen: nothing to train")
    if spec.kind == "adam":
        return torch.optim.Adam(param_groups, lr=spec.lr, weight_decay=spec.weight_decay)
    if spec.kind == "adamw":
        return torch.optim.AdamW(param_groups, lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.SGD(param_groups, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, spec: ScheduleSpec, epochs: int, mode: str = "min") -> Any:
    """Per-epoch schedule (``none | step | cosine | plateau``) with optional linear warm-up; ``mode``: whether the
    stage metric that ``plateau`` watches improves downwards (``min``) or upwards (``max``, e.g. PCKh)."""
    if spec.kind == "step":
        main = torch.optim.lr_scheduler.StepLR(optimizer, step_size=spec.step_size, gamma=spec.gamma)
    elif spec.kind == "cosine":
        main = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs - spec.warmup_epochs))
    elif spec.kind == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=spec.gamma,
                                                          patience=spec.patience)
    else:
        main = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    if spec.warmup_epochs:
        warm = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=spec.warmup_epochs)
        return torch.optim.lr_scheduler.SequentialLR(optimizer, [warm, main], milestones=[spec.warmup_epochs])
    return main


def step_scheduler(scheduler: Any, metric: float) -> None:
    if scheduler is None:
        return
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(metric)
    else:
        scheduler.step()


# Set by the driver on Ctrl-C: a stage running in this process (Ray Train local mode) stops at its next step.
STOP = threading.Event()


class StageInterrupted(Exception):
    """The driver was interrupted (Ctrl-C) while this stage trained in its process."""


class NonFiniteLoss(ArithmeticError):
    """The training loss of a step is NaN or infinite: the step's update is not applied."""

    def __init__(self, step: int, value: float):
        self.step, self.value = step, value
        super().__init__(f"loss {value} at step {step}")


def train_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    grad_clip: float | None = None,
    amp: bool = False,
    frozen: list[nn.Module] | None = None,
    device_type: str = "cuda",
    accumulate: int = 1,
) -> dict[str, float]:
    """One pass over ``batches``. Returns mean losses, the sample count, samples per second, ``batch_rows``, the
    rows of this process's largest step (its share of the stage's global batch, SPEC §6), and
    ``data_wait_fraction``, the share of the pass spent waiting for the next batch.

    Args:
        amp: bf16 autocast of the forward pass and the loss on ``device_type`` (``cuda``, or ``cpu``: a stage
            without a GPU, and ``bench/gpu.py --device cpu``).
        accumulate: micro-batches per step: each batch runs forward and backward in this many row slices, each
            loss weighted by its share of the rows, so the summed gradient is the batch's; under DDP every
            slice but the last runs in ``no_sync`` (one all-reduce per step, as without accumulation).

    Raises:
        NonFiniteLoss: a step's loss is NaN or infinite (checked before its update, so the weights stay finite).
    """
    model.train()
    for module in frozen or []:
        module.eval()  # frozen BatchNorm keeps its statistics
    totals: dict[str, float] = {}
    n = largest = 0
    start = fetched = time.perf_counter()
    waited = 0.0  # seconds spent waiting for the next batch (the data path, not the step)
    for step, batch in enumerate(batches):
        waited += time.perf_counter() - fetched
        if STOP.is_set():
            raise StageInterrupted(f"interrupted at step {step}")
        bs = next(iter(batch.values())).shape[0]
        optimizer.zero_grad(set_to_none=True)
        pieces = _micro_batches(batch, bs, accumulate)
        losses = {}
        for k, (piece, rows) in enumerate(pieces):
            ctx = torch.autocast(device_type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()
            sync = model.no_sync() if k < len(pieces) - 1 and hasattr(model, "no_sync") else contextlib.nullcontext()
            with sync:
                with ctx:
                    part = loss_fn(model, piece)
                if not torch.isfinite(part["loss"].detach()):
                    raise NonFiniteLoss(step, float(part["loss"].detach()))
                (part["loss"] * (rows / bs)).backward()
            for name, v in part.items():
                losses[name] = losses.get(name, 0.0) + v.detach() * (rows / bs)
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        for k, v in losses.items():
            totals[k] = totals.get(k, 0.0) + float(v.detach()) * bs
        n += bs
        largest = max(largest, bs)
        fetched = time.perf_counter()
    seconds = time.perf_counter() - start
    out = {k: v / max(n, 1) for k, v in totals.items()}
    out.update(samples=float(n), epoch_seconds=seconds, samples_per_s=n / seconds if seconds > 0 else 0.0,
               batch_rows=float(largest), data_wait_fraction=waited / seconds if seconds > 0 else 0.0)
    return out


def _micro_batches(batch: Batch, rows: int, pieces: int) -> list[tuple[Batch, int]]:
    """``batch`` cut along its rows into ``pieces`` slices (views), with their row counts."""
    if pieces <= 1:
        return [(batch, rows)]
    bounds = [round(i * rows / pieces) for i in range(pieces + 1)]
    return [({k: v[a:b] for k, v in batch.items()}, b - a) for a, b in zip(bounds, bounds[1:]) if b > a]


@torch.no_grad()
def precompute(model: nn.Module, batches: Iterable[Batch], task: str, keep: Iterable[str]) -> Batch:
    """One pass of the model's frozen prefix over ``batches`` (``model.precompute(batch, task)``, eval mode).

    Args:
        model: a model with ``precompute`` for ``task`` (one of its ``CACHEABLE_TASKS``).
        keep: batch columns carried into the cache as they are: the loss's targets (the model's
            ``target_names(task)``; STSP-Net's lift reads the 3D joints, not the heatmaps, which would take
            ~100 KB per demo tube and ~1.7 MB per paper-scale tube).

    Returns:
        every column, the batches concatenated along the first axis (empty for no batches).
    """
    was_training = model.training
    model.eval()
    keep = tuple(keep)
    cache = collect_batches(model.precompute(batch, task) | {k: batch[k] for k in keep if k in batch}
                            for batch in batches)
    model.train(was_training)
    return cache


def collect_batches(batches: Iterable[Batch]) -> Batch:
    """Every batch of ``batches`` concatenated along the rows, column by column: a cache for :func:`cached_batches`."""
    parts: dict[str, list[torch.Tensor]] = {}
    for batch in batches:
        for k, v in batch.items():
            parts.setdefault(k, []).append(v.detach())
    return {k: torch.cat(v) for k, v in parts.items()}


def cached_batches(cache: Batch, batch_size: int, seed: int | None) -> Iterable[Batch]:
    """Batches of a :func:`precompute` cache, in a random order drawn from ``seed`` (None: in order); every row
    once, only the last batch short."""
    n = len(next(iter(cache.values()))) if cache else 0
    order = torch.arange(n) if seed is None else torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    for i in range(0, n, batch_size):
        rows = order[i : i + batch_size]
        yield {k: v[rows] for k, v in cache.items()}


@torch.no_grad()
def validate(model: nn.Module, batches: Iterable[Batch], eval_fn: EvalFn, counted: Iterable[str] = ()
             ) -> dict[str, float]:
    """Mean losses over ``batches`` in eval mode, prefixed ``val_``, and the counts of the ``counted`` metrics.

    A counted metric (PCKh: correct over labelled joints) is a ratio of sums, not a mean of per-batch values:
    its pooled ``hits`` and ``total`` are returned per validation sample as ``val_<name>_hits`` and
    ``val_<name>_total`` (zero without batches, so every worker reports the same keys), so that the
    sample-weighted mean across workers that :func:`fit` takes of every value gives Σhits / N and Σtotal / N,
    whose ratio (:func:`finish_counts`) is the metric over all workers' samples.
    """
    model.eval()
    totals: dict[str, float] = {}
    counts = {name: [0.0, 0.0] for name in counted}
    n = 0
    for batch in batches:
        bs = next(iter(batch.values())).shape[0]
        losses, batch_counts = eval_fn(model, batch)
        for k, v in losses.items():
            totals[k] = totals.get(k, 0.0) + float(v) * bs
        for name, (hits, total) in batch_counts.items():
            if name in counts:
                counts[name][0] += float(hits)
                counts[name][1] += float(total)
        n += bs
    out = {f"val_{k}": v / max(n, 1) for k, v in totals.items()}
    for name, (hits, total) in counts.items():
        out[f"val_{name}_hits"], out[f"val_{name}_total"] = hits / max(n, 1), total / max(n, 1)
    return out | {"val_samples": float(n)}


def finish_counts(metrics: dict[str, float], counted: Iterable[str]) -> dict[str, float]:
    """``val_<name>`` = hits / total for each counted metric (NaN where nothing was counted), its two
    partial sums dropped."""
    out = dict(metrics)
    for name in counted:
        hits, total = out.pop(f"val_{name}_hits", 0.0), out.pop(f"val_{name}_total", 0.0)
        out[f"val_{name}"] = hits / total if total > 0 else float("nan")
    return out


def score(metrics: dict[str, float], metric: str, mode: str = "min") -> float:
    """An epoch's value of the stage metric; where the epoch has no such metric (no val split), the training
    ``loss``, negated when the metric is maximised (so that the best epoch is still the lowest loss)."""
    if metric in metrics:
        return metrics[metric]
    loss = metrics.get("loss", float("nan"))
    return -loss if mode == "max" else loss


def best_epoch(history: list[dict[str, float]], metric: str, mode: str) -> int | None:
    """The best epoch of a stage's history by its metric (ties: the earlier epoch); None for no history."""
    scored = [(score(h, metric, mode), int(h["epoch"])) for h in history]
    scored = [(v, e) for v, e in scored if v == v]  # NaN never wins
    if not scored:
        return None
    return (min if mode == "min" else max)(scored, key=lambda v: v[0])[1]


@dataclass
class Progress:
    """Where a stage's epoch loop stands: saved with every checkpoint, restored on resume."""

    metric: str
    mode: str  # min | max
    patience: int | None = None  # early stopping: epochs without improvement before stopping
    epoch: int = 0  # the next epoch to run
    best: float | None = None
    since_best: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    def record(self, metrics: dict[str, float]) -> float:
        """Add an epoch's metrics; returns its score."""
        value = score(metrics, self.metric, self.mode)
        improved = self.best is None or (value < self.best if self.mode == "min" else value > self.best)
        self.best, self.since_best = (value, 0) if improved else (self.best, self.since_best + 1)
        self.history.append(metrics)
        self.epoch = int(metrics["epoch"]) + 1
        return value

    @property
    def stopped(self) -> bool:
        return self.patience is not None and self.since_best >= self.patience


def identity_mean(values: dict[str, float], weight: float) -> dict[str, float]:
    return values


def fit(
    model: nn.Module,
    stage: StageSpec,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    batches: Callable[[str, int], Iterable[Batch] | None],
    loss_fn: LossFn,
    progress: Progress,
    on_epoch: Callable[[dict[str, float]], None],
    *,
    frozen: list[nn.Module] | None = None,
    mean: Callable[[dict[str, float], float], dict[str, float]] = identity_mean,
    workers: int = 1,
    eval_fn: EvalFn | None = None,
    counted: tuple[str, ...] = (),
) -> Progress:
    """Train from ``progress.epoch`` to ``stage.epochs`` (or until early stopping), validating every epoch.

    Args:
        batches: ``(split, epoch) -> batches`` for ``"train"`` (shuffled by the caller) and ``"val"``
            (None: no validation split).
        progress: the loop's state, updated in place (fresh, or restored from a checkpoint).
        on_epoch: called with each epoch's metrics after ``progress`` has recorded them (checkpoint, report).
        mean: the sample-weighted mean of per-worker metrics across workers (identity for one process).
        workers: how many processes train in parallel (the reported ``samples_per_s`` is their sum).
        eval_fn: one validation batch's losses and metric counts (default: ``loss_fn``'s losses, no counts).
        counted: the names of the counted metrics ``eval_fn`` returns (``"pckh"`` -> ``val_pckh`` every epoch,
            beside the losses; see :func:`validate`).

    Returns:
        ``progress``, at the end of training.
    """
    amp = stage.amp == "bf16"
    device_type = next(model.parameters()).device.type  # cuda, or cpu (autocast where the CPU has native bf16)
    eval_fn = eval_fn or (lambda m, b: (loss_fn(m, b), {}))
    for epoch in range(progress.epoch, stage.epochs):
        if progress.stopped:
            break
        if STOP.is_set():  # also between epochs: after Ray shuts down an epoch may yield no batch to check at
            raise StageInterrupted(f"interrupted before epoch {epoch + 1}")
        t0 = time.perf_counter()
        try:
            train = train_epoch(model, batches("train", epoch), optimizer, loss_fn, stage.grad_clip, amp, frozen,
                                device_type=device_type, accumulate=stage.accumulate)
        except NonFiniteLoss as e:
            kept = (f"the checkpoint of epoch {progress.epoch} is kept" if progress.epoch else
                    "no checkpoint was written")
            raise TrainingError(f"the training loss is not finite ({e.value}) at epoch {epoch + 1}, step {e.step} "
                                f"(lr {optimizer.param_groups[0]['lr']:g}): training stopped; {kept}. "
                                "Lower optimizer.lr, set grad_clip, or check the data") from None
        if STOP.is_set():
            raise StageInterrupted(f"interrupted in epoch {epoch + 1}")
        train = mean(train, train.pop("samples"))
        val_batches = batches("val", epoch)
        val = validate(model, val_batches, eval_fn, counted) if val_batches is not None else {}
        n_val = val.pop("val_samples", 0.0)
        val = finish_counts(mean(val, n_val), counted) if val else {}
        metrics = {"epoch": epoch, **train, **val, "lr": optimizer.param_groups[0]["lr"],
                   "epoch_time_s": time.perf_counter() - t0}
        metrics["samples_per_s"] = train.get("samples_per_s", 0.0) * workers
        step_scheduler(scheduler, progress.record(metrics))
        on_epoch(metrics)
    return progress
