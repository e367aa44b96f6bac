"""A sweep's book of its trials (``runs/sweeps/<name>/trials.json``) and their MLflow child runs (SPEC §8).

The book is fed by Tune's trial events (start, every reported epoch, end, error) in the Tune driver, so all
MLflow writes of a sweep happen in one process. A trial's record: its Optuna number, parameters (Optuna's),
table columns and spec overrides, status, the value handed to Optuna (its *last* reported metric: what ASHA
judged it by when it stopped it), its best value, epochs, per-epoch history (``trial_epoch``, stage, metric,
checkpoint), its MLflow run id and its Ray Train run name. Per-epoch metrics go to the trial's child run with
step = ``trial_epoch`` - 1. ``--resume`` continues from the book: trials with a status in :data:`FINISHED`
are never rerun.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from mlflow.entities import Metric, RunTag

from sportpose.registry import tracking
from sportpose.spec.sweep import FUSION_KEY, Sweep, trial_columns, trial_overrides, trial_raw

TIME_ATTR = "trial_epoch"  # ASHA's time: the trial's cumulative epoch (1-based) across its stages
FINISHED = ("completed", "stopped", "error")  # trial statuses that are never rerun
# Tune's own result keys: not metrics of the model.
TUNE_KEYS = {"done", "training_iteration", "timestamp", "time_this_iter_s", "time_total_s", "pid",
             "time_since_restore", "iterations_since_restore", "epoch", TIME_ATTR}


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON atomically (a reader never sees half a file): the book and ``state.json``."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    tmp.replace(path)


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
        write_json(self.path, self.records)

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
        numeric = {k: float(v) for k, v in result.items() if k not in TUNE_KEYS and isinstance(v, (int, float))
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
        self.log(f"trial {rec['number']:3d} {how}: {spec.metric}={shown}  " + describe_values(rec["columns"]))

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
        """The best scored trial (completed or stopped by ASHA); of equal values, the earlier trial."""
        spec = self.sweep.spec
        scored = [r for r in self.records.values() if r["status"] in ("completed", "stopped") and r["value"] is not None]
        if not scored:
            return None
        sign = 1.0 if spec.mode == "min" else -1.0
        return min(scored, key=lambda r: (sign * r["value"], r["number"]))

    def tag_best(self) -> dict[str, Any] | None:
        """Tag every finished trial's run ``sportpose.best`` true or false, and the parent with the best; returns it."""
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
    now = int(time.time() * 1000)
    tracking.client().log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                                tags=[RunTag(k, str(v)) for k, v in tags.items()])


def describe_values(columns: dict[str, Any]) -> str:
    """A trial's values as one line, ``w_s=0.6 w_t=0.3 w_c=0.1``."""
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in columns.items())
