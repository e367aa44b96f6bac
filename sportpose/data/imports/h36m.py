"""``sportpose data import h36m ROOT``: Human3.6M with images, for STSP-Net's image stages (SPEC §3.2b).

Two layouts of ``ROOT`` are read; an import takes whichever it finds (both: both):

- **MMPose frames** (what MMPose's ``preprocess_h36m.py`` writes): JPEG frames under
  ``[images/]S1/S1_Directions_1.54138969/S1_Directions_1.54138969_000001.jpg`` and annotation archives
  (``*.npz``, anywhere under ROOT) with one row per kept frame: ``imgname`` (the frame's path under ROOT or
  ``ROOT/images``), ``center`` (2,) and ``scale`` () of the person box (MMPose's ``scale`` is the box side /
  200 px), ``part`` (17, 3) pixels + visibility and ``S`` (17, 4) camera-frame metres + visibility. MMPose
  keeps every 5th video frame for training, every 64th for testing: the frame folder's numbering is recorded
  per clip (``frames: {"first", "step"}``, the step being the common divisor of the numbers the archives
  name), so tubes step over the kept frames.
- **Videos with VideoPose3D's files**: ``S*/Videos/<action>.<camera>.mp4`` with ``data_3d_h36m.npz``
  (``positions_3d[subject][action]``, world metres) anywhere under ROOT. The camera's extrinsics turn world
  joints into camera joints (``X_cam = R (X_world − T)``), its intrinsics and distortion give the 2D; where
  ``data_2d_h36m_gt.npz`` is present the projection is checked against it (cameras in Human3.6M's order
  54138969, 55011271, 58860488, 60457274). VideoPose3D's archives hold pickled dicts: read them only when
  they come from VideoPose3D's own scripts (:mod:`sportpose.data.formats.h36m`).

Cameras come from ``cameras.json`` under ROOT: ``{"S1/54138969": {"R", "T", "c", "f", "k", "p", "w",
"h"}}``, metres, the published Human3.6M calibration as MMPose stores it in ``cameras.pkl``. The pickle is
never read; convert it once with ``json.dump({k: {n: np.asarray(v).tolist() ...}})``. Without cameras the
MMPose layout imports with a note (projection unchecked), the video layout cannot.

Every clip (one subject, action and camera) gets, in ``OUT``:

- ``annotations/<split>/<clip>.json``: PoseTrack 2018 file structure (one person, track 0, per annotated
  frame; box from ``center``/``scale``; the PoseTrack joints Human3.6M has, converted from ``part``), which
  the pipeline reads for frames and boxes (the ``h36m`` samples read their 2D and 3D from the archive below);
- ``points3d/<split>/<clip>.npz``: ``joints_2d`` (F, 1, 17, 2) px, ``joints_cam`` (F, 1, 17, 3) camera mm,
  ``visibility``, ``track_ids`` and ``layout = "h36m"``; frames without annotation are NaN (never a target).

Decisions, where the dataset is silent:

- Splits by subject: S1, S5, S6, S7 train, S8 val, S9, S11 test (SPEC §3.2b's training subjects, with the
  last of them held out for validation as ``data.source: h36m`` does). Another subject is skipped and listed.
- ``meta.bone_lengths``: the subject's mean bone lengths (mm, ``skeleton.H36M.edges`` order) over every
  frame the import read of that subject. A training clip's lengths make its subject's group mean, L_skel's
  reference (:mod:`sportpose.data.bones`, with ``meta.subject`` the group); a held-out subject's are not used
  (its samples get the overall training mean).
- A projection more than :data:`MAX_PROJECTION_PX` from the 2D (``part`` or the 2D file) skips the clip:
  the camera or the joints are not the ones the frames show.
- A clip with an annotated frame missing on disk is skipped naming the first missing file.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from sportpose.data.formats import read_h36m_2d, read_h36m_3d
from sportpose.data.formats.annotations import FrameAnnotation, PersonAnnotation, VideoAnnotation
from sportpose.data.formats.posetrack18 import FRAMES_PER_VIDEO, posetrack_image_id, write_posetrack18
from sportpose.data.imports.manifest import ImportResult, fingerprint, is_current, read_import, write_manifest
from sportpose.data.video import open_video, probe_video, scan_frame_folder
from sportpose.errors import DataError
from sportpose.models.skeleton import H36M, convert

SUBJECT_SPLITS = {"S1": "train", "S5": "train", "S6": "train", "S7": "train", "S8": "val", "S9": "test",
                  "S11": "test"}
CAMERAS = ("54138969", "55011271", "58860488", "60457274")  # Human3.6M's camera order (VideoPose3D's index)
MAX_PROJECTION_PX = 2.0
FPS = 50.0  # Human3.6M's videos and mocap
MMPOSE_FIELDS = {"imgname": "(N,) frame paths", "center": "(N, 2) pixels", "scale": "(N,) box side / 200 px",
                 "part": "(N, 17, 3) pixels + visibility", "S": "(N, 17, 4) camera-frame metres + visibility"}
_FOLDER = re.compile(r"^(S\d+)_(.+)\.(\d{8})$")  # S1_Directions_1.54138969
_FRAME = re.compile(r"_(\d+)\.(jpg|jpeg|png)$", re.IGNORECASE)


def import_h36m(root: Path, out: Path, progress: bool = True) -> ImportResult:
    """Import Human3.6M (MMPose frame folders and/or videos with VideoPose3D's files) from ``root``."""
    root, out = root.resolve(), out.resolve()
    result = ImportResult("h36m", root, out / "manifest.json")
    if not root.is_dir():
        raise DataError(str(root), "", "not a folder")
    archives = sorted(p for p in root.rglob("*.npz") if not p.name.startswith(("data_3d_", "data_2d_")))
    data_3d = sorted(root.rglob("data_3d_h36m.npz"))
    videos = sorted(root.glob("S*/Videos/*.mp4"))
    camera_files = sorted(root.rglob("cameras.json"))
    if not archives and not (videos and data_3d):
        raise DataError(str(root), "", "no Human3.6M here: expected MMPose's annotation archives (*.npz with "
                                       "imgname/center/scale/part/S) beside frame folders, or S*/Videos/*.mp4 "
                                       "with VideoPose3D's data_3d_h36m.npz")
    frame_dirs = sorted({d for d in root.glob("*/*") if d.is_dir()} | {d for d in root.glob("images/*/*") if d.is_dir()})
    stamp = fingerprint("h36m", archives + data_3d + videos + camera_files + frame_dirs
                        + sorted(root.rglob("data_2d_h36m_gt.npz")))
    if is_current(out, "h36m", stamp):
        return read_import(out, result)
    cameras = _read_cameras(camera_files[0]) if camera_files else {}
    if not camera_files:
        result.notes.append("no cameras.json under ROOT: the MMPose layout's projection is not checked")
    lengths: dict[str, list[np.ndarray]] = defaultdict(list)  # subject -> per-frame bone lengths
    pending: list[tuple[dict[str, Any], str]] = []  # (clip, subject)
    numbers = itertools.count(1)  # clip numbers: the SSSSSS digits of the clips' image ids
    for path in tqdm(archives, unit="file", desc="import h36m frames", disable=not progress):
        pending += _mmpose_archive(root, out, path, cameras, lengths, result, numbers)
    if videos:
        pending += _videos(root, out, videos, data_3d, cameras, lengths, result, progress, numbers)
    means = {s: np.concatenate(v).mean(0) for s, v in lengths.items()}
    for clip, subject in pending:
        clip["meta"]["bone_lengths"] = [round(float(x), 2) for x in means[subject]]
        result.clips.append(clip)
    if not result.clips:
        first = result.skipped[0] if result.skipped else None
        raise DataError(str(root), "", f"no usable clip; {len(result.skipped)} files skipped"
                                       + (f", first: {first['path']}: {first['reason']}" if first else ""))
    write_manifest(result, stamp)
    return result


def _read_cameras(path: Path) -> dict[str, dict[str, np.ndarray]]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(str(path), "", f"not readable JSON ({e})") from None
    if not isinstance(doc, dict):
        raise DataError(str(path), "", "expected an object 'S1/54138969' -> camera parameters")
    out = {}
    for key, cam in doc.items():
        try:
            out[key] = {name: np.asarray(cam[name], np.float64).reshape(-1) if name not in ("R",)
                        else np.asarray(cam[name], np.float64).reshape(3, 3) for name in ("R", "T", "c", "f", "k", "p")}
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(str(path), key, f"expected R (3x3), T (3), c (2), f (2), k (3), p (2); {e}") from None
    return out


def project(cam: dict[str, np.ndarray], joints_cam: np.ndarray) -> np.ndarray:
    """Pixels of camera-frame points with Human3.6M's radial and tangential distortion (VideoPose3D's
    ``project_to_2d``).

    Args:
        joints_cam: (..., 3) camera coordinates, any unit (z > 0).

    Returns:
        (..., 2) pixels.
    """
    xy = joints_cam[..., :2] / joints_cam[..., 2:3]
    r2 = (xy**2).sum(-1, keepdims=True)
    k, p = cam["k"], cam["p"]
    radial = 1 + k[0] * r2 + k[1] * r2**2 + k[2] * r2**3
    tangential = (p * xy).sum(-1, keepdims=True)
    distorted = xy * (radial + tangential) + r2 * p[::-1]
    return distorted * cam["f"] + cam["c"]


def _bones(joints: np.ndarray) -> np.ndarray:
    a = [i for i, _ in H36M.edges]
    b = [j for _, j in H36M.edges]
    return np.linalg.norm(joints[:, a] - joints[:, b], axis=-1)  # (F, E)


def _mmpose_archive(root: Path, out: Path, path: Path, cameras: dict, lengths: dict, result: ImportResult,
                    counter: Iterator[int]) -> list[tuple[dict[str, Any], str]]:
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in MMPOSE_FIELDS if k not in z.files]
            if missing:
                result.skip(path, f"field {missing[0]} missing (expected {MMPOSE_FIELDS[missing[0]]}); the archive "
                                  f"holds {sorted(z.files)}")
                return []
            a = {k: z[k] for k in MMPOSE_FIELDS}
    except (OSError, ValueError) as e:  # not an archive, or object arrays (a pickle: never loaded)
        result.skip(path, f"cannot be read as MMPose's annotation archive: {str(e).splitlines()[0][:200]}")
        return []
    n = len(a["imgname"])
    shapes = {"center": (n, 2), "scale": (n,), "part": (n, 17, 3), "S": (n, 17, 4)}
    for key, shape in shapes.items():
        if a[key].shape != shape or not np.isfinite(a[key].astype(np.float64)).all():
            result.skip(path, f"field {key}: expected {MMPOSE_FIELDS[key]} finite, got shape {a[key].shape}")
            return []
    groups: dict[str, list[int]] = defaultdict(list)
    numbers = np.zeros(n, np.int64)
    for i, name in enumerate(a["imgname"]):
        m = _FRAME.search(str(name))
        if not m:
            result.skip(path, f"imgname[{i}] {name!r}: expected <folder>/<clip>_NNNNNN.jpg")
            return []
        numbers[i] = int(m.group(1))
        groups[str(Path(str(name)).parent)].append(i)
    step = math.gcd(*(int(x) for x in numbers - 1)) or 1  # MMPose numbers frames from 1, keeps every step-th
    clips = []
    for folder, rows in groups.items():
        clip = _mmpose_clip(root, out, path, folder, np.array(rows), numbers, step, a, cameras, result, counter)
        if clip is not None:
            clips.append(clip)
            lengths[clip[1]].append(_bones(a["S"][rows, :, :3] * 1000.0))
    return clips


def _mmpose_clip(root: Path, out: Path, path: Path, folder: str, rows: np.ndarray, numbers: np.ndarray, step: int,
                 a: dict[str, np.ndarray], cameras: dict, result: ImportResult,
                 counter: Iterator[int]) -> tuple[dict[str, Any], str] | None:
    where = f"{path} ({folder})"
    m = _FOLDER.match(Path(folder).name)
    if not m:
        result.skip(where, f"folder name {Path(folder).name!r}: expected <subject>_<action>.<camera>")
        return None
    subject, action, camera = m.group(1), m.group(2).replace("_", " "), m.group(3)
    split = SUBJECT_SPLITS.get(subject)
    if split is None:
        result.skip(where, f"subject {subject} is in no Human3.6M split (train S1 S5 S6 S7, val S8, test S9 S11)")
        return None
    frames = next((base / folder for base in (root, root / "images") if (base / folder).is_dir()), None)
    if frames is None:
        result.skip(where, f"its frame folder {folder} is neither under {root} nor under {root / 'images'}")
        return None
    try:
        on_disk = set(scan_frame_folder(frames)[0])
    except DataError:  # an empty folder: every annotated frame is missing
        on_disk = set()
    absent = [i for i in rows if numbers[i] not in on_disk]
    if absent:
        result.skip(where, f"{len(absent)} annotated frames are not on disk, first {root / str(a['imgname'][absent[0]])}")
        return None
    first = int(numbers[rows].min())
    index = (numbers[rows] - first) // step  # (N,) frame index in the clip
    if ((numbers[rows] - first) % step).any():
        step = 1
        index = numbers[rows] - first
    stats: dict[str, Any] = {"labelled_frames": len(rows), "people": len(rows), "frames_on_disk": len(on_disk),
                             "source": str(path)}
    cam = cameras.get(f"{subject}/{camera}")
    if cam is not None:
        error = float(np.abs(project(cam, a["S"][rows, :, :3]) - a["part"][rows, :, :2]).max())
        stats["projection_error_px"] = round(error, 3)
        if error > MAX_PROJECTION_PX:
            result.skip(where, f"S projected through cameras.json {subject}/{camera} lies {error:.1f} px from part "
                               f"(expected <= {MAX_PROJECTION_PX}): joints or camera do not match the frames")
            return None
    elif cameras:
        result.skip(where, f"cameras.json has no camera {subject}/{camera}")
        return None
    name = Path(folder).name
    num_frames = int(index.max()) + 1
    boxes = np.concatenate([a["center"][rows] - 100.0 * a["scale"][rows, None],
                            np.repeat(200.0 * a["scale"][rows, None], 2, axis=1)], axis=1)  # (N, 4) x, y, w, h
    if num_frames > FRAMES_PER_VIDEO:
        result.skip(where, f"{num_frames} frames; PoseTrack-style image ids hold at most {FRAMES_PER_VIDEO}")
        return None
    clip = _write_clip(out, next(counter), name, split, index, num_frames, a["part"][rows], a["S"][rows, :, :3] * 1000.0,
                       a["S"][rows, :, 3], boxes)
    clip.update(video=str(frames), frames={"first": first, "step": step}, stats=stats,
                meta={"subject": subject, "action": action, "camera": camera, "fps": FPS / step, "body": "adult"})
    return clip, subject


def _write_clip(out: Path, number: int, name: str, split: str, index: np.ndarray, num_frames: int, part: np.ndarray,
                joints_mm: np.ndarray, visible: np.ndarray, boxes: np.ndarray) -> dict[str, Any]:
    """Write a clip's annotation JSON and 3D archive; returns its manifest entry (without video and meta).

    Args:
        index: (N,) frame index of each annotated frame; part (N, 17, 3) px; joints_mm (N, 17, 3) camera mm;
            visible (N, 17); boxes (N, 4) x, y, w, h px.
    """
    frames = []
    for k, i in enumerate(index):
        kp = convert(np.concatenate([part[k, :, :2], (part[k, :, 2:3] > 0)], axis=1), "h36m", "posetrack")
        kp = np.nan_to_num(kp, nan=0.0).astype(np.float32)  # (17, 3) the PoseTrack joints Human3.6M has
        frames.append(FrameAnnotation(image_id=posetrack_image_id(number, int(i)), file_name=f"{name}/{int(i):06d}.jpg",
                                      frame_index=int(i), is_labeled=True, ignore_regions=[],
                                      persons=[PersonAnnotation(track_id=0, keypoints=kp, bbox=boxes[k].astype(np.float32),
                                                                bbox_head=None)]))
    annotations = out / "annotations" / split / f"{name}.json"
    write_posetrack18(VideoAnnotation(name=name, path=str(annotations), nframes=num_frames, frames=frames,
                                      categories=[]), annotations, predictions=False)
    j2d = np.full((num_frames, 1, 17, 2), np.nan, np.float32)
    j3d = np.full((num_frames, 1, 17, 3), np.nan, np.float32)
    vis = np.zeros((num_frames, 1, 17), np.float32)
    j2d[index, 0], j3d[index, 0], vis[index, 0] = part[:, :, :2], joints_mm, visible
    points3d = out / "points3d" / split / f"{name}.npz"
    points3d.parent.mkdir(parents=True, exist_ok=True)
    np.savez(points3d, joints_2d=j2d, joints_cam=j3d, visibility=vis, track_ids=np.zeros(1, np.int64),
             layout=np.array("h36m"))
    return {"name": name, "annotations": str(annotations), "points3d": str(points3d), "split": split}


def _videos(root: Path, out: Path, videos: list[Path], data_3d: list[Path], cameras: dict, lengths: dict,
            result: ImportResult, progress: bool, counter: Iterator[int]) -> list[tuple[dict[str, Any], str]]:
    if not data_3d:
        result.skip(videos[0].parent, "videos without data_3d_h36m.npz (VideoPose3D's 3D joints) under ROOT")
        return []
    if not cameras:
        raise DataError(str(root), "cameras.json", "the video layout needs the cameras' extrinsics: put "
                                                   "cameras.json (module doc) under ROOT")
    positions = read_h36m_3d(data_3d[0])  # subject -> action -> (F, 17, 3) world mm
    gt_2d = sorted(root.rglob("data_2d_h36m_gt.npz"))
    positions_2d = read_h36m_2d(gt_2d[0])[0] if gt_2d else None
    if positions_2d is None:
        result.notes.append("no data_2d_h36m_gt.npz under ROOT: video projections are checked only for lying "
                            "inside the frame")
    clips = []
    for video in tqdm(videos, unit="video", desc="import h36m videos", disable=not progress):
        subject = video.parent.parent.name
        action, _, camera = video.stem.rpartition(".")
        split = SUBJECT_SPLITS.get(subject)
        if split is None or camera not in CAMERAS:
            result.skip(video, f"subject {subject} in no split or camera {camera!r} not one of {CAMERAS}")
            continue
        world = positions.get(subject, {}).get(action)
        cam = cameras.get(f"{subject}/{camera}")
        if world is None or cam is None:
            result.skip(video, f"no 3D joints positions_3d[{subject}][{action}] in {data_3d[0]}" if world is None
                        else f"cameras.json has no camera {subject}/{camera}")
            continue
        try:
            reader = open_video(video)
        except DataError as e:
            result.skip(video, f"cannot be decoded: {e.message}")
            continue
        frames = min(len(world), reader.num_frames)
        if frames > FRAMES_PER_VIDEO:
            result.skip(video, f"{frames} frames; PoseTrack-style image ids hold at most {FRAMES_PER_VIDEO}")
            continue
        joints_cam = (world[:frames] / 1000.0 - cam["T"]) @ cam["R"].T * 1000.0  # (F, 17, 3) camera mm
        part = project(cam, joints_cam)  # (F, 17, 2) px
        width, _ = probe_video(video)
        if positions_2d is not None:
            reference = positions_2d.get(subject, {}).get(action)
            if reference is None:
                result.skip(video, f"no 2D positions_2d[{subject}][{action}] in {gt_2d[0]} to check the camera")
                continue
            error = float(np.abs(part - reference[CAMERAS.index(camera)][:frames]).max())
            if error > MAX_PROJECTION_PX:
                result.skip(video, f"positions_3d projected through cameras.json {subject}/{camera} lies {error:.1f} "
                                   f"px from {gt_2d[0].name} (expected <= {MAX_PROJECTION_PX})")
                continue
        elif not ((part >= -width) & (part <= 2 * width)).all():
            result.skip(video, f"positions_3d projected through {subject}/{camera} falls far outside the frame")
            continue
        lo, hi = part.min(1), part.max(1)  # (F, 2)
        side = (hi - lo).max(1, keepdims=True)  # (F, 1)
        boxes = np.concatenate([(lo + hi) / 2 - side / 2, side, side], axis=1)
        index = np.arange(frames)
        name = f"{subject}_{action.replace(' ', '_')}.{camera}"
        clip = _write_clip(out, next(counter), name, split, index, frames, np.concatenate([part, np.ones((frames, 17, 1))], 2),
                           joints_cam, np.ones((frames, 17)), boxes)
        clip.update(video=str(video), stats={"labelled_frames": frames, "people": frames, "frames_on_disk": frames,
                                             "source": str(data_3d[0])},
                    meta={"subject": subject, "action": action, "camera": camera, "fps": FPS, "body": "adult"})
        clips.append((clip, subject))
        lengths[subject].append(_bones(joints_cam))
    return clips
