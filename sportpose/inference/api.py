"""The Python API of inference: ``Inferencer(model)``, called on a source, yields each frame's people.

::

    from sportpose.inference.api import Inferencer

    inferencer = Inferencer("models:/sportpose-multistream@champion")   # or a checkpoint folder or file
    for frame in inferencer("match.mp4"):                # a video, frame folder, image, folder, device, URL
        for person in frame.persons:
            person.track_id, person.box, person.keypoints, person.scores   # frame pixels; joints_3d (STSP-Net)

``sportpose infer`` is a loop over :meth:`Inferencer.stream` that writes what it yields (overlays, PoseTrack18
files, 3D animations, :mod:`~sportpose.inference.run`), so its files hold exactly what the API returns.

One video streams as follows. Frames are decoded once, in order (:mod:`~sportpose.inference.sources`), and
each is held only while a tube or context clip still needs it. People come from a detections file
(:class:`~sportpose.inference.people.DetectionBoxes`), an ONNX person detector
(:class:`~sportpose.inference.detector.OnnxDetector`) or the built-in proposal
(:class:`~sportpose.inference.people.ForegroundProposal`). Frame t's people are cut as soon as the frames
their tubes need have arrived (:class:`~sportpose.inference.estimator.PoseEstimator`), and the people of up
to ``batch_size`` frames go through the model in one forward pass; with the built-in proposal each frame is
estimated on its own, because the tracks of frame t propose boxes for frame t + 1 (people the proposal
loses). Poses then get track ids (:mod:`~sportpose.inference.tracker`) in frame order, STSP-Net's TMP runs
along each track, and with ``smooth`` the tracks are smoothed
(:mod:`~sportpose.inference.track_smoothing`, which holds frames back by the method's look-ahead).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sportpose.data.formats import VideoAnnotation, read_posetrack18
from sportpose.errors import DataError, SpecError
from sportpose.inference.estimator import Pose, PoseEstimator, Prepared
from sportpose.inference.people import DetectionBoxes, ForegroundProposal, VideoIds, video_ids
from sportpose.inference.sources import VideoSource, open_sources
from sportpose.inference.track_smoothing import LaggedSmoother
from sportpose.inference.tracker import PoseTracker, nms
from sportpose.models.skeleton import JointSet
from sportpose.registry.load import LoadedModel, load_model


@dataclass
class FrameResult:
    """The people of one frame.

    ``persons`` are :class:`~sportpose.inference.estimator.Pose` objects: ``track_id``; ``box`` (4,) ``[x, y,
    w, h]`` frame pixels (the box the pose was estimated in); ``keypoints`` (K, 2) frame pixels and ``scores``
    (K,) in the model's joint set (``joint_set``: PoseTrack's 17 for the 2D models, h36m's for STSP-Net);
    ``joints_3d`` (J, 3) mm, root-relative in the camera frame, for STSP-Net (else None).
    """

    video: str  # the video's name
    index: int  # frame index in the video, from 0
    image: np.ndarray = field(repr=False)  # (H, W, 3) uint8 RGB, the frame itself
    persons: list[Pose]
    joint_set: JointSet = field(repr=False)


class DetectorBoxes:
    """Person boxes from an ONNX detector (:class:`~sportpose.inference.detector.OnnxDetector`), per frame."""

    def __init__(self, path: str, threshold: float):
        from sportpose.inference.detector import OnnxDetector  # onnxruntime loads only when a detector is used

        self.path, self.threshold = path, threshold
        self.detector = OnnxDetector(path, score_threshold=threshold)

    def __call__(self, frame: int, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        dets = self.detector(image)  # (N, 5) x1, y1, x2, y2, score
        return [(np.array([x1, y1, x2 - x1, y2 - y1], np.float64), float(s)) for x1, y1, x2, y2, s in dets]

    def describe(self) -> str:
        return f"ONNX detector {Path(self.path).name} (score >= {self.threshold})"


class VideoRun:
    """One video's inference: iterate it for its :class:`FrameResult` objects; its figures are filled as it goes.

    Made by :meth:`Inferencer.stream`.
    """

    def __init__(self, inferencer: "Inferencer", video: VideoSource, ids: VideoIds, people: Any,
                 gt: VideoAnnotation | None):
        self.video, self.ids, self.people, self.gt = video, ids, people, gt
        self.loaded = inferencer.loaded
        self.estimator = PoseEstimator(inferencer.loaded, inferencer.batch_size)
        self.tracker = PoseTracker(joints=inferencer.loaded.joint_set.joints)  # per-joint OKS sigmas
        self.keep_threshold = inferencer.keep_threshold
        self.smoother = LaggedSmoother(inferencer.smooth, video.fps) if inferencer.smooth else None
        self.propagate = isinstance(people, ForegroundProposal)
        # frames whose people go through the model together (1 with the proposal: see the module doc)
        self.batch_frames = 1 if self.propagate else inferencer.batch_size
        self.frames = 0  # frames handed out so far
        self.poses = 0
        self.seconds = 0.0  # the whole loop so far
        self.size = (0, 0)  # (width, height) of the frames

    @property
    def model_seconds(self) -> float:
        return self.estimator.seconds

    @property
    def tracks(self) -> int:
        return self.tracker.next_id

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")

    @property
    def model_fps(self) -> float:
        return self.frames / self.model_seconds if self.model_seconds > 0 else float("nan")

    def describe_boxes(self) -> str:
        return self.people.describe()

    def __iter__(self) -> Iterator[FrameResult]:
        start = time.perf_counter()
        try:
            for result in self._results():
                self.frames += 1
                self.poses += len(result.persons)
                self.seconds = time.perf_counter() - start  # the caller's work on earlier frames counts too
                yield result
            self.seconds = time.perf_counter() - start
        finally:
            self.video.close()
        if self.frames == 0:
            raise DataError(self.video.path, "video", "no frame could be decoded")

    def _results(self) -> Iterator[FrameResult]:
        geometry = self.estimator.geometry
        frames: dict[int, np.ndarray] = {}
        boxes: dict[int, list[tuple[np.ndarray, float]]] = {}
        pending: list[Prepared] = []
        next_anchor = decoded = 0
        for index, image in self.video.frames():
            frames[index] = image
            if self.size == (0, 0):
                self.size = (image.shape[1], image.shape[0])
            boxes[index] = self.people(index, image)
            decoded = index + 1
            while next_anchor + geometry.ahead < decoded:
                pending.append(self._prepare(next_anchor, frames, boxes, decoded))
                next_anchor += 1
                if len(pending) >= self.batch_frames or sum(len(p.boxes) for p in pending) >= self.estimator.batch_size:
                    yield from self._finish(pending, frames, decoded)  # before the frames go: propagation reads them
                    pending = []
                for old in [k for k in frames if k < next_anchor - geometry.back]:
                    del frames[old]
        while next_anchor < decoded:  # the last frames: their tubes are clamped at the video's end
            pending.append(self._prepare(next_anchor, frames, boxes, decoded))
            next_anchor += 1
        yield from self._finish(pending, frames, decoded)
        if self.smoother is not None:
            yield from self.smoother.flush()

    def _prepare(self, anchor: int, frames: dict[int, np.ndarray], boxes: dict, known: int) -> Prepared:
        found = [(b, s) for b, s in boxes.pop(anchor) if b[2] > 1 and b[3] > 1]
        if self.propagate and found:
            keep = nms([b for b, _ in found], [s for _, s in found])
            found = [found[i] for i in keep]
        prepared = self.estimator.prepare(anchor, frames, [b for b, _ in found], known)
        prepared.image = frames[anchor]  # the frame itself, handed out with its results
        return prepared

    def _finish(self, pending: list[Prepared], frames: dict[int, np.ndarray], known: int) -> Iterator[FrameResult]:
        """Forward the pending frames' people together, then track them frame by frame, in order."""
        for prepared, poses in zip(pending, self.estimator.forward(pending)):
            anchor = prepared.anchor
            track_ids = self.tracker.update(anchor, [p.box for p in poses], [p.keypoints for p in poses],
                                            [p.scores for p in poses])
            for p, t in zip(poses, track_ids):
                p.track_id = t
            if self.propagate:  # tracks the proposal lost in this frame: estimate them in boxes from their last pose
                lost = self.tracker.propagated_boxes(anchor, track_ids)
                for t, p in zip(lost, self.estimator(anchor, frames, list(lost.values()), known)):
                    inside = _inside(p.box, np.stack([q.box for q in poses])) if poses else 0.0
                    if float(np.mean(p.scores)) >= self.keep_threshold and inside < 0.5:
                        self.tracker.extend(t, anchor, p.box, p.keypoints, p.scores)
                        p.track_id = t
                        poses.append(p)
            self.estimator.refine(poses)  # STSP-Net: TMP along each track, now that the poses have their ids
            result = FrameResult(self.ids.name, anchor, prepared.image, poses, self.loaded.joint_set)
            if self.smoother is None:
                yield result
            else:
                yield from self.smoother.push(result)


def _inside(box: np.ndarray, others: np.ndarray) -> float:
    """The largest share of ``box``'s area that lies inside one of ``others`` (N, 4)."""
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[0] + box[2], others[:, 0] + others[:, 2])
    y2 = np.minimum(box[1] + box[3], others[:, 1] + others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    return float(inter.max() / max(box[2] * box[3], 1e-9))


class Inferencer:
    """A trained model ready to run on sources.

    Args:
        model: ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, a checkpoint folder or a checkpoint file (as
            ``sportpose infer --model``), or an already loaded :class:`~sportpose.registry.load.LoadedModel`.
        spec: the experiment spec of a checkpoint (default: found beside it).
        detector: an ONNX person detector (``--detector``); None: a detections file given to the call, else
            the built-in proposal.
        detections: person detections in the COCO results format (``--detections``), for every call.
        smooth: ``oneeuro`` or ``savgol`` (``--smooth``) to smooth keypoints (and 3D joints) along tracks.
        det_threshold: detections (file or detector) scoring below this are not used.
        keep_threshold: a pose estimated in a box propagated from a track is kept when its mean joint score
            reaches this (built-in proposal only).
        batch_size: person tubes per forward pass (people of several frames share one).
        threads: torch intra-op threads; None: torch's default.
        decoder: ``opencv`` (decord when OpenCV cannot open a file) or ``decord``.

    Raises:
        DataError: the model, spec, detector or detections cannot be read.
        SpecError: a bad option (naming its flag).
    """

    def __init__(self, model: str | LoadedModel, *, spec: str | None = None, detector: str | None = None,
                 detections: str | None = None, smooth: str | None = None, det_threshold: float = 0.5,
                 keep_threshold: float = 0.3, batch_size: int = 16, threads: int | None = None,
                 decoder: str = "opencv"):
        for flag, value in (("--det-threshold", det_threshold), ("--keep-threshold", keep_threshold)):
            if not 0.0 <= value <= 1.0:
                raise SpecError(flag, f"must be in [0, 1], got {value}")
        if batch_size < 1:
            raise SpecError("--batch-size", f"must be at least 1, got {batch_size}")
        if threads is not None and threads < 1:
            raise SpecError("--threads", f"must be at least 1, got {threads}")
        if decoder not in ("opencv", "decord"):
            raise SpecError("--decoder", f"expected opencv or decord, got {decoder!r}")
        if detector and detections:
            raise SpecError("--detector", "give either --detector or --detections, not both")
        if smooth is not None:
            LaggedSmoother(smooth, 25.0)  # an unknown method fails here, before any work
        if detector is not None and not Path(detector).is_file():
            raise DataError(detector, "--detector", "file not found (expected an ONNX person detector)")
        if threads:
            torch.set_num_threads(threads)
        self.loaded = model if isinstance(model, LoadedModel) else load_model(model, spec)
        self.detector, self.detections, self.smooth = detector, detections, smooth
        self.det_threshold, self.keep_threshold = det_threshold, keep_threshold
        self.batch_size, self.decoder = batch_size, decoder
        self._detector = DetectorBoxes(detector, det_threshold) if detector else None  # loaded once, shared

    def __call__(self, source: str | int | Path, *, detections: str | None = None, gt: str | None = None
                 ) -> Iterator[FrameResult]:
        """Every frame of every video of ``source`` (one after the other; ``FrameResult.video`` names it)."""
        videos = self.videos(source)
        for video in videos:
            yield from self.stream(video, detections=detections, gt=gt, gt_by_name=len(videos) > 1)

    def videos(self, source: str | int | Path) -> list[VideoSource]:
        """The videos of ``source`` (:func:`open_videos`), opened."""
        return open_videos(source, self.decoder)

    def stream(self, video: VideoSource, *, detections: str | None = None, gt: str | None = None,
               gt_by_name: bool = False) -> VideoRun:
        """One video's run (iterate it).

        Args:
            video: one of :meth:`videos`.
            detections: a detections file (default: the Inferencer's).
            gt: PoseTrack18 ground truth: it names the video's image ids, and ``sportpose infer`` scores against
                it. A file of one video is this video's, whatever its name, unless ``gt_by_name`` (a folder's
                videos: a video without a ground truth of its name has none).
        """
        detections = detections or self.detections
        truth = ground_truth(gt, video.name, gt_by_name)
        ids = video_ids(video.name + ".video", truth)  # video_ids reads a path's stem; a name may hold dots
        if detections:
            people: Any = DetectionBoxes(detections, ids, video.num_frames, self.det_threshold)
            ids = people.ids
        elif self._detector is not None:
            people = self._detector
        else:
            people = ForegroundProposal()
        return VideoRun(self, video, ids, people, truth)


def open_videos(source: str | int | Path, decoder: str = "opencv") -> list[VideoSource]:
    """The videos of ``source`` (:func:`~sportpose.inference.sources.open_sources`), opened, FFmpeg's own lines
    about a corrupt file kept off the terminal (the DataError says it once)."""
    with native_stderr_silenced():
        return open_sources(source, decoder)


def ground_truth(path: str | None, video: str, by_name: bool = False) -> VideoAnnotation | None:
    """The PoseTrack18 ground truth of the video named ``video`` in ``path`` (one video, or a merged file).

    Args:
        by_name: only a video of this name (None if there is none); else a file of one video is this video's.

    Raises:
        DataError: the file is missing, or (not ``by_name``) holds several videos and none of this name.
    """
    if not path:
        return None
    if not Path(path).is_file():
        raise DataError(path, "--gt", "file not found")
    videos = read_posetrack18(path)
    if len(videos) == 1 and not by_name:
        return videos[0]
    named = [v for v in videos if v.name == video]
    if not named and by_name:
        return None
    if not named:
        raise DataError(path, "images", f"holds {len(videos)} videos, none named {video!r}")
    return named[0]


@contextmanager
def native_stderr_silenced():
    """Route the process's file descriptor 2 to /dev/null for the block (C libraries write there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
