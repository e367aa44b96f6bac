"""2D evaluation of a heatmap model on prepared samples: predictions mapped back to the image, PCKh.

Predictions are decoded from the heatmaps (argmax with quarter-pixel shift), mapped to crop pixels, then
through the inverse crop affine to image pixels, and compared with the ground truth in image pixels; the
PCKh head size is PoseTrack's (0.6 x head-box diagonal).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from sportpose.models.heatmaps import HEATMAP_STRIDE, decode_heatmaps, heatmap_to_crop
from sportpose.pipelines.data.samples import invert_affine, transform_points
from sportpose.pipelines.evaluation.metrics import pckh


@dataclass
class Predictions2D:
    """Per-sample predictions and ground truth in image pixels."""

    pred: np.ndarray  # (N, K, 2)
    scores: np.ndarray  # (N, K)
    gt: np.ndarray  # (N, K, 2)
    visible: np.ndarray  # (N, K) bool
    head_size: np.ndarray  # (N,)
    info: dict[str, np.ndarray]  # video, frame, track_id, image_id and clip metadata per sample


@torch.no_grad()
def predict(model: nn.Module, batches: Iterable[dict[str, np.ndarray]], input_names: tuple[str, ...]) -> Predictions2D:
    """Run ``model`` over numpy batches of samples (rows of the data pipeline)."""
    model.eval()
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("pred", "scores", "gt", "visible", "head_size")}
    info: dict[str, list[np.ndarray]] = {}
    for batch in batches:
        inputs = {k: torch.from_numpy(np.array(batch[k])) for k in input_names}  # a writable copy
        heatmaps = model(inputs)["heatmaps"]  # (B, K, h, w)
        coords, scores = decode_heatmaps(heatmaps)
        crop = heatmap_to_crop(coords, HEATMAP_STRIDE).numpy()  # (B, K, 2)
        image = np.stack([transform_points(c, invert_affine(a)) for c, a in zip(crop, batch["affine"])])
        out["pred"].append(image)
        out["scores"].append(scores.numpy())
        out["gt"].append(batch["keypoints_image"][..., :2])
        out["visible"].append(batch["keypoints_image"][..., 2] > 0)
        out["head_size"].append(batch["head_size"])
        for key in ("video", "frame", "track_id", "image_id", "view", "blur", "occlusion", "body"):
            if key in batch:
                info.setdefault(key, []).append(np.asarray(batch[key]))
    if not out["pred"]:
        raise ValueError("no samples to evaluate")
    cat = {k: np.concatenate(v) for k, v in out.items()}
    return Predictions2D(cat["pred"], cat["scores"], cat["gt"], cat["visible"].astype(bool), cat["head_size"],
                         {k: np.concatenate(v) for k, v in info.items()})


def pckh_score(p: Predictions2D, alpha: float = 0.5) -> dict[str, Any]:
    """PCKh@alpha in percent: ``mean`` over labeled joints of samples with a head box, and ``per_joint``."""
    has_head = p.head_size > 0
    result = pckh(p.pred[has_head], p.gt[has_head], p.visible[has_head], p.head_size[has_head], alpha=alpha)
    return result
