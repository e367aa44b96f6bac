"""3D evaluation of STSP-Net on samples of the data pipeline (SPEC §7): MPJPE, P-MPJPE, PCK3D, AUC, TS, jitter.

Each sample is a tube ending at its annotated frame t; the pose evaluated is the model's pose for frame t
(the last of the tube, where TMP refines with the τ poses before it). MPJPE, P-MPJPE, N-MPJPE, PCK3D and AUC
are over every evaluated frame; the temporal metrics (TS = acceleration error, jitter, MPJVE) need
consecutive frames, so they are computed per track over runs of consecutive anchors (anchors are
``data.frame_stride`` frames apart; TS is given in mm/frame² of the anchor spacing and, with the clip's fps,
in mm/s²). Every metric is averaged per clip group (view, child/adult) and then over groups, as SPEC §7
asks; the pooled values are reported too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from sportpose.pipelines.evaluation import metrics as M

INFO_KEYS = ("video", "frame", "track_id", "image_id", "view", "blur", "occlusion", "body")


@dataclass
class Predictions3D:
    pred: np.ndarray  # (N, J, 3) mm, root-relative, the anchor frame
    pred_gsr: np.ndarray  # (N, J, 3) mm, GSR alone (no TMP refinement)
    gt: np.ndarray  # (N, J, 3) mm, root-relative
    info: dict[str, np.ndarray]


@torch.no_grad()
def predict(model: nn.Module, batches: Iterable[dict[str, np.ndarray]], input_names: tuple[str, ...]) -> Predictions3D:
    """Run STSP-Net over numpy batches; keep the anchor (last) frame's poses."""
    model.eval()
    pred, pred_gsr, gt = [], [], []
    info: dict[str, list[np.ndarray]] = {}
    for batch in batches:
        inputs = {k: torch.from_numpy(np.array(batch[k])) for k in input_names}
        out = model(inputs, task="full")
        pred.append(out["joints_3d"][:, -1].numpy())  # (B, J, 3)
        pred_gsr.append(out["joints_3d_gsr"][:, -1].numpy())
        target = np.asarray(batch["joints_3d"])
        gt.append(target[:, -1] if target.ndim == 4 else target)  # (B, J, 3)
        for key in INFO_KEYS:
            if key in batch:
                info.setdefault(key, []).append(np.asarray(batch[key]))
    if not pred:
        raise ValueError("no samples to evaluate")
    return Predictions3D(np.concatenate(pred), np.concatenate(pred_gsr), np.concatenate(gt),
                         {k: np.concatenate(v) for k, v in info.items()})


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
    """Metrics averaged per clip group and over groups, pooled metrics, the GSR-only (no TMP) figures, and
    the per-group table."""
    pooled = metrics_3d(p.pred, p.gt, p.info, stride, fps)
    pooled_gsr = metrics_3d(p.pred_gsr, p.gt, p.info, stride, fps)
    keys = [k for k in groups if k in p.info]
    labels = np.array(["/".join(str(p.info[k][i]) for k in keys) for i in range(len(p.pred))]) if keys \
        else np.array(["all"] * len(p.pred))
    table = {}
    for group in sorted(set(labels)):
        mask = labels == group
        sub = {k: v[mask] for k, v in p.info.items()}
        table[group] = metrics_3d(p.pred[mask], p.gt[mask], sub, stride, fps) | {"samples": int(mask.sum())}
    names = [k for k in pooled if all(k in row for row in table.values())]
    averaged = {k: float(np.mean([row[k] for row in table.values()])) for k in names}
    return {"group_mean": averaged, "pooled": pooled, "pooled_no_tmp": pooled_gsr, "groups": table,
            "group_keys": keys}


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
