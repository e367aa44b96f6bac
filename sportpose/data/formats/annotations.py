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


def doubts(video: VideoAnnotation, video_frames: int | None = None) -> list[str]:
    """What in a readable annotation is probably wrong, one line each (``data inspect`` and ``data prepare``
    warn about them).

    - person boxes of zero area or negative width or height (``[x, y, w, h]``: a box stored as corners, or a
      degenerate one): nothing can be cropped from them;
    - frames annotated beyond the last frame the video decodes to (``video_frames``): they have no pixels.

    Args:
        video: one video's annotations.
        video_frames: the frames its video file decodes to (None: not checked).
    """
    bad = [(f.frame_index, p.track_id, p.bbox) for f in video.frames for p in f.persons
           if p.bbox is not None and (p.bbox[2] <= 0 or p.bbox[3] <= 0)]
    lines = []
    if bad:
        frame, track, box = bad[0]
        lines.append(f"{video.path}: {len(bad)} person box{'es' if len(bad) > 1 else ''} of zero area or negative "
                     f"size (first: frame {frame}, track {track}, bbox [x, y, w, h] = "
                     f"[{', '.join(f'{v:g}' for v in box)}])")
    last = max((f.frame_index for f in video.frames), default=-1)
    if video_frames is not None and last >= video_frames:
        lines.append(f"{video.path}: frames are annotated up to index {last}, but its video decodes to "
                     f"{video_frames} frames (the video is shorter than its annotations)")
    return lines
