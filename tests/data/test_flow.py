"""Optical flow between consecutive crops: shape, units and sign on a synthetic translation."""

import cv2
import numpy as np
import pytest

from sportpose.data.flow import FlowEstimator, optical_flow
from sportpose.data.samples import flip_flow, flip_images


def _translating_tube(dx: float, dy: float, frames: int = 4, size: int = 96) -> np.ndarray:
    """(T, size, size, 3) crops of a textured scene whose content moves by (dx, dy) px per frame."""
    rng = np.random.default_rng(0)
    scene = cv2.GaussianBlur(rng.integers(0, 256, (size * 2, size * 2, 3), dtype=np.uint8), (0, 0), 2.0)
    out = []
    for k in range(frames):
        # content at scene position q appears at crop position q - origin; moving it by +d shifts the origin by -d
        m = np.array([[1.0, 0.0, -size / 2 + k * dx], [0.0, 1.0, -size / 2 + k * dy]])
        out.append(cv2.warpAffine(scene, m, (size, size), flags=cv2.INTER_LINEAR))
    return np.stack(out)


@pytest.mark.parametrize("method", ["dis", "farneback"])
@pytest.mark.parametrize("dx, dy", [(2.0, 0.0), (-1.5, 1.0)])
def test_flow_shape_units_and_sign(method, dx, dy):
    tube = _translating_tube(dx, dy)
    flow = optical_flow(tube, method)
    assert flow.shape == (3, 96, 96, 2) and flow.dtype == np.float32
    inner = flow[:, 16:-16, 16:-16]  # away from the borders, where content enters the crop
    np.testing.assert_allclose(np.median(inner[..., 0]), dx, atol=0.25)
    np.testing.assert_allclose(np.median(inner[..., 1]), dy, atol=0.25)


def test_repeated_frames_have_zero_flow():
    tube = _translating_tube(2.0, 0.0, frames=2)
    tube = np.stack([tube[0], tube[0], tube[1]])  # a tube clamped at the clip start
    flow = FlowEstimator("dis").tube(tube)
    assert np.all(flow[0] == 0) and np.median(flow[1][..., 0]) > 1.5


def test_flipped_flow_matches_flow_of_flipped_crops():
    tube = _translating_tube(2.0, 0.5)
    mirrored = flip_flow(optical_flow(tube))
    direct = optical_flow(flip_images(tube))
    inner = (slice(None), slice(16, -16), slice(16, -16))
    np.testing.assert_allclose(np.median(mirrored[inner][..., 0]), -2.0, atol=0.25)
    assert np.median(np.abs(mirrored[inner] - direct[inner])) < 0.25


def test_unknown_method_is_an_error():
    with pytest.raises(ValueError, match="unknown flow method"):
        FlowEstimator("lucas-kanade")
