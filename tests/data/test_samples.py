"""Sample geometry: crop affines, heatmap targets, flips of images, flow and 3D joints, colour jitter."""

import numpy as np
import pytest

from sportpose.models.heatmaps import HEATMAP_STRIDE
from sportpose.models.skeleton import H36M
from sportpose.data import samples as S


def _argmax_xy(heatmap: np.ndarray) -> np.ndarray:
    y, x = np.unravel_index(np.argmax(heatmap), heatmap.shape)
    return np.array([x, y], dtype=np.float64)


@pytest.mark.parametrize("rotation, flip, scale", [(0.0, False, 1.0), (25.0, False, 0.8), (-30.0, True, 1.2)])
def test_heatmap_peak_lies_on_the_keypoint_through_the_affine(rotation, flip, scale):
    size = (128, 96)
    crop = S.box_to_crop(np.array([200.0, 100.0, 60.0, 150.0]), size)
    crop = S.CropTransform(crop.center, crop.size, rotation=rotation, flip=flip)
    m = S.crop_affine(crop, size, scale=scale)
    rng = np.random.default_rng(0)
    kp = np.stack([rng.uniform(215, 245, 8), rng.uniform(120, 230, 8)], 1)  # (K, 2) image pixels
    kp_crop = S.transform_points(kp, m)
    heatmaps, weight = S.gaussian_heatmaps(kp_crop, np.ones(8, bool), size)
    assert heatmaps.shape == (8, 32, 24) and heatmaps.dtype == np.float32
    for k in range(8):
        if weight[k]:
            expected = (kp_crop[k] + 0.5) / HEATMAP_STRIDE - 0.5
            assert np.abs(_argmax_xy(heatmaps[k]) - expected).max() <= 0.5 + 1e-6  # the nearest heatmap pixel
    # the affine's inverse maps the crop back to the image
    back = S.transform_points(kp_crop, S.invert_affine(m))
    np.testing.assert_allclose(back, kp, atol=1e-6)


def test_heatmaps_take_leading_dimensions_and_drop_unlabeled_or_outside_joints():
    kp = np.array([[[10.0, 10.0], [500.0, 10.0]], [[20.0, 30.0], [5.0, 5.0]]])  # (T=2, K=2, 2)
    vis = np.array([[True, True], [True, False]])
    heatmaps, weight = S.gaussian_heatmaps(kp, vis, (64, 64))
    assert heatmaps.shape == (2, 2, 16, 16) and weight.shape == (2, 2)
    np.testing.assert_array_equal(weight, [[1, 0], [1, 0]])
    assert heatmaps[0, 1].max() == 0 and heatmaps[1, 1].max() == 0
    assert heatmaps[1, 0].max() > 0.5


def test_flip_mirrors_pixels_like_the_flipped_affine():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    crop = S.CropTransform((60.0, 45.0), (80.0, 80.0), rotation=10.0)
    flipped = S.CropTransform((60.0, 45.0), (80.0, 80.0), rotation=10.0, flip=True)
    a = S.flip_images(S.warp(image, S.crop_affine(crop, (64, 64)), (64, 64)))
    b = S.warp(image, S.crop_affine(flipped, (64, 64)), (64, 64))
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    # a point and its mirror: x' = W - 1 - x
    p = np.array([[70.0, 40.0]])
    np.testing.assert_allclose(S.transform_points(p, S.crop_affine(flipped, (64, 64)))[0, 0],
                               63 - S.transform_points(p, S.crop_affine(crop, (64, 64)))[0, 0])


def test_flip_flow_mirrors_positions_and_negates_x():
    flow = np.zeros((2, 4, 5, 2), np.float32)
    flow[0, 1, 0] = (3.0, -1.0)  # at x = 0
    out = S.flip_flow(flow)
    np.testing.assert_array_equal(out[0, 1, 4], (-3.0, -1.0))  # now at x = W - 1
    assert np.abs(out).sum() == 4.0


def test_3d_joints_follow_roll_and_mirror():
    rng = np.random.default_rng(2)
    joints = rng.normal(size=(17, 3)) * 300
    joints -= joints[0]
    np.testing.assert_allclose(S.joints_3d_to_crop(joints, 0.0, False, H36M.flip_permutation()), joints)
    rolled = S.joints_3d_to_crop(joints, 90.0, False, H36M.flip_permutation())
    # the crop affine rotates image displacement (dx, dy) to (dy, -dx) at 90 degrees; so does the roll
    np.testing.assert_allclose(rolled[:, :2], np.stack([joints[:, 1], -joints[:, 0]], 1), atol=1e-9)
    np.testing.assert_allclose(rolled[:, 2], joints[:, 2])
    m = S.crop_affine(S.CropTransform((0.0, 0.0), (10.0, 10.0), rotation=90.0), (10, 10))
    np.testing.assert_allclose(m[:, :2] @ [1.0, 0.0], [0.0, -1.0], atol=1e-9)
    mirrored = S.joints_3d_to_crop(joints, 0.0, True, H36M.flip_permutation())
    perm = H36M.flip_permutation()
    np.testing.assert_allclose(mirrored[:, 0], -joints[perm, 0])
    np.testing.assert_allclose(mirrored[:, 1:], joints[perm, 1:])
    assert H36M.joints[perm[1]] == "l_hip"  # r_hip's slot now holds the left hip


def test_colour_jitter_is_one_transform_for_every_frame():
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    tube = np.stack([frame] * 4)  # identical frames must stay identical
    aug = S.Augmentation(brightness=1.2, contrast=0.8, saturation=0.7)
    out = aug.apply_colour(tube.copy())
    assert out.dtype == np.uint8 and not np.array_equal(out[0], frame)
    for j in range(1, 4):
        np.testing.assert_array_equal(out[j], out[0])
    # the documented formula, to rounding
    x = frame.astype(np.float64)
    mean = x.mean() * 1.2
    grey = x.mean(-1, keepdims=True)
    expected = np.clip(0.8 * 1.2 * (0.7 * x + 0.3 * grey) + 0.2 * mean, 0, 255)
    assert np.abs(out[0] - expected).max() <= 1.0
    assert S.Augmentation().apply_colour(tube) is tube


def test_compose_affine_applies_inner_first():
    outer = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    inner = np.array([[0.5, 0.0, 1.0], [0.0, 2.0, -1.0]])
    p = np.array([[3.0, 7.0]])
    np.testing.assert_allclose(S.transform_points(p, S.compose_affine(outer, inner)),
                               S.transform_points(S.transform_points(p, inner), outer))


def test_augmentation_draws_are_reproducible():
    a = S.Augmentation.draw(np.random.default_rng(5), True, 30.0, (0.75, 1.25), 0.2)
    b = S.Augmentation.draw(np.random.default_rng(5), True, 30.0, (0.75, 1.25), 0.2)
    assert a == b and a.geometric
    never = S.Augmentation.draw(np.random.default_rng(5), True, 30.0, (0.75, 1.25), 0.2, probability=0.0)
    assert never == S.Augmentation()
