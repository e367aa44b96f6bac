"""Joint sets: names, skeleton edges, left/right flip pairs, joint-angle limits, and conversions.

Three sets are used across the project (SPEC §2):

- ``posetrack``: the 17 joints of PoseTrack 2018 in its file order (COCO order with head_bottom/head_top in
  place of the eyes). Ears are never labeled in PoseTrack and never scored.
- ``posetrack15``: the 15 joints poseval scores, in poseval's order.
- ``h36m``: the 17 joints of Human3.6M as VideoPose3D keeps them (metres in the files, mm in this project).
- ``synth``: SynthCourt's articulated skeleton: the 17 ``h36m`` joints followed by nose, head_top and the two
  ears, so that both 2D (``posetrack``) and 3D (``h36m``) ground truth come from one body.

Edges: PoseTrack's own category skeleton is COCO's and joins the shoulders to the head through the ears,
which PoseTrack never labels; ``posetrack`` here joins them through head_bottom instead, so that every
labeled joint sits on a connected graph (GAT, drawing).

Angle limits are interior angles at the middle joint of a triple, in degrees, for the joint-angle loss of
STSP-Net (SPEC §5): elbows and knees cannot bend past ~25° nor hyper-extend past straight (180°); the
shoulder angle (neck-shoulder-elbow) stays above ~15° (arm across the chest); the hip angle
(thorax/shoulder-hip-knee) stays above ~45° (deepest squat or tuck).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AngleLimit:
    """Interior angle at ``joints[1]`` between the bones to ``joints[0]`` and ``joints[2]``, in degrees."""

    name: str
    joints: tuple[int, int, int]
    min_deg: float
    max_deg: float


@dataclass(frozen=True)
class JointSet:
    name: str
    joints: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    flip_pairs: tuple[tuple[int, int], ...]
    angle_limits: tuple[AngleLimit, ...] = ()
    root: int | None = None  # index of the root joint for root-relative 3D, where the set has one

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    def index(self, joint: str) -> int:
        try:
            return self.joints.index(joint)
        except ValueError:
            raise KeyError(f"joint set {self.name!r} has no joint {joint!r}; it has {list(self.joints)}") from None

    def flip_permutation(self) -> np.ndarray:
        """Index array that swaps left and right joints: ``flipped = points[perm]``."""
        perm = np.arange(self.num_joints)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    def adjacency(self, self_loops: bool = True) -> np.ndarray:
        """Symmetric (J, J) boolean adjacency from the edges, with self-loops when asked."""
        adj = np.zeros((self.num_joints, self.num_joints), dtype=bool)
        for a, b in self.edges:
            adj[a, b] = adj[b, a] = True
        if self_loops:
            np.fill_diagonal(adj, True)
        return adj


POSETRACK = JointSet(
    name="posetrack",
    joints=(
        "nose", "head_bottom", "head_top", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
        "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    edges=(
        (0, 1), (1, 2), (2, 3), (2, 4),  # face and head
        (1, 5), (1, 6), (5, 6),  # neck to shoulders
        (5, 7), (7, 9), (6, 8), (8, 10),  # arms
        (5, 11), (6, 12), (11, 12),  # torso
        (11, 13), (13, 15), (12, 14), (14, 16),  # legs
    ),
    flip_pairs=((3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    angle_limits=(
        AngleLimit("left_elbow", (5, 7, 9), 25.0, 180.0),
        AngleLimit("right_elbow", (6, 8, 10), 25.0, 180.0),
        AngleLimit("left_knee", (11, 13, 15), 25.0, 180.0),
        AngleLimit("right_knee", (12, 14, 16), 25.0, 180.0),
        AngleLimit("left_shoulder", (1, 5, 7), 15.0, 180.0),
        AngleLimit("right_shoulder", (1, 6, 8), 15.0, 180.0),
        AngleLimit("left_hip", (5, 11, 13), 45.0, 180.0),
        AngleLimit("right_hip", (6, 12, 14), 45.0, 180.0),
    ),
)

POSETRACK15 = JointSet(
    name="posetrack15",
    joints=(
        "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle",
        "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
        "neck", "nose", "head_top",
    ),
    edges=(
        (0, 1), (1, 2), (3, 4), (4, 5), (2, 3),
        (6, 7), (7, 8), (9, 10), (10, 11), (8, 9),
        (2, 8), (3, 9), (12, 8), (12, 9), (12, 13), (12, 14),
    ),
    flip_pairs=((0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9)),
)

H36M = JointSet(
    name="h36m",
    joints=(
        "root", "r_hip", "r_knee", "r_foot", "l_hip", "l_knee", "l_foot",
        "spine", "thorax", "neck_base", "head",
        "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
    ),
    # VideoPose3D's parents: [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15]
    edges=(
        (0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6), (0, 7), (7, 8), (8, 9), (9, 10),
        (8, 11), (11, 12), (12, 13), (8, 14), (14, 15), (15, 16),
    ),
    flip_pairs=((1, 4), (2, 5), (3, 6), (11, 14), (12, 15), (13, 16)),
    angle_limits=(
        AngleLimit("left_elbow", (11, 12, 13), 25.0, 180.0),
        AngleLimit("right_elbow", (14, 15, 16), 25.0, 180.0),
        AngleLimit("left_knee", (4, 5, 6), 25.0, 180.0),
        AngleLimit("right_knee", (1, 2, 3), 25.0, 180.0),
        AngleLimit("left_shoulder", (9, 11, 12), 15.0, 180.0),
        AngleLimit("right_shoulder", (9, 14, 15), 15.0, 180.0),
        AngleLimit("left_hip", (8, 4, 5), 45.0, 180.0),
        AngleLimit("right_hip", (8, 1, 2), 45.0, 180.0),
    ),
    root=0,
)

SYNTH = JointSet(
    name="synth",
    joints=H36M.joints + ("nose", "head_top", "left_ear", "right_ear"),
    edges=H36M.edges + ((10, 17), (10, 18), (10, 19), (10, 20)),
    flip_pairs=H36M.flip_pairs + ((19, 20),),
    angle_limits=H36M.angle_limits,
    root=0,
)

JOINT_SETS: dict[str, JointSet] = {s.name: s for s in (POSETRACK, POSETRACK15, H36M, SYNTH)}

# Conversion tables: for each joint of the destination set, the source index, a tuple of source indices
# to average, or None where the source has no such joint (the result is NaN there).
_Entry = int | tuple[int, ...] | None
CONVERSIONS: dict[tuple[str, str], tuple[_Entry, ...]] = {
    ("posetrack", "posetrack15"): (16, 14, 12, 11, 13, 15, 10, 8, 6, 5, 7, 9, 1, 0, 2),
    ("posetrack15", "posetrack"): (13, 12, 14, None, None, 9, 8, 10, 7, 11, 6, 3, 2, 4, 1, 5, 0),
    ("synth", "posetrack"): (17, 9, 18, 19, 20, 11, 14, 12, 15, 13, 16, 4, 1, 5, 2, 6, 3),
    ("synth", "h36m"): tuple(range(17)),
    ("h36m", "posetrack"): (None, 9, None, None, None, 11, 14, 12, 15, 13, 16, 4, 1, 5, 2, 6, 3),
    ("posetrack", "h36m"): (
        (11, 12), 12, 14, 16, 11, 13, 15,
        (5, 6, 11, 12),  # spine: middle of the torso
        (5, 6),  # thorax: between the shoulders
        1, (1, 2),  # neck_base = head_bottom; head = middle of the head
        5, 7, 9, 6, 8, 10,
    ),
}


def convert(points: np.ndarray, src: str, dst: str) -> np.ndarray:
    """Convert joints between sets along an explicit table.

    Args:
        points: (..., J_src, C) joint coordinates (any C: x,y / x,y,v / x,y,z).
        src: source joint set name.
        dst: destination joint set name.

    Returns:
        (..., J_dst, C) float array; joints the source lacks are NaN.

    Raises:
        KeyError: no table from ``src`` to ``dst``.
    """
    points = np.asarray(points, dtype=np.float64)
    if src == dst:
        return points.copy()
    if (src, dst) not in CONVERSIONS:
        raise KeyError(f"no joint conversion from {src!r} to {dst!r}; known: {sorted(CONVERSIONS)}")
    n_src = JOINT_SETS[src].num_joints
    if points.shape[-2] != n_src:
        raise ValueError(f"joint set {src!r} has {n_src} joints, got an array of shape {points.shape}")
    table = CONVERSIONS[(src, dst)]
    out = np.full(points.shape[:-2] + (len(table), points.shape[-1]), np.nan)
    for j, entry in enumerate(table):
        if entry is None:
            continue
        idx = (entry,) if isinstance(entry, int) else entry
        out[..., j, :] = points[..., list(idx), :].mean(axis=-2)
    return out


def joint_angles(points: np.ndarray, joint_set: JointSet) -> np.ndarray:
    """Interior angles (degrees) of the set's angle triples.

    Args:
        points: (..., J, D) joints, D = 2 or 3.

    Returns:
        (..., A) angles in degrees, A = len(joint_set.angle_limits).
    """
    tri = np.array([lim.joints for lim in joint_set.angle_limits])  # (A, 3)
    a, b, c = points[..., tri[:, 0], :], points[..., tri[:, 1], :], points[..., tri[:, 2], :]
    u, v = a - b, c - b
    cos = (u * v).sum(-1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1) + 1e-9)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
