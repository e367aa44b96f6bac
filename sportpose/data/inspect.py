"""``sportpose data inspect PATH``: what a dataset holds, in counts and in pictures.

PATH is a SynthCourt folder (it has ``manifest.json``; the manifest itself works too), or PoseTrack
annotations: one file, or a folder searched recursively for ``*.json`` (a dataset root such as
``../shared/fixtures/posetrack18``, or ``annotations/val``). The command writes to the output folder:

- ``summary.json``: videos, frames, labeled frames, person annotations, track ids, labeled joints per joint,
  ignore regions, and for SynthCourt the clip counts per metadata group (view, blur, occlusion, body);
  ``warnings``: boxes of zero area or negative size, and videos shorter than their annotations
  (:func:`~sportpose.data.formats.annotations.doubts`), also printed.
- ``contact_sheet.png``: frames spread over the videos with the ground truth drawn
  (`sportpose.viz.draw`): skeletons in side colours (person's left green, right orange,
  midline blue), person and head boxes and the track id in a colour per track, PoseTrack ignore regions
  shaded magenta. SynthCourt frames are decoded from the clips' videos; PoseTrack frames are the JPEGs named
  by each image's ``file_name``, relative to the dataset root (the first folder above the annotation file
  that holds the image).

Decisions where the spec is silent:

- In a folder, JSON files whose top level is not an object with ``images`` (2018) or ``annolist`` (2017),
  such as COCO detection results, are not annotations: they are skipped and listed in the summary. A file
  that is not valid JSON, or an annotation file with a bad field, is an error naming the file.
- A video found in several files (the merged ``test_posetrack18_val.json`` next to the per-video files) is
  counted once: deeper files are read first (``annotations/val/*.json`` before ``annotations/*.json``).
- "persons" counts person annotations (one per person and frame); "track ids" counts distinct
  (video, track id) pairs; a joint is labeled unless it is PoseTrack's ``0, 0, 0``.
- Frames with persons are preferred for the sheet; when the videos outnumber the tiles, videos are taken
  evenly spread over the dataset, one frame each; otherwise the frames are split over the videos.
- Default output: ``<PATH>/inspect/`` (``<folder of PATH>/inspect/`` for a file) where that folder is
  writable, else ``<runs>/inspect/<name>/``. "Writable" means the permission bits grant writing to someone:
  running as root, ``os.access`` alone would allow writing into read-only shared fixtures.
"""

from __future__ import annotations

import json
import os
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from sportpose.data.formats import VideoAnnotation, read_posetrack
from sportpose.data.formats.annotations import doubts
from sportpose.data.synthcourt import load_manifest
from sportpose.data.video import open_video, read_frames
from sportpose.errors import DataError
from sportpose.models.skeleton import POSETRACK
from sportpose.paths import runs_dir
from sportpose.viz import draw

META_GROUPS = ("view", "blur", "occlusion", "body")  # SynthCourt clip metadata shown as groups
SHEET_NAME = "contact_sheet.png"
SUMMARY_NAME = "summary.json"


@dataclass
class _Video:
    """One video of the dataset and where its pixels are."""

    annotation: VideoAnnotation
    video_file: Path | None = None  # SynthCourt: the clip's mp4
    image_root: Path | None = None  # PoseTrack: the folder ``file_name`` is relative to (None: no image found)
    meta: dict | None = None  # SynthCourt clip metadata


@dataclass
class _Dataset:
    kind: str  # synthcourt | posetrack
    path: Path
    files: int  # annotation files that contributed videos
    videos: list[_Video]
    skipped: list[str] = field(default_factory=list)  # notes on files or videos not counted


@dataclass
class InspectResult:
    summary: dict
    sheet: Path  # the contact sheet PNG
    summary_file: Path
    sheet_size: tuple[int, int]  # (width, height) pixels


def inspect_dataset(path: str | os.PathLike, out_dir: str | os.PathLike | None = None, frames: int = 12,
                    tile_width: int = 640, cols: int = 4) -> InspectResult:
    """Summarise a SynthCourt or PoseTrack dataset and write its contact sheet.

    Args:
        path: a SynthCourt folder or manifest, a PoseTrack annotation file, or a folder of them.
        out_dir: output folder (default: see the module docstring).
        frames: frames on the contact sheet (fewer when the dataset has fewer).
        tile_width: width of each frame on the sheet, pixels.
        cols: frames per row.

    Returns:
        The summary and the paths written.

    Raises:
        DataError: PATH missing, no annotations found, a bad file, an undecodable video, or a read-only
            output folder.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(str(path), "", "no such file or folder")
    if frames < 1:
        raise DataError(str(path), "--frames", f"expected at least 1 frame, got {frames}")
    out = Path(out_dir) if out_dir is not None else default_output_dir(path)
    if not _writable(out):
        raise DataError(str(out), "", "not a writable folder (read-only or a file); give another one with --out")
    dataset = load_dataset(path, exclude=out)
    summary = summarize(dataset)
    sheet = render_sheet(dataset, frames, tile_width, cols)
    out.mkdir(parents=True, exist_ok=True)
    sheet_path, summary_path = out / SHEET_NAME, out / SUMMARY_NAME
    draw.write_png(sheet_path, sheet)
    summary_path.write_text(json.dumps(summary, indent=1))
    return InspectResult(summary, sheet_path, summary_path, (sheet.shape[1], sheet.shape[0]))


# --------------------------------------------------------------------------------------------------------------
# Output folder


def _writable(folder: Path) -> bool:
    """The nearest existing folder at or above ``folder`` is writable by its permission bits and by us."""
    folder = folder.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    mode = folder.stat().st_mode
    return folder.is_dir() and bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)) and os.access(folder, os.W_OK)


def default_output_dir(path: Path) -> Path:
    """``<PATH>/inspect`` (``<folder of PATH>/inspect`` for a file) when writable, else ``<runs>/inspect/<name>``."""
    folder = path if path.is_dir() else path.parent
    if folder.is_dir() and _writable(folder):
        return folder / "inspect"
    name = path.resolve().name if path.is_dir() else path.stem
    return runs_dir() / "inspect" / name


# --------------------------------------------------------------------------------------------------------------
# Loading


def load_dataset(path: Path, exclude: Path | None = None) -> _Dataset:
    """The videos of a SynthCourt or PoseTrack PATH (see the module docstring); ``exclude``: a folder to skip
    (the output folder, which may lie inside PATH)."""
    if not path.exists():
        raise DataError(str(path), "", "no such file or folder")
    if path.name == "manifest.json" or (path.is_dir() and (path / "manifest.json").is_file()):
        return _load_synthcourt(path)
    return _load_posetrack(path, exclude)


def _load_synthcourt(path: Path) -> _Dataset:
    manifest = load_manifest(path)
    root = Path(manifest["root"])
    videos = []
    for clip in manifest["clips"]:
        (annotation,) = read_posetrack(root / clip["annotations"])  # one video per SynthCourt file
        videos.append(_Video(annotation, video_file=root / clip["video"], meta=clip["meta"]))
    return _Dataset("synthcourt", root, len(videos), videos)


def _annotation_layout(file: Path) -> str | None:
    """``2018``, ``2017``, or None for JSON that is not PoseTrack annotations. Raises DataError for bad JSON."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(str(file), "", f"not valid JSON ({' '.join(str(e).split())})") from None
    if isinstance(data, dict) and "images" in data:
        return "2018"
    if isinstance(data, dict) and "annolist" in data:
        return "2017"
    return None


def _load_posetrack(path: Path, exclude: Path | None) -> _Dataset:
    if path.is_file():
        files = [path]
    else:
        skip = exclude.resolve() if exclude is not None else None
        found = [f for f in path.rglob("*.json") if skip is None or skip not in f.resolve().parents]
        files = sorted(found, key=lambda f: (-len(f.relative_to(path).parts), str(f)))  # deeper files first
    dataset = _Dataset("posetrack", path, 0, [])
    seen: dict[str, Path] = {}
    for file in files:
        if path.is_dir() and _annotation_layout(file) is None:
            dataset.skipped.append(f"{file.relative_to(path)}: not PoseTrack annotations (no 'images' or 'annolist')")
            continue
        root = None
        repeated = []
        for video in read_posetrack(file):
            if video.name in seen:
                repeated.append(video.name)
                continue
            if file not in seen.values():
                dataset.files += 1
            seen[video.name] = file
            root = root or _image_root(file, video)
            dataset.videos.append(_Video(video, image_root=root))
        if repeated:
            sources = sorted({_rel(seen[name], path) for name in repeated})
            dataset.skipped.append(f"{_rel(file, path)}: {len(repeated)} videos already read from "
                                   f"{sources[0] if len(sources) == 1 else f'{len(sources)} other files'}")
    if not dataset.videos:
        raise DataError(str(path), "", "no PoseTrack annotations (*.json with 'images' or 'annolist') found")
    return dataset


def _rel(file: Path, root: Path) -> str:
    return str(file.relative_to(root)) if root.is_dir() else file.name


def _image_root(file: Path, video: VideoAnnotation) -> Path | None:
    """The first folder above ``file`` in which the video's first ``file_name`` exists."""
    if not video.frames:
        return None
    return next((d for d in file.resolve().parents if (d / video.frames[0].file_name).is_file()), None)


# --------------------------------------------------------------------------------------------------------------
# Counts


def summarize(dataset: _Dataset) -> dict:
    """Counts over the dataset (see the module docstring for what each means)."""
    joints = np.zeros(POSETRACK.num_joints, dtype=np.int64)
    frames = labeled = with_persons = persons = tracks = ignore = nframes = 0
    for v in dataset.videos:
        video = v.annotation
        nframes += video.nframes
        track_ids = set()
        for frame in video.frames:
            frames += 1
            labeled += frame.is_labeled
            with_persons += bool(frame.persons)
            ignore += len(frame.ignore_regions)
            for person in frame.persons:
                persons += 1
                track_ids.add(person.track_id)
                joints += _labeled(person.keypoints)
        tracks += len(track_ids)
    summary = {
        "kind": dataset.kind,
        "path": str(dataset.path),
        "files": dataset.files,
        "videos": len(dataset.videos),
        "frames": frames,  # frames listed in the annotations
        "video_frames": nframes,  # frames of the videos (PoseTrack annotates a part of them)
        "labeled_frames": labeled,
        "frames_with_persons": with_persons,
        "persons": persons,
        "track_ids": tracks,
        "ignore_regions": ignore,
        "joints_labeled": {name: int(n) for name, n in zip(POSETRACK.joints, joints)},
    }
    if dataset.kind == "synthcourt":
        summary["groups"] = {
            key: dict(sorted(Counter(str(v.meta.get(key)) for v in dataset.videos).items())) for key in META_GROUPS
        }
    warnings = [line for v in dataset.videos for line in doubts(v.annotation, _video_frames(v))]
    if warnings:
        summary["warnings"] = warnings
    if dataset.skipped:
        summary["skipped"] = dataset.skipped
    return summary


def _video_frames(v: _Video) -> int | None:
    """The frames a SynthCourt clip's video decodes to (None for PoseTrack's JPEG frames)."""
    return None if v.video_file is None else open_video(v.video_file).num_frames


def _labeled(keypoints: np.ndarray) -> np.ndarray:
    """(17,) bool: the joint is annotated (PoseTrack writes unlabeled joints as exactly 0, 0, 0)."""
    return ~(np.asarray(keypoints) == 0).all(axis=1)


def format_summary(summary: dict) -> str:
    """The summary as aligned text lines for the terminal."""
    lines = [
        f"{summary['kind']}: {summary['path']}",
        f"  videos {summary['videos']} (from {summary['files']} files), frames {summary['frames']} "
        f"(of {summary['video_frames']} in the videos), labeled {summary['labeled_frames']}, "
        f"with persons {summary['frames_with_persons']}",
        f"  persons {summary['persons']} (person-frame annotations), track ids {summary['track_ids']}, "
        f"ignore regions {summary['ignore_regions']}",
        "  joints labeled:",
    ]
    items = list(summary["joints_labeled"].items())
    width = max(len(name) for name, _ in items)
    for start in range(0, len(items), 4):
        lines.append("    " + "   ".join(f"{name:<{width}} {n:>6}" for name, n in items[start : start + 4]))
    for key, counts in summary.get("groups", {}).items():
        lines.append(f"  {key + ':':<10} " + ", ".join(f"{name} {n}" for name, n in counts.items()) + " clips")
    for note in summary.get("warnings", []):
        lines.append(f"  warning: {note}")
    for note in summary.get("skipped", []):
        lines.append(f"  skipped: {note}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------
# Contact sheet


def pick_frames(videos: list[_Video], n: int) -> list[tuple[int, list[int]]]:
    """Which frames go on the sheet: (video index, frame positions in ``annotation.frames``) pairs.

    Frames with persons are preferred (any frame where none has persons). With more videos than ``n``, ``n``
    videos evenly spread over the list give one frame each; otherwise ``n`` is split over the videos as
    evenly as their frames allow, each video's share evenly spread over its frames.
    """
    candidates = []
    for v in videos:
        frames = v.annotation.frames
        with_persons = [i for i, f in enumerate(frames) if f.persons]
        candidates.append(with_persons or list(range(len(frames))))
    order = [i for i in range(len(videos)) if candidates[i]]
    if len(order) > n:
        order = [order[int(round(k))] for k in np.linspace(0, len(order) - 1, n)]
    share = dict.fromkeys(order, 0)
    left = n
    while left > 0:
        grown = False
        for i in order:
            if left > 0 and share[i] < len(candidates[i]):
                share[i] += 1
                left -= 1
                grown = True
        if not grown:
            break
    picks = []
    for i in order:
        c, k = candidates[i], share[i]
        picks.append((i, [c[int((j + 0.5) * len(c) / k)] for j in range(k)]))
    return picks


def render_sheet(dataset: _Dataset, n: int, tile_width: int = 640, cols: int = 4) -> np.ndarray:
    """The contact sheet: ``n`` frames (or fewer) with their ground truth drawn, captioned. (H, W, 3) uint8 RGB."""
    tiles, captions = [], []
    for i, positions in pick_frames(dataset.videos, n):
        v = dataset.videos[i]
        frames = [v.annotation.frames[p] for p in positions]
        for frame, (image, found) in zip(frames, _frame_images(v, frames)):
            scale = tile_width / image.shape[1]
            tile = cv2.resize(image, (tile_width, int(round(image.shape[0] * scale))),
                              interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
            draw_ground_truth(tile, frame, scale)
            tiles.append(tile)
            captions.append(_caption(v, frame, found))
    if not tiles:
        raise DataError(str(dataset.path), "", "no frames to draw")
    draw.draw_legend(tiles[0])
    return draw.contact_sheet(tiles, cols=cols, captions=captions, tile_width=tile_width)


def draw_ground_truth(image: np.ndarray, frame, scale: float = 1.0) -> np.ndarray:
    """Draw a frame's annotations on ``image`` (the frame resized by ``scale``): ignore regions, boxes, head
    boxes, skeletons, then the track ids on top. In place; returns ``image``."""
    draw.shade_polygons(image, [poly * scale for poly in frame.ignore_regions])
    thin = max(1, draw.default_thickness(image) // 2)
    for person in frame.persons:
        colour = draw.track_colour(person.track_id)
        if person.bbox is not None:
            draw.draw_box(image, person.bbox * scale, colour, thickness=thin)
        if person.bbox_head is not None:
            draw.draw_box(image, person.bbox_head * scale, colour, thickness=1)
    for person in frame.persons:
        kp = np.asarray(person.keypoints, dtype=np.float64)
        xyv = np.concatenate([kp[:, :2] * scale, _labeled(kp)[:, None]], axis=1)  # (17, 3): draw every labeled joint
        draw.draw_skeleton(image, xyv, POSETRACK)
    for person in frame.persons:
        if person.bbox is not None:
            x, y = person.bbox[:2] * scale
            draw.draw_label(image, str(person.track_id), (x, y), background=draw.track_colour(person.track_id))
    return image


def _frame_images(v: _Video, frames: list) -> list[tuple[np.ndarray, bool]]:
    """RGB images of ``frames`` and whether each was found (a grey canvas stands in for a missing image)."""
    if v.video_file is not None:  # SynthCourt: decode the clip once, only these frames
        decoded = read_frames(open_video(v.video_file), [f.frame_index for f in frames])
        return [(decoded[f.frame_index], True) for f in frames]
    out = []
    for frame in frames:
        image = None
        if v.image_root is not None:
            bgr = cv2.imread(str(v.image_root / frame.file_name), cv2.IMREAD_COLOR)
            image = None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        out.append((image, True) if image is not None else (_blank_canvas(frame), False))
    return out


def _blank_canvas(frame) -> np.ndarray:
    """A grey image large enough for the frame's annotations (at least 640 x 360)."""
    extent = [np.array([640.0, 360.0])]
    for person in frame.persons:
        extent.append(person.keypoints[:, :2].max(axis=0))
        if person.bbox is not None:
            extent.append(person.bbox[:2] + person.bbox[2:])
    extent += [poly.max(axis=0) for poly in frame.ignore_regions if len(poly)]
    w, h = np.ceil(np.max(extent, axis=0)).astype(int)
    return np.full((h, w, 3), 96, np.uint8)


def _caption(v: _Video, frame, found: bool) -> str:
    parts = [f"{v.annotation.name} f{frame.frame_index}"]
    if v.meta is not None:
        parts.append(f"{v.meta.get('view')}, blur {v.meta.get('blur')}, occl. {v.meta.get('occlusion')}, {v.meta.get('body')}")
    parts.append(f"{len(frame.persons)} person{'' if len(frame.persons) == 1 else 's'}")
    if frame.ignore_regions:
        parts.append(f"{len(frame.ignore_regions)} ignore regions")
    if not found:
        parts.append("image not found")
    return " | ".join(parts)
