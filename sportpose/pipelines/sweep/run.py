"""Hyper-parameter sweeps: Ray Tune with OptunaSearch (TPE, seeded) and ASHA over an experiment spec (SPEC §8).

A sweep spec (YAML, ``experiments/sweeps/``) names a base experiment spec, a search space by dotted keys, the
metric and its direction, the trial budget, concurrency and resources, and ASHA's rungs::

    name: stsp_depth_window_demo
    base: ../stsp_demo.yaml            # experiment spec, relative to this file
    kind: train                        # train | fusion_weights
    overrides: [train.stages.lift.epochs=3]   # fixed -o overrides of the base, for every trial
    space:
      model.gat_layers: {kind: choice, values: [1, 2, 3]}
      tau: {kind: choice, values: [1, 3, 5], keys: [model.tau]}
      train.stages.lift.optimizer.lr: {kind: loguniform, low: 1.0e-4, high: 1.0e-2}
    metric: val_mpjpe_mm
    mode: min
    trials: 8
    concurrency: 1
    resources: {cpu: 0.01}             # the trial's own process; its Ray Train workers take the stage's scaling
    asha: {grace_period: 1, reduction_factor: 2}
    stages: [lift]                     # stages each trial trains (default: all of the base's)
    init_from: {epe: latest}           # checkpoints of the stages it does not train

``sampler: tpe`` (default) lets Optuna's TPE choose; ``sampler: grid`` runs every combination of discrete
parameters once, in an order shuffled by ``seed`` (for small spaces such as GAT depth x τ, where independent
draws would repeat combinations).

Search-space kinds: ``uniform`` and ``loguniform`` (``low``, ``high``), ``int`` (``low``, ``high`` inclusive,
``step``), ``choice`` (``values``: numbers, strings, booleans) and ``simplex`` (``size`` weights >= 0 summing
to 1, e.g. the late-fusion stream weights). A parameter sets its own name as a dotted key, or every key in
``keys`` (``window: {kind: choice, values: [3, 5, 7], keys: [data.window, model.window]}``). Every value a
parameter can take (each choice, the bounds of a range) is checked against the base spec when the sweep is
loaded, so an impossible value (τ >= T, weights not summing to 1) is refused before anything starts, naming
the parameter and the sweep file.

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
  interrupted trial resumes mid-stage; ``trial_epoch`` does not. The value a trial hands to Optuna is its
  *last* reported metric (what ASHA judged it by when it was stopped); the table also shows its best epoch.
- **Simplex.** TPE samples n-1 coordinates u in [0, 1) that a stick-breaking map with Beta(1, n-k) inverse
  CDFs turns into weights on the simplex (:func:`simplex_point`): uniform u give uniformly distributed
  weights, every point is exactly on the simplex (w >= 0, sum 1), and TPE models a box, which it does well.
  The weights are the trial's parameters in MLflow, the table and the plots, and user attributes in Optuna.
- **The Optuna study** lives in an RDB (``storage``; default ``sqlite:///<runs>/optuna.db``, study name = the
  sweep's name): Ray's ``OptunaSearch`` takes an optuna storage, so the searcher itself writes every asked
  and finished trial there (``optuna.load_study`` and optuna-dashboard see them). A new run of a sweep
  replaces the study of the same name; ``--resume`` continues it.
- **Resume** uses the sweep's own book of trials (``runs/sweeps/<name>/trials.json``, written atomically by
  a Tune callback in the driver at every trial start, epoch and end) and the study, not ``Tuner.restore``
  (whose experiment snapshot may lag finished trials by seconds, and which would replay them): finished trials
  (completed, stopped by ASHA, failed) are never rerun and count against ``trials``; an interrupted trial's
  Optuna trial is marked failed and its parameters are enqueued again, and the new trial continues the old
  one's MLflow run and, for ``train``, its Ray Train runs from their latest checkpoints (same run names).
  TPE is reseeded with the number of finished trials (so a resumed round does not replay the first round's
  random start-up draws) and sees every finished trial in the study; ASHA's rungs are refilled from the
  finished trials' epochs.
- **MLflow**: a parent run per sweep (experiment = the base spec's name) and a child run per trial, with the
  trial's values as params, per-epoch metrics (step = ``trial_epoch`` - 1) or the fusion ``map``, its status
  tag, and ``sportpose.best=true`` on the best. All MLflow writes happen in the Tune driver (one writer).
- **Data** for ``train`` sweeps is cut once in the driver and shared by every trial unless the space touches
  ``data.*`` or ``seed``; then each trial cuts its own splits.
- **Outputs** (``runs/sweeps/<name>/``, also artifacts of the parent run under ``sweep/``): ``results.csv`` /
  ``results.parquet``, ``best_spec.yaml`` (the base spec as written, with the fixed overrides and the best
  trial's values, named ``<sweep>-best``: ``sportpose train`` takes it as is), PNG plots and a self-contained
  ``sweep.html`` (:mod:`sportpose.pipelines.sweep.report`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import optuna
import yaml
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from ray import tune
from ray.train.v2.api.callback import UserCallback
from ray.tune.schedulers import ASHAScheduler

from sportpose.paths import runs_dir
from sportpose.errors import SpecError
from sportpose.registry import tracking
from sportpose.spec.experiment import (ExperimentSpec, apply_overrides, load_spec, read_spec_file, spec_hash,
                                       stage_order)
from sportpose.spec.fill import fill, to_dict

PARAM_KINDS = ("uniform", "loguniform", "int", "choice", "simplex")
SIMPLEX_SEP = ":u"  # Optuna names of a simplex's free coordinates: "<name>:u1", "<name>:u2", ...
TIME_ATTR = "trial_epoch"  # ASHA's time: the trial's cumulative epoch (1-based) across its stages
FUSION_METRIC = "map"  # fusion_weights trials report PoseTrack Total AP (%)
FUSION_KEY = "model.fusion_weights"
CACHE_ARTIFACT = "streams/val_streams.npz"
FINISHED = ("completed", "stopped", "error")  # trial statuses that are never rerun
STREAM_COLUMNS = ("w_s", "w_t", "w_c")
RUN_ID = re.compile(r"[0-9a-f]{32}")


# -- the sweep spec ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamSpec:
    """One dimension of the search space; its name in ``space`` is the dotted key it sets unless ``keys``."""

    kind: Literal["uniform", "loguniform", "int", "choice", "simplex"]
    low: float | None = None  # uniform, loguniform (> 0), int: the lower bound
    high: float | None = None  # the upper bound (inclusive for int)
    step: int = 1  # int: spacing of the values from low
    values: tuple[Any, ...] = ()  # choice: the candidates (numbers, strings, booleans)
    keys: tuple[str, ...] = ()  # dotted spec keys set to the value; default: the parameter's name
    size: int = 3  # simplex: number of weights
    names: tuple[str, ...] = ()  # simplex: a column name per weight; default w_s, w_t, w_c for fusion weights

    def __post_init__(self):
        ranged = self.kind in ("uniform", "loguniform", "int")
        if ranged:
            if self.low is None or self.high is None:
                raise SpecError("low" if self.low is None else "high", f"a {self.kind} parameter needs low and high")
            if not self.low < self.high:
                raise SpecError("high", f"must be greater than low = {self.low}, got {self.high}")
            if self.kind == "loguniform" and self.low <= 0:
                raise SpecError("low", f"must be positive for loguniform, got {self.low}")
            if self.kind == "int":
                if self.low != int(self.low) or self.high != int(self.high):
                    raise SpecError("low", f"int bounds must be integers, got {self.low} and {self.high}")
                if self.step < 1 or (self.high - self.low) % self.step:
                    raise SpecError("step", f"must be >= 1 and divide high - low = {self.high - self.low:g}, got {self.step}")
        else:
            for name in ("low", "high"):
                if getattr(self, name) is not None:
                    raise SpecError(name, f"is not used by a {self.kind} parameter")
        if self.kind != "int" and self.step != 1:
            raise SpecError("step", f"is not used by a {self.kind} parameter")
        if self.kind == "choice":
            if not self.values:
                raise SpecError("values", "a choice needs at least one value")
            for v in self.values:
                if v is not None and not isinstance(v, (bool, int, float, str)):
                    raise SpecError("values", f"choices must be numbers, strings or booleans (Optuna stores them), got {v!r}")
            if len({json.dumps(v) for v in self.values}) != len(self.values):
                raise SpecError("values", f"lists a value twice: {list(self.values)}")
        elif self.values:
            raise SpecError("values", f"is not used by a {self.kind} parameter")
        if self.kind == "simplex":
            if self.size < 2:
                raise SpecError("size", f"a simplex needs at least 2 weights, got {self.size}")
            if self.names and len(self.names) != self.size:
                raise SpecError("names", f"expected {self.size} names (one per weight), got {list(self.names)}")
            if len(self.keys) > 1:
                raise SpecError("keys", f"a simplex sets one key to its list of weights, got {list(self.keys)}")
        else:
            if self.size != 3 or self.names:
                raise SpecError("size" if self.size != 3 else "names", f"is not used by a {self.kind} parameter")
        for key in self.keys:
            if not key or not all(part for part in key.split(".")):
                raise SpecError("keys", f"expected dotted spec keys such as model.tau, got {key!r}")


@dataclass(frozen=True)
class AshaSpec:
    """ASHA early stopping of training trials (time: the trial's cumulative epoch)."""

    enabled: bool = True
    grace_period: int = 1  # epochs every trial trains before it can be stopped
    reduction_factor: float = 2.0  # at each rung the best 1/rf continue (Ray's default is 4; 2 suits small sweeps)
    max_epochs: int | None = None  # the last rung; None: the epochs of the trial's stages

    def __post_init__(self):
        if self.grace_period < 1:
            raise SpecError("grace_period", f"must be at least 1 epoch, got {self.grace_period}")
        if self.reduction_factor <= 1:
            raise SpecError("reduction_factor", f"must be greater than 1, got {self.reduction_factor}")
        if self.max_epochs is not None and self.max_epochs < self.grace_period:
            raise SpecError("max_epochs", f"must be at least grace_period = {self.grace_period}, got {self.max_epochs}")


@dataclass(frozen=True)
class TrialResources:
    """What Tune reserves for a trial's own process (Ray Train's workers come from the stage's ``scaling``)."""

    cpu: float = 1.0  # fusion_weights: the evaluation runs here; train: only drives Ray Train (0.01 is enough)
    gpu: float = 0.0

    def __post_init__(self):
        if self.cpu <= 0 or self.gpu < 0:
            raise SpecError("cpu", f"a trial needs a positive share of a CPU (e.g. 0.01) and gpu >= 0, got cpu={self.cpu}")


@dataclass(frozen=True)
class SweepSpec:
    name: str  # MLflow parent run, Optuna study and output folder runs/sweeps/<name>
    base: str  # the experiment spec every trial starts from, relative to the sweep file
    space: dict[str, ParamSpec]
    kind: Literal["train", "fusion_weights"] = "train"
    metric: str | None = None  # default: val_loss (train), map (fusion_weights)
    mode: Literal["min", "max"] | None = None  # default: min (train), max (fusion_weights)
    trials: int = 20
    concurrency: int = 1  # trials running at once
    resources: TrialResources = field(default_factory=TrialResources)
    asha: AshaSpec = field(default_factory=AshaSpec)
    sampler: Literal["tpe", "grid"] = "tpe"  # grid: every combination of discrete values once, in a seeded order
    seed: int = 0  # TPE's seed (and the grid's order)
    overrides: tuple[str, ...] = ()  # fixed -o key=value overrides of the base spec for every trial
    stages: tuple[str, ...] = ()  # stages a trial trains, default all of the base's
    init_from: dict[str, str] = field(default_factory=dict)  # stage -> checkpoint folder | MLflow run id | latest
    cache: str = "latest"  # fusion_weights: an .npz file, an MLflow run id / runs:/ / models:/ URI, or latest
    storage: str | None = None  # Optuna storage URL; None: sqlite:///<runs>/optuna.db

    def __post_init__(self):
        if not self.name or not all(c.isalnum() or c in "-_." for c in self.name):
            raise SpecError("name", f"must be non-empty letters, digits, '-', '_' or '.', got {self.name!r}")
        if not self.space:
            raise SpecError("space", "a sweep needs at least one parameter")
        if self.trials < 1:
            raise SpecError("trials", f"must be at least 1, got {self.trials}")
        if self.concurrency < 1:
            raise SpecError("concurrency", f"must be at least 1, got {self.concurrency}")
        fusion = self.kind == "fusion_weights"
        object.__setattr__(self, "metric", self.metric or (FUSION_METRIC if fusion else "val_loss"))
        object.__setattr__(self, "mode", self.mode or ("max" if fusion else "min"))
        if fusion:
            simplex = [n for n, p in self.space.items() if p.kind == "simplex"]
            if len(self.space) != 1 or not simplex or self.space[simplex[0]].size != 3:
                raise SpecError("space", "a fusion_weights sweep searches one simplex of 3 weights (w_s, w_t, w_c); "
                                         "nothing else can be scored on a stream cache")
            if param_keys(simplex[0], self.space[simplex[0]]) != (FUSION_KEY,):
                raise SpecError(f"space.{simplex[0]}.keys", f"the stream weights are {FUSION_KEY}")
            if self.metric != FUSION_METRIC or self.mode != "max":
                raise SpecError("metric", f"fusion_weights trials report {FUSION_METRIC} (PoseTrack Total AP, %), "
                                          f"maximised; got {self.metric} ({self.mode})")
            if self.stages or self.init_from:
                raise SpecError("stages" if self.stages else "init_from", "a fusion_weights sweep trains nothing")
        if self.sampler == "grid":
            continuous = [n for n, p in self.space.items() if p.kind not in ("choice", "int")]
            if continuous:
                raise SpecError(f"space.{continuous[0]}", "a grid takes choice and int parameters only")
            size = math.prod(len(grid_values(p)) for p in self.space.values())
            if self.trials > size:
                raise SpecError("trials", f"the grid has {size} combinations; got trials = {self.trials}")
        if len(set(self.stages)) != len(self.stages):
            raise SpecError("stages", f"lists a stage twice: {list(self.stages)}")


def grid_values(p: ParamSpec) -> list[Any]:
    """The values of a discrete parameter."""
    return list(p.values) if p.kind == "choice" else list(range(int(p.low), int(p.high) + 1, p.step))


def grid_points(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every combination of a grid sweep's values, in an order shuffled by ``seed``, cut to ``trials``."""
    import itertools
    import random

    names = list(spec.space)
    points = [dict(zip(names, combo)) for combo in itertools.product(*(grid_values(spec.space[n]) for n in names))]
    random.Random(spec.seed).shuffle(points)
    return points[: spec.trials]


def param_keys(name: str, p: ParamSpec) -> tuple[str, ...]:
    """The spec keys a parameter sets."""
    return p.keys or (name,)


def param_columns(name: str, p: ParamSpec) -> tuple[str, ...]:
    """A parameter's columns in the results table: its name, or one per simplex weight."""
    if p.kind != "simplex":
        return (name,)
    if p.names:
        return p.names
    if param_keys(name, p) == (FUSION_KEY,):
        return STREAM_COLUMNS
    return tuple(f"{name}[{i}]" for i in range(p.size))


@dataclass(frozen=True)
class Sweep:
    """A loaded, checked sweep: its spec, the base experiment spec, and the stages a trial trains."""

    spec: SweepSpec
    path: Path  # the sweep file
    base_path: Path
    base_raw: dict[str, Any]  # the base spec as written, with the fixed overrides applied (plain data)
    base: ExperimentSpec
    stages: tuple[str, ...]  # in the base's stage order

    @property
    def total_epochs(self) -> int:
        """Epochs of a trial that is never stopped (ASHA's last rung unless ``asha.max_epochs``)."""
        return sum(self.base.train.stages[s].epochs for s in self.stages)

    @property
    def max_epochs(self) -> int:
        return self.spec.asha.max_epochs or self.total_epochs


def load_sweep(path: str | Path, overrides: Sequence[str] = ()) -> Sweep:
    """Read a sweep spec, apply ``-o key=value`` overrides (of sweep keys), and check it against its base spec.

    Raises:
        SpecError: naming the key and the file (the sweep file, or the base spec for its own keys).
    """
    path = Path(path)
    raw = apply_overrides(read_spec_file(path), list(overrides), str(path))
    try:
        spec = fill(SweepSpec, raw)
    except SpecError as e:
        raise e.within(file=str(path)) from None
    base_path = Path(spec.base) if Path(spec.base).is_absolute() else Path(os.path.normpath(path.parent / spec.base))
    if not base_path.is_file():
        raise SpecError("base", f"experiment spec {base_path} not found (the path is relative to the sweep file)", str(path))
    try:
        base = load_spec(base_path, spec.overrides)
    except SpecError as e:
        raise SpecError(e.key, f"{e.message} (base spec with the overrides of sweep {path})", e.file) from None
    base_raw = apply_overrides(read_spec_file(base_path), list(spec.overrides), str(base_path))
    sweep = Sweep(spec=spec, path=path, base_path=base_path, base_raw=base_raw, base=base,
                  stages=_trial_stages(spec, base, str(path)))
    if spec.kind == "fusion_weights" and base.model.kind != "multistream":
        raise SpecError("base", f"fusion weights belong to a multistream model, the base has {base.model.kind!r}", str(path))
    _check_space(sweep)
    if spec.kind == "train" and spec.asha.enabled:
        epoch_keys = [k for n, p in spec.space.items() for k in param_keys(n, p) if k.endswith(".epochs")]
        if epoch_keys and spec.asha.max_epochs is None:
            raise SpecError("asha.max_epochs", f"the space changes {epoch_keys[0]}: set the last rung", str(path))
        if spec.asha.grace_period > sweep.max_epochs:
            raise SpecError("asha.grace_period", f"exceeds the trial's {sweep.max_epochs} epochs", str(path))
    return sweep


def _trial_stages(spec: SweepSpec, base: ExperimentSpec, file: str) -> tuple[str, ...]:
    order = stage_order(base.train.stages)
    if spec.kind == "fusion_weights":
        return ()
    for name in spec.stages:
        if name not in base.train.stages:
            raise SpecError("stages", f"unknown stage {name!r}; the base spec has {order}", file)
    chosen = [s for s in order if s in spec.stages] if spec.stages else order
    for name in spec.init_from:
        if name not in base.train.stages:
            raise SpecError(f"init_from.{name}", f"unknown stage; the base spec has {order}", file)
        if name in chosen:
            raise SpecError(f"init_from.{name}", "is a stage the trials train; give checkpoints only for the others", file)
    for name in chosen:
        for dep in base.train.stages[name].after:
            if dep not in chosen and dep not in spec.init_from:
                raise SpecError(f"init_from.{dep}", f"stage {name} starts from {dep}, which the trials do not train: "
                                                    f"give its checkpoint (a folder, an MLflow run id, or latest)", file)
    return tuple(chosen)


def _has_key(data: Any, key: str) -> bool:
    for part in key.split("."):
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def _set_key(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set a dotted key in nested plain data (sections are created as needed)."""
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = node[part] = {}
        node = nxt
    node[parts[-1]] = value


def _check_space(sweep: Sweep) -> None:
    """Every key exists in the base spec and every value a parameter can take makes a valid spec."""
    resolved = to_dict(sweep.base)
    file = str(sweep.path)
    for name, p in sweep.spec.space.items():
        for key in param_keys(name, p):
            if not _has_key(resolved, key):
                raise SpecError(f"space.{name}", f"{key} is not a key of the base spec {sweep.base_path}", file)
        if p.kind == "choice":
            candidates = list(p.values)
        elif p.kind == "simplex":
            candidates = [[1.0 / p.size] * p.size]
        else:
            candidates = [int(p.low), int(p.high)] if p.kind == "int" else [p.low, p.high]
        for value in candidates:
            try:
                trial_spec(sweep, {key: value for key in param_keys(name, p)})
            except SpecError as e:
                raise SpecError(f"space.{name}", f"{value!r} makes an invalid spec: {e.key}: {e.message}", file) from None


# -- search space and trial values -----------------------------------------------------------------------


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
            for i in range(1, p.size):
                out[f"{name}{SIMPLEX_SEP}{i}"] = FloatDistribution(0.0, 1.0)
    return out


def simplex_point(u: Sequence[float]) -> tuple[float, ...]:
    """Map n-1 coordinates in [0, 1] to n weights >= 0 summing to 1 (uniform u -> uniform on the simplex).

    Stick-breaking: weight k takes the fraction V_k = 1 - (1 - u_k)^(1/(n-k)) (the inverse CDF of Beta(1, n-k))
    of what the weights before it left; the last takes the rest.
    """
    n = len(u) + 1
    weights, rest = [], 1.0
    for k, uk in enumerate(u, start=1):
        v = 1.0 - (1.0 - min(max(float(uk), 0.0), 1.0)) ** (1.0 / (n - k))
        weights.append(rest * v)
        rest -= rest * v
    weights.append(max(rest, 0.0))
    return tuple(weights)


def _simplex_weights(name: str, p: ParamSpec, params: dict[str, Any]) -> list[float]:
    return list(simplex_point([params[f"{name}{SIMPLEX_SEP}{i}"] for i in range(1, p.size)]))


def trial_overrides(spec: SweepSpec, params: dict[str, Any]) -> dict[str, Any]:
    """A trial's values as ``{dotted spec key: value}`` (a simplex key gets its list of weights)."""
    out: dict[str, Any] = {}
    for name, p in spec.space.items():
        value = _simplex_weights(name, p, params) if p.kind == "simplex" else params[name]
        for key in param_keys(name, p):
            out[key] = value
    return out


def trial_columns(spec: SweepSpec, params: dict[str, Any]) -> dict[str, Any]:
    """A trial's values as table columns (the parameter's name, or one column per simplex weight)."""
    out: dict[str, Any] = {}
    for name, p in spec.space.items():
        if p.kind == "simplex":
            out.update(zip(param_columns(name, p), _simplex_weights(name, p, params)))
        else:
            out[name] = params[name]
    return out


def trial_spec(sweep: Sweep, overrides: dict[str, Any]) -> ExperimentSpec:
    """The base spec (with the fixed overrides) and a trial's values, validated.

    Raises:
        SpecError: naming the spec key.
    """
    return fill(ExperimentSpec, trial_raw(sweep, overrides))


def trial_raw(sweep: Sweep, overrides: dict[str, Any]) -> dict[str, Any]:
    raw = json.loads(json.dumps(sweep.base_raw))
    for key, value in overrides.items():
        _set_key(raw, key, list(value) if isinstance(value, tuple) else value)
    return raw


def best_spec_yaml(sweep: Sweep, overrides: dict[str, Any], header: str = "") -> str:
    """The best trial as a ready-to-run experiment spec: the base as written, the fixed overrides and the
    trial's values, named ``<sweep>-best``."""
    raw = trial_raw(sweep, overrides)
    raw["name"] = f"{sweep.spec.name}-best"
    fill(ExperimentSpec, raw)  # valid, or SpecError
    lines = "".join(f"# {line}\n" for line in header.splitlines())
    return lines + yaml.safe_dump(raw, sort_keys=False, default_flow_style=None)


class _Suggest:
    """Optuna define-by-run search space: TPE samples the distributions; a simplex's weights are also stored as
    user attributes (so optuna-dashboard shows w_s, w_t, w_c); a trial that continues an interrupted one learns
    which from the user attributes its enqueued parameters carry. A class, not a closure: Tune pickles it."""

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
        params = trial.params
        for name, p in self.spec.space.items():
            if p.kind == "simplex":
                for column, w in zip(param_columns(name, p), _simplex_weights(name, p, params)):
                    trial.set_user_attr(column, w)
        extra = {"_number": trial.number}
        attrs = trial.user_attrs
        if "sportpose.resumes" in attrs:
            extra["_resumes"] = attrs["sportpose.resumes"]
        if "sportpose.resume_run" in attrs:
            extra["_resume_run"] = attrs["sportpose.resume_run"]
        return extra


# -- where things live -------------------------------------------------------------------------------------


def sweep_dir(name: str) -> Path:
    return runs_dir() / "sweeps" / name


def optuna_storage_url(spec: SweepSpec) -> str:
    """The study's database: ``storage`` or ``sqlite:///<runs>/optuna.db``."""
    if spec.storage:
        return spec.storage
    path = runs_dir() / "optuna.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    tmp.replace(path)


# -- the book of trials (driver side) ------------------------------------------------------------------------

# Tune's own result keys: not metrics of the model.
_TUNE_KEYS = {"done", "training_iteration", "timestamp", "time_this_iter_s", "time_total_s", "pid",
              "time_since_restore", "iterations_since_restore", "epoch", TIME_ATTR}
_TUNE_INFO = {"trial_id", "date", "hostname", "node_ip", "config", "checkpoint_dir_name", "experiment_tag", "stage",
              "checkpoint_path"}


class TrialBook:
    """The sweep's record of its trials (``trials.json``) and their MLflow child runs.

    Lives in the Tune driver; every change is written at once (atomically), so an interrupted sweep leaves a
    file that says which trials finished, which were running (and under which Ray Train run names), and with
    what parameters.
    """

    def __init__(self, sweep: Sweep, out_dir: Path, parent_id: str, run_prefix: str, log: Callable[[str], None]):
        self.sweep = sweep
        self.path = out_dir / "trials.json"
        self.parent_id = parent_id
        self.run_prefix = run_prefix
        self.log = log
        self.records: dict[str, dict[str, Any]] = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.asha_stopped: set[str] = set()  # trial ids ASHA stopped (filled by the scheduler)

    def save(self) -> None:
        _write_json(self.path, self.records)

    def finished(self) -> list[dict[str, Any]]:
        return [r for r in self.records.values() if r["status"] in FINISHED]

    def by_number(self, number: int) -> dict[str, Any] | None:
        return next((r for r in self.records.values() if r["number"] == number), None)

    # Tune callback hooks ------------------------------------------------------------------------------

    def start(self, trial_id: str, config: dict[str, Any]) -> None:
        spec = self.sweep.spec
        params = {k: v for k, v in config.items() if not k.startswith("_")}
        old = self.records.pop(config["_resumes"], None) if config.get("_resumes") else None
        if old is not None:  # continues an interrupted trial: same MLflow run, same Ray Train runs
            rec = {**old, "trial_id": trial_id, "number": config["_number"], "status": "running",
                   "previous_ids": old.get("previous_ids", []) + [old["trial_id"]]}
            tracking.client().update_run(rec["run_id"], status="RUNNING")
            self.log(f"trial {rec['number']} ({trial_id}) continues interrupted trial {old['trial_id']}")
        else:
            overrides = trial_overrides(spec, params)
            columns = trial_columns(spec, params)
            run_id = tracking.start_run(self.sweep.base.name, run_name=f"{spec.name}-trial-{config['_number']:03d}",
                                        parent_id=self.parent_id, tags={
                                            "sportpose.kind": "trial", "sportpose.sweep": spec.name,
                                            "sportpose.trial_id": trial_id, "sportpose.trial_number": config["_number"]})
            tracking.log_params(run_id, {**{k: v for k, v in overrides.items() if k != FUSION_KEY}, **columns})
            if spec.kind == "train":
                tracking.log_text(run_id, yaml.safe_dump(trial_raw(self.sweep, overrides), sort_keys=False),
                                  "spec/trial.yaml")
            rec = {"trial_id": trial_id, "number": config["_number"], "params": params, "columns": columns,
                   "overrides": overrides, "status": "running", "value": None, "best": None, "epochs": 0,
                   "history": [], "run_id": run_id, "train_run": config.get("_resume_run") or f"{self.run_prefix}-{trial_id}",
                   "started": time.time(), "seconds": 0.0, "previous_ids": []}
        rec["restarted"] = time.time()
        self.records[trial_id] = rec
        self.save()

    def result(self, trial_id: str, result: dict[str, Any]) -> None:
        rec = self.records.get(trial_id)
        if rec is None or self.sweep.spec.kind != "train":
            return
        metric = self.sweep.spec.metric
        step = int(result.get(TIME_ATTR, len(rec["history"]) + 1))
        numeric = {k: float(v) for k, v in result.items() if k not in _TUNE_KEYS and isinstance(v, (int, float))
                   and not isinstance(v, bool) and math.isfinite(v)}
        tracking.log_metrics(rec["run_id"], numeric, step=step - 1)
        rec["history"].append({TIME_ATTR: step, "stage": result.get("stage", ""), "epoch": result.get("epoch"),
                               metric: numeric.get(metric), "checkpoint": result.get("checkpoint_path")})
        rec["epochs"] = step
        self.save()

    def complete(self, trial_id: str, last: dict[str, Any]) -> None:
        rec = self.records.get(trial_id)
        if rec is None:
            return
        spec = self.sweep.spec
        value = last.get(spec.metric)
        rec["value"] = float(value) if isinstance(value, (int, float)) else None
        if spec.kind == "train":
            values = [h[spec.metric] for h in rec["history"] if h.get(spec.metric) is not None]
            rec["best"] = (min if spec.mode == "min" else max)(values) if values else None
            rec["status"] = "stopped" if trial_id in self.asha_stopped else "completed"
        else:
            rec["best"], rec["epochs"], rec["status"] = rec["value"], 1, "completed"
        rec["seconds"] += time.time() - rec.pop("restarted", time.time())
        summary = {"objective": rec["value"], f"best_{spec.metric}": rec["best"], "trial_epochs": rec["epochs"]}
        if spec.kind == "fusion_weights":
            summary[spec.metric] = rec["value"]
        _log_batch(rec["run_id"], {k: v for k, v in summary.items() if v is not None},
                   {"sportpose.trial_status": rec["status"]})
        tracking.end_run(rec["run_id"])
        self.save()
        how = {"completed": "done", "stopped": f"stopped by ASHA after {rec['epochs']} epochs"}[rec["status"]]
        shown = f"{rec['value']:.4g}" if rec["value"] is not None else "n/a"
        self.log(f"trial {rec['number']:3d} {how}: {spec.metric}={shown}  " + _describe_values(rec["columns"]))

    def error(self, trial_id: str, message: str) -> None:
        rec = self.records.get(trial_id)
        if rec is None:
            return
        rec["status"], rec["error"] = "error", message
        rec["seconds"] += time.time() - rec.pop("restarted", time.time())
        tracking.set_tags(rec["run_id"], {"sportpose.trial_status": "error", "sportpose.error": message[:5000]})
        tracking.end_run(rec["run_id"], "FAILED")
        self.save()
        self.log(f"trial {rec['number']:3d} failed: {message.splitlines()[-1] if message else 'unknown error'}")

    # after a round --------------------------------------------------------------------------------------

    def best(self) -> dict[str, Any] | None:
        spec = self.sweep.spec
        scored = [r for r in self.records.values() if r["status"] in ("completed", "stopped") and r["value"] is not None]
        if not scored:
            return None
        sign = 1.0 if spec.mode == "min" else -1.0
        return min(scored, key=lambda r: (sign * r["value"], r["number"]))

    def tag_best(self) -> dict[str, Any] | None:
        best = self.best()
        for rec in self.records.values():
            if rec["status"] in FINISHED:
                tracking.set_tags(rec["run_id"], {"sportpose.best": str(rec is best).lower()})
        if best is not None:
            metric = self.sweep.spec.metric
            tracking.set_tags(self.parent_id, {"sportpose.best_trial": best["number"], "sportpose.best_run": best["run_id"]})
            tracking.log_metrics(self.parent_id, {f"best_{metric}": best["value"], "finished_trials": len(self.finished())})
        return best


def _log_batch(run_id: str, metrics: dict[str, float], tags: dict[str, Any]) -> None:
    """Metrics and tags in one MLflow call (the driver handles every trial's end: fewer round trips)."""
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    tracking.client().log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                                tags=[RunTag(k, str(v)) for k, v in tags.items()])


def _describe_values(columns: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in columns.items())


class _Recorder(tune.Callback):
    """Tune's trial events -> the book (in the driver, between Tune's steps)."""

    def __init__(self, book: TrialBook):
        self.book = book

    def __getstate__(self):
        # Tune pickles its callbacks for Tuner.restore, which sweeps do not use (see Resume); the book (with its
        # log function) stays in this process.
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
        from ray.tune.integration.ray_train import TuneReportCallback

        self._tune = TuneReportCallback()
        self._stage = stage
        self._offset = offset

    def after_report(self, run_context, metrics, checkpoint):
        tagged = [{**m, TIME_ATTR: self._offset + int(m.get("epoch", 0)) + 1, "stage": self._stage} for m in metrics]
        self._tune.after_report(run_context, tagged, checkpoint)


def _quiet_trial() -> None:
    import ray

    logging.getLogger("ray.train").setLevel(logging.WARNING)
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


def _train_trial(config: dict[str, Any], context: dict[str, Any]) -> None:
    """A training trial: the trial's spec, then its stages on the stage engine, each epoch reported to Tune."""
    from sportpose.training.stage import plan_init, run_stage

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
    from sportpose.data.dataset import build_split, load_clips

    clips = load_clips(Path(spec.data.root).resolve(), spec.data.splits, spec.seed)
    return {split: build_split(clips, spec.data, split, spec.seed)[0] for split in ("train", "val")}


@dataclass
class FusionCache:
    """What a fusion-weight trial scores against: per-stream validation heatmaps and their ground truth."""

    predictions: Any  # evaluate2d.Predictions2D with streams
    ground_truth: list  # PoseTrack18 videos restricted to the cached frames
    joint_set: Any
    path: str = ""

    @property
    def samples(self) -> int:
        return len(self.predictions.pred)


def load_fusion_cache(path: str | Path, joint_set_name: str = "posetrack") -> FusionCache:
    from sportpose.models.skeleton import JOINT_SETS
    from sportpose.evaluation.evaluate2d import ground_truth_for, load_stream_cache

    p, clips = load_stream_cache(path)
    return FusionCache(p, ground_truth_for(p, clips), JOINT_SETS[joint_set_name], str(path))


def fusion_ap(cache: FusionCache, weights: Sequence[float]) -> float:
    """PoseTrack Total AP (%) of the late fusion w_s Ŷ_s + w_t Ŷ_t + w_c Ŷ_c on the cached samples."""
    from sportpose.evaluation.evaluate2d import STREAM_KEYS, to_videos, with_heatmaps
    from sportpose.evaluation.metrics import posetrack_ap

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
            if not (path / "checkpoint.pt").is_file():
                raise SpecError(key, f"{value} is not a stage checkpoint folder (no checkpoint.pt), an MLflow run id, "
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
    import mlflow

    dst = out_dir / "cache"
    dst.mkdir(parents=True, exist_ok=True)
    return Path(mlflow.artifacts.download_artifacts(run_id=holder, artifact_path=CACHE_ARTIFACT, dst_path=str(dst)))


def _has_cache(run_id: str) -> bool:
    folder = os.path.dirname(CACHE_ARTIFACT)
    try:
        return any(a.path == CACHE_ARTIFACT for a in tracking.client().list_artifacts(run_id, folder))
    except Exception:  # noqa: BLE001 - an unreadable artifact store means: not here
        return False


# -- the sweep ------------------------------------------------------------------------------------------------


@dataclass
class SweepResult:
    name: str
    parent_run_id: str
    study_name: str
    storage: str
    out_dir: Path
    records: list[dict[str, Any]]  # every trial, by number
    best: dict[str, Any] | None
    interrupted: bool
    trials: int  # the budget
    seconds: float
    new_trials: int = 0  # trials finished in this invocation
    outputs: dict[str, Path] = field(default_factory=dict)


def run_sweep(sweep: Sweep, resume: bool = False, log: Callable[[str], None] = print) -> SweepResult:
    """Run (or continue) a sweep on the current Ray, then write its table, best spec, plots and report.

    Args:
        resume: continue the last run of this sweep: finished trials stay, interrupted ones continue.

    Returns:
        the result; ``interrupted`` when fewer trials than the budget finished (e.g. Ctrl-C).

    Raises:
        SpecError: a changed sweep or base spec on ``resume``, a metric the trials do not report, a trial
            that cannot fit on the cluster, or an unresolvable ``cache`` / ``init_from``.
    """
    import ray

    start = time.perf_counter()
    spec = sweep.spec
    out = sweep_dir(spec.name)
    state_path = out / "state.json"
    state = json.loads(state_path.read_text()) if resume and state_path.exists() else None
    if resume and state is None:
        log(f"resume: no earlier run of sweep {spec.name} in {out}; starting it")
    storage_url = optuna_storage_url(spec)
    resolved = {"sweep": to_dict(spec), "base": to_dict(sweep.base)}
    _check_cluster(sweep, ray.cluster_resources())
    if state is not None:
        _check_unchanged(state, resolved, sweep)
        parent_id = state["parent_run_id"]
        tracking.client().update_run(parent_id, status="RUNNING")
    else:
        if out.exists():
            shutil.rmtree(out)
        try:
            optuna.delete_study(study_name=spec.name, storage=storage_url)
            log(f"sweep {spec.name}: replacing the earlier study of that name (its MLflow runs stay)")
        except KeyError:
            pass
        out.mkdir(parents=True)
        parent_id = tracking.start_run(sweep.base.name, run_name=f"sweep-{spec.name}", tags={
            "sportpose.kind": "sweep", "sportpose.sweep": spec.name, "sportpose.sweep_kind": spec.kind,
            "sportpose.spec_hash": spec_hash(sweep.base), "sportpose.git_commit": tracking.git_commit(),
            "sportpose.ray_address": ray.get_runtime_context().gcs_address,
            "sportpose.optuna_study": spec.name, "sportpose.optuna_storage": storage_url})
        tracking.log_params(parent_id, {"sweep": {k: v for k, v in resolved["sweep"].items() if k != "space"},
                                        "space": {n: str(to_dict(p)) for n, p in spec.space.items()}})
        tracking.log_text(parent_id, sweep.path.read_text(), f"sweep/{sweep.path.name}")
        tracking.log_text(parent_id, yaml.safe_dump(resolved["base"], sort_keys=False), "spec/base_resolved.yaml")
        state = {"parent_run_id": parent_id, "study": spec.name, "storage": storage_url, "rounds": 0, **resolved}
    state["rounds"] += 1
    state["finished"] = False
    _write_json(state_path, state)

    run_prefix = f"{spec.name}-{parent_id[:6]}"
    book = TrialBook(sweep, out, parent_id, run_prefix, log)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # Ray times the define-by-run space, whose suggestions are writes to the study's database: slow is not a bug.
    warnings.filterwarnings("ignore", message="Define-by-run function passed in the `space` argument took")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rdb = optuna.storages.RDBStorage(storage_url)
    study = optuna.create_study(study_name=spec.name, storage=rdb, direction="minimize" if spec.mode == "min" else "maximize",
                                load_if_exists=True)
    study.set_user_attr("sportpose.metric", spec.metric)
    if spec.sampler == "grid" and state["rounds"] == 1:  # enqueued trials are asked first: TPE is not consulted
        for point in grid_points(spec):
            study.enqueue_trial(point)
    _reconcile(study, book, log)
    before = len(book.finished())
    remaining = spec.trials - before
    try:
        if remaining > 0:
            log(f"sweep {spec.name}: {remaining} of {spec.trials} trials to run ({before} finished), "
                f"{spec.concurrency} at a time; metric {spec.metric} ({spec.mode})")
            _run_round(sweep, book, study, rdb, remaining, state["rounds"], run_prefix, out, log)
    except BaseException as e:
        tracking.end_run(parent_id, "KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
        if isinstance(e, ValueError) and "did not include the specified metric" in str(e):
            reported = sorted(k for k in set(re.findall(r"'(\w+)': ", str(e).partition("Result:")[2]))
                              - _TUNE_KEYS - _TUNE_INFO if not k.startswith("_"))
            raise SpecError("metric", f"the trials do not report {spec.metric!r}; they report {reported}",
                            str(sweep.path)) from None
        raise
    finally:
        for rec in book.records.values():  # interrupted trials stay resumable; their runs say so meanwhile
            if rec["status"] == "running":
                tracking.end_run(rec["run_id"], "KILLED")
        book.save()
    finished = book.finished()
    interrupted = len(finished) < spec.trials
    best = book.tag_best()
    outputs = {}
    if finished:
        from sportpose.pipelines.sweep import report as sweep_report

        outputs = sweep_report.write_outputs(sweep, book, out, state, interrupted, log)
        for name, path in outputs.items():
            tracking.log_artifact(parent_id, path, "sweep/plots" if name.startswith("plot_") else "sweep")
    state["finished"] = not interrupted
    _write_json(state_path, state)
    tracking.end_run(parent_id, "KILLED" if interrupted else "FINISHED")
    records = sorted(book.records.values(), key=lambda r: r["number"])
    return SweepResult(spec.name, parent_id, spec.name, storage_url, out, records, best, interrupted, spec.trials,
                       time.perf_counter() - start, len(finished) - before, outputs)


def _check_cluster(sweep: Sweep, resources: dict[str, float]) -> None:
    """A trial that can never fit would wait forever: refuse it."""
    cpus = resources.get("CPU", 0.0)
    r = sweep.spec.resources
    need = r.cpu + max((sweep.base.train.stages[s].scaling.num_workers * sweep.base.train.stages[s].scaling.cpus_per_worker
                        for s in sweep.stages), default=0.0)
    if need > cpus + 1e-9:
        raise SpecError("resources", f"a trial needs {need:g} CPUs (its own {r.cpu:g} + its largest stage's workers) "
                                     f"but the cluster has {cpus:g}", str(sweep.path))
    if r.gpu > resources.get("GPU", 0.0):
        raise SpecError("resources.gpu", f"a trial asks for {r.gpu:g} GPUs; the cluster has {resources.get('GPU', 0):g}",
                        str(sweep.path))


def _check_unchanged(state: dict[str, Any], resolved: dict[str, Any], sweep: Sweep) -> None:
    """Resuming with another space, base or metric would mix incomparable trials: refuse, naming the key.
    The budget (trials), concurrency and resources may change."""
    free = {"trials", "concurrency", "resources"}
    before = {k: v for k, v in state["sweep"].items() if k not in free}
    now = {k: v for k, v in resolved["sweep"].items() if k not in free}
    for label, a, b in (("", before, now), ("base spec: ", state["base"], resolved["base"])):
        if a != b:
            key = _first_difference(a, b, "")
            raise SpecError(key, f"{label}changed since the sweep being resumed; run it anew without --resume",
                            str(sweep.path if not label else sweep.base_path))


def _first_difference(a: Any, b: Any, key: str) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{key}.{k}" if key else k)
    return key or "<root>"


def _reconcile(study: optuna.Study, book: TrialBook, log: Callable[[str], None]) -> None:
    """Before a round: the study's unfinished trials (asked by an interrupted round) are marked failed and their
    parameters enqueued again; those that had started carry what the new trial needs to continue them."""
    from optuna.trial import TrialState

    storage = study._storage  # noqa: SLF001 - Study exposes no public way to change a trial's state
    continued = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        rec = book.by_number(t.number)
        if rec is not None and rec["status"] in FINISHED:  # the book saw its end; the study missed it
            done = rec["status"] != "error" and rec["value"] is not None
            storage.set_trial_state_values(t._trial_id, TrialState.COMPLETE if done else TrialState.FAIL,  # noqa: SLF001
                                           [rec["value"]] if done else None)
            continue
        storage.set_trial_state_values(t._trial_id, TrialState.FAIL)  # noqa: SLF001
        attrs = dict(t.user_attrs)
        if rec is not None:
            attrs["sportpose.resumes"] = rec["trial_id"]
            if book.sweep.spec.kind == "train":
                attrs["sportpose.resume_run"] = rec["train_run"]
            rec["status"] = "interrupted"
            continued += 1
        study.enqueue_trial(dict(t.params), user_attrs=attrs)
    for rec in book.records.values():  # a trial whose end the book missed (a hard kill) but the study has
        if rec["status"] == "running":
            done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            match = next((t for t in done if t.number == rec["number"]), None)
            if match is not None:
                rec.update(status="completed", value=match.value, best=match.value)
    if continued:
        log(f"resume: {continued} interrupted trial(s) continue where they stopped")
    book.save()


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


def _hide_tune_hints(record: logging.LogRecord) -> bool:
    """Tune's messages that do not apply to a sweep: ``Tuner.restore`` (a sweep resumes with ``--resume``), and
    the per-trial result files its result grid looks for (a sweep keeps results in its book and in MLflow and
    turns Tune's per-trial loggers off)."""
    message = record.getMessage()
    return "Tuner.restore" not in message and "Failed to fetch metrics" not in message


def _run_round(sweep: Sweep, book: TrialBook, study: optuna.Study, rdb: Any, remaining: int, round_: int,
               run_prefix: str, out: Path, log: Callable[[str], None]) -> None:
    """One Tuner: OptunaSearch on the stored study, ASHA for training trials, the book as a callback."""
    from ray.tune.search.optuna import OptunaSearch

    spec = sweep.spec
    for name in ("ray.tune.tune", "ray.tune.analysis.experiment_analysis"):
        logging.getLogger(name).addFilter(_hide_tune_hints)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # the book and MLflow keep the results  # no progress tables: the book logs one line per trial
    seed = spec.seed + len(book.finished())  # a resumed round does not replay the first one's random draws
    startup = max(2, min(10, spec.trials // 4))  # random trials before TPE models the results
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True)
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
        from sportpose.pipelines.train import prepare_data

        prepare_data(sweep.base, log)
        if shared:
            datasets = _cut_splits(sweep.base)
            log("data: train/val cut once, shared by every trial")
        trainable = tune.with_parameters(_train_trial, context={"sweep": sweep, "datasets": datasets, "init": init,
                                                                "run_prefix": run_prefix})
    storage_path = sweep.base.train.storage_path or str(runs_dir() / "ray")
    if "://" not in storage_path:
        storage_path = str(Path(storage_path).resolve())
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}),
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=remaining,
                                    max_concurrent_trials=spec.concurrency,
                                    reuse_actors=spec.kind == "fusion_weights"),
        run_config=tune.RunConfig(name=f"{run_prefix}-r{round_}", storage_path=storage_path, verbose=0,
                                  callbacks=[_Recorder(book)], failure_config=tune.FailureConfig(max_failures=0)),
    )
    tuner.fit()
