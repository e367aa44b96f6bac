"""3D evaluation of STSP-Net on samples of the data pipeline (SPEC §7): MPJPE, P-MPJPE, PCK3D, AUC, TS, jitter.

Each sample is a tube ending at its annotated frame t; the pose evaluated is the model's pose for frame t
(the last of the tube). TMP runs along each track (``stsp`` module doc, "TMP along a track"): samples are
grouped by (video, track_id) and taken in frame order, and each frame's TMP reads the model's own outputs for
that track at the τ frames before it (spaced as the tube's crops, ``data.interval``), which earlier anchors'
tubes computed; a tube contributes its frames after the last one its track has an output for
(:class:`~sportpose.models.stsp.TrackHistory`). A person without a track (``track_id`` < 0) has no history. MPJPE, P-MPJPE, N-MPJPE, PCK3D and AUC
are over every evaluated frame; the temporal metrics (TS = acceleration error, jitter, MPJVE) need
consecutive frames, so they are computed per track over runs of consecutive anchors (anchors are
``data.frame_stride`` frames apart; TS is given in mm/frame² of the anchor spacing and, with the clip's fps,
in mm/s²). Every metric is averaged per clip group (view, child/adult; per action for Human3.6M) and then
over groups, as SPEC §7 asks; the pooled values are reported too. The same model's GSR output without the TMP
refinement is scored the same way (``*_no_tmp``), so that TS with and without TMP compare like with like.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from sportpose.evaluation import metrics as M
from sportpose.models.stsp import TrackHistory

INFO_KEYS = ("video", "frame", "track_id", "image_id", "view", "blur", "occlusion", "body", "action")


@dataclass
class Predictions3D:
    pred: np.ndarray  # (N, J, 3) mm, root-relative, the anchor frame
    pred_gsr: np.ndarray  # (N, J, 3) mm, GSR alone (no TMP refinement)
    gt: np.ndarray  # (N, J, 3) mm, root-relative
    info: dict[str, np.ndarray]
    # (N, J) px: EPE's 2D keypoint error at the anchor frame in crop pixels, NaN where the joint is not
    # labelled visible; None for 2D-only input. It bounds what the lifter can do (what GSR reads).
    err_2d: np.ndarray | None = None


@torch.no_grad()
def predict(model: nn.Module, batches: Iterable[dict[str, np.ndarray]], input_names: tuple[str, ...],
            task: str = "full") -> Predictions3D:
    """Run STSP-Net over numpy batches; keep the anchor (last) frame's poses, TMP's run along each track.

    EPE and GSR run batch by batch; TMP then runs over the tracks in frame order, a wave of one tube per track
    at a time (:func:`along_tracks`). The GSR poses (``pred_gsr``) are each anchor's own, which no history
    changes. Memory: every sample's GSR poses and node features (N·T·J·(3 + d) floats) until TMP has run.

    Args:
        input_names: the model's ``input_names(task)``.
        task: "full" for tubes; "lift" for 2D keypoints alone (``keypoints_2d``, Human3.6M), which the model
            accepts in no other task.
    """
    model.eval()
    along = bool(getattr(getattr(model, "config", None), "use_tmp", False)) and hasattr(model, "refine")
    pred, pred_gsr, gt, err_2d = [], [], [], []
    poses, nodes, tube_frames = [], [], []
    info: dict[str, list[np.ndarray]] = {}
    for batch in batches:
        inputs = {k: torch.from_numpy(np.array(batch[k])) for k in input_names}
        out = model(inputs, task=task)
        if along:
            poses.append(out["joints_3d_gsr"])  # (B, T, J, 3) mm
            nodes.append(out["nodes_gsr"])  # (B, T, J, d)
            frames = batch.get("tube_frames")
            if frames is None:  # end-anchored tubes of consecutive frames, clamped at the clip's start
                t = out["joints_3d_gsr"].shape[1]
                frames = np.maximum(np.asarray(batch["frame"])[:, None] - np.arange(t - 1, -1, -1), 0)
            tube_frames.append(np.asarray(frames, np.int64))
        else:
            pred.append(out["joints_3d"][:, -1].numpy())  # (B, J, 3)
        pred_gsr.append(out["joints_3d_gsr"][:, -1].numpy())
        target = np.asarray(batch["joints_3d"])
        gt.append(target[:, -1] if target.ndim == 4 else target)  # (B, J, 3)
        if "keypoints_2d" in out and "tube" in inputs and "keypoints" in batch:
            label = np.asarray(batch["keypoints"])[:, -1]  # (B, J, 3) crop px + visibility
            err = np.linalg.norm(out["keypoints_2d"][:, -1].numpy() - label[..., :2], axis=-1)  # (B, J)
            err_2d.append(np.where(label[..., 2] > 0, err, np.nan))
        for key in INFO_KEYS:
            if key in batch:
                info.setdefault(key, []).append(np.asarray(batch[key]))
    if not pred_gsr:
        raise ValueError("no samples to evaluate")
    info_all = {k: np.concatenate(v) for k, v in info.items()}
    if along:
        frames = np.concatenate(tube_frames)
        joints = along_tracks(model, track_keys(info_all, len(frames)), frames, torch.cat(poses), torch.cat(nodes))
        anchors = joints[:, -1].numpy()  # (N, J, 3) mm
    else:
        anchors = np.concatenate(pred)
    return Predictions3D(anchors, np.concatenate(pred_gsr), np.concatenate(gt), info_all,
                         np.concatenate(err_2d) if len(err_2d) == len(pred_gsr) else None)


def track_keys(info: dict[str, np.ndarray], n: int) -> list:
    """Each sample's track, ``(video, track_id)``; None for a person without one (``track_id`` < 0, detections)."""
    if "track_id" not in info:
        return [None] * n
    videos = info.get("video", np.full(n, ""))
    return [(str(v), int(t)) if int(t) >= 0 else None for v, t in zip(videos, info["track_id"])]


def along_tracks(model: nn.Module, keys: list, tube_frames: np.ndarray, pose_3d: torch.Tensor,
                 nodes: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """TMP over N tubes, causally along each track: each track's tubes in the order of their anchor frame, one
    tube per track in a step (tubes of different tracks batched together, never mixing their histories).

    Args:
        keys: each tube's track (:func:`track_keys`), None for none.
        tube_frames: (N, T) frame index of each crop; their spacing is the history's (``data.interval``).
        pose_3d, nodes: ``joints_3d_gsr`` (N, T, J, 3) mm and ``nodes_gsr`` (N, T, J, d).

    Returns:
        ``joints_3d`` (N, T, J, 3) mm, in the tubes' order.
    """
    steps = np.diff(tube_frames, axis=1)
    interval = int(np.median(steps[steps > 0])) if (steps > 0).any() else 1
    history = TrackHistory(model.config.tau, interval)
    order: dict[object, list[int]] = {}
    for i, key in enumerate(keys):
        order.setdefault(key if key is not None else ("untracked", i), []).append(i)
    runs = [sorted(idx, key=lambda i: (int(tube_frames[i, -1]), i)) for idx in order.values()]
    out = torch.empty_like(pose_3d)
    for wave in range(max(len(r) for r in runs)):
        idx = [r[wave] for r in runs if wave < len(r)]
        for start in range(0, len(idx), batch_size):
            part = idx[start : start + batch_size]
            out[part] = history.step(model, [keys[i] for i in part], tube_frames[part], pose_3d[part], nodes[part])
    return out


def _sequences(info: dict[str, np.ndarray], stride: int) -> list[np.ndarray]:
    """Index arrays of runs of consecutive anchors (``stride`` frames apart) of one track, in time order."""
    runs = []
    keys = list(zip(info["video"], info["track_id"]))
    for key in sorted(set(keys), key=str):
        idx = np.array([i for i, k in enumerate(keys) if k == key])
        idx = idx[np.argsort(info["frame"][idx])]
        frames = info["frame"][idx]
        breaks = np.where(np.diff(frames) != stride)[0] + 1
        runs += [r for r in np.split(idx, breaks) if len(r) >= 3]
    return runs


def metrics_3d(pred: np.ndarray, gt: np.ndarray, info: dict[str, np.ndarray], stride: int = 1,
               fps: float | None = None) -> dict[str, float]:
    """The SPEC §7 3D metrics of one set of poses (pooled over all samples given)."""
    out = {
        "mpjpe": M.mpjpe(pred, gt), "p_mpjpe": M.p_mpjpe(pred, gt), "n_mpjpe": M.n_mpjpe(pred, gt),
        "pck3d": M.pck3d(pred, gt), "auc3d": M.auc3d(pred, gt),
    }
    runs = _sequences(info, stride)
    if runs:
        weights = np.array([len(r) - 2 for r in runs], dtype=float)
        ts = np.array([M.accel_error(pred[r], gt[r]) for r in runs])
        jit = np.array([M.jitter(pred[r]) for r in runs])
        vel = np.array([M.mpjve(pred[r], gt[r]) for r in runs])
        out["ts_mm_per_frame2"] = float((ts * weights).sum() / weights.sum())
        out["jitter_mm_per_frame2"] = float((jit * weights).sum() / weights.sum())
        out["mpjve_mm_per_frame"] = float(np.average(vel, weights=weights))
        if fps:
            step = stride / fps  # seconds between anchors
            out["ts_mm_per_s2"] = out["ts_mm_per_frame2"] / step**2
            out["jitter_mm_per_s2"] = out["jitter_mm_per_frame2"] / step**2
    return out


def evaluate(p: Predictions3D, stride: int = 1, fps: float | None = None,
             groups: tuple[str, ...] = ("view", "body")) -> dict[str, Any]:
    """Metrics averaged per clip group and over groups, pooled metrics, and the per-group table; the same for
    the GSR output without TMP (``*_no_tmp``)."""
    keys = [k for k in groups if k in p.info]
    labels = np.array(["/".join(str(p.info[k][i]) for k in keys) for i in range(len(p.pred))]) if keys \
        else np.array(["all"] * len(p.pred))
    out: dict[str, Any] = {"group_keys": keys}
    for suffix, pred in (("", p.pred), ("_no_tmp", p.pred_gsr)):
        pooled = metrics_3d(pred, p.gt, p.info, stride, fps)
        table = {}
        for group in sorted(set(labels)):
            mask = labels == group
            sub = {k: v[mask] for k, v in p.info.items()}
            table[group] = metrics_3d(pred[mask], p.gt[mask], sub, stride, fps) | {"samples": int(mask.sum())}
        names = [k for k in pooled if all(k in row for row in table.values())]
        out[f"group_mean{suffix}"] = {k: float(np.mean([row[k] for row in table.values()])) for k in names}
        out[f"pooled{suffix}"], out[f"groups{suffix}"] = pooled, table
    return out


# Per-group figures as flat MLflow metrics: evaluation key -> metric name prefix.
GROUP_METRICS = {
    "mpjpe": "mpjpe", "p_mpjpe": "p_mpjpe", "n_mpjpe": "n_mpjpe", "pck3d": "pck3d", "auc3d": "auc3d",
    "ts_mm_per_frame2": "ts", "ts_mm_per_s2": "ts_mm_per_s2", "jitter_mm_per_frame2": "jitter",
    "mpjve_mm_per_frame": "mpjve", "samples": "samples", "mpjpe_mean_pose": "mpjpe_mean_pose",
    "mpjpe_no_tmp": "mpjpe_no_tmp", "ts_no_tmp": "ts_no_tmp",
}


def group_metrics(groups: dict[str, dict[str, float]]) -> dict[str, float]:
    """Per-group figures as flat metrics named ``<metric>.<group>``, e.g. ``mpjpe.sideline_adult`` (the
    group label's ``/`` becomes ``_``; metric names as in the headline: ``ts`` in mm/frame², ``jitter``)."""
    out = {}
    for group, row in groups.items():
        label = "".join(c if c.isalnum() or c in "-_." else "_" for c in group.replace("/", "_"))
        for key, name in GROUP_METRICS.items():
            value = row.get(key)
            if value is not None and np.isfinite(value):
                out[f"{name}.{label}"] = float(value)
    return out


def group_table(groups: dict[str, dict[str, float]], keys: list[str]) -> str:
    """The per-group figures as a markdown table (mm; TS and jitter in mm/frame² of the anchor spacing)."""
    columns = [("samples", "samples", "{:.0f}"), ("mpjpe", "MPJPE", "{:.1f}"), ("mpjpe_mean_pose", "mean pose", "{:.1f}"),
               ("p_mpjpe", "P-MPJPE", "{:.1f}"), ("pck3d", "PCK3D", "{:.1f}"), ("auc3d", "AUC", "{:.1f}"),
               ("ts_mm_per_frame2", "TS", "{:.2f}"), ("ts_no_tmp", "TS no TMP", "{:.2f}"),
               ("ts_mm_per_s2", "TS mm/s²", "{:.0f}"), ("jitter_mm_per_frame2", "jitter", "{:.2f}")]
    columns = [c for c in columns if any(c[0] in row for row in groups.values())]
    head = "/".join(keys) or "group"
    lines = [f"| {head} | " + " | ".join(c[1] for c in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for group, row in groups.items():
        cells = [fmt.format(row[k]) if k in row and np.isfinite(row[k]) else "-" for k, _, fmt in columns]
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mean_pose(batches: Iterable[dict[str, np.ndarray]]) -> np.ndarray:
    """The training set's mean root-relative pose (J, 3) mm: the baseline STSP-Net must beat."""
    total, n = None, 0
    for batch in batches:
        target = np.asarray(batch["joints_3d"], dtype=np.float64)
        poses = target[:, -1] if target.ndim == 4 else target  # (B, J, 3)
        total = poses.sum(0) if total is None else total + poses.sum(0)
        n += len(poses)
    if not n:
        raise ValueError("no training samples with 3D targets")
    return total / n
