"""The Python API (``Inferencer``) against ``sportpose infer``'s files on a SynthCourt clip, smoothing along tracks,
and the H.264 overlay (decoded with PyAV's own ``h264`` decoder) in a folder made with the user's umask."""

from __future__ import annotations

import json
import os
import stat

import av
import numpy as np
import pytest

from sportpose.cli import main as cli
from sportpose.data.formats import read_posetrack18
from sportpose.errors import SpecError
from sportpose.inference.api import Inferencer

CLIP = "synth_5_0001"


def decode_h264(path) -> list[np.ndarray]:
    """Every frame of an mp4's video stream, decoded by a fresh ``h264`` decoder (not the container's choice)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoder = av.CodecContext.create("h264", "r")
        decoder.extradata = stream.codec_context.extradata
        # demux ends with an empty packet, which flushes the decoder
        return [f.to_ndarray(format="rgb24") for p in container.demux(stream) for f in decoder.decode(p)]


@pytest.fixture()
def clip_and_detections(tiny_synth, tmp_path, gt_detections):
    gt = tiny_synth / "annotations" / f"{CLIP}.json"
    return tiny_synth / "videos" / f"{CLIP}.mp4", gt_detections(gt, tmp_path / "dets.json"), gt


def test_the_api_yields_what_infer_writes(tiny_checkpoint, clip_and_detections, tmp_path, capsys):
    video, dets, gt = clip_and_detections
    out = tmp_path / "out"
    old = os.umask(0o022)
    try:
        code = cli.main(["infer", str(video), "--model", str(tiny_checkpoint), "--out", str(out), "--detections",
                         str(dets), "--smooth", "savgol", "--threads", "1", "--no-progress"])
    finally:
        os.umask(old)
    assert code == 0
    printed = capsys.readouterr().out
    assert "smoothing savgol" in printed and "px/frame²" in printed

    inferencer = Inferencer(str(tiny_checkpoint), detections=str(dets), smooth="savgol", threads=1)
    results = list(inferencer(str(video)))
    (written,) = read_posetrack18(out / f"{CLIP}.json")
    (truth,) = read_posetrack18(gt)
    assert [r.index for r in results] == list(range(16)) and len(written.frames) == 16
    for result, frame, true in zip(results, written.frames, truth.frames):
        assert result.video == CLIP and result.image.shape == (120, 160, 3)
        assert len(result.persons) == len(frame.persons) == len(true.persons)  # one pose per detection
        for mine, theirs, gt_person in zip(result.persons, frame.persons, true.persons):
            assert mine.track_id == theirs.track_id >= 0
            assert np.allclose(mine.box, theirs.bbox, atol=1e-3) and np.allclose(mine.box, gt_person.bbox, atol=1e-3)
            assert np.allclose(mine.keypoints, theirs.keypoints[:, :2], atol=1e-3)  # frame pixels, as written
            assert np.allclose(mine.scores, theirs.scores, atol=1e-6)
            assert mine.joints_3d is None

    summary = json.loads((out / "summary.json").read_text())
    accel = summary["smoothing"]["acceleration_error_px"]
    assert summary["smoothing"]["method"] == "savgol" and accel["triples"] > 0
    assert accel["smoothed"] < 0.7 * accel["raw"]  # the jitter of an untrained model's keypoints, smoothed
    raw = list(Inferencer(inferencer.loaded, detections=str(dets))(str(video)))
    moved = [np.abs(a.keypoints - b.keypoints).max() for r, s in zip(raw, results) for a, b in zip(r.persons, s.persons)]
    assert max(moved) > 0.5  # smoothing changed the keypoints

    # The overlay: H.264 (a browser plays it; OpenCV's mp4v it does not), every frame, in a folder of mode 755.
    with av.open(str(out / "overlay.mp4")) as container:
        ctx = container.streams.video[0].codec_context
        assert ctx.name == "h264" and ctx.pix_fmt == "yuv420p"
    frames = decode_h264(out / "overlay.mp4")
    assert len(frames) == 16 and frames[0].shape == (120, 160, 3)
    assert np.median(np.abs(frames[5].astype(int) - results[5].image.astype(int))) <= 4  # the frame, drawn on
    assert stat.S_IMODE(out.stat().st_mode) == 0o755


def test_bad_options_name_their_flag(tiny_checkpoint, tmp_path):
    with pytest.raises(SpecError, match="--smooth: expected one of oneeuro, savgol"):
        Inferencer(str(tiny_checkpoint), smooth="kalman")
    with pytest.raises(SpecError, match="--detector: give either"):
        Inferencer(str(tiny_checkpoint), detector="a.onnx", detections="d.json")
    with pytest.raises(Exception, match="missing.onnx: --detector: file not found"):
        Inferencer(str(tiny_checkpoint), detector=str(tmp_path / "missing.onnx"))
