"""Video decoding: decord first (one reader per clip, bounded threads), OpenCV as the fallback.

Readers are created inside the task that uses them, never before a fork. ``read_frames`` decodes each
requested frame exactly once, in increasing order, and is the only way the data pipeline touches video.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np

from sportpose.errors import DataError

try:  # decord has wheels for x86_64 only
    import decord

    decord.bridge.set_bridge("native")
except ImportError:  # pragma: no cover - exercised on machines without decord wheels
    decord = None


class VideoReader(Protocol):
    num_frames: int
    fps: float
    size: tuple[int, int]  # (width, height) of decoded frames; (0, 0) until a frame is read

    def read(self, indices: list[int]) -> np.ndarray: ...


class DecordReader:
    """decord.VideoReader with ``num_threads`` decoding threads; frames come back RGB uint8."""

    def __init__(self, path: str, num_threads: int = 1):
        self.path = path
        self._vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=num_threads)
        self.num_frames = len(self._vr)
        self.fps = float(self._vr.get_avg_fps())
        self.size = (0, 0)  # known after the first read: decord decodes a frame to learn it

    def read(self, indices: list[int]) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB for sorted, unique frame indices."""
        frames = self._vr.get_batch(list(indices)).asnumpy()
        self.size = (frames.shape[2], frames.shape[1])
        return frames


class OpenCVReader:
    """cv2.VideoCapture, read sequentially (grab skips undecoded frames cheaply)."""

    def __init__(self, path: str):
        import cv2

        self.path = path
        self._cv2 = cv2
        self._cap = cv2.VideoCapture(path)
        if not self._cap.isOpened():
            raise DataError(path, "video", "OpenCV cannot open this file")
        self.num_frames = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS)) or 25.0
        self.size = (int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self._pos = 0

    def read(self, indices: list[int]) -> np.ndarray:
        out = []
        for idx in indices:
            if idx < self._pos:  # backwards: reopen (the pipeline never asks for this)
                self._cap.set(self._cv2.CAP_PROP_POS_FRAMES, idx)
                self._pos = idx
            while self._pos < idx:
                if not self._cap.grab():
                    raise DataError(self.path, f"frame {idx}", f"video ends after {self._pos} frames")
                self._pos += 1
            ok, frame = self._cap.read()
            if not ok:
                raise DataError(self.path, f"frame {idx}", "cannot be decoded (truncated or corrupt video)")
            self._pos += 1
            out.append(self._cv2.cvtColor(frame, self._cv2.COLOR_BGR2RGB))
        return np.stack(out) if out else np.zeros((0, self.size[1], self.size[0], 3), np.uint8)


def open_video(path: str | Path, backend: str = "auto", num_threads: int = 1) -> VideoReader:
    """Open a video for decoding.

    Args:
        path: the video file.
        backend: ``auto`` (decord where installed, else OpenCV), ``decord`` or ``opencv``.
        num_threads: decord's decoding threads (1 inside Ray tasks, which are already parallel).

    Raises:
        DataError: the file is missing, empty or cannot be decoded.
    """
    path = str(path)
    if not os.path.exists(path):
        raise DataError(path, "video", "file not found")
    if os.path.getsize(path) == 0:
        raise DataError(path, "video", "file is empty (0 bytes)")
    if backend == "decord" or (backend == "auto" and decord is not None):
        if decord is None:
            raise DataError(path, "video", "decord is not installed on this machine; use backend opencv")
        try:
            return DecordReader(path, num_threads=num_threads)
        except DataError:
            raise
        except Exception as e:  # decord raises its own DECORDError for unreadable files
            raise DataError(path, "video", f"cannot be decoded: {str(e).splitlines()[0][:200]}") from None
    if backend in ("opencv", "auto"):
        return OpenCVReader(path)
    raise ValueError(f"unknown video backend {backend!r}; expected auto, decord or opencv")


def read_frames(reader: VideoReader, indices: list[int] | np.ndarray, chunk: int = 64) -> dict[int, np.ndarray]:
    """Decode each of ``indices`` once, in increasing order.

    Returns:
        frame index -> (H, W, 3) uint8 RGB.

    Raises:
        DataError: an index lies beyond the video's length, or a frame cannot be decoded.
    """
    wanted = sorted({int(i) for i in indices})
    path = getattr(reader, "path", "<video>")
    if wanted and (wanted[0] < 0 or wanted[-1] >= reader.num_frames):
        bad = [i for i in wanted if i < 0 or i >= reader.num_frames]
        raise DataError(path, "frames", f"annotated frame {bad[0]} is beyond the video's {reader.num_frames} frames")
    frames: dict[int, np.ndarray] = {}
    for start in range(0, len(wanted), chunk):
        part = wanted[start : start + chunk]
        try:
            batch = reader.read(part)
        except DataError:
            raise
        except Exception as e:
            raise DataError(path, f"frames {part[0]}..{part[-1]}", f"cannot be decoded: {str(e).splitlines()[0][:200]}") from None
        frames.update(zip(part, batch))
    return frames
