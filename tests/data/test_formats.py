"""Readers and writers of the dataset formats (SPEC §3.2), on the real PoseTrack 2018 fixtures and small files."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from sportpose.paths import REPO
from sportpose.errors import DataError
from sportpose.spec.data import H36M_SPLIT
from sportpose.models.skeleton import POSETRACK
from sportpose.data.formats import (
    FRAMES_PER_VIDEO,
    POSETRACK18_CATEGORY,
    parse_video_name,
    posetrack_image_id,
    read_detections,
    read_h36m_2d,
    read_h36m_3d,
    read_posetrack17,
    read_posetrack18,
    write_posetrack18,
)

FIXTURES = REPO.parent / "shared" / "fixtures" / "posetrack18"
needs_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason=f"PoseTrack 2018 fixtures not found at {FIXTURES} (../shared/fixtures/posetrack18)"
)
VAL = FIXTURES / "annotations" / "val"
VIDEOS = ("003418_mpii_test", "009473_mpii_test", "012834_mpii_test")


def assert_same_videos(a, b):
    """Equal content (the file path aside)."""
    assert (a.name, a.nframes, a.categories) == (b.name, b.nframes, b.categories)
    assert len(a.frames) == len(b.frames)
    for fa, fb in zip(a.frames, b.frames):
        assert (fa.image_id, fa.file_name, fa.frame_index, fa.is_labeled) == (
            fb.image_id, fb.file_name, fb.frame_index, fb.is_labeled)
        assert len(fa.ignore_regions) == len(fb.ignore_regions)
        for ra, rb in zip(fa.ignore_regions, fb.ignore_regions):
            np.testing.assert_array_equal(ra, rb)
        assert len(fa.persons) == len(fb.persons)
        for pa, pb in zip(fa.persons, fb.persons):
            assert pa.track_id == pb.track_id and pa.score == pb.score
            np.testing.assert_array_equal(pa.keypoints, pb.keypoints)
            for field in ("bbox", "bbox_head", "scores", "keypoints_3d"):
                va, vb = getattr(pa, field), getattr(pb, field)
                assert (va is None) == (vb is None), field
                if va is not None:
                    np.testing.assert_array_equal(va, vb)


# ---------------------------------------------------------------------------------------------------------------
# PoseTrack 2018


@needs_fixtures
def test_read_posetrack18_fixture():
    (video,) = read_posetrack18(VAL / "003418_mpii_test.json")
    assert video.name == "003418_mpii_test" and video.nframes == 149 and len(video.frames) == 1
    frame = video.frames[0]
    assert frame.image_id == 10034180000 and frame.frame_index == 0 and frame.is_labeled
    assert frame.file_name == "images/val/003418_mpii_test/000000.jpg"
    assert len(frame.ignore_regions) == 9 and all(r.ndim == 2 and r.shape[1] == 2 for r in frame.ignore_regions)
    (person,) = frame.persons
    assert person.track_id == 0 and person.scores is None  # "scores": [] in ground truth
    assert person.keypoints.shape == (17, 3) and person.keypoints.dtype == np.float32
    np.testing.assert_allclose(person.keypoints[0], [621, 471, 1])  # nose
    np.testing.assert_array_equal(person.keypoints[3:5], 0)  # ears never labeled
    np.testing.assert_array_equal(person.bbox_head, [346, 337, 296, 237])
    np.testing.assert_allclose(person.bbox, [214.25, 15.0, 1358.5, 1092.0])
    assert video.categories[0]["keypoints"] == list(POSETRACK.joints)


@needs_fixtures
@pytest.mark.parametrize("name", VIDEOS)
def test_posetrack18_round_trip(tmp_path, name):
    (video,) = read_posetrack18(VAL / f"{name}.json")
    write_posetrack18(video, tmp_path / f"{name}.json", predictions=False)
    (again,) = read_posetrack18(tmp_path / f"{name}.json")
    assert_same_videos(video, again)


@needs_fixtures
def test_posetrack18_prediction_scores_round_trip(tmp_path):
    (video,) = read_posetrack18(VAL / "012834_mpii_test.json")
    rng = np.random.default_rng(0)
    for person in video.frames[0].persons:
        person.scores = rng.random(17)
        person.score = 0.75
    write_posetrack18(video, tmp_path / "pred.json")
    data = json.loads((tmp_path / "pred.json").read_text())
    assert all(len(a["scores"]) == 17 for a in data["annotations"])
    assert data["images"][0]["vid_id"] == "012834" and data["images"][0]["frame_id"] == 10128340000
    (again,) = read_posetrack18(tmp_path / "pred.json")
    assert_same_videos(video, again)


@needs_fixtures
def test_write_predictions_requires_scores(tmp_path):
    (video,) = read_posetrack18(VAL / "009473_mpii_test.json")
    with pytest.raises(ValueError, match="per-joint scores"):
        write_posetrack18(video, tmp_path / "pred.json", predictions=True)


@needs_fixtures
def test_merged_file_reads_as_the_per_video_files():
    merged = read_posetrack18(FIXTURES / "annotations" / "test_posetrack18_val.json")
    assert sorted(v.name for v in merged) == sorted(VIDEOS)
    for video in merged:
        (single,) = read_posetrack18(VAL / f"{video.name}.json")
        assert_same_videos(video, single)


def test_posetrack_image_id_is_TSSSSSSFFFF():
    assert posetrack_image_id(3418, 0) == 10034180000  # 003418_mpii_test, frame 0 (the fixture's first image)
    assert posetrack_image_id(342, 2, "bonn") == 20003420002
    assert posetrack_image_id(1, FRAMES_PER_VIDEO - 1, "mpiinew") == 30000019999
    assert parse_video_name("003418_mpii_test") == (3418, "mpii")
    assert parse_video_name("000001_mpiinew") == (1, "mpiinew")
    assert parse_video_name("024158_bonn_train") == (24158, "bonn")
    assert parse_video_name("synth_0_0001") is None and parse_video_name("003418_mpiix") is None


def test_keypoints_3d_round_trip(tmp_path):
    data = minimal18()
    data["annotations"][0]["keypoints_3d"] = [[1.0, 2.0, 3.0]] * 17
    path = write_json(tmp_path / "a.json", data)
    (video,) = read_posetrack18(path)
    assert video.frames[0].persons[0].keypoints_3d.shape == (17, 3)
    write_posetrack18(video, tmp_path / "b.json", predictions=False)
    assert_same_videos(video, read_posetrack18(tmp_path / "b.json")[0])


# ---------------------------------------------------------------------------------------------------------------
# PoseTrack 2017

# poseval's joint ids (eval_helpers.Joint) -> PoseTrack 2018 joint names, written independently of skeleton.py.
POSEVAL_ID_TO_NAME = {
    0: "right_ankle", 1: "right_knee", 2: "right_hip", 3: "left_hip", 4: "left_knee", 5: "left_ankle",
    6: "right_wrist", 7: "right_elbow", 8: "right_shoulder", 9: "left_shoulder", 10: "left_elbow",
    11: "left_wrist", 12: "head_bottom", 13: "nose", 14: "head_top",
}


def to_posetrack17(video, wrap: bool) -> dict:
    """A PoseTrack 2017 file of the video, values wrapped in 1-element lists or not."""
    w = (lambda v: [v]) if wrap else (lambda v: v)
    annolist = []
    for frame in video.frames:
        rects = []
        for p in frame.persons:
            x, y, bw, bh = (float(v) for v in p.bbox_head)
            points = []
            for pid, name in POSEVAL_ID_TO_NAME.items():
                kx, ky, kv = (float(v) for v in p.keypoints[POSETRACK.index(name)])
                if kx == 0 and ky == 0 and kv == 0:
                    continue
                points.append({"id": w(pid), "x": w(kx), "y": w(ky), "is_visible": w(int(kv))})
            rects.append({"x1": w(x), "y1": w(y), "x2": w(x + bw), "y2": w(y + bh), "track_id": w(p.track_id),
                          "annopoints": [{"point": points}]})
        annolist.append({
            "image": [{"name": frame.file_name}] if wrap else {"name": frame.file_name},
            "imgnum": w(frame.frame_index + 1),
            "is_labeled": w(1),
            "annorect": rects,
            "ignore_regions": [{"point": [{"x": w(float(px)), "y": w(float(py))} for px, py in r]}
                               for r in frame.ignore_regions],
        })
    return {"annolist": annolist}


@needs_fixtures
@pytest.mark.parametrize("wrap", [True, False])
def test_posetrack17_converts_to_the_same_persons(tmp_path, wrap):
    (video,) = read_posetrack18(VAL / "009473_mpii_test.json")
    path = write_json(tmp_path / "009473_mpii_test.json", to_posetrack17(video, wrap))
    (converted,) = read_posetrack17(path)
    assert converted.name == video.name
    frame, ref = converted.frames[0], video.frames[0]
    assert (frame.image_id, frame.frame_index, frame.file_name) == (ref.image_id, ref.frame_index, ref.file_name)
    for r1, r2 in zip(frame.ignore_regions, ref.ignore_regions):
        np.testing.assert_array_equal(r1, r2)
    assert [p.track_id for p in frame.persons] == [p.track_id for p in ref.persons]
    for p, q in zip(frame.persons, ref.persons):
        np.testing.assert_allclose(p.keypoints, q.keypoints, atol=1e-3)
        np.testing.assert_allclose(p.bbox_head, q.bbox_head, atol=1e-3)


def test_posetrack17_boxes_scores_and_frame_numbers(tmp_path):
    # annorect x1..y2 is the head box; the person box is the keypoint extent enlarged 1.3x (poseval's
    # converter); a point's score goes to `scores`, missing ones are 0; 1-based 8-digit names give frame - 1.
    data = {"annolist": [{
        "image": [{"name": "images/bonn_5sec/000342_mpii/00000003.jpg"}],
        "annorect": [{
            "x1": [10], "y1": [20], "x2": [40], "y2": [60], "track_id": [7], "score": [0.5],
            "annopoints": [{"point": [
                {"id": [13], "x": [100.0], "y": [200.0], "score": [0.9]},  # nose
                {"id": [0], "x": [200.0], "y": [400.0], "is_visible": [0]},  # right ankle
            ]}],
        }],
    }]}
    (video,) = read_posetrack17(write_json(tmp_path / "x.json", data))
    frame = video.frames[0]
    assert frame.frame_index == 2 and frame.image_id == 10003420002 and frame.is_labeled
    (p,) = frame.persons
    assert p.track_id == 7 and p.score == 0.5
    np.testing.assert_array_equal(p.bbox_head, [10, 20, 30, 40])
    # extent 100 x 200 about centre (150, 300): x 85..215, y 170..430
    np.testing.assert_allclose(p.bbox, [85, 170, 130, 260])
    np.testing.assert_array_equal(p.keypoints[POSETRACK.index("nose")], [100, 200, 1])
    np.testing.assert_array_equal(p.keypoints[POSETRACK.index("right_ankle")], [200, 400, 0])
    assert np.count_nonzero(p.keypoints.any(axis=1)) == 2
    assert p.scores[POSETRACK.index("nose")] == pytest.approx(0.9) and p.scores[POSETRACK.index("right_ankle")] == 0


# ---------------------------------------------------------------------------------------------------------------
# Detections


@needs_fixtures
def test_read_detections_fixture():
    dets = read_detections(FIXTURES / "annotations" / "human_detections.json")
    assert {k: len(v) for k, v in dets.items()} == {10128340000: 100, 10034180000: 100, 10094730000: 78}
    bbox, score = dets[10128340000][0]
    assert bbox.shape == (4,) and 0 < score <= 1
    images = {f.image_id: f for name in VIDEOS for f in read_posetrack18(VAL / f"{name}.json")[0].frames}
    assert read_detections(FIXTURES / "annotations" / "human_detections.json", images).keys() == dets.keys()


@needs_fixtures
def test_detection_of_an_unknown_image_is_an_error():
    path = FIXTURES / "annotations" / "human_detections.json"
    (video,) = read_posetrack18(VAL / "003418_mpii_test.json")
    with pytest.raises(DataError) as err:
        read_detections(path, {f.image_id: f for f in video.frames})
    assert str(err.value).startswith(str(path)) and err.value.field.endswith(".image_id")
    assert "refers to no known image" in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------------------------------------------------------
# Human3.6M (VideoPose3D layout)

# VideoPose3D keeps these 17 of the 32 mocap joints.
KEPT = [0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27]


def test_read_h36m_3d_reduces_joints_and_converts_to_mm(tmp_path):
    rng = np.random.default_rng(0)
    walk = rng.normal(size=(4, 32, 3))  # metres
    path = tmp_path / "data_3d_h36m.npz"
    np.savez_compressed(path, positions_3d={"S1": {"Walking": walk}, "S9": {"Eating 1": walk[:2]}})
    data = read_h36m_3d(path)
    assert sorted(data) == ["S1", "S9"]
    out = data["S1"]["Walking"]
    assert out.shape == (4, 17, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, walk[:, KEPT] * 1000.0, rtol=1e-6)
    assert data["S9"]["Eating 1"].shape == (2, 17, 3)


def test_read_h36m_2d(tmp_path):
    cams = [np.full((5, 17, 2), float(c)) for c in range(4)]
    meta = {"layout_name": "h36m", "num_joints": 17, "keypoints_symmetry": [[4, 5, 6], [1, 2, 3]]}
    path = tmp_path / "data_2d_h36m_gt.npz"
    np.savez_compressed(path, positions_2d={"S11": {"Walking": cams}}, metadata=meta)
    positions, metadata = read_h36m_2d(path)
    assert metadata == meta
    assert len(positions["S11"]["Walking"]) == 4
    for c, arr in enumerate(positions["S11"]["Walking"]):
        assert arr.shape == (5, 17, 2) and arr.dtype == np.float32 and (arr == c).all()


def test_h36m_split():
    assert H36M_SPLIT == {"train": ("S1", "S5", "S6", "S7", "S8"), "test": ("S9", "S11")}


# ---------------------------------------------------------------------------------------------------------------
# Malformed files: one line, naming the file and the field.


def minimal18() -> dict:
    return {
        "images": [{"id": 10000010000, "file_name": "images/val/000001_mpii_test/000000.jpg", "nframes": 1,
                    "is_labeled": True, "ignore_regions_x": [[0, 10, 10]], "ignore_regions_y": [[0, 0, 10]]}],
        "annotations": [{"image_id": 10000010000, "track_id": 0, "keypoints": [1.0, 2.0, 1] * 17,
                         "bbox": [0, 0, 10, 10], "bbox_head": [0, 0, 5, 5], "scores": []}],
        "categories": [POSETRACK18_CATEGORY],
    }


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))  # NaN is written as the (invalid) JSON literal NaN on purpose
    return path


def edited18(edit):
    def make(tmp_path):
        data = copy.deepcopy(minimal18())
        edit(data)
        return write_json(tmp_path / "bad.json", data)
    return make


def npz(**arrays):
    def make(tmp_path):
        path = tmp_path / "bad.npz"
        np.savez(path, **arrays)
        return path
    return make


def raw(text: str, name: str = "bad.json"):
    def make(tmp_path):
        (tmp_path / name).write_text(text)
        return tmp_path / name
    return make


ann = lambda d: d["annotations"][0]  # noqa: E731
img = lambda d: d["images"][0]  # noqa: E731
MALFORMED = {
    "missing keypoints": (read_posetrack18, edited18(lambda d: ann(d).pop("keypoints")), "annotations[0].keypoints"),
    "50 keypoint numbers": (read_posetrack18, edited18(lambda d: ann(d).update(keypoints=[1.0] * 50)),
                            "annotations[0].keypoints"),
    "keypoint not a number": (read_posetrack18, edited18(lambda d: ann(d)["keypoints"].__setitem__(4, "a")),
                              "annotations[0].keypoints"),
    "NaN coordinate": (read_posetrack18, edited18(lambda d: ann(d)["keypoints"].__setitem__(3, float("nan"))),
                       "annotations[0].keypoints"),
    "image_id of no image": (read_posetrack18, edited18(lambda d: ann(d).update(image_id=5)),
                             "annotations[0].image_id"),
    "not JSON": (read_posetrack18, raw("{images: oops"), ""),
    "not an object": (read_posetrack18, raw("[1, 2]"), ""),
    "missing images": (read_posetrack18, edited18(lambda d: d.pop("images")), "images"),
    "missing annotations": (read_posetrack18, edited18(lambda d: d.pop("annotations")), "annotations"),
    "bbox of 3 numbers": (read_posetrack18, edited18(lambda d: ann(d).update(bbox=[1, 2, 3])), "annotations[0].bbox"),
    "scores of 5 numbers": (read_posetrack18, edited18(lambda d: ann(d).update(scores=[1] * 5)),
                            "annotations[0].scores"),
    "track_id not an integer": (read_posetrack18, edited18(lambda d: ann(d).update(track_id="a")),
                                "annotations[0].track_id"),
    "duplicate image id": (read_posetrack18, edited18(lambda d: d["images"].append(dict(img(d)))), "images[1].id"),
    "image without file_name": (read_posetrack18, edited18(lambda d: img(d).pop("file_name")), "images[0].file_name"),
    "unequal ignore polygons": (read_posetrack18, edited18(lambda d: img(d).update(ignore_regions_y=[])),
                                "images[0].ignore_regions_y"),
    "wrong joint names": (read_posetrack18, edited18(lambda d: d.update(categories=[{"keypoints": ["a"] * 17}])),
                          "categories[0].keypoints"),
    "2017 without annolist": (read_posetrack17, raw('{"images": []}'), "annolist"),
    "2017 point without x": (read_posetrack17, raw(json.dumps({"annolist": [{
        "image": [{"name": "a/000001_mpii/00000001.jpg"}],
        "annorect": [{"annopoints": [{"point": [{"id": [0], "y": [1]}]}]}]}]})),
        "annolist[0].annorect[0].annopoints.point[0].x"),
    "2017 joint id 15": (read_posetrack17, raw(json.dumps({"annolist": [{
        "image": {"name": "a/000001_mpii/00000001.jpg"},
        "annorect": [{"annopoints": [{"point": [{"id": 15, "x": 1, "y": 1}]}]}]}]})),
        "annolist[0].annorect[0].annopoints.point[0].id"),
    "detections not a list": (read_detections, raw('{"image_id": 1}'), ""),
    "detection without bbox": (read_detections, raw('[{"image_id": 1, "score": 0.5}]'), "[0].bbox"),
    "detection score NaN": (read_detections, raw('[{"image_id": 1, "bbox": [0, 0, 1, 1], "score": NaN}]'),
                            "[0].score"),
    "npz without positions_3d": (read_h36m_3d, npz(other=np.zeros(3)), "positions_3d"),
    "not an npz": (read_h36m_3d, raw("not a zip", "bad.npz"), ""),
    "3d array of 20 joints": (read_h36m_3d, npz(positions_3d={"S1": {"Walking": np.zeros((2, 20, 3))}}),
                              "positions_3d[S1][Walking]"),
    "3d NaN": (read_h36m_3d, npz(positions_3d={"S1": {"Walking": np.full((2, 32, 3), np.nan)}}),
               "positions_3d[S1][Walking]"),
    "3d not a dict": (read_h36m_3d, npz(positions_3d=np.zeros((2, 32, 3))), "positions_3d"),
    "2d without metadata": (read_h36m_2d, npz(positions_2d={"S1": {"Walking": [np.zeros((2, 17, 2))]}}), "metadata"),
    "2d camera of 3 coordinates": (read_h36m_2d, npz(positions_2d={"S1": {"Walking": [np.zeros((2, 17, 3))]}},
                                                     metadata={}), "positions_2d[S1][Walking][0]"),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_malformed_file_is_a_one_line_data_error(tmp_path, case):
    reader, make, field = MALFORMED[case]
    path = make(tmp_path)
    with pytest.raises(DataError) as err:
        reader(path)
    message = str(err.value)
    assert "\n" not in message
    assert err.value.field == field
    assert message.startswith(f"{path}: {field + ': ' if field else ''}"), message
