"""SynthCourt: deterministic synthetic basketball video with exact 2D and 3D pose ground truth (SPEC §3.1).

One clip is made in five steps, all driven by ``numpy.random.default_rng([seed, index])`` so that clips are
independent and can be generated in any order or in parallel:

1. **Scene**: a camera from one of the view groups (``sideline``, ``baseline``, ``high_angle``) with per-clip
   jitter, 1-6 players in two jersey colours (adults 0.9-1.1 or children 0.55-0.8 of the adult template's
   height), lighting, a crowd and billboards.
2. **Behaviour**: each player gets a schedule of motion primitives (run, jog, dribble, jump shot, pass, defensive
   slide, idle) with per-segment style (amplitude, handedness, arm offsets); consecutive primitives are blended
   over ``BLEND_S`` seconds. Root trajectories are integrated at the frame rate with a steering rule that keeps
   players in the camera's field of view, then interpolated to a fine time grid (``SUB`` steps per frame).
3. **Kinematics**: joint angles (degrees) -> forward kinematics of the 21-joint ``synth`` skeleton (mm, world
   frame: z up, x along the court, y across, origin at centre court). Every angle is a box-limited degree of
   freedom (knees and elbows only flex, 0-150 deg), so the skeleton's joint-angle limits hold by construction.
4. **Rendering** (OpenCV): static background (floor with court lines, billboards, crowd, vignette); players drawn
   as shaded capsules / polygons / ellipses in painter's order over the parts of all players; motion blur as the
   average of 1/3/5 sub-frame renders; a player-id buffer at the exposure centre gives per-joint visibility.
5. **Output**: ``videos/<name>.mp4`` (mp4v), ``annotations/<name>.json`` (PoseTrack 2018 layout),
   ``3d/<name>.npz`` (camera-frame joints in mm, 2D projections, visibility, K, R, t) and ``manifest.json``.

Decisions where SPEC §3.1 is silent:

- Annotations are at the centre of the exposure (the middle sub-frame); blur averages sub-frames around it.
- A joint is visible (v=1) when it projects inside the frame and the id buffer holds its own player within a
  ``(2r+1)^2`` px neighbourhood (r = 1 px per 320 px of width): occlusion by another player or the ball sets
  v=0, self-occlusion keeps v=1 (the joint's position still follows from the visible body).
- PoseTrack convention "zeros when unlabeled": every v=0 keypoint (outside the frame, occluded, and the ears,
  which PoseTrack never labels) is written as 0, 0, 0. The npz keeps every projection.
- Occlusion level of a clip from the fraction of in-frame joints hidden by another player or the ball:
  ``low`` < 2%, ``medium`` < 6%, ``high`` otherwise (sideline clips are mostly low or medium, baseline clips
  medium or high).
- The camera is static within a clip (K, R, t are single arrays), so the play area is the floor region where a
  standing player is fully in view; players steer back into it.
- Annotation ids follow the real files: image id ``1VVVVVVFFFF`` (video number = clip index), annotation id =
  image id * 100 + track id. Image ``file_name`` entries are virtual (no JPEGs are written).
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from tqdm import tqdm

from sportpose.errors import DataError
from sportpose.models.skeleton import POSETRACK, SYNTH, convert
from sportpose.data.camera import Camera, clip_polygon_near, clip_polyline_near, intrinsics, look_at, project

from sportpose.spec.data import BALL_MOTIONS, BLUR_SUBFRAMES, MOTIONS, VIEWS, SynthConfig


def config_dict(config: SynthConfig) -> dict:
    """The config as it is stored in the manifest (JSON types: tuples become lists)."""
    return json.loads(json.dumps(asdict(config)))


# --------------------------------------------------------------------------------------------------------------
# Body: adult template and forward kinematics
# --------------------------------------------------------------------------------------------------------------

# Adult template (mm), h36m-like proportions; standing height = ankle + shin + thigh + hip_drop + spine + chest
# + neck + head_top = 1750 mm. "head_*" entries belong to the head and scale differently for children.
ADULT_MM = {
    "ankle_h": 80.0,  # ankle joint above the floor when standing
    "shin": 415.0,
    "thigh": 425.0,
    "hip_w": 120.0,  # pelvis centre to hip joint, lateral
    "hip_drop": 30.0,  # hip joints below the pelvis centre
    "spine": 225.0,  # pelvis -> spine
    "chest": 245.0,  # spine -> thorax
    "neck": 115.0,  # thorax -> neck_base (upper neck, PoseTrack's head_bottom)
    "shoulder_w": 165.0,  # thorax -> shoulder, lateral
    "shoulder_drop": 25.0,
    "upper_arm": 285.0,
    "forearm": 255.0,
    "hand": 85.0,
    "head_top": 215.0,  # neck_base -> head_top
}
HEAD_KEYS = ("head_top",)
HEIGHT_KEYS = ("ankle_h", "shin", "thigh", "hip_drop", "spine", "chest", "neck", "head_top")  # floor to head_top
ADULT_HEIGHT_MM = sum(ADULT_MM[k] for k in HEIGHT_KEYS)

# Rendering points beyond the 21 synth joints (indices 21...).
EXTRA_POINTS = (
    "l_toe", "r_toe", "l_hand", "r_hand", "l_shorts", "r_shorts", "l_sock", "r_sock",
    "l_sh_out", "r_sh_out", "l_hip_out", "r_hip_out", "hair", "face", "back", "chest", "head_up", "ground",
)
POINTS = SYNTH.joints + EXTRA_POINTS
P_ = {name: i for i, name in enumerate(POINTS)}


def body_lengths(height_scale: np.ndarray) -> dict[str, np.ndarray]:
    """Segment lengths (mm) per player for height scales relative to the adult template.

    The head scales less than the body (``s**0.35``, children have relatively large heads); the body scale is
    then chosen so that the standing height is exactly ``height_scale * ADULT_HEIGHT_MM``.

    Args:
        height_scale: (P,) standing height / adult template height.

    Returns:
        name -> (P,) mm, plus ``"body_scale"`` and ``"head_scale"`` (P,) for the rendering radii.
    """
    s = np.asarray(height_scale, dtype=np.float64)
    head = sum(ADULT_MM[k] for k in HEAD_KEYS)
    s_head = s**0.35
    s_body = (s * ADULT_HEIGHT_MM - s_head * head) / (ADULT_HEIGHT_MM - head)
    out = {k: (s_head if k in HEAD_KEYS else s_body) * v for k, v in ADULT_MM.items()}
    out["body_scale"], out["head_scale"] = s_body, s_head
    return out


def standing_height(lengths: dict[str, np.ndarray]) -> np.ndarray:
    """(P,) standing height in mm (floor to head_top)."""
    return sum(lengths[k] for k in HEIGHT_KEYS)


# Degrees of freedom of a pose: angles in degrees, "flight" in mm (root lift above ground contact).
DOFS = (
    "pelvis_pitch", "pelvis_roll", "trunk_flex", "trunk_twist", "trunk_bend", "head_pitch", "head_yaw",
    "l_hip_flex", "l_hip_abd", "l_knee", "r_hip_flex", "r_hip_abd", "r_knee",
    "l_sh_elev", "l_sh_plane", "l_sh_rot", "l_elbow", "r_sh_elev", "r_sh_plane", "r_sh_rot", "r_elbow",
    "flight",
)
D_ = {name: i for i, name in enumerate(DOFS)}
# Box limits per DOF. Knees and elbows only flex (interior angle 180 - flex >= 30 deg, within the skeleton's
# 25 deg limit); hip flexion plus trunk flexion is capped separately (thorax-hip-knee angle >= 45 deg).
DOF_LIMITS = {
    "pelvis_pitch": (-10, 35), "pelvis_roll": (-10, 10), "trunk_flex": (-15, 60), "trunk_twist": (-35, 35),
    "trunk_bend": (-20, 20), "head_pitch": (-40, 45), "head_yaw": (-70, 70),
    "l_hip_flex": (-30, 120), "l_hip_abd": (-10, 45), "l_knee": (0, 150),
    "r_hip_flex": (-30, 120), "r_hip_abd": (-10, 45), "r_knee": (0, 150),
    "l_sh_elev": (-60, 170), "l_sh_plane": (-60, 110), "l_sh_rot": (-45, 90), "l_elbow": (0, 150),
    "r_sh_elev": (-60, 170), "r_sh_plane": (-60, 110), "r_sh_rot": (-45, 90), "r_elbow": (0, 150),
    "flight": (0, 700),
}
_LO = np.array([DOF_LIMITS[d][0] for d in DOFS], dtype=np.float64)
_HI = np.array([DOF_LIMITS[d][1] for d in DOFS], dtype=np.float64)
MAX_HIP_PLUS_TRUNK = 125.0  # deg


def clamp_dofs(dofs: np.ndarray) -> np.ndarray:
    """Clip (..., D) DOFs to their boxes and cap hip flexion so that hip + trunk flexion <= 125 deg."""
    out = np.clip(dofs, _LO, _HI)
    for side in ("l", "r"):
        i = D_[f"{side}_hip_flex"]
        out[..., i] = np.minimum(out[..., i], MAX_HIP_PLUS_TRUNK - out[..., D_["trunk_flex"]])
    return out


def _rx(a):
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def _ry(a):
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def _rz(a):
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def _vec(x, y, z):
    return np.stack(np.broadcast_arrays(x, y, z), -1)


def _rot(R, v):
    """Rotate (..., 3) vectors by (..., 3, 3) matrices."""
    return np.einsum("...ij,...j->...i", R, v)


def forward_kinematics(dofs: np.ndarray, lengths: dict[str, np.ndarray], yaw: np.ndarray, root_xy: np.ndarray):
    """World positions of the 21 synth joints and the rendering points.

    Body frame: x forward, y to the body's left, z up; ``yaw`` turns it about the world z axis. The pelvis
    is lifted so that the lower ankle sits ``ankle_h`` above the floor, plus the ``flight`` DOF.

    Args:
        dofs: (N, P, D) degrees of freedom (degrees; flight in mm), ``D = len(DOFS)``.
        lengths: segment lengths, name -> (P,) mm (``body_lengths``).
        yaw: (N, P) body heading, radians (0 = facing world +x).
        root_xy: (N, P, 2) pelvis position on the floor plane, mm.

    Returns:
        (N, P, len(POINTS), 3) world coordinates in mm; the first 21 are the synth joints.
    """
    a = np.radians(dofs)
    g = {name: a[..., i] for i, name in enumerate(DOFS)}
    L = lengths
    zero = np.zeros(yaw.shape)
    pts = {}
    R_pel = _rz(yaw) @ _ry(g["pelvis_pitch"]) @ _rx(g["pelvis_roll"])  # (N, P, 3, 3)
    pts["root"] = np.zeros(yaw.shape + (3,))
    for side, sign, hip_name, knee_name, foot_name in (("l", 1.0, "l_hip", "l_knee", "l_foot"),
                                                       ("r", -1.0, "r_hip", "r_knee", "r_foot")):
        hip = _rot(R_pel, _vec(0.0, sign * L["hip_w"], -L["hip_drop"]))
        R_thigh = R_pel @ _ry(-g[f"{side}_hip_flex"]) @ _rx(sign * g[f"{side}_hip_abd"])
        knee = hip + _rot(R_thigh, _vec(0.0, 0.0, -L["thigh"]))
        R_shin = R_thigh @ _ry(g[f"{side}_knee"])
        ankle = knee + _rot(R_shin, _vec(0.0, 0.0, -L["shin"]))
        pts[hip_name], pts[knee_name], pts[foot_name] = hip, knee, ankle
        # The foot points forward, perpendicular to the shin, toes a little below the ankle.
        pts[f"{side}_toe"] = ankle + _rot(R_shin, _vec(0.62 * L["thigh"] * 0.4, 0.0, -0.75 * L["ankle_h"]))
        pts[f"{side}_shorts"] = hip + 0.55 * (knee - hip)
        pts[f"{side}_sock"] = ankle + 0.3 * (knee - ankle)
        pts[f"{side}_hip_out"] = _rot(R_pel, _vec(0.0, sign * (L["hip_w"] + 0.4 * L["hip_w"]), -L["hip_drop"]))

    R_sp = R_pel @ _ry(0.4 * g["trunk_flex"]) @ _rz(0.5 * g["trunk_twist"])
    pts["spine"] = _rot(R_sp, _vec(0.0, 0.0, L["spine"]))
    R_th = R_sp @ _ry(0.6 * g["trunk_flex"]) @ _rz(0.5 * g["trunk_twist"]) @ _rx(g["trunk_bend"])
    thorax = pts["spine"] + _rot(R_th, _vec(0.0, 0.0, L["chest"]))
    neck = thorax + _rot(R_th, _vec(0.0, 0.0, L["neck"]))
    pts["thorax"], pts["neck_base"] = thorax, neck
    R_head = R_th @ _rz(g["head_yaw"]) @ _ry(g["head_pitch"])
    h = L["head_top"] / ADULT_MM["head_top"]  # head scale, (P,)
    pts["head"] = neck + _rot(R_head, _vec(0.0, 0.0, 110.0 * h))
    pts["head_top"] = neck + _rot(R_head, _vec(-10.0 * h, 0.0, 212.0 * h))
    pts["nose"] = neck + _rot(R_head, _vec(95.0 * h, 0.0, 75.0 * h))
    pts["left_ear"] = neck + _rot(R_head, _vec(-10.0 * h, 72.0 * h, 95.0 * h))
    pts["right_ear"] = neck + _rot(R_head, _vec(-10.0 * h, -72.0 * h, 95.0 * h))
    pts["hair"] = neck + _rot(R_head, _vec(-24.0 * h, 0.0, 124.0 * h))
    pts["face"] = neck + _rot(R_head, _vec(12.0 * h, 0.0, 100.0 * h))
    pts["head_up"] = pts["head"] + _rot(R_head, _vec(0.0, 0.0, 100.0 * h))
    pts["back"] = thorax + _rot(R_th, _vec(-110.0 * h, 0.0, -0.45 * L["chest"]))
    pts["chest"] = thorax + _rot(R_th, _vec(110.0 * h, 0.0, -0.35 * L["chest"]))

    for side, sign, names in (("l", 1.0, ("l_shoulder", "l_elbow", "l_wrist")),
                              ("r", -1.0, ("r_shoulder", "r_elbow", "r_wrist"))):
        sh = thorax + _rot(R_th, _vec(0.0, sign * L["shoulder_w"], -L["shoulder_drop"]))
        # Arm, swing-twist: elevation in a vertical plane whose azimuth is sh_plane (0 = forward, 90 = sideways),
        # a pure swing (the plane rotation is undone, so a hanging arm bends its elbow forward whatever the
        # plane), then a twist about the arm's own axis that turns the elbow's bending plane inwards.
        plane = sign * g[f"{side}_sh_plane"]
        R_ua = R_th @ _rz(plane) @ _ry(-g[f"{side}_sh_elev"]) @ _rz(-plane) @ _rz(-sign * g[f"{side}_sh_rot"])
        elbow = sh + _rot(R_ua, _vec(0.0, 0.0, -L["upper_arm"]))
        R_fa = R_ua @ _ry(-g[f"{side}_elbow"])
        wrist = elbow + _rot(R_fa, _vec(0.0, 0.0, -L["forearm"]))
        pts[names[0]], pts[names[1]], pts[names[2]] = sh, elbow, wrist
        pts[f"{side}_hand"] = wrist + _rot(R_fa, _vec(0.0, 0.0, -0.5 * L["hand"]))
        pts[f"{side}_sh_out"] = thorax + _rot(R_th, _vec(0.0, sign * 1.25 * L["shoulder_w"], -L["shoulder_drop"]))

    pts["ground"] = np.zeros(yaw.shape + (3,))
    out = np.stack([pts[n] for n in POINTS], axis=-2)  # (N, P, NPTS, 3)
    lift = L["ankle_h"] - np.minimum(pts["l_foot"][..., 2], pts["r_foot"][..., 2]) + dofs[..., D_["flight"]]  # (N, P)
    out[..., 2] += lift[..., None]
    out[..., P_["ground"], 2] = 0.0
    out[..., :2] += root_xy[..., None, :]
    return out


# --------------------------------------------------------------------------------------------------------------
# Motion primitives: DOF trajectories over gait phase p (radians) or progress u (0..1 of a one-shot motion)
# --------------------------------------------------------------------------------------------------------------

def _pose(**kw) -> np.ndarray:
    """(D,) a standing pose with overrides; ``knee``, ``hip_flex``, ``elev``, ``plane``, ``rot``, ``elbow`` set
    both sides."""
    d = np.zeros(len(DOFS))
    base = {"knee": 6.0, "hip_flex": 5.0, "elev": 8.0, "plane": 10.0, "rot": 15.0, "elbow": 15.0, "hip_abd": 3.0}
    base.update({k: v for k, v in kw.items() if k in base})
    for side in ("l", "r"):
        d[D_[f"{side}_knee"]], d[D_[f"{side}_hip_flex"]] = base["knee"], base["hip_flex"]
        d[D_[f"{side}_hip_abd"]] = base["hip_abd"]
        d[D_[f"{side}_sh_elev"]], d[D_[f"{side}_sh_plane"]] = base["elev"], base["plane"]
        d[D_[f"{side}_sh_rot"]], d[D_[f"{side}_elbow"]] = base["rot"], base["elbow"]
    for k, v in kw.items():
        if k not in base:
            d[D_[k]] = v
    return d


def _gait(p, amp, *, hip, knee, arm, elbow, trunk, pelvis, twist, plane=10.0, rot=25.0, abd=3.0):
    """Cyclic locomotion: hips swing (flexion = hip[0] + hip[1] sin p), knees flex most in mid-swing, arms swing
    opposite to the legs. Left leg at phase p, right leg at p + pi."""
    d = np.tile(_pose(), (len(p), 1))
    for side, ph in (("l", p), ("r", p + np.pi)):
        s, c = np.sin(ph), np.cos(ph)
        d[:, D_[f"{side}_hip_flex"]] = hip[0] + amp * hip[1] * s
        d[:, D_[f"{side}_hip_abd"]] = abd
        d[:, D_[f"{side}_knee"]] = (
            knee[0] + amp * knee[1] * np.maximum(0.0, np.cos(ph - 0.15)) ** 1.5 + knee[2] * np.maximum(0.0, -c)
        )
        d[:, D_[f"{side}_sh_elev"]] = arm[0] - amp * arm[1] * s
        d[:, D_[f"{side}_sh_plane"]] = plane
        d[:, D_[f"{side}_sh_rot"]] = rot
        d[:, D_[f"{side}_elbow"]] = elbow[0] + amp * elbow[1] * s
    d[:, D_["trunk_flex"]] = trunk
    d[:, D_["pelvis_pitch"]] = pelvis
    d[:, D_["trunk_twist"]] = amp * twist * np.sin(p)
    d[:, D_["pelvis_roll"]] = 2.0 * amp * np.sin(p)
    return d


def _run(p, u, style):
    d = _gait(p, style["amp"], hip=(22, 40), knee=(20, 88, 15), arm=(10, 40), elbow=(88, 12), trunk=9, pelvis=7,
              twist=10)
    d[:, D_["flight"]] = 35.0 * style["amp"] * np.maximum(0.0, -np.cos(2 * p)) ** 2
    return d


def _jog(p, u, style):
    return _gait(p, style["amp"], hip=(18, 27), knee=(18, 60, 10), arm=(8, 26), elbow=(80, 8), trunk=5, pelvis=5,
                 twist=6)


def _dribble(p, u, style):
    d = _gait(p, style["amp"], hip=(14, 15), knee=(26, 28, 8), arm=(8, 10), elbow=(40, 5), trunk=16, pelvis=8,
              twist=4)
    q = 2.0 * p  # two bounces per stride
    d[:, D_["r_sh_elev"]] = 32.0 + 10.0 * np.sin(q)
    d[:, D_["r_sh_plane"]] = 25.0
    d[:, D_["r_sh_rot"]] = 10.0
    d[:, D_["r_elbow"]] = 48.0 - 32.0 * np.sin(q)
    d[:, D_["l_sh_elev"]] = 45.0
    d[:, D_["l_sh_plane"]] = 50.0
    d[:, D_["l_sh_rot"]] = 25.0
    d[:, D_["l_elbow"]] = 75.0
    d[:, D_["head_pitch"]] = -8.0
    return d


def _defensive_slide(p, u, style):
    a = style["amp"]
    n = len(p)
    d = np.tile(_pose(), (n, 1))
    for side in ("l", "r"):
        d[:, D_[f"{side}_hip_abd"]] = 22.0 + a * 11.0 * np.sin(p)  # feet push apart and together
        d[:, D_[f"{side}_hip_flex"]] = 42.0 + 4.0 * np.cos(p)
        d[:, D_[f"{side}_knee"]] = 55.0 + a * 10.0 * np.cos(p)
        d[:, D_[f"{side}_sh_elev"]] = 55.0 + 6.0 * np.sin(p)
        d[:, D_[f"{side}_sh_plane"]] = 75.0
        d[:, D_[f"{side}_sh_rot"]] = 10.0
        d[:, D_[f"{side}_elbow"]] = 40.0
    if style["variant"] > 0:  # one hand up, contesting
        side = "l" if style["variant"] == 1 else "r"
        d[:, D_[f"{side}_sh_elev"]] = 125.0
        d[:, D_[f"{side}_sh_plane"]] = 35.0
        d[:, D_[f"{side}_elbow"]] = 25.0
    d[:, D_["trunk_flex"]] = 24.0
    d[:, D_["pelvis_pitch"]] = 10.0
    d[:, D_["head_pitch"]] = -12.0
    d[:, D_["pelvis_roll"]] = 2.0 * np.sin(p)
    return d


def _idle(p, u, style):
    n = len(p)
    s = np.sin(p)
    variant = style["variant"]
    if variant == 1:  # hands on knees, resting
        d = np.tile(_pose(knee=32, hip_flex=40, elev=58, plane=8, rot=10, elbow=14, trunk_flex=36, pelvis_pitch=14,
                          head_pitch=-25), (n, 1))
        d[:, D_["trunk_flex"]] += 3.0 * s  # breathing
    elif variant == 2:  # hands on hips
        d = np.tile(_pose(knee=6, hip_flex=4, elev=50, plane=95, rot=85, elbow=90, trunk_flex=2), (n, 1))
        d[:, D_["pelvis_roll"]] = 3.0 * s
    else:  # standing, weight shifting, arms hanging
        d = np.tile(_pose(), (n, 1))
        d[:, D_["l_knee"]] = 8.0 + 6.0 * s
        d[:, D_["r_knee"]] = 8.0 - 6.0 * s
        d[:, D_["pelvis_roll"]] = 4.0 * s
        for side in ("l", "r"):
            d[:, D_[f"{side}_elbow"]] = 18.0 + 10.0 * np.sin(p + 1.0)
            d[:, D_[f"{side}_sh_elev"]] = 8.0 + 4.0 * s
    d[:, D_["head_yaw"]] += 30.0 * np.sin(0.7 * p + style["amp"] * 5.0)  # looking around
    return d


def _keyframes(keys, u):
    """Ease-in/ease-out interpolation of keyframe poses: keys = ((u_k, (D,) pose), ...), u (N,) -> (N, D)."""
    us = np.array([k for k, _ in keys])
    vals = np.stack([v for _, v in keys])  # (K, D)
    i = np.clip(np.searchsorted(us, u, side="right") - 1, 0, len(us) - 2)
    s = np.clip((u - us[i]) / (us[i + 1] - us[i]), 0.0, 1.0)
    s = s * s * (3.0 - 2.0 * s)
    return vals[i] + s[:, None] * (vals[i + 1] - vals[i])


_SHOT_KEYS = (
    (0.00, _pose(knee=15, hip_flex=12, trunk_flex=8, elev=35, plane=5, rot=35, elbow=105, head_pitch=-5)),
    (0.22, _pose(knee=72, hip_flex=58, pelvis_pitch=15, trunk_flex=18, elev=40, plane=5, rot=35, elbow=112,
                 head_pitch=-15)),
    (0.40, _pose(knee=8, hip_flex=6, trunk_flex=4, r_sh_elev=125, r_sh_plane=10, r_sh_rot=5, r_elbow=100,
                 l_sh_elev=115, l_sh_plane=35, l_sh_rot=30, l_elbow=85, head_pitch=-20)),
    (0.55, _pose(knee=25, hip_flex=18, trunk_flex=2, r_sh_elev=158, r_sh_plane=10, r_sh_rot=5, r_elbow=65,
                 l_sh_elev=130, l_sh_plane=35, l_sh_rot=30, l_elbow=70, head_pitch=-20)),
    (0.63, _pose(knee=22, hip_flex=15, trunk_flex=2, r_sh_elev=165, r_sh_plane=10, r_sh_rot=5, r_elbow=8,
                 l_sh_elev=128, l_sh_plane=35, l_sh_rot=30, l_elbow=55, head_pitch=-20)),
    (0.76, _pose(knee=42, hip_flex=32, trunk_flex=10, r_sh_elev=150, r_sh_plane=10, r_elbow=15, l_sh_elev=95,
                 l_sh_plane=30, l_elbow=40, head_pitch=-10)),
    (0.88, _pose(knee=18, hip_flex=12, trunk_flex=5, r_sh_elev=70, r_elbow=30, l_sh_elev=40, l_elbow=30)),
    (1.00, _pose()),
)
SHOT_RELEASE_U = 0.63
SHOT_FLIGHT = (0.40, 0.76)  # take-off and landing, fraction of the motion

_CHEST_PASS_KEYS = (
    (0.00, _pose(knee=14, hip_flex=10, elev=38, plane=15, rot=40, elbow=118, trunk_flex=6)),
    (0.30, _pose(knee=16, hip_flex=8, elev=32, plane=15, rot=45, elbow=128, trunk_flex=2, l_hip_flex=28, l_knee=18,
                 r_hip_flex=-6, r_knee=20)),
    (0.50, _pose(elev=82, plane=8, rot=10, elbow=8, trunk_flex=16, l_hip_flex=32, l_knee=22, r_hip_flex=-10,
                 r_knee=18)),
    (0.68, _pose(elev=78, plane=12, rot=-20, elbow=12, trunk_flex=14, l_hip_flex=28, l_knee=20, r_hip_flex=-8,
                 r_knee=16)),
    (1.00, _pose(elev=14, elbow=22, trunk_flex=3)),
)
_OVERHEAD_PASS_KEYS = (
    (0.00, _pose(knee=12, hip_flex=8, elev=150, plane=15, rot=20, elbow=95, trunk_flex=-5, head_pitch=-5)),
    (0.30, _pose(knee=14, hip_flex=8, elev=160, plane=15, rot=20, elbow=118, trunk_flex=-8, l_hip_flex=25,
                 l_knee=15, r_hip_flex=-6)),
    (0.50, _pose(elev=120, plane=12, rot=10, elbow=10, trunk_flex=15, l_hip_flex=30, l_knee=20, r_hip_flex=-10)),
    (0.70, _pose(elev=95, plane=12, rot=0, elbow=12, trunk_flex=14, l_hip_flex=26, l_knee=18)),
    (1.00, _pose(elev=14, elbow=22, trunk_flex=3)),
)
PASS_RELEASE_U = 0.47


def _jump_shot(p, u, style):
    d = _keyframes(_SHOT_KEYS, u)
    u0, u1 = SHOT_FLIGHT
    x = np.clip((u - u0) / (u1 - u0), 0.0, 1.0)
    d[:, D_["flight"]] = 4.0 * style["jump_mm"] * x * (1.0 - x)  # ballistic: parabola in time
    return d


def _pass(p, u, style):
    return _keyframes(_OVERHEAD_PASS_KEYS if style["variant"] == 1 else _CHEST_PASS_KEYS, u)


@dataclass(frozen=True)
class MotionKind:
    """How a primitive moves the root and how long it lasts."""

    fn: Callable  # (phase (N,), progress (N,), style) -> (N, D) DOFs
    mode: str  # "loco": moves along its heading; "slide": sideways; "still": turns on the spot
    cadence_hz: tuple[float, float]  # stride frequency range (gait phase speed)
    speed_mm_s: tuple[float, float]
    turn_deg_s: float  # maximum turning rate of the body heading
    duration_s: float | None = None  # one-shot motions: length of the movement (then they hold the end pose)


MOTION_KINDS: dict[str, MotionKind] = {
    "run": MotionKind(_run, "loco", (1.30, 1.45), (3200.0, 4300.0), 170.0),
    "jog": MotionKind(_jog, "loco", (1.15, 1.30), (1800.0, 2600.0), 200.0),
    "dribble": MotionKind(_dribble, "loco", (0.80, 0.95), (500.0, 1300.0), 160.0),
    "jump_shot": MotionKind(_jump_shot, "still", (0.30, 0.40), (0.0, 0.0), 60.0, 1.3),
    "pass": MotionKind(_pass, "still", (0.30, 0.40), (0.0, 0.0), 80.0, 0.9),
    "defensive_slide": MotionKind(_defensive_slide, "slide", (1.00, 1.20), (1000.0, 1800.0), 90.0),
    "idle": MotionKind(_idle, "still", (0.20, 0.35), (0.0, 0.0), 70.0),
}
BLEND_S = 0.35  # transition between consecutive primitives, seconds
BALL_BLEND_S = 0.6  # the ball returns to the holder's hands after a shot or pass over this time

_MIRROR = np.array([D_[(("r" + n[1:]) if n.startswith("l_") else ("l" + n[1:]) if n.startswith("r_") else n)]
                    for n in DOFS])
_MIRROR_SIGN = np.array([-1.0 if n in ("pelvis_roll", "trunk_twist", "trunk_bend", "head_yaw") else 1.0
                         for n in DOFS])


@dataclass
class Segment:
    """One primitive in a player's schedule (times in seconds of clip time)."""

    motion: str
    start: float
    end: float
    cadence_hz: float
    speed_mm_s: float
    heading: float  # target body heading, radians
    side: float  # slide direction: +1 to the body's left, -1 to its right
    style: dict = field(default_factory=dict)


def segment_dofs(seg: Segment, phase: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(N, D) DOFs of one segment at clip times ``t`` (s) and gait phases ``phase`` (rad), limits applied."""
    kind = MOTION_KINDS[seg.motion]
    u = np.clip((t - seg.start) / kind.duration_s, 0.0, 1.0) if kind.duration_s else np.zeros_like(t)
    d = kind.fn(phase, u, seg.style)
    st = seg.style
    d = d + st["offset"][None, :]
    w = st["wobble"]  # slow, non-periodic variation of arms and head
    d = d + w["amp"][None, :] * np.sin(2 * np.pi * w["hz"][None, :] * t[:, None] + w["phase"][None, :])
    if st["mirror"]:
        d = d[:, _MIRROR] * _MIRROR_SIGN
    return clamp_dofs(d)


def _sample_style(rng: np.random.Generator, motion: str) -> dict:
    offset = np.zeros(len(DOFS))
    wob = np.zeros(len(DOFS))
    for side in ("l", "r"):
        offset[D_[f"{side}_sh_elev"]] = rng.uniform(-8, 8)
        offset[D_[f"{side}_sh_plane"]] = rng.uniform(-10, 10)
        offset[D_[f"{side}_sh_rot"]] = rng.uniform(-10, 10)
        offset[D_[f"{side}_elbow"]] = rng.uniform(-8, 12)
        wob[D_[f"{side}_sh_elev"]] = rng.uniform(0, 6)
        wob[D_[f"{side}_elbow"]] = rng.uniform(0, 8)
    offset[D_["head_yaw"]] = rng.uniform(-20, 20)
    offset[D_["head_pitch"]] = rng.uniform(-8, 8)
    offset[D_["trunk_bend"]] = rng.uniform(-4, 4)
    wob[D_["head_yaw"]] = rng.uniform(0, 10)
    wob[D_["trunk_twist"]] = rng.uniform(0, 4)
    variants = {"idle": (0.55, 0.25, 0.2), "defensive_slide": (0.6, 0.2, 0.2), "pass": (0.7, 0.3)}
    probs = variants.get(motion, (1.0,))
    return {
        "amp": rng.uniform(0.85, 1.15),
        "variant": int(rng.choice(len(probs), p=probs)),
        "mirror": bool(rng.random() < (0.25 if motion in BALL_MOTIONS else 0.5)),
        "jump_mm": rng.uniform(280, 450),
        "offset": offset,
        "wobble": {"amp": wob, "hz": rng.uniform(0.15, 0.6, len(DOFS)), "phase": rng.uniform(0, 2 * np.pi, len(DOFS))},
    }


def sample_schedule(rng: np.random.Generator, motions: tuple[str, ...], t_end: float, holder: bool,
                    axis: float | None = None) -> list[Segment]:
    """Segments covering [t0 < 0, t_end]: periodic primitives last 1.0-2.6 s, one-shots their duration + a hold.

    The ball holder draws from all configured primitives; the others prefer the ones without the ball.
    Headings are uniform, or with ``axis`` (rad) mostly along it, either way (towards / away from a camera).
    """
    own = motions if holder else tuple(m for m in motions if m not in BALL_MOTIONS) or motions
    segs: list[Segment] = []
    t = -rng.uniform(0.0, 1.5)
    while t < t_end:
        motion = str(own[rng.integers(len(own))])
        kind = MOTION_KINDS[motion]
        dur = kind.duration_s * rng.uniform(1.05, 1.4) if kind.duration_s else rng.uniform(1.0, 2.6)
        heading = rng.uniform(-np.pi, np.pi)
        if axis is not None and kind.mode == "loco" and rng.random() < 0.75:
            heading = axis + rng.choice([0.0, np.pi]) + rng.uniform(-0.4, 0.4)
        segs.append(Segment(
            motion=motion, start=t, end=t + dur,
            cadence_hz=rng.uniform(*kind.cadence_hz), speed_mm_s=rng.uniform(*kind.speed_mm_s),
            heading=float(heading), side=float(rng.choice([-1.0, 1.0])),
            style=_sample_style(rng, motion),
        ))
        t += dur
    return segs


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


# --------------------------------------------------------------------------------------------------------------
# Cameras and the play area
# --------------------------------------------------------------------------------------------------------------

COURT_MM = (28000.0, 15000.0)  # FIBA court, length x width
ARENA_MM = (17000.0, 10500.0)  # half-extents of the floor up to the billboards
NEAR_MM = 100.0


def sample_camera(view: str, rng: np.random.Generator, width: int, height: int) -> tuple[Camera, np.ndarray]:
    """A jittered camera of a view group and its look-at target on the court (mm).

    - ``sideline``: 2-4 m high beside the court, 5-11 m from the action, players 34-46% of the frame height
      at the target;
    - ``baseline``: behind the basket, 2.4-4 m high, looking down the court: players line up in depth and
      overlap heavily;
    - ``high_angle``: 9-13 m up in the stands, looking down at 40-65 degrees.
    The world is turned by 180 degrees half of the time (the other sideline / the other basket).
    """
    if view == "sideline":
        target = np.array([rng.uniform(-9000, 9000), rng.uniform(-4000, 500), rng.uniform(700, 1100)])
        eye = np.array([target[0] + rng.uniform(-2500, 2500), -rng.uniform(9000, 10200), rng.uniform(2000, 4000)])
        px = rng.uniform(0.34, 0.46)
    elif view == "baseline":
        target = np.array([rng.uniform(4500, 8500), rng.uniform(-1500, 1500), rng.uniform(800, 1100)])
        eye = np.array([rng.uniform(15500, 16800), target[1] + rng.uniform(-1000, 1000), rng.uniform(2400, 4000)])
        px = rng.uniform(0.32, 0.42)
    elif view == "high_angle":
        target = np.array([rng.uniform(-9000, 9000), rng.uniform(-3000, 1000), rng.uniform(500, 900)])
        eye = np.array([target[0] + rng.uniform(-3000, 3000), -rng.uniform(8500, 10200), rng.uniform(9000, 13000)])
        px = rng.uniform(0.28, 0.38)
    else:
        raise ValueError(f"unknown view {view!r}; known: {VIEWS}")
    if rng.random() < 0.5:
        target[:2] *= -1
        eye[:2] *= -1
    focal = px * height * np.linalg.norm(eye - target) / ADULT_HEIGHT_MM  # px
    K = intrinsics(focal, width / 2 + rng.uniform(-0.02, 0.02) * width, height / 2 + rng.uniform(-0.02, 0.02) * height)
    R, t = look_at(eye, target, roll_deg=float(np.clip(rng.normal(0.0, 1.2), -3.0, 3.0)))
    return Camera(K=K, R=R, t=t, width=width, height=height), target


# Left/right margin of the play area, fraction of the width: behind the basket players stay in a central band,
# so that they line up in depth and overlap.
PLAY_MARGIN_X = {"sideline": 0.07, "baseline": 0.2, "high_angle": 0.07}


def in_play(camera: Camera, xy: np.ndarray, height_mm: np.ndarray, margin_x: float = 0.07,
            strict: float = 1.0) -> np.ndarray:
    """(P,) whether a player standing at ``xy`` (P, 2) mm is fully in view with a margin and not too close.

    ``margin_x`` is the left/right margin as a fraction of the width; ``strict`` > 1 widens the margins (used
    when placing players at the start).
    """
    foot = np.concatenate([xy, np.zeros((len(xy), 1))], axis=1)
    head = np.concatenate([xy, height_mm[:, None]], axis=1)
    uv_f, z_f = camera.project_world(foot)
    uv_h, z_h = camera.project_world(head)
    W, H = camera.width, camera.height
    ok = (z_f > 1000.0) & (z_h > 1000.0)
    ok &= camera.inside(uv_f, margin_x * strict * W, 0.03 * strict * H)
    ok &= camera.inside(uv_h, margin_x * strict * W, 0.03 * strict * H)
    ok &= np.abs(uv_f[:, 1] - uv_h[:, 1]) < 0.55 * H  # not too close to the camera
    return ok


def initial_positions(rng, camera: Camera, target: np.ndarray, view: str, heights: np.ndarray) -> np.ndarray:
    """(P, 2) start positions in the play area. Baseline views line players up along the optical axis."""
    fwd = target[:2] - camera.center[:2]
    fwd /= np.linalg.norm(fwd)
    side = np.array([-fwd[1], fwd[0]])
    lat, dep = {"sideline": (3500, 2500), "baseline": (900, 5000), "high_angle": (4000, 3500)}[view]
    out = np.zeros((len(heights), 2))
    for i, h in enumerate(heights):
        for attempt in range(200):
            xy = target[:2] + side * rng.uniform(-lat, lat) + fwd * rng.uniform(-dep, dep)
            others = out[:i]
            if in_play(camera, xy[None], np.array([h]), PLAY_MARGIN_X[view], strict=1.3)[0] and (
                i == 0 or np.min(np.linalg.norm(others - xy, axis=1)) > 900.0 or attempt > 150
            ):
                break
        else:
            xy = target[:2] + side * (i - len(heights) / 2) * 700.0
        out[i] = xy
    return out


def _wrap(a):
    return (a + np.pi) % (2 * np.pi) - np.pi


def simulate_roots(rng, camera: Camera, target: np.ndarray, schedules: list[list[Segment]], start_xy: np.ndarray,
                   heights: np.ndarray, times: np.ndarray, sub: int = 1,
                   margin_x: float = 0.07) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integrate root positions and headings, every ``sub`` steps of the fine time grid, then interpolate.

    Each step: the segment's mode sets a desired velocity (along the heading, sideways, or zero); the heading
    turns towards a goal at the primitive's maximum rate; when the position 0.7 s ahead leaves the play area
    the goal turns towards the camera target (or a slide reverses); players closer than 0.8 m push apart;
    velocity follows its desired value with a 0.3 s time constant (smooth starts, stops and transitions).

    Args:
        times: (N,) fine time grid, s (uniform).
        sub: fine steps per integration step (the trajectories are smooth at the frame rate; linear
            interpolation between frames is exact to well under a millimetre).

    Returns:
        root_xy (N, P, 2) mm, yaw (N, P) rad, segment index (N, P) on the fine grid.
    """
    fine_dt = float(times[1] - times[0]) if len(times) > 1 else 0.04
    fine = times
    times = times[0] + np.arange((len(fine) - 1) // sub + 2) * sub * fine_dt  # integration grid, covers `fine`
    n, P = len(times), len(schedules)
    dt = sub * fine_dt

    def segment_index(t):
        idx = np.stack([np.searchsorted([s.start for s in segs], t, side="right") - 1 for segs in schedules], 1)
        return np.maximum(idx, 0)  # (len(t), P)

    seg_idx = segment_index(times)

    def per_step(get):
        return np.stack([np.array([get(s) for s in segs])[seg_idx[:, p]] for p, segs in enumerate(schedules)], 1)

    mode = per_step(lambda s: {"loco": 0, "slide": 1, "still": 2}[MOTION_KINDS[s.motion].mode])  # (N, P)
    speed = per_step(lambda s: s.speed_mm_s) * (mode != 2)
    turn = np.radians(per_step(lambda s: MOTION_KINDS[s.motion].turn_deg_s)) * dt
    heading, seg_side = per_step(lambda s: s.heading), per_step(lambda s: s.side)
    changed = np.ones((n, P), dtype=bool)
    changed[1:] = seg_idx[1:] != seg_idx[:-1]

    xy = start_xy.astype(np.float64).copy()
    yaw, goal, side = heading[0].copy(), heading[0].copy(), seg_side[0].copy()
    vel = np.zeros((P, 2))
    cooldown = np.zeros(P)
    out_xy, out_yaw = np.zeros((n, P, 2)), np.zeros((n, P))
    alpha = 1.0 - math.exp(-dt / 0.3)
    not_self = ~np.eye(P, dtype=bool)
    for k in range(n):
        c = changed[k]
        goal[c], side[c] = heading[k, c], seg_side[k, c]
        fwd = np.stack([np.cos(yaw), np.sin(yaw)], -1)  # (P, 2)
        left = np.stack([-fwd[:, 1], fwd[:, 0]], -1)
        dirn = np.where((mode[k] == 1)[:, None], side[:, None] * left, fwd)
        look = xy + dirn * np.maximum(0.7 * speed[k], 500.0)[:, None] * (speed[k] > 0)[:, None]
        cooldown -= dt
        trig = ~in_play(camera, look, heights, margin_x) & (cooldown <= 0) & (speed[k] > 0)
        if trig.any():
            to_c = target[:2] - xy
            new_goal = np.arctan2(to_c[:, 1], to_c[:, 0]) + rng.uniform(-0.7, 0.7, P)
            goal = np.where(trig & (mode[k] == 0), new_goal, goal)
            side = np.where(trig & (mode[k] == 1), -side, side)
            dirn = np.where((trig & (mode[k] == 1))[:, None], -dirn, dirn)
            cooldown[trig] = 0.6
        desired = dirn * speed[k][:, None]
        yaw = _wrap(yaw + np.clip(_wrap(goal - yaw), -turn[k], turn[k]))
        diff = xy[:, None] - xy[None]  # (P, P, 2) separation: players do not walk through each other
        dist = np.linalg.norm(diff, axis=-1)
        close = not_self & (dist < 800.0)
        if close.any():
            push = np.where(close, 1500.0 * (1.0 - dist / 800.0) / np.maximum(dist, 1.0), 0.0)
            desired = desired + (diff * push[..., None]).sum(1)
        vel += alpha * (desired - vel)
        xy = xy + vel * dt
        out_xy[k], out_yaw[k] = xy, yaw
    out_yaw = np.unwrap(out_yaw, axis=0)
    fine_xy = np.stack([np.stack([np.interp(fine, times, out_xy[:, p, c]) for c in range(2)], -1) for p in range(P)], 1)
    fine_yaw = np.stack([np.interp(fine, times, out_yaw[:, p]) for p in range(P)], 1)
    return fine_xy, fine_yaw, segment_index(fine)


# --------------------------------------------------------------------------------------------------------------
# Scene appearance
# --------------------------------------------------------------------------------------------------------------

# BGR colours.
TEAM_COLOURS = (  # (jersey, shorts)
    ((235, 235, 235), (225, 225, 225)),  # white
    ((40, 40, 200), (35, 35, 170)),  # red
    ((170, 80, 20), (150, 70, 20)),  # blue
    ((40, 200, 230), (30, 170, 200)),  # yellow
    ((60, 140, 40), (50, 110, 35)),  # green
    ((130, 40, 110), (110, 35, 95)),  # purple
    ((30, 120, 240), (25, 100, 210)),  # orange
    ((35, 35, 35), (30, 30, 30)),  # black
    ((90, 40, 20), (80, 35, 20)),  # navy
    ((220, 190, 120), (200, 170, 110)),  # light blue
)
SKIN = ((180, 200, 235), (140, 170, 215), (110, 145, 195), (80, 110, 160), (55, 80, 120), (40, 60, 95))
HAIR = ((20, 20, 25), (25, 40, 60), (30, 60, 100), (60, 110, 160), (15, 15, 15))
SHOES = ((240, 240, 240), (30, 30, 30), (40, 40, 190), (200, 120, 40))
SOCKS = ((235, 235, 235), (30, 30, 30))
FLOOR = ((95, 150, 205), (80, 130, 190), (110, 165, 215), (70, 115, 170))
BALL_COLOUR = (30, 100, 215)
BALL_RADIUS_MM = 120.0


@dataclass
class Players:
    """Per-player constants of a clip."""

    height_scale: np.ndarray  # (P,) relative to the adult template
    lengths: dict  # name -> (P,) mm
    height_mm: np.ndarray  # (P,)
    is_child: np.ndarray  # (P,) bool
    team: np.ndarray  # (P,) 0/1
    colours: list  # per player: dict role -> BGR
    numbers: list  # jersey numbers
    girth: np.ndarray  # (P,) limb radius factor


def sample_players(rng, n: int, child: bool) -> Players:
    scale = rng.uniform(0.55, 0.8, n) if child else rng.uniform(0.9, 1.1, n)
    lengths = body_lengths(scale)
    teams = rng.choice(len(TEAM_COLOURS), size=2, replace=False)
    team = np.arange(n) % 2
    colours = []
    for p in range(n):
        jersey, shorts = TEAM_COLOURS[teams[team[p]]]
        colours.append({
            "jersey": jersey, "shorts": shorts,
            "skin": SKIN[rng.integers(len(SKIN))], "hair": HAIR[rng.integers(len(HAIR))],
            "shoe": SHOES[rng.integers(len(SHOES))], "sock": SOCKS[rng.integers(len(SOCKS))],
            "trim": (30, 30, 30) if sum(jersey) > 450 else (240, 240, 240),
        })
    return Players(
        height_scale=scale, lengths=lengths, height_mm=standing_height(lengths), is_child=np.full(n, child),
        team=team, colours=colours, numbers=[int(x) for x in rng.integers(0, 100, n)],
        girth=rng.uniform(0.9, 1.15, n) * (1.1 if child else 1.0),
    )


def _court_lines() -> list[np.ndarray]:
    """FIBA court markings as world polylines (M, 3) on the floor, mm."""
    L, Wd = COURT_MM[0] / 2, COURT_MM[1] / 2
    lines = [np.array([[-L, -Wd], [L, -Wd], [L, Wd], [-L, Wd], [-L, -Wd]]), np.array([[0, -Wd], [0, Wd]])]

    def arc(cx, cy, r, a0, a1, n=48):
        a = np.linspace(a0, a1, n)
        return np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], 1)

    lines.append(arc(0, 0, 1800, 0, 2 * np.pi))
    for s in (-1.0, 1.0):
        bx = s * (L - 1575)  # basket centre
        ft = s * (L - 5800)  # free-throw line
        lines.append(np.array([[s * L, -2450], [ft, -2450], [ft, 2450], [s * L, 2450]]))
        lines.append(arc(ft, 0, 1800, 0, 2 * np.pi))
        a = math.asin(6600 / 6750)  # three-point line: straight at |y| = 6600 from the baseline, then the arc
        three = arc(bx, 0, 6750, np.pi - a, np.pi + a) if s > 0 else arc(bx, 0, 6750, -a, a)
        lines.append(np.concatenate([[[s * L, s * 6600]], three, [[s * L, -s * 6600]]]))
        lines.append(arc(bx, 0, 1250, np.pi / 2, 3 * np.pi / 2) if s > 0 else arc(bx, 0, 1250, -np.pi / 2, np.pi / 2))
    return [np.concatenate([ln, np.zeros((len(ln), 1))], 1) for ln in lines]


def _fill_world_poly(img, camera: Camera, poly_world: np.ndarray, colour) -> None:
    cam = clip_polygon_near(camera.to_camera(poly_world), NEAR_MM)
    if len(cam) >= 3:
        uv = project(camera.K, cam)
        cv2.fillPoly(img, [np.round(uv * 16).astype(np.int32)], colour, cv2.LINE_AA, 4)


def render_background(rng, camera: Camera) -> tuple[np.ndarray, dict]:
    """The static part of a frame: arena roof, crowd on sloped stands, billboards, floor, court lines, lighting.

    Returns:
        (H, W, 3) uint8 BGR image and the lighting parameters the players share (``gain`` (3,), ``light``
        (2,) image direction the light comes from).
    """
    W, H = camera.width, camera.height
    img = np.empty((H, W, 3), np.uint8)
    img[:] = rng.integers(20, 60, 3).astype(np.uint8)
    X, Y = ARENA_MM
    S, top = 20000.0, 11000.0  # stands: outward extent and height, mm
    seat = tuple(int(c) for c in rng.integers(30, 120, 3))
    corners = [(-X, -Y), (X, -Y), (X, Y), (-X, Y)]
    outward = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
    sides = []
    for i in range(4):
        (x0, y0), (x1, y1) = corners[i], corners[(i + 1) % 4]
        (ox0, oy0), (ox1, oy1) = outward[i], outward[(i + 1) % 4]
        stand = np.array([[x0, y0, 1000], [x1, y1, 1000], [x1 + ox1 * S, y1 + oy1 * S, top],
                          [x0 + ox0 * S, y0 + oy0 * S, top]], dtype=np.float64)
        edge = np.array([x1 - x0, y1 - y0]) / np.hypot(x1 - x0, y1 - y0)
        sides.append((np.array([x0, y0]), np.array([x1, y1]), np.array([edge[1], -edge[0]])))  # outward normal
        _fill_world_poly(img, camera, stand, seat)
    # Crowd: seated people in rows on the stands, drawn far to near; tiny ones as two pixels.
    people = []
    for a, b, normal in sides:
        n_along, n_rows = int(np.linalg.norm(b - a) / 550), int(np.hypot(S, top - 1000) / 850)
        s_ = (np.arange(n_along)[None, :] + 0.5 + rng.uniform(-0.15, 0.15, (n_rows, n_along))) / n_along
        d = np.repeat(((np.arange(n_rows) + 0.5) / n_rows)[:, None], n_along, 1)  # 0 at the boards, 1 at the top
        xy = a + (b - a) * s_[..., None] + normal * (d * S)[..., None]
        z = 1000 + d * (top - 1000) + 450
        keep = rng.random(d.shape) < 0.85
        people.append(np.concatenate([xy, z[..., None]], -1)[keep])
    people = np.concatenate(people)
    uv, z = camera.project_world(people)
    vis = (z > 2000) & camera.inside(uv, -4, -4)
    uv, z = uv[vis], z[vis]
    shirts = (0.65 * rng.integers(20, 235, (len(z), 3)) + 40).astype(np.int64)  # muted
    skins = np.array(SKIN)[rng.integers(len(SKIN), size=len(z))]
    f = camera.focal
    for i in np.argsort(-z, kind="stable"):
        r = f * 100.0 / z[i]
        if r < 1.2:
            x, y = int(uv[i, 0]), int(uv[i, 1])
            if 0 <= x < W and 0 <= y < H:
                img[y, x] = skins[i]
                img[min(y + 1, H - 1), x] = shirts[i]
            continue
        cx, cy = int(uv[i, 0] * 16), int(uv[i, 1] * 16)
        cv2.ellipse(img, (cx, cy + int(r * 2.4 * 16)), (int(r * 1.9 * 16), int(r * 1.8 * 16)), 0, 0, 360,
                    tuple(int(v) for v in shirts[i]), -1, cv2.LINE_AA, 4)
        cv2.circle(img, (cx, cy), int(r * 16), tuple(int(v) for v in skins[i]), -1, cv2.LINE_AA, 4)
    # Billboards: 4 m panels of colour with logo blocks, along all four sides.
    for a, b, _ in sides:
        length = np.linalg.norm(b - a)
        n_pan = int(length // 4000)
        u_dir = (b - a) / length
        for k in range(n_pan):
            s0, s1 = k * length / n_pan, (k + 1) * length / n_pan
            base_c = tuple(int(v) for v in rng.integers(0, 256, 3))

            def quad(u0, u1, z0, z1):
                p0, p1 = a + u_dir * u0, a + u_dir * u1
                return np.array([[p0[0], p0[1], z0], [p1[0], p1[1], z0], [p1[0], p1[1], z1], [p0[0], p0[1], z1]])

            _fill_world_poly(img, camera, quad(s0, s1, 0, 1000), base_c)
            for _ in range(rng.integers(1, 4)):
                u0 = rng.uniform(s0 + 100, s1 - 1200)
                u1 = u0 + rng.uniform(400, 1100)
                z0 = rng.uniform(150, 500)
                logo_c = tuple(int(v) for v in (255 - np.array(base_c) + rng.integers(-40, 40, 3)).clip(0, 255))
                _fill_world_poly(img, camera, quad(u0, u1, z0, z0 + rng.uniform(200, 450)), logo_c)
    # Floor: apron, court with planks, painted keys, lines.
    wood = np.array(FLOOR[rng.integers(len(FLOOR))], dtype=np.float64)
    apron = tuple(int(v) for v in (wood * rng.uniform(0.55, 0.8)))
    _fill_world_poly(img, camera, np.array([[-X, -Y, 0], [X, -Y, 0], [X, Y, 0], [-X, Y, 0]], dtype=np.float64), apron)
    L2, W2 = COURT_MM[0] / 2, COURT_MM[1] / 2
    for y0 in np.arange(-W2, W2, 450.0):  # planks run along the court
        shade = tuple(int(v) for v in np.clip(wood * rng.uniform(0.9, 1.08), 0, 255))
        plank = np.array([[-L2, y0, 0], [L2, y0, 0], [L2, y0 + 450, 0], [-L2, y0 + 450, 0]])
        _fill_world_poly(img, camera, plank, shade)
    paint = tuple(int(v) for v in rng.integers(30, 200, 3))
    for s in (-1.0, 1.0):
        ft = s * (L2 - 5800)
        _fill_world_poly(img, camera, np.array([[s * L2, -2450, 0], [ft, -2450, 0], [ft, 2450, 0], [s * L2, 2450, 0]]),
                         paint)
    line_c = (245, 245, 245) if rng.random() < 0.8 else (30, 30, 30)
    for ln in _court_lines():
        for piece in clip_polyline_near(camera.to_camera(ln), NEAR_MM):
            uv = project(camera.K, piece)
            thick = max(1, int(round(camera.focal * 50.0 / float(np.median(piece[:, 2])))))
            cv2.polylines(img, [np.round(uv * 16).astype(np.int32)], False, line_c, thick, cv2.LINE_AA, 4)
    # Lighting: global gain and tint, vignette, a soft spotlight, fixed sensor noise.
    gain = rng.uniform(0.75, 1.2) * rng.uniform(0.92, 1.08, 3)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    rr = ((xx - W / 2) / (W / 2)) ** 2 + ((yy - H / 2) / (H / 2)) ** 2
    vignette = 1.0 - rng.uniform(0.0, 0.35) * rr / 2.0
    cx, cy = rng.uniform(0, W), rng.uniform(0, H)
    spot = 1.0 + rng.uniform(0.0, 0.25) * np.exp(-(((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (0.35 * W) ** 2)))
    lit = img.astype(np.float32) * (vignette * spot)[..., None] * gain[None, None, :].astype(np.float32)
    lit += rng.normal(0.0, 2.5, lit.shape).astype(np.float32)
    light = np.array([rng.uniform(-0.8, 0.8), -1.0])
    return np.clip(lit, 0, 255).astype(np.uint8), {"gain": gain, "light": light / np.linalg.norm(light)}


# --------------------------------------------------------------------------------------------------------------
# Player rendering
# --------------------------------------------------------------------------------------------------------------

# Body parts: (kind, point a, point b, radius mm, colour role, depth bias mm). Capsules are drawn as thick
# lines with a darker rim and lighter core towards the light; depth = mean camera depth of a and b + bias.
PARTS = (
    ("torso", "root", "thorax", 118.0, "jersey", 0.0),  # shoulder-hip polygon + a pelvis-thorax capsule (volume)
    ("cap", "l_hip_out", "r_hip_out", 95.0, "shorts", 0.0),
    ("cap", "l_hip", "l_shorts", 92.0, "shorts", 0.0),
    ("cap", "r_hip", "r_shorts", 92.0, "shorts", 0.0),
    ("cap", "l_shorts", "l_knee", 62.0, "skin", 0.0),
    ("cap", "r_shorts", "r_knee", 62.0, "skin", 0.0),
    ("cap", "l_knee", "l_sock", 50.0, "skin", 0.0),
    ("cap", "r_knee", "r_sock", 50.0, "skin", 0.0),
    ("cap", "l_sock", "l_foot", 47.0, "sock", 0.0),
    ("cap", "r_sock", "r_foot", 47.0, "sock", 0.0),
    ("cap", "l_foot", "l_toe", 46.0, "shoe", 0.0),
    ("cap", "r_foot", "r_toe", 46.0, "shoe", 0.0),
    ("cap", "thorax", "neck_base", 52.0, "skin", 0.0),
    ("cap", "l_shoulder", "l_elbow", 46.0, "skin", -40.0),
    ("cap", "r_shoulder", "r_elbow", 46.0, "skin", -40.0),
    ("cap", "l_elbow", "l_wrist", 38.0, "skin", -40.0),
    ("cap", "r_elbow", "r_wrist", 38.0, "skin", -40.0),
    ("cap", "l_hand", "l_hand", 44.0, "skin", -40.0),
    ("cap", "r_hand", "r_hand", 44.0, "skin", -40.0),
    ("head", "head", "head", 0.0, "skin", -30.0),
)
_PA = np.array([P_[p[1]] for p in PARTS])
_PB = np.array([P_[p[2]] for p in PARTS])
_PR = np.array([p[3] for p in PARTS])
_PBIAS = np.array([p[5] for p in PARTS])
_TORSO = [P_[n] for n in ("l_sh_out", "r_sh_out", "r_hip_out", "l_hip_out")]
_KIND = [{"cap": 0, "torso": 1, "head": 2}[p[0]] for p in PARTS]


def _shade(colour, k, gain):
    return tuple(float(min(255.0, c * k * g)) for c, g in zip(colour, gain))


class Renderer:
    """Draws players and the ball over a background; optionally fills a player-id buffer (0 = background,
    p + 1 = player p, 255 = ball)."""

    def __init__(self, camera: Camera, players: Players, look: dict):
        """``look``: the clip's lighting from ``render_background`` (``gain`` (3,), ``light`` (2,))."""
        self.cam = camera
        self.players = players
        self.gain = look["gain"]
        self.light = look["light"]
        n = len(players.height_mm)
        body = players.lengths["body_scale"] * players.girth  # (P,)
        head = players.lengths["head_scale"]
        is_head = np.array([p[0] == "head" for p in PARTS])[None, :]
        self.radius_mm = np.where(is_head, head[:, None], body[:, None]) * _PR  # (P, NPARTS)
        self.head_scale = head
        # Jersey numbers: text size at font scale 1 (it scales linearly), measured once.
        self.text_size = [cv2.getTextSize(str(k), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 1)[0] for k in players.numbers]
        self.palette = []  # per player, per part: (dark, mid, light) colours
        for p in range(n):
            rows = []
            for part in PARTS:
                c = players.colours[p][part[4]]
                rows.append((_shade(c, 0.62, self.gain), _shade(c, 0.92, self.gain), _shade(c, 1.15, self.gain)))
            self.palette.append(rows)

    def draw(self, img: np.ndarray, points_cam: np.ndarray, ball_cam: np.ndarray | None, ids: np.ndarray | None = None):
        """Render one instant.

        Args:
            img: (H, W, 3) uint8, modified in place (a copy of the background).
            points_cam: (P, NPTS, 3) camera-frame points, mm.
            ball_cam: (3,) ball centre in camera mm, or None.
            ids: (H, W) uint8 id buffer to fill, or None.
        """
        K, f = self.cam.K, self.cam.focal
        z = points_cam[..., 2]  # (P, NPTS)
        if np.any(z < NEAR_MM):
            points_cam = points_cam.copy()
            points_cam[..., 2] = np.maximum(z, NEAR_MM)
            z = points_cam[..., 2]
        uv = project(K, points_cam)  # (P, NPTS, 2)
        P, NP = len(points_cam), len(PARTS)
        self._shadows(img, points_cam)
        depth = 0.5 * (z[:, _PA] + z[:, _PB]) + _PBIAS  # (P, NP)
        depth[:, 0] = z[:, _TORSO].mean(axis=1)
        # Capsule geometry for all parts at once (1/16 px fixed point for cv2's shift=4): outer width, then a
        # core and a highlight shifted towards the light, perpendicular to the limb.
        width = np.maximum(1, np.round(2.0 * f * self.radius_mm / depth.clip(NEAR_MM))).astype(np.int64)  # (P, NP)
        a, b = uv[:, _PA], uv[:, _PB]  # (P, NP, 2)
        d = b - a
        normal = np.stack([-d[..., 1], d[..., 0]], -1)
        norm = np.linalg.norm(normal, axis=-1, keepdims=True)
        unit = np.where(norm > 1e-6, normal / np.maximum(norm, 1e-6), self.light)
        off = unit * np.where(norm > 1e-6, (unit @ self.light)[..., None], 1.0)  # (P, NP, 2) towards the light
        a16, b16 = np.round(a * 16).astype(np.int64), np.round(b * 16).astype(np.int64)
        o1 = np.round(off * (0.14 * 16 * width)[..., None]).astype(np.int64)
        o2 = np.round(off * (0.30 * 16 * width)[..., None]).astype(np.int64)
        w1 = np.maximum(1, np.round(0.62 * width)).astype(np.int64)
        w2 = np.maximum(1, np.round(0.26 * width)).astype(np.int64)
        geo = np.concatenate([a16, b16, a16 + o1, b16 + o1, a16 + o2, b16 + o2, width[..., None], w1[..., None],
                              w2[..., None]], -1).tolist()  # (P, NP, 15)
        order = np.argsort(-depth.ravel(), kind="stable")
        ball_depth = ball_cam[2] if ball_cam is not None and ball_cam[2] > NEAR_MM else None
        ball_done = ball_depth is None
        for flat in order.tolist():
            p, j = divmod(flat, NP)
            if not ball_done and ball_depth >= depth[p, j]:
                self._ball(img, ids, ball_cam)
                ball_done = True
            kind = _KIND[j]
            if kind == 0:
                g = geo[p][j]
                pal = self.palette[p][j]
                w = g[12]
                cv2.line(img, g[0:2], g[2:4], pal[0], w, cv2.LINE_AA, 4)
                if ids is not None:
                    cv2.line(ids, g[0:2], g[2:4], p + 1, w, cv2.LINE_8, 4)
                if w >= 3:
                    cv2.line(img, g[4:6], g[6:8], pal[1], g[13], cv2.LINE_AA, 4)
                if w >= 5:
                    cv2.line(img, g[8:10], g[10:12], pal[2], g[14], cv2.LINE_AA, 4)
            elif kind == 1:
                self._torso(img, ids, uv[p], points_cam[p], p, p + 1, geo[p][j])
            else:
                self._head(img, ids, uv[p], points_cam[p], p, p + 1)
        if not ball_done:
            self._ball(img, ids, ball_cam)

    def _torso(self, img, ids, uv, pc, p, pid, g):
        """Shoulder-hip polygon, then the pelvis-thorax capsule without a dark rim (the chest's depth in side
        views), then the front/back cue."""
        quad = np.round(uv[_TORSO] * 16).astype(np.int32)
        pal = self.palette[p][0]
        cv2.fillPoly(img, [quad], pal[1], cv2.LINE_AA, 4)
        cv2.line(img, g[0:2], g[2:4], pal[1], g[12], cv2.LINE_AA, 4)
        if g[12] >= 5:
            cv2.line(img, g[8:10], g[10:12], _shade(self.players.colours[p]["jersey"], 1.02, self.gain), g[14],
                     cv2.LINE_AA, 4)
        if ids is not None:
            cv2.fillPoly(ids, [quad], pid, cv2.LINE_8, 4)
            cv2.line(ids, g[0:2], g[2:4], pid, g[12], cv2.LINE_8, 4)
        # Front/back cue: a collar in the trim colour on the chest, the jersey number on the back.
        chest, back = pc[P_["chest"]], pc[P_["back"]]
        fwd = chest - back
        toward = float(np.dot(fwd, -chest) / (np.linalg.norm(fwd) * np.linalg.norm(chest) + 1e-9))  # 1: faces camera
        facing = toward > 0.0
        trim = _shade(self.players.colours[p]["trim"], 0.95, self.gain)
        anchor = uv[P_["chest"]] if facing else uv[P_["back"]]
        body = self.players.lengths["body_scale"][p]
        size = self.cam.focal * (110.0 if facing else 190.0) * body / max(float(pc[P_["thorax"], 2]), 1.0)  # px
        if size >= 4 and abs(toward) > 0.55:
            text = str(self.players.numbers[p])
            scale = size / 22.0
            tw, th = (scale * v for v in self.text_size[p])
            org = (int(anchor[0] - tw / 2), int(anchor[1] + th / 2))
            cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, trim, max(1, int(size / 8)), cv2.LINE_AA)
        if toward > 0.3:
            neck = uv[P_["neck_base"]] * 0.35 + uv[P_["thorax"]] * 0.65
            r = max(1, int(round(self.cam.focal * 45.0 * self.head_scale[p] / max(float(pc[P_["thorax"], 2]), 1.0))))
            cv2.circle(img, (int(neck[0] * 16), int(neck[1] * 16)), r * 16, trim, max(1, r // 2), cv2.LINE_AA, 4)

    def _head(self, img, ids, uv, pc, p, pid):
        f = self.cam.focal
        hs = self.head_scale[p]
        c = uv[P_["head"]]
        up = uv[P_["head_up"]] - c
        zc = max(float(pc[P_["head"], 2]), NEAR_MM)
        unit = f * 100.0 * hs / zc  # px per 100 mm at the head
        fore = float(np.clip(np.hypot(*up) / max(unit, 1e-6), 0.0, 1.0))  # 1: head upright in the image plane
        angle = math.degrees(math.atan2(up[1], up[0])) + 90.0
        ax_h = 0.85 * unit
        ax_v = (1.12 * fore + 0.85 * (1.0 - fore)) * unit
        pal = self.palette[p][-1]
        hair_c = _shade(self.players.colours[p]["hair"], 1.0, self.gain)
        parts = [(pc[P_["hair"], 2], P_["hair"], hair_c, 0.98), (pc[P_["face"], 2], P_["face"], pal[1], 0.9)]
        parts.sort(key=lambda x: -x[0])
        for _, idx, col, k in parts:
            ctr = uv[idx]
            cv2.ellipse(img, (int(ctr[0] * 16), int(ctr[1] * 16)), (int(ax_h * k * 16), int(ax_v * k * 16)), angle,
                        0, 360, col, -1, cv2.LINE_AA, 4)
        if ids is not None:
            cv2.ellipse(ids, (int(c[0] * 16), int(c[1] * 16)), (int(ax_h * 16) + 8, int(ax_v * 16) + 8), angle,
                        0, 360, pid, -1, cv2.LINE_8, 4)

    def _ball(self, img, ids, ball_cam):
        uv = project(self.cam.K, ball_cam)
        r = self.cam.focal * BALL_RADIUS_MM / ball_cam[2]
        ctr = (int(uv[0] * 16), int(uv[1] * 16))
        cv2.circle(img, ctr, int(r * 16), _shade(BALL_COLOUR, 0.6, self.gain), -1, cv2.LINE_AA, 4)
        if r >= 2:
            o = self.light * r * 0.25
            cv2.circle(img, (int(ctr[0] + o[0] * 16), int(ctr[1] + o[1] * 16)), int(r * 0.7 * 16),
                       _shade(BALL_COLOUR, 1.0, self.gain), -1, cv2.LINE_AA, 4)
        if ids is not None:
            cv2.circle(ids, ctr, int(r * 16), 255, -1, cv2.LINE_8, 4)

    def _shadows(self, img, points_cam):
        """Soft dark ellipses on the floor under each player (projected 0.35 m discs)."""
        g = points_cam[:, P_["ground"]]  # (P, 3) camera frame
        ang = np.linspace(0, 2 * np.pi, 12, endpoint=False)
        R = self.cam.R
        H, W = img.shape[:2]
        for p in range(len(points_cam)):
            r = 380.0 * self.players.lengths["body_scale"][p]
            disc = g[p][None] + (np.cos(ang)[:, None] * R[:, 0][None] + np.sin(ang)[:, None] * R[:, 1][None]) * r
            if np.any(disc[:, 2] < NEAR_MM):
                continue
            uv = project(self.cam.K, disc)
            x0, y0 = np.floor(uv.min(0)).astype(int) - 1
            x1, y1 = np.ceil(uv.max(0)).astype(int) + 2
            x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
            if x1 <= x0 or y1 <= y0:
                continue
            roi = img[y0:y1, x0:x1]
            tmp = roi.copy()
            cv2.fillConvexPoly(tmp, np.round((uv - [x0, y0]) * 16).astype(np.int32), (0, 0, 0), cv2.LINE_AA, 4)
            cv2.addWeighted(roi, 0.6, tmp, 0.4, 0.0, dst=roi)


# --------------------------------------------------------------------------------------------------------------
# Poses over time, the ball
# --------------------------------------------------------------------------------------------------------------

SUB = 5  # fine time steps per frame: motion blur averages 1, 3 or 5 of them around the frame's instant
GRAVITY_MM_S2 = 9810.0


def gait_phase(rng, schedule: list[Segment], seg_idx: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(N,) gait phase (rad) on the fine grid: integral of the blended stride frequency, so it stays continuous
    across primitive changes."""
    dt = float(times[1] - times[0]) if len(times) > 1 else 0.04
    cad = np.array([schedule[i].cadence_hz for i in seg_idx])
    prev = np.array([schedule[max(i - 1, 0)].cadence_hz for i in seg_idx])
    start = np.array([schedule[i].start for i in seg_idx])
    w = np.where(seg_idx > 0, _smoothstep((times - start) / BLEND_S), 1.0)
    return rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.cumsum(prev + w * (cad - prev)) * dt


def pose_track(schedule: list[Segment], seg_idx: np.ndarray, phase: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(N, D) DOFs at the given times: each segment's primitive, blended from the previous one over BLEND_S."""
    out = np.zeros((len(times), len(DOFS)))
    for i in np.unique(seg_idx):
        m = seg_idx == i
        seg = schedule[i]
        cur = segment_dofs(seg, phase[m], times[m])
        if i > 0:
            w = _smoothstep((times[m] - seg.start) / BLEND_S)[:, None]
            if np.any(w < 1):
                prev = segment_dofs(schedule[i - 1], phase[m], times[m])
                cur = prev + w * (cur - prev)
        out[m] = cur
    return out


def _release_time(seg: Segment) -> float | None:
    kind = MOTION_KINDS[seg.motion]
    if seg.motion == "jump_shot":
        return seg.start + SHOT_RELEASE_U * kind.duration_s
    if seg.motion == "pass":
        return seg.start + PASS_RELEASE_U * kind.duration_s
    return None


def _hold(seg: Segment, pts: np.ndarray, yaw: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """(N, 3) ball centre while the holder has it, from the holder's points (N, NPTS, 3) world mm."""
    hand_side = "l" if seg.style["mirror"] else "r"
    hand, elbow = pts[:, P_[f"{hand_side}_hand"]], pts[:, P_[f"{hand_side}_elbow"]]
    fwd = np.stack([np.cos(yaw), np.sin(yaw), np.zeros_like(yaw)], -1)
    along = hand - elbow
    along /= np.linalg.norm(along, axis=-1, keepdims=True) + 1e-9
    if seg.motion == "dribble":
        ball = hand + fwd * 60.0
        bounce = np.abs(np.cos((2.0 * phase + np.pi / 2) / 2.0))  # 1 in the hand, 0 on the floor
        ball[:, 2] = BALL_RADIUS_MM + (hand[:, 2] - 1.3 * BALL_RADIUS_MM) * bounce
        return ball
    if seg.motion == "pass":
        mid = 0.5 * (pts[:, P_["l_hand"]] + pts[:, P_["r_hand"]])
        return mid + fwd * 50.0
    if seg.motion == "jump_shot":
        return hand + along * (BALL_RADIUS_MM + 15.0)
    return hand + along * (0.8 * BALL_RADIUS_MM)


def ball_track(schedule, seg_idx, times, pts, yaw, phase, step_of_time: Callable[[float], int]) -> np.ndarray:
    """(N, 3) ball centre (world mm) for the holder's schedule: in the hands, bounced while dribbling, ballistic
    after a shot or pass, and back in the hands over BALL_BLEND_S at the next primitive.

    Args:
        seg_idx, times, yaw, phase: (N,) per instant; pts: (N, NPTS, 3) holder points at those instants.
        step_of_time: row of ``times``/``pts`` nearest to a release time (the release instants are included).
    """

    def rule(i, m):
        seg = schedule[i]
        ball = _hold(seg, pts[m], yaw[m], phase[m])
        t_rel = _release_time(seg)
        if t_rel is not None:
            after = times[m] >= t_rel
            if np.any(after):
                r = step_of_time(t_rel)
                p0 = _hold(seg, pts[r:r + 1], yaw[r:r + 1], phase[r:r + 1])[0]
                vf, vu = (3500.0, 6000.0) if seg.motion == "jump_shot" else (8000.0, 800.0)
                v = np.array([math.cos(yaw[r]) * vf, math.sin(yaw[r]) * vf, vu])
                dt = times[m][after] - t_rel
                fly = p0[None] + v[None] * dt[:, None]
                fly[:, 2] -= 0.5 * GRAVITY_MM_S2 * dt**2
                low = fly[:, 2] < BALL_RADIUS_MM  # crude bounce
                fly[low, 2] = BALL_RADIUS_MM + 0.5 * (BALL_RADIUS_MM - fly[low, 2])
                ball[after] = fly
        return ball

    out = np.zeros((len(times), 3))
    for i in np.unique(seg_idx):
        m = seg_idx == i
        cur = rule(i, m)
        if i > 0:
            w = _smoothstep((times[m] - schedule[i].start) / BALL_BLEND_S)[:, None]
            if np.any(w < 1):
                cur = rule(i - 1, m) + w * (cur - rule(i - 1, m))
        out[m] = cur
    return out


# --------------------------------------------------------------------------------------------------------------
# One clip
# --------------------------------------------------------------------------------------------------------------

_GOLDEN = 0.6180339887498949


def clip_name(seed: int, index: int) -> str:
    return f"synth_{seed}_{index:04d}"


def clip_setup(config: SynthConfig, index: int) -> dict:
    """The per-clip choices that follow from the index alone: view, blur level, child or adult."""
    view = config.views[index % len(config.views)]
    blur = config.blur[(index // len(config.views)) % len(config.blur)]
    child = ((index + 0.5) * _GOLDEN) % 1.0 < config.child_fraction  # low-discrepancy: an even spread of children
    return {"view": view, "blur": blur, "child": bool(child)}


def image_id(index: int, frame: int) -> int:
    """PoseTrack 2018 image id ``1VVVVVVFFFF`` with the clip index as video number."""
    return 10000000000 + index * 10000 + frame


CATEGORIES = [{
    "supercategory": "person", "id": 1, "name": "person", "keypoints": list(POSETRACK.joints),
    "skeleton": [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
                 [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]],
}]
_EARS = [POSETRACK.index("left_ear"), POSETRACK.index("right_ear")]


def visibility_from_ids(ids: np.ndarray, uv: np.ndarray, in_frame: np.ndarray, radius: int) -> np.ndarray:
    """Per-joint visibility from the player-id buffer.

    Args:
        ids: (H, W) uint8, p + 1 where player p was drawn last.
        uv: (P, J, 2) pixel positions; in_frame: (P, J) bool.
        radius: neighbourhood half-size, px.

    Returns:
        (P, J) bool: in the frame and the player's own id within the (2r+1)^2 neighbourhood.
    """
    H, W = ids.shape
    padded = np.pad(ids, radius)
    u = np.clip(np.round(uv[..., 0]).astype(int), 0, W - 1) + radius
    v = np.clip(np.round(uv[..., 1]).astype(int), 0, H - 1) + radius
    pid = (np.arange(len(uv)) + 1)[:, None]
    seen = np.zeros(in_frame.shape, dtype=bool)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            seen |= padded[v + dy, u + dx] == pid
    return seen & in_frame


def clip_annotations(index: int, camera: Camera, joints_cam: np.ndarray, uv: np.ndarray, vis: np.ndarray,
                     body_scale: np.ndarray) -> list[dict]:
    """PoseTrack 2018 annotations of a clip, one per player and frame where the player's box overlaps the frame.

    ``bbox`` is the box of the 21 projected joints enlarged by ~120 mm (limb thickness), clipped to the frame.
    ``bbox_head`` follows PoseTrack's head boxes: about one head length (head_top to head_bottom, projected at
    the head's depth) wide (0.95x) and high (1.06x) around the middle of head_top and neck, grown to contain
    head_top, nose and neck, clipped to the frame.

    Args:
        joints_cam: (F, P, 21, 3) camera mm; uv: (F, P, 21, 2) px; vis: (F, P, 21) bool; body_scale: (P,).

    Returns:
        Annotation dicts in frame order, then track order (track_id = player index).
    """
    W, H, f = camera.width, camera.height, camera.focal
    z = joints_cam[..., 2]  # (F, P, 21)
    valid = np.all(z > NEAR_MM, axis=-1)  # (F, P)
    margin = f * 120.0 * body_scale[None, :] / np.median(np.maximum(z, NEAR_MM), axis=-1)  # (F, P) px
    x0 = np.maximum(uv[..., 0].min(-1) - margin, 0.0)
    y0 = np.maximum(uv[..., 1].min(-1) - margin, 0.0)
    x1 = np.minimum(uv[..., 0].max(-1) + margin, float(W))
    y1 = np.minimum(uv[..., 1].max(-1) + margin, float(H))
    keep = valid & (x1 - x0 > 1.0) & (y1 - y0 > 1.0)

    top, neck = joints_cam[..., SYNTH.index("head_top"), :], joints_cam[..., SYNTH.index("neck_base"), :]
    head_pts = joints_cam[..., [SYNTH.index("head_top"), SYNTH.index("neck_base"), SYNTH.index("nose")], :]
    safe = np.where(valid[..., None, None], head_pts, np.array([0.0, 0.0, 1000.0]))
    centre = project(camera.K, 0.5 * (safe[..., 0, :] + safe[..., 1, :]))  # (F, P, 2)
    length = f * np.linalg.norm(top - neck, axis=-1) / np.maximum(0.5 * (safe[..., 0, 2] + safe[..., 1, 2]), NEAR_MM)
    head_uv = project(camera.K, safe)  # (F, P, 3, 2)
    pad = 0.1 * length
    hx0 = np.clip(np.minimum(centre[..., 0] - 0.475 * length, head_uv[..., 0].min(-1) - pad), 0.0, W)
    hy0 = np.clip(np.minimum(centre[..., 1] - 0.53 * length, head_uv[..., 1].min(-1) - pad), 0.0, H)
    hx1 = np.clip(np.maximum(centre[..., 0] + 0.475 * length, head_uv[..., 0].max(-1) + pad), 0.0, W)
    hy1 = np.clip(np.maximum(centre[..., 1] + 0.53 * length, head_uv[..., 1].max(-1) + pad), 0.0, H)

    kp = convert(np.concatenate([uv, vis[..., None]], -1), "synth", "posetrack")  # (F, P, 17, 3)
    kp[..., _EARS, :] = 0.0
    kp[kp[..., 2] <= 0] = 0.0
    kp_xy = np.round(kp[..., :2], 2).tolist()
    kp_v = kp[..., 2].astype(int).tolist()
    n_kp = (kp[..., 2] > 0).sum(-1).tolist()
    bbox = np.round(np.stack([x0, y0, x1 - x0, y1 - y0], -1), 2).tolist()
    bbox_head = np.round(np.stack([hx0, hy0, np.maximum(hx1 - hx0, 0), np.maximum(hy1 - hy0, 0)], -1), 2).tolist()
    out = []
    for fr, p in zip(*np.nonzero(keep)):
        fr, p = int(fr), int(p)
        img_id = image_id(index, fr)
        keypoints = []
        for (x, y), v in zip(kp_xy[fr][p], kp_v[fr][p]):
            keypoints += [x, y, v]
        out.append({
            "bbox_head": bbox_head[fr][p],
            "keypoints": keypoints,
            "track_id": p,
            "image_id": img_id,
            "bbox": bbox[fr][p],
            "scores": [],
            "category_id": 1,
            "id": img_id * 100 + p,
            "iscrowd": False,
            "num_keypoints": n_kp[fr][p],
        })
    return out


def occlusion_level(hidden_fraction: float) -> str:
    """Clip occlusion level from the fraction of in-frame joints hidden by another player or the ball."""
    return "low" if hidden_fraction < 0.02 else "medium" if hidden_fraction < 0.06 else "high"


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An ``np.load``-able .npz with fixed zip timestamps, so that equal arrays give equal bytes
    (``np.savez`` stamps the current time)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            member = io.BytesIO()
            value = np.asarray(value)  # (np.ascontiguousarray would turn 0-d arrays such as fps into 1-d)
            np.lib.format.write_array(member, value if value.flags.c_contiguous else value.copy(), allow_pickle=False)
            zf.writestr(info, member.getvalue())
    _write_bytes_atomic(path, buf.getvalue())


def simulate_clip(config: SynthConfig, index: int) -> dict:
    """Everything about a clip except the pixels: camera, players, schedules, and the world points at every
    instant the renderer needs. Deterministic in (config.seed, index)."""
    setup = clip_setup(config, index)
    rng = np.random.default_rng([config.seed, index])
    W, H, F, fps = config.width, config.height, config.frames, float(config.fps)
    camera, target = sample_camera(setup["view"], rng, W, H)
    n = int(rng.integers(config.min_players, config.max_players + 1))
    players = sample_players(rng, n, setup["child"])
    dt = 1.0 / (fps * SUB)
    times = (np.arange(SUB * F) - SUB // 2) * dt  # fine grid; frame f is the instant SUB*f + SUB//2
    view_dir = target[:2] - camera.center[:2]
    axis = math.atan2(view_dir[1], view_dir[0]) if setup["view"] == "baseline" else None
    schedules = [sample_schedule(rng, config.motions, float(times[-1]) + 0.1, holder=(p == 0), axis=axis)
                 for p in range(n)]
    start = initial_positions(rng, camera, target, setup["view"], players.height_mm)
    root_xy, yaw, seg_idx = simulate_roots(rng, camera, target, schedules, start, players.height_mm, times, SUB,
                                           PLAY_MARGIN_X[setup["view"]])
    phase = np.stack([gait_phase(rng, schedules[p], seg_idx[:, p], times) for p in range(n)], 1)  # (N, P)

    centre = SUB * np.arange(F) + SUB // 2  # (F,)
    half = BLUR_SUBFRAMES[setup["blur"]] // 2
    render_steps = np.clip(centre[:, None] + np.arange(-half, half + 1)[None, :], 0, len(times) - 1)  # (F, S)
    releases = [_release_time(s) for s in schedules[0]]
    release_steps = [int(np.clip(round((t - times[0]) / dt), 0, len(times) - 1)) for t in releases if t is not None]
    steps = np.unique(np.concatenate([render_steps.ravel(), np.array(release_steps, dtype=int)]))
    dofs = np.stack([pose_track(schedules[p], seg_idx[steps, p], phase[steps, p], times[steps]) for p in range(n)], 1)
    pts = forward_kinematics(dofs, players.lengths, yaw[steps], root_xy[steps])  # (S_all, P, NPTS, 3)
    row_of = {int(s): i for i, s in enumerate(steps)}

    def step_of_time(t):
        return row_of[int(np.clip(round((t - times[0]) / dt), 0, len(times) - 1))]

    ball = ball_track(schedules[0], seg_idx[steps, 0], times[steps], pts[:, 0], yaw[steps, 0], phase[steps, 0],
                      step_of_time)
    motions_seen = {schedules[p][seg_idx[k, p]].motion for k in centre for p in range(n)}
    return {
        "setup": setup, "rng": rng, "camera": camera, "players": players, "schedules": schedules,
        "steps": steps, "row_of": row_of, "render_steps": render_steps, "centre": centre, "dofs": dofs,
        "points": pts, "ball": ball, "motions": [m for m in MOTIONS if m in motions_seen],
    }


def generate_clip(out_dir: str | Path, config: SynthConfig, index: int,
                  on_frame: Callable[[], None] | None = None) -> dict:
    """Simulate, render and write one clip; returns its manifest entry.

    Args:
        out_dir: the dataset folder (``videos/``, ``annotations/``, ``3d/`` are created inside).
        config: the dataset config.
        index: clip index, 0 <= index < config.clips (the video number in PoseTrack ids).
        on_frame: called after each rendered frame (progress bars).

    Returns:
        The clip's manifest entry: name, relative paths and ``meta``.
    """
    out = Path(out_dir)
    for sub in ("videos", "annotations", "3d"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    name = clip_name(config.seed, index)
    sim = simulate_clip(config, index)
    camera, players, setup = sim["camera"], sim["players"], sim["setup"]
    W, H, F = config.width, config.height, config.frames
    n = len(players.height_mm)

    background, look = render_background(sim["rng"], camera)
    renderer = Renderer(camera, players, look)
    pts_cam = camera.to_camera(sim["points"])  # (S_all, P, NPTS, 3)
    ball_cam = camera.to_camera(sim["ball"])  # (S_all, 3)
    radius = max(1, int(round(W / 320)))

    joints_cam = np.zeros((F, n, SYNTH.num_joints, 3))
    joints_2d = np.zeros((F, n, SYNTH.num_joints, 2))
    visibility = np.zeros((F, n, SYNTH.num_joints), dtype=np.uint8)
    in_frame_all = np.zeros((F, n, SYNTH.num_joints), dtype=bool)
    video_tmp = out / "videos" / f"{name}.tmp.mp4"
    writer = cv2.VideoWriter(str(video_tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(config.fps), (W, H))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write an mp4v video to {video_tmp} (is FFmpeg support built in?)")
    ids = np.zeros((H, W), np.uint8)
    frame = np.empty_like(background)
    acc = np.zeros(background.shape, np.float32)
    try:
        for f in range(F):
            steps = sim["render_steps"][f]
            centre = sim["centre"][f]
            acc[:] = 0.0
            for k in steps:
                row = sim["row_of"][int(k)]
                np.copyto(frame, background)
                if k == centre:
                    ids[:] = 0
                renderer.draw(frame, pts_cam[row], ball_cam[row], ids if k == centre else None)
                if len(steps) > 1:
                    acc += frame
            image = frame if len(steps) == 1 else (acc / len(steps) + 0.5).astype(np.uint8)
            writer.write(image)
            row = sim["row_of"][int(centre)]
            jc = pts_cam[row, :, : SYNTH.num_joints]  # (P, 21, 3)
            uv = project(camera.K, jc)
            inside = camera.inside(uv) & (jc[..., 2] > NEAR_MM)
            joints_cam[f], joints_2d[f], in_frame_all[f] = jc, uv, inside
            visibility[f] = visibility_from_ids(ids, uv, inside, radius)
            if on_frame is not None:
                on_frame()
    finally:
        writer.release()

    images = [{
        "is_labeled": True, "file_name": f"images/{name}/{f:06d}.jpg", "nframes": F, "frame_id": image_id(index, f),
        "vid_id": f"{index:06d}", "ignore_regions_y": [], "ignore_regions_x": [], "id": image_id(index, f),
        "width": W, "height": H,
    } for f in range(F)]
    annotations = clip_annotations(index, camera, joints_cam, joints_2d, visibility.astype(bool),
                                   players.lengths["body_scale"])
    doc = {"images": images, "annotations": annotations, "categories": CATEGORIES}
    hidden = in_frame_all & (visibility == 0)
    hidden_fraction = float(hidden.sum()) / max(int(in_frame_all.sum()), 1)

    save_npz(out / "3d" / f"{name}.npz", {
        "joints_cam": joints_cam.astype(np.float32),  # (F, P, 21, 3) camera mm, synth order
        "joints_2d": joints_2d.astype(np.float32),  # (F, P, 21, 2) px
        "visibility": visibility,  # (F, P, 21)
        "track_ids": np.arange(n, dtype=np.int64),
        "K": camera.K, "R": camera.R, "t": camera.t,
        "image_size": np.array([W, H], dtype=np.int64),
        "fps": np.array(float(config.fps)),
        "is_child": players.is_child.astype(bool),
        "height_mm": players.height_mm.astype(np.float32),
        "team": players.team.astype(np.int64),  # (P,) jersey colour group, 0/1
        "ball_cam": ball_cam[[sim["row_of"][int(c)] for c in sim["centre"]]].astype(np.float32),  # (F, 3) mm
    })
    _write_bytes_atomic(out / "annotations" / f"{name}.json", json.dumps(doc, separators=(",", ":")).encode())
    os.replace(video_tmp, out / "videos" / f"{name}.mp4")
    return {
        "name": name,
        "video": f"videos/{name}.mp4",
        "annotations": f"annotations/{name}.json",
        "points3d": f"3d/{name}.npz",
        "meta": {
            "view": setup["view"], "blur": setup["blur"], "occlusion": occlusion_level(hidden_fraction),
            "hidden_fraction": round(hidden_fraction, 4), "body": "child" if setup["child"] else "adult",
            "fps": float(config.fps), "frames": F, "width": W, "height": H, "num_players": n,
            "motions": sim["motions"],
        },
    }


# --------------------------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------------------------

MANIFEST_VERSION = 1


def load_manifest(path_or_dir: str | Path) -> dict:
    """Read a SynthCourt manifest (a ``manifest.json`` or its folder).

    Clip paths in it are relative to the manifest's folder, which is added as ``"root"`` (absolute path).

    Raises:
        DataError: missing file, not JSON, or not a SynthCourt manifest.
    """
    path = Path(path_or_dir)
    if path.is_dir():
        path = path / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(str(path), "", "no SynthCourt manifest here (run the generator first)") from None
    except json.JSONDecodeError as e:
        raise DataError(str(path), "", f"not valid JSON: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("dataset") != "synthcourt":
        raise DataError(str(path), "dataset", "expected 'synthcourt'")
    if manifest.get("version") != MANIFEST_VERSION:
        raise DataError(str(path), "version", f"expected {MANIFEST_VERSION}, got {manifest.get('version')!r}")
    manifest["root"] = str(path.parent.resolve())
    return manifest


def _complete(out: Path, manifest: dict) -> bool:
    return all((out / c[k]).is_file() for c in manifest.get("clips", []) for k in ("video", "annotations", "points3d"))


def _clip_worker(out_dir: str, config: SynthConfig, index: int) -> dict:
    cv2.setNumThreads(1)
    return generate_clip(out_dir, config, index)


def generate(out_dir: str | Path, config: SynthConfig, progress: bool = True, workers: int = 1) -> Path:
    """Write the clips and the manifest; returns the manifest path.

    Skips all work when ``out_dir/manifest.json`` exists with the same config and all its files; otherwise
    removes that manifest first, (re)writes every clip, deletes clip files of earlier runs that this config does
    not produce, and writes the manifest last, so an interrupted run never leaves a manifest pointing to missing
    or stale clips.

    Args:
        out_dir: dataset folder.
        config: what to generate.
        progress: show a tqdm progress bar over frames.
        workers: processes generating clips in parallel (spawned, one clip per task).
    """
    out = Path(out_dir)
    manifest_path = out / "manifest.json"
    wanted = config_dict(config)
    if manifest_path.exists():
        try:
            old = load_manifest(manifest_path)
            if old.get("config") == wanted and _complete(out, old):
                return manifest_path
        except DataError:
            pass
        manifest_path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=config.clips * config.frames, unit="frame", desc="SynthCourt", disable=not progress)
    entries: list[dict | None] = [None] * config.clips
    try:
        if workers <= 1:
            for i in range(config.clips):
                entries[i] = generate_clip(out, config, i, on_frame=lambda: bar.update(1))
        else:
            with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
                futures = {pool.submit(_clip_worker, str(out), config, i): i for i in range(config.clips)}
                for fut in as_completed(futures):
                    entries[futures[fut]] = fut.result()
                    bar.update(config.frames)
    finally:
        bar.close()

    keep = {Path(e[k]).name for e in entries for k in ("video", "annotations", "points3d")}
    for sub in ("videos", "annotations", "3d"):
        for stale in (out / sub).glob("synth_*"):
            if stale.name not in keep:
                stale.unlink()
    manifest = {"dataset": "synthcourt", "version": MANIFEST_VERSION, "config": wanted, "clips": entries}
    _write_bytes_atomic(manifest_path, json.dumps(manifest, indent=1).encode())
    return manifest_path
