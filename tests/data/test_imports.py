"""Importing real datasets (the PoseTrack 2018 fixtures, frame folders, a user's own videos) into manifests the
pipeline trains from; bad files skipped and reported with their paths."""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from sportpose.data.dataset import build_split, load_clips
from sportpose.data.formats import read_posetrack18, write_posetrack18
from sportpose.data.imports import run_import, summary
from sportpose.data.samples import transform_points
from sportpose.data.tubes import cut_clip, without_ignored
from sportpose.data.video import FrameFolderReader, open_video, probe_video, read_frames
from sportpose.errors import DataError
from sportpose.models.heatmaps import HEATMAP_STRIDE
from sportpose.spec.data import DataSpec

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
POSETRACK = FIXTURES / "posetrack18"
CLIP = POSETRACK / "videos" / "000001_mpiinew_test"
pytestmark = pytest.mark.skipif(not POSETRACK.is_dir(), reason=f"the PoseTrack fixtures are not at {POSETRACK}")

DATA = DataSpec(source="manifest", window=3, input_size=(64, 64), max_samples_per_clip=None)


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    out = tmp_path_factory.mktemp("posetrack18-import")
    return run_import("posetrack18", POSETRACK, out, progress=False), out


def test_posetrack18_import_keeps_the_official_split_and_reports_what_it_cannot_use(imported):
    result, out = imported
    assert sorted(c["name"] for c in result.clips) == ["003418_mpii_test", "009473_mpii_test", "012834_mpii_test"]
    assert {c["split"] for c in result.clips} == {"val"}  # official val stays val
    assert all(Path(c["video"]).is_dir() and str(c["video"]).startswith(str(POSETRACK)) for c in result.clips)
    assert sum(c["stats"]["people"] for c in result.clips) == 14
    assert sorted(Path(s["path"]).name for s in result.skipped) == ["human_detections.json",
                                                                     "test_posetrack18_val.json"]
    assert all("split folder" in s["reason"] for s in result.skipped)
    text = summary(result)
    assert "3 clips" in text and "human_detections.json" in text
    assert not any(out.glob("*.jpg")) and not (out / "images").exists()  # media are not copied


def test_importing_an_unchanged_root_again_writes_nothing(imported):
    result, out = imported
    before = (out / "manifest.json").stat().st_mtime_ns
    again = run_import("posetrack18", POSETRACK, out, progress=False)
    assert again.up_to_date and (out / "manifest.json").stat().st_mtime_ns == before
    assert again.clips == json.loads((out / "manifest.json").read_text())["clips"]


def test_samples_from_the_frame_folders_carry_the_fixture_keypoints_through_the_crop_affine(imported):
    _, out = imported
    clips = load_clips(out, (0.0, 1.0, 0.0), seed=0)
    checked = 0
    for clip in clips:
        video = read_posetrack18(clip["annotations"])[0]
        persons = {p.track_id: p for f in video.frames if f.is_labeled for p in f.persons}
        frame = next(f for f in video.frames if f.is_labeled)
        rows = cut_clip(clip, DATA, seed=0)
        assert rows
        for row in rows:
            kp = without_ignored(persons[int(row["track_id"])].keypoints.astype(np.float64), frame.ignore_regions)
            expected = transform_points(kp[:, :2], row["affine"].astype(np.float64))
            for k in np.flatnonzero(row["target_weight"] > 0):
                np.testing.assert_allclose(row["keypoints"][k, :2], expected[k], atol=1e-3)
                y, x = np.unravel_index(np.argmax(row["heatmaps"][k]), row["heatmaps"][k].shape)
                peak = (np.array([x, y]) + 0.5) * HEATMAP_STRIDE - 0.5
                assert np.abs((peak - expected[k]) / HEATMAP_STRIDE).max() <= 1.0  # within 1 px at H/4
                checked += 1
            assert tuple(row["frame_size"]) == (1920, 1080)
    assert checked > 100


def test_joints_inside_an_ignore_region_get_target_weight_zero(imported):
    _, out = imported
    clip = next(c for c in load_clips(out, (0.0, 1.0, 0.0), seed=0) if c["name"] == "003418_mpii_test")
    frame = next(f for f in read_posetrack18(clip["annotations"])[0].frames if f.is_labeled)
    inside = []
    for person in frame.persons:
        kp = person.keypoints.astype(np.float64)
        inside += [(person.track_id, k) for k in np.flatnonzero((kp[:, 2] > 0) & (without_ignored(kp, frame.ignore_regions)[:, 2] == 0))]
    assert inside, "the fixture has a labelled joint inside an ignore region"
    rows = {int(r["track_id"]): r for r in cut_clip(clip, DATA, seed=0)}
    for track, k in inside:
        if track in rows:
            assert rows[track]["target_weight"].reshape(-1)[k] == 0
    square = [np.array([[0, 0], [10, 0], [10, 10], [0, 10]], np.float32)]
    kp = np.array([[5, 5, 1], [20, 20, 1], [3, 3, 0]], np.float64)
    np.testing.assert_array_equal(without_ignored(kp, square), [[0, 0, 0], [20, 20, 1], [3, 3, 0]])


def test_a_frame_folder_reads_as_its_video_does():
    folder = FrameFolderReader(str(CLIP))
    assert folder.num_frames == 5 and folder.size == probe_video(CLIP) == (1280, 720)
    frames = read_frames(open_video(CLIP), [0, 2, 4])
    for i, frame in frames.items():
        np.testing.assert_array_equal(frame, cv2.cvtColor(cv2.imread(str(CLIP / f"{i:06d}.jpg")), cv2.COLOR_BGR2RGB))
    small = read_frames(open_video(CLIP, size=(320, 180)), [1])[1]  # decoded at 1/4 inside the JPEG decoder
    assert small.shape == (180, 320, 3)
    reference = cv2.resize(frames[2], (320, 180), interpolation=cv2.INTER_AREA)
    assert np.abs(read_frames(open_video(CLIP, size=(320, 180)), [2])[2].astype(int) - reference).mean() < 3


def test_posetrack17_frame_folders_count_from_one(tmp_path):
    for i in range(3):
        shutil.copy(CLIP / f"{i:06d}.jpg", tmp_path / f"{i + 1:08d}.jpg")
    reader = FrameFolderReader(str(tmp_path))
    assert reader.first == 1 and reader.num_frames == 3
    np.testing.assert_array_equal(reader.read([0])[0], read_frames(open_video(CLIP), [0])[0])


def _bad_root(tmp_path: Path) -> Path:
    """A PoseTrack 2018 ROOT (train and val) over copies of the fixture frames, with one video whose labelled
    frame is missing on disk and one whose frame is a truncated JPEG."""
    root = tmp_path / "pt18"
    for split, name in (("train", "003418_mpii_test"), ("val", "009473_mpii_test"), ("train", "012834_mpii_test")):
        (root / "annotations" / split).mkdir(parents=True, exist_ok=True)
        video = read_posetrack18(POSETRACK / "annotations" / "val" / f"{name}.json")[0]
        write_posetrack18(video, root / "annotations" / split / f"{name}.json", predictions=False)
        shutil.copytree(POSETRACK / "images" / "val" / name, root / "images" / "val" / name)
    (root / "images" / "val" / "009473_mpii_test" / "000000.jpg").rename(
        root / "images" / "val" / "009473_mpii_test" / "000007.jpg")  # the labelled frame 0 is gone
    jpeg = root / "images" / "val" / "012834_mpii_test" / "000000.jpg"
    jpeg.write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])  # truncated
    return root


def test_missing_and_corrupt_frames_are_skipped_and_reported_with_their_paths(tmp_path):
    root = _bad_root(tmp_path)
    result = run_import("posetrack18", root, tmp_path / "out", progress=False)
    assert [s["path"] for s in result.skipped] == [str(root / "annotations" / "val" / "009473_mpii_test.json")]
    assert "labelled frames not in" in result.skipped[0]["reason"]
    assert {c["name"]: c["split"] for c in result.clips} == {"003418_mpii_test": "train", "012834_mpii_test": "train"}
    corrupt = next(c for c in load_clips(tmp_path / "out", (1.0, 0.0, 0.0), 0) if c["name"] == "012834_mpii_test")
    with pytest.raises(DataError, match="012834_mpii_test/000000.jpg: frame: not a complete JPEG"):
        cut_clip(corrupt, DATA, seed=0)


@pytest.mark.integration
def test_the_pipeline_skips_a_clip_with_a_corrupt_frame_and_names_the_file(ray_local, tmp_path):
    root = _bad_root(tmp_path)
    run_import("posetrack18", root, tmp_path / "out", progress=False)
    clips = load_clips(tmp_path / "out", (1.0, 0.0, 0.0), 0)
    ds, report = build_split(clips, DataSpec(source="manifest", window=3, input_size=(64, 64),
                                             max_skip_fraction=1.0), "train", seed=0)
    assert [s["clip"] for s in report.skipped] == ["012834_mpii_test"]
    assert report.skipped[0]["path"].endswith("012834_mpii_test/000000.jpg")
    assert ds.count() == report.samples > 0


def test_your_own_videos_with_labels_of_the_same_stem(tmp_path):
    root = tmp_path / "footage"
    (root / "val").mkdir(parents=True)
    shutil.copy(CLIP / "000001_mpiinew_test.mp4", root / "game1.mp4")
    shutil.copy(CLIP / "000001_mpiinew_test.mp4", root / "val" / "game2.mp4")
    shutil.copy(CLIP / "000001_mpiinew_test.mp4", root / "unlabelled.mp4")
    labels = read_posetrack18(POSETRACK / "annotations" / "val" / "009473_mpii_test.json")[0]
    for frame in labels.frames:  # the fixture's two people, placed on the clip's first frame (1280x720)
        for person in frame.persons:
            person.keypoints[:, :2] *= 0.6
            person.bbox = np.asarray(person.bbox, np.float64) * 0.6
            person.bbox_head = np.asarray(person.bbox_head, np.float64) * 0.6
    write_posetrack18(labels, root / "game1.json", predictions=False)
    write_posetrack18(labels, root / "val" / "game2.json", predictions=False)
    result = run_import("folder", root, tmp_path / "out", progress=False)
    assert {c["name"]: c["split"] for c in result.clips} == {"game1": "", "game2": "val"}
    assert [Path(s["path"]).name for s in result.skipped] == ["unlabelled.mp4"]
    clips = load_clips(tmp_path / "out", (1.0, 0.0, 0.0), seed=0)
    assert {c["name"]: c["split"] for c in clips}["game1"] == "train"  # assigned by data.splits
    assert cut_clip(next(c for c in clips if c["name"] == "game1"), DATA, seed=0)  # a train clip: people with
    # fewer than data.min_visible_joints labelled joints are left out


def test_posetrack17_annolist_is_converted_on_import_and_its_frames_count_from_one(tmp_path):
    root = tmp_path / "pt17"
    frames = root / "images" / "bonn" / "000342_mpii"
    frames.mkdir(parents=True)
    for i in range(3):
        shutil.copy(CLIP / f"{i:06d}.jpg", frames / f"{i + 1:08d}.jpg")
    # poseval's 15 point ids: 8 r_shoulder, 9 l_shoulder, 2 r_hip, 3 l_hip, 13 nose, 12 head_bottom, 14 head_top
    points = {8: (600, 300), 9: (700, 300), 2: (610, 450), 3: (690, 450), 13: (650, 230), 12: (650, 270),
              14: (650, 190)}
    rect = {"x1": [620], "y1": [180], "x2": [680], "y2": [280], "track_id": [0],
            "annopoints": [{"point": [{"id": [k], "x": [x], "y": [y], "is_visible": [1]} for k, (x, y) in points.items()]}]}
    annolist = [{"image": [{"name": f"images/bonn/000342_mpii/{i + 1:08d}.jpg"}], "imgnum": [i + 1],
                 "annorect": [rect] if i == 1 else [], "is_labeled": [int(i == 1)]} for i in range(3)]
    (root / "annotations" / "train").mkdir(parents=True)
    (root / "annotations" / "train" / "000342_mpii.json").write_text(json.dumps({"annolist": annolist}))
    out = tmp_path / "out"
    result = run_import("posetrack17", root, out, progress=False)
    assert not result.skipped and [c["split"] for c in result.clips] == ["train"]
    clip = load_clips(out, (1.0, 0.0, 0.0), 0)[0]
    assert Path(clip["annotations"]).is_relative_to(out)  # the 2018 file the import wrote; the media stay put
    labelled = [f for f in read_posetrack18(clip["annotations"])[0].frames if f.is_labeled]
    assert [f.frame_index for f in labelled] == [1]  # 00000002.jpg
    rows = cut_clip(clip, replace_data(min_visible_joints=1), seed=0)
    assert len(rows) == 1 and int(rows[0]["frame"]) == 1
    reader = open_video(clip["video"])
    np.testing.assert_array_equal(reader.read([1])[0], read_frames(open_video(CLIP), [1])[1])


def replace_data(**changes) -> DataSpec:
    return DataSpec(**{**{"source": "manifest", "window": 3, "input_size": (64, 64), "max_samples_per_clip": None},
                       **changes})
