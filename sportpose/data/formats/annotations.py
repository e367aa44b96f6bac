"""The three plain dataclasses every annotation format is read into, in the PoseTrack 2018 layout (SPEC §3.2).

`VideoAnnotation` > `FrameAnnotation` > `PersonAnnotation`: 17 joints in file order (`skeleton.POSETRACK`),
pixel coordinates, boxes ``[x, y, w, h]``; an unlabeled joint is ``0, 0, 0`` as in the files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PersonAnnotation:
    track_id: int
    keypoints: np.ndarray  # (17, 3) float32: x, y (pixels), v (visibility 0/1); posetrack order
    bbox: np.ndarray | None  # (4,) x, y, w, h pixels
    bbox_head: np.ndarray | None  # (4,) x, y, w, h
    scores: np.ndarray | None = None  # (17,) per-joint scores (predictions); float64 as read
    score: float | None = None  # person score (predictions/detections)
    keypoints_3d: np.ndarray | None = None  # (J, 3) mm, when a source has them


@dataclass
class FrameAnnotation:
    image_id: int  # PoseTrack id TSSSSSSFFFF (posetrack18.posetrack_image_id)
    file_name: str
    frame_index: int  # 0-based index into the video (image_id % 10000 for PoseTrack18)
    is_labeled: bool
    persons: list[PersonAnnotation]
    ignore_regions: list[np.ndarray]  # polygons, each (N, 2) pixels


@dataclass
class VideoAnnotation:
    name: str  # video name, e.g. "003418_mpii_test"
    path: str  # file it was read from
    nframes: int
    frames: list[FrameAnnotation]  # sorted by frame_index
    categories: list[dict]  # as read (kept for writing back)
