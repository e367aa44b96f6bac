"""PoseTrack 2018: read and write the per-video (or merged) JSON files, ignore regions, and the image id rule.

Image ids are ``TSSSSSSFFFF`` (SPEC §3.2; T: 1 mpii, 2 bonn, 3 mpiinew; S: the video's sequence number;
F: 0-based frame), built by :func:`posetrack_image_id` for every reader and writer of the project, so
``frame_index = image_id % FRAMES_PER_VIDEO``. Predictions are written in this layout with per-joint
``scores``, so that the official poseval tool accepts them.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from sportpose.errors import DataError
from sportpose.models.skeleton import POSETRACK
from sportpose.data.formats.annotations import FrameAnnotation, PersonAnnotation, VideoAnnotation
from sportpose.data.formats.checks import (
    box, describe, integer, json_list, json_object, load_json, number, numbers, required,
)

# The category block of the official PoseTrack 2018 files (COCO skeleton, 1-based joint indices).
POSETRACK18_CATEGORY = {
    "supercategory": "person",
    "id": 1,
    "name": "person",
    "keypoints": list(POSETRACK.joints),
    "skeleton": [
        [16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
        [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7],
    ],
}

FRAMES_PER_VIDEO = 10_000  # the four frame digits FFFF of an image id
# PoseTrack sequence sources as encoded in the first digit of an image id (poseval's posetrack18_id2fname).
SEQUENCE_TYPES = {"mpii": 1, "bonn": 2, "mpiinew": 3}
_VIDEO_NAME = re.compile(r"(\d+)_(mpiinew|mpii|bonn)(?:_|$)")


def posetrack_image_id(video_number: int, frame_index: int, sequence_type: str = "mpii") -> int:
    """The PoseTrack 2018 image id ``TSSSSSSFFFF`` of a video's frame.

    Args:
        video_number: the six sequence digits ``SSSSSS`` (``3418`` for ``003418_mpii_test``; SynthCourt: the
            clip index).
        frame_index: the 0-based frame, ``0 <= frame_index < FRAMES_PER_VIDEO``.
        sequence_type: ``mpii``, ``bonn`` or ``mpiinew``, the digit ``T``.
    """
    return SEQUENCE_TYPES[sequence_type] * 10**10 + video_number * FRAMES_PER_VIDEO + frame_index


def parse_video_name(name: str) -> tuple[int, str] | None:
    """(video number, sequence type) of a PoseTrack video name ``SSSSSS_mpii|bonn|mpiinew[_...]``, else None.

    ``parse_video_name("003418_mpii_test") == (3418, "mpii")``: the arguments of :func:`posetrack_image_id`.
    """
    m = _VIDEO_NAME.match(name)
    return None if m is None else (int(m.group(1)), m.group(2))


def read_posetrack18(path: str | os.PathLike) -> list[VideoAnnotation]:
    """Read a PoseTrack 2018 file (SPEC §3.2).

    A per-video file gives one video; a merged file (several ``vid_id``) gives one video per ``vid_id``, in
    order of first appearance. Frames are sorted by ``frame_index``; persons keep their file order.

    Fields read: images ``id``, ``file_name`` (required), ``is_labeled`` (default: the image has annotations),
    ``nframes`` (default: the number of images), ``vid_id`` (default: the image's folder),
    ``ignore_regions_x/y``; annotations ``image_id``, ``keypoints`` (required, 51 numbers), ``track_id``
    (default -1), ``bbox``, ``bbox_head``, ``scores`` (``[]`` = none), ``score``, and ``keypoints_3d`` (not
    PoseTrack; written by `write_posetrack18` when a source has 3D joints).

    Args:
        path: the JSON file.

    Returns:
        The videos of the file.

    Raises:
        DataError: not JSON, ``images`` / ``annotations`` missing, a keypoint list that is not 51 finite
            numbers, an ``image_id`` that refers to no image, a bad box, etc.
    """
    return parse_posetrack18(load_json(path), str(path))


def parse_posetrack18(data: Any, path: str) -> list[VideoAnnotation]:
    """The videos of an already loaded PoseTrack 2018 file (``path`` names it in errors)."""
    data = json_object(data, path, "")
    if "images" not in data and "annolist" in data:
        raise DataError(path, "images", "missing; this is a PoseTrack 2017 file (read_posetrack17 reads it)")
    images = json_list(required(data, "images", path, ""), path, "images")
    annotations = json_list(required(data, "annotations", path, ""), path, "annotations")
    categories = json_list(data.get("categories", []), path, "categories")
    for i, cat in enumerate(categories):
        names = cat.get("keypoints") if isinstance(cat, dict) else None
        if names is not None and names != list(POSETRACK.joints):
            raise DataError(
                path, f"categories[{i}].keypoints",
                f"expected the 17 PoseTrack 2018 joints in file order ({', '.join(POSETRACK.joints)})",
            )

    frames: dict[int, FrameAnnotation] = {}
    labeled_flags: dict[int, bool | None] = {}
    groups: dict[str, list[int]] = {}  # vid_id -> image ids, in file order
    nframes: dict[str, int] = {}
    for i, image in enumerate(images):
        where = f"images[{i}]"
        image = json_object(image, path, where)
        image_id = integer(required(image, "id", path, where), path, f"{where}.id")
        file_name = required(image, "file_name", path, where)
        if not isinstance(file_name, str):
            raise DataError(path, f"{where}.file_name", f"expected a string, got {describe(file_name)}")
        if image_id in frames:
            raise DataError(path, f"{where}.id", f"duplicate image id {image_id}")
        frames[image_id] = FrameAnnotation(
            image_id=image_id,
            file_name=file_name,
            frame_index=image_id % FRAMES_PER_VIDEO,
            is_labeled=False,
            persons=[],
            ignore_regions=_ignore_regions18(image, path, where),
        )
        labeled_flags[image_id] = bool(image["is_labeled"]) if "is_labeled" in image else None
        group = str(image["vid_id"]) if "vid_id" in image else os.path.dirname(file_name)
        groups.setdefault(group, []).append(image_id)
        if "nframes" in image and group not in nframes:
            nframes[group] = integer(image["nframes"], path, f"{where}.nframes")

    for i, ann in enumerate(annotations):
        where = f"annotations[{i}]"
        ann = json_object(ann, path, where)
        image_id = integer(required(ann, "image_id", path, where), path, f"{where}.image_id")
        if image_id not in frames:
            raise DataError(path, f"{where}.image_id", f"{image_id} refers to no image in 'images'")
        frames[image_id].persons.append(_parse_person18(ann, path, where))

    videos = []
    for group, image_ids in groups.items():
        video_frames = sorted((frames[i] for i in image_ids), key=lambda f: f.frame_index)
        for frame in video_frames:
            flag = labeled_flags[frame.image_id]
            frame.is_labeled = flag if flag is not None else bool(frame.persons)
        folder = os.path.basename(os.path.dirname(video_frames[0].file_name))
        videos.append(VideoAnnotation(
            name=folder or (Path(path).stem if len(groups) == 1 else group),
            path=path,
            nframes=nframes.get(group, len(video_frames)),
            frames=video_frames,
            categories=categories,
        ))
    return videos


def _ignore_regions18(image: dict, path: str, where: str) -> list[np.ndarray]:
    xs = json_list(image.get("ignore_regions_x", []), path, f"{where}.ignore_regions_x")
    ys = json_list(image.get("ignore_regions_y", []), path, f"{where}.ignore_regions_y")
    if len(xs) != len(ys):
        raise DataError(path, f"{where}.ignore_regions_y", f"{len(ys)} polygons for {len(xs)} in ignore_regions_x")
    regions = []
    for k, (x, y) in enumerate(zip(xs, ys)):
        x = numbers(x, None, path, f"{where}.ignore_regions_x[{k}]")
        y = numbers(y, len(x), path, f"{where}.ignore_regions_y[{k}]")
        regions.append(np.stack([x, y], axis=1).astype(np.float32))  # (N, 2)
    return regions


def _parse_person18(ann: dict, path: str, where: str) -> PersonAnnotation:
    keypoints = numbers(required(ann, "keypoints", path, where), 51, path, f"{where}.keypoints")
    scores = ann.get("scores")
    score = ann.get("score")
    kp3d = ann.get("keypoints_3d")
    if kp3d is not None:
        nested = isinstance(kp3d, list) and all(isinstance(row, list) for row in kp3d)
        flat = [v for row in kp3d for v in row] if nested else kp3d
        kp3d = numbers(flat, None, path, f"{where}.keypoints_3d")
        if kp3d.size % 3:
            raise DataError(path, f"{where}.keypoints_3d", f"expected J x 3 numbers, got {kp3d.size}")
        kp3d = kp3d.reshape(-1, 3).astype(np.float32)  # (J, 3) mm
    return PersonAnnotation(
        track_id=integer(ann.get("track_id", -1), path, f"{where}.track_id"),
        keypoints=keypoints.reshape(17, 3).astype(np.float32),
        bbox=box(ann.get("bbox"), path, f"{where}.bbox"),
        bbox_head=box(ann.get("bbox_head"), path, f"{where}.bbox_head"),
        # float64: rounding scores to float32 could create ties that reorder poseval's ranking
        scores=None if scores in (None, []) else numbers(scores, 17, path, f"{where}.scores"),
        score=None if score is None else number(score, path, f"{where}.score"),
        keypoints_3d=kp3d,
    )
def write_posetrack18(video: VideoAnnotation, path: str | os.PathLike, predictions: bool = True) -> None:
    """Write one video as a PoseTrack 2018 file that poseval reads.

    Image entries carry ``id``, ``file_name``, ``frame_id`` (= id), ``vid_id`` (the 6 sequence digits of the
    id), ``nframes``, ``is_labeled`` and ``ignore_regions_x/y``; annotation ids are ``image_id * 100 + k``
    as in the official files. Per-joint ``scores`` are written whenever a person has them (``[]`` otherwise,
    as the ground-truth files do); ``predictions=True`` requires them, because poseval ranks joints by score
    and falls back to -9999 without. The file is written to a temporary name and renamed, so a reader never
    sees half a file.

    Args:
        video: the video to write.
        path: output JSON path; its folder is created.
        predictions: require per-joint scores on every person.

    Raises:
        ValueError: a person without scores when ``predictions`` is set, or non-finite coordinates.
    """
    images, annotations = [], []
    for frame in video.frames:
        images.append({
            "has_no_densepose": True,
            "is_labeled": bool(frame.is_labeled),
            "file_name": frame.file_name,
            "nframes": int(video.nframes),
            "frame_id": int(frame.image_id),
            "vid_id": f"{(frame.image_id // FRAMES_PER_VIDEO) % 1000000:06d}",
            "id": int(frame.image_id),
            "ignore_regions_x": [[float(v) for v in poly[:, 0]] for poly in frame.ignore_regions],
            "ignore_regions_y": [[float(v) for v in poly[:, 1]] for poly in frame.ignore_regions],
        })
        for k, person in enumerate(frame.persons):
            where = f"{path}: image {frame.image_id} person {k} (track {person.track_id})"
            if predictions and person.scores is None:
                raise ValueError(f"{where}: no per-joint scores; poseval needs them to rank predictions")
            kp = np.asarray(person.keypoints, dtype=np.float64).reshape(17, 3)
            if not np.isfinite(kp).all():
                raise ValueError(f"{where}: non-finite keypoints cannot be written")
            ann: dict[str, Any] = {
                "id": int(frame.image_id) * 100 + k,
                "image_id": int(frame.image_id),
                "track_id": int(person.track_id),
                "category_id": 1,
                "keypoints": [_json_number(v) for v in kp.reshape(-1)],
                "scores": [] if person.scores is None else [float(s) for s in np.asarray(person.scores).reshape(17)],
            }
            if person.bbox is not None:
                ann["bbox"] = [float(v) for v in person.bbox]
            if person.bbox_head is not None:
                ann["bbox_head"] = [float(v) for v in person.bbox_head]
            if person.score is not None:
                ann["score"] = float(person.score)
            if person.keypoints_3d is not None:
                ann["keypoints_3d"] = np.asarray(person.keypoints_3d, dtype=np.float64).tolist()
            annotations.append(ann)
    data = {"images": images, "annotations": annotations, "categories": video.categories or [POSETRACK18_CATEGORY]}

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, allow_nan=False)
    os.replace(tmp, path)


def _json_number(v: float) -> int | float:
    """Integral values as ints (visibility flags, whole pixels), others as floats."""
    v = float(v)
    return int(v) if v.is_integer() else v
