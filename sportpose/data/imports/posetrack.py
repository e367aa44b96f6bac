"""PoseTrack 2018 and 2017 as downloaded: per-video annotation files over frame folders (SPEC §3.2b).

Layout read (the official releases)::

    ROOT/annotations/{train,val}/<video>.json       2018: COCO-like; 2017: ``annolist``
    ROOT/images/<split or source>/<video>/NNNNNN.jpg (2018: six digits from 0; 2017: eight digits from 1)

One clip per annotation file: its frame folder is the folder its images' ``file_name`` point to, under
``ROOT``; its split is the annotation file's folder (``train``, ``val``; official val stays val, and PoseTrack
has no labelled test split, so evaluate with ``evaluate.split: val``). PoseTrack 2017 files are converted to
the 2018 layout on import (``OUT/annotations/<split>/<video>.json``, the only files an import writes besides
the manifest); PoseTrack 2018 files are used where they are.

A file is skipped, with its path and reason in the manifest and on the console, when it cannot be parsed,
holds more than one video, has no labelled frame, points to no frame folder, or names a labelled frame whose
image is not in the folder. Unlabelled frames it lists but the folder lacks are counted in a note: the tubes
that would read them fail in the pipeline, which skips and reports that clip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from tqdm import tqdm

from sportpose.data.dataset import SPLITS
from sportpose.data.formats import VideoAnnotation, read_posetrack17, read_posetrack18, write_posetrack18
from sportpose.data.imports.manifest import ImportResult, fingerprint, is_current, read_import, write_manifest
from sportpose.data.video import FIRST_FRAME_NUMBER, scan_frame_folder
from sportpose.errors import DataError

Reader = Callable[[str], list[VideoAnnotation]]


def import_posetrack18(root: Path, out: Path, progress: bool = True) -> ImportResult:
    return _import(root, out, "posetrack18", read_posetrack18, convert=False, progress=progress)


def import_posetrack17(root: Path, out: Path, progress: bool = True) -> ImportResult:
    return _import(root, out, "posetrack17", read_posetrack17, convert=True, progress=progress)


def _import(root: Path, out: Path, dataset: str, read: Reader, convert: bool, progress: bool) -> ImportResult:
    root, out = root.resolve(), out.resolve()
    result = ImportResult(dataset, root, out / "manifest.json")
    folder = root / "annotations"
    if not folder.is_dir():
        raise DataError(str(folder), "", f"not found: a {dataset} ROOT holds annotations/<split>/*.json")
    files = sorted(folder.glob("*/*.json"))
    if not files:
        raise DataError(str(folder), "", "holds no annotations/<split>/*.json files")
    frame_dirs = sorted({d for d in (root / "images").glob("*/*") if d.is_dir()}) if (root / "images").is_dir() else []
    stamp = fingerprint(dataset, files + frame_dirs)
    if is_current(out, dataset, stamp):
        return read_import(out, result)
    for path in sorted(folder.glob("*.json")):
        result.skip(path, "not in a split folder (annotations/train|val/); not read as annotations (a person "
                          "detections file is given to a spec as data.boxes)")
    missing_unlabelled = 0
    for path in tqdm(files, unit="file", desc=f"import {dataset}", disable=not progress):
        try:
            videos = read(str(path))
        except DataError as e:
            result.skip(path, f"cannot be read: {e.field + ': ' if e.field else ''}{e.message}")
            continue
        except (OSError, ValueError) as e:
            result.skip(path, f"cannot be read: {e}")
            continue
        if len(videos) != 1:
            result.skip(path, f"holds {len(videos)} videos; expected one video per file")
            continue
        video = videos[0]
        clip, missing = _clip(root, out, path, video, convert, result)
        missing_unlabelled += missing
        if clip is not None:
            result.clips.append(clip)
    if missing_unlabelled:
        result.notes.append(f"{missing_unlabelled} unlabelled frames named in the annotations are not in their "
                            "frame folders; tubes that need them fail and the pipeline reports those clips")
    if not result.clips:
        raise DataError(str(root), "", f"no usable clip; {len(result.skipped)} files skipped, first: "
                                       f"{result.skipped[0]['path']}: {result.skipped[0]['reason']}"
                        if result.skipped else "no usable clip")
    write_manifest(result, stamp)
    return result


def _clip(root: Path, out: Path, path: Path, video: VideoAnnotation, convert: bool,
          result: ImportResult) -> tuple[dict | None, int]:
    """The manifest entry of one annotation file (None: skipped, with the reason recorded) and the number of
    unlabelled frames it names that its folder lacks."""
    labelled = [f for f in video.frames if f.is_labeled]
    if not labelled:
        result.skip(path, "no labelled frame")
        return None, 0
    frames = root / Path(labelled[0].file_name).parent
    if not frames.is_dir():
        result.skip(path, f"its frame folder {frames} does not exist (from file_name {labelled[0].file_name!r})")
        return None, 0
    try:
        numbers, digits, _ = scan_frame_folder(frames)
    except DataError as e:
        result.skip(path, f"frame folder {frames}: {e.message}")
        return None, 0
    present = set(numbers)
    first = FIRST_FRAME_NUMBER.get(digits, 0)
    absent = [f for f in labelled if f.frame_index + first not in present]
    if absent:
        result.skip(path, f"names {len(absent)} labelled frames not in {frames}, first "
                          f"{absent[0].file_name!r} (frame {absent[0].frame_index})")
        return None, 0
    missing = sum(1 for f in video.frames if not f.is_labeled and f.frame_index + first not in present)
    split = path.parent.name if path.parent.name in SPLITS else ""
    annotations = path
    if convert:
        annotations = out / "annotations" / (split or "unsplit") / f"{video.name}.json"
        annotations.parent.mkdir(parents=True, exist_ok=True)
        write_posetrack18(video, annotations, predictions=False)
    return {
        "name": video.name,
        "video": str(frames),
        "annotations": str(annotations),
        "split": split,
        "meta": {},
        "stats": {"labelled_frames": len(labelled), "people": sum(len(f.persons) for f in labelled),
                  "frames_on_disk": len(numbers), "source": str(path)},
    }, missing
