"""One round of a sweep's trials on Ray Tune: the Tuner with Optuna's TPE and ASHA, the trainables, and the
callbacks between Ray Train, Tune and the book of trials (SPEC §8).

Decisions, and why:

- **Kinds.** ``train``: a trial is a driver function on Ray Tune that builds the trial's spec (base + fixed
  overrides + the trial's values) and runs its stages on the stage engine (one Ray Train job per stage,
  ``run_stage``) with a Train callback that forwards every epoch's report to Tune through Tune's
  ``TuneReportCallback``. ``fusion_weights``: a trial scores late-fusion weights on a stream cache (per-stream
  validation heatmaps of a trained MultiStream, ``streams/val_streams.npz``) by PoseTrack Total AP (``map``,
  %); nothing trains, so a trial costs a decode and an AP evaluation.
- **ASHA's time** is the trial's cumulative epoch, ``trial_epoch`` (1-based, summed over the trial's stages in
  order), reported with every epoch. Rungs: ``grace_period``, ``grace_period·rf``, ... up to ``max_epochs``
  (default: the epochs of the trial's stages). Ray's ``training_iteration`` would restart at 1 when an
  interrupted trial resumes mid-stage; ``trial_epoch`` does not.
- **The searcher** is Ray's ``OptunaSearch`` on the sweep's stored study, with a define-by-run space
  (:class:`_Suggest`) and the study's objective named by the sweep's metric. A simplex's weights are Optuna
  parameters under their column names (``w_s``, ``w_t``, ``w_c``), so optuna-dashboard shows what the sweep's
  own plots show: :class:`SimplexTPE` draws TPE's random start-up points uniformly on the simplex and projects
  TPE's later proposals onto it (their sum scaled to 1). TPE is reseeded with the number of finished trials
  (so a resumed round does not replay the first round's random start-up draws) and sees every finished trial
  in the study; ASHA's rungs are refilled from the finished trials' epochs.
- **Data** for ``train`` sweeps is cut once in the driver and shared by every trial unless the space touches
  ``data.*`` or ``seed``; then each trial cuts its own splits.
- **Checkpoints and caches** of what the trials do not train (``init_from``, ``cache``) are resolved in the
  driver before the round: folders, MLflow run ids, ``runs:/`` and ``models:/`` URIs, or ``latest``.
"""

from __future__ import annotations

import logging
import os
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import mlflow
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from ray import tune
from ray.data import DataContext
from ray.train.v2.api.callback import UserCallback
from ray.tune.integration.ray_train import TuneReportCallback
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from sportpose.data.dataset import build_split, load_clips
from sportpose.errors import SpecError
from sportpose.evaluation.evaluate2d import (
    STREAM_KEYS,
    Predictions2D,
    ground_truth_for,
    load_stream_cache,
    to_videos,
    with_heatmaps,
)
from sportpose.evaluation.metrics import posetrack_ap
from sportpose.models.skeleton import JOINT_SETS, JointSet
from sportpose.pipelines.sweep.book import TIME_ATTR, TrialBook
from sportpose.pipelines.train import prepare_data
from sportpose.registry import tracking
from sportpose.spec.experiment import ExperimentSpec
from sportpose.spec.sweep import (
    FUSION_KEY,
    FUSION_METRIC,
    Sweep,
    SweepSpec,
    param_columns,
    param_keys,
    simplex_point,
    trial_overrides,
    trial_spec,
)
from sportpose.training import checkpoints
from sportpose.training.stage import plan_init, run_stage

CACHE_ARTIFACT = "streams/val_streams.npz"
RUN_ID = re.compile(r"[0-9a-f]{32}")


# -- the round ------------------------------------------------------------------------------------------------


def run_round(sweep: Sweep, book: TrialBook, study: optuna.Study, rdb: Any, remaining: int, round_: int,
              run_prefix: str, out: Path, log: Callable[[str], None]) -> None:
    """One Tuner: OptunaSearch on the stored study, ASHA for training trials, the book as a callback."""
    spec = sweep.spec
    for name in ("ray.tune.tune", "ray.tune.analysis.experiment_analysis"):
        logging.getLogger(name).addFilter(_hide_tune_hints)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # no progress tables: the book logs one line per trial
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # the book and MLflow keep the results
    seed = spec.seed + len(book.finished())  # a resumed round does not replay the first one's random draws
    startup = max(2, min(10, spec.trials // 4))  # random trials before TPE models the results
    sampler = SimplexTPE(simplex_groups(spec), seed=seed, n_startup_trials=startup)
    searcher = OptunaSearch(_Suggest(spec), metric=spec.metric, mode=spec.mode, sampler=sampler,
                            study_name=spec.name, storage=rdb)
    scheduler = None
    if spec.kind == "train" and spec.asha.enabled:
        scheduler = _RecordingASHA(book.asha_stopped, time_attr=TIME_ATTR, metric=spec.metric, mode=spec.mode,
                                   max_t=sweep.max_epochs, grace_period=spec.asha.grace_period,
                                   reduction_factor=spec.asha.reduction_factor)
        _seed_asha(scheduler, book)
    if spec.kind == "fusion_weights":
        cache = load_fusion_cache(resolve_cache(sweep, out), sweep.base.data.joint_set)
        log(f"stream cache: {cache.path} ({cache.samples} validation samples)")
        trainable = tune.with_parameters(_fusion_trial, context={"spec": spec, "cache": cache})
    else:
        init = resolve_init(sweep)
        datasets = None
        shared = not any(k == "seed" or k.startswith("data.") for n, p in spec.space.items() for k in param_keys(n, p))
        prepare_data(sweep.base, log)
        if shared:
            datasets = _cut_splits(sweep.base)
            log("data: train/val cut once, shared by every trial")
        trainable = tune.with_parameters(_train_trial, context={"sweep": sweep, "datasets": datasets, "init": init,
                                                                "run_prefix": run_prefix})
    storage_path = checkpoints.storage_root(sweep.base.train.storage_path)
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}),
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=remaining,
                                    max_concurrent_trials=spec.concurrency,
                                    reuse_actors=spec.kind == "fusion_weights"),
        run_config=tune.RunConfig(name=f"{run_prefix}-r{round_}", storage_path=storage_path, verbose=0,
                                  callbacks=[_Recorder(book)], failure_config=tune.FailureConfig(max_failures=0)),
    )
    tuner.fit()


def _hide_tune_hints(record: logging.LogRecord) -> bool:
    """Tune's messages that do not apply to a sweep: ``Tuner.restore`` (a sweep resumes with ``--resume``), and
    the per-trial result files its result grid looks for (a sweep keeps results in its book and in MLflow and
    turns Tune's per-trial loggers off)."""
    message = record.getMessage()
    return "Tuner.restore" not in message and "Failed to fetch metrics" not in message


# -- search space -------------------------------------------------------------------------------------------


def search_space(spec: SweepSpec) -> dict[str, BaseDistribution]:
    """The space as Optuna distributions; a simplex of n weights is n-1 coordinates in [0, 1]."""
    out: dict[str, BaseDistribution] = {}
    for name, p in spec.space.items():
        if p.kind == "uniform":
            out[name] = FloatDistribution(p.low, p.high)
        elif p.kind == "loguniform":
            out[name] = FloatDistribution(p.low, p.high, log=True)
        elif p.kind == "int":
            out[name] = IntDistribution(int(p.low), int(p.high), step=p.step)
        elif p.kind == "choice":
            out[name] = CategoricalDistribution(list(p.values))
        else:
            for column in param_columns(name, p):
                out[column] = FloatDistribution(0.0, 1.0)
    return out


def simplex_groups(spec: SweepSpec) -> list[tuple[str, ...]]:
    """The Optuna parameters of each simplex of the space (its columns)."""
    return [param_columns(name, p) for name, p in spec.space.items() if p.kind == "simplex"]


class SimplexTPE(optuna.samplers.BaseSampler):
    """Multivariate TPE whose simplex parameters (each in [0, 1]) always lie on their simplex.

    Start-up (and any independently sampled) points of a simplex are drawn uniformly on it, all its weights at
    once (:func:`~sportpose.spec.sweep.simplex_point`); TPE's relative proposals, which it draws from kernels
    around finished trials that lie on the simplex, are scaled to sum 1. Everything else is TPE's.
    """

    def __init__(self, groups: Sequence[tuple[str, ...]], seed: int | None = None, n_startup_trials: int = 10):
        self._tpe = optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials, multivariate=True)
        self._groups = [tuple(g) for g in groups]
        self._rng = random.Random(seed)
        self._drawn: dict[tuple[int, int], dict[str, float]] = {}  # (trial number, group) -> its start-up point

    def reseed_rng(self) -> None:
        self._tpe.reseed_rng()
        self._rng = random.Random()

    def infer_relative_search_space(self, study, trial):
        return self._tpe.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        params = self._tpe.sample_relative(study, trial, search_space)
        for group in self._groups:
            if all(c in params for c in group):
                total = sum(params[c] for c in group)
                weights = [params[c] / total for c in group] if total > 0 else [1.0 / len(group)] * len(group)
                params.update(zip(group, weights))
        return params

    def sample_independent(self, study, trial, param_name, param_distribution):
        for i, group in enumerate(self._groups):
            if param_name in group:
                key = (trial.number, i)
                if key not in self._drawn:
                    u = [self._rng.random() for _ in group[1:]]
                    self._drawn[key] = dict(zip(group, simplex_point(u)))
                return self._drawn[key][param_name]
        return self._tpe.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial):
        self._tpe.before_trial(study, trial)

    def after_trial(self, study, trial, state, values):
        self._tpe.after_trial(study, trial, state, values)


class _Suggest:
    """Optuna define-by-run search space: the sampler draws the distributions (a simplex's weights under their
    column names); a trial that continues an interrupted one learns which from the user attributes its
    enqueued parameters carry. A class, not a closure: Tune pickles it."""

    def __init__(self, spec: SweepSpec):
        self.spec = spec
        self.space = search_space(spec)

    def __call__(self, trial: Any) -> dict[str, Any]:
        for name, d in self.space.items():
            if isinstance(d, FloatDistribution):
                trial.suggest_float(name, d.low, d.high, log=d.log)
            elif isinstance(d, IntDistribution):
                trial.suggest_int(name, d.low, d.high, step=d.step)
            else:
                trial.suggest_categorical(name, d.choices)
        extra = {"_number": trial.number}
        attrs = trial.user_attrs
        if "sportpose.resumes" in attrs:
            extra["_resumes"] = attrs["sportpose.resumes"]
        if "sportpose.resume_run" in attrs:
            extra["_resume_run"] = attrs["sportpose.resume_run"]
        return extra


# -- scheduler and callbacks (in the driver) ---------------------------------------------------------------


class _RecordingASHA(ASHAScheduler):
    """ASHA that remembers which trials it stopped before their last epoch, so the book can tell them from trials
    that ended by themselves (a stage's own early stopping included)."""

    def __init__(self, stopped: set[str], **kwargs: Any):
        super().__init__(**kwargs)
        self.stopped = stopped

    def on_trial_result(self, tune_controller, trial, result):
        action = super().on_trial_result(tune_controller, trial, result)
        if action == self.STOP and result.get(TIME_ATTR, 0) < self._max_t:
            self.stopped.add(trial.trial_id)
        return action


def _seed_asha(scheduler: Any, book: TrialBook) -> None:
    """Refill ASHA's rungs with the finished trials' epochs, so that a resumed round judges its trials against
    them. (Ray 2.60's ASHA keeps its rungs in ``_brackets``; its bracket only reads ``trial.trial_id``.)"""
    spec = book.sweep.spec
    sign = 1.0 if spec.mode == "max" else -1.0
    try:
        bracket = scheduler._brackets[0]  # noqa: SLF001
    except (AttributeError, IndexError):
        return
    for rec in book.finished():
        stand_in = SimpleNamespace(trial_id=rec["trial_id"])
        for h in rec["history"]:
            if h.get(spec.metric) is not None:
                bracket.on_result(stand_in, h[TIME_ATTR], sign * h[spec.metric])


class _Recorder(tune.Callback):
    """Tune's trial events -> the book (in the driver, between Tune's steps)."""

    def __init__(self, book: TrialBook):
        self.book = book

    def __getstate__(self):
        # Tune pickles its callbacks for Tuner.restore, which sweeps do not use (sweep.run: Resume); the book
        # (with its log function) stays in this process.
        return {}

    def on_trial_start(self, iteration, trials, trial, **info):
        self.book.start(trial.trial_id, trial.config)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.book.result(trial.trial_id, result)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.book.complete(trial.trial_id, trial.last_result or {})

    def on_trial_error(self, iteration, trials, trial, **info):
        message = ""
        if trial.error_file and Path(trial.error_file).exists():
            message = Path(trial.error_file).read_text().strip()
        self.book.error(trial.trial_id, message)


# -- trials (on Ray Tune's workers) ---------------------------------------------------------------------------


class _EpochsToTune(UserCallback):
    """Ray Train -> Tune: every epoch's report goes through Tune's ``TuneReportCallback``, with the trial's
    cumulative epoch (ASHA's time) and the stage's name added."""

    def __init__(self, stage: str, offset: int):
        self._tune = TuneReportCallback()
        self._stage = stage
        self._offset = offset

    def after_report(self, run_context, metrics, checkpoint):
        tagged = [{**m, TIME_ATTR: self._offset + int(m.get("epoch", 0)) + 1, "stage": self._stage} for m in metrics]
        self._tune.after_report(run_context, tagged, checkpoint)


def _quiet_trial() -> None:
    logging.getLogger("ray.train").setLevel(logging.WARNING)
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


def _train_trial(config: dict[str, Any], context: dict[str, Any]) -> None:
    """A training trial: the trial's spec, then its stages on the stage engine, each epoch reported to Tune."""
    _quiet_trial()
    sweep: Sweep = context["sweep"]
    trial_id = tune.get_context().get_trial_id()
    try:
        spec = trial_spec(sweep, trial_overrides(sweep.spec, config))
    except SpecError as e:  # Ray copies a trial's exception; SpecError's constructor does not survive that
        raise ValueError(f"trial spec: {e}") from None
    datasets = context["datasets"] or _cut_splits(spec)
    prefix = config.get("_resume_run") or f"{context['run_prefix']}-{trial_id}"
    checkpoints = dict(context["init"])
    offset = 0
    for stage in sweep.stages:
        try:
            init = plan_init(spec, stage, {d: checkpoints[d] for d in spec.train.stages[stage].after})
            result = run_stage(spec, stage, datasets, run_name=f"{prefix}-{stage}", init=init,
                               callbacks=[_EpochsToTune(stage, offset)])
        except SpecError as e:
            raise ValueError(str(e)) from None
        checkpoints[stage] = result.checkpoint
        offset += spec.train.stages[stage].epochs


def _cut_splits(spec: ExperimentSpec) -> dict[str, Any]:
    """The train and val splits of a spec (clips already on disk: the driver prepared them)."""
    clips = load_clips(Path(spec.data.root).resolve(), spec.data.splits, spec.seed)
    return {split: build_split(clips, spec.data, split, spec.seed)[0] for split in ("train", "val")}


@dataclass
class FusionCache:
    """What a fusion-weight trial scores against: per-stream validation heatmaps and their ground truth."""

    predictions: Predictions2D  # with per-stream heatmaps
    ground_truth: list  # PoseTrack18 videos restricted to the cached frames
    joint_set: JointSet
    path: str = ""

    @property
    def samples(self) -> int:
        return len(self.predictions.pred)


def load_fusion_cache(path: str | Path, joint_set_name: str = "posetrack") -> FusionCache:
    """A stream cache (``val_streams.npz``) and the ground truth of its samples."""
    p, clips = load_stream_cache(path)
    return FusionCache(p, ground_truth_for(p, clips), JOINT_SETS[joint_set_name], str(path))


def fusion_ap(cache: FusionCache, weights: Sequence[float]) -> float:
    """PoseTrack Total AP (%) of the late fusion w_s Ŷ_s + w_t Ŷ_t + w_c Ŷ_c on the cached samples."""
    p = cache.predictions
    fused = sum(w * p.streams[k] for w, k in zip(weights, STREAM_KEYS))  # (N, K, h, w)
    return float(posetrack_ap(cache.ground_truth, to_videos(with_heatmaps(p, fused), cache.joint_set))["groups"]["Total"])


def _fusion_trial(config: dict[str, Any], context: dict[str, Any]) -> None:
    spec: SweepSpec = context["spec"]
    weights = trial_overrides(spec, config)[FUSION_KEY]
    tune.report({FUSION_METRIC: fusion_ap(context["cache"], weights), TIME_ATTR: 1})


# -- where checkpoints and caches come from ------------------------------------------------------------------


def _latest_run(experiment: str, filter_string: str) -> Any | None:
    client = tracking.client()
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    runs = client.search_runs([exp.experiment_id], filter_string, order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None


def resolve_init(sweep: Sweep) -> dict[str, str]:
    """Checkpoints of the stages the trials do not train: a folder or URI, an MLflow run id (a stage run, or a
    pipeline run whose child ran that stage), or ``latest`` (the newest finished run of that stage in the base
    spec's MLflow experiment).

    Raises:
        SpecError: naming ``init_from.<stage>``.
    """
    out = {}
    for stage, value in sweep.spec.init_from.items():
        key, file = f"init_from.{stage}", str(sweep.path)
        if value == "latest":
            run = _latest_run(sweep.base.name, f"tags.`sportpose.stage` = '{stage}' and attributes.status = 'FINISHED'")
            if run is None or "sportpose.checkpoint" not in run.data.tags:
                raise SpecError(key, f"no finished run of stage {stage} in MLflow experiment {sweep.base.name!r} "
                                     f"(train the base spec first: sportpose train {sweep.base_path})", file)
            out[stage] = run.data.tags["sportpose.checkpoint"]
        elif RUN_ID.fullmatch(value):
            client = tracking.client()
            run = client.get_run(value)
            if run.data.tags.get("sportpose.checkpoint") and run.data.tags.get("sportpose.stage") == stage:
                out[stage] = run.data.tags["sportpose.checkpoint"]
                continue
            children = client.search_runs([run.info.experiment_id], f"tags.`{tracking.PARENT_TAG}` = '{value}' and "
                                          f"tags.`sportpose.stage` = '{stage}'")
            if not children or "sportpose.checkpoint" not in children[0].data.tags:
                raise SpecError(key, f"MLflow run {value} is neither a run of stage {stage} nor its parent", file)
            out[stage] = children[0].data.tags["sportpose.checkpoint"]
        elif "://" in value:
            out[stage] = value
        else:
            path = Path(value).resolve()
            if not (path / checkpoints.CHECKPOINT_FILE).is_file():
                raise SpecError(key, f"{value} is not a stage checkpoint folder (no {checkpoints.CHECKPOINT_FILE}), an MLflow run id, "
                                     "or latest", file)
            out[stage] = str(path)
    return out


def resolve_cache(sweep: Sweep, out_dir: Path) -> Path:
    """The stream cache of a fusion_weights sweep, as a local file (downloaded from MLflow when needed).

    ``cache``: an .npz path; an MLflow run id or ``runs:/ID``; ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``
    (the version's run); or ``latest``: the newest pipeline run of the base spec's experiment that holds
    ``streams/val_streams.npz`` (every MultiStream training run logs one). A run without the file is searched
    through its child runs.

    Raises:
        SpecError: naming ``cache``.
    """
    value, file = sweep.spec.cache, str(sweep.path)
    client = tracking.client()
    if value.endswith(".npz") or Path(value).is_file():
        if not Path(value).is_file():
            raise SpecError("cache", f"stream cache {value} not found", file)
        return Path(value).resolve()
    if value == "latest":
        exp = client.get_experiment_by_name(sweep.base.name)
        runs = client.search_runs([exp.experiment_id], "tags.`sportpose.kind` = 'pipeline'",
                                  order_by=["attributes.start_time DESC"], max_results=50) if exp else []
        run_id = next((r.info.run_id for r in runs if _has_cache(r.info.run_id)), None)
        if run_id is None:
            raise SpecError("cache", f"no run of MLflow experiment {sweep.base.name!r} holds {CACHE_ARTIFACT} (train the "
                                     f"base spec first: sportpose train {sweep.base_path})", file)
    elif value.startswith("models:/"):
        ref = value[len("models:/"):]
        name, _, version = ref.partition("/")
        name, _, alias = name.partition("@")
        try:
            mv = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
        except Exception as e:  # noqa: BLE001 - MLflow raises its own error types for unknown names
            raise SpecError("cache", f"{value}: {str(e).splitlines()[0]}", file) from None
        run_id = mv.run_id
    elif value.startswith("runs:/") or RUN_ID.fullmatch(value):
        run_id = value[len("runs:/"):].split("/")[0] if value.startswith("runs:/") else value
    else:
        raise SpecError("cache", f"expected an .npz file, an MLflow run id, runs:/ or models:/ URI, or latest; got {value!r}", file)
    holder = run_id if _has_cache(run_id) else None
    if holder is None:
        exp_id = client.get_run(run_id).info.experiment_id
        children = client.search_runs([exp_id], f"tags.`{tracking.PARENT_TAG}` = '{run_id}'")
        holder = next((c.info.run_id for c in children if _has_cache(c.info.run_id)), None)
    if holder is None:
        raise SpecError("cache", f"MLflow run {run_id} (and its child runs) holds no {CACHE_ARTIFACT}", file)
    dst = out_dir / "cache"
    dst.mkdir(parents=True, exist_ok=True)
    return Path(mlflow.artifacts.download_artifacts(run_id=holder, artifact_path=CACHE_ARTIFACT, dst_path=str(dst)))


def _has_cache(run_id: str) -> bool:
    folder = os.path.dirname(CACHE_ARTIFACT)
    try:
        return any(a.path == CACHE_ARTIFACT for a in tracking.client().list_artifacts(run_id, folder))
    except Exception:  # noqa: BLE001 - an unreadable artifact store means: not here
        return False
