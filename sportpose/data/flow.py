"""Dense optical flow between consecutive crops of a person tube, for STSP-Net's motion enhancement (SPEC §5).

Flow k goes from crop k to crop k+1 of the tube, in crop pixels: crop k's pixel ``p`` is seen at
``p + flow[k][p]`` in crop k+1 (OpenCV's convention), so a person moving right has positive x flow.
Computed on the greyscale crops with OpenCV's DIS (``fast`` preset, ~1 ms per 128x128 pair) or Farneback
(~5x slower, smoother). Both work on the un-flipped, un-jittered crops; a flipped sample mirrors the field
and negates its x component (:func:`sportpose.data.samples.flip_flow`), which is exact, where
computing flow on mirrored crops would only be approximately so.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

FlowMethod = Literal["dis", "farneback"]
FLOW_METHODS = ("dis", "farneback")


class FlowEstimator:
    """One OpenCV flow object, created once per task and reused for every tube of a clip."""

    def __init__(self, method: FlowMethod):
        if method not in FLOW_METHODS:
            raise ValueError(f"unknown flow method {method!r}; expected one of {FLOW_METHODS}")
        self.method = method
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST) if method == "dis" else None

    def pair(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        """Flow from greyscale ``prev`` to ``nxt`` (H, W) uint8: (H, W, 2) float32 crop pixels."""
        if self._dis is not None:
            return self._dis.calc(prev, nxt, None)
        return cv2.calcOpticalFlowFarneback(prev, nxt, None, pyr_scale=0.5, levels=3, winsize=15, iterations=3,
                                            poly_n=5, poly_sigma=1.2, flags=0)

    def tube(self, frames: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Flow between consecutive frames of a tube.

        Args:
            frames: (T, H, W, 3) uint8 RGB crops.
            out: a (T-1, H, W, 2) float32 array to write into, or None.

        Returns:
            (T-1, H, W, 2) float32, flow k from frame k to frame k+1, crop pixels.
        """
        t, h, w = frames.shape[:3]
        if out is None:
            out = np.empty((max(t - 1, 0), h, w, 2), np.float32)
        grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]  # T x (H, W)
        for k in range(t - 1):
            if np.array_equal(grey[k], grey[k + 1]):  # a tube clamped at a clip end repeats its frame
                out[k] = 0.0
            else:
                out[k] = self.pair(grey[k], grey[k + 1])
        return out


def optical_flow(frames: np.ndarray, method: FlowMethod = "dis") -> np.ndarray:
    """(T-1, H, W, 2) float32 flow between consecutive (T, H, W, 3) uint8 RGB frames; see :class:`FlowEstimator`."""
    return FlowEstimator(method).tube(frames)
