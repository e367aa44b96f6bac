"""``sportpose data import KIND ROOT --out DIR``: a downloaded dataset becomes a manifest the pipeline trains
from, its media left where they are (SPEC §3.2b).

One module per source: :mod:`.posetrack` (PoseTrack 2018 and 2017 frame folders and per-video JSON),
:mod:`.h36m` (Human3.6M: MMPose's frame folders and annotation archives, or the videos with VideoPose3D's
3D), :mod:`.folder` (a user's own videos with PoseTrack 2018 labels of the same stem); what every import writes
is in :mod:`.manifest`. Train on an import with ``data.source: manifest`` and ``data.root: DIR``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sportpose.data.imports.folder import import_folder
from sportpose.data.imports.h36m import import_h36m
from sportpose.data.imports.manifest import ImportResult, summary
from sportpose.data.imports.posetrack import import_posetrack17, import_posetrack18
from sportpose.data.imports.transcode import transcode_import

IMPORTERS: dict[str, Callable[..., ImportResult]] = {
    "posetrack18": import_posetrack18,
    "posetrack17": import_posetrack17,
    "h36m": import_h36m,
    "folder": import_folder,
}


def run_import(kind: str, root: str | Path, out: str | Path, progress: bool = True,
               transcode: int | None = None) -> ImportResult:
    """Import ``root`` as ``kind`` into ``out`` (nothing is written when ``out`` already holds this import).

    Args:
        transcode: a keyframe interval: frame folders are written as H.264 clips with it (:mod:`.transcode`).

    Raises:
        DataError: ``root`` is not a dataset of that kind, or holds no usable clip.
    """
    result = IMPORTERS[kind](Path(root), Path(out), progress=progress)
    if transcode is not None:
        result = transcode_import(result, transcode, progress=progress)
    return result


__all__ = ["IMPORTERS", "ImportResult", "run_import", "summary"]
