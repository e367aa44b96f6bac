"""SynthCourt's player rendering: body parts as shaded capsules, polygons and ellipses drawn in painter's order
over the parts of all players and the ball, a player-id buffer, and per-joint visibility read from it. Motion
blur (the average of sub-frame renders) is done by the clip writer."""

from __future__ import annotations

import math

import cv2
import numpy as np

from sportpose.data.camera import Camera, project
from sportpose.data.synthcourt.body import P_
from sportpose.data.synthcourt.motions import BALL_RADIUS_MM
from sportpose.data.synthcourt.scene import BALL_COLOUR, NEAR_MM, Players


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
        NP = len(PARTS)
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
