"""Keypoint smoothing along tracks while a video streams: :mod:`~sportpose.inference.smoothing` over a sliding
window, with the lag the method needs, and the acceleration error before and after.

A frame's poses are smoothed once the frames the method reads around it have been estimated:

- ``savgol`` reads ``window // 2`` frames ahead (the window of :func:`~sportpose.inference.smoothing.savitzky_golay`,
  about 0.3 s): frame t is handed on when frame t + window // 2 is in (or the video has ended), smoothed over
  the track's frames ``t - window + 1 .. t + window // 2``. The centred fit at t reads only these, so the
  result is the one the whole track would give.
- ``oneeuro`` is causal: frame t is handed on at once, filtered over the track's last ``2 * fps`` frames
  (the filter forgets its start within a few frames, so this is the live filter up to rounding).

Each track's keypoints (frame pixels) and, for STSP-Net, 3D joints (mm) are smoothed; scores and boxes stay
as estimated. The acceleration error (:func:`~sportpose.inference.smoothing.acceleration_error`'s measure: the
mean norm of the second difference over a track's joints, px/frame² or mm/frame²) is accumulated for the raw
and the smoothed points as frames pass, so a stream of any length keeps only the last three frames per track.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sportpose.errors import SpecError
from sportpose.inference.smoothing import SMOOTHERS, smooth_track


@dataclass
class _Jitter:
    """Running sum of second-difference norms of the raw and the smoothed points."""

    raw: float = 0.0
    smoothed: float = 0.0
    count: int = 0

    def as_dict(self) -> dict[str, float | int | None]:
        if not self.count:
            return {"raw": None, "smoothed": None, "triples": 0}
        return {"raw": round(self.raw / self.count, 4), "smoothed": round(self.smoothed / self.count, 4),
                "triples": self.count}


@dataclass
class _TrackState:
    raw_2d: dict[int, np.ndarray] = field(default_factory=dict)  # frame -> (K, 2) as estimated
    raw_3d: dict[int, np.ndarray] = field(default_factory=dict)  # frame -> (J, 3)
    last: deque = field(default_factory=lambda: deque(maxlen=3))  # (frame, raw 2d, smooth 2d, raw 3d, smooth 3d)


class LaggedSmoother:
    """Smooths the poses of frame results handed in, in frame order, and hands them back when ready.

    Args:
        method: ``oneeuro`` or ``savgol``.
        fps: the video's frame rate.

    Raises:
        SpecError: an unknown method (naming ``--smooth``).
    """

    def __init__(self, method: str, fps: float):
        if method not in SMOOTHERS:
            raise SpecError("--smooth", f"expected one of {', '.join(SMOOTHERS)}, got {method!r}")
        self.method, self.fps = method, float(fps) if fps and fps > 0 else 25.0
        if method == "savgol":
            window = max(5, int(round(0.3 * self.fps))) | 1
            self.lag, self.history = window // 2, window
        else:
            self.lag, self.history = 0, max(8, int(round(2 * self.fps)))
        self._pending: deque = deque()
        self._tracks: dict[int, _TrackState] = {}
        self._newest = -1
        self.jitter_2d, self.jitter_3d = _Jitter(), _Jitter()

    def push(self, result: Any) -> list[Any]:
        """Take a frame result (``index`` and ``persons``, poses with ``track_id``, ``keypoints``, ``joints_3d``);
        return those now smoothed, in frame order."""
        self._newest = result.index
        for p in result.persons:
            if p.track_id >= 0:
                state = self._tracks.setdefault(p.track_id, _TrackState())
                state.raw_2d[result.index] = np.array(p.keypoints, np.float64)
                if p.joints_3d is not None:
                    state.raw_3d[result.index] = np.array(p.joints_3d, np.float64)
        self._pending.append(result)
        ready = []
        while self._pending and self._pending[0].index + self.lag <= self._newest:
            ready.append(self._emit(self._pending.popleft()))
        return ready

    def flush(self) -> list[Any]:
        """The results still held (the video has ended)."""
        ready = [self._emit(r) for r in self._pending]
        self._pending.clear()
        return ready

    def _window(self, store: dict[int, np.ndarray], t: int) -> np.ndarray | None:
        lo, hi = t - self.history + 1, min(t + self.lag, self._newest)
        shape = store[t].shape
        points = np.full((hi - lo + 1, *shape), np.nan)  # (n, J, D), NaN where the track was not seen
        for f in range(lo, hi + 1):
            if f in store:
                points[f - lo] = store[f]
        smoothed = smooth_track(points, self.method, self.fps)[t - lo]
        return np.where(np.isfinite(smoothed), smoothed, store[t])

    def _emit(self, result: Any) -> Any:
        t = result.index
        for p in result.persons:
            state = self._tracks.get(p.track_id) if p.track_id >= 0 else None
            if state is None:
                continue
            raw_2d, raw_3d = state.raw_2d[t], state.raw_3d.get(t)
            p.keypoints = self._window(state.raw_2d, t).astype(np.asarray(p.keypoints).dtype)
            if raw_3d is not None:
                p.joints_3d = self._window(state.raw_3d, t).astype(np.asarray(p.joints_3d).dtype)
            state.last.append((t, raw_2d, np.asarray(p.keypoints, np.float64), raw_3d,
                               None if raw_3d is None else np.asarray(p.joints_3d, np.float64)))
            self._measure(state.last)
        for state in self._tracks.values():  # frames no window reaches any more
            for store in (state.raw_2d, state.raw_3d):
                for f in [f for f in store if f <= t - self.history]:
                    del store[f]
        return result

    def _measure(self, last: deque) -> None:
        if len(last) < 3 or last[2][0] - last[0][0] != 2:
            return
        for jitter, raw_at, smooth_at in ((self.jitter_2d, 1, 2), (self.jitter_3d, 3, 4)):
            if any(item[raw_at] is None for item in last):
                continue
            for at, attr in ((raw_at, "raw"), (smooth_at, "smoothed")):
                a = last[2][at] - 2 * last[1][at] + last[0][at]  # (J, D)
                setattr(jitter, attr, getattr(jitter, attr) + float(np.linalg.norm(a, axis=-1).mean()))
            jitter.count += 1

    def summary(self) -> dict[str, Any]:
        """The method, its lag, and the acceleration error (mean over track triples) raw and smoothed."""
        out = {"method": self.method, "lag_frames": self.lag, "window_frames": self.history,
               "acceleration_error_px": self.jitter_2d.as_dict()}
        if self.jitter_3d.count:
            out["acceleration_error_mm"] = self.jitter_3d.as_dict()
        return out
