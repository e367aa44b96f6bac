"""3D and 2D metrics against hand-computed cases (SPEC §7)."""

from __future__ import annotations

import numpy as np
import pytest

from sportpose.evaluation.metrics import (
    accel_error,
    auc3d,
    jitter,
    mpjpe,
    mpjve,
    n_mpjpe,
    p_mpjpe,
    pck3d,
    pck_bbox,
    pckh,
    points_in_polygon,
    posetrack_head_size,
)


def rotation(axis, angle_deg) -> np.ndarray:
    """Rodrigues: a proper rotation (det +1)."""
    k = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    a = np.radians(angle_deg)
    return np.eye(3) + np.sin(a) * kx + (1 - np.cos(a)) * kx @ kx


def test_mpjpe():
    gt = np.zeros((2, 3, 3))
    pred = gt + [30.0, 40.0, 0.0]  # every joint 50 mm off
    assert mpjpe(pred, gt) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="shape"):
        mpjpe(pred[:, :2], gt)


def test_p_mpjpe_is_zero_for_a_similarity_transform_of_the_ground_truth():
    gt = np.random.default_rng(0).normal(scale=300.0, size=(6, 17, 3))
    r = rotation([1.0, 2.0, -0.5], 70.0)
    pred = 1.7 * gt @ r.T + [10.0, -200.0, 3000.0]
    assert mpjpe(pred, gt) > 100
    assert p_mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-6)


def test_p_mpjpe_hand_case():
    # A planar cross; the prediction stretches the vertical arm 2x. Best similarity: no rotation, scale
    # s = Σp·g / Σ|p|² = (1+1+2+2) / (1+1+4+4) = 0.6 (× 100 mm units), aligned = (±60, 0), (0, ±120);
    # errors 40, 40, 20, 20 -> mean 30 mm.
    gt = 100.0 * np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]], dtype=float)
    pred = 100.0 * np.array([[1, 0, 0], [-1, 0, 0], [0, 2, 0], [0, -2, 0]], dtype=float)
    assert p_mpjpe(pred, gt) == pytest.approx(30.0)


def test_p_mpjpe_never_aligns_with_a_reflection():
    # A mirror image (x -> -x) of a chiral pose is an exact match only through a reflection, which Procrustes
    # must not use: the error stays large.
    gt = np.random.default_rng(1).normal(scale=300.0, size=(4, 17, 3))
    mirrored = gt * [-1.0, 1.0, 1.0]
    assert p_mpjpe(mirrored, gt) > 50.0
    # while a proper rotation of the mirror is no better than the mirror itself
    assert p_mpjpe(mirrored @ rotation([0, 1, 0], 180.0).T, gt) == pytest.approx(p_mpjpe(mirrored, gt))


def test_n_mpjpe_hand_case():
    # s = Σp·g / Σp·p = (200·100) / 200² = 0.5 -> scaled prediction (100,0,0), (0,0,0); errors 0 and 100.
    gt = np.array([[[100.0, 0, 0], [0, 100.0, 0]]])
    pred = np.array([[[200.0, 0, 0], [0, 0, 0]]])
    assert n_mpjpe(pred, gt) == pytest.approx(50.0)
    assert n_mpjpe(2.5 * gt, gt) == pytest.approx(0.0)


def test_mpjve_hand_case():
    # Joint 0 drifts 1 mm per frame, joint 1 stays: velocity errors 1 and 0 -> 0.5 mm/frame = 25 mm/s at 50 fps.
    t = np.arange(4, dtype=float)
    pred = np.zeros((4, 2, 3))
    pred[:, 0, 0] = t
    gt = np.zeros_like(pred)
    assert mpjve(pred, gt) == pytest.approx(0.5)
    assert mpjve(pred, gt, fps=50) == pytest.approx(25.0)


def test_accel_error_and_jitter_hand_case():
    # Joint 0 at x = t² mm: second difference 2 mm/frame² every frame; joint 1 still. Mean over the two
    # joints: 1 mm/frame², i.e. 100 mm/s² at 10 fps.
    t = np.arange(5, dtype=float)
    pred = np.zeros((5, 2, 3))
    pred[:, 0, 0] = t**2
    gt = np.zeros_like(pred)
    assert accel_error(pred, gt) == pytest.approx(1.0)
    assert accel_error(pred, gt, fps=10) == pytest.approx(100.0)
    assert jitter(pred) == pytest.approx(1.0)
    assert jitter(pred, fps=10) == pytest.approx(100.0)
    # the same acceleration in the ground truth is no error; a constant offset neither
    assert accel_error(pred + 5.0, pred) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="T >= 3"):
        accel_error(pred[:2], gt[:2])


def test_pck3d_and_auc3d_hand_case():
    errors = np.array([0.0, 100.0, 149.9, 150.0, 200.0])
    gt = np.zeros((1, 5, 3))
    pred = gt.copy()
    pred[0, :, 2] = errors
    assert pck3d(pred, gt) == pytest.approx(60.0)  # strictly under 150 mm: 3 of 5
    assert pck3d(pred, gt, threshold=100.0001) == pytest.approx(40.0)
    # One joint 75 mm off: under the thresholds 80, 85, ..., 150 -> 15 of the 31 thresholds.
    one = np.zeros((1, 1, 3))
    assert auc3d(one + [0, 0, 75.0], one) == pytest.approx(100.0 * 15 / 31)
    assert auc3d(one, one) == pytest.approx(100.0 * 30 / 31)  # 0 < 0 fails at the first threshold


def test_pckh_hand_case():
    # Head box 30 x 40: diagonal 50, head size 0.6 × 50 = 30 px, threshold 0.5 × 30 = 15 px.
    head = posetrack_head_size(np.array([[0.0, 0.0, 30.0, 40.0]]))
    assert head == pytest.approx([30.0])
    gt = np.zeros((1, 4, 2))
    pred = np.array([[[10.0, 0], [15.0, 0], [16.0, 0], [0.0, 0]]])  # 10 ok, 15 ok (≤), 16 wrong, not annotated
    visible = np.array([[True, True, True, False]])
    result = pckh(pred, gt, visible, head)
    np.testing.assert_allclose(result["per_joint"][:3], [100.0, 100.0, 0.0])
    assert np.isnan(result["per_joint"][3])
    assert result["mean"] == pytest.approx(200.0 / 3)


def test_pck_bbox_hand_case():
    # Box size 100, alpha 0.2: 20 px.
    gt = np.zeros((2, 2, 2))
    pred = np.array([[[19.0, 0], [21.0, 0]], [[0, 20.0], [0, 0]]])
    result = pck_bbox(pred, gt, np.ones((2, 2), bool), np.array([100.0, 100.0]))
    np.testing.assert_allclose(result["per_joint"], [100.0, 50.0])
    assert result["mean"] == pytest.approx(75.0)


def test_points_in_polygon():
    # An L shape (concave): the notch is outside; edges and vertices are outside (shapely's `contains`).
    poly = np.array([[0, 0], [10, 0], [10, 5], [5, 5], [5, 10], [0, 10]], dtype=float)
    pts = np.array([[2, 2], [8, 2], [2, 8], [8, 8], [10, 2], [5, 7], [0, 0], [-1, 5], [11, 1]], dtype=float)
    inside = points_in_polygon(pts, poly)
    np.testing.assert_array_equal(inside, [True, True, True, False, False, False, False, False, False])
    assert not points_in_polygon(np.array([[0.5, 0.5]]), poly[:2]).any()  # a degenerate polygon holds nothing
