"""What every importer writes: a manifest of clips over a dataset left where it is, with a report of every file
it could not use (SPEC §3.2b).

``DIR/manifest.json``::

    {"dataset": "posetrack18", "version": 1, "root": "/data/posetrack18", "fingerprint": "…",
     "clips": [{"name", "video", "annotations", "points3d", "split", "meta"}, …],
     "skipped": [{"path", "reason"}, …]}

``video`` is a video file or a frame folder (:class:`sportpose.data.video.FrameFolderReader`), ``annotations``
a PoseTrack 2018 file (the dataset's own, or one the importer converted into ``DIR/annotations/``); both are
absolute paths or relative to ``DIR``, as :func:`sportpose.data.dataset.load_clips` reads them. Media are
never copied. ``split`` is the dataset's own split; an empty split is assigned by video from the spec's
``data.splits`` (a user's own footage without split folders). The fingerprint covers every input file's
name, size and modification time: importing an unchanged ``ROOT`` again writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_VERSION = 1


@dataclass
class ImportResult:
    """What an import found: the clips it wrote, the files it skipped and why, and whether anything changed."""

    dataset: str
    root: Path
    manifest: Path
    clips: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    up_to_date: bool = False

    def skip(self, path: str | Path, reason: str) -> None:
        self.skipped.append({"path": str(path), "reason": reason})


def fingerprint(dataset: str, files: list[Path]) -> str:
    """Identifies an import's input: its kind and each file's path, size and modification time."""
    h = hashlib.sha256(f"{dataset}:{MANIFEST_VERSION}".encode())
    for f in sorted(files):
        st = f.stat()
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def is_current(out: Path, dataset: str, stamp: str) -> bool:
    """Whether ``out/manifest.json`` already holds this import (same kind, version and fingerprint)."""
    try:
        old = json.loads((out / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(old, dict) and (old.get("dataset"), old.get("version"), old.get("fingerprint")) == (
        dataset, MANIFEST_VERSION, stamp)


def read_import(out: Path, result: ImportResult) -> ImportResult:
    """Fill ``result`` from an existing manifest (an unchanged import)."""
    old = json.loads((out / "manifest.json").read_text())
    result.clips, result.skipped, result.notes = old["clips"], old.get("skipped", []), old.get("notes", [])
    result.up_to_date = True
    return result


def write_manifest(result: ImportResult, stamp: str) -> Path:
    """Write the manifest atomically (a reader never sees half of one); returns its path."""
    doc = {"dataset": result.dataset, "version": MANIFEST_VERSION, "root": str(result.root), "fingerprint": stamp,
           "clips": result.clips, "skipped": result.skipped, "notes": result.notes}
    out = result.manifest.parent
    out.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".manifest-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, result.manifest)
    return result.manifest


def summary(result: ImportResult) -> str:
    """A few lines for the console: clips per split, labelled frames and people, skipped files with reasons."""
    by_split: dict[str, int] = {}
    for clip in result.clips:
        by_split[clip["split"] or "(by data.splits)"] = by_split.get(clip["split"] or "(by data.splits)", 0) + 1
    labelled = sum(c.get("stats", {}).get("labelled_frames", 0) for c in result.clips)
    people = sum(c.get("stats", {}).get("people", 0) for c in result.clips)
    state = "up to date (nothing written)" if result.up_to_date else "written"
    lines = [f"{result.dataset}: {len(result.clips)} clips from {result.root} "
             f"({', '.join(f'{s} {n}' for s, n in sorted(by_split.items())) or 'none'}); {labelled} labelled frames, "
             f"{people} people; manifest {state}: {result.manifest}"]
    transcoded = [c for c in result.clips if c.get("transcoded")]
    if transcoded:
        lines.append(f"transcoded: {len(transcoded)} clips as H.264 in {result.manifest.parent / 'videos'} (a keyframe "
                     f"every {transcoded[0]['transcoded']['keyframe_interval']} frames)")
    lines += [f"note: {n}" for n in result.notes]
    if result.skipped:
        lines.append(f"skipped {len(result.skipped)} files:")
        lines += [f"  {s['path']}: {s['reason']}" for s in result.skipped]
    else:
        lines.append("skipped: none")
    return "\n".join(lines)
