"""One SynthCourt clip: the per-clip setup from its index, the simulation (camera, players, schedules, points at
every instant to render), rendering with motion blur, and the outputs: the mp4, the PoseTrack 2018 JSON and
the 3D npz."""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from sportpose.data.camera import Camera, project
from sportpose.data.formats.posetrack18 import posetrack_image_id
from sportpose.data.synthcourt.body import forward_kinematics
from sportpose.data.synthcourt.motions import ball_track, gait_phase, pose_track, release_time, sample_schedule
from sportpose.data.synthcourt.render import Renderer, visibility_from_ids
from sportpose.data.synthcourt.scene import (
    NEAR_MM,
    PLAY_MARGIN_X,
    initial_positions,
    render_background,
    sample_camera,
    sample_players,
    simulate_roots,
)
from sportpose.models.skeleton import POSETRACK, SYNTH, convert
from sportpose.spec.data import BLUR_SUBFRAMES, MOTIONS, SynthConfig

SUB = 5  # fine time steps per frame: motion blur averages 1, 3 or 5 of them around the frame's instant

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
    return posetrack_image_id(index, frame)


CATEGORIES = [{
    "supercategory": "person", "id": 1, "name": "person", "keypoints": list(POSETRACK.joints),
    "skeleton": [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
                 [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]],
}]
_EARS = [POSETRACK.index("left_ear"), POSETRACK.index("right_ear")]


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


def write_bytes_atomic(path: Path, data: bytes) -> None:
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
    write_bytes_atomic(path, buf.getvalue())


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
    releases = [release_time(s) for s in schedules[0]]
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
    write_bytes_atomic(out / "annotations" / f"{name}.json", json.dumps(doc, separators=(",", ":")).encode())
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

