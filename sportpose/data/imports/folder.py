"""A user's own footage: one video per clip, labelled by a PoseTrack 2018 file of the same stem (SPEC §3.2b).

Layout read::

    ROOT/[train|val|test/]<clip>.mp4      any of VIDEO_EXTENSIONS
    ROOT/[train|val|test/]<clip>.json     optional: PoseTrack 2018 annotations of that video

Videos in ``train``/``val``/``test`` subfolders keep that split; videos directly in ``ROOT`` get an empty split,
which the spec's ``data.splits`` assigns by video. A video without annotations is listed as skipped for
training (``sportpose infer`` reads it as it is); an annotation file that cannot be read, or holds frames
beyond the video, is skipped with its reason.
"""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from sportpose.data.dataset import SPLITS
from sportpose.data.formats import read_posetrack18
from sportpose.data.imports.manifest import ImportResult, fingerprint, is_current, read_import, write_manifest
from sportpose.data.video import open_video
from sportpose.errors import DataError

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


def import_folder(root: Path, out: Path, progress: bool = True) -> ImportResult:
    root, out = root.resolve(), out.resolve()
    result = ImportResult("folder", root, out / "manifest.json")
    if not root.is_dir():
        raise DataError(str(root), "", "not a folder of videos")
    videos = sorted(p for p in [*root.glob("*"), *(q for s in SPLITS for q in (root / s).glob("*"))]
                    if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
    if not videos:
        raise DataError(str(root), "", f"holds no videos ({', '.join(VIDEO_EXTENSIONS)}), directly or in "
                                       f"{'/'.join(SPLITS)} subfolders")
    labels = [v.with_suffix(".json") for v in videos if v.with_suffix(".json").is_file()]
    stamp = fingerprint("folder", videos + labels)
    if is_current(out, "folder", stamp):
        return read_import(out, result)
    names: set[str] = set()
    for path in tqdm(videos, unit="video", desc="import folder", disable=not progress):
        label = path.with_suffix(".json")
        if not label.is_file():
            result.skip(path, f"no annotations ({label.name}): usable by `sportpose infer`, not for training")
            continue
        if path.stem in names:
            result.skip(path, f"a second video named {path.stem!r}; clip names must be unique")
            continue
        try:
            annotated = read_posetrack18(str(label))
            if len(annotated) != 1:
                raise DataError(str(label), "images", f"expected one video per file, found {len(annotated)}")
            reader = open_video(path)
            last = max(f.frame_index for f in annotated[0].frames)
            if last >= reader.num_frames:
                raise DataError(str(label), "images", f"annotates frame {last}, beyond the video's "
                                                      f"{reader.num_frames} frames")
        except DataError as e:
            result.skip(e.path, f"{e.field + ': ' if e.field else ''}{e.message}")
            continue
        labelled = [f for f in annotated[0].frames if f.is_labeled]
        names.add(path.stem)
        result.clips.append({
            "name": path.stem, "video": str(path), "annotations": str(label),
            "split": path.parent.name if path.parent != root and path.parent.name in SPLITS else "", "meta": {},
            "stats": {"labelled_frames": len(labelled), "people": sum(len(f.persons) for f in labelled),
                      "frames_on_disk": reader.num_frames, "source": str(label)},
        })
    if not result.clips:
        raise DataError(str(root), "", f"no labelled video; {len(result.skipped)} skipped, first: "
                                       f"{result.skipped[0]['path']}: {result.skipped[0]['reason']}")
    write_manifest(result, stamp)
    return result
