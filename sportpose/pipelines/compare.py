"""``sportpose compare RUN_OR_MODEL ...``: several evaluations side by side in one markdown table.

Each argument is one of:

- an output folder of ``sportpose evaluate`` (or any ``metrics.json`` file, e.g. the pipeline's
  ``runs/outputs/<name>/<run>/evaluation.json``);
- an MLflow run id: its ``evaluation/metrics.json`` artifact (written by ``sportpose evaluate`` and by the
  training pipeline's parent run), else the run's logged metrics;
- ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``: the evaluation of the registered version's source run
  (the training pipeline's, on the data of its day).

Row labels say where a row comes from: ``sportpose-multistream v3`` (a registered version's training run),
``… (evaluate 1a2b3c4d)`` (an evaluation run), ``… (<folder>)`` (an output folder).

Columns are those the evaluations have: for 2D, PoseTrack AP per group (Head … Total) and PCKh; for 3D,
MPJPE, P-MPJPE, PCK3D, AUC and TS; and the protocol of each (split, boxes, flip test, samples). Rows evaluated
under different protocols are flagged under the table: their numbers do not compare.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException

from sportpose.errors import DataError
from sportpose.evaluation.report import AP_COLUMNS
from sportpose.evaluation.tables import md_table
from sportpose.registry import tracking
from sportpose.registry.load import model_version
from sportpose.spec.fill import get_key

RUN_ID = re.compile(r"^[0-9a-f]{32}$")
COLUMNS_2D = [(f"ap_groups.{g}", g, "{:.1f}") for g in AP_COLUMNS] + [("pckh", "PCKh", "{:.1f}")]
COLUMNS_3D = [("mpjpe", "MPJPE", "{:.1f}"), ("p_mpjpe", "P-MPJPE", "{:.1f}"), ("pck3d", "PCK3D", "{:.1f}"),
              ("auc3d", "AUC", "{:.1f}"), ("ts", "TS", "{:.2f}")]
PROTOCOL = ("split", "boxes", "flip_test", "samples")


@dataclass
class Evaluation:
    name: str  # row label
    source: str  # what was given
    metrics: dict[str, Any]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DataError(str(path), "", f"not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise DataError(str(path), "", "expected an object of evaluation metrics")
    return data


def _from_run(run_id: str, source: str, name: str | None = None) -> Evaluation:

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    client = tracking.client()
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise DataError(source, "", f"no MLflow run {run_id} in {tracking.tracking_uri()}") from None
    kind = run.data.tags.get("sportpose.kind", "run")
    label = name or run.data.tags.get("sportpose.model_label") or run.info.run_name or run_id[:8]
    label = f"{label} ({'evaluate' if kind == 'evaluation' else kind} {run_id[:8]})"
    try:
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/evaluation/metrics.json")
        return Evaluation(label, source, json.loads(text))
    except Exception:  # no artifact: the run's logged metrics (flat names)
        pass
    metrics: dict[str, Any] = dict(run.data.metrics)
    groups = {g: metrics[f"ap.{g}"] for g in AP_COLUMNS if f"ap.{g}" in metrics}
    if groups:
        metrics["ap_groups"] = groups
    if not any(k in metrics for k in ("ap", "pckh", "mpjpe")):
        raise DataError(source, "", f"MLflow run {run_id} holds no evaluation (no evaluation/metrics.json, no ap, "
                                    "pckh or mpjpe metric)")
    return Evaluation(label, source, metrics)


def load_evaluation(source: str) -> Evaluation:
    """The evaluation ``source`` names (see the module doc).

    Raises:
        DataError: nothing readable as an evaluation there.
    """
    if source.startswith("models:/"):
        version = model_version(source)
        if not version.run_id:
            raise DataError(source, "", "the registered version names no source run")
        return _from_run(version.run_id, source, name=f"{version.name} v{version.version}")  # its training run
    path = Path(source)
    if path.is_dir():
        for name in ("metrics.json", "evaluation.json"):
            if (path / name).is_file():
                data = _read_json(path / name)
                label = (data.get("model") or {}).get("label") if isinstance(data.get("model"), dict) else None
                return Evaluation(f"{label} ({path.name})" if label else path.name, source, data)
        raise DataError(source, "", "holds no metrics.json (an output folder of `sportpose evaluate`)")
    if path.is_file():
        return Evaluation(path.parent.name, source, _read_json(path))
    if RUN_ID.match(source):
        return _from_run(source, source)
    raise DataError(source, "", "not an evaluation folder, metrics.json, MLflow run id or models:/ URI")


def _fmt(value: Any, pattern: str) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return "-" if not math.isfinite(float(value)) else pattern.format(value)
    return "-" if value is None else str(value)


def compare_table(evaluations: list[Evaluation]) -> str:
    """One markdown table of the evaluations, and notes on protocols that differ."""
    columns = []
    if any(get_key(e.metrics, "ap_groups.Total") is not None or e.metrics.get("pckh") is not None for e in evaluations):
        columns += [c for c in COLUMNS_2D if any(get_key(e.metrics, c[0]) is not None for e in evaluations)]
    if any(e.metrics.get("mpjpe") is not None for e in evaluations):
        columns += COLUMNS_3D
    header = ["evaluation", *[c[1] for c in columns], "split", "boxes", "flip test", "samples"]
    rows = [[e.name, *[_fmt(get_key(e.metrics, key), pattern) for key, _, pattern in columns],
             *[_fmt(e.metrics.get(k), "{:.0f}") for k in PROTOCOL]] for e in evaluations]
    lines = [md_table(header, rows), ""]
    protocols = {tuple(str(e.metrics.get(k)) for k in PROTOCOL) for e in evaluations}
    if len(protocols) > 1:
        lines.append("Note: the rows were evaluated under different protocols or on different samples (split, boxes, "
                     "flip test or sample count differ): those numbers do not compare directly.")
    lines += [f"- {e.name}: {e.source}" for e in evaluations]
    return "\n".join(lines)
