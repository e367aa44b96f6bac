"""Registering a trained model and the champion rule (SPEC §9).

- Final models are pyfunc models defined from code (:mod:`sportpose.registry.pyfunc`) carrying the
  resolved spec and a state dict; loading one never unpickles code. The signature is inferred from one real
  sample and the wrapper's own ``predict`` on it, with the optional ``affine`` param (frame coordinates).
- Its pip requirements are what the loader imports (torch, MLflow, NumPy, PyYAML), pinned to the versions it
  was trained with; nothing of the training side (Ray, OpenCV, decord) is needed to load or serve it.
- A new version gets the alias ``candidate``; ``champion`` moves to it only when it beats the current
  champion on the primary metric (direction-aware) on the same evaluation data.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
import yaml
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature

import sportpose
from sportpose.errors import DataError, TrainingError
from sportpose.registry import pyfunc, tracking
from sportpose.spec.experiment import ExperimentSpec, spec_yaml


def register_model(spec: ExperimentSpec, run_id: str, weights: dict[str, torch.Tensor],
                   example: dict[str, np.ndarray], value: float, fingerprint: str) -> Promotion:
    """Log the trained model to ``run_id`` as a pyfunc from code, register it under the spec's name and apply
    the champion rule on ``spec.register.metric`` = ``value``.

    Args:
        example: one sample's model inputs (batch of 1), the input example and the signature's source.
        fingerprint: the evaluation data's fingerprint (champions are compared on the same data only).
    """
    reason = unregistrable(weights, value)
    if reason:
        raise TrainingError(f"{spec.registered_name}: not registered: {reason}")
    model = spec.build_model()
    model.load_state_dict(weights)
    model.eval()
    wrapper = pyfunc.SportposeModel()
    wrapper.model = model
    # the outputs as a caller who passes the crop affines gets them (keypoints_frame too); the params schema
    # declares that optional affine (pyfunc.PARAMS)
    inferred = infer_signature(example, wrapper.predict(None, example, {"affine": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]}))
    signature = ModelSignature(inferred.inputs, inferred.outputs, pyfunc.PARAMS)
    with tempfile.TemporaryDirectory() as d:
        spec_path, weights_path = Path(d) / "spec.yaml", Path(d) / "weights.pt"
        spec_path.write_text(spec_yaml(spec))
        torch.save(weights, weights_path)
        return log_and_register(run_id, spec.registered_name, spec_path, weights_path, signature, example,
                                spec.register.metric, value, spec.register.mode, fingerprint)


def unregistrable(weights: dict[str, torch.Tensor], value: float) -> str:
    """Why a model must not be registered (never a candidate, never champion), or "" when it may: weights that
    are NaN or infinite, or a primary metric that is not finite."""
    bad = [k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        return f"{len(bad)} weight tensors are not finite ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''})"
    if not np.isfinite(value):
        return f"its primary metric is not finite ({value})"
    return ""


@dataclass(frozen=True)
class Promotion:
    """What the champion rule decided for a new version."""

    name: str
    version: str
    promoted: bool
    reason: str


def beats(new: float, current: float | None, mode: str) -> bool:
    """The champion rule: a strictly better primary metric in the direction ``mode`` (max or min)."""
    if current is None:
        return True
    return new > current if mode == "max" else new < current


def log_and_register(
    run_id: str,
    registered_name: str,
    spec_yaml_path: str | Path,
    weights_path: str | Path,
    signature: Any,
    input_example: Any,
    metric: str,
    value: float,
    mode: str,
    eval_fingerprint: str,
) -> Promotion:
    """Log the model to ``run_id`` as a pyfunc from code, register it, and apply the alias rules."""
    tracking.client()
    with mlflow.start_run(run_id=run_id), _registration_lines_dropped():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=pyfunc.__file__,
            artifacts={"spec": str(spec_yaml_path), "weights": str(weights_path)},
            code_paths=[str(Path(sportpose.__file__).parent)],
            signature=signature,
            input_example=input_example,
            pip_requirements=_requirements(),
            registered_model_name=registered_name,
        )
    version = str(info.registered_model_version)
    return apply_aliases(registered_name, version, metric, value, mode, eval_fingerprint)


# What MLflow prints (not logs) while registering: the project's own "registry: NAME vN -> ..." line says it
REGISTRATION_LINES = re.compile(r"^(Successfully registered model '"
                                r"|Registered model '.*' already exists\. Creating a new version"
                                r"|Created version '\d+' of model ')")


@contextlib.contextmanager
def _registration_lines_dropped() -> Iterator[None]:
    """MLflow's registration lines (:data:`REGISTRATION_LINES`) off the console while MLflow logs above INFO
    (``MLFLOW_LOGGING_LEVEL``, which the CLI sets to WARNING without ``--verbose``). MLflow prints them to
    stderr itself (``eprint``), past its logging level; anything else printed meanwhile is passed on at the end."""
    level = logging.getLevelName(os.environ.get("MLFLOW_LOGGING_LEVEL", "INFO").upper())
    if not isinstance(level, int) or level <= logging.INFO:
        yield
        return
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stderr(buffer):
            yield
    finally:
        kept = [line for line in buffer.getvalue().splitlines(keepends=True) if not REGISTRATION_LINES.match(line)]
        sys.stderr.write("".join(kept))


def _requirements() -> list[str]:
    return [f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}",
            f"numpy=={np.__version__}", f"pyyaml=={yaml.__version__}"]


def apply_aliases(name: str, version: str, metric: str, value: float, mode: str, eval_fingerprint: str) -> Promotion:
    """Tag the version with its metric, give it ``candidate``, and move ``champion`` if it wins.

    The comparison is only made on the same evaluation data (``eval_fingerprint``); against a champion
    evaluated on other data the new version stays a candidate (promote by hand with
    ``sportpose registry promote``).
    """
    c = tracking.client()
    c.set_model_version_tag(name, version, f"metric.{metric}", f"{value:.6f}")
    c.set_model_version_tag(name, version, "metric_name", metric)
    c.set_model_version_tag(name, version, "metric_mode", mode)
    c.set_model_version_tag(name, version, "eval_data", eval_fingerprint)
    c.set_registered_model_alias(name, "candidate", version)
    try:
        champion = c.get_model_version_by_alias(name, "champion")
    except MlflowException:
        champion = None
    if champion is None:
        c.set_registered_model_alias(name, "champion", version)
        return Promotion(name, version, True, "first version: champion")
    tags = champion.tags
    if tags.get("eval_data") != eval_fingerprint or f"metric.{metric}" not in tags:
        return Promotion(name, version, False,
                         f"champion v{champion.version} was evaluated on other data or another metric; stays champion")
    current = float(tags[f"metric.{metric}"])
    if beats(value, current, mode):
        c.set_registered_model_alias(name, "champion", version)
        return Promotion(name, version, True, f"{metric} {value:.4f} beats champion v{champion.version} ({current:.4f})")
    return Promotion(name, version, False, f"{metric} {value:.4f} does not beat champion v{champion.version} ({current:.4f})")


def promote(name: str, version: str, alias: str = "champion") -> None:
    """Move an alias to a version by hand.

    Raises:
        DataError: the model or the version is not in the registry (naming what it holds).
    """
    client = tracking.client()
    try:
        versions = sorted((str(v.version) for v in client.search_model_versions(f"name = '{name}'")), key=int)
    except MlflowException:
        versions = []
    if not versions:
        names = ", ".join(m.name for m in client.search_registered_models()) or "none"
        raise DataError(tracking.tracking_uri(), "registry", f"no registered model {name!r} (registered: {names})")
    if str(version) not in versions:
        raise DataError(tracking.tracking_uri(), "registry",
                        f"{name} has no version {version!r} (versions: {', '.join(versions)})")
    client.set_registered_model_alias(name, alias, str(version))
