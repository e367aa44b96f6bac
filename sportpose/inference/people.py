"""Where the people are in each frame: boxes from a COCO-results detections file, or a built-in proposal.

**Image ids.** PoseTrack18 files name frames by image id ``TSSSSSSFFFF`` (``base + frame index``). A video's
ids come from its ground-truth file when one is given; else from its name (PoseTrack's
``NNNNNN_mpii|bonn|mpiinew…``, SynthCourt's ``synth_<seed>_<clip>``); else, with a detections file that covers
exactly one video, from that file; else frame index = image id (video number 0). A detections file is read
against these ids, so a file made for another video is refused instead of silently giving no boxes.

**The built-in proposal** (no detector network ships with the project; nothing is downloaded) finds people as
foreground blobs of person shape, from one of two cues chosen per frame:

- *motion*, when the camera is still (the global shift between consecutive frames, by phase correlation, is
  under ``still_px``): a MOG2 background model; moving players are its foreground. It needs a few frames to
  learn the background and sees nobody who stands still for long.
- *playing surface*, when the camera moves (broadcast pans) or the background model is still warming up:
  the surface is the largest region of the frame's common colours (histogram bins covering at least
  ``surface_share`` of the pixels with one connected region of at least 3 %: grass, a wooden floor); people
  are the blobs of uncommon colour inside its convex hull, after an opening that removes the field's lines.
  Painted areas of another colour, logos and crowds inside that hull are its false positives.

Blobs (closed vertically so that head, torso and legs join) become boxes when their height is 10–90 % of the
frame's, their aspect person-like and their foot point on the playing surface (its hull, slightly dilated:
this drops the crowd and billboards). Two people who touch become one box. Measured on SynthCourt clips
and the PoseTrack fixtures (README, ``bench/person_proposal.py``): on SynthCourt about half the people are
found at IoU 0.5 with two thirds of the boxes right; on the crowded PoseTrack frames, none. The tracker
(:mod:`~sportpose.inference.tracker`) adds boxes propagated from each track's last pose, which
covers people the proposal loses for a few frames. For real footage, a detections file from a real person
detector is the way to good results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from sportpose.errors import DataError
from sportpose.data.formats import (
    FRAMES_PER_VIDEO, VideoAnnotation, parse_video_name, posetrack_image_id, read_detections,
)
from sportpose.data.synthcourt import image_id as synth_image_id

SYNTH_NAME = re.compile(r"^synth_\d+_(\d+)$")


@dataclass(frozen=True)
class VideoIds:
    """How the frames of one video are named in PoseTrack18 files."""

    name: str  # the video's name (PoseTrack: its image folder), also the prediction file's stem
    base: int  # image id of frame 0; image id = base + frame index
    known: bool  # False: the ids are a guess (video number 0) that a detections file may replace
    file_names: dict[int, str] = field(default_factory=dict)  # frame index -> file_name, from a ground truth

    def image_id(self, frame: int) -> int:
        return self.base + frame

    def file_name(self, frame: int) -> str:
        return self.file_names.get(frame, f"images/{self.name}/{frame:06d}.jpg")

    @property
    def video_number(self) -> int:
        return self.base // FRAMES_PER_VIDEO


def video_ids(video: str | Path, gt: VideoAnnotation | None = None) -> VideoIds:
    """The image ids of ``video``'s frames: from its ground truth, else from its name (see the module doc)."""
    stem = Path(video).stem
    if gt is not None and gt.frames:
        first = gt.frames[0]
        return VideoIds(gt.name, first.image_id - first.frame_index, True,
                        {f.frame_index: f.file_name for f in gt.frames})
    posetrack = parse_video_name(stem)
    if posetrack is not None:
        video_number, sequence_type = posetrack
        return VideoIds(stem, posetrack_image_id(video_number, 0, sequence_type), True)
    m = SYNTH_NAME.match(stem)
    if m:
        return VideoIds(stem, synth_image_id(int(m.group(1)), 0), True)
    return VideoIds(stem, 0, False)


class DetectionBoxes:
    """Person boxes of one video from a COCO-results detections file (``image_id``, ``bbox``, ``score``).

    Args:
        path: the detections file; it may cover many videos.
        ids: the video's image ids (:func:`video_ids`); replaced when not ``known`` and the file covers one video.
        num_frames: the video's frame count as its container reports it, or None.
        threshold: detections scoring below it are dropped.

    Raises:
        DataError: the file is unreadable, or none of its detections belongs to this video.
    """

    def __init__(self, path: str | Path, ids: VideoIds, num_frames: int | None, threshold: float = 0.5):
        self.path = str(path)
        if not Path(path).is_file():
            raise DataError(self.path, "--detections", "file not found")
        dets = read_detections(path)
        videos = sorted({image_id // FRAMES_PER_VIDEO for image_id in dets})
        if not ids.known and len(videos) == 1:
            ids = VideoIds(ids.name, videos[0] * FRAMES_PER_VIDEO, True, ids.file_names)
        self.ids = ids
        # a video of more than 10,000 frames goes on into the next video numbers, as its predictions' parts do
        # (sportpose.inference.writers): frame = image id - base
        span = max(num_frames or 0, FRAMES_PER_VIDEO)
        mine = {image_id - ids.base: boxes for image_id, boxes in dets.items() if 0 <= image_id - ids.base < span}
        if not mine:
            theirs = ", ".join(f"{v * FRAMES_PER_VIDEO}+frame" for v in videos[:3]) + (" ..." if len(videos) > 3 else "")
            raise DataError(self.path, "image_id", f"no detection is of video {ids.name} (image ids {ids.base}+frame); "
                                                   f"the file's detections are of {theirs or 'no video'}")
        if num_frames and max(mine) >= num_frames:
            raise DataError(self.path, "image_id", f"detections for frame {max(mine)} of video {ids.name}, which has "
                                                   f"{num_frames} frames: the file is for another video")
        self.boxes = {frame: [(np.asarray(b, np.float64), float(s)) for b, s in found if s >= threshold]
                      for frame, found in mine.items()}
        self.threshold = threshold

    def __call__(self, frame: int, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """(box ``[x, y, w, h]`` image pixels, score) of the frame's detections."""
        return self.boxes.get(frame, [])

    def describe(self) -> str:
        return f"detections {Path(self.path).name} (score >= {self.threshold})"


class ForegroundProposal:
    """The built-in person proposal: motion blobs under a still camera, playing-surface blobs otherwise.

    Stateful (a background model, the previous frame): one object per video, fed frames in order.

    Args:
        work_width: frames are analysed at this width (pixels), boxes returned in the frame's own pixels.
        surface_share: a colour bin covering at least this share of the frame is part of the surface.
        still_px: the camera counts as still when the global shift is below this many pixels (at work_width).
        warmup: frames the background model learns before motion is trusted.
        cue: ``auto`` (as above), or ``motion`` / ``surface`` alone (for measuring each, see
            ``bench/person_proposal.py``).
    """

    SCORE = 0.5  # every proposal gets this score: the cue gives no calibrated confidence

    def __init__(self, work_width: int = 320, surface_share: float = 0.01, still_px: float = 0.5, warmup: int = 3,
                 cue: str = "auto"):
        self.work_width = work_width
        self.surface_share = surface_share
        self.still_px = still_px
        self.warmup = warmup
        self.cue = cue
        self._background = cv2.createBackgroundSubtractorMOG2(history=50, varThreshold=16, detectShadows=False)
        self._previous: np.ndarray | None = None
        self._still_frames = 0
        self.cues = {"motion": 0, "surface": 0}  # frames each cue was used on

    def __call__(self, frame: int, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """(box ``[x, y, w, h]`` image pixels, score) of the people found in ``image`` (H, W, 3) uint8 RGB."""
        h0, w0 = image.shape[:2]
        scale = min(1.0, self.work_width / w0)
        small = cv2.resize(image, (max(1, round(w0 * scale)), max(1, round(h0 * scale))), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
        still = False
        if self._previous is not None and self._previous.shape == grey.shape:
            (dx, dy), _ = cv2.phaseCorrelate(self._previous, grey)
            still = float(np.hypot(dx, dy)) < self.still_px
        self._previous = grey
        self._still_frames = self._still_frames + 1 if still else 0
        motion = self._background.apply(small, learningRate=-1 if still else 1.0)  # a moving camera: relearn
        surface, hull = surface_foreground(small, self.surface_share)
        if self.cue == "motion" or (self.cue == "auto" and still and self._still_frames >= self.warmup):
            mask = cv2.morphologyEx((motion > 0).astype(np.uint8), cv2.MORPH_OPEN, _ellipse(3))
            self.cues["motion"] += 1
        else:
            mask = surface
            self.cues["surface"] += 1
        # People stand on the playing surface: a blob whose foot point lies outside its hull (the crowd, a
        # billboard) is not a player.
        hull = cv2.dilate(hull, _ellipse(max(3, int(small.shape[0] * 0.04) | 1)))
        boxes = [b for b in person_blobs(mask) if _on(hull, b[0] + b[2] / 2, b[1] + b[3])]
        return [(box / scale, self.SCORE) for box in boxes]

    def describe(self) -> str:
        return (f"built-in proposal (motion on {self.cues['motion']} frames, playing surface on "
                f"{self.cues['surface']}) + boxes propagated from tracked poses")


def _on(mask: np.ndarray, x: float, y: float) -> bool:
    """Whether the point (x, y), clamped into the mask, lies on it."""
    h, w = mask.shape
    return bool(mask[int(np.clip(round(y), 0, h - 1)), int(np.clip(round(x), 0, w - 1))])


def _ellipse(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def surface_foreground(image: np.ndarray, share: float, region: float = 0.03) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of uncommon colour inside the convex hull of the playing surface, and that hull.

    A colour bin (16 hues x 4 saturations x 4 values) is common when it covers at least ``share`` of the
    frame *and* one connected region of it covers at least ``region``: a team's jerseys may cover more than
    ``share`` in total, but in player-sized pieces.

    Args:
        image: (h, w, 3) uint8 RGB.

    Returns:
        (h, w) uint8 masks, 1 = foreground, and 1 = inside the surface's hull.
    """
    h, w = image.shape[:2]
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.int32)
    bins = (hsv[..., 0] * 16 // 180) * 16 + (hsv[..., 1] // 64) * 4 + hsv[..., 2] // 64  # (h, w) in 0..255
    counts = np.bincount(bins.ravel(), minlength=256)
    common_bins = np.zeros(256, bool)
    for b in np.flatnonzero(counts >= share * bins.size):
        _, _, stats, _ = cv2.connectedComponentsWithStats((bins == b).astype(np.uint8))
        common_bins[b] = stats[1:, cv2.CC_STAT_AREA].max() >= region * bins.size
    common = common_bins[bins]
    k = max(3, int(h * 0.03) | 1)
    surface = cv2.morphologyEx(common.astype(np.uint8), cv2.MORPH_CLOSE, _ellipse(k))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(surface)
    hull = np.zeros((h, w), np.uint8)
    if n > 1:
        largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        cv2.fillConvexPoly(hull, cv2.convexHull(cv2.findNonZero((labels == largest).astype(np.uint8))), 1)
    rare = (~common).astype(np.uint8) & hull
    # An opening of 4 % of the height removes the field's lines (and thin limbs: the box is widened later).
    return cv2.morphologyEx(rare, cv2.MORPH_OPEN, _ellipse(max(3, int(h * 0.04) | 1))), hull


def person_blobs(mask: np.ndarray) -> list[np.ndarray]:
    """Boxes ``[x, y, w, h]`` (mask pixels) of the blobs of person size and shape in a foreground mask.

    The mask is closed with a tall, narrow kernel first, so that a person's head, torso and legs join while
    side-by-side people stay apart; a box is kept when its height is 10-90 % of the mask's, its height 0.8-6
    times its width and its blob fills at least 15 % of it; it is then widened 10 % and heightened 5 % on
    each side (the blob misses the thin limbs).
    """
    h = mask.shape[0]
    v = max(5, int(h * 0.06) | 1)
    closed = cv2.morphologyEx(mask.astype(np.uint8) * 255, cv2.MORPH_CLOSE,
                              cv2.getStructuringElement(cv2.MORPH_RECT, (5, v)))
    n, _, stats, _ = cv2.connectedComponentsWithStats(closed)
    boxes = []
    for x, y, bw, bh, area in stats[1:]:
        if not 0.1 * h <= bh <= 0.9 * h or not 0.8 * bw <= bh <= 6 * bw or area < 0.15 * bw * bh:
            continue
        mx, my = 0.1 * bw, 0.05 * bh
        boxes.append(np.array([x - mx, y - my, bw + 2 * mx, bh + 2 * my], np.float64))
    return boxes
