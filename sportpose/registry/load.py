"""A trained model for inference and evaluation: ``models:/NAME@ALIAS``, a checkpoint folder, or a checkpoint file.

- **Registry** (``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``): a registered model is the pyfunc of
  :mod:`sportpose.registry.pyfunc`, whose artifacts are the resolved spec (``artifacts/spec.yaml``) and a
  state dict (``artifacts/weights.pt``). Only those two files are downloaded; the network is rebuilt from the
  spec and the weights loaded with ``torch.load(weights_only=True)``, so nothing is unpickled and the
  pyfunc's logged code is never imported.
- **Checkpoint file**: a stage checkpoint (``checkpoint.pt``: ``{"model": state dict, ...}``) or a bare state
  dict, loaded with ``weights_only=True``.
- **Checkpoint folder**: one holding ``checkpoint.pt``, or a Ray Train run folder of ``epoch_NNNN/``
  checkpoints, of which the best by the stage's metric is taken, as the pipeline takes it (the values come
  from the last checkpoint's history; the stage is named in the checkpoint).

A checkpoint carries no spec. It is found, in this order: ``spec=`` (``--spec``); a ``spec.yaml`` or
``resolved.yaml`` beside the checkpoint or in up to three folders above it; the pipeline's record of the run
it came from (Ray Train names a stage's run folder ``<spec name>-<parent run id[:8]>-<stage>``, and the
pipeline writes ``<runs>/outputs/<spec name>/<parent run id[:8]>/resolved.yaml``).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import torch
import yaml
from mlflow.exceptions import MlflowException
from torch import nn

from sportpose.errors import DataError, SpecError
from sportpose.models.skeleton import JOINT_SETS
from sportpose.paths import runs_dir
from sportpose.registry import tracking
from sportpose.spec.experiment import ExperimentSpec, load_spec, spec_from_dict
from sportpose.training import checkpoints, loop
from sportpose.training.checkpoints import CHECKPOINT_FILE

REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")
SPEC_FILES = ("spec.yaml", "resolved.yaml")
RUN_FOLDER = re.compile(r"^(?P<spec>.+)-(?P<run>[0-9a-f]{8})-(?P<stage>[^-]+)(?:-r\d+)?$")


@dataclass
class LoadedModel:
    """A model rebuilt from its spec, in eval mode, and where it came from."""

    spec: ExperimentSpec  # the model section built it; its data section says how its samples are cut
    model: nn.Module
    source: str  # what the user gave: a models:/ URI or a path
    label: str  # short name for tables and titles, e.g. sportpose-multistream v2
    registry: dict[str, str] = field(default_factory=dict)  # name, version, run_id of a registered model
    checkpoint: str = ""  # the checkpoint file a path resolved to

    @property
    def kind(self) -> str:
        return self.spec.model.kind

    @property
    def joint_set(self):
        return JOINT_SETS[self.spec.data.joint_set]

    def describe(self) -> dict[str, str]:
        """Plain facts for reports and MLflow tags."""
        out = {"source": self.source, "label": self.label, "kind": self.kind, "spec_name": self.spec.name}
        out.update({f"registry_{k}": v for k, v in self.registry.items()})
        if self.checkpoint:
            out["checkpoint"] = self.checkpoint
        return out


def load_model(source: str, spec: str | Path | None = None) -> LoadedModel:
    """Resolve ``source`` and rebuild its model.

    Args:
        source: ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, a checkpoint folder or a checkpoint file.
        spec: the experiment spec of a checkpoint (ignored for a registered model, which carries its own).

    Raises:
        DataError: an unknown registered model, alias or version, a missing or unreadable checkpoint, or a
            checkpoint whose spec cannot be found; the message names what was looked for.
        SpecError: a spec that does not validate.
    """
    if source.startswith("models:/"):
        return _from_registry(source)
    if "://" in source or source.startswith("runs:/"):
        raise DataError(source, "--model", "expected models:/NAME@ALIAS, models:/NAME/VERSION, a checkpoint folder "
                                           "or a checkpoint file")
    return _from_checkpoint(Path(source), spec)


def build(spec: ExperimentSpec, state: dict[str, torch.Tensor], where: str) -> nn.Module:
    """The spec's model with ``state`` loaded, in eval mode.

    Raises:
        DataError: the state dict does not fit the spec's model (naming the first missing or unexpected key).
    """
    model = spec.build_model()
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise DataError(where, "weights", f"do not fit the spec's {spec.model.kind} model: {first[:200]}") from None
    return model.eval()


# -- registry ---------------------------------------------------------------------------------------------------


def parse_registry_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/NAME@ALIAS`` -> (NAME, ALIAS, None); ``models:/NAME/VERSION`` -> (NAME, None, VERSION).

    Raises:
        DataError: another form.
    """
    m = REGISTRY_URI.match(uri)
    if m is None:
        raise DataError(uri, "--model", "expected models:/NAME@ALIAS or models:/NAME/VERSION")
    return m.group("name"), m.group("alias"), m.group("version")


def model_version(uri: str):
    """The registry's ModelVersion of ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``.

    Raises:
        DataError: no such registered model, alias or version, naming what the registry has instead.
    """
    name, alias, version = parse_registry_uri(uri)
    client = tracking.client()
    try:
        registered = client.get_registered_model(name)
    except MlflowException:
        known = sorted(m.name for m in client.search_registered_models())
        raise DataError(uri, "", f"no registered model {name!r} in {tracking.tracking_uri()} (registered: "
                                 f"{', '.join(known) or 'none'})") from None
    try:
        return client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
    except MlflowException:
        if alias:
            aliases = ", ".join(f"{a} (v{v})" for a, v in sorted((registered.aliases or {}).items())) or "none"
            raise DataError(uri, "", f"{name} has no alias {alias!r}; its aliases: {aliases} "
                                     "(sportpose registry list)") from None
        raise DataError(uri, "", f"{name} has no version {version} (sportpose registry list)") from None


def _from_registry(uri: str) -> LoadedModel:
    version = model_version(uri)
    name = version.name
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory(prefix="sportpose-model-") as d:
        files = {}
        for key, artifact in (("spec", "spec.yaml"), ("weights", "weights.pt")):
            try:
                files[key] = mlflow.artifacts.download_artifacts(
                    artifact_uri=f"models:/{name}/{version.version}/artifacts/{artifact}", dst_path=d)
            except Exception as e:  # an MlflowException or an OSError from the artifact store
                raise DataError(uri, f"artifacts/{artifact}", f"cannot be downloaded: {str(e).splitlines()[0][:200]} "
                                "(is this a sportpose pyfunc model?)") from None
        try:
            spec = spec_from_dict(yaml.safe_load(Path(files["spec"]).read_text()))
        except SpecError as e:
            raise e.within(file=f"{uri} artifacts/spec.yaml") from None
        state = torch.load(files["weights"], map_location="cpu", weights_only=True)
    model = build(spec, state, uri)
    return LoadedModel(spec=spec, model=model, source=uri, label=f"{name} v{version.version}",
                       registry={"name": name, "version": str(version.version), "run_id": version.run_id or ""})


# -- checkpoints ------------------------------------------------------------------------------------------------


def _from_checkpoint(path: Path, spec_path: str | Path | None) -> LoadedModel:
    if not path.exists():
        raise DataError(str(path), "--model", "no such checkpoint file or folder (or give models:/NAME@ALIAS)")
    file = _checkpoint_file(path)
    try:
        blob = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip or torch errors of a damaged or foreign file
        raise DataError(str(file), "", f"not a readable PyTorch checkpoint: {str(e).splitlines()[0][:200]}") from None
    state = blob["model"] if isinstance(blob, dict) and isinstance(blob.get("model"), dict) else blob
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(str(file), "", "holds no state dict (expected {'model': state dict, ...} or a state dict)")
    found = Path(spec_path) if spec_path else find_spec(file)
    if found is None:
        raise DataError(str(file), "spec", "no spec.yaml or resolved.yaml beside it or above it, and no pipeline "
                                           "record of its run; give the experiment spec with --spec")
    spec = load_spec(found)
    label = file.parent.name if file.name == CHECKPOINT_FILE else file.stem
    if file.parent.parent.name and RUN_FOLDER.match(file.parent.parent.name):
        label = f"{file.parent.parent.name}/{file.parent.name}"
    return LoadedModel(spec=spec, model=build(spec, state, str(file)), source=str(path), label=label,
                       checkpoint=str(file))


def _checkpoint_file(path: Path) -> Path:
    """The checkpoint file ``path`` names: itself, its ``checkpoint.pt``, or its best ``epoch_NNNN``'s.

    Raises:
        DataError: a folder with neither.
    """
    if path.is_file():
        return path
    if (path / CHECKPOINT_FILE).is_file():
        return path / CHECKPOINT_FILE
    epochs = checkpoints.epoch_dirs(path)
    if not epochs:
        raise DataError(str(path), "", f"holds neither {CHECKPOINT_FILE} nor epoch_NNNN/{CHECKPOINT_FILE} checkpoints")
    return best_epoch(epochs) / CHECKPOINT_FILE


def best_epoch(epochs: list[Path]) -> Path:
    """The best of a Ray Train run's epoch folders by its stage's metric, as the pipeline picks it
    (:func:`sportpose.training.loop.best_epoch`).

    The last checkpoint's history holds every epoch's metrics; the stage's metric and mode come from the spec
    of the run (found as for any checkpoint), falling back to the latest epoch when either is unknown.
    """
    last = epochs[-1]
    try:
        blob = checkpoints.load(last)
        history = json.loads(blob.get("history", "[]"))
        stage_name = blob.get("stage")
    except Exception:
        return last
    spec_file = find_spec(last / CHECKPOINT_FILE)
    if not spec_file or not history or not stage_name:
        return last
    try:
        stage = yaml.safe_load(spec_file.read_text())["train"]["stages"][stage_name]
    except (KeyError, TypeError, yaml.YAMLError, OSError):
        return last
    epoch = loop.best_epoch(history, stage.get("metric", "val_loss"), stage.get("mode", "min"))
    chosen = last.parent / checkpoints.epoch_dir_name(epoch) if epoch is not None else last
    return chosen if (chosen / CHECKPOINT_FILE).is_file() else last


def find_spec(checkpoint: Path) -> Path | None:
    """The spec of a checkpoint file: beside it or up to three folders above, else the pipeline's record."""
    folder = checkpoint.resolve().parent
    for candidate in [folder, *list(folder.parents)[:3]]:
        for name in SPEC_FILES:
            if (candidate / name).is_file():
                return candidate / name
    for candidate in [folder, *list(folder.parents)[:2]]:
        m = RUN_FOLDER.match(candidate.name)
        if m:
            for base in (runs_dir(), candidate.parent.parent):
                resolved = base / "outputs" / m.group("spec") / m.group("run") / "resolved.yaml"
                if resolved.is_file():
                    return resolved
    return None
