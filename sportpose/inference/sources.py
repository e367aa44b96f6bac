"""What ``sportpose infer`` and :class:`~sportpose.inference.api.Inferencer` read: videos, frame folders, images,
folders of these, and live sources, each as a stream of RGB frames.

:func:`open_sources` turns what the user gave into :class:`VideoSource` objects, one per video:

- a **video file** (any container OpenCV's FFmpeg or decord decodes);
- a **frame folder** (numbered ``NNNNNN.jpg``/``.png`` frames, as PoseTrack ships: :mod:`sportpose.data.video`);
- an **image** (``.jpg``, ``.jpeg``, ``.png``, ``.bmp``, ``.webp``, ``.tif``/``.tiff``): a video of one frame;
- a **folder of videos**: every video file and frame folder directly inside it, in name order (each its own
  output folder and a line of the summary table);
- a **live source**, anything ``cv2.VideoCapture`` opens that is not a path: a device index (``0``) or a URL
  (``rtsp://``, ``http://``, ``https://``, ``udp://``, ``tcp://``, ``rtmp://``...). Its length is unknown
  (``num_frames`` None): frames are read until the stream ends (or the caller stops).

Frames are decoded once, in order, and handed on without being kept: a source is consumed by iterating
:meth:`VideoSource.frames`. A path that exists but is none of these, a folder holding nothing readable, or a
source that cannot be opened is a :class:`~sportpose.errors.DataError` naming the path and what was
expected.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sportpose.data.video import FRAME_FILE, decode_image, iter_frames, open_video
from sportpose.errors import DataError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".wmv", ".flv")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
DECODE_CHUNK = 8  # frames per decoder call
LIVE_FPS = 25.0  # a live source that reports no frame rate


@dataclass
class VideoSource:
    """One video to run on.

    ``kind`` is ``video``, ``frames`` (a frame folder), ``image`` or ``live``; ``num_frames`` is None for a
    live source. Iterate :meth:`frames` once.
    """

    path: str  # the file, folder, device index or URL as given
    name: str  # the video's name: its file's stem, folder's name, or ``camera<N>``/the URL's last part
    kind: str
    fps: float
    num_frames: int | None
    _reader: object = None

    def frames(self) -> Iterator[tuple[int, np.ndarray]]:
        """(frame index, (H, W, 3) uint8 RGB frame), in order, each decoded once.

        Raises:
            DataError: a frame that cannot be decoded (naming the source and the frame).
        """
        if self.kind == "live":
            yield from _live_frames(self._reader, self.path)
            return
        if self.kind == "image":
            yield 0, cv2.cvtColor(decode_image(self.path), cv2.COLOR_BGR2RGB)
            return
        for part, batch in iter_frames(self._reader, range(self.num_frames), DECODE_CHUNK):
            yield from zip(part, batch)

    def close(self) -> None:
        if self.kind == "live" and self._reader is not None:
            self._reader.release()


def _live_frames(cap: cv2.VideoCapture, path: str) -> Iterator[tuple[int, np.ndarray]]:
    index = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                if index == 0:
                    raise DataError(path, "stream", "opened, but no frame could be read from it")
                return
            yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        cap.release()


def is_live(source: str | int) -> bool:
    """Whether ``source`` names a camera or network stream rather than a path: a device index or a URL."""
    text = str(source)
    return isinstance(source, int) or (text.isdigit() and not os.path.exists(text)) or bool(URL.match(text))


def open_sources(source: str | int | Path, decoder: str = "opencv") -> list[VideoSource]:
    """The videos ``source`` stands for (see the module doc), opened.

    Args:
        source: a path (video, frame folder, image, folder of videos), a device index or a URL.
        decoder: ``opencv`` (decord when OpenCV cannot open a file) or ``decord``.

    Raises:
        DataError: naming the path and what was expected.
    """
    if is_live(source):
        return [open_live(source)]
    path = Path(source)
    if not path.exists():
        raise DataError(str(path), "source", "not found (expected a video file, a folder of videos or of frames, "
                                             "an image, a device index or a stream URL)")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            return [open_image(path)]
        return [open_file(path, decoder)]
    if not path.is_dir():
        raise DataError(str(path), "source", "is neither a file nor a folder")
    names = sorted(os.listdir(path))
    if any(FRAME_FILE.match(n) for n in names):
        return [open_file(path, decoder)]  # a frame folder
    members = [path / n for n in names if not n.startswith(".")]
    videos = [p for p in members if (p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
              or (p.is_dir() and any(FRAME_FILE.match(n) for n in os.listdir(p)))]
    if not videos:
        images = [p for p in members if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        hint = (f"; its {len(images)} images are not numbered frames (NNNNNN.jpg): give one image at a time"
                if images else "")
        raise DataError(str(path), "source", "holds no video file (" + ", ".join(VIDEO_SUFFIXES[:5]) + " ...) "
                                             f"and no numbered frames (NNNNNN.jpg), nor folders of them{hint}")
    return [open_file(p, decoder) for p in videos]


def open_file(path: str | Path, decoder: str = "opencv") -> VideoSource:
    """A video file or a frame folder.

    Raises:
        DataError: the file cannot be opened as a video, or holds no frames.
    """
    path = str(path)
    if os.path.isdir(path):
        reader = open_video(path)
        return VideoSource(path, Path(path).name, "frames", reader.fps, reader.num_frames, reader)
    suffix = Path(path).suffix.lower()
    try:
        reader = open_video(path, backend=decoder)
    except DataError:
        if decoder != "opencv":
            raise
        try:
            reader = open_video(path, backend="auto")  # decord where installed: it may read what OpenCV cannot
        except DataError as e:
            what = "a video" if suffix in VIDEO_SUFFIXES else f"a video (a {suffix or 'suffix-less'} file)"
            raise DataError(path, "video", f"cannot be decoded as {what}: {e.message}") from None
    if reader.num_frames <= 0:
        raise DataError(path, "video", "holds no frames (or the container does not say how many)")
    return VideoSource(path, Path(path).stem, "video", reader.fps, reader.num_frames, reader)


def open_image(path: str | Path) -> VideoSource:
    """One image as a video of one frame (checked by decoding it once here).

    Raises:
        DataError: the image cannot be decoded.
    """
    decode_image(str(path))
    return VideoSource(str(path), Path(path).stem, "image", LIVE_FPS, 1)


def open_live(source: str | int) -> VideoSource:
    """A camera (device index) or a stream URL, opened with ``cv2.VideoCapture``.

    Raises:
        DataError: OpenCV cannot open it.
    """
    text = str(source)
    target: str | int = int(text) if text.isdigit() else text
    cap = cv2.VideoCapture(target)
    if not cap.isOpened():
        cap.release()
        what = "camera device index" if isinstance(target, int) else "stream URL"
        raise DataError(text, "source", f"cannot be opened as a {what} (cv2.VideoCapture)")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    fps = fps if 0 < fps < 1000 else LIVE_FPS
    if isinstance(target, int):
        name = f"camera{target}"
    else:
        stem = Path(text.split("?")[0].rstrip("/")).stem
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", stem) or "stream"
    return VideoSource(text, name, "live", fps, None, cap)
