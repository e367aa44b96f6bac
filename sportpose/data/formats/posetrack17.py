"""PoseTrack 2017 (``annolist``): read and converted to the PoseTrack 2018 layout; and `read_posetrack`, which
reads a file of either layout.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from sportpose.errors import DataError
from sportpose.models.skeleton import POSETRACK15, convert
from sportpose.data.formats.annotations import FrameAnnotation, PersonAnnotation, VideoAnnotation
from sportpose.data.formats.checks import describe, integer, json_list, json_object, load_json, number, required
from sportpose.data.formats.posetrack18 import (
    POSETRACK18_CATEGORY, parse_posetrack18, parse_video_name, posetrack_image_id,
)


def read_posetrack(path: str | os.PathLike) -> list[VideoAnnotation]:
    """Read a PoseTrack annotation or prediction file of either layout (2017 ``annolist`` or 2018 COCO-like)."""
    data = load_json(path)
    if isinstance(data, dict) and "annolist" in data:
        return _parse_posetrack17(data, str(path))
    return parse_posetrack18(data, str(path))


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
    return _parse_posetrack17(load_json(path), str(path))


def _unwrap(value: Any, path: str, field: str) -> Any:
    """PoseTrack 2017 wraps scalars in 1-element lists, sometimes."""
    if isinstance(value, list):
        if len(value) != 1:
            raise DataError(path, field, f"expected a value or a 1-element list, got {describe(value)}")
        return value[0]
    return value


def _parse_posetrack17(data: Any, path: str) -> list[VideoAnnotation]:
    data = json_object(data, path, "")
    annolist = json_list(required(data, "annolist", path, ""), path, "annolist")
    groups: dict[str, list[FrameAnnotation]] = {}
    for i, entry in enumerate(annolist):
        where = f"annolist[{i}]"
        entry = json_object(entry, path, where)
        image = _unwrap(required(entry, "image", path, where), path, f"{where}.image")
        image = json_object(image, path, f"{where}.image")
        name = _unwrap(required(image, "name", path, f"{where}.image"), path, f"{where}.image.name")
        if not isinstance(name, str):
            raise DataError(path, f"{where}.image.name", f"expected a string, got {describe(name)}")
        folder = os.path.basename(os.path.dirname(name))
        if "imgnum" in entry:
            frame_index = integer(_unwrap(entry["imgnum"], path, f"{where}.imgnum"), path, f"{where}.imgnum") - 1
        else:
            stem = os.path.basename(name).split(".")[0].split("_")[0]
            if not stem.isdigit():
                raise DataError(path, f"{where}.imgnum", f"missing, and the image name {name!r} has no frame number")
            frame_index = int(stem) - 1 if len(stem) == 8 else int(stem)
        rects = entry.get("annorect", [])
        rects = [] if rects is None else json_list(rects, path, f"{where}.annorect")
        persons = [_parse_rect17(r, path, f"{where}.annorect[{k}]") for k, r in enumerate(rects)]
        labeled = entry.get("is_labeled")
        frame = FrameAnnotation(
            image_id=_image_id(folder, frame_index),
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


def _image_id(folder: str, frame_index: int) -> int:
    """``TSSSSSSFFFF`` from a PoseTrack folder name, else ``frame_index`` (read_posetrack17's doc)."""
    video = parse_video_name(folder)
    if video is None:
        return frame_index
    video_number, sequence_type = video
    return posetrack_image_id(video_number, frame_index, sequence_type)


def _parse_rect17(rect: Any, path: str, where: str) -> PersonAnnotation:
    rect = json_object(rect, path, where)
    values = {k: _unwrap(rect[k], path, f"{where}.{k}") for k in ("x1", "y1", "x2", "y2") if k in rect}
    bbox_head = None
    if values:
        x1, y1, x2, y2 = (number(values.get(k), path, f"{where}.{k}") for k in ("x1", "y1", "x2", "y2"))
        bbox_head = np.array([x1, y1, x2 - x1, y2 - y1], dtype=np.float32)

    points15 = np.zeros((15, 4), dtype=np.float64)  # x, y, v, score per poseval joint id
    present = np.zeros(15, dtype=bool)
    has_score = np.zeros(15, dtype=bool)
    annopoints = rect.get("annopoints")
    if isinstance(annopoints, list):
        annopoints = annopoints[0] if annopoints else None
    points = [] if annopoints is None else json_object(annopoints, path, f"{where}.annopoints").get("point", [])
    points = [points] if isinstance(points, dict) else json_list(points, path, f"{where}.annopoints.point")
    for p, point in enumerate(points):
        pw = f"{where}.annopoints.point[{p}]"
        point = json_object(point, path, pw)
        jid = integer(_unwrap(required(point, "id", path, pw), path, f"{pw}.id"), path, f"{pw}.id")
        if not 0 <= jid < POSETRACK15.num_joints:
            raise DataError(path, f"{pw}.id", f"expected a PoseTrack 2017 joint id 0..14, got {jid}")
        if present[jid]:
            continue
        x = number(_unwrap(required(point, "x", path, pw), path, f"{pw}.x"), path, f"{pw}.x")
        y = number(_unwrap(required(point, "y", path, pw), path, f"{pw}.y"), path, f"{pw}.y")
        v = number(_unwrap(point.get("is_visible", 1), path, f"{pw}.is_visible"), path, f"{pw}.is_visible")
        if "score" in point:
            points15[jid, 3] = number(_unwrap(point["score"], path, f"{pw}.score"), path, f"{pw}.score")
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
        track_id=integer(_unwrap(track_id, path, f"{where}.track_id"), path, f"{where}.track_id"),
        keypoints=full[:, :3].astype(np.float32),
        bbox=bbox,
        bbox_head=bbox_head,
        scores=full[:, 3].copy() if has_score.any() else None,
        score=None if score is None else number(_unwrap(score, path, f"{where}.score"), path, f"{where}.score"),
    )


def _ignore_regions17(regions: Any, path: str, where: str) -> list[np.ndarray]:
    out = []
    for k, region in enumerate(json_list(regions if regions is not None else [], path, where)):
        region = json_object(region, path, f"{where}[{k}]")
        points = json_list(region.get("point", []), path, f"{where}[{k}].point")
        xy = np.zeros((len(points), 2), dtype=np.float32)
        for p, point in enumerate(points):
            pw = f"{where}[{k}].point[{p}]"
            point = json_object(point, path, pw)
            for c, key in enumerate(("x", "y")):
                xy[p, c] = number(_unwrap(required(point, key, path, pw), path, f"{pw}.{key}"), path, f"{pw}.{key}")
        out.append(xy)  # (N, 2)
    return out
