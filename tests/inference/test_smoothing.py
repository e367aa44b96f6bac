"""Smoothing of keypoint tracks: both filters lower the acceleration error of a jittered track against its
clean one, keep NaN where a joint is missing, and do not drift from the clean track."""

import numpy as np
import pytest

from sportpose.errors import SpecError
from sportpose.inference.smoothing import SMOOTHERS, acceleration_error, one_euro, savitzky_golay, smooth_track

FPS = 25.0


def clean_track(dims: int, frames: int = 120, joints: int = 6) -> np.ndarray:
    """Joints moving on smooth paths: a walk across the frame plus each joint's own swing (pixels or mm)."""
    t = np.arange(frames)[:, None, None] / FPS  # (T, 1, 1) seconds
    j = np.arange(joints)[None, :, None]
    axis = np.arange(dims)[None, None, :]
    scale = 40.0 if dims == 2 else 300.0  # pixels / mm
    return (scale * (1.0 + 0.3 * j + 0.1 * axis) + 60.0 * t * (axis == 0)
            + 0.25 * scale * np.sin(2 * np.pi * 0.8 * t + j + axis))


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("method", sorted(SMOOTHERS))
def test_smoothing_lowers_acceleration_error_of_jittered_track(method, dims):
    clean = clean_track(dims)
    rng = np.random.default_rng(0)
    sigma = 2.0 if dims == 2 else 15.0  # pixels / mm of per-frame jitter
    noisy = clean + rng.normal(0, sigma, clean.shape)
    noisy[30:34, 2] = np.nan  # a joint lost for four frames
    noisy[70, :] = np.nan  # the whole person missing in one frame
    smooth = smooth_track(noisy, method, FPS)  # the defaults, in pixels and in mm alike

    assert smooth.shape == noisy.shape
    assert np.array_equal(np.isnan(smooth), np.isnan(noisy))
    before, after = acceleration_error(noisy, clean), acceleration_error(smooth, clean)
    assert after < 0.5 * before, (before, after)
    # smoothing must not buy smoothness by drifting off the path: the position error does not grow (the causal
    # One Euro filter trades jitter against lag, so within 5 % for it)
    err = lambda x: np.nanmean(np.linalg.norm(x - clean, axis=-1))  # noqa: E731
    assert err(smooth) < (1.05 if method == "oneeuro" else 1.0) * err(noisy)


def test_one_euro_is_causal_and_restarts_after_a_gap():
    clean = clean_track(2, frames=40)
    noisy = clean + np.random.default_rng(1).normal(0, 2.0, clean.shape)
    full = one_euro(noisy, FPS, size=80.0)  # a given size: the track's own reads all its frames
    cut = one_euro(noisy[:25], FPS, size=80.0)
    assert np.allclose(full[:25], cut)  # frame t depends on frames <= t only
    gapped = noisy.copy()
    gapped[20] = np.nan
    out = one_euro(gapped, FPS, size=80.0)
    assert np.allclose(out[21], gapped[21])  # the first frame after a gap is taken as it is
    assert np.allclose(out[:20], full[:20])


def test_savgol_keeps_a_straight_line_and_short_runs():
    line = np.linspace(0, 100, 30)[:, None, None] * np.ones((1, 2, 3))  # (30, 2, 3) constant velocity
    assert np.allclose(savitzky_golay(line, FPS), line)
    short = line.copy()
    short[3:] = np.nan  # a run of 3 frames: too short for a quadratic fit, left as it is
    assert np.allclose(savitzky_golay(short, FPS)[:3], line[:3])


def test_acceleration_error_values_and_errors():
    x = np.zeros((5, 1, 2))
    x[2, 0, 0] = 1.0  # one bump: second differences (1, -2, 1) in x
    assert acceleration_error(x) == pytest.approx(4.0 / 3.0)
    assert acceleration_error(x, x) == 0.0
    assert np.isnan(acceleration_error(np.full((5, 1, 2), np.nan)))
    with pytest.raises(SpecError, match="--smooth: expected one of oneeuro, savgol"):
        smooth_track(x, "kalman", FPS)
    with pytest.raises(SpecError, match=r"points: expected a \(T, J, 2\) or \(T, J, 3\) track"):
        smooth_track(np.zeros((5, 2)), "savgol", FPS)
