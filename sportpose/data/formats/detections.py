"""COCO-style person detections (``[{image_id, bbox, score, category_id}, ...]``), for evaluation with detected
boxes (SPEC §3.2). Image ids are PoseTrack's (:func:`~sportpose.data.formats.posetrack18.posetrack_image_id`).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from sportpose.errors import DataError
from sportpose.data.formats.checks import describe, integer, json_object, load_json, number, numbers, required


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
    data = load_json(path)
    if not isinstance(data, list):
        raise DataError(path, "", f"expected a JSON list of COCO detection results, got {describe(data)}")
    out: dict[int, list[tuple[np.ndarray, float]]] = {}
    for i, det in enumerate(data):
        where = f"[{i}]"
        det = json_object(det, path, where)
        image_id = integer(required(det, "image_id", path, where), path, f"{where}.image_id")
        if images is not None and image_id not in images:
            raise DataError(path, f"{where}.image_id", f"{image_id} refers to no known image")
        bbox = numbers(required(det, "bbox", path, where), 4, path, f"{where}.bbox").astype(np.float32)
        score = number(required(det, "score", path, where), path, f"{where}.score")
        if det.get("category_id", 1) != 1:
            continue
        out.setdefault(image_id, []).append((bbox, score))
    return out
