"""One training stage as one Ray Train ``TorchTrainer`` job (SPEC §6).

The worker function is a thin adapter around :mod:`sportpose.training.loop`: it rebuilds the spec
from the plain dict it was handed, builds the model, resumes from Ray Train's latest checkpoint (after a
worker failure or on ``--resume``) or starts from the checkpoints of the stages it depends on, then runs
``setup -> train -> cleanup``. Every epoch, every rank reports its metrics and rank 0 attaches the checkpoint
(model, optimiser, scheduler, epoch, RNG state, config hash); rank 0 alone logs to MLflow. A split whose rows
exist (cut once into the object store, or prepared Parquet) reaches the workers as a direct feed: each reads its
equal share itself (:mod:`sportpose.data.feed`), with no Ray Data execution per epoch; others come through
Ray Train's dataset shards.

``scaling.num_workers: 0`` is Ray Train local mode (for debugging and tiny runs): the worker function runs in
the driver process with the same ray.train APIs, without starting worker actors. In Ray 2.60 local mode keeps
only the last reported checkpoint object and persists nothing (``Result.path`` is None, no best checkpoint,
no resume), and its train context is one global of the process. So in local mode the worker writes every
epoch's checkpoint itself to ``<storage>/<run name>/epoch_NNNN/`` (the layout Ray Train uses), the best one is
picked from the epochs' metrics, a rerun continues from the latest epoch written (a finished stage starts no
training at all), and local-mode stages of one process take turns (:data:`_LOCAL_MODE_LOCK`).
"""

from __future__ import annotations

import json
import logging
import os
import random
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import ray
import ray.train
import torch
import torch.distributed as dist
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from ray.train.torch import TorchTrainer

from sportpose.data.feed import DirectFeed, FeedShard, direct_feed
from sportpose.errors import DataError, SpecError, TrainingError, os_problem
from sportpose.models.heatmaps import PCKH_COLUMNS
from sportpose.spec.experiment import ExperimentSpec, spec_from_dict, spec_hash, spec_to_dict
from sportpose.training import checkpoints, loop

_LOCAL_MODE_LOCK = threading.Lock()  # Ray Train local mode's context is process-global: one local fit at a time
# Columns a loss or a validation metric may read (PCKh: keypoints, head_size, affine); models name their inputs with
# input_names(task). Only these are turned into tensors.
TARGET_COLUMNS = ("heatmaps", "target_weight", "joints_3d", "bone_lengths", *PCKH_COLUMNS)


@dataclass
class StageResult:
    """What a finished stage hands to the next one and to MLflow."""

    name: str
    checkpoint: str  # directory of the best checkpoint (by the stage metric)
    metrics: dict[str, float]  # metrics of that checkpoint's epoch
    history: list[dict[str, float]] = field(default_factory=list)  # every epoch's reported metrics
    run_path: str = ""  # Ray Train's run folder
    seconds: float = 0.0


def checkpoint_uri(checkpoint: ray.train.Checkpoint) -> str:
    """A checkpoint's location as a path (local storage) or a URI with its scheme (shared storage)."""
    scheme = getattr(checkpoint.filesystem, "type_name", "local")
    return checkpoint.path if scheme == "local" else f"{scheme}://{checkpoint.path}"


def _to_tensors(batch: dict[str, np.ndarray], columns: tuple[str, ...]) -> dict[str, torch.Tensor]:
    # Ray hands out read-only views of its object store; torch wants writable memory.
    return {c: torch.from_numpy(np.array(batch[c])) for c in columns if c in batch}


def _on_device(batches: Iterable[dict[str, torch.Tensor]], device: torch.device):
    """``batches`` with every tensor on ``device`` (the worker's GPU); as they are on the CPU."""
    if device.type == "cpu":
        yield from batches
        return
    for batch in batches:
        yield {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def shard_batches(shard: Any, columns: tuple[str, ...], batch_size: int, shuffle_buffer: int | None,
                  seed: int) -> Any:
    """Tensor batches of a worker's dataset shard, drawn at random from ``shuffle_buffer`` rows (None: in order).

    The buffer holds rows (views of Ray's blocks) and each batch stacks only its own rows: with Ray Data's
    ``local_shuffle_buffer_size`` instead, STSP-Net's demo lift stage ran at about half the samples per
    second. Every row is yielded exactly once per pass; only the last batch may be short.
    """
    if isinstance(shard, FeedShard):  # a direct feed: its pieces in an order drawn per epoch when shuffling
        it = shard.iter_batches(batch_size, seed=seed if shuffle_buffer else None)
    else:
        it = shard.iter_batches(batch_size=batch_size, batch_format="numpy", drop_last=False)
    if not shuffle_buffer:
        for b in it:
            yield _to_tensors(b, columns)
        return
    rng = np.random.default_rng(seed)
    pool: list[dict[str, np.ndarray]] = []

    def take() -> dict[str, torch.Tensor]:
        picks = sorted(rng.choice(len(pool), size=min(batch_size, len(pool)), replace=False).tolist(), reverse=True)
        rows = [pool[i] for i in picks]
        for i in picks:  # swap-remove, highest index first: the last row is never a pick still to remove
            pool[i] = pool[-1]
            pool.pop()
        return {c: torch.from_numpy(np.stack([r[c] for r in rows])) for c in rows[0]}

    for b in it:
        kept = [c for c in columns if c in b]
        n = len(b[kept[0]]) if kept else 0
        pool.extend({c: b[c][i] for c in kept} for i in range(n))
        while len(pool) >= shuffle_buffer:
            yield take()
    while pool:
        yield take()


class AllreduceClock:
    """A DDP communication hook that all-reduces each gradient bucket as DDP's default does (the mean over
    the workers) and times it: from the bucket's launch (when its last gradient is ready) to the end of its
    all-reduce. The per-step figure is the sum over the step's buckets; where buckets overlap each other or
    the rest of the backward pass, it exceeds the time the step waits for them."""

    def __init__(self):
        self.seconds = 0.0
        self.steps = 0
        self.buckets = 0
        self._lap = (0.0, 0, 0)

    def hook(self, state, bucket):  # no annotations: DDP checks them against its classes, and here they are strings
        start = time.perf_counter()
        if bucket.index() == 0:
            self.steps += 1
        self.buckets += 1
        world = dist.get_world_size()
        future = dist.all_reduce(bucket.buffer().div_(world), async_op=True).get_future()

        def done(f: torch.futures.Future) -> torch.Tensor:
            self.seconds += time.perf_counter() - start
            return f.value()[0]

        return future.then(done)

    def lap(self) -> tuple[float, float]:
        """Milliseconds of all-reduce per step and buckets per step since the last lap."""
        seconds, steps, buckets = (self.seconds - self._lap[0], self.steps - self._lap[1],
                                   self.buckets - self._lap[2])
        self._lap = (self.seconds, self.steps, self.buckets)
        return (1000.0 * seconds / steps, buckets / steps) if steps else (0.0, 0.0)


def _allreduce_mean(values: dict[str, float], weight: float) -> dict[str, float]:
    """Sample-weighted mean of per-rank metrics across the worker group."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] * weight for k in keys] + [weight], dtype=torch.float64)
    dist.all_reduce(t)
    total = t[-1].item()
    return {k: (t[i].item() / total if total else 0.0) for i, k in enumerate(keys)}


def stage_weights(uri: str) -> dict[str, torch.Tensor]:
    """The model state dict of a stage checkpoint (a local path or a URI of Ray Train's storage)."""
    with ray.train.Checkpoint(uri).as_directory() as d:
        return checkpoints.load(d)["model"]


def prepare_stage_model(spec: ExperimentSpec, stage_name: str, init: list[dict[str, Any]]) -> tuple[torch.nn.Module, list[str]]:
    """Build the stage's model, load the modules handed on by earlier stages, and freeze what stays fixed.

    Frozen: everything outside the task's ``trainable_prefixes``, the stage's ``freeze`` prefixes, and the
    model's ``freeze_prefixes(freeze_layers)``. Runs on the driver first (to check the hand-off before a
    job starts) and then on every worker.

    Args:
        init: ``[{"stage": name, "uri": checkpoint, "prefixes": [...]}]`` from :func:`plan_init`.

    Returns:
        the model and the names of its frozen parameters.

    Raises:
        SpecError: a module is missing from a checkpoint or mismatched (naming both), or a freeze prefix
            matches nothing.
    """
    stage = spec.train.stages[stage_name]
    model = spec.build_model(pretrained=True)  # the model.*pretrained files; earlier stages' modules load over them
    for item in init:
        loop.load_modules(model, stage_weights(item["uri"]), item["prefixes"], item["stage"],
                          f"train.stages.{stage_name}.load.{item['stage']}")
    frozen = loop.freeze_outside(model, model.trainable_prefixes(stage.task))
    try:
        frozen += loop.freeze_modules(model, stage.freeze)
        if stage.freeze_layers:
            frozen += loop.freeze_modules(model, model.freeze_prefixes(stage.freeze_layers))
    except SpecError as e:
        raise e.within(f"train.stages.{stage_name}") from None
    return model, sorted(set(frozen))


def plan_init(spec: ExperimentSpec, stage_name: str, checkpoints: dict[str, str]) -> list[dict[str, Any]]:
    """What a stage loads from the stages it comes after (SPEC §6): explicit ``load`` or, per source
    stage, the modules that stage trained (``trainable_prefixes`` of its task)."""
    stage = spec.train.stages[stage_name]
    probe = spec.build_model()
    init = []
    for source in stage.after:
        prefixes = stage.load.get(source)
        if prefixes is None:
            prefixes = probe.trainable_prefixes(spec.train.stages[source].task)
        init.append({"stage": source, "uri": checkpoints[source], "prefixes": list(prefixes)})
    return init


def _quiet_report_log() -> None:
    """Ray Train 2.60 logs every ``report`` (the whole metrics dict and checkpoint path) at INFO under a logger
    named by its source file's path, not under ``ray.train``: one screenful per epoch in ``sportpose train`` and
    ``sportpose sweep`` output. Raise that logger to WARNING (a no-op where Ray has moved the module)."""
    try:
        from ray.train.v2._internal.execution import context as train_context
    except ImportError:
        return
    logging.getLogger(train_context.__file__).setLevel(logging.WARNING)


def worker_loop(config: dict[str, Any]) -> None:
    """The Ray Train worker function: setup -> train (:func:`loop.fit`) -> cleanup."""
    spec = spec_from_dict(config["spec"])
    stage_name = config["stage"]
    stage = spec.train.stages[stage_name]
    if config.get("quiet", True):  # per-report INFO lines from Ray Train's internals drown the epoch lines
        logging.getLogger("ray.train").setLevel(logging.WARNING)
        _quiet_report_log()
    torch.set_num_threads(stage.scaling.torch_threads)
    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()

    # setup
    torch.manual_seed(spec.seed + rank)
    np.random.seed(spec.seed + rank)
    random.seed(spec.seed + rank)
    model, frozen_names = prepare_stage_model(spec, stage_name, config.get("init", []))
    device = ray.train.torch.get_device()  # this worker's GPU under use_gpu, else the CPU
    model.to(device)  # before the optimizer and any resumed state, which then follow the parameters' device
    optimizer = loop.build_optimizer(model, stage.optimizer)
    scheduler = loop.build_scheduler(optimizer, stage.schedule, stage.epochs, stage.mode)
    progress = loop.Progress(stage.metric, stage.mode, stage.early_stopping)
    resumed = ray.train.get_checkpoint()
    local_dir = config.get("local_dir")  # local mode: checkpoints persisted here by this function
    state = None
    if resumed is not None:
        with resumed.as_directory() as d:
            try:
                state = checkpoints.load(d)
            except DataError as e:  # a truncated or corrupt last checkpoint: the newest good epoch before it
                print(f"[{stage_name}] {e}; resuming from the newest good epoch instead", flush=True)
                good = checkpoints.latest_good(Path(resumed.path).parent, log=print)
                if good is None:
                    raise
                state = checkpoints.load(good)
    elif local_dir and checkpoints.epoch_dirs(local_dir):
        good = checkpoints.latest_good(local_dir, log=lambda m: print(f"[{stage_name}] {m}", flush=True))
        if good is None:
            checkpoints.load(checkpoints.epoch_dirs(local_dir)[-1])  # raises, naming the file
        state = checkpoints.load(good)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if rank == 0:
            checkpoints.set_rng_state(state["rng"])
        progress.epoch, progress.best, progress.since_best = state["epoch"] + 1, state["best"], state["since_best"]
        progress.history = json.loads(state["history"])
    clock = None
    if ctx.get_world_size() > 1:
        model = ray.train.torch.prepare_model(model, parallel_strategy_kwargs={
            "find_unused_parameters": False, "bucket_cap_mb": stage.scaling.bucket_cap_mb})
        clock = AllreduceClock()
        model.register_comm_hook(None, clock.hook)
    core = model.module if hasattr(model, "module") else model
    columns = tuple(core.input_names(stage.task)) + TARGET_COLUMNS
    feeds: dict[str, DirectFeed] = config.get("feeds") or {}
    shards = {split: feeds[split].shard(rank, ctx.get_world_size()) if split in feeds  # read by this worker itself
              else ray.train.get_dataset_shard(split) for split in ("train", "val")}  # val may be None
    tracker = _MlflowLogger(config.get("tracking_uri"), config.get("run_id")) if rank == 0 else None

    def loss_fn(m: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return core.loss(m(batch, task=stage.task), batch, task=stage.task)

    task_metric = core.task_metric(stage.task)  # logged every epoch beside the losses (SPEC §6)
    counted = (task_metric.name.removeprefix("val_"),) if task_metric.counted else ()

    def eval_fn(m: torch.nn.Module, batch: dict[str, torch.Tensor]):
        outputs = m(batch, task=stage.task)
        return core.loss(outputs, batch, task=stage.task), core.metric_counts(outputs, batch, task=stage.task)

    rows = stage.worker_batch_size  # this worker's share of the global batch_size (SPEC §6)

    def batches(split: str, epoch: int, shuffle: bool | None = None):
        shuffle = split == "train" if shuffle is None else shuffle
        seed = spec.seed * 1000 + epoch
        if split in caches:  # a cache_samples cache sits on the CPU, a cache_frozen one on the device already
            return _on_device(loop.cached_batches(caches[split], rows, seed if shuffle else None), device)
        if shards[split] is None:
            return None
        buffer = max(4 * rows, spec.data.shuffle_buffer) if shuffle else None
        return _on_device(shard_batches(shards[split], columns, rows, buffer, seed), device)

    # split -> this worker's rows once read: the frozen prefix's outputs (cache_frozen, on the device) or the
    # samples themselves (cache_samples, on the CPU: a whole shard of tubes need not fit in a GPU's memory)
    caches: dict[str, dict[str, torch.Tensor]] = {}
    if stage.cache_frozen or stage.cache_samples:
        t0 = time.perf_counter()
        for split in (s for s in shards if shards[s] is not None):
            caches[split] = (loop.precompute(core, batches(split, 0, shuffle=False), stage.task,
                                             core.target_names(stage.task)) if stage.cache_frozen
                             else loop.collect_batches(shard_batches(shards[split], columns, rows, None, 0)))
        if rank == 0:
            sizes = ", ".join(f"{len(next(iter(c.values()), ()))} {split}" for split, c in caches.items())
            what = ("the frozen model's outputs of this worker's samples" if stage.cache_frozen
                    else "this worker's samples")
            print(f"[{stage_name}] cached {what} ({sizes}) in {time.perf_counter() - t0:.0f}s", flush=True)

    def on_epoch(metrics: dict[str, float]) -> None:
        """Rank 0 writes the checkpoint and logs; every rank reports (Ray Train needs all ranks' reports). A
        checkpoint that cannot be written (a full disk, here or where Ray Train copies it under
        train.storage_path) stops the stage in one line naming the file; the epochs written before are kept."""
        try:
            report_epoch(metrics)
        except OSError as e:
            where = e.filename or "train.storage_path"
            raise TrainingError(f"epoch {int(metrics['epoch'])}: its checkpoint cannot be written: {where}: "
                                f"{os_problem(e)} (the checkpoints of the epochs before are kept; --resume "
                                "continues from them)") from None

    def report_epoch(metrics: dict[str, float]) -> None:
        epoch = int(metrics["epoch"])
        if clock is not None:
            metrics["allreduce_ms_per_step"], metrics["allreduce_buckets"] = clock.lap()
        with tempfile.TemporaryDirectory() as d:
            if local_dir:  # local mode persists nothing itself: write where Ray Train would
                d = os.path.join(local_dir, checkpoints.epoch_dir_name(epoch))
                os.makedirs(d, exist_ok=True)
            checkpoint = None
            if rank == 0:
                checkpoints.save(d, {
                    "model": core.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "epoch": epoch, "best": progress.best,
                    "since_best": progress.since_best, "rng": checkpoints.rng_state(),
                    "config_hash": config["config_hash"], "stage": stage_name, "frozen": frozen_names,
                    "history": json.dumps(progress.history),
                })
                checkpoint = ray.train.Checkpoint.from_directory(d)
                print(f"[{stage_name}] epoch {epoch + 1}/{stage.epochs} " +
                      " ".join(f"{k}={v:.4g}" for k, v in metrics.items()
                               if k in ("loss", "val_loss", stage.metric, "samples_per_s")),
                      flush=True)
                if tracker:
                    tracker.log(metrics, epoch)
            ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=checkpoints.epoch_dir_name(epoch))

    # train
    try:
        loop.fit(model, stage, optimizer, scheduler, batches, loss_fn, progress, on_epoch,
                 frozen=loop.frozen_module_prefixes(core), mean=_allreduce_mean, workers=ctx.get_world_size(),
                 eval_fn=eval_fn, counted=counted)
    except TrainingError as e:
        raise TrainingError(f"stage {stage_name}: {e.message}") from None
    # cleanup: nothing held beyond the process


class _MlflowLogger:
    """Per-epoch metrics to the stage's MLflow run, from rank 0 only."""

    def __init__(self, uri: str | None, run_id: str | None):
        self.client = None
        if uri and run_id:
            self.client, self.run_id = MlflowClient(uri), run_id

    def log(self, metrics: dict[str, float], step: int) -> None:
        if self.client is None:
            return

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])


def run_stage(
    spec: ExperimentSpec,
    stage_name: str,
    datasets: dict[str, ray.data.Dataset],
    *,
    run_name: str,
    tracking_uri: str | None = None,
    run_id: str | None = None,
    init: list[dict[str, Any]] | None = None,
    callbacks: list[Any] | None = None,
) -> StageResult:
    """Fit one stage with Ray Train and return its best checkpoint.

    A second call with the same ``run_name`` and storage resumes from the latest checkpoint (Ray Train V2),
    so a finished stage trains no further epochs.
    """
    stage = spec.train.stages[stage_name]
    storage = checkpoints.storage_root(spec.train.storage_path)
    resources = {"CPU": stage.scaling.cpus_per_worker}
    if stage.scaling.use_gpu:
        resources["GPU"] = stage.scaling.gpus_per_worker
    local_dir = os.path.join(storage, run_name) if stage.scaling.num_workers == 0 else None
    # Splits whose rows exist are read by the workers themselves (sportpose.data.feed), the rest by Ray Data.
    feeds = {split: feed for split, ds in datasets.items()
             if spec.data.feed == "direct" and (feed := direct_feed(ds)) is not None}
    if local_dir and "://" in local_dir:
        raise SpecError(f"train.stages.{stage_name}.scaling.num_workers",
                        f"0 (Ray Train local mode) writes checkpoints to a local folder, not {storage}")
    trainer = TorchTrainer(
        worker_loop,
        train_loop_config={
            "spec": spec_to_dict(spec), "stage": stage_name, "config_hash": spec_hash(spec),
            "tracking_uri": tracking_uri, "run_id": run_id, "init": init or [], "local_dir": local_dir,
            "feeds": feeds,
        },
        scaling_config=ray.train.ScalingConfig(num_workers=stage.scaling.num_workers, use_gpu=stage.scaling.use_gpu,
                                               resources_per_worker=resources),
        datasets={split: ds for split, ds in datasets.items() if split not in feeds},
        run_config=ray.train.RunConfig(
            name=run_name,
            storage_path=storage,
            failure_config=ray.train.FailureConfig(max_failures=stage.max_failures),
            logging_config=ray.train.LoggingConfig(log_level="WARNING"),
            callbacks=callbacks,  # e.g. Tune's TuneReportCallback when the stage runs inside a sweep trial
            checkpoint_config=ray.train.CheckpointConfig(
                num_to_keep=None, checkpoint_score_attribute=stage.metric, checkpoint_score_order=stage.mode),
        ),
    )
    start = time.perf_counter()
    if stage.scaling.num_workers == 0:
        return _fit_local(trainer, spec, stage_name, os.path.join(storage, run_name), start)
    result = trainer.fit()
    if result.error:
        raise _plain(result.error)
    best = result.get_best_checkpoint(stage.metric, stage.mode) or result.checkpoint
    metrics = next((m for c, m in result.best_checkpoints or [] if c.path == best.path), result.metrics or {})
    with result.checkpoint.as_directory() as d:
        history = json.loads(checkpoints.load(d)["history"])
    return StageResult(name=stage_name, checkpoint=checkpoint_uri(best), metrics=dict(metrics), history=history,
                       run_path=str(result.path), seconds=time.perf_counter() - start)


def _plain(error: BaseException) -> BaseException:
    """A worker's :class:`TrainingError` as itself (one line naming stage, epoch and step), not inside Ray's
    worker-group error; any other error as Ray raised it."""
    failures = getattr(error, "worker_failures", None) or {}
    for failure in [*failures.values(), error.__cause__, error]:
        while failure is not None:
            if isinstance(failure, TrainingError):
                return failure
            failure = failure.__cause__
    return error


def _good_epochs(run_dir: str) -> list[Path]:
    """The epoch folders whose checkpoint verifies, oldest first; each one that does not is said and passed over."""
    good = []
    for folder in checkpoints.epoch_dirs(run_dir):
        try:
            checkpoints.verify(folder)
            good.append(folder)
        except DataError as e:
            print(f"checkpoint {e.path}: {e.message}; passed over", flush=True)
    return good


def _fit_local(trainer: TorchTrainer, spec: ExperimentSpec, stage_name: str, run_dir: str,
               start: float) -> StageResult:
    """Ray Train local mode: fit in this process (unless the stage finished earlier), then pick the best epoch
    checkpoint from the epochs' own metrics, as ``Result.get_best_checkpoint`` does for worker runs."""
    stage = spec.train.stages[stage_name]
    epochs = _good_epochs(run_dir)
    last = checkpoints.load(epochs[-1]) if epochs else None
    history = json.loads(last["history"]) if last else []
    finished = bool(history) and (len(history) >= stage.epochs or (
        stage.early_stopping is not None and last["since_best"] >= stage.early_stopping))
    if not finished:
        with _LOCAL_MODE_LOCK:
            result = trainer.fit()
        if result.error:
            raise _plain(result.error)
        epochs = _good_epochs(run_dir)
        history = json.loads(checkpoints.load(epochs[-1])["history"])
    by_epoch = {int(m["epoch"]): m for m in history}
    chosen = loop.best_epoch([by_epoch[checkpoints.epoch_of(p)] for p in epochs if checkpoints.epoch_of(p) in by_epoch],
                             stage.metric, stage.mode)
    best = next((p for p in epochs if checkpoints.epoch_of(p) == chosen), epochs[-1])
    return StageResult(name=stage_name, checkpoint=str(best), metrics=dict(by_epoch.get(checkpoints.epoch_of(best), {})),
                       history=history, run_path=run_dir, seconds=time.perf_counter() - start)
