"""Folder-level PoseTrack evaluation, like poseval's ``evaluate.py --evalPoseEstimation`` (SPEC §7).

``sportpose eval posetrack --gt DIR --pred DIR [--json OUT]`` calls `evaluate_folders`, prints
`format_ap_table` and writes `to_json` when asked.

As poseval's ``load_data_dir``: every ``*.json`` of the GT folder (sorted by name here; poseval takes glob
order, which only matters for tied scores) needs a prediction file of the same name in the prediction
folder; extra prediction files are ignored. Either file may be in the PoseTrack 2018 or 2017 layout. Unlike
poseval, which keeps only the first video of a merged GT file, every video of a file is evaluated (paired by
name with the videos of the prediction file of the same name).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from sportpose.data.formats import read_posetrack
from sportpose.errors import DataError
from sportpose.evaluation.metrics import AP_GROUPS, posetrack_ap_pairs


def evaluate_folders(gt_dir: str | os.PathLike, pred_dir: str | os.PathLike) -> dict:
    """PoseTrack AP of a prediction folder against a ground-truth folder.

    Args:
        gt_dir: folder of ground-truth files, one per video (or merged files).
        pred_dir: folder of prediction files with the same names.

    Returns:
        ``{"per_joint": {...}, "groups": {"Head", ..., "Total"}}`` in percent, see
        `sportpose.evaluation.metrics.posetrack_ap`.

    Raises:
        DataError: a folder that does not exist or holds no ground truth, a missing prediction file or video,
            or a bad file.
    """
    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    for folder in (gt_dir, pred_dir):
        if not folder.is_dir():
            raise DataError(folder, "", "not a directory")
    gt_files = sorted(gt_dir.glob("*.json"))
    if not gt_files:
        raise DataError(gt_dir, "", "holds no ground-truth .json files")
    pairs = []
    for gt_file in gt_files:
        pred_file = pred_dir / gt_file.name
        if not pred_file.is_file():
            raise DataError(pred_file, "", f"missing; the ground truth {gt_file} needs a prediction file of this name")
        predicted = {v.name: v for v in read_posetrack(pred_file)}
        for video in read_posetrack(gt_file):
            if video.name not in predicted:
                raise DataError(pred_file, "images", f"no frames of video {video.name!r}")
            pairs.append((video, predicted[video.name]))
    return posetrack_ap_pairs(pairs)


_COLUMNS = (*AP_GROUPS, "Total")


def format_ap_table(result: dict) -> str:
    """poseval's summary table (Head, Shou, Elb, Wri, Hip, Knee, Ankl, Total), AP in percent, one decimal.

    Args:
        result: as returned by `evaluate_folders` / `posetrack_ap`.

    Returns:
        Two lines: header and values.
    """
    groups = result["groups"]
    header = " ".join(f"{name:>6}" for name in _COLUMNS)
    row = " ".join(f"{groups[name]:6.1f}" for name in _COLUMNS)
    return f"{header}\n{row}"


def to_json(result: dict) -> str:
    """The result as strict JSON (NaN, e.g. a joint that has predictions but no GT, becomes null)."""

    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        return None if isinstance(value, float) and math.isnan(value) else value

    return json.dumps(clean(result), indent=2, allow_nan=False)
