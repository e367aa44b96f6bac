"""The sweep spec (YAML, ``experiments/sweeps/``): a base experiment spec, a search space by dotted keys, the
metric and its direction, the trial budget, concurrency and resources, and ASHA's rungs (SPEC §8)::

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

``kind: train`` trains the trial's spec (base + fixed overrides + the trial's values) on the stage engine;
``kind: fusion_weights`` scores late-fusion stream weights on a stream cache of a trained MultiStream
(``cache``) by PoseTrack Total AP (``map``, %), training nothing. :mod:`sportpose.pipelines.sweep.run` runs a
sweep.

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

**Simplex.** A simplex's weights are Optuna parameters under their own names (its columns: ``w_s``, ``w_t``,
``w_c`` for the fusion weights), each in [0, 1], with every trial's values exactly on the simplex (w >= 0,
sum 1): optuna-dashboard's history, parallel coordinates and importance then read as the sweep's own plots.
The sweep's sampler (:mod:`sportpose.pipelines.sweep.trials`) draws its random start-up points uniformly on
the simplex (:func:`simplex_point`: a stick-breaking map with Beta(1, n-k) inverse CDFs) and projects TPE's
proposals onto it. The weights are the trial's parameters in Optuna, MLflow, the table and the plots.

Everything here is plain data and pure functions on it (no Ray, no MLflow, no Optuna): the trial's values as
spec keys and table columns, the trial's spec, and the best trial as a ready-to-run spec.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from sportpose.errors import SpecError
from sportpose.paths import check_name
from sportpose.spec.experiment import ExperimentSpec, apply_overrides, load_spec, read_spec_file, stage_order
from sportpose.spec.fill import fill, has_key, set_key, to_dict

FUSION_METRIC = "map"  # fusion_weights trials report PoseTrack Total AP (%)
FUSION_KEY = "model.fusion_weights"
STREAM_COLUMNS = ("w_s", "w_t", "w_c")


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
    """A sweep file as written (module docstring); defaults of ``metric`` and ``mode`` follow ``kind``."""

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
        check_name("name", self.name)
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
        seen: dict[str, str] = {}
        for name, p in self.space.items():  # a column is an Optuna parameter: one name, one parameter
            for column in param_columns(name, p):
                if column in seen:
                    raise SpecError(f"space.{name}", f"its column {column!r} is also a column of {seen[column]!r}")
                seen[column] = name


def grid_values(p: ParamSpec) -> list[Any]:
    """The values of a discrete parameter."""
    return list(p.values) if p.kind == "choice" else list(range(int(p.low), int(p.high) + 1, p.step))


def grid_points(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every combination of a grid sweep's values, in an order shuffled by ``seed``, cut to ``trials``."""
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
    raw = apply_overrides(read_spec_file(path), list(overrides), str(path), schema=SweepSpec)
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


def _check_space(sweep: Sweep) -> None:
    """Every key exists in the base spec and every value a parameter can take makes a valid spec."""
    resolved = to_dict(sweep.base)
    file = str(sweep.path)
    for name, p in sweep.spec.space.items():
        for key in param_keys(name, p):
            if not has_key(resolved, key):
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


def simplex_weights(name: str, p: ParamSpec, params: dict[str, Any]) -> list[float]:
    """A simplex parameter's weights from a trial's Optuna ``params`` (one per column), renormalised to sum 1
    exactly (the stored floats may be off by rounding)."""
    weights = [max(float(params[c]), 0.0) for c in param_columns(name, p)]
    total = sum(weights)
    if total <= 0:
        raise SpecError(f"space.{name}", f"weights {weights} do not lie on the simplex")
    return [w / total for w in weights]


def trial_overrides(spec: SweepSpec, params: dict[str, Any]) -> dict[str, Any]:
    """A trial's values as ``{dotted spec key: value}`` (a simplex key gets its list of weights)."""
    out: dict[str, Any] = {}
    for name, p in spec.space.items():
        value = simplex_weights(name, p, params) if p.kind == "simplex" else params[name]
        for key in param_keys(name, p):
            out[key] = value
    return out


def trial_columns(spec: SweepSpec, params: dict[str, Any]) -> dict[str, Any]:
    """A trial's values as table columns (the parameter's name, or one column per simplex weight)."""
    out: dict[str, Any] = {}
    for name, p in spec.space.items():
        if p.kind == "simplex":
            out.update(zip(param_columns(name, p), simplex_weights(name, p, params)))
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
    """The base spec as written (with the fixed overrides) and a trial's values, as plain data."""
    raw = json.loads(json.dumps(sweep.base_raw))
    for key, value in overrides.items():
        set_key(raw, key, list(value) if isinstance(value, tuple) else value)
    return raw


def best_spec_yaml(sweep: Sweep, overrides: dict[str, Any], header: str = "") -> str:
    """The best trial as a ready-to-run experiment spec: the base as written, the fixed overrides and the
    trial's values, named ``<sweep>-best``."""
    raw = trial_raw(sweep, overrides)
    raw["name"] = f"{sweep.spec.name}-best"
    fill(ExperimentSpec, raw)  # valid, or SpecError
    lines = "".join(f"# {line}\n" for line in header.splitlines())
    return lines + yaml.safe_dump(raw, sort_keys=False, default_flow_style=None)
