"""Smoothing of keypoint tracks over time: the One Euro filter and Savitzky–Golay, 2D or 3D, NaN-aware.

Per-frame pose estimates jitter: each frame is estimated on its own (or from a short tube), so a joint that
stands still wanders by a pixel or two and a moving one shakes around its path. A track's keypoints are
smoothed here along time, one joint at a time, as MMPose's smoothers do:

- ``oneeuro``: the One Euro filter (Casiez, Roussel and Vogel, CHI 2012), causal: an exponential smoother
  whose cut-off frequency rises with the joint's speed, ``f_c = min_cutoff + beta · |v|``, so a slow joint
  is smoothed hard (little jitter) and a fast one lightly (little lag). It can run live, frame by frame.
- ``savgol``: a Savitzky–Golay filter (a local polynomial fit over a centred window, ``scipy.signal``), not
  causal: it reads ``window // 2`` frames ahead, and keeps peaks and turns better than a moving average.

Points are ``(T, J, D)`` arrays, D = 2 (pixels) or 3 (mm), NaN where a joint is missing in a frame (the
track was not seen, or the joint not estimated; a joint with any coordinate NaN counts as missing). A
joint's frames split into runs of consecutive finite frames and each run is smoothed on its own: nothing is
interpolated across a gap and a missing joint stays NaN.

`acceleration_error` measures jitter as the mean norm of the second difference (the acceleration, in the
points' unit per frame²), against a reference track when one is given, as VideoPose3D's and SPEC §7's
acceleration error ("TS") does.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.signal import savgol_filter

from sportpose.errors import SpecError


def _check(points: np.ndarray, fps: float) -> np.ndarray:
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 3 or x.shape[-1] not in (2, 3):
        raise SpecError("points", f"expected a (T, J, 2) or (T, J, 3) track, got shape {x.shape}")
    if not fps > 0:
        raise SpecError("fps", f"must be positive, got {fps}")
    return x


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray:
    """The exponential smoothing factor of a first-order low-pass at ``cutoff`` Hz for a step of ``dt`` s."""
    tau = 1.0 / (2.0 * np.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau / dt)


def one_euro(points: np.ndarray, fps: float, min_cutoff: float = 1.0, beta: float = 4.0,
             d_cutoff: float = 1.0, size: float | None = None) -> np.ndarray:
    """The One Euro filter along time, each joint's position vector at once (its speed is the vector's norm).

    Speeds are measured in person sizes per second (``size``), so that one ``beta`` suits pixels and mm, and
    a player far from the camera as well as a near one.

    Args:
        points: (T, J, D) keypoints, NaN where missing; a run after a gap starts the filter afresh.
        fps: frames per second (the filter's time step is 1 / fps s).
        min_cutoff: cut-off frequency (Hz) of a joint at rest: lower smooths more, and lags more.
        beta: how fast the cut-off rises with speed, Hz per (size / s): higher lags less, smooths less.
        d_cutoff: cut-off frequency (Hz) of the speed estimate itself.
        size: the person's size in the points' unit; None: the track's own, `track_size` (which reads all
            the track's frames: pass a size to run the filter live, frame by frame).

    Returns:
        (T, J, D) smoothed keypoints, NaN where the input is.
    """
    x = _check(points, fps)
    if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
        raise SpecError("oneeuro", f"needs min_cutoff > 0, d_cutoff > 0, beta >= 0; got {min_cutoff}, {d_cutoff}, "
                                   f"{beta}")
    dt = 1.0 / fps
    size = track_size(x) if size is None else float(size)
    out = np.full_like(x, np.nan)
    state = np.zeros(x.shape[1:])  # (J, D) filtered position
    speed = np.zeros(x.shape[1:])  # (J, D) filtered velocity, unit / s
    live = np.zeros(x.shape[1], dtype=bool)  # (J,) joints whose filter runs (seen in the previous frame)
    a_d = _alpha(d_cutoff, dt)
    for t in range(len(x)):
        seen = np.isfinite(x[t]).all(axis=-1)  # (J,)
        go = seen & live
        if go.any():
            velocity = (x[t, go] - state[go]) / dt
            speed[go] = a_d * velocity + (1 - a_d) * speed[go]
            a = _alpha(min_cutoff + beta * np.linalg.norm(speed[go], axis=-1) / size, dt)[:, None]  # (n, 1)
            state[go] = a * x[t, go] + (1 - a) * state[go]
        new = seen & ~live
        state[new], speed[new] = x[t, new], 0.0
        live = seen
        out[t, seen] = state[seen]
    return out


def track_size(points: np.ndarray) -> float:
    """A track's person size: the median over its frames of the diagonal of the box around the frame's finite
    joints (pixels or mm); 1 when no frame has two such joints."""
    x = np.asarray(points, dtype=np.float64)
    seen = np.isfinite(x).all(axis=-1)  # (T, J)
    sizes = [np.linalg.norm(np.ptp(x[t, seen[t]], axis=0)) for t in range(len(x)) if seen[t].sum() >= 2]
    size = float(np.median(sizes)) if sizes else 0.0
    return size if size > 0 else 1.0


def savitzky_golay(points: np.ndarray, fps: float, window: int | None = None, polyorder: int = 2) -> np.ndarray:
    """A Savitzky–Golay filter along time over each run of consecutive finite frames of each joint.

    Args:
        points: (T, J, D) keypoints, NaN where missing.
        fps: frames per second: the default window spans about 0.3 s (odd, at least 5 frames).
        window: frames of the centred window (odd; even is raised by one); a run shorter than it uses the
            largest odd window it holds, and a run of at most ``polyorder + 1`` frames stays as it is.
        polyorder: degree of the local polynomial.

    Returns:
        (T, J, D) smoothed keypoints, NaN where the input is.
    """
    x = _check(points, fps)
    if window is None:
        window = max(5, int(round(0.3 * fps)))
    window = int(window) | 1
    if polyorder < 0 or window <= polyorder:
        raise SpecError("savgol", f"needs 0 <= polyorder < window; got polyorder {polyorder}, window {window}")
    out = x.copy()
    seen = np.isfinite(x).all(axis=-1)  # (T, J)
    for j in range(x.shape[1]):
        for start, stop in _runs(seen[:, j]):
            n = stop - start
            w = min(window, n if n % 2 else n - 1)
            if w > polyorder + 1:
                out[start:stop, j] = savgol_filter(x[start:stop, j], w, polyorder, axis=0, mode="interp")
    out[~seen] = np.nan
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of True in a 1D mask."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


# Name -> smoother, each ``f(points (T, J, D), fps, **options) -> (T, J, D)``: `smooth_track`'s methods.
SMOOTHERS: dict[str, Callable[..., np.ndarray]] = {"oneeuro": one_euro, "savgol": savitzky_golay}


def smooth_track(points: np.ndarray, method: str, fps: float, **options) -> np.ndarray:
    """One track's keypoints smoothed along time.

    Args:
        points: (T, J, D) keypoints of one track over its frames, D = 2 (pixels) or 3 (mm), NaN where missing.
        method: ``oneeuro`` or ``savgol`` (`SMOOTHERS`).
        fps: the video's frame rate.
        **options: the method's parameters (`one_euro`, `savitzky_golay`).

    Returns:
        (T, J, D) smoothed keypoints, NaN exactly where ``points`` is.

    Raises:
        SpecError: an unknown method, a bad shape or parameter.
    """
    if method not in SMOOTHERS:
        raise SpecError("--smooth", f"expected one of {', '.join(SMOOTHERS)}, got {method!r}")
    return SMOOTHERS[method](points, fps, **options)


def acceleration_error(points: np.ndarray, reference: np.ndarray | None = None) -> float:
    """Mean norm of the second difference ``x[t+1] - 2 x[t] + x[t-1]`` over joints and frames (unit / frame²).

    With a reference, of the difference of the two second differences (the acceleration error of a
    prediction against the ground truth); without, the track's own jitter. Only triples of consecutive
    frames where every term is finite count.

    Args:
        points: (T, J, D), NaN where missing.
        reference: (T, J, D) or None.

    Returns:
        The mean, NaN when no triple counts.
    """
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 3:
        raise SpecError("points", f"expected a (T, J, D) track, got shape {x.shape}")
    accel = x[2:] - 2 * x[1:-1] + x[:-2]  # (T-2, J, D)
    if reference is not None:
        ref = np.asarray(reference, dtype=np.float64)
        if ref.shape != x.shape:
            raise SpecError("reference", f"shape {ref.shape} differs from the track's {x.shape}")
        accel = accel - (ref[2:] - 2 * ref[1:-1] + ref[:-2])
    norms = np.linalg.norm(accel, axis=-1)  # (T-2, J), NaN where a term is missing
    finite = np.isfinite(norms)
    return float(norms[finite].mean()) if finite.any() else float("nan")
