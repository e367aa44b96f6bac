"""``data import --transcode``: frame folders become short-GOP H.264 clips that the pipeline reads as it read
the folders; a folder with a hole stays a folder, noted."""

import json
import shutil
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from sportpose.data.dataset import load_clips
from sportpose.data.imports import run_import
from sportpose.data.imports.transcode import transcode_folder
from sportpose.data.tubes import cut_clip_columns
from sportpose.data.video import FrameFolderReader, open_video
from sportpose.errors import DataError
from sportpose.spec.data import DataSpec

H36M_FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "h36m"
POSETRACK = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "posetrack18"


def _folder(tmp_path: Path, n: int = 20) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (72, 97, 3)).astype(np.float32)  # an odd width: the encoder drops the last column
    base = cv2.GaussianBlur(noise, (0, 0), 3)  # picture-like: no detail finer than the 4:2:0 chroma grid
    base = cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    for i in range(n):
        frame = np.roll(base, 3 * i, axis=1)
        cv2.imwrite(str(folder / f"{i:06d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return folder


def test_a_folder_becomes_h264_with_a_keyframe_every_interval(tmp_path):
    folder = _folder(tmp_path)
    target = tmp_path / "out" / "clip.mp4"
    assert transcode_folder(folder, target, None, keyframe_interval=5) == 20
    with av.open(str(target)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264"
        keys = [i for i, p in enumerate(p for p in c.demux(stream) if p.size) if p.is_keyframe]
    assert keys == [0, 5, 10, 15]
    video, frames = open_video(target), FrameFolderReader(str(folder))
    assert video.num_frames == 20
    for i in (0, 7, 19):  # decoded frames match the JPEGs (crop of the odd column), seeking included
        a, b = video.read([i])[0].astype(float), frames.read([i])[0][:, :96].astype(float)
        assert a.shape == b.shape and np.abs(a - b).mean() < 6


def test_a_missing_frame_inside_the_span_is_named(tmp_path):
    folder = _folder(tmp_path, 6)
    (folder / "000003.jpg").unlink()
    with pytest.raises(DataError, match="000003.jpg"):
        transcode_folder(folder, tmp_path / "x.mp4", None, 4)
    assert not (tmp_path / "x.mp4").exists() and not list(tmp_path.glob(".x.mp4*"))


@pytest.mark.skipif(not H36M_FIXTURES.is_dir(), reason="the Human3.6M fixtures are absent")
def test_an_imported_dataset_is_read_from_the_transcoded_clips(tmp_path):
    out = tmp_path / "import"
    result = run_import("h36m", H36M_FIXTURES, out, progress=False, transcode=4)
    doc = json.loads((out / "manifest.json").read_text())
    assert all(c["video"].endswith(".mp4") and c["transcoded"]["keyframe_interval"] == 4 for c in doc["clips"])
    assert all(Path(c["frames_folder"]).is_dir() and "frames" not in c for c in doc["clips"])
    assert run_import("h36m", H36M_FIXTURES, out, progress=False, transcode=4).up_to_date
    assert len(result.clips) == 4
    data = DataSpec(source="manifest", root=str(out), joint_set="h36m", points3d=True, input_size=(64, 64),
                    window=3, tube_anchor="end", targets="all", flow="none", max_samples_per_clip=None)
    plain = tmp_path / "plain"
    run_import("h36m", H36M_FIXTURES, plain, progress=False)
    for video, folder in zip(load_clips(out, (1, 0, 0), 0), load_clips(plain, (1, 0, 0), 0)):
        a = cut_clip_columns({**video, "split": "val"}, data, seed=0)
        b = cut_clip_columns({**folder, "split": "val"}, data, seed=0)
        np.testing.assert_allclose(a["joints_3d"], b["joints_3d"])
        assert np.abs(a["tube"].astype(float) - b["tube"].astype(float)).mean() < 6


@pytest.mark.skipif(not POSETRACK.is_dir(), reason="the PoseTrack fixtures are absent")
def test_a_folder_with_a_hole_stays_a_folder_with_a_note(tmp_path):
    root = tmp_path / "pt18"
    (root / "annotations" / "val").mkdir(parents=True)
    shutil.copy(POSETRACK / "annotations" / "val" / "009473_mpii_test.json", root / "annotations" / "val")
    frames = root / "images" / "val" / "009473_mpii_test"
    frames.mkdir(parents=True)
    shutil.copy(POSETRACK / "images" / "val" / "009473_mpii_test" / "000000.jpg", frames)
    shutil.copy(frames / "000000.jpg", frames / "000002.jpg")  # frame 1 missing
    result = run_import("posetrack18", root, tmp_path / "out", progress=False, transcode=8)
    [clip] = result.clips
    assert clip["video"] == str(frames)
    assert any("not transcoded" in n and "000001.jpg" in n for n in result.notes)
