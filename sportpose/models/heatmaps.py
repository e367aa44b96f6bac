"""Heatmap helpers shared by the 2D models: input normalisation, the weighted MSE loss, and decoding.

Decoding follows SimpleBaseline/HRNet: the argmax of each heatmap, shifted a quarter pixel towards the
higher neighbour, with the heatmap maximum as the joint's score. Coordinates are in heatmap pixels with
pixel centres at integer positions; a crop pixel is ``(heatmap pixel + 0.5) * stride - 0.5``.
"""

from __future__ import annotations

import torch

HEATMAP_STRIDE = 4  # heatmaps are at a quarter of the input resolution

# ImageNet statistics: backbones initialised from ImageNet weights expect them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 images, channels last, to normalised float, channels first.

    Args:
        images: (..., H, W, 3) uint8 (or float in 0..255).

    Returns:
        (..., 3, H, W) float32.
    """
    x = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float() / 255.0
    mean = x.new_tensor(IMAGENET_MEAN)
    std = x.new_tensor(IMAGENET_STD)
    x = (x - mean) / std  # (..., H, W, 3)
    n = x.dim()  # permute by positive dims: torch.onnx writes movedim's negative ones into an invalid Transpose
    return x.permute(*range(n - 3), n - 1, n - 3, n - 2).contiguous()  # (..., 3, H, W)


def heatmap_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """SimpleBaseline's loss: per-joint MSE weighted by target weights, halved, averaged over joints.

    Args:
        pred, target: (B, K, h, w).
        weight: (B, K) target weights (0 for unlabeled joints).
    """
    se = (pred - target).pow(2).mean(dim=(2, 3))  # (B, K)
    return 0.5 * (se * weight).mean()


def decode_heatmaps(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Argmax with a quarter-pixel shift towards the higher neighbour.

    Args:
        heatmaps: (B, K, h, w).

    Returns:
        coords (B, K, 2) x, y in heatmap pixels, and scores (B, K) = heatmap maxima.
    """
    b, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(b, k, h * w)
    scores, idx = flat.max(dim=-1)  # (B, K)
    x = (idx % w).long()
    y = torch.div(idx, w, rounding_mode="floor").long()
    hm = heatmaps.reshape(b * k, h, w)
    xi, yi = x.reshape(-1), y.reshape(-1)
    rows = torch.arange(b * k, device=heatmaps.device)
    xr, xl = (xi + 1).clamp(max=w - 1), (xi - 1).clamp(min=0)
    yd, yu = (yi + 1).clamp(max=h - 1), (yi - 1).clamp(min=0)
    dx = torch.sign(hm[rows, yi, xr] - hm[rows, yi, xl]) * 0.25
    dy = torch.sign(hm[rows, yd, xi] - hm[rows, yu, xi]) * 0.25
    # The shift applies only away from the border, where both neighbours exist.
    dx = torch.where((xi > 0) & (xi < w - 1), dx, torch.zeros_like(dx))
    dy = torch.where((yi > 0) & (yi < h - 1), dy, torch.zeros_like(dy))
    coords = torch.stack([xi.float() + dx, yi.float() + dy], dim=-1).reshape(b, k, 2)  # (B, K, 2)
    return coords, scores


def heatmap_to_crop(coords: torch.Tensor, stride: int) -> torch.Tensor:
    """Heatmap pixel coordinates to crop pixel coordinates (pixel centres aligned)."""
    return (coords + 0.5) * stride - 0.5


# The batch columns pckh_counts reads beside the heatmaps (every 2D sample has them, sportpose.data.tubes)
PCKH_COLUMNS = ("keypoints", "head_size", "affine")


def pckh_counts(heatmaps: torch.Tensor, keypoints: torch.Tensor, head_size: torch.Tensor, affine: torch.Tensor,
                alpha: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """PCKh@alpha counts of a batch of predicted heatmaps, for the validation metric of a 2D stage (SPEC §6).

    A labelled joint is correct when the decoded prediction (:func:`decode_heatmaps`, in crop pixels) lies
    within ``alpha`` × head size of the target, as MPII / PoseTrack (SPEC §7: head size = 0.6 × head-box
    diagonal). The samples carry the head size in image pixels (``head_size``) and the image -> crop affine:
    the head size in crop pixels is ``head_size`` × the affine's scale (√|det|, rotation and flip
    included), so no column is added and nothing leaves the crop. Samples without a head box
    (``head_size`` 0, e.g. Human3.6M imports) do not count; a split with none gives ``total`` 0 (the metric is
    NaN, and the stage should pick its checkpoint by a loss).

    Args:
        heatmaps: (..., K, h, w) predictions.
        keypoints: (..., K, 3) targets in crop pixels + labelled flag (the samples' ``keypoints``).
        head_size: (B,) image pixels, 0 = no head box; the leading axis of the others is B.
        affine: (B, 2, 3) image -> crop.
        alpha: the threshold as a fraction of the head size.

    Returns:
        ``hits`` and ``total``: correct and counted joints (0-d float64 tensors).
    """
    b = head_size.shape[0]
    k, h, w = heatmaps.shape[-3:]
    coords, _ = decode_heatmaps(heatmaps.detach().float().reshape(-1, k, h, w))  # (N, K, 2) heatmap px
    pred = heatmap_to_crop(coords, HEATMAP_STRIDE).reshape(b, -1, k, 2)  # (B, F, K, 2) crop px
    target = keypoints.float().reshape(b, -1, k, 3)  # (B, F, K, 3)
    scale = torch.linalg.det(affine.float()[:, :, :2]).abs().sqrt()  # (B,) crop px per image px
    threshold = (alpha * head_size.float() * scale)[:, None, None]  # (B, 1, 1) crop px
    counted = (target[..., 2] > 0) & (threshold > 0)  # (B, F, K)
    correct = ((pred - target[..., :2]).norm(dim=-1) <= threshold) & counted  # (B, F, K)
    return correct.sum().double(), counted.sum().double()
