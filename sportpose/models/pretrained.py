"""Pretrained initialisation from local files: torchvision ImageNet state dicts and MMPose checkpoints.

Nothing is downloaded: a spec's ``model.*pretrained`` fields name files a user has put on disk. Each model
class says where its files go in ``PRETRAINED``: ``{config field: (backbone prefix, {head part: module
prefix})}``; :func:`initialise` loads every file the config names and returns one :class:`LoadReport` each,
the table of matched / missing / unused keys the training pipeline prints and logs to MLflow.

File layouts (:func:`read_checkpoint`):

- torchvision: a flat state dict in the backbone's own names (ResNet ``conv1.weight``, ``layer1.0.conv1.weight``,
  ``fc.weight``; VGG ``features.N.*``, ``classifier.N.*``; EfficientNet ``features.i.j.block.*``). The whole file
  is the backbone; keys of parts the backbone does not build (a classifier, ``layer4`` of a C4 ResNet) are
  unused.
- MMPose: a dict with ``state_dict`` (``meta``, ``optimizer`` and anything else ignored), or such a state dict
  itself. ``backbone.*`` is the backbone in the same names (MMPose's ResNet and HRNet keep torchvision's and
  pose_hrnet's); the top-down heatmap head is ``keypoint_head.*`` (MMPose 0.x) or ``head.*`` (1.x) with
  ``deconv_layers.{0,1,3,4,6,7}`` (three 4x4 deconvolutions with BatchNorm) and ``final_layer`` (K, C, 1, 1).

Strictness: in a part the file covers and the model has (the backbone; a head part named in ``PRETRAINED``)
every key must be present with the model's shape. A missing key, a key the part does not have, or a shape
that differs is a :class:`DataError` naming the file and the key (with both shapes), and the model is left
as it was. BatchNorm's ``num_batches_tracked`` may be absent (checkpoints older than PyTorch 0.4).

Joint sets: the MMPose zoo's top-down models predict COCO's 17 keypoints (their ``meta`` holds no names, so
a 17-row ``final_layer`` is read as COCO). Its rows are copied for the joints the model's set shares by name
(PoseTrack: 15 of 17, all but head_bottom and head_top; Human3.6M: the 12 limb joints); the others keep their
initialisation and the report lists them. A final layer of another size is unused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sportpose.errors import DataError

COCO_JOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
)
# For each joint of a model's set, the COCO row its heatmap comes from (None: COCO has no such joint).
FROM_COCO: dict[str, tuple[int | None, ...]] = {
    "posetrack": (0, None, None, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16),
    "h36m": (None, 12, 14, 16, 11, 13, 15, None, None, None, None, 5, 7, 9, 6, 8, 10),
}
HEAD_PREFIXES = ("keypoint_head.", "head.")  # MMPose 0.x, 1.x
_MAX_KEYS_SHOWN = 20


@dataclass
class KeyRow:
    file_key: str  # "" where the file has no such key
    model_key: str  # "" where the model has no such key
    status: str  # matched | rows | kept | unused
    note: str = ""


@dataclass
class LoadReport:
    """What one file initialised: a row per key of the file and of the part of the model it covers."""

    path: str
    layout: str  # torchvision | mmpose
    name: str = ""  # the config field that named the file
    rows: list[KeyRow] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.rows)

    def summary(self) -> str:
        unused = [r.file_key for r in self.rows if r.status == "unused"]
        parts = [f"{self.count('matched')} keys matched", f"{self.count('rows')} copied by joint",
                 f"{self.count('kept')} kept (not in the file)", f"{len(unused)} unused"]
        shown = f" ({_show(unused, 4)})" if unused else ""
        return f"{self.name or 'pretrained'}: {self.path} ({self.layout}): " + ", ".join(parts) + shown

    def table(self) -> str:
        """Markdown: the summary and every key."""
        lines = [f"## {self.name or 'pretrained'}", "", self.summary(), "",
                 "| file key | model key | status | note |", "|---|---|---|---|"]
        lines += [f"| {r.file_key or '-'} | {r.model_key or '-'} | {r.status} | {r.note} |" for r in self.rows]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "layout": self.layout, "field": self.name,
                "counts": {s: self.count(s) for s in ("matched", "rows", "kept", "unused")}}


def _show(keys: list[str], limit: int = _MAX_KEYS_SHOWN) -> str:
    more = len(keys) - limit
    return ", ".join(keys[:limit]) + (f", ... and {more} more" if more > 0 else "")


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict of a local checkpoint and its layout (``"torchvision"`` or ``"mmpose"``).

    Loaded with ``torch.load(weights_only=True)``: a file that needs code to unpickle is refused.

    Raises:
        DataError: the file is missing, not loadable as weights, or holds no mapping of names to tensors.
    """
    path = str(path)
    if not Path(path).is_file():
        raise DataError(path, "", "file not found (pretrained weights are local files; nothing is downloaded)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise DataError(path, "", f"cannot be read as a weights-only checkpoint: {type(e).__name__}: "
                                  f"{str(e).splitlines()[0] if str(e) else ''}") from None
    state, field_name = obj, ""
    if isinstance(obj, Mapping) and "state_dict" in obj:
        state, field_name = obj["state_dict"], "state_dict"
    if not isinstance(state, Mapping) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise DataError(path, field_name, "expected a state dict (a mapping of parameter names to tensors), or an "
                                          "MMPose checkpoint holding one under 'state_dict'")
    state = dict(state)
    if all(k.startswith("module.") for k in state):  # saved from a DataParallel/DDP wrapper
        state = {k[len("module."):]: v for k, v in state.items()}
    mmpose = field_name == "state_dict" or any(k.startswith("backbone.") for k in state)
    return state, "mmpose" if mmpose else "torchvision"


def load_pretrained(model: nn.Module, path: str | Path, backbone: str = "", heads: Mapping[str, str] | None = None,
                    joint_set: str | None = None, field_name: str = "") -> LoadReport:
    """Initialise ``model``'s backbone (and head parts, from an MMPose file) from a local checkpoint.

    Args:
        model: the module holding the backbone (the backbone itself when ``backbone`` is "").
        path: a torchvision or MMPose file (see the module docstring).
        backbone: the backbone's prefix in ``model`` (``"spatial.backbone"``).
        heads: MMPose head parts the model has, by their name in the file: ``{"deconv_layers": "deconv",
            "final_layer": "head"}``; a part not named is unused.
        joint_set: the model's joint set, for copying a COCO ``final_layer`` by joint name.
        field_name: the config field that named the file, for the report and errors.

    Returns:
        the report: one row per key of the file and of the covered part of the model.

    Raises:
        DataError: names the file and the missing keys, keys the part lacks, or mismatched shapes (both shapes).
    """
    state, layout = read_checkpoint(path)
    path = str(path)
    heads = dict(heads or {})
    own = model.state_dict()
    prefix = f"{backbone}." if backbone else ""
    ignore = tuple(getattr(model.get_submodule(backbone) if backbone else model, "pretrained_ignore", ()))

    # Split the file into the backbone and head parts (keys relative to each part).
    if layout == "mmpose":
        backbone_file = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
        head_file = {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith(HEAD_PREFIXES)}
        head_root = next((p for p in HEAD_PREFIXES if any(k.startswith(p) for k in state)), HEAD_PREFIXES[0])
        other = [k for k in state if not k.startswith(("backbone.", *HEAD_PREFIXES))]
    else:
        backbone_file, head_file, head_root, other = state, {}, "", []
    file_name = (lambda k: f"backbone.{k}") if layout == "mmpose" else (lambda k: k)

    rows: list[KeyRow] = []
    updates: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    unexpected: list[str] = []
    mismatched: list[str] = []

    def match_part(file_part: dict[str, torch.Tensor], name_in_file, model_prefix: str, skip: tuple[str, ...]):
        part_own = {k[len(model_prefix):]: v for k, v in own.items() if k.startswith(model_prefix)}
        for k, v in file_part.items():
            if skip and k.startswith(skip):
                rows.append(KeyRow(name_in_file(k), "", "unused", "a part the model does not build"))
            elif k not in part_own:
                unexpected.append(name_in_file(k))
            elif v.shape != part_own[k].shape:
                mismatched.append(f"{name_in_file(k)} (file {tuple(v.shape)}, model {tuple(part_own[k].shape)})")
            else:
                updates[model_prefix + k] = v
                rows.append(KeyRow(name_in_file(k), model_prefix + k, "matched", _shape(v)))
        for k in part_own:
            if k not in file_part:
                if k.endswith("num_batches_tracked"):
                    rows.append(KeyRow("", model_prefix + k, "kept", "absent in the file (BatchNorm counter)"))
                else:
                    missing.append(model_prefix + k)

    match_part(backbone_file, file_name, prefix, ignore)
    for part in sorted({k.split(".", 1)[0] for k in head_file}):
        keys = {k.split(".", 1)[1]: v for k, v in head_file.items() if k.split(".", 1)[0] == part}
        target = heads.get(part)
        if target is None:
            rows += [KeyRow(f"{head_root}{part}.{k}", "", "unused", "the model has no such head part") for k in keys]
        elif part == "final_layer":
            rows += _final_layer(keys, own, target, joint_set, f"{head_root}{part}.", updates, mismatched)
        else:
            match_part(keys, lambda k, p=part: f"{head_root}{p}.{k}", f"{target}.", ())
    rows += [KeyRow(k, "", "unused", "outside the backbone and head") for k in other]

    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {_show(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_show(unexpected)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches: {_show(mismatched)}")
    if problems:
        where = f"{backbone or type(model).__name__}" + (f" (model.{field_name})" if field_name else "")
        raise DataError(path, "state_dict", f"does not fit {where}: " + "; ".join(problems))
    with torch.no_grad():
        for k, v in updates.items():
            own[k].copy_(v)  # state_dict() tensors share storage with the parameters and buffers
    return LoadReport(path, layout, field_name, rows)


def _shape(v: torch.Tensor) -> str:
    return "x".join(map(str, v.shape)) or "scalar"


def _final_layer(keys: dict[str, torch.Tensor], own: dict[str, torch.Tensor], target: str, joint_set: str | None,
                 file_prefix: str, updates: dict[str, torch.Tensor], mismatched: list[str]) -> list[KeyRow]:
    """Copy a COCO heatmap layer's rows into the model's head for the joints both sets name."""
    weight = keys.get("weight")
    rows_from = FROM_COCO.get(joint_set or "")
    if weight is None or weight.shape[0] != len(COCO_JOINTS) or rows_from is None:
        why = (f"{weight.shape[0] if weight is not None else '?'} heatmaps, not COCO's 17" if rows_from else
               f"no joint mapping from COCO to {joint_set!r}")
        return [KeyRow(file_prefix + k, "", "unused", why) for k in keys]
    out: list[KeyRow] = []
    names = [COCO_JOINTS[i] for i in rows_from if i is not None]
    for k, v in keys.items():
        model_key = f"{target}.{k}"
        if model_key not in own:
            out.append(KeyRow(file_prefix + k, "", "unused", "the model's head has no such key"))
            continue
        mine = own[model_key]
        if mine.shape[0] != len(rows_from) or v.shape[1:] != mine.shape[1:]:
            mismatched.append(f"{file_prefix}{k} (file {tuple(v.shape)}, model {tuple(mine.shape)})")
            continue
        merged = mine.detach().clone()
        for j, i in enumerate(rows_from):
            if i is not None:
                merged[j] = v[i]
        updates[model_key] = merged
        out.append(KeyRow(file_prefix + k, model_key, "rows",
                          f"{len(names)}/{len(rows_from)} joints from COCO ({', '.join(names)}); the rest kept"))
    return out


def initialise(model: nn.Module, config: Any, joint_set: str | None = None) -> list[LoadReport]:
    """Load every file ``config``'s ``*pretrained`` fields name into ``model`` (``type(model).PRETRAINED`` says
    where each goes) and attach the reports to ``model.pretrained_reports``."""
    reports = []
    for name, (backbone, heads) in getattr(type(model), "PRETRAINED", {}).items():
        path = getattr(config, name, None)
        if not path:
            continue
        try:
            model.get_submodule(backbone)
        except AttributeError:
            continue  # the stream is not built (a single-stream spec with the file set for another)
        reports.append(load_pretrained(model, path, backbone, heads, joint_set, name))
    model.pretrained_reports = reports
    return reports


def reports_markdown(reports: list[LoadReport], replaced: Mapping[str, tuple[str, ...]] | None = None) -> str:
    """All reports as one markdown file; ``replaced`` ({stage: module prefixes}) marks the matched keys an
    earlier stage's checkpoint overwrites afterwards."""
    parts = ["# Pretrained initialisation", ""]
    for report in reports:
        if replaced:
            for row in report.rows:
                for stage, prefixes in replaced.items():
                    if row.model_key and any(row.model_key.startswith(p) for p in prefixes):
                        row.note = (row.note + "; " if row.note else "") + f"then loaded from stage {stage}"
        parts.append(report.table())
    return "\n".join(parts)
