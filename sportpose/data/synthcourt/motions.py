"""SynthCourt's behaviour: motion primitives as DOF trajectories, per-segment style, players' schedules of
primitives, the blended transitions between them, and the ball's track through the holder's primitives."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sportpose.data.synthcourt.body import D_, DOFS, P_, clamp_dofs
from sportpose.spec.data import BALL_MOTIONS


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
# Poses over time, the ball
# --------------------------------------------------------------------------------------------------------------

GRAVITY_MM_S2 = 9810.0
BALL_RADIUS_MM = 120.0


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


def release_time(seg: Segment) -> float | None:
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
        t_rel = release_time(seg)
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

