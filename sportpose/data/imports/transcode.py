"""``data import ... --transcode``: an import's frame folders written as short-GOP H.264 clips (SPEC §3.2b).

Clusters whose storage is slow with many small files (network file systems, object stores) read one video per
clip faster than thousands of JPEGs. Each frame folder clip becomes ``OUT/videos/<split>/<clip>.mp4``: H.264
(libx264 through PyAV), ``yuv420p``, CRF :data:`CRF` (visually lossless for pose work), a keyframe every
``keyframe_interval`` frames and no B-frames, so that a tube's seek decodes at most that many frames. Frame i
of the video is frame i of the folder in the clip's own numbering (``frames: {first, step}``), so annotations
keep their indices; the manifest entry points at the video and keeps the folder as ``frames_folder``.

A folder that lacks a frame inside its span (PoseTrack folders sometimes miss unlabelled frames) or holds a
corrupt one cannot become a video frame for frame; that clip stays a frame folder and the import notes it
with the file at fault. Nothing is lost: the folder is read as before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import av
import numpy as np
from tqdm import tqdm

from sportpose.data.imports.manifest import ImportResult, write_manifest
from sportpose.data.video import FrameFolderReader
from sportpose.errors import DataError

CRF = 17
DEFAULT_KEYFRAME_INTERVAL = 8


def transcode_import(result: ImportResult, keyframe_interval: int = DEFAULT_KEYFRAME_INTERVAL,
                     progress: bool = True) -> ImportResult:
    """Transcode every frame-folder clip of ``result`` not yet transcoded at this interval; rewrite the manifest."""
    if keyframe_interval < 1:
        raise DataError("--keyframe-interval", "", f"must be a positive number of frames, got {keyframe_interval}")
    out = result.manifest.parent
    todo = [c for c in result.clips if Path(c["video"]).is_dir() or
            c.get("transcoded", {}).get("keyframe_interval") not in (None, keyframe_interval)]
    if not todo:
        return result
    for clip in tqdm(todo, unit="clip", desc="transcode", disable=not progress):
        folder = clip.get("frames_folder", clip["video"])
        target = out / "videos" / (clip["split"] or "unsplit") / f"{clip['name']}.mp4"
        try:
            frames = transcode_folder(folder, target, clip.get("frames"), keyframe_interval)
        except DataError as e:
            result.notes.append(f"{clip['name']}: kept as the frame folder {folder} (not transcoded: "
                                f"{e.path}: {e.message})")
            continue
        clip.update(video=str(target), frames_folder=folder,
                    transcoded={"keyframe_interval": keyframe_interval, "crf": CRF, "frames": frames})
        clip.pop("frames", None)  # the video's frame i is the folder's frame i
    result.up_to_date = False
    write_manifest(result, _stamp(result))
    return result


def _stamp(result: ImportResult) -> str:
    return json.loads(result.manifest.read_text())["fingerprint"]


def transcode_folder(folder: str | Path, target: Path, numbering: dict[str, Any] | None,
                     keyframe_interval: int) -> int:
    """Encode a frame folder as an H.264 video (written to a temporary name, then renamed); returns its frames.

    Raises:
        DataError: a frame inside the folder's span is missing or corrupt (naming the file).
    """
    reader = FrameFolderReader(str(folder), **(numbering or {}))
    width, height = reader.native
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part")
    try:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=int(round(reader.fps)))
            # yuv420p needs even sizes: an odd last column or row is dropped (no pixel coordinate moves)
            stream.width, stream.height = width - width % 2, height - height % 2
            stream.pix_fmt = "yuv420p"
            stream.codec_context.gop_size = keyframe_interval
            stream.codec_context.max_b_frames = 0
            stream.options = {"crf": str(CRF), "preset": "veryfast",
                              "x264-params": f"keyint={keyframe_interval}:min-keyint={keyframe_interval}:scenecut=0"}
            for i in range(reader.num_frames):
                [rgb] = reader.read([i])
                rgb = np.ascontiguousarray(rgb[: stream.height, : stream.width])
                for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return reader.num_frames
