"""Track ids across frames: each frame's poses are assigned to the live tracks by optimal assignment.

The similarity of a pose and a track combines the overlap of their boxes and the agreement of their
keypoints, as the PoseTrack baselines do (Xiao et al. 2018 use box IoU or OKS; both are used here):

- ``iou``: intersection over union of the pose's person box and the track's last box;
- ``oks``: COCO's object keypoint similarity of the pose's confident joints and the track's last pose,
  ``mean exp(-d² / (2 s² κ_j²))`` over the joints both score at least ``joint_threshold``, with ``s²`` the area
  of the track's box and κ_j = 2σ_j per joint: COCO's σ (`OKS_SIGMAS`: 0.026 for the nose, tight, to 0.107
  for the hips, loose, since annotators agree less where a hip is), by joint name, so the same table serves
  PoseTrack's, Human3.6M's and SynthCourt's joint sets (`oks_sigmas`); without a joint set, one κ = 0.1 for
  every joint;
- similarity = ``iou_weight`` · iou + (1 - ``iou_weight``) · oks, or iou alone without shared confident joints.

Poses are assigned to tracks by the Hungarian method (``scipy.optimize.linear_sum_assignment``), maximising
the summed similarity of the pairs at least ``min_similarity``; a pose left without a pair starts a new
track. Greedy assignment (the best pair first, as before; ``assignment="greedy"``) goes wrong where people
cross: the best single pair can take the track another pose needed, which then starts a new track or takes
the wrong one. A track not seen for ``max_age`` frames ends. Ids count up from 0 and are never reused.

Tracks also propose boxes (:meth:`PoseTracker.propagated_boxes`): a track seen in the previous frame but
matched by none of this frame's poses gets the extent of its last pose's confident joints, enlarged by
``pad`` on each side, and is continued (:meth:`PoseTracker.extend`) with the pose estimated there. This is
how a person the built-in proposal misses for a few frames keeps being estimated (the caller drops a
propagated pose whose joints score too low, or whose box mostly lies inside another pose's).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

OKS_KAPPA = 0.1  # κ of every joint when the joint set is not known

# COCO's per-keypoint σ (cocoapi / PoseTrack's COCO-style evaluation), by joint name; PoseTrack's head_bottom and
# head_top take the eyes' σ as MMPose's PoseTrack18 dataset does; Human3.6M's joints without a COCO counterpart
# take their neighbour's: root and spine the hips', thorax and neck base the shoulders', head the ears'.
OKS_SIGMAS = {
    "nose": 0.026, "left_eye": 0.025, "right_eye": 0.025, "head_bottom": 0.025, "head_top": 0.025,
    "left_ear": 0.035, "right_ear": 0.035, "head": 0.035,
    "shoulder": 0.079, "thorax": 0.079, "neck_base": 0.079, "neck": 0.079,
    "elbow": 0.072, "wrist": 0.062, "hip": 0.107, "root": 0.107, "spine": 0.107,
    "knee": 0.087, "ankle": 0.089, "foot": 0.089,
}
ASSIGNMENTS = ("hungarian", "greedy")


def oks_sigmas(joints: tuple[str, ...] | list[str]) -> np.ndarray:
    """Per-joint OKS σ of a joint set's joint names (left/right and l_/r_ prefixes folded), (K,).

    Raises:
        KeyError: a joint name the table does not know.
    """
    out = []
    for name in joints:
        key = name if name in OKS_SIGMAS else name.split("_", 1)[-1]
        if key not in OKS_SIGMAS:
            raise KeyError(f"no OKS sigma for joint {name!r}; known: {sorted(OKS_SIGMAS)}")
        out.append(OKS_SIGMAS[key])
    return np.array(out, np.float64)


@dataclass
class Track:
    id: int
    box: np.ndarray  # (4,) x, y, w, h image pixels, last seen
    keypoints: np.ndarray  # (K, 2) image pixels, last seen
    scores: np.ndarray  # (K,)
    last_frame: int
    length: int = 1  # frames seen
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # (2,) box centre, pixels per frame

    def predicted(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """The box and keypoints moved on to ``frame`` at the track's last velocity (constant motion)."""
        shift = self.velocity * (frame - self.last_frame)
        return self.box + np.array([shift[0], shift[1], 0.0, 0.0]), self.keypoints + shift

    def observe(self, frame: int, box: np.ndarray, keypoints: np.ndarray, scores: np.ndarray) -> None:
        if self.length > 0 and frame > self.last_frame:
            centre = lambda b: np.array([b[0] + b[2] / 2, b[1] + b[3] / 2])  # noqa: E731
            self.velocity = (centre(box) - centre(self.box)) / (frame - self.last_frame)
        self.box, self.keypoints, self.scores, self.last_frame = box, keypoints, scores, frame
        self.length += 1


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
    """Pose-to-track association over a video's frames, fed in order.

    Args:
        iou_weight: weight of box IoU in the similarity (the rest is OKS).
        min_similarity: below it a pose and a track do not pair.
        max_age: frames a track survives unseen.
        joint_threshold: joints scoring below it take no part in OKS nor in propagated boxes.
        joints: the joint names of the poses' joint set (``JointSet.joints``): per-joint OKS σ; None: one κ.
        assignment: ``hungarian`` (optimal) or ``greedy`` (best pair first).
        motion: compare a pose with its track moved on at the track's last velocity (constant motion of the
            box centre between its last two observations); False: with the track as last seen.
    """

    def __init__(self, iou_weight: float = 0.5, min_similarity: float = 0.3, max_age: int = 10,
                 joint_threshold: float = 0.2, joints: tuple[str, ...] | None = None, assignment: str = "hungarian",
                 motion: bool = True):
        if assignment not in ASSIGNMENTS:
            raise ValueError(f"assignment: expected one of {ASSIGNMENTS}, got {assignment!r}")
        self.iou_weight = iou_weight
        self.min_similarity = min_similarity
        self.max_age = max_age
        self.joint_threshold = joint_threshold
        self.kappas = None if joints is None else 2.0 * oks_sigmas(joints)  # (K,) κ_j = 2σ_j
        self.assignment = assignment
        self.motion = motion
        self.tracks: list[Track] = []
        self.next_id = 0

    def _oks(self, keypoints: np.ndarray, scores: np.ndarray, track: Track, expected: np.ndarray) -> float | None:
        both = (scores >= self.joint_threshold) & (track.scores >= self.joint_threshold)
        if not both.any():
            return None
        d2 = ((keypoints[both] - expected[both]) ** 2).sum(axis=1)
        s2 = max(track.box[2] * track.box[3], 1.0)
        kappa2 = OKS_KAPPA**2 if self.kappas is None else self.kappas[both] ** 2
        return float(np.exp(-d2 / (2 * s2 * kappa2)).mean())

    def similarity(self, box: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, track: Track,
                   frame: int | None = None) -> float:
        """Of a pose and a track; with ``frame``, against the track moved on to it at its velocity (``motion``)."""
        if frame is not None and self.motion:
            expected_box, expected = track.predicted(frame)
        else:
            expected_box, expected = track.box, track.keypoints
        iou = float(box_iou(box, expected_box)[0, 0])
        oks = self._oks(keypoints, scores, track, expected)
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
        sim = np.array([[self.similarity(b, k, s, t, frame) for t in self.tracks]
                        for b, k, s in zip(boxes, keypoints, scores)]).reshape(len(boxes), len(self.tracks))
        ids: list[int | None] = [None] * len(boxes)
        for i, j in self._assign(sim):
            ids[i] = self.tracks[j].id
        by_id = {t.id: t for t in self.tracks}
        for i, (box, kp, sc) in enumerate(zip(boxes, keypoints, scores)):
            if ids[i] is None:
                ids[i] = self.next_id
                self.next_id += 1
                by_id[ids[i]] = Track(ids[i], box, kp, sc, frame, 0)
                self.tracks.append(by_id[ids[i]])
            by_id[ids[i]].observe(frame, box, kp, sc)
        return [int(i) for i in ids]

    def _assign(self, sim: np.ndarray) -> list[tuple[int, int]]:
        """(pose, track) pairs of a (poses, tracks) similarity matrix, each at least ``min_similarity``."""
        valid = sim >= self.min_similarity
        if not valid.any():
            return []
        if self.assignment == "hungarian":  # the largest sum of the similarities of valid pairs
            rows, cols = linear_sum_assignment(np.where(valid, sim, 0.0), maximize=True)
            return [(int(i), int(j)) for i, j in zip(rows, cols) if valid[i, j]]
        pairs, poses, tracks = [], set(), set()
        for flat in np.argsort(-sim, axis=None, kind="stable"):
            i, j = divmod(int(flat), sim.shape[1])
            if not valid[i, j]:
                break
            if i not in poses and j not in tracks:
                pairs.append((i, j))
                poses.add(i)
                tracks.add(j)
        return pairs

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
        next(t for t in self.tracks if t.id == track_id).observe(frame, box, keypoints, scores)
