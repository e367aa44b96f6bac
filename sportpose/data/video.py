"""Video decoding: decord first (one reader per clip, bounded threads), OpenCV as the fallback; frame folders
(numbered JPEG/PNG sequences, as PoseTrack ships) read through the same reader contract.

Readers are created inside the task that uses them, never before a fork. Frames come back RGB uint8, at the
video's own size or resized while decoding (``size``), which is cheaper than decoding at full size and
resizing afterwards. :func:`iter_frames` decodes each requested frame exactly once, in increasing order, and
is the only way the data pipeline touches video.

A path that is a folder is a frame folder (:class:`FrameFolderReader`): ``NNNNNN.jpg`` files, frame index =
file number − first number of the convention, which the digit count names (PoseTrack 2018: six digits from
0; PoseTrack 2017: eight digits from 1; any other width: from 0). Names may share a prefix ending in ``_`` or
``-`` (MMPose's Human3.6M frames, ``S1_Directions_1.54138969_000001.jpg``). An importer that knows better
names the numbering per clip (``frames: {"first": N, "step": S}`` in the manifest, :func:`open_video`'s
``frames``): index i is the file numbered ``first + i*step`` (Human3.6M frames kept every 5th video frame).
A missing or corrupt frame is a :class:`~sportpose.errors.DataError` naming the file, as a corrupt video
frame is.

Pixel convention of a resized decode: pixel centres are aligned, i.e. decoded pixel ``x_d`` and source pixel
``x`` satisfy ``x_d = (x + 0.5) * W_d / W - 0.5`` (what both swscale and ``cv2.INTER_AREA`` do), see
:func:`decode_scale_affine`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from sportpose.errors import DataError

try:  # PyAV: the tube cutter's planar decoder (frames kept as YUV planes, see PlanarReader)
    import av
except ImportError:  # pragma: no cover - av is a dependency; without it the cutter reads RGB frames
    av = None

try:  # decord has wheels for x86_64 only
    import decord

    decord.bridge.set_bridge("native")
except ImportError:  # pragma: no cover - exercised on machines without decord wheels
    decord = None

SEEK_GAP = 64  # forward gaps up to this many frames are decoded through (skip_frames); longer ones seek
FRAME_FILE = re.compile(r"^((?:.*[_-])?)(\d+)\.(jpg|jpeg|png)$", re.IGNORECASE)  # prefix, number, extension
FIRST_FRAME_NUMBER = {6: 0, 8: 1}  # digits of a frame file name -> its first number (PoseTrack 2018, 2017)
FRAME_FOLDER_FPS = 25.0  # frame folders carry no frame rate; PoseTrack's videos are 25-30 fps
# cv2.imread flags that decode a JPEG at 1/k of its size inside the decoder (DCT scaling), cheapest first
_REDUCED = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))


class VideoReader(Protocol):
    path: str
    num_frames: int
    fps: float
    size: tuple[int, int]  # (width, height) of decoded frames; (0, 0) until a frame is read

    def read(self, indices: list[int]) -> Sequence[np.ndarray]: ...


class DecordReader:
    """decord.VideoReader with ``num_threads`` decoding threads, optionally resizing while decoding.

    Sorted indices are read sequentially (``next``; ``skip_frames`` over short gaps, ``seek_accurate`` over
    long ones), which on 2 cores is ~1.5x faster than ``get_batch`` for the dense index sets tubes need.
    """

    def __init__(self, path: str, num_threads: int = 1, size: tuple[int, int] | None = None):
        self.path = path
        width, height = size if size is not None else (-1, -1)
        self._vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=num_threads, width=width, height=height)
        self.num_frames = len(self._vr)
        self.fps = float(self._vr.get_avg_fps())
        self.size = tuple(size) if size is not None else (0, 0)  # without a size: known after the first read
        self._pos = 0  # index of the frame next() returns

    def read(self, indices: list[int]) -> list[np.ndarray]:
        """(H, W, 3) uint8 RGB frames for sorted, unique frame indices (a list: stacking would copy them)."""
        out = []
        for idx in indices:
            gap = idx - self._pos
            if gap < 0 or gap > SEEK_GAP:
                self._vr.seek_accurate(idx)
            elif gap > 0:
                self._vr.skip_frames(gap)
            out.append(self._vr.next().asnumpy())
            self._pos = idx + 1
        if out:
            self.size = (out[0].shape[1], out[0].shape[0])
        return out


class PlanarFrame:
    """One decoded 4:2:0 frame kept as its Y, U, V planes (views of the decoder's buffers, nothing converted).

    Turning a whole 1280x720 frame to RGB costs twice what decoding it does (swscale inside decord: ~1,000
    frames/s against ~3,000 for H.264 decoding alone on this machine's cores), yet a person tube reads a small
    region of each frame (OpenCV's I420 conversion of a whole frame costs ~0.2 ms, swscale's ~0.7 ms). :meth:`crop`
    converts only the region a crop samples (aligned to whole 2x2 chroma
    blocks, with a 2 px margin for bilinear interpolation) and warps that: the result equals
    ``warp(frame.rgb(), m)`` pixel for pixel, since OpenCV's I420 conversion is per 2x2 block. Colours are
    ITU-R BT.601, limited range (what swscale uses for a stream that does not say otherwise; within 1-3 levels
    of decord's frames).

    Attributes:
        y: (H, W) uint8; u, v: (H/2, W/2) uint8 (H and W even).
    """

    def __init__(self, y: np.ndarray, u: np.ndarray, v: np.ndarray, keep: object = None):
        self.y, self.u, self.v = y, u, v
        self._keep = keep  # the decoder's frame, owner of the planes' memory
        self.shape = (y.shape[0], y.shape[1], 3)  # as the RGB frame would have

    def rgb(self, rows: slice = slice(None), cols: slice = slice(None)) -> np.ndarray:
        """(h, w, 3) uint8 RGB of the frame, or of a region given by even-aligned row and column slices."""
        y = self.y[rows, cols]
        half_r = slice(None if rows.start is None else rows.start // 2, None if rows.stop is None else rows.stop // 2)
        half_c = slice(None if cols.start is None else cols.start // 2, None if cols.stop is None else cols.stop // 2)
        h, w = y.shape
        i420 = np.concatenate([y.ravel(), self.u[half_r, half_c].ravel(), self.v[half_r, half_c].ravel()])
        return cv2.cvtColor(i420.reshape(h * 3 // 2, w), cv2.COLOR_YUV2RGB_I420)

    def crop(self, m: np.ndarray, out_size: tuple[int, int], out: np.ndarray) -> np.ndarray:
        """Warp through the (2, 3) affine ``m`` (frame pixels -> crop pixels) into ``out`` (H, W, 3) uint8, with
        black outside the frame, converting only the frame region the crop samples."""
        out_h, out_w = out_size
        h, w = self.y.shape
        inv = cv2.invertAffineTransform(np.asarray(m, np.float64))
        corners = np.array([[-0.5, -0.5], [out_w - 0.5, -0.5], [-0.5, out_h - 0.5], [out_w - 0.5, out_h - 0.5]])
        src = corners @ inv[:, :2].T + inv[:, 2]  # (4, 2) frame pixels
        x0 = max(0, (int(np.floor(src[:, 0].min())) - 2) & ~1)
        y0 = max(0, (int(np.floor(src[:, 1].min())) - 2) & ~1)
        x1 = min(w, (int(np.ceil(src[:, 0].max())) + 3 + 1) & ~1)
        y1 = min(h, (int(np.ceil(src[:, 1].max())) + 3 + 1) & ~1)
        if x1 <= x0 or y1 <= y0:  # the crop lies outside the frame
            out[:] = 0
            return out
        region = self.rgb(slice(y0, y1), slice(x0, x1))
        shifted = np.asarray(m, np.float64).copy()
        shifted[:, 2] += shifted[:, :2] @ np.array([x0, y0], np.float64)  # region pixels -> crop pixels
        return cv2.warpAffine(region, shifted, (out_w, out_h), dst=out, flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))

    def resize(self, size: tuple[int, int]) -> np.ndarray:
        """The frame converted to RGB, then resized to ``size`` (width, height) with ``INTER_AREA`` (a context
        frame; converting before resizing keeps colour edges where a whole-frame decode has them)."""
        return cv2.resize(self.rgb(), tuple(size), interpolation=cv2.INTER_AREA)

    def resized(self, size: tuple[int, int]) -> "PlanarFrame":
        """The planes resized to ``size`` (width, height; even), ``INTER_AREA`` (pixel centres aligned)."""
        w, h = size
        return PlanarFrame(cv2.resize(self.y, (w, h), interpolation=cv2.INTER_AREA),
                           cv2.resize(self.u, (w // 2, h // 2), interpolation=cv2.INTER_AREA),
                           cv2.resize(self.v, (w // 2, h // 2), interpolation=cv2.INTER_AREA))


class PlanarReader:
    """PyAV decoding 8-bit 4:2:0 video to :class:`PlanarFrame` s, one thread by default.

    Its ``read`` gives PlanarFrames, not RGB arrays (``frame.rgb()`` converts one): only a caller that asks
    ``open_video(..., planar=True)`` gets this reader, and the tube cutter is the one that does.

    Frame indices are positions in the stream's presentation order, from the packets' timestamps read once
    when the file is opened (as decord indexes a video), so seeking lands on the same frame decord's index
    names. Sorted indices are decoded sequentially, through gaps up to ``SEEK_GAP`` frames; longer gaps seek
    to the keyframe before and decode forward. With ``size`` the planes are resized (``INTER_AREA``) after
    decoding.

    Raises:
        DataError: the file cannot be opened or decoded, or a frame is missing from the stream.
        NotPlanar: the stream is not 8-bit yuv420p (``open_video`` then uses an RGB reader).
    """

    def __init__(self, path: str, num_threads: int = 1, size: tuple[int, int] | None = None):
        self.path = path
        try:
            with av.open(path) as container:
                stream = container.streams.video[0]
                fmt = stream.codec_context.pix_fmt
                if fmt != "yuv420p":
                    raise NotPlanar(f"{path}: pixel format {fmt}")
                native = (stream.codec_context.width, stream.codec_context.height)
                pts = sorted(p.pts for p in container.demux(stream) if p.pts is not None)
                fps = float(stream.average_rate or stream.guessed_rate or 25.0)
        except NotPlanar:
            raise
        except (av.FFmpegError, IndexError) as e:
            raise DataError(path, "video", f"cannot be decoded: {str(e).splitlines()[0][:200]}") from None
        if native[0] % 2 or native[1] % 2 or (size is not None and (size[0] % 2 or size[1] % 2)):
            raise NotPlanar(f"{path}: odd frame size")
        self._pts = pts
        self._index = {p: i for i, p in enumerate(pts)}
        self.num_frames = len(pts)
        self.fps = fps
        self.native = native
        self._resize = tuple(size) if size is not None and tuple(size) != native else None
        self.size = self._resize or native
        self._threads = num_threads
        self._container = None
        self._frames = None  # the decoder's frame iterator
        self._pos = -1  # index of the last frame decoded

    def _open(self, index: int) -> None:
        if self._container is None:
            self._container = av.open(self.path)
            stream = self._container.streams.video[0]
            stream.codec_context.thread_count = self._threads
            self._stream = stream
        if index > 0:
            self._container.seek(self._pts[index], stream=self._stream, backward=True, any_frame=False)
        else:
            self._container.seek(self._pts[0], stream=self._stream, backward=True, any_frame=False)
        self._frames = self._container.decode(self._stream)
        self._pos = -1

    def read(self, indices: list[int]) -> list[PlanarFrame]:
        """Frames for sorted, unique indices, as planes (resized to ``size`` when one was asked for)."""
        out = []
        for idx in indices:
            if self._frames is None or idx <= self._pos or idx - self._pos > SEEK_GAP:
                self._open(idx)
            while True:
                try:
                    frame = next(self._frames)
                except StopIteration:
                    raise DataError(self.path, f"frame {idx}", f"video ends after frame {self._pos} of "
                                                               f"{self.num_frames} (truncated?)") from None
                except av.FFmpegError as e:
                    raise DataError(self.path, f"frame {idx}", f"cannot be decoded: {str(e)[:200]}") from None
                pos = self._index.get(frame.pts, self._pos + 1) if frame.pts is not None else self._pos + 1
                self._pos = pos
                if pos >= idx:
                    break
            if self._pos != idx:
                raise DataError(self.path, f"frame {idx}", "missing from the decoded stream")
            out.append(self._planes(frame))
        return out

    def _planes(self, frame: Any) -> PlanarFrame:
        w, h = frame.width, frame.height
        y, u, v = (np.frombuffer(p, np.uint8).reshape(-1, p.line_size) for p in frame.planes)
        planar = PlanarFrame(y[:h, :w], u[: h // 2, : w // 2], v[: h // 2, : w // 2], keep=frame)
        return planar.resized(self._resize) if self._resize is not None else planar


class NotPlanar(Exception):
    """The video is not one :class:`PlanarReader` decodes (not 8-bit yuv420p, or an odd size)."""


class OpenCVReader:
    """cv2.VideoCapture with one decoding thread, read sequentially (grab skips frames without converting).

    With ``size``, frames are resized after decoding (``INTER_AREA``): OpenCV cannot resize while decoding.
    """

    def __init__(self, path: str, size: tuple[int, int] | None = None):
        self.path = path
        self._cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
        if not self._cap.isOpened():
            self._cap = cv2.VideoCapture(path)  # a build without the FFmpeg backend
        if not self._cap.isOpened():
            raise DataError(path, "video", "OpenCV cannot open this file")
        self.num_frames = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS)) or 25.0
        native = (int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self._resize = tuple(size) if size is not None and tuple(size) != native else None
        self.size = self._resize or native
        self._pos = 0

    def read(self, indices: list[int]) -> list[np.ndarray]:
        """(H, W, 3) uint8 RGB frames for sorted, unique frame indices."""
        out = []
        for idx in indices:
            if idx < self._pos:  # backwards: seek (the pipeline never asks for this)
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, idx)
                self._pos = idx
            while self._pos < idx:
                if not self._cap.grab():
                    raise DataError(self.path, f"frame {idx}", f"video ends after {self._pos} frames")
                self._pos += 1
            ok, frame = self._cap.read()
            if not ok:
                raise DataError(self.path, f"frame {idx}", "cannot be decoded (truncated or corrupt video)")
            self._pos += 1
            if self._resize is not None:
                frame = cv2.resize(frame, self._resize, interpolation=cv2.INTER_AREA)
            out.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        return out


class FrameFolderReader:
    """A folder of numbered frames (``000000.jpg`` ...) read as a video: same contract as the video readers.

    With ``size``, a JPEG is decoded at the largest 1/2, 1/4 or 1/8 reduction (``cv2.IMREAD_REDUCED_*``) that
    is still at least ``size``, then resized to ``size`` (``INTER_AREA``): decoding at a reduced size is
    several times cheaper than decoding at full size, and pixel centres stay aligned as in a resized video
    decode (:func:`decode_scale_affine`). A truncated JPEG (no end-of-image marker), an unreadable file or a
    missing frame raises naming the file.
    """

    def __init__(self, path: str, size: tuple[int, int] | None = None, first: int | None = None, step: int = 1):
        self.path = path
        numbers, digits, ext, self._prefix = scan_frame_folder(path, with_prefix=True)
        self.first = FIRST_FRAME_NUMBER.get(digits, 0) if first is None else int(first)
        self.step = int(step)
        if self.step < 1:
            raise DataError(path, "frames.step", f"must be a positive frame step, got {step}")
        offsets = [n - self.first for n in numbers]
        indices = [k // self.step for k in offsets if k >= 0 and k % self.step == 0]
        if not indices:
            raise DataError(path, "frames", f"no frame numbered {self.first} + i*{self.step} in this folder")
        self._digits, self._ext = digits, ext
        self.num_frames = max(indices) + 1
        self.fps = FRAME_FOLDER_FPS
        self.native = probe_frame(self.frame_file(min(indices)))
        self._size = tuple(size) if size is not None and tuple(size) != self.native else None
        self.size = self._size or self.native

    def frame_file(self, index: int) -> str:
        number = index * self.step + self.first
        return os.path.join(self.path, f"{self._prefix}{number:0{self._digits}d}{self._ext}")

    def read(self, indices: list[int]) -> list[np.ndarray]:
        """(H, W, 3) uint8 RGB frames for frame indices."""
        return [self._read(self.frame_file(i)) for i in indices]

    def _read(self, file: str) -> np.ndarray:
        flag = cv2.IMREAD_COLOR
        if self._size is not None and file.lower().endswith((".jpg", ".jpeg")):
            flag = next((f for k, f in _REDUCED if self.native[0] / k >= self._size[0]
                         and self.native[1] / k >= self._size[1]), cv2.IMREAD_COLOR)
        image = decode_image(file, flag)
        if image.shape[1::-1] != tuple(self.size):
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def scan_frame_folder(path: str | Path, with_prefix: bool = False) -> tuple:
    """The frame numbers of a frame folder, their digit count and file extension (and, ``with_prefix``, the
    names' common prefix).

    Raises:
        DataError: the folder holds no numbered frames, or numbers of several widths, extensions or prefixes.
    """
    found = [m for m in (FRAME_FILE.match(name) for name in os.listdir(path)) if m]
    if not found:
        raise DataError(str(path), "frames", "no numbered frames (NNNNNN.jpg) in this folder")
    widths = {len(m.group(2)) for m in found}
    exts = {m.group(3).lower() for m in found}
    prefixes = {m.group(1) for m in found}
    if len(widths) > 1 or len(exts) > 1 or len(prefixes) > 1:
        raise DataError(str(path), "frames", f"frame names mix digit counts {sorted(widths)}, extensions "
                                             f"{sorted(exts)} or prefixes {sorted(prefixes)}; expected one "
                                             "numbering, as NNNNNN.jpg")
    ext = "." + found[0].group(3)
    out = (sorted(int(m.group(2)) for m in found), widths.pop(), ext)
    return (*out, prefixes.pop()) if with_prefix else out


def decode_image(file: str, flag: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """One image file decoded to BGR uint8 (``flag``: a cv2.IMREAD_* flag).

    Raises:
        DataError: the file is missing, empty, truncated (a JPEG without its end-of-image marker) or unreadable.
    """
    if not os.path.exists(file):
        raise DataError(file, "frame", "file not found")
    data = np.fromfile(file, np.uint8)
    if data.size == 0:
        raise DataError(file, "frame", "file is empty (0 bytes)")
    if file.lower().endswith((".jpg", ".jpeg")) and not (data[:2].tobytes() == b"\xff\xd8"
                                                        and b"\xff\xd9" in data[-16:].tobytes()):
        raise DataError(file, "frame", "not a complete JPEG (truncated, or another format)")
    image = cv2.imdecode(data, flag)
    if image is None:
        raise DataError(file, "frame", "cannot be decoded (corrupt, or not an image)")
    return image


def probe_frame(file: str) -> tuple[int, int]:
    """(width, height) of one image file: from a JPEG's frame header without decoding, else by decoding it."""
    if file.lower().endswith((".jpg", ".jpeg")) and os.path.exists(file):
        with open(file, "rb") as f:
            head = f.read(1 << 16)
        i = 2
        while head[:2] == b"\xff\xd8" and i + 9 < len(head) and head[i] == 0xFF:
            marker, length = head[i + 1], int.from_bytes(head[i + 2 : i + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame: P, Y, X
                return int.from_bytes(head[i + 7 : i + 9], "big"), int.from_bytes(head[i + 5 : i + 7], "big")
            i += 2 + length
    image = decode_image(file)
    return image.shape[1], image.shape[0]


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise DataError(path, "video", "file not found")
    if os.path.getsize(path) == 0:
        raise DataError(path, "video", "file is empty (0 bytes)")


def probe_video(path: str | Path, frames: dict | None = None) -> tuple[int, int]:
    """The video's own (width, height), read from the container without decoding a frame.

    Raises:
        DataError: the file is missing, empty, or no container OpenCV knows.
    """
    path = str(path)
    if os.path.isdir(path):
        return FrameFolderReader(path, **(frames or {})).native
    _check_file(path)
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    try:
        if not cap.isOpened():
            raise DataError(path, "video", "cannot be opened (truncated, or not a video)")
        size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    finally:
        cap.release()
    if size[0] <= 0 or size[1] <= 0:
        raise DataError(path, "video", f"the container reports no frame size ({size[0]}x{size[1]})")
    return size


def open_video(path: str | Path, backend: str = "auto", num_threads: int = 1,
               size: tuple[int, int] | None = None, frames: dict | None = None, planar: bool = False) -> VideoReader:
    """Open a video for decoding.

    Args:
        path: the video file, or a frame folder (:class:`FrameFolderReader`, whatever ``backend`` says).
        backend: ``auto`` (decord where installed, else OpenCV), ``decord`` or ``opencv``.
        num_threads: decord's decoding threads (1 inside Ray tasks, which are already parallel).
        size: (width, height) to decode to; None keeps the video's size.
        frames: a frame folder's numbering, ``{"first": N, "step": S}`` (the manifest clip's ``frames``).
        planar: a :class:`PlanarReader` where PyAV is installed and the video is 8-bit yuv420p: its frames
            are :class:`PlanarFrame` s, which the tube cutter crops without converting whole frames; else
            (a frame folder, another pixel format) RGB frames as ``backend`` says.

    Raises:
        DataError: the file is missing, empty or cannot be decoded.
    """
    path = str(path)
    if os.path.isdir(path):
        return FrameFolderReader(path, size=size, **(frames or {}))
    _check_file(path)
    if planar and av is not None:
        try:
            return PlanarReader(path, num_threads=num_threads, size=size)
        except NotPlanar:
            pass  # another pixel format: an RGB reader below
    if backend == "decord" or (backend == "auto" and decord is not None):
        if decord is None:
            raise DataError(path, "video", "decord is not installed on this machine; use backend opencv")
        try:
            return DecordReader(path, num_threads=num_threads, size=size)
        except DataError:
            raise
        except Exception as e:  # decord raises its own DECORDError for unreadable files
            raise DataError(path, "video", f"cannot be decoded: {str(e).splitlines()[0][:200]}") from None
    if backend in ("opencv", "auto"):
        return OpenCVReader(path, size=size)
    raise ValueError(f"unknown video backend {backend!r}; expected auto, decord or opencv")


def iter_frames(reader: VideoReader, indices: list[int] | np.ndarray,
                chunk: int = 32) -> Iterator[tuple[list[int], Sequence[np.ndarray]]]:
    """Decode each of ``indices`` once, in increasing order, ``chunk`` frames at a time.

    Yields:
        (frame indices, their (H, W, 3) uint8 RGB frames) per chunk.

    Raises:
        DataError: an index lies beyond the video's length, or a frame cannot be decoded.
    """
    wanted = sorted({int(i) for i in indices})
    path = getattr(reader, "path", "<video>")
    if wanted and (wanted[0] < 0 or wanted[-1] >= reader.num_frames):
        bad = [i for i in wanted if i < 0 or i >= reader.num_frames]
        raise DataError(path, "frames", f"annotated frame {bad[0]} is beyond the video's {reader.num_frames} frames")
    for start in range(0, len(wanted), chunk):
        part = wanted[start : start + chunk]
        try:
            batch = reader.read(part)
        except DataError:
            raise
        except Exception as e:
            reason = str(e).splitlines()[0][:200]
            raise DataError(path, f"frames {part[0]}..{part[-1]}", f"cannot be decoded: {reason}") from None
        yield part, batch


def read_frames(reader: VideoReader, indices: list[int] | np.ndarray, chunk: int = 32) -> dict[int, np.ndarray]:
    """Decode each of ``indices`` once, in increasing order.

    Returns:
        frame index -> (H, W, 3) uint8 RGB.

    Raises:
        DataError: an index lies beyond the video's length, or a frame cannot be decoded.
    """
    frames: dict[int, np.ndarray] = {}
    for part, batch in iter_frames(reader, indices, chunk):
        frames.update(zip(part, batch))
    return frames


def decode_scale_affine(native: tuple[int, int], decoded: tuple[int, int]) -> np.ndarray:
    """The (2, 3) affine from native pixels to the pixels of a frame decoded at another size.

    Args:
        native, decoded: (width, height).
    """
    ax, ay = decoded[0] / native[0], decoded[1] / native[1]
    return np.array([[ax, 0.0, 0.5 * ax - 0.5], [0.0, ay, 0.5 * ay - 0.5]])
