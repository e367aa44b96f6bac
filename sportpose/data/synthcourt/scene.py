"""SynthCourt's scene: cameras of the three view groups, the play area and the players' root trajectories in
it, the players' looks (teams, skin, hair, shoes), and the static background (stands and crowd, billboards, the
court floor and its lines, lighting)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from sportpose.data.camera import Camera, clip_polygon_near, clip_polyline_near, intrinsics, look_at, project
from sportpose.data.synthcourt.body import ADULT_HEIGHT_MM, body_lengths, standing_height
from sportpose.data.synthcourt.motions import MOTION_KINDS, Segment
from sportpose.spec.data import VIEWS


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

