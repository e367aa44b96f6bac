"""Track ids across frames: each frame's poses are associated greedily with the live tracks.

The similarity of a pose and a track combines the overlap of their boxes and the agreement of their
keypoints, as the PoseTrack baselines do (Xiao et al. 2018 use box IoU or OKS; both are used here):

- ``iou``: intersection over union of the pose's person box and the track's last box;
- ``oks``: object keypoint similarity of the pose's confident joints and the track's last pose,
  ``mean exp(-d² / (2 s² κ²))`` over joints both score at least ``joint_threshold``, with ``s²`` the area of the
  track's box and one κ for every joint (0.1, about COCO's value for hips and knees);
- similarity = ``iou_weight`` · iou + (1 - ``iou_weight``) · oks, or iou alone without shared confident joints.

Pairs are taken in decreasing similarity; a pair below ``min_similarity`` starts a new track instead. A
track not seen for ``max_age`` frames ends. Ids count up from 0 and are never reused.

Tracks also propose boxes (:meth:`PoseTracker.propagated_boxes`): a track seen in the previous frame but
matched by none of this frame's poses gets the extent of its last pose's confident joints, enlarged by
``pad`` on each side, and is continued (:meth:`PoseTracker.extend`) with the pose estimated there. This is
how a person the built-in proposal misses for a few frames keeps being estimated (the caller drops a
propagated pose whose joints score too low, or whose box mostly lies inside another pose's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OKS_KAPPA = 0.1


@dataclass
class Track:
    id: int
    box: np.ndarray  # (4,) x, y, w, h image pixels, last seen
    keypoints: np.ndarray  # (K, 2) image pixels, last seen
    scores: np.ndarray  # (K,)
    last_frame: int
    length: int = 1  # frames seen


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (N, 4) with every box of ``b`` (M, 4), boxes ``[x, y, w, h]``: (N, M)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 0] + a[:, None, 2], b[None, :, 0] + b[None, :, 2])
    y2 = np.minimum(a[:, None, 1] + a[:, None, 3], b[None, :, 1] + b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def nms(boxes: list[np.ndarray], scores: list[float], threshold: float = 0.6) -> list[int]:
    """Indices of the boxes kept by greedy non-maximum suppression at IoU ``threshold``, best first."""
    order = list(np.argsort(-np.asarray(scores, np.float64), kind="stable"))
    keep: list[int] = []
    for i in order:
        if not keep or box_iou(boxes[i], np.stack([boxes[k] for k in keep])).max() < threshold:
            keep.append(int(i))
    return keep


def keypoint_box(keypoints: np.ndarray, scores: np.ndarray, threshold: float, pad: float = 0.1,
                 min_joints: int = 4) -> np.ndarray | None:
    """The extent of the joints scoring at least ``threshold``, enlarged by ``pad`` of its size on each side,
    as ``[x, y, w, h]``; None with fewer than ``min_joints`` such joints."""
    ok = (np.asarray(scores) >= threshold) & np.isfinite(keypoints).all(axis=1)
    if ok.sum() < min_joints:
        return None
    lo, hi = keypoints[ok].min(axis=0), keypoints[ok].max(axis=0)
    size = np.maximum(hi - lo, 1.0)
    lo, size = lo - pad * size, size * (1 + 2 * pad)
    return np.array([lo[0], lo[1], size[0], size[1]], np.float64)


class PoseTracker:
    """Greedy pose-to-track association over a video's frames, fed in order.

    Args:
        iou_weight: weight of box IoU in the similarity (the rest is OKS).
        min_similarity: below it a pose starts a new track.
        max_age: frames a track survives unseen.
        joint_threshold: joints scoring below it take no part in OKS nor in propagated boxes.
    """

    def __init__(self, iou_weight: float = 0.5, min_similarity: float = 0.3, max_age: int = 10,
                 joint_threshold: float = 0.2):
        self.iou_weight = iou_weight
        self.min_similarity = min_similarity
        self.max_age = max_age
        self.joint_threshold = joint_threshold
        self.tracks: list[Track] = []
        self.next_id = 0

    def _oks(self, keypoints: np.ndarray, scores: np.ndarray, track: Track) -> float | None:
        both = (scores >= self.joint_threshold) & (track.scores >= self.joint_threshold)
        if not both.any():
            return None
        d2 = ((keypoints[both] - track.keypoints[both]) ** 2).sum(axis=1)
        s2 = max(track.box[2] * track.box[3], 1.0)
        return float(np.exp(-d2 / (2 * s2 * OKS_KAPPA**2)).mean())

    def similarity(self, box: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, track: Track) -> float:
        iou = float(box_iou(box, track.box)[0, 0])
        oks = self._oks(keypoints, scores, track)
        return iou if oks is None else self.iou_weight * iou + (1 - self.iou_weight) * oks

    def update(self, frame: int, boxes: list[np.ndarray], keypoints: list[np.ndarray], scores: list[np.ndarray]
               ) -> list[int]:
        """Associate the poses of ``frame`` with the tracks; returns a track id per pose.

        Args:
            boxes: (4,) person box of each pose (the box it was estimated in).
            keypoints: (K, 2) image pixels of each pose.
            scores: (K,) per-joint scores of each pose.
        """
        self.tracks = [t for t in self.tracks if frame - t.last_frame <= self.max_age]
        pairs = sorted(((self.similarity(b, k, s, t), i, j) for i, (b, k, s) in enumerate(zip(boxes, keypoints, scores))
                        for j, t in enumerate(self.tracks)), reverse=True)
        ids: list[int | None] = [None] * len(boxes)
        taken: set[int] = set()
        for sim, i, j in pairs:
            if sim < self.min_similarity:
                break
            if ids[i] is None and j not in taken:
                ids[i] = self.tracks[j].id
                taken.add(j)
        by_id = {t.id: t for t in self.tracks}
        for i, (box, kp, sc) in enumerate(zip(boxes, keypoints, scores)):
            if ids[i] is None:
                ids[i] = self.next_id
                self.next_id += 1
                by_id[ids[i]] = Track(ids[i], box, kp, sc, frame, 0)
                self.tracks.append(by_id[ids[i]])
            track = by_id[ids[i]]
            track.box, track.keypoints, track.scores, track.last_frame = box, kp, sc, frame
            track.length += 1
        return [int(i) for i in ids]

    def propagated_boxes(self, frame: int, matched: list[int], pad: float = 0.1) -> dict[int, np.ndarray]:
        """Boxes for ``frame`` from the last poses of the tracks seen in the frame before it and not
        ``matched`` in this one, by track id (a box of implausible shape, narrower than a fifth of its height
        or wider than twice it, is not proposed: it comes from a collapsed pose)."""
        out = {}
        for t in self.tracks:
            if t.last_frame == frame - 1 and t.id not in matched:
                box = keypoint_box(t.keypoints, t.scores, self.joint_threshold, pad)
                if box is not None and 0.2 * box[3] <= box[2] <= 2.0 * box[3]:
                    out[t.id] = box
        return out

    def extend(self, track_id: int, frame: int, box: np.ndarray, keypoints: np.ndarray, scores: np.ndarray) -> None:
        """Continue a track with a pose estimated in its propagated box."""
        track = next(t for t in self.tracks if t.id == track_id)
        track.box, track.keypoints, track.scores, track.last_frame = box, keypoints, scores, frame
        track.length += 1
