"""Each kind of source ``sportpose infer`` reads (a folder of videos, a frame folder, an image, a stream URL, a video
written in parts), and the one-line errors of sources it cannot read."""

from __future__ import annotations

import functools
import http.server
import json
import threading

import cv2
import pytest

from sportpose.data.formats import read_posetrack18
from sportpose.errors import DataError
from sportpose.inference.api import Inferencer
from sportpose.inference.run import InferArgs, run_infer
from sportpose.inference.sources import open_sources

CLIP = "synth_5_0001"


@pytest.fixture(scope="module")
def inferencer(tiny_checkpoint):
    return Inferencer(str(tiny_checkpoint), threads=1)


def infer(source, out, model, **kw):
    return run_infer(InferArgs(source=str(source), model=str(model), out=str(out), progress=False, threads=1, **kw),
                     log=lambda _: None)


def test_a_folder_gives_one_output_folder_per_video_and_a_table(tiny_synth, tiny_checkpoint, tmp_path):
    gt = tiny_synth / "annotations" / f"{CLIP}.json"
    results = infer(tiny_synth / "videos", tmp_path / "out", tiny_checkpoint, gt=str(gt))
    assert [r.name for r in results] == ["synth_5_0000", CLIP] and not any(r.error for r in results)
    for r in results:
        assert sorted(p.name for p in r.out.iterdir()) == sorted(["overlay.mp4", f"{r.name}.json", "summary.json"])
    assert [r.ap is not None for r in results] == [False, True]  # the ground truth names one of the two videos
    assert results[0].tracking is None and results[1].tracking["videos"] == 1
    table = (tmp_path / "out" / "summary.md").read_text().splitlines()
    assert len(table) == 4 and table[2].startswith("| synth_5_0000 | 16 |") and table[3].startswith(f"| {CLIP} | 16 |")


def test_a_frame_folder_an_image_and_a_stream_url(tiny_synth, inferencer, tmp_path):
    cap = cv2.VideoCapture(str(tiny_synth / "videos" / f"{CLIP}.mp4"))
    folder = tmp_path / "frames" / CLIP
    folder.mkdir(parents=True)
    for i in range(6):
        ok, frame = cap.read()
        cv2.imwrite(str(folder / f"{i:06d}.jpg"), frame)
    (video,) = open_sources(folder)
    assert (video.kind, video.name, video.num_frames) == ("frames", CLIP, 6)
    results = list(inferencer(str(folder)))
    assert [r.index for r in results] == list(range(6)) and results[0].image.shape == (120, 160, 3)

    (image,) = open_sources(folder / "000003.jpg")
    assert (image.kind, image.num_frames) == ("image", 1)
    (one,) = list(inferencer(str(folder / "000003.jpg")))
    assert one.index == 0 and one.video == "000003"

    # A stream URL: the clip served over HTTP on 127.0.0.1, read by cv2.VideoCapture as it arrives.
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tiny_synth / "videos"))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{CLIP}.mp4"
        (live,) = open_sources(url)
        assert (live.kind, live.name, live.num_frames) == ("live", CLIP, None)
        streamed = list(inferencer(url))
    finally:
        server.shutdown()
    assert [r.index for r in streamed] == list(range(16))
    assert all(len(r.persons) == len(s.persons) for r, s in zip(streamed, inferencer(str(tiny_synth / "videos" /
                                                                                       f"{CLIP}.mp4"))))


def test_a_long_video_is_written_in_parts(tiny_synth, tiny_checkpoint, tmp_path, gt_detections):
    gt = tiny_synth / "annotations" / f"{CLIP}.json"
    dets = gt_detections(gt, tmp_path / "dets.json")
    (result,) = infer(tiny_synth / "videos" / f"{CLIP}.mp4", tmp_path / "out", tiny_checkpoint, detections=str(dets),
                      part_frames=6)  # PoseTrack's 10,000 frames a file, made small
    assert result.files["posetrack18"] == f"{CLIP}_part001.json, {CLIP}_part002.json, {CLIP}_part003.json"
    parts = [read_posetrack18(tmp_path / "out" / f"{CLIP}_part{p:03d}.json")[0] for p in (1, 2, 3)]
    assert [len(v.frames) for v in parts] == [6, 6, 4]
    base = read_posetrack18(gt)[0].frames[0].image_id
    assert [f.image_id for f in parts[1].frames] == [base + 10_000 + i for i in range(6)]  # the next video's ids
    assert [f.frame_index for f in parts[2].frames] == [0, 1, 2, 3]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["frames"] == 16 and summary["poses"] == sum(len(f.persons) for v in parts for f in v.frames)


def test_bad_sources_are_one_line_naming_the_path(tmp_path, tiny_checkpoint):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no video here")
    with pytest.raises(DataError, match=r"empty: source: holds no video file \(.mp4"):
        open_sources(empty)
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "team.jpg"), cv2.UMat(8, 8, cv2.CV_8UC3).get())
    with pytest.raises(DataError, match="its 1 images are not numbered frames"):
        open_sources(photos)
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    with pytest.raises(DataError, match="fake.mp4: video: cannot be decoded as a video"):
        open_sources(fake)
    with pytest.raises(DataError, match="missing.mp4: source: not found"):
        open_sources(tmp_path / "missing.mp4")
    with pytest.raises(DataError, match="rtsp://127.0.0.1:1/none: source: cannot be opened as a stream URL"):
        open_sources("rtsp://127.0.0.1:1/none")
    with pytest.raises(DataError, match="broken.jpg: frame: not a complete JPEG"):
        (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
        open_sources(tmp_path / "broken.jpg")
