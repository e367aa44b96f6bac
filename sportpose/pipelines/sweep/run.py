"""Hyper-parameter sweeps: Ray Tune with OptunaSearch (TPE, seeded) and ASHA over an experiment spec (SPEC §8).

:func:`run_sweep` runs a loaded sweep (:mod:`sportpose.spec.sweep` holds the schema and :func:`load_sweep`):
the MLflow parent run, the Optuna study, the book of trials (:mod:`~sportpose.pipelines.sweep.book`), rounds
of trials on Ray Tune (:mod:`~sportpose.pipelines.sweep.trials`) and the outputs
(:mod:`~sportpose.pipelines.sweep.report`).

Decisions, and why:

- **The Optuna study** lives in an RDB (``storage``; default ``sqlite:///<runs>/optuna.db``, study name = the
  sweep's name): Ray's ``OptunaSearch`` takes an optuna storage, so the searcher itself writes every asked
  and finished trial there (``optuna.load_study`` and optuna-dashboard see them). A new run of a sweep
  replaces the study of the same name; ``--resume`` continues it. The value a trial hands to Optuna is its
  *last* reported metric (what ASHA judged it by when it was stopped); the table also shows its best epoch.
- **Resume** uses the sweep's own book of trials (``runs/sweeps/<name>/trials.json``, written atomically by
  a Tune callback in the driver at every trial start, epoch and end) and the study, not ``Tuner.restore``
  (whose experiment snapshot may lag finished trials by seconds, and which would replay them): finished trials
  (completed, stopped by ASHA, failed) are never rerun and count against ``trials``; an interrupted trial's
  Optuna trial is marked failed and its parameters are enqueued again, and the new trial continues the old
  one's MLflow run and, for ``train``, its Ray Train runs from their latest checkpoints (same run names).
  A resumed sweep must have the same space, base and metric (``state.json`` keeps what the first round ran);
  the budget (``trials``), ``concurrency`` and ``resources`` may change.
- **MLflow**: a parent run per sweep (experiment = the base spec's name) and a child run per trial, with the
  trial's values as params, per-epoch metrics (step = ``trial_epoch`` - 1) or the fusion ``map``, its status
  tag, and ``sportpose.best=true`` on the best. All MLflow writes happen in the Tune driver (one writer).
- **Outputs** (``runs/sweeps/<name>/``, also artifacts of the parent run under ``sweep/``): ``results.csv`` /
  ``results.parquet``, ``best_spec.yaml`` (the base spec as written, with the fixed overrides and the best
  trial's values, named ``<sweep>-best``: ``sportpose train`` takes it as is), PNG plots and a self-contained
  ``sweep.html``.
"""

from __future__ import annotations

import json
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import ray
import yaml
from optuna.trial import TrialState

from sportpose.errors import SpecError
from sportpose.paths import remove_tree, runs_dir
from sportpose.pipelines.sweep import report
from sportpose.pipelines.sweep.book import FINISHED, TUNE_KEYS, TrialBook, write_json
from sportpose.pipelines.sweep.trials import run_round
from sportpose.registry import tracking
from sportpose.spec.experiment import spec_hash
from sportpose.spec.fill import to_dict
from sportpose.spec.sweep import Sweep, SweepSpec, grid_points

# Tune's keys about the trial, not its metrics (left out when naming what the trials report).
_TUNE_INFO = {"trial_id", "date", "hostname", "node_ip", "config", "checkpoint_dir_name", "experiment_tag", "stage",
              "checkpoint_path"}


@dataclass
class SweepResult:
    """What a run of a sweep did: every trial's record, the best, and where the outputs are."""

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
            remove_tree(out, out.parent)
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
    write_json(state_path, state)

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
    study.set_metric_names([spec.metric])  # optuna-dashboard's name for the objective
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
            run_round(sweep, book, study, rdb, remaining, state["rounds"], run_prefix, out, log)
    except BaseException as e:
        tracking.end_run(parent_id, "KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
        if isinstance(e, ValueError) and "did not include the specified metric" in str(e):
            reported = sorted(k for k in set(re.findall(r"'(\w+)': ", str(e).partition("Result:")[2]))
                              - TUNE_KEYS - _TUNE_INFO if not k.startswith("_"))
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
        outputs = report.write_outputs(sweep, book, out, state, interrupted, log)
        for name, path in outputs.items():
            tracking.log_artifact(parent_id, path, "sweep/plots" if name.startswith("plot_") else "sweep")
    state["finished"] = not interrupted
    write_json(state_path, state)
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


def sweep_dir(name: str) -> Path:
    """A sweep's folder: its book, state, table, best spec, plots and report."""
    return runs_dir() / "sweeps" / name


def optuna_storage_url(spec: SweepSpec) -> str:
    """The study's database: ``storage`` or ``sqlite:///<runs>/optuna.db``."""
    if spec.storage:
        return spec.storage
    path = runs_dir() / "optuna.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"
