"""PCKh@0.5 counts of predicted heatmaps, the validation metric of the 2D stages (SPEC §6, §7)."""

from __future__ import annotations

import math

import torch

from sportpose.models.heatmaps import HEATMAP_STRIDE, pckh_counts


def peaks(points: torch.Tensor, size: int = 16) -> torch.Tensor:
    """(B, K, size, size) heatmaps with a single 1 at each crop-pixel point's heatmap cell."""
    b, k, _ = points.shape
    maps = torch.zeros(b, k, size, size)
    cells = ((points + 0.5) / HEATMAP_STRIDE - 0.5).round().long()  # crop px -> heatmap px
    for i in range(b):
        for j in range(k):
            maps[i, j, cells[i, j, 1], cells[i, j, 0]] = 1.0
    return maps


def test_pckh_counts_in_crop_pixels_with_the_head_size_scaled_by_the_crop_affine():
    target = torch.tensor([[[21.5, 21.5], [33.5, 41.5], [9.5, 49.5]]]).repeat(2, 1, 1)  # (2, 3, 2) crop px
    keypoints = torch.cat([target, torch.ones(2, 3, 1)], dim=-1)
    keypoints[1, 2, 2] = 0  # an unlabelled joint does not count
    head = torch.tensor([20.0, 20.0])  # image px
    affine = torch.tensor([[[0.5, 0.0, 3.0], [0.0, 0.5, 1.0]]]).repeat(2, 1, 1)  # crop = image / 2: head 10 px
    hits, total = pckh_counts(peaks(target), keypoints, head, affine)
    assert (hits.item(), total.item()) == (5, 5)
    # 8 px off: beyond 0.5 x 10 px in the crop, though within 0.5 x 20 px of the image-pixel head size
    hits, total = pckh_counts(peaks(target + torch.tensor([8.0, 0.0])), keypoints, head, affine)
    assert (hits.item(), total.item()) == (0, 5)
    # a rotated, flipped crop of the same scale: the same threshold
    c, s = math.cos(0.3) * 0.5, math.sin(0.3) * 0.5
    turned = torch.tensor([[[-c, -s, 40.0], [s, -c, 40.0]]]).repeat(2, 1, 1)
    hits, _ = pckh_counts(peaks(target + torch.tensor([4.0, 0.0])), keypoints, head, turned)
    assert hits.item() == 5
    # no head box: the sample does not count
    hits, total = pckh_counts(peaks(target), keypoints, torch.tensor([20.0, 0.0]), affine)
    assert (hits.item(), total.item()) == (3, 3)


def test_pckh_counts_pool_the_frames_of_tubes():
    target = torch.full((2, 4, 3, 2), 21.5)  # (B, T, K, 2)
    keypoints = torch.cat([target, torch.ones(2, 4, 3, 1)], dim=-1)
    maps = peaks(target.reshape(8, 3, 2)).reshape(2, 4, 3, 16, 16)
    affine = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]).repeat(2, 1, 1)
    hits, total = pckh_counts(maps, keypoints, torch.tensor([10.0, 10.0]), affine)
    assert (hits.item(), total.item()) == (24, 24)
