"""Dataset formats: PoseTrack 2018 / 2017 annotations, COCO person detections, Human3.6M (VideoPose3D).

Everything the benchmarks ship is read into three plain dataclasses (`VideoAnnotation` > `FrameAnnotation` >
`PersonAnnotation`) in the PoseTrack 2018 layout (SPEC §3.2): 17 joints in file order (`skeleton.POSETRACK`),
pixel coordinates, boxes ``[x, y, w, h]``. Predictions are written back in the same layout, with per-joint
``scores``, so that the official poseval tool accepts them.

Units and conventions:
- 2D keypoints in pixels, ``(17, 3)`` float32 rows ``x, y, v``; an unlabeled joint is ``0, 0, 0`` as in the
  files (poseval treats exactly ``x == y == v == 0`` as "not annotated").
- PoseTrack image ids are ``TSSSSSSFFFF`` (T: 1 mpii, 2 bonn, 3 mpiinew; S: sequence; F: 0-based frame), so
  ``frame_index = image_id % 10000``.
- Human3.6M 3D joints in mm (the VideoPose3D files hold metres), reduced from 32 to the 17 ``h36m`` joints.

Bad files raise `DataError` with one line ``path: field: message``. A missing file raises the usual
``FileNotFoundError``.

Trust: VideoPose3D stores its dicts as pickled object arrays inside the ``.npz``, so `read_h36m_3d` and
`read_h36m_2d` load them with ``allow_pickle=True``. Unpickling can run arbitrary code: load only archives
built by VideoPose3D's own preparation scripts or by yourself. No other reader of this module unpickles.
"""

from __future__ import annotations

import json
import math
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sportpose.errors import DataError
from sportpose.models.skeleton import POSETRACK, POSETRACK15, convert


# VideoPose3D's Human36mDataset.remove_joints: the 32 mocap joints minus these 15 give the 17 h36m joints.
H36M_REMOVED_JOINTS = (4, 5, 9, 10, 11, 16, 20, 21, 22, 23, 24, 28, 29, 30, 31)
H36M_KEPT_JOINTS = tuple(j for j in range(32) if j not in H36M_REMOVED_JOINTS)

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

# PoseTrack sequence sources as encoded in the first digit of an image id (poseval's posetrack18_id2fname).
_SEQUENCE_TYPES = {"mpii": 1, "bonn": 2, "mpiinew": 3}


@dataclass
class PersonAnnotation:
    track_id: int
    keypoints: np.ndarray  # (17, 3) float32: x, y (pixels), v (visibility 0/1); posetrack order
    bbox: np.ndarray | None  # (4,) x, y, w, h pixels
    bbox_head: np.ndarray | None  # (4,) x, y, w, h
    scores: np.ndarray | None = None  # (17,) per-joint scores (predictions); float64 as read
    score: float | None = None  # person score (predictions/detections)
    keypoints_3d: np.ndarray | None = None  # (J, 3) mm, when a source has them


@dataclass
class FrameAnnotation:
    image_id: int  # PoseTrack id 1VVVVVVFFFF
    file_name: str
    frame_index: int  # 0-based index into the video (image_id % 10000 for PoseTrack18)
    is_labeled: bool
    persons: list[PersonAnnotation]
    ignore_regions: list[np.ndarray]  # polygons, each (N, 2) pixels


@dataclass
class VideoAnnotation:
    name: str  # video name, e.g. "003418_mpii_test"
    path: str  # file it was read from
    nframes: int
    frames: list[FrameAnnotation]  # sorted by frame_index
    categories: list[dict]  # as read (kept for writing back)


# --------------------------------------------------------------------------------------------------------------
# Field checks shared by the JSON readers. Each names the file and the field, on one line.


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numbers(value: Any, n: int | None, path: str, field: str) -> np.ndarray:
    """A JSON list of ``n`` finite numbers (any length when ``n`` is None) as float64."""
    if not isinstance(value, list) or (n is not None and len(value) != n):
        want = f"a list of {n} numbers" if n is not None else "a list of numbers"
        raise DataError(path, field, f"expected {want}, got {_describe(value)}")
    for i, v in enumerate(value):
        if not _is_number(v):
            raise DataError(path, field, f"expected numbers, got {_describe(v)} at index {i}")
    arr = np.asarray(value, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise DataError(path, field, f"non-finite value ({arr[bad[0]]}) at index {int(bad[0])}")
    return arr


def _number(value: Any, path: str, field: str) -> float:
    if not _is_number(value) or not math.isfinite(value):
        raise DataError(path, field, f"expected a finite number, got {_describe(value)}")
    return float(value)


def _integer(value: Any, path: str, field: str) -> int:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise DataError(path, field, f"expected an integer, got {_describe(value)}")
    return value


def _required(obj: dict, key: str, path: str, prefix: str) -> Any:
    if key not in obj:
        raise DataError(path, f"{prefix}.{key}" if prefix else key, "missing")
    return obj[key]


def _object(value: Any, path: str, field: str) -> dict:
    if not isinstance(value, dict):
        raise DataError(path, field, f"expected an object, got {_describe(value)}")
    return value


def _list(value: Any, path: str, field: str) -> list:
    if not isinstance(value, list):
        raise DataError(path, field, f"expected a list, got {_describe(value)}")
    return value


def _box(value: Any, path: str, field: str) -> np.ndarray | None:
    """``[x, y, w, h]`` as float32, or None for a missing box (null or [])."""
    if value is None or value == []:
        return None
    return _numbers(value, 4, path, field).astype(np.float32)


def _load_json(path: str | os.PathLike) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(path, "", f"not valid JSON ({_one_line(e)})") from None


# --------------------------------------------------------------------------------------------------------------
# PoseTrack 2018


def read_posetrack(path: str | os.PathLike) -> list[VideoAnnotation]:
    """Read a PoseTrack annotation or prediction file of either layout (2017 ``annolist`` or 2018 COCO-like)."""
    data = _load_json(path)
    if isinstance(data, dict) and "annolist" in data:
        return _parse_posetrack17(data, str(path))
    return _parse_posetrack18(data, str(path))


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
    return _parse_posetrack18(_load_json(path), str(path))


def _parse_posetrack18(data: Any, path: str) -> list[VideoAnnotation]:
    data = _object(data, path, "")
    if "images" not in data and "annolist" in data:
        raise DataError(path, "images", "missing; this is a PoseTrack 2017 file (read_posetrack17 reads it)")
    images = _list(_required(data, "images", path, ""), path, "images")
    annotations = _list(_required(data, "annotations", path, ""), path, "annotations")
    categories = _list(data.get("categories", []), path, "categories")
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
        image = _object(image, path, where)
        image_id = _integer(_required(image, "id", path, where), path, f"{where}.id")
        file_name = _required(image, "file_name", path, where)
        if not isinstance(file_name, str):
            raise DataError(path, f"{where}.file_name", f"expected a string, got {_describe(file_name)}")
        if image_id in frames:
            raise DataError(path, f"{where}.id", f"duplicate image id {image_id}")
        frames[image_id] = FrameAnnotation(
            image_id=image_id,
            file_name=file_name,
            frame_index=image_id % 10000,
            is_labeled=False,
            persons=[],
            ignore_regions=_ignore_regions18(image, path, where),
        )
        labeled_flags[image_id] = bool(image["is_labeled"]) if "is_labeled" in image else None
        group = str(image["vid_id"]) if "vid_id" in image else os.path.dirname(file_name)
        groups.setdefault(group, []).append(image_id)
        if "nframes" in image and group not in nframes:
            nframes[group] = _integer(image["nframes"], path, f"{where}.nframes")

    for i, ann in enumerate(annotations):
        where = f"annotations[{i}]"
        ann = _object(ann, path, where)
        image_id = _integer(_required(ann, "image_id", path, where), path, f"{where}.image_id")
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
    xs = _list(image.get("ignore_regions_x", []), path, f"{where}.ignore_regions_x")
    ys = _list(image.get("ignore_regions_y", []), path, f"{where}.ignore_regions_y")
    if len(xs) != len(ys):
        raise DataError(path, f"{where}.ignore_regions_y", f"{len(ys)} polygons for {len(xs)} in ignore_regions_x")
    regions = []
    for k, (x, y) in enumerate(zip(xs, ys)):
        x = _numbers(x, None, path, f"{where}.ignore_regions_x[{k}]")
        y = _numbers(y, len(x), path, f"{where}.ignore_regions_y[{k}]")
        regions.append(np.stack([x, y], axis=1).astype(np.float32))  # (N, 2)
    return regions


def _parse_person18(ann: dict, path: str, where: str) -> PersonAnnotation:
    keypoints = _numbers(_required(ann, "keypoints", path, where), 51, path, f"{where}.keypoints")
    scores = ann.get("scores")
    score = ann.get("score")
    kp3d = ann.get("keypoints_3d")
    if kp3d is not None:
        nested = isinstance(kp3d, list) and all(isinstance(row, list) for row in kp3d)
        flat = [v for row in kp3d for v in row] if nested else kp3d
        kp3d = _numbers(flat, None, path, f"{where}.keypoints_3d")
        if kp3d.size % 3:
            raise DataError(path, f"{where}.keypoints_3d", f"expected J x 3 numbers, got {kp3d.size}")
        kp3d = kp3d.reshape(-1, 3).astype(np.float32)  # (J, 3) mm
    return PersonAnnotation(
        track_id=_integer(ann.get("track_id", -1), path, f"{where}.track_id"),
        keypoints=keypoints.reshape(17, 3).astype(np.float32),
        bbox=_box(ann.get("bbox"), path, f"{where}.bbox"),
        bbox_head=_box(ann.get("bbox_head"), path, f"{where}.bbox_head"),
        # float64: rounding scores to float32 could create ties that reorder poseval's ranking
        scores=None if scores in (None, []) else _numbers(scores, 17, path, f"{where}.scores"),
        score=None if score is None else _number(score, path, f"{where}.score"),
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
            "vid_id": f"{(frame.image_id // 10000) % 1000000:06d}",
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


# --------------------------------------------------------------------------------------------------------------
# PoseTrack 2017


def read_posetrack17(path: str | os.PathLike) -> list[VideoAnnotation]:
    """Read a PoseTrack 2017 file (``annolist``) and convert it to the 2018 layout.

    Follows poseval's own converter (``py/convert.py``, ``Video.from_old`` / ``Person.from_old``):

    - Values may be wrapped in 1-element lists or not; both are read.
    - Point ids are poseval's 15 (0 r_ankle ... 12 neck = head_bottom, 13 nose, 14 head_top) and are mapped
      to the 17 PoseTrack 2018 joints with the ``posetrack15 -> posetrack`` table of `skeleton`; the ears
      stay ``0, 0, 0``. ``is_visible`` defaults to 1; an absent joint is ``0, 0, 0``. When a person has
      several points with one id, the first counts (poseval's ``getPointGTbyID``).
    - ``annorect`` ``x1, y1, x2, y2`` is the *head* rectangle in PoseTrack 2017 (as in MPII: poseval computes
      the head size from it), so it becomes ``bbox_head``. The person ``bbox`` is the keypoint extent
      enlarged 1.3x about its centre, as poseval's converter does (None for a person without points).
    - Per-point ``score`` becomes ``scores`` (0 for joints without one), rect ``score`` becomes ``score``.
    - ``frame_index`` = ``imgnum - 1`` when given, else the number in the image name (minus one for
      PoseTrack 2017's 1-based 8-digit names ``00000001.jpg``); ``image_id`` = ``TSSSSSSFFFF`` from the folder
      name (``SSSSSS_mpii|bonn|mpiinew...``) and the 0-based frame, like the 2018 release (poseval's converter
      keeps the 1-based number instead), or ``frame_index`` when the folder name has no such form.
    - ``nframes`` = the number of ``annolist`` entries of the video; ``is_labeled`` defaults to "has rects".

    Args:
        path: the JSON file.

    Returns:
        One video per image folder (one for a PoseTrack 2017 file).

    Raises:
        DataError: not JSON, no ``annolist``, a point without ``x`` / ``y`` / a valid ``id``, etc.
    """
    return _parse_posetrack17(_load_json(path), str(path))


def _unwrap(value: Any, path: str, field: str) -> Any:
    """PoseTrack 2017 wraps scalars in 1-element lists, sometimes."""
    if isinstance(value, list):
        if len(value) != 1:
            raise DataError(path, field, f"expected a value or a 1-element list, got {_describe(value)}")
        return value[0]
    return value


def _parse_posetrack17(data: Any, path: str) -> list[VideoAnnotation]:
    data = _object(data, path, "")
    annolist = _list(_required(data, "annolist", path, ""), path, "annolist")
    groups: dict[str, list[FrameAnnotation]] = {}
    for i, entry in enumerate(annolist):
        where = f"annolist[{i}]"
        entry = _object(entry, path, where)
        image = _object(_unwrap(_required(entry, "image", path, where), path, f"{where}.image"), path, f"{where}.image")
        name = _unwrap(_required(image, "name", path, f"{where}.image"), path, f"{where}.image.name")
        if not isinstance(name, str):
            raise DataError(path, f"{where}.image.name", f"expected a string, got {_describe(name)}")
        folder = os.path.basename(os.path.dirname(name))
        if "imgnum" in entry:
            frame_index = _integer(_unwrap(entry["imgnum"], path, f"{where}.imgnum"), path, f"{where}.imgnum") - 1
        else:
            stem = os.path.basename(name).split(".")[0].split("_")[0]
            if not stem.isdigit():
                raise DataError(path, f"{where}.imgnum", f"missing, and the image name {name!r} has no frame number")
            frame_index = int(stem) - 1 if len(stem) == 8 else int(stem)
        rects = entry.get("annorect", [])
        rects = [] if rects is None else _list(rects, path, f"{where}.annorect")
        persons = [_parse_rect17(r, path, f"{where}.annorect[{k}]") for k, r in enumerate(rects)]
        labeled = entry.get("is_labeled")
        frame = FrameAnnotation(
            image_id=_posetrack_image_id(folder, frame_index),
            file_name=name,
            frame_index=frame_index,
            is_labeled=bool(_unwrap(labeled, path, f"{where}.is_labeled")) if labeled is not None else bool(persons),
            persons=persons,
            ignore_regions=_ignore_regions17(entry.get("ignore_regions", []), path, f"{where}.ignore_regions"),
        )
        groups.setdefault(folder, []).append(frame)
    return [
        VideoAnnotation(
            name=folder or Path(path).stem,
            path=path,
            nframes=len(frames),
            frames=sorted(frames, key=lambda f: f.frame_index),
            categories=[dict(POSETRACK18_CATEGORY)],
        )
        for folder, frames in groups.items()
    ]


def _posetrack_image_id(folder: str, frame_index: int) -> int:
    m = re.match(r"(\d+)_(mpiinew|mpii|bonn)(?:_|$)", folder)
    if m is None:
        return frame_index
    return _SEQUENCE_TYPES[m.group(2)] * 10**10 + int(m.group(1)) * 10**4 + frame_index


def _parse_rect17(rect: Any, path: str, where: str) -> PersonAnnotation:
    rect = _object(rect, path, where)
    values = {k: _unwrap(rect[k], path, f"{where}.{k}") for k in ("x1", "y1", "x2", "y2") if k in rect}
    bbox_head = None
    if values:
        x1, y1, x2, y2 = (_number(values.get(k), path, f"{where}.{k}") for k in ("x1", "y1", "x2", "y2"))
        bbox_head = np.array([x1, y1, x2 - x1, y2 - y1], dtype=np.float32)

    points15 = np.zeros((15, 4), dtype=np.float64)  # x, y, v, score per poseval joint id
    present = np.zeros(15, dtype=bool)
    has_score = np.zeros(15, dtype=bool)
    annopoints = rect.get("annopoints")
    if isinstance(annopoints, list):
        annopoints = annopoints[0] if annopoints else None
    points = [] if annopoints is None else _object(annopoints, path, f"{where}.annopoints").get("point", [])
    points = [points] if isinstance(points, dict) else _list(points, path, f"{where}.annopoints.point")
    for p, point in enumerate(points):
        pw = f"{where}.annopoints.point[{p}]"
        point = _object(point, path, pw)
        jid = _integer(_unwrap(_required(point, "id", path, pw), path, f"{pw}.id"), path, f"{pw}.id")
        if not 0 <= jid < POSETRACK15.num_joints:
            raise DataError(path, f"{pw}.id", f"expected a PoseTrack 2017 joint id 0..14, got {jid}")
        if present[jid]:
            continue
        x = _number(_unwrap(_required(point, "x", path, pw), path, f"{pw}.x"), path, f"{pw}.x")
        y = _number(_unwrap(_required(point, "y", path, pw), path, f"{pw}.y"), path, f"{pw}.y")
        v = _number(_unwrap(point.get("is_visible", 1), path, f"{pw}.is_visible"), path, f"{pw}.is_visible")
        if "score" in point:
            points15[jid, 3] = _number(_unwrap(point["score"], path, f"{pw}.score"), path, f"{pw}.score")
            has_score[jid] = True
        points15[jid, :3] = (x, y, v)
        present[jid] = True

    full = np.nan_to_num(convert(points15, "posetrack15", "posetrack"), nan=0.0)  # (17, 4), ears 0
    bbox = None
    if present.any():
        xy = points15[present, :2]
        centre, extent = (xy.max(0) + xy.min(0)) / 2, xy.max(0) - xy.min(0)
        bbox = np.concatenate([centre - 0.65 * extent, 1.3 * extent]).astype(np.float32)
    score = rect.get("score")
    track_id = rect.get("track_id", -1)
    return PersonAnnotation(
        track_id=_integer(_unwrap(track_id, path, f"{where}.track_id"), path, f"{where}.track_id"),
        keypoints=full[:, :3].astype(np.float32),
        bbox=bbox,
        bbox_head=bbox_head,
        scores=full[:, 3].copy() if has_score.any() else None,
        score=None if score is None else _number(_unwrap(score, path, f"{where}.score"), path, f"{where}.score"),
    )


def _ignore_regions17(regions: Any, path: str, where: str) -> list[np.ndarray]:
    out = []
    for k, region in enumerate(_list(regions if regions is not None else [], path, where)):
        region = _object(region, path, f"{where}[{k}]")
        points = _list(region.get("point", []), path, f"{where}[{k}].point")
        xy = np.zeros((len(points), 2), dtype=np.float32)
        for p, point in enumerate(points):
            pw = f"{where}[{k}].point[{p}]"
            point = _object(point, path, pw)
            for c, key in enumerate(("x", "y")):
                xy[p, c] = _number(_unwrap(_required(point, key, path, pw), path, f"{pw}.{key}"), path, f"{pw}.{key}")
        out.append(xy)  # (N, 2)
    return out


# --------------------------------------------------------------------------------------------------------------
# COCO detections


def read_detections(
    path: str | os.PathLike, images: dict[int, Any] | None = None
) -> dict[int, list[tuple[np.ndarray, float]]]:
    """Read person detections in the COCO results format (``[{image_id, bbox, score, category_id}, ...]``).

    Entries with a ``category_id`` other than 1 (person) are skipped. Detections keep their file order.

    Args:
        path: the JSON file.
        images: the known images (any mapping keyed by image id, e.g. from the frames of the ground truth);
            when given, a detection of any other image is an error.

    Returns:
        image_id -> list of (bbox ``[x, y, w, h]`` float32 pixels, score).

    Raises:
        DataError: not a JSON list, a bad ``bbox`` / ``score``, or an ``image_id`` that refers to no image.
    """
    path = str(path)
    data = _load_json(path)
    if not isinstance(data, list):
        raise DataError(path, "", f"expected a JSON list of COCO detection results, got {_describe(data)}")
    out: dict[int, list[tuple[np.ndarray, float]]] = {}
    for i, det in enumerate(data):
        where = f"[{i}]"
        det = _object(det, path, where)
        image_id = _integer(_required(det, "image_id", path, where), path, f"{where}.image_id")
        if images is not None and image_id not in images:
            raise DataError(path, f"{where}.image_id", f"{image_id} refers to no known image")
        bbox = _numbers(_required(det, "bbox", path, where), 4, path, f"{where}.bbox").astype(np.float32)
        score = _number(_required(det, "score", path, where), path, f"{where}.score")
        if det.get("category_id", 1) != 1:
            continue
        out.setdefault(image_id, []).append((bbox, score))
    return out


# --------------------------------------------------------------------------------------------------------------
# Human3.6M, VideoPose3D layout


def _npz_object(path: str, key: str) -> Any:
    """The pickled object stored under ``key`` of a VideoPose3D ``.npz`` (trusted files only, see module doc)."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):  # refuse to unpickle anything that is not a zip archive
        raise DataError(path, "", "not an .npz archive")
    try:
        archive = np.load(path, allow_pickle=True)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise DataError(path, "", f"not a readable .npz archive ({_one_line(e)})") from None
    with archive:
        if key not in archive.files:
            raise DataError(path, key, f"missing; the archive holds {sorted(archive.files)}")
        try:
            value = archive[key]
        except Exception as e:  # a corrupt member or pickle: report it against the file
            raise DataError(path, key, f"cannot be read ({_one_line(e)})") from None
    if isinstance(value, np.ndarray) and value.dtype == object and value.ndim == 0:
        value = value.item()
    return value


def _subject_actions(value: Any, path: str, key: str) -> dict:
    if not isinstance(value, dict):
        raise DataError(path, key, f"expected a pickled dict subject -> action -> data, got {type(value).__name__}")
    for subject, actions in value.items():
        if not isinstance(actions, dict):
            raise DataError(path, f"{key}[{subject}]", f"expected a dict action -> data, got {type(actions).__name__}")
    return value


def _finite_array(value: Any, path: str, field: str, shape_ok, expected: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(path, field, f"expected {expected}, got {type(value).__name__}") from None
    if not shape_ok(arr.shape):
        raise DataError(path, field, f"expected {expected}, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise DataError(path, field, "non-finite values (NaN or inf)")
    return arr


def read_h36m_3d(path: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
    """Read VideoPose3D's ``data_3d_h36m.npz``: world-frame joints per subject and action.

    The file holds ``positions_3d[subject][action]`` = (T, 32, 3) metres. The 32 mocap joints are reduced to
    the 17 ``h36m`` joints by removing indices 4, 5, 9, 10, 11, 16, 20–24, 28–31 (VideoPose3D's
    ``remove_joints``) and converted to mm; arrays already reduced to 17 joints are only converted.
    Root-relative coordinates are the caller's job. Loads a pickle: trusted files only (module doc).

    Returns:
        subject -> action -> (T, 17, 3) float32, mm.

    Raises:
        DataError: not an ``.npz``, no ``positions_3d``, an array of another shape, NaN values.
    """
    path = str(path)
    positions = _subject_actions(_npz_object(path, "positions_3d"), path, "positions_3d")
    out: dict[str, dict[str, np.ndarray]] = {}
    for subject, actions in positions.items():
        out[subject] = {}
        for action, value in actions.items():
            arr = _finite_array(
                value, path, f"positions_3d[{subject}][{action}]",
                lambda s: len(s) == 3 and s[1] in (32, 17) and s[2] == 3, "(T, 32, 3) metres",
            )
            if arr.shape[1] == 32:
                arr = arr[:, H36M_KEPT_JOINTS]  # (T, 17, 3)
            out[subject][action] = (arr * 1000.0).astype(np.float32)
    return out


def read_h36m_2d(path: str | os.PathLike) -> tuple[dict[str, dict[str, list[np.ndarray]]], dict]:
    """Read VideoPose3D's ``data_2d_h36m_<detector>.npz``: 2D keypoints per subject, action and camera.

    Loads a pickle: trusted files only (module doc).

    Returns:
        (positions_2d, metadata): ``positions_2d[subject][action]`` = list of per-camera (T, J, 2) float32
        pixel arrays (4 cameras for Human3.6M); ``metadata`` as stored (``layout_name``, ``num_joints``,
        ``keypoints_symmetry``).

    Raises:
        DataError: not an ``.npz``, no ``positions_2d`` or ``metadata``, a camera array of another shape, NaN.
    """
    path = str(path)
    positions = _subject_actions(_npz_object(path, "positions_2d"), path, "positions_2d")
    metadata = _npz_object(path, "metadata")
    if not isinstance(metadata, dict):
        raise DataError(path, "metadata", f"expected a pickled dict, got {type(metadata).__name__}")
    out: dict[str, dict[str, list[np.ndarray]]] = {}
    for subject, actions in positions.items():
        out[subject] = {}
        for action, cameras in actions.items():
            field = f"positions_2d[{subject}][{action}]"
            if isinstance(cameras, np.ndarray) and cameras.dtype != object:
                cameras = list(cameras)  # a stacked (C, T, J, 2) array
            if not isinstance(cameras, (list, tuple, np.ndarray)) or len(cameras) == 0:
                raise DataError(path, field, "expected a non-empty list of per-camera (T, J, 2) arrays")
            out[subject][action] = [
                _finite_array(
                    cam, path, f"{field}[{c}]", lambda s: len(s) == 3 and s[2] == 2, "(T, J, 2) pixels"
                ).astype(np.float32)
                for c, cam in enumerate(cameras)
            ]
    return out, metadata
