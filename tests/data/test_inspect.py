"""``sportpose data inspect``: counts checked against the files, contact sheets with the ground truth drawn, the
default output folder (never the shared fixtures), and bad input."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from sportpose.paths import REPO
from sportpose.errors import DataError
from sportpose.models.skeleton import POSETRACK
from sportpose.data import inspect as data_inspect
from sportpose.data.formats import FrameAnnotation, VideoAnnotation, read_posetrack18
from sportpose.data.synthcourt import generate
from sportpose.spec.data import SynthConfig
from sportpose.viz import draw

FIXTURES = REPO.parent / "shared" / "fixtures" / "posetrack18"
needs_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason=f"PoseTrack 2018 fixtures not found at {FIXTURES} (../shared/fixtures/posetrack18)"
)
VAL = FIXTURES / "annotations" / "val"

CONFIG = SynthConfig(clips=3, frames=6, width=160, height=120, min_players=2, max_players=4,
                     views=("sideline", "baseline", "high_angle"), blur=("none", "low"), child_fraction=0.5, seed=5)


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthcourt")
    generate(out, CONFIG, progress=False)
    return out


def tree(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


def test_synthcourt_counts_match_the_files(synth_dir):
    summary = data_inspect.summarize(data_inspect.load_dataset(synth_dir))
    manifest = json.loads((synth_dir / "manifest.json").read_text())
    docs = [json.loads((synth_dir / c["annotations"]).read_text()) for c in manifest["clips"]]
    anns = [a for d in docs for a in d["annotations"]]
    assert summary["kind"] == "synthcourt" and summary["videos"] == summary["files"] == 3
    assert summary["frames"] == summary["labeled_frames"] == summary["video_frames"] == 18
    assert summary["persons"] == len(anns)
    assert summary["track_ids"] == sum(len({a["track_id"] for a in d["annotations"]}) for d in docs)
    v = np.array([a["keypoints"][2::3] for a in anns])  # (N, 17)
    assert list(summary["joints_labeled"].values()) == (v > 0).sum(0).tolist()
    assert summary["joints_labeled"]["left_ear"] == 0  # never labeled, as in PoseTrack
    for key in ("view", "blur", "occlusion", "body"):
        assert summary["groups"][key] == dict(Counter(c["meta"][key] for c in manifest["clips"]))
    assert summary["groups"]["view"] == {"baseline": 1, "high_angle": 1, "sideline": 1}
    text = data_inspect.format_summary(summary)
    assert "videos 3" in text and f"persons {len(anns)}" in text and "view:" in text and "body:" in text


def test_synthcourt_contact_sheet(synth_dir, tmp_path):
    result = data_inspect.inspect_dataset(synth_dir, tmp_path / "out", frames=4, tile_width=200, cols=2)
    sheet = cv2.imread(str(result.sheet))
    assert sheet is not None and (sheet.shape[1], sheet.shape[0]) == result.sheet_size
    assert sheet.shape[1] == 4 + 2 * (200 + 4)  # two columns
    assert sheet.shape[0] > 4 + 2 * 150  # two rows of 200 x 150 tiles with captions
    assert json.loads(result.summary_file.read_text()) == result.summary
    # default output: inside the (writable) dataset folder
    assert data_inspect.default_output_dir(synth_dir) == synth_dir / "inspect"
    assert data_inspect.default_output_dir(synth_dir / "manifest.json") == synth_dir / "inspect"


def test_ground_truth_drawn_on_the_people(synth_dir):
    """Each labeled joint is drawn at its annotated position in its side colour; boxes in the track colour."""
    (video,) = read_posetrack18(synth_dir / "annotations" / "synth_5_0000.json")
    frame = video.frames[3]
    person = frame.persons[0]
    frame = FrameAnnotation(frame.image_id, frame.file_name, frame.frame_index, True, [person], [])
    scale = 3.0
    image = data_inspect.draw_ground_truth(np.zeros((360, 480, 3), np.uint8), frame, scale)
    kp = person.keypoints
    drawn = 0
    for j in np.flatnonzero(kp[:, 2] > 0):
        x, y = np.round(kp[j, :2] * scale).astype(int)
        if 0 <= x < 480 and 0 <= y < 360 and not np.any(np.linalg.norm(kp[:j, :2] - kp[j, :2], axis=1) < 3):
            assert tuple(image[y, x]) == draw.SIDE_COLOURS[draw.joint_side(POSETRACK.joints[j])], POSETRACK.joints[j]
            drawn += 1
    assert drawn >= 8
    x, y, w, h = np.round(person.bbox * scale).astype(int)
    bottom = image[min(y + h, 359), x + w // 2]
    assert tuple(bottom) == draw.track_colour(person.track_id)


def test_pick_frames_spreads_over_videos():
    def video(name, n, with_persons):
        frames = [FrameAnnotation(i, f"{name}/{i}.jpg", i, True, [object()] if i in with_persons else [], [])
                  for i in range(n)]
        return data_inspect._Video(VideoAnnotation(name, "", n, frames, []))

    videos = [video("a", 10, range(10)), video("b", 4, {1, 2}), video("c", 3, set())]
    picks = dict(data_inspect.pick_frames(videos, 6))
    assert picks[1] == [1, 2]  # frames with persons only
    assert len(picks[0]) + len(picks[1]) + len(picks[2]) == 6 and picks[2]  # every video shows
    assert picks[0] == sorted(set(picks[0]))
    many = [video(str(i), 2, {0, 1}) for i in range(20)]
    picks = data_inspect.pick_frames(many, 4)
    assert [i for i, _ in picks] == [0, 6, 13, 19] and all(len(p) == 1 for _, p in picks)


@needs_fixtures
def test_posetrack_fixture_counts_and_sheet(tmp_path, monkeypatch):
    monkeypatch.setenv("SPORTPOSE_RUNS", str(tmp_path / "runs"))
    before = tree(FIXTURES)
    out = data_inspect.default_output_dir(FIXTURES)
    assert out == tmp_path / "runs" / "inspect" / "posetrack18"  # read-only fixtures: never written into
    result = data_inspect.inspect_dataset(FIXTURES, tile_width=480)
    assert result.sheet == out / "contact_sheet.png" and tree(FIXTURES) == before
    s = result.summary
    videos = [v for f in sorted(VAL.glob("*.json")) for v in read_posetrack18(f)]
    persons = [p for v in videos for f in v.frames for p in f.persons]
    assert (s["videos"], s["frames"], s["labeled_frames"], s["persons"], s["track_ids"]) == (3, 3, 3, 14, 14)
    assert s["files"] == 3  # the per-video files; the merged file adds no video
    assert s["video_frames"] == sum(v.nframes for v in videos)
    assert s["ignore_regions"] == sum(len(f.ignore_regions) for v in videos for f in v.frames) == 15
    labeled = sum((~(p.keypoints == 0).all(1)).astype(int) for p in persons)
    assert list(s["joints_labeled"].values()) == labeled.tolist()
    assert any("human_detections.json" in n for n in s["skipped"])  # COCO detections: not annotations
    assert any("test_posetrack18_val.json: 3 videos already read" in n for n in s["skipped"])  # merged file
    sheet = cv2.imread(str(result.sheet))
    assert (sheet.shape[1], sheet.shape[0]) == result.sheet_size == (4 + 3 * 484, sheet.shape[0])


@needs_fixtures
def test_posetrack_single_file_finds_images_and_draws_ignore_regions():
    dataset = data_inspect.load_dataset(VAL / "009473_mpii_test.json")
    (v,) = dataset.videos
    assert v.image_root == FIXTURES.resolve()  # file_name is relative to the dataset root
    frame = v.annotation.frames[0]
    ((image, found),) = data_inspect._frame_images(v, [frame])
    assert found and image.shape == (1080, 1920, 3)
    drawn = data_inspect.draw_ground_truth(image.copy(), frame)
    inside = np.round(frame.ignore_regions[0].mean(axis=0)).astype(int)  # a point inside the (convex-ish) region
    assert (drawn != image).any() and drawn[inside[1], inside[0], 0] > 0


def test_missing_images_give_a_grey_canvas(tmp_path):
    kp = np.zeros((17, 3))
    kp[0] = (700, 500, 1)
    doc = {"images": [{"id": 10000010000, "file_name": "images/val/000001_x/000000.jpg"}],
           "annotations": [{"image_id": 10000010000, "keypoints": kp.ravel().tolist(), "track_id": 3,
                            "bbox": [650, 450, 100, 100]}]}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    result = data_inspect.inspect_dataset(tmp_path / "a.json", tmp_path / "out")
    assert result.summary["persons"] == 1 and result.sheet.is_file()
    assert result.sheet_size[0] == 4 + 640 + 4


def test_bad_input(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        data_inspect.inspect_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no PoseTrack annotations"):
        data_inspect.inspect_dataset(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.json").write_text('{"images": [')
    with pytest.raises(DataError, match=r"x\.json: not valid JSON"):
        data_inspect.inspect_dataset(bad)
    (bad / "x.json").write_text('{"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [{"image_id": 1}]}')
    with pytest.raises(DataError, match=r"x\.json: annotations\[0\]\.keypoints: missing"):
        data_inspect.inspect_dataset(bad)
    with pytest.raises(DataError, match="--frames"):
        data_inspect.inspect_dataset(bad, frames=0)


def test_read_only_output_folder_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o555)
    try:
        assert not data_inspect._writable(locked / "inspect")  # even for root, by the permission bits
        assert data_inspect._writable(tmp_path / "new" / "deeper")
        with pytest.raises(DataError, match="not a writable folder"):
            data_inspect.inspect_dataset(tmp_path, locked / "inspect")
    finally:
        os.chmod(locked, 0o755)


def test_zero_area_and_negative_boxes_and_a_short_video_are_warned_about(synth_dir, doubtful_synth):
    """Issue 22 item 12: inspect passed them with no word."""
    assert "warnings" not in data_inspect.summarize(data_inspect.load_dataset(synth_dir))
    folder, (boxes_file, short_file) = doubtful_synth
    summary = data_inspect.summarize(data_inspect.load_dataset(folder))
    boxes, short = summary["warnings"]
    assert boxes.startswith(f"{boxes_file}: 2 person boxes of zero area or negative size (first: frame ")
    assert short == (f"{short_file}: frames are annotated up to index 5, but its video decodes to 3 frames (the "
                     "video is shorter than its annotations)")
    text = data_inspect.format_summary(summary)
    assert f"  warning: {boxes}" in text and f"  warning: {short}" in text
