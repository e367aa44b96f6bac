"""The Ray Data pipeline: a manifest of clips becomes a Ray Dataset of person samples (SPEC §3.3).

Each clip is one Ray task running :func:`~sportpose.data.tubes.cut_clip_columns`, which cuts all of the
clip's samples (person tubes, their targets and optional parts: see :mod:`~sportpose.data.tubes`) from one
pass over its video (decord, one thread, the reader created inside the task). Splits are by video, never by
frame.

Augmentation (train split only) is drawn per tube from ``(seed, epoch, clip, frame, track)``. Cut once (the
default) or written to Parquet by :mod:`~sportpose.data.prepare`, a tube keeps the draw of epoch 0 for
every epoch; with ``data.stream`` the train split is re-cut from video every epoch (``build_split(...,
stream=True)``) and each epoch draws afresh, the epoch counted per clip by a small actor.

A clip that cannot be read is skipped and logged with the file at fault and the reason in a data report; the
job fails with a clear message when the skipped fraction exceeds ``data.max_skip_fraction``, and on the
first bad clip when ``data.on_error`` is ``raise``. No sample is silently wrong: a truncated or unreadable
video, an empty file, annotated frames beyond the video's length, a box of zero area or outside the frame
and NaN keypoints (in the JSON or the 3D file) all make the clip fail rather than produce a bad sample.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import ray
from ray.data.block import BlockAccessor

from sportpose.data.bones import clip_group, training_bone_lengths
from sportpose.data.tubes import META_KEYS, cut_clip_columns
from sportpose.errors import DataError
from sportpose.models.skeleton import H36M
from sportpose.spec.data import DataSpec

SPLITS = ("train", "val", "test")


@dataclass
class DataReport:
    """What a pass over the clips read, and what it had to skip (logged to MLflow as data_report.json)."""

    split: str
    clips: int = 0
    samples: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)  # [{"clip", "path", "reason"}]
    boxes: str = "gt"  # the samples' boxes: gt, or the detections file they came from

    @property
    def skipped_fraction(self) -> float:
        return len(self.skipped) / self.clips if self.clips else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"split": self.split, "clips": self.clips, "samples": self.samples, "boxes": self.boxes,
                "skipped_clips": len(self.skipped), "skipped_fraction": self.skipped_fraction,
                "skipped": self.skipped}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "DataReport":
        return DataReport(split=d["split"], clips=d["clips"], samples=d["samples"], skipped=list(d["skipped"]),
                          boxes=d.get("boxes", "gt"))

    def check(self, max_skip_fraction: float) -> None:
        """Raises DataError naming the first skipped file when more clips were skipped than allowed."""
        if self.skipped_fraction > max_skip_fraction:
            first = self.skipped[0]
            raise DataError(
                first["path"], "data.max_skip_fraction",
                f"{len(self.skipped)} of {self.clips} {self.split} clips could not be read "
                f"({self.skipped_fraction:.0%} > {max_skip_fraction:.0%}); first: {first['reason']}",
            )


def load_clips(root: str | Path, fractions: tuple[float, float, float], seed: int) -> list[dict[str, Any]]:
    """Read ``root/manifest.json`` and give every clip absolute paths and a split.

    Clips keep a ``split`` written in the manifest; the others are assigned by video with ``fractions``
    (train, val, test), deterministically from ``seed``. Every clip gets the training split's mean bone lengths
    per body-scale group (``bone_groups``, :mod:`~sportpose.data.bones`; computed once, from the training clips)
    and its own group (``bone_group``), which its samples' ``bone_lengths`` column is cut from.

    Raises:
        DataError: the manifest is missing or malformed, or a training clip's 3D file cannot be read.
    """
    root = Path(root).resolve()
    path = root / "manifest.json"
    if not path.exists():
        raise DataError(str(path), "manifest", "file not found (generate data with `sportpose data synth`)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DataError(str(path), "manifest", f"not valid JSON: {e}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("clips"), list):
        raise DataError(str(path), "clips", "expected a list of clips")
    clips = []
    for i, entry in enumerate(manifest["clips"]):
        for key in ("name", "video", "annotations"):
            if key not in entry:
                raise DataError(str(path), f"clips[{i}].{key}", "missing")
        clip = {
            "name": entry["name"],
            "video": str(root / entry["video"]),
            "annotations": str(root / entry["annotations"]),
            "points3d": str(root / entry["points3d"]) if entry.get("points3d") else "",
            "split": entry.get("split", ""),
            "meta": {k: str(entry.get("meta", {}).get(k, "")) for k in META_KEYS},
        }
        frames = entry.get("frames")  # a frame folder's own numbering (an import's), else the naming's
        if frames is not None:
            if not (isinstance(frames, dict) and set(frames) <= {"first", "step"}
                    and all(isinstance(v, int) and v >= 0 for v in frames.values()) and frames.get("step", 1) >= 1):
                raise DataError(str(path), f"clips[{i}].frames", f"expected {{first: N, step: S}} with integers "
                                                                 f"N >= 0, S >= 1, got {frames!r}")
            clip["frames"] = dict(frames)
        lengths = entry.get("meta", {}).get("bone_lengths")
        if lengths is not None:  # an import's measured lengths of the person, mm (h36m edges)
            edges = len(H36M.edges)
            if not (isinstance(lengths, list) and len(lengths) == edges
                    and all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in lengths)):
                raise DataError(str(path), f"clips[{i}].meta.bone_lengths", f"expected {edges} positive lengths in "
                                                                            f"mm (h36m edges), got {lengths!r}")
            clip["bone_lengths"] = lengths
        clip["bone_group"] = clip_group(entry.get("meta", {}))
        clips.append(clip)
    unassigned = sorted(c["name"] for c in clips if not c["split"])
    assignment = assign_splits(unassigned, fractions, seed)
    for clip in clips:
        clip["split"] = clip["split"] or assignment[clip["name"]]
        if clip["split"] not in SPLITS:
            raise DataError(str(path), f"clips[{clip['name']}].split", f"expected one of {SPLITS}, got {clip['split']!r}")
    groups = training_bone_lengths(clips)  # from the training split only, once for every clip
    for clip in clips:
        clip["bone_groups"] = groups
    return clips


def assign_splits(names: list[str], fractions: tuple[float, float, float], seed: int) -> dict[str, str]:
    """Videos to train/val/test. Every split with a non-zero fraction gets at least one video when possible."""
    order = sorted(names)
    rng = np.random.default_rng(seed)
    order = [order[i] for i in rng.permutation(len(order))]
    n = len(order)
    counts = [int(round(f * n)) for f in fractions]
    for i in (2, 1):  # make sure val and test are non-empty when asked for
        if fractions[i] > 0 and counts[i] == 0 and n - sum(counts[j] for j in range(3) if j != i) > 1:
            counts[i] = 1
    counts[0] = n - counts[1] - counts[2]
    out, start = {}, 0
    for split, count in zip(SPLITS, counts):
        for name in order[start : start + count]:
            out[name] = split
        start += count
    return out


@ray.remote(num_cpus=0)
class ClipLog:
    """Collects what the pipeline's tasks did: clips done, samples cut, clips skipped with their reasons."""

    def __init__(self):
        self.items: list[dict[str, str]] = []
        self.samples = 0
        self.finished = 0

    def skip(self, clip: str, path: str, reason: str) -> None:
        self.items.append({"clip": clip, "path": path, "reason": reason})
        self.finished += 1

    def done(self, n: int) -> None:
        self.samples += n
        self.finished += 1

    def progress(self) -> int:
        return self.finished

    def get(self) -> tuple[list[dict[str, str]], int]:
        return sorted(self.items, key=lambda d: d["clip"]), self.samples


@ray.remote(num_cpus=0)
class _EpochClock:
    """How many times each clip has been cut by a streamed dataset: the epoch of its augmentation draws."""

    def __init__(self):
        self.counts: dict[str, int] = {}

    def next(self, clip: str) -> int:
        epoch = self.counts.get(clip, 0)
        self.counts[clip] = epoch + 1
        return epoch


def _cut_batch(clip: dict[str, Any], data: DataSpec, seed: int, epoch: int, boxes: str, check_only: bool,
               skip_bad: bool) -> tuple[dict[str, np.ndarray] | None, dict[str, Any]]:
    """One clip's samples as columns and what happened: ``{"samples": n}`` or ``{"skip": (path, reason)}``."""
    cv2.setNumThreads(1)  # the task has one CPU; OpenCV's thread pool would oversubscribe it
    try:
        cols = cut_clip_columns(clip, data, seed, epoch, boxes=boxes, check_only=check_only)
    except DataError as e:
        if not skip_bad:
            raise
        return None, {"skip": (e.path, str(e))}
    n = int(cols["samples"][0]) if check_only else len(cols["frame"])
    return (cols if n or check_only else None), {"samples": n}


@ray.remote(num_cpus=1, num_returns=2)
def _cut_block(clip: dict[str, Any], data: DataSpec, seed: int, boxes: str, check_only: bool,
               skip_bad: bool) -> tuple[Any, dict[str, Any]]:
    """One clip as one Arrow block (None without samples) and its outcome (see :func:`_cut_batch`)."""
    cols, outcome = _cut_batch(clip, data, seed, 0, boxes, check_only, skip_bad)
    return (BlockAccessor.batch_to_block(cols) if cols is not None else None), outcome


def clip_dataset(clips: list[dict[str, Any]], data: DataSpec, seed: int, *, boxes: str = "gt", log: Any = None,
                 clock: Any = None, check_only: bool = False) -> ray.data.Dataset:
    """A lazy Ray Dataset of the samples of ``clips``: one task per clip (:func:`cut_clip_columns`).

    Args:
        log: a ``ClipLog`` actor; with it a bad clip is skipped and logged (unless ``data.on_error`` is
            ``raise``), without it every DataError is fatal.
        clock: an ``_EpochClock`` actor: each execution of the dataset draws the augmentation of its epoch.
        check_only: rows of ``samples`` counts instead of samples (a checking pass).
    """
    skip_bad = data.on_error != "raise" and log is not None

    def cut(batch: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
        # A generator: a clip without samples yields no batch (an empty batch's tensor columns would not
        # convert to Arrow tensors and would poison the dataset's schema).
        clip = json.loads(str(batch["clip"][0]))
        epoch = ray.get(clock.next.remote(clip["name"])) if clock is not None else 0
        cols, outcome = _cut_batch(clip, data, seed, epoch, boxes, check_only, skip_bad)
        if log is not None:
            if "skip" in outcome:
                ray.get(log.skip.remote(clip["name"], *outcome["skip"]))
            else:
                ray.get(log.done.remote(outcome["samples"]))
        if cols is not None:
            yield cols

    items = [{"clip": json.dumps(c)} for c in clips]
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    return ds.map_batches(cut, batch_size=1, batch_format="numpy")


def materialized_split(clips: list[dict[str, Any]], data: DataSpec, seed: int, *, boxes: str = "gt",
                       check_only: bool = False) -> tuple[ray.data.Dataset, list[dict[str, str]], int]:
    """The samples of ``clips`` cut by plain Ray tasks, one per clip, each returning its Arrow block, gathered
    into a materialised Dataset (``ray.data.from_arrow_refs``).

    What :func:`clip_dataset` followed by ``materialize`` gives, without Ray Data's streaming executor and a
    log actor between the tasks: on two cores those cost about as much again as cutting the clips (16 clips of
    demo tubes: 1.9 s against 0.9 s, ``bench/data_pipeline.py``).

    Returns:
        the dataset, the skipped clips (``{"clip", "path", "reason"}``, sorted by clip) and the sample count.

    Raises:
        DataError: a bad clip under ``data.on_error: raise``.
    """
    skip_bad = data.on_error != "raise"
    pairs = [_cut_block.remote(c, data, seed, boxes, check_only, skip_bad) for c in clips]
    outcomes = surface_data_errors(lambda: ray.get([o for _, o in pairs]))
    skipped = sorted(({"clip": c["name"], "path": o["skip"][0], "reason": o["skip"][1]}
                      for c, o in zip(clips, outcomes) if "skip" in o), key=lambda d: d["clip"])
    samples = sum(o.get("samples", 0) for o in outcomes)
    blocks = [b for (b, _), o in zip(pairs, outcomes) if "skip" not in o and (o["samples"] or check_only)]
    ds = ray.data.from_arrow_refs(blocks) if blocks else ray.data.from_items([])
    return ds, skipped, samples


def numpy_batches(ds: ray.data.Dataset, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """A split's samples in order, as batches of numpy columns (what the predict functions consume)."""
    return ds.iter_batches(batch_size=batch_size, batch_format="numpy")


def surface_data_errors(run: Callable[[], Any]) -> Any:
    """``run()``, raising a Ray task's DataError itself rather than Ray's wrapper around it."""
    try:
        return run()
    except Exception as e:
        err = _find_cause(e, DataError)
        if err is not None:
            raise DataError(err.path, err.field, err.message) from None
        raise


def build_split(clips: list[dict[str, Any]], data: DataSpec, split: str, seed: int, *, boxes: str = "gt",
                stream: bool = False) -> tuple[ray.data.Dataset, DataReport]:
    """Cut one split's samples with Ray Data.

    Args:
        clips: :func:`load_clips` output; only those of ``split`` are used.
        data: the spec's ``DataSpec``.
        boxes: ``gt`` or a detections file (evaluation samples, see :func:`cut_clip_columns`).
        stream: False: the samples are cut once and materialised in the object store (augmentation fixed
            at epoch 0's draw). True: a checking pass decodes every clip and writes the report, then the
            returned dataset is lazy and re-cuts the good clips from video each time it is iterated, with
            that epoch's augmentation; its tasks need a free CPU while training runs.

    Returns:
        The dataset and the split's data report.

    Raises:
        DataError: ``on_error: raise`` and a bad clip, or more clips skipped than ``max_skip_fraction``.
    """
    chosen = [c for c in clips if c["split"] == split]
    report = DataReport(split=split, clips=len(chosen), boxes=boxes)
    if not chosen:
        return ray.data.from_items([]), report
    ds, report.skipped, report.samples = materialized_split(chosen, data, seed, boxes=boxes, check_only=stream)
    report.check(data.max_skip_fraction)
    if stream:
        bad = {s["clip"] for s in report.skipped}
        good = [c for c in chosen if c["name"] not in bad]
        ds = clip_dataset(good, data, seed, boxes=boxes, clock=_EpochClock.remote())
    return ds, report


def _find_cause(exc: BaseException, kind: type) -> Any:
    seen = set()
    stack = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, kind):
            return e
        stack += [e.__cause__, e.__context__, getattr(e, "cause", None)]
    return None
