"""PoseTrack multi-person pose tracking metrics: MOTA, MOTP, precision and recall, as poseval's
``evaluateTracking`` computes them (``sportpose eval posetrack --tracking``, ``infer --gt``).

Follows poseval (leonid-pishchulin/poseval, ``poseval/evaluateTracking.py`` and ``eval_helpers.py``:
``load_data_dir``, ``cleanupData``, ``removeIgnoredPoints``, ``assignGTmulti``'s MOT part, ``computeMetrics``,
``getCum``) with py-motmetrics' ``MOTAccumulator`` doing the CLEAR MOT matching, one accumulator per joint
and video:

- Joints: poseval's 15 (`POSEVAL_JOINTS`), present unless ``x == y == v == 0``; GT and predicted joints
  strictly inside a GT ignore region are dropped, and in a frame with ignore regions a person left without
  joints is dropped (``removeIgnoredPointsRects``). Frames: a GT frame without persons is dropped with its
  predictions (``cleanupData``); the others pair with the prediction frame of the same ``frame_index``.
- Each video's frames in order, then **its last kept frame is left out**, as poseval's
  ``imgidxs = imgidxs[:-1]`` does: a video with one annotated frame contributes nothing (poseval itself
  stops with an IndexError there).
- Per frame and joint: the GT persons with that joint are the objects (ids: their ``track_id``), the predicted
  persons with it the hypotheses (their ``track_id``; two predictions of one frame with the same id are
  refused, as poseval does), the distance of a pair is the joint's distance / the GT head size (0.6 × head-box
  diagonal) where it is at most 0.5, else no pair. motmetrics keeps last frame's pairs that are still
  possible, then matches the rest by the Hungarian method on distance; a GT track matched to another
  prediction id than at its last match is an identity switch.
- **A frame where either side has nobody** (no predicted person, or every GT person dropped by ignore
  regions) is poseval's special case: each joint gets one object and one hypothesis that cannot pair, i.e.
  one miss and one false positive, whatever the number of GT persons in it.
- Counts are summed over videos per joint; per joint, in percent:
  MOTA = 100 · (1 - (misses + switches + false positives) / objects), NaN without objects;
  MOTP = 100 · (1 - Σ distances of the matched pairs / matches), 0 without matches;
  precision = 100 · matches / (matches + false positives); recall = 100 · matches / objects.
- Groups as poseval's table (``getCum``): Head = mean(head_top, neck, nose), Shou ... Ankl the mean of left
  and right (NaN propagates); Total = the mean of the joints that are not NaN.

One deliberate reading of poseval's code: MOTP sums the distances of the matches (MATCH and SWITCH events),
as ``events['D'].sum()`` did with the py-motmetrics poseval shipped with (a 2017 submodule). Since
py-motmetrics 1.2, ``events`` also lists RAW and TRANSFER rows, and the literal sum would count every
candidate pair's distance too, giving a MOTP that falls with the number of candidates.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from sportpose.data.formats import VideoAnnotation, read_posetrack
from sportpose.data.formats.posetrack18 import parse_posetrack18
from sportpose.errors import DataError
from sportpose.evaluation.metrics import AP_GROUPS, POSEVAL_DIST_THRESHOLD, POSEVAL_JOINTS, _drop_ignored, _poses

MAX_TRACK_ID = 10000  # poseval offsets video i's track ids by i · MAX_TRACK_ID
COUNTS = ("num_misses", "num_switches", "num_false_positives", "num_objects", "num_detections")
METRICS = ("mota", "motp", "precision", "recall")

Source = str | os.PathLike | dict | VideoAnnotation


def _videos(sources: Source | Iterable[Source], what: str) -> list[VideoAnnotation]:
    """Videos from files, folders (every ``*.json``, sorted), PoseTrack18 JSON dicts or VideoAnnotations."""
    if isinstance(sources, (str, os.PathLike, dict, VideoAnnotation)):
        sources = [sources]
    videos: list[VideoAnnotation] = []
    for s in sources:
        if isinstance(s, VideoAnnotation):
            videos.append(s)
        elif isinstance(s, dict):
            videos += parse_posetrack18(s, f"<{what} dict>")
        elif Path(s).is_dir():
            files = sorted(Path(s).glob("*.json"))
            if not files:
                raise DataError(s, "", f"holds no {what} .json files")
            for f in files:
                videos += read_posetrack(f)
        elif Path(s).is_file():
            videos += read_posetrack(s)
        else:
            raise DataError(s, "", f"no such {what} file or folder")
    return videos


def _frame_mot(gt_frame, pr_frame, offset: int, video: VideoAnnotation) -> list[tuple[list, list, np.ndarray]]:
    """poseval's ``motAll[imgidx]`` of one frame: per joint (GT ids, predicted ids, distances (nGT, nPr), NaN =
    no pair)."""
    gt, pr = _poses(gt_frame.persons), _poses(pr_frame.persons if pr_frame is not None else [])
    gt_ids = np.array([p.track_id for p in gt_frame.persons], np.int64) + offset
    pr_ids = np.array([p.track_id for p in (pr_frame.persons if pr_frame is not None else [])], np.int64) + offset
    if len(set(pr_ids.tolist())) != len(pr_ids):
        raise DataError(video.path, f"image_id {pr_frame.image_id}", "two predicted persons share a track_id "
                                                                    "(poseval requires unique ids per frame)")
    keep_gt, keep_pr = np.ones(len(gt_ids), bool), np.ones(len(pr_ids), bool)
    if gt_frame.ignore_regions:  # removeIgnoredPointsRects: persons left without joints are dropped
        _drop_ignored(gt, gt_frame.ignore_regions)
        _drop_ignored(pr, gt_frame.ignore_regions)
        keep_gt, keep_pr = gt.has.any(axis=1), pr.has.any(axis=1)
    if not keep_gt.any() or not keep_pr.any():
        return [([0], [0], np.full((1, 1), np.nan))] * len(POSEVAL_JOINTS)
    gt_has, pr_has = gt.has & keep_gt[:, None], pr.has & keep_pr[:, None]  # (G, 15), (P, 15)
    missing_head = gt_has.any(axis=1) & np.isnan(gt.head)
    if missing_head.any():
        k = int(np.flatnonzero(missing_head)[0])
        raise DataError(video.path, f"annotations (image_id {gt_frame.image_id}, person {k}).bbox_head",
                        "missing; PoseTrack tracking metrics need the head box of every annotated person")
    with np.errstate(invalid="ignore", divide="ignore"):
        dist = np.linalg.norm(gt.xy[:, None] - pr.xy[None], axis=-1) / gt.head[:, None, None]  # (G, P, 15)
    dist = np.where(gt_has[:, None] & pr_has[None] & (dist <= POSEVAL_DIST_THRESHOLD), dist, np.nan)
    out = []
    for j in range(len(POSEVAL_JOINTS)):
        g, p = np.flatnonzero(gt_has[:, j]), np.flatnonzero(pr_has[:, j])
        out.append((gt_ids[g].tolist(), pr_ids[p].tolist(), dist[np.ix_(g, p, [j])][..., 0]))
    return out


def evaluate_tracking(gt: Source | Iterable[Source], pred: Source | Iterable[Source],
                      skip_last_frame: bool = True) -> dict:
    """PoseTrack MOTA, MOTP, precision and recall of predicted tracks against ground truth (see the module doc).

    Args:
        gt: ground truth: PoseTrack 2018 / 2017 files, folders of them, their JSON dicts or VideoAnnotations.
        pred: predictions in the same forms, matched to the ground truth's videos by name (extra videos are
            ignored); every person needs its ``track_id``.
        skip_last_frame: leave each video's last annotated frame out, as poseval does. False counts it (e.g. to
            score a single annotated frame); that is no longer poseval's number.

    Returns:
        ``{"mota" | "motp" | "precision" | "recall": {Head, Shou, Elb, Wri, Hip, Knee, Ankl, Total}, "per_joint":
        {joint: {mota, motp, precision, recall, num_objects, num_misses, num_switches, num_false_positives,
        num_detections}}, "videos": n, "frames": frames counted}``, metrics in percent.

    Raises:
        DataError: a missing video or frame of predictions, a GT person without head box, repeated track ids.
    """
    import motmetrics as mm  # pandas and motmetrics load only for tracking metrics

    gt_videos = _videos(gt, "ground-truth")
    predicted = {v.name: v for v in _videos(pred, "prediction")}
    totals = {name: np.zeros(len(POSEVAL_JOINTS)) for name in (*COUNTS, "sum_d")}
    frames_counted = 0
    metrics = mm.metrics.create()
    for i, video in enumerate(gt_videos):
        if video.name not in predicted:
            raise DataError(video.path, "", f"no prediction video named {video.name!r}")
        pr_frames = {f.frame_index: f for f in predicted[video.name].frames}
        kept = [f for f in video.frames if f.persons]  # cleanupData
        if skip_last_frame:
            kept = kept[:-1]
        if not kept:
            continue
        accumulators = [mm.MOTAccumulator(auto_id=True) for _ in POSEVAL_JOINTS]
        for frame in kept:
            if frame.frame_index not in pr_frames:
                raise DataError(predicted[video.name].path, "images",
                                f"no frame {frame.frame_index} ({frame.file_name}) of video {video.name}, which the "
                                "ground truth annotates")
            for acc, (oids, hids, dist) in zip(accumulators, _frame_mot(frame, pr_frames[frame.frame_index],
                                                                        i * MAX_TRACK_ID, video)):
                acc.update(oids, hids, dist)
        frames_counted += len(kept)
        for j, acc in enumerate(accumulators):
            counts = metrics.compute(acc, metrics=list(COUNTS), return_dataframe=False, name="acc")
            for name in COUNTS:
                totals[name][j] += counts[name]
            events = acc.events
            totals["sum_d"][j] += float(events.loc[events.Type.isin(["MATCH", "SWITCH"]), "D"].sum())
    per_joint = {}
    for j, joint in enumerate(POSEVAL_JOINTS):
        c = {name: int(totals[name][j]) for name in COUNTS}
        objects, fp, det = c["num_objects"], c["num_false_positives"], c["num_detections"]
        per_joint[joint] = {
            "mota": 100.0 * (1.0 - (c["num_misses"] + c["num_switches"] + fp) / objects) if objects else math.nan,
            "motp": 100.0 * (1.0 - totals["sum_d"][j] / det) if det else 0.0,
            "precision": 100.0 * det / (det + fp) if det + fp else math.nan,
            "recall": 100.0 * det / objects if objects else math.nan,
            **c,
        }
    result: dict[str, Any] = {}
    for m in METRICS:  # metric -> group, as poseval's metricsAll (metric -> joint) and getCum
        values = np.array([per_joint[joint][m] for joint in POSEVAL_JOINTS])
        result[m] = {group: float(values[list(idx)].mean()) for group, idx in AP_GROUPS.items()}
        valid = values[~np.isnan(values)]
        result[m]["Total"] = float(valid.mean()) if valid.size else math.nan
    return {**result, "per_joint": per_joint, "videos": len(gt_videos), "frames": frames_counted}


def format_tracking_table(result: dict) -> str:
    """poseval's MOT table: MOTA per group and total, then MOTP, precision and recall totals, percent, one
    decimal (NaN where nothing was counted).

    Returns:
        Two lines: header and values.
    """
    columns = [(f"MOTA {g}", result["mota"][g]) for g in (*AP_GROUPS, "Total")]
    columns += [("MOTP Total", result["motp"]["Total"]), ("Prec Total", result["precision"]["Total"]),
                ("Rec Total", result["recall"]["Total"])]
    width = max(len(name) for name, _ in columns)
    return (" ".join(f"{name:>{width}}" for name, _ in columns) + "\n"
            + " ".join(f"{value:>{width}.1f}" for _, value in columns))

