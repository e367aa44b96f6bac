"""SynthCourt's body: the adult template, per-player bone lengths, degrees of freedom with their box limits, and
forward kinematics from joint angles to the 21 ``synth`` joints and the extra points the renderer uses."""

from __future__ import annotations

import numpy as np

from sportpose.models.skeleton import SYNTH


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

