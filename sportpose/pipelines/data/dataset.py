"""The Ray Data pipeline: a manifest of clips becomes a Ray Dataset of person samples (SPEC §3.3).

Each clip is one Ray task: it reads the clip's annotations, opens its video once, decodes every frame its
samples need exactly once, and cuts all of the clip's samples. Splits are by video, never by frame.

A clip that cannot be read is skipped and logged with its path and reason in a data report; the job fails
with a clear message when the skipped fraction exceeds ``data.max_skip_fraction``, and on the first bad clip
when ``data.on_error`` is ``raise``. No sample is silently wrong: boxes of zero area or outside the frame and
NaN keypoints make the clip fail, rather than producing a bad sample.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import ray

from sportpose.errors import DataError
from sportpose.models.skeleton import JOINT_SETS
from sportpose.pipelines.data import samples as S
from sportpose.pipelines.data.formats import read_posetrack18
from sportpose.pipelines.data.video import open_video, read_frames

SPLITS = ("train", "val", "test")
META_KEYS = ("view", "blur", "occlusion", "body")


@dataclass
class DataReport:
    """What a pass over the clips read, and what it had to skip (logged to MLflow as data_report.json)."""

    split: str
    clips: int = 0
    samples: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)  # [{"path", "reason"}]

    @property
    def skipped_fraction(self) -> float:
        return len(self.skipped) / self.clips if self.clips else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"split": self.split, "clips": self.clips, "samples": self.samples,
                "skipped_clips": len(self.skipped), "skipped_fraction": self.skipped_fraction,
                "skipped": self.skipped}


def load_clips(root: str | Path, fractions: tuple[float, float, float], seed: int) -> list[dict[str, Any]]:
    """Read ``root/manifest.json`` and give every clip absolute paths and a split.

    Clips keep a ``split`` written in the manifest; the others are assigned by video with ``fractions``
    (train, val, test), deterministically from ``seed``.

    Raises:
        DataError: the manifest is missing or malformed.
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
        clips.append(clip)
    unassigned = sorted(c["name"] for c in clips if not c["split"])
    assignment = assign_splits(unassigned, fractions, seed)
    for clip in clips:
        clip["split"] = clip["split"] or assignment[clip["name"]]
        if clip["split"] not in SPLITS:
            raise DataError(str(path), f"clips[{clip['name']}].split", f"expected one of {SPLITS}, got {clip['split']!r}")
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


def tube_indices(center: int, window: int, interval: int, num_frames: int) -> list[int]:
    """Frame indices of a tube: ``center + (j - window // 2) * interval``, clamped at the clip ends."""
    half = window // 2
    return [min(max(center + (j - half) * interval, 0), num_frames - 1) for j in range(window)]


def _sample_seed(seed: int, *parts: Any) -> int:
    digest = hashlib.sha256(json.dumps([seed, *parts]).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def cut_clip(clip: dict[str, Any], data: Any, seed: int, decode_threads: int = 1) -> list[dict[str, Any]]:
    """Every sample of one clip, decoding each needed frame once.

    Args:
        clip: an entry of :func:`load_clips`.
        data: the spec's ``DataSpec``.
        seed: experiment seed (augmentation draws derive from it and the sample's identity).

    Returns:
        rows: ``tube`` (T, H, W, 3) uint8, ``heatmaps`` (K, H/4, W/4) float32, ``target_weight`` (K,),
        ``keypoints`` (K, 3) crop pixels + labeled flag, ``keypoints_image`` (K, 3) image pixels + flag,
        ``affine`` (2, 3) image -> crop, ``head_size`` (image pixels; 0 when the person has no head box),
        ``video``, ``frame``, ``track_id``, ``image_id`` and the clip's metadata.

    Raises:
        DataError: the clip cannot be read or holds an impossible annotation.
    """
    joint_set = JOINT_SETS[data.joint_set]
    videos = read_posetrack18(clip["annotations"])
    if len(videos) != 1:
        raise DataError(clip["annotations"], "images", f"expected one video per file, found {len(videos)}")
    video = videos[0]
    persons = []
    labeled = [f for f in video.frames if f.is_labeled][:: data.frame_stride]
    for frame in labeled:
        for person in frame.persons:
            kp = person.keypoints
            if not np.isfinite(kp).all():
                raise DataError(clip["annotations"], f"image {frame.image_id} track {person.track_id} keypoints", "NaN coordinates")
            if person.bbox is None:
                continue
            if int((kp[:, 2] > 0).sum()) < data.min_visible_joints:
                continue
            persons.append((frame, person))
    if data.max_samples_per_clip and len(persons) > data.max_samples_per_clip:
        keep = np.linspace(0, len(persons) - 1, data.max_samples_per_clip).round().astype(int)
        persons = [persons[i] for i in keep]

    reader = open_video(clip["video"], num_threads=decode_threads)
    n = reader.num_frames
    for frame, _ in persons:
        if frame.frame_index >= n:
            raise DataError(clip["annotations"], f"image {frame.image_id}", f"annotated frame {frame.frame_index} is beyond the video's {n} frames")
    tubes = [tube_indices(f.frame_index, data.window, data.interval, n) for f, _ in persons]
    frames = read_frames(reader, [i for t in tubes for i in t])
    if not frames:
        return []
    height, width = next(iter(frames.values())).shape[:2]

    rows = []
    size = tuple(data.input_size)
    aug_spec = data.augment
    perm = joint_set.flip_permutation()
    for (frame, person), tube in zip(persons, tubes):
        box = np.asarray(person.bbox, dtype=np.float64)
        if not np.isfinite(box).all() or box[2] <= 0 or box[3] <= 0:
            raise DataError(clip["annotations"], f"image {frame.image_id} track {person.track_id} bbox", f"zero or negative area: {box.tolist()}")
        if box[0] >= width or box[1] >= height or box[0] + box[2] <= 0 or box[1] + box[3] <= 0:
            raise DataError(clip["annotations"], f"image {frame.image_id} track {person.track_id} bbox", f"outside the {width}x{height} frame: {box.tolist()}")
        crop = S.box_to_crop(box, size, data.box_scale)
        aug = S.Augmentation()
        if clip["split"] == "train":
            rng = np.random.default_rng(_sample_seed(seed, clip["name"], frame.frame_index, person.track_id))
            aug = S.Augmentation.draw(rng, aug_spec.flip, aug_spec.rotation, aug_spec.scale, aug_spec.color_jitter, aug_spec.probability)
        crop = S.CropTransform(crop.center, crop.size, rotation=aug.rotation, flip=aug.flip)
        affine = S.crop_affine(crop, size, scale=aug.scale)
        tube_images = np.stack([S.warp(frames[i], affine, size) for i in tube])  # (T, H, W, 3)
        tube_images = aug.apply_colour(tube_images)
        kp_img = person.keypoints.astype(np.float64)  # (K, 3)
        kp_crop = S.transform_points(kp_img[:, :2], affine)  # (K, 2)
        vis = kp_img[:, 2] > 0
        if aug.flip:
            kp_crop, vis = kp_crop[perm], vis[perm]
        heatmaps, weight = S.gaussian_heatmaps(kp_crop, vis, size, data.heatmap_sigma)
        head = person.bbox_head
        head_size = float(0.6 * math.hypot(head[2], head[3])) if head is not None else 0.0
        rows.append({
            "tube": tube_images,
            "heatmaps": heatmaps,
            "target_weight": weight,
            "keypoints": np.concatenate([kp_crop, vis[:, None]], axis=1).astype(np.float32),
            "keypoints_image": kp_img.astype(np.float32),
            "affine": affine.astype(np.float32),
            "head_size": np.float32(head_size),
            "video": clip["name"],
            "frame": int(frame.frame_index),
            "track_id": int(person.track_id),
            "image_id": int(frame.image_id),
            **{k: clip["meta"].get(k, "") for k in META_KEYS},
        })
    return rows


@ray.remote(num_cpus=0)
class _SkipLog:
    """Collects the clips the pipeline's tasks had to skip."""

    def __init__(self):
        self.items: list[dict[str, str]] = []
        self.samples = 0

    def add(self, path: str, reason: str) -> None:
        self.items.append({"path": path, "reason": reason})

    def count(self, n: int) -> None:
        self.samples += n

    def get(self) -> tuple[list[dict[str, str]], int]:
        return self.items, self.samples


def build_split(clips: list[dict[str, Any]], data: Any, split: str, seed: int) -> tuple[ray.data.Dataset, DataReport]:
    """Cut one split's samples with Ray Data and materialise them in the object store.

    Raises:
        DataError: ``on_error: raise`` and a bad clip, or more clips skipped than ``max_skip_fraction``.
    """
    chosen = [c for c in clips if c["split"] == split]
    report = DataReport(split=split, clips=len(chosen))
    if not chosen:
        return ray.data.from_items([]), report
    log = _SkipLog.remote()
    on_error = data.on_error

    def cut(row: dict[str, Any]) -> list[dict[str, Any]]:
        clip = json.loads(row["clip"])
        try:
            rows = cut_clip(clip, data, seed)
        except DataError as e:
            if on_error == "raise":
                raise
            ray.get(log.add.remote(clip["video"], str(e)))
            return []
        ray.get(log.count.remote(len(rows)))
        return rows

    items = [{"clip": json.dumps(c)} for c in chosen]
    ds = ray.data.from_items(items, override_num_blocks=len(items)).flat_map(cut)
    try:
        ds = ds.materialize()
    except Exception as e:  # Ray wraps the task's exception; surface the DataError itself
        err = _find_cause(e, DataError)
        if err is not None:
            raise DataError(err.path, err.field, err.message) from None
        raise
    skipped, n_samples = ray.get(log.get.remote())
    ray.kill(log)
    report.skipped = skipped
    report.samples = n_samples
    if report.skipped_fraction > data.max_skip_fraction:
        first = skipped[0]
        raise DataError(
            first["path"], "data.max_skip_fraction",
            f"{len(skipped)} of {report.clips} {split} clips could not be read "
            f"({report.skipped_fraction:.0%} > {data.max_skip_fraction:.0%}); first: {first['reason']}",
        )
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
