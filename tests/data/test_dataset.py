"""The Ray Data pipeline on tiny SynthCourt clips: sample geometry and targets, augmentation, decoding each
frame once, bad input (SPEC §3.3).

Unit tests cut clips in-process (``cut_clip``); the ``integration`` tests run ``build_split`` on the session's
local Ray.
"""

import json
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from sportpose.data import synthcourt
from sportpose.data.dataset import build_split, load_clips
from sportpose.data.samples import invert_affine, transform_points
from sportpose.data.tubes import context_indices, cut_clip, cut_clip_columns, tube_indices
from sportpose.data.video import PlanarFrame, open_video, probe_video, read_frames
from sportpose.errors import DataError, SpecError
from sportpose.models.heatmaps import HEATMAP_STRIDE
from sportpose.models.skeleton import H36M, POSETRACK, convert
from sportpose.spec.data import AugmentSpec, DataSpec, SynthConfig

FRAMES, WIDTH, HEIGHT = 12, 160, 120
NO_AUG = AugmentSpec(flip=False, rotation=0.0, scale=(1.0, 1.0), color_jitter=0.0)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synthcourt")
    synthcourt.generate(out, SynthConfig(clips=2, frames=FRAMES, width=WIDTH, height=HEIGHT), progress=False)
    return out


@pytest.fixture(scope="module")
def clips(root) -> list[dict]:
    return load_clips(root, (0.5, 0.5, 0.0), seed=0)


def _clip(clips, split="val"):
    clip = dict(next(c for c in clips if c["split"] == split))
    return clip


def _as_train(clip):
    return {**clip, "split": "train"}


def _decoded(clip) -> dict[int, np.ndarray]:
    """Every frame of the clip, RGB, from the decoder the tube cutter uses (the planar one: see test_video)."""
    reader = open_video(clip["video"], planar=True)
    frames = read_frames(reader, range(reader.num_frames))
    return {i: f.rgb() if isinstance(f, PlanarFrame) else f for i, f in frames.items()}


def _by_key(rows):
    return {(r["frame"], r["track_id"]): r for r in rows}


# -- the data section's sample fields ----------------------------------------------------------------------------


@pytest.mark.parametrize("fields, key, words", [
    ({"window": 4}, "window", "odd"),
    ({"window": 0, "tube_anchor": "end"}, "window", "at least 1"),
    ({"context_len": -1}, "context_len", "0"),
    ({"context_len": 4, "context_size": (100, 128)}, "context_size", "multiples of 32"),
    ({"points3d": True}, "points3d", "h36m"),
    ({"flow": "dis"}, "flow", "window >= 2"),
    ({"boxes": ""}, "boxes", "detections file"),
    ({"det_threshold": 1.5}, "det_threshold", "[0, 1]"),
    ({"joint_set": "posetrack15"}, "joint_set", "expected one of"),
    ({"prepared": True, "stream": True}, "stream", "exclude"),
])
def test_sample_fields_are_validated(fields, key, words):
    with pytest.raises(SpecError) as info:
        DataSpec(**fields)
    assert info.value.key == key and words in info.value.message


def test_stsp_and_multistream_sample_fields():
    stsp = DataSpec(window=6, tube_anchor="end", targets="all", joint_set="h36m", points3d=True, flow="dis")
    assert stsp.window == 6
    multistream = DataSpec(window=5, context_len=8, context_size=(128, 128))
    assert multistream.tube_anchor == "centre" and multistream.boxes == "gt"


# -- tubes ------------------------------------------------------------------------------------------------------


def test_tube_indices_centre_end_interval_and_clamping():
    assert tube_indices(5, 5, 1, 12) == [3, 4, 5, 6, 7]
    assert tube_indices(5, 5, 2, 12) == [1, 3, 5, 7, 9]
    assert tube_indices(0, 5, 1, 12) == [0, 0, 0, 1, 2]
    assert tube_indices(11, 5, 2, 12) == [7, 9, 11, 11, 11]
    assert tube_indices(5, 6, 1, 12, "end") == [0, 1, 2, 3, 4, 5]
    assert tube_indices(2, 6, 1, 12, "end") == [0, 0, 0, 0, 1, 2]
    assert tube_indices(9, 3, 3, 12, "end") == [3, 6, 9]
    assert context_indices(5, 4, 12) == [2, 3, 4, 5]
    assert context_indices(1, 4, 12) == [0, 0, 0, 1]


def test_heatmap_peak_lies_on_the_keypoint_through_the_stored_affine(clips):
    data = DataSpec(window=3, input_size=(64, 64))
    rows = cut_clip(_clip(clips), data, seed=0)
    assert len(rows) > 10
    checked = 0
    for row in rows:
        kp_img = row["keypoints_image"]
        expected = transform_points(kp_img[:, :2], row["affine"].astype(np.float64))  # crop pixels
        for k in np.flatnonzero(row["target_weight"] > 0):
            assert kp_img[k, 2] > 0
            y, x = np.unravel_index(np.argmax(row["heatmaps"][k]), row["heatmaps"][k].shape)
            peak = (np.array([x, y]) + 0.5) * HEATMAP_STRIDE - 0.5  # crop pixels of the peak's heatmap pixel
            assert np.abs((peak - expected[k]) / HEATMAP_STRIDE).max() <= 1.0
            np.testing.assert_allclose(row["keypoints"][k, :2], expected[k], atol=1e-3)
            checked += 1
        assert row["tube"].shape == (3, 64, 64, 3) and row["tube"].dtype == np.uint8
        assert row["heatmaps"].dtype == np.float32 and row["target_weight"].dtype == np.float32
    assert checked > 100
    width, height = probe_video(_clip(clips)["video"])  # where a crop sits is read against the whole frame
    assert all(tuple(row["frame_size"]) == (width, height) for row in rows)


def test_crops_are_the_frames_through_the_stored_affine_and_clamped_at_clip_ends(clips):
    clip = _clip(clips)
    data = DataSpec(window=5, interval=2, input_size=(64, 64))
    frames = _decoded(clip)
    rows = cut_clip(clip, data, seed=0)
    ends = [r for r in rows if r["frame"] in (0, FRAMES - 1)]
    assert ends
    for row in rows:
        assert list(row["tube_frames"]) == tube_indices(row["frame"], 5, 2, FRAMES)
        m = row["affine"].astype(np.float64)
        for j, index in enumerate(row["tube_frames"]):
            expected = cv2.warpAffine(frames[index], m, (64, 64), flags=cv2.INTER_LINEAR)
            assert np.abs(row["tube"][j].astype(int) - expected).mean() < 0.5
    for row in ends:  # clamped: the repeated end frame is repeated pixel for pixel
        t = list(row["tube_frames"])
        dup = [j for j in range(1, 5) if t[j] == t[j - 1]]
        assert dup and all(np.array_equal(row["tube"][j], row["tube"][j - 1]) for j in dup)


def test_tube_ending_at_the_anchor(clips):
    data = DataSpec(window=6, tube_anchor="end", interval=1, input_size=(64, 64))
    rows = cut_clip(_clip(clips), data, seed=0)
    for row in rows:
        assert row["tube_frames"][-1] == row["frame"]
        assert list(row["tube_frames"]) == [max(row["frame"] - 5 + j, 0) for j in range(6)]


def test_context_clip_is_the_last_frames_resized(clips):
    clip = _clip(clips)
    data = DataSpec(window=1, context_len=4, context_size=(64, 96), input_size=(64, 64))
    frames = _decoded(clip)
    rows = cut_clip(clip, data, seed=0)
    for row in rows[:: max(1, len(rows) // 6)]:
        assert row["context"].shape == (4, 64, 96, 3) and row["context"].dtype == np.uint8
        for j, index in enumerate(context_indices(row["frame"], 4, FRAMES)):
            expected = cv2.resize(frames[index], (96, 64), interpolation=cv2.INTER_AREA)
            np.testing.assert_array_equal(row["context"][j], expected)


# -- augmentation -----------------------------------------------------------------------------------------------


def test_flip_swaps_left_right_joints_and_mirrors_coordinates(clips):
    clip = _clip(clips)
    flip_only = AugmentSpec(flip=True, rotation=0.0, scale=(1.0, 1.0), color_jitter=0.0)
    plain = _by_key(cut_clip(clip, DataSpec(window=3, input_size=(64, 64)), seed=0))
    rows = cut_clip(_as_train(clip), DataSpec(window=3, input_size=(64, 64), augment=flip_only), seed=0)
    flipped = [r for r in rows if np.linalg.det(r["affine"][:, :2]) < 0]
    assert 0 < len(flipped) < len(rows)
    perm = POSETRACK.flip_permutation()
    for row in flipped:
        ref = plain[(row["frame"], row["track_id"])]
        # the left wrist's slot holds the right wrist, mirrored about the crop's centre line
        mirrored = np.where(ref["keypoints"][perm, 2] > 0, 63 - ref["keypoints"][perm, 0], 0)  # x' = W - 1 - x
        np.testing.assert_allclose(row["keypoints"][:, 0], mirrored, atol=1e-3)
        np.testing.assert_allclose(row["keypoints"][:, 1], ref["keypoints"][perm, 1], atol=1e-3)
        np.testing.assert_array_equal(row["target_weight"], ref["target_weight"][perm])
        np.testing.assert_allclose(row["heatmaps"], ref["heatmaps"][perm][:, :, ::-1], atol=1e-5)
        assert np.abs(row["tube"].astype(int) - ref["tube"][:, :, ::-1].astype(int)).max() <= 1
        np.testing.assert_array_equal(row["keypoints_image"], ref["keypoints_image"])  # image truth is unflipped


def test_one_augmentation_for_every_frame_of_a_tube(clips):
    clip = _as_train(_clip(clips))
    geometric = AugmentSpec(flip=True, rotation=30.0, scale=(0.75, 1.25), color_jitter=0.0)
    frames = _decoded(clip)
    rows = cut_clip(clip, DataSpec(window=5, input_size=(64, 64), augment=geometric), seed=3)
    assert len({tuple(np.round(r["affine"].ravel(), 3)) for r in rows}) == len(rows)  # each tube its own draw
    for row in rows:
        m = row["affine"].astype(np.float64)
        for j, index in enumerate(row["tube_frames"]):  # every frame through the same (stored) affine
            expected = cv2.warpAffine(frames[index], m, (64, 64), flags=cv2.INTER_LINEAR)
            assert np.abs(row["tube"][j].astype(int) - expected).mean() < 0.5
    jitter = AugmentSpec(flip=False, rotation=0.0, scale=(1.0, 1.0), color_jitter=0.4)
    plain = _by_key(cut_clip(_clip(clips), DataSpec(window=5, input_size=(64, 64)), seed=3))
    for row in cut_clip(clip, DataSpec(window=5, input_size=(64, 64), augment=jitter), seed=3)[:8]:
        ref = plain[(row["frame"], row["track_id"])]
        ratios = [row["tube"][j].mean() / max(ref["tube"][j].mean(), 1.0) for j in range(5)]
        assert np.ptp(ratios) < 0.05  # one brightness/contrast/saturation transform for all frames


def test_augmentation_is_reproducible_and_fresh_per_epoch(clips):
    clip = _as_train(_clip(clips))
    data = DataSpec(window=1, input_size=(64, 64))
    a = cut_clip_columns(clip, data, seed=0, epoch=0)["affine"]
    b = cut_clip_columns(clip, data, seed=0, epoch=0)["affine"]
    c = cut_clip_columns(clip, data, seed=0, epoch=1)["affine"]
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    val = cut_clip_columns(_clip(clips), data, seed=0, epoch=1)["affine"]
    np.testing.assert_array_equal(val, cut_clip_columns(_clip(clips), data, seed=0, epoch=0)["affine"])


# -- targets of every tube frame, h36m, 3D, flow -----------------------------------------------------------------


def test_targets_of_every_tube_frame_follow_the_track(clips, tmp_path):
    clip = _clip(clips)
    data = DataSpec(window=5, targets="all", input_size=(64, 64))
    rows = cut_clip(clip, data, seed=0)
    doc = json.loads(Path(clip["annotations"]).read_text())
    kps = {(a["image_id"] % 10000, a["track_id"]): np.array(a["keypoints"]).reshape(17, 3) for a in doc["annotations"]}
    for row in rows:
        assert row["heatmaps"].shape == (5, 17, 16, 16) and row["keypoints"].shape == (5, 17, 3)
        assert row["target_weight"].shape == (5, 17)
        m = row["affine"].astype(np.float64)
        for j, index in enumerate(row["tube_frames"]):
            truth = kps[(index, row["track_id"])]
            vis = truth[:, 2] > 0
            np.testing.assert_allclose(row["keypoints"][j][vis, :2], transform_points(truth[vis, :2], m), atol=1e-3)
        centre = list(row["tube_frames"]).index(row["frame"])
        np.testing.assert_allclose(row["keypoints"][centre][:, 2], row["keypoints_image"][:, 2])
    # a track missing in a tube frame: that frame's targets have zero weight
    dropped = [a for a in doc["annotations"] if not (a["image_id"] % 10000 == 4 and a["track_id"] == 0)]
    bad = tmp_path / "annotations.json"
    bad.write_text(json.dumps({**doc, "annotations": dropped}))
    rows = cut_clip({**clip, "annotations": str(bad)}, data, seed=0)
    row = next(r for r in rows if r["frame"] == 5 and r["track_id"] == 0)
    j = list(row["tube_frames"]).index(4)
    assert row["target_weight"][j].sum() == 0 and row["heatmaps"][j].max() == 0
    assert row["target_weight"][j + 1].sum() > 0


def test_h36m_targets_and_root_relative_3d(clips):
    clip = _clip(clips)
    data = DataSpec(window=6, tube_anchor="end", targets="all", joint_set="h36m", points3d=True, input_size=(64, 64))
    rows = cut_clip(clip, data, seed=0)
    z = np.load(clip["points3d"])
    j2d = convert(z["joints_2d"], "synth", "h36m")  # (F, P, 17, 2)
    j3d = convert(z["joints_cam"], "synth", "h36m")  # (F, P, 17, 3)
    vis = z["visibility"][..., :17] > 0
    for row in rows:
        assert row["joints_3d"].shape == (6, 17, 3) and row["joints_3d"].dtype == np.float32
        p, f = row["track_id"], row["frame"]
        np.testing.assert_array_equal(row["keypoints_image"][:, 2] > 0, vis[f, p])
        np.testing.assert_allclose(row["keypoints_image"][vis[f, p], :2], j2d[f, p][vis[f, p]], atol=1e-3)
        assert np.all(row["keypoints_image"][~vis[f, p]] == 0)  # unlabeled: 0, 0, 0 as in PoseTrack files
        expected = j3d[row["tube_frames"], p] - j3d[row["tube_frames"], p][:, :1]
        np.testing.assert_allclose(row["joints_3d"], expected, atol=1e-2)
        assert np.abs(row["joints_3d"][:, 0]).max() == 0  # the root is the origin
        m = row["affine"].astype(np.float64)
        seen = vis[f, p]
        np.testing.assert_allclose(row["keypoints"][-1][seen, :2], transform_points(j2d[f, p][seen], m), atol=1e-3)


def test_3d_joints_follow_the_crop_flip_and_rotation(clips):
    clip = _clip(clips)
    base = DataSpec(window=1, joint_set="h36m", points3d=True, input_size=(64, 64))
    plain = _by_key(cut_clip(clip, base, seed=0))
    aug = AugmentSpec(flip=True, rotation=30.0, scale=(1.0, 1.0), color_jitter=0.0)
    rows = cut_clip(_as_train(clip), replace(base, augment=aug), seed=0)
    perm = H36M.flip_permutation()
    seen = set()
    for row in rows:
        ref = plain[(row["frame"], row["track_id"])]["joints_3d"].astype(np.float64)
        a = row["affine"][:, :2].astype(np.float64)
        flip = np.linalg.det(a) < 0
        if flip:
            a = np.diag([-1.0, 1.0]) @ a
        a /= np.sqrt(abs(np.linalg.det(a)))  # the rotation part of the crop
        expected = ref.copy()
        expected[:, :2] = ref[:, :2] @ a.T
        if flip:
            expected[:, 0] *= -1
            expected = expected[perm]
        np.testing.assert_allclose(row["joints_3d"], expected, atol=1e-2)
        seen.add(flip)
    assert seen == {True, False}


def test_flow_column_between_consecutive_crops(clips):
    data = DataSpec(window=3, flow="dis", input_size=(64, 64))
    rows = cut_clip(_clip(clips), data, seed=0)
    row = next(r for r in rows if r["frame"] == 5)
    assert row["flow"].shape == (2, 64, 64, 2) and row["flow"].dtype == np.float32
    clamped = next(r for r in rows if r["frame"] == 0)
    assert np.all(clamped["flow"][0] == 0)  # frames 0 and 0: no motion
    flipped = cut_clip(_as_train(_clip(clips)), replace(data, augment=AugmentSpec(
        flip=True, rotation=0.0, scale=(1.0, 1.0), color_jitter=0.0)), seed=0)
    plain = _by_key(rows)
    row = next(r for r in flipped if np.linalg.det(r["affine"][:, :2]) < 0)
    ref = plain[(row["frame"], row["track_id"])]["flow"]
    np.testing.assert_allclose(row["flow"][..., 0], -ref[:, :, ::-1, 0])
    np.testing.assert_allclose(row["flow"][..., 1], ref[:, :, ::-1, 1])


def test_detection_boxes_give_one_untargeted_sample_per_detection(clips, tmp_path):
    clip = _clip(clips)
    doc = json.loads(Path(clip["annotations"]).read_text())
    dets = [{"image_id": a["image_id"], "bbox": [v + 1.0 for v in a["bbox"]], "score": 0.9, "category_id": 1}
            for a in doc["annotations"]]
    dets += [{"image_id": doc["annotations"][0]["image_id"], "bbox": [5, 5, 20, 40], "score": 0.1, "category_id": 1},
             {"image_id": 99990000000, "bbox": [5, 5, 20, 40], "score": 0.9, "category_id": 1}]  # another video
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(dets))
    data = DataSpec(window=3, input_size=(64, 64), det_threshold=0.5)
    rows = cut_clip(clip, data, seed=0, boxes=str(path))
    assert len(rows) == len(doc["annotations"])
    for row in rows:
        assert row["det_score"] == pytest.approx(0.9) and row["track_id"] == -1
        assert row["target_weight"].sum() == 0 and row["heatmaps"].max() == 0
        assert row["tube"].shape == (3, 64, 64, 3)
    # boxes of training samples never come from detections: the train split keeps its targets either way
    gt = cut_clip(clip, data, seed=0)
    assert all(r["target_weight"].sum() > 0 for r in gt)


# -- decoding ---------------------------------------------------------------------------------------------------


class CountingDecoder:
    """``open_video`` that counts every frame it decodes and every reader it opens."""

    def __init__(self):
        self.frames: Counter = Counter()
        self.opened: list[dict] = []

    def __call__(self, path, **kwargs):
        self.opened.append(kwargs)
        reader = open_video(path, **kwargs)
        read = reader.read

        def counted(indices):
            self.frames.update(indices)
            return read(indices)

        reader.read = counted
        return reader


@pytest.mark.parametrize("check_only", [False, True])
def test_every_frame_is_decoded_at_most_once(clips, check_only):
    decoder = CountingDecoder()
    data = DataSpec(window=5, interval=2, context_len=3, input_size=(64, 64), targets="all")
    out = cut_clip_columns(_clip(clips), data, seed=0, open_reader=decoder, check_only=check_only)
    assert len(decoder.opened) == 1 and decoder.opened[0]["num_threads"] == 1
    assert max(decoder.frames.values()) == 1
    assert set(decoder.frames) == set(range(FRAMES))  # every frame is some tube's or context's
    n = out["samples"][0] if check_only else len(out["frame"])
    assert n > 10


def test_decoding_at_reduced_size_when_crops_are_small(clips):
    clip = _clip(clips)
    small = DataSpec(window=1, input_size=(32, 32), box_scale=2.0)  # every crop samples the frame at < 1/2
    decoder = CountingDecoder()
    rows = cut_clip(clip, small, seed=0, open_reader=decoder)
    assert decoder.opened[0]["size"] == (WIDTH // 2, HEIGHT // 2)  # a whole factor
    frames = _decoded(clip)
    for row in rows:
        # the same picture as a full-size decode (blurred like a downscale), not shifted: a 1 px shift costs ~11
        # (the planar decoder averages chroma on its half-size grid: ~4.2 on average here, swscale's ~3.6)
        full = cv2.warpAffine(cv2.GaussianBlur(frames[row["frame"]], (0, 0), 0.8), row["affine"].astype(np.float64),
                              (32, 32), flags=cv2.INTER_LINEAR)
        assert np.abs(row["tube"][0].astype(int) - full).mean() < 6
        # the stored affine is still image -> crop
        back = transform_points(row["keypoints"][:, :2], invert_affine(row["affine"].astype(np.float64)))
        vis = row["keypoints"][:, 2] > 0
        np.testing.assert_allclose(back[vis], row["keypoints_image"][vis, :2], atol=1e-2)
    decoder = CountingDecoder()
    cut_clip(clip, DataSpec(window=1, input_size=(64, 64)), seed=0, open_reader=decoder)
    assert decoder.opened[0]["size"] is None  # 64x64 crops of these players need every pixel


# -- bad input --------------------------------------------------------------------------------------------------


def _bad_clip(clip: dict, tmp_path: Path, kind: str) -> tuple[dict, str]:
    """A copy of ``clip`` broken in one way; returns it and the file the error must name."""
    out = tmp_path / kind
    out.mkdir()
    video, ann, npz = (out / Path(clip[k]).name for k in ("video", "annotations", "points3d"))
    shutil.copy(clip["video"], video)
    shutil.copy(clip["annotations"], ann)
    shutil.copy(clip["points3d"], npz)
    bad = {**clip, "name": f"{clip['name']}-{kind}", "video": str(video), "annotations": str(ann), "points3d": str(npz)}
    doc = json.loads(ann.read_text())
    data = video.read_bytes()
    if kind == "truncated":
        video.write_bytes(data[: len(data) // 2])
        return bad, str(video)
    if kind == "damaged":  # the tail of the media data zeroed: frames from there on cannot be decoded
        moov = data.find(b"moov") - 4
        start = 40 + int(0.6 * (moov - 40))
        video.write_bytes(data[:start] + bytes(moov - start) + data[moov:])
        return bad, str(video)
    if kind == "empty":
        video.write_bytes(b"")
        return bad, str(video)
    if kind == "unreadable":
        video.write_bytes(b"\x00not a video" * 500)
        return bad, str(video)
    if kind == "beyond_end":
        for image in doc["images"]:
            image["id"] += 20
        for a in doc["annotations"]:
            a["image_id"] += 20
    elif kind == "zero_area":
        doc["annotations"][3]["bbox"] = [10.0, 10.0, 0.0, 30.0]
    elif kind == "outside":
        doc["annotations"][3]["bbox"] = [WIDTH + 5.0, 10.0, 20.0, 30.0]
    elif kind == "nan_keypoints":
        doc["annotations"][3]["keypoints"][4] = float("nan")
    elif kind == "nan_3d":
        z = dict(np.load(npz))
        z["joints_2d"][5, 0, 3, 0] = np.nan
        np.savez(npz, **z)
        return bad, str(npz)
    ann.write_text(json.dumps(doc))  # writes NaN as the JSON token NaN
    return bad, str(ann)


BAD_KINDS = ["truncated", "damaged", "empty", "unreadable", "beyond_end", "zero_area", "outside", "nan_keypoints",
             "nan_3d"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_input_is_a_data_error_naming_the_file(clips, tmp_path, kind):
    bad, path = _bad_clip(_clip(clips), tmp_path, kind)
    data = DataSpec(window=3, input_size=(64, 64))
    if kind == "nan_3d":
        data = replace(data, joint_set="h36m")
    with pytest.raises(DataError) as info:
        cut_clip(bad, data, seed=0)
    assert info.value.path == path, str(info.value)
    words = {"truncated": "cannot be", "damaged": "cannot be decoded", "empty": "empty", "unreadable": "cannot be",
             "beyond_end": "beyond the video's 12 frames", "zero_area": "zero or negative area",
             "outside": "outside the 160x120 frame", "nan_keypoints": "non-finite", "nan_3d": "NaN"}[kind]
    assert words in str(info.value)


def _manifest(root: Path, entries: list[dict]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.json").write_text(json.dumps({"clips": [
        {"name": c["name"], "video": c["video"], "annotations": c["annotations"], "points3d": c["points3d"],
         "split": c["split"], "meta": c["meta"]} for c in entries]}))
    return root


@pytest.mark.integration
def test_bad_clips_are_skipped_reported_or_fatal(ray_local, clips, tmp_path):
    good = [{**c, "split": "train"} for c in clips]
    bad = []
    for kind in BAD_KINDS:
        clip, path = _bad_clip(clips[0], tmp_path, kind)
        bad.append(({**clip, "split": "train"}, path))
    entries = load_clips(_manifest(tmp_path / "data", good + [b for b, _ in bad]), (1.0, 0.0, 0.0), seed=0)
    data = DataSpec(window=3, input_size=(64, 64), joint_set="h36m", max_skip_fraction=1.0)
    ds, report = build_split(entries, data, "train", seed=0)
    assert report.clips == len(good) + len(bad) and len(report.skipped) == len(bad)
    assert {s["path"] for s in report.skipped} == {p for _, p in bad}
    assert all(s["reason"] and s["clip"] for s in report.skipped)
    expected = sum(len(cut_clip(c, data, seed=0)) for c in good)
    assert report.samples == expected == ds.count()
    assert report.as_dict()["skipped_clips"] == len(bad)

    with pytest.raises(DataError, match="max_skip_fraction") as info:
        build_split(entries, replace(data, max_skip_fraction=0.05), "train", seed=0)
    assert info.value.path in {p for _, p in bad}
    one_bad = load_clips(_manifest(tmp_path / "one", good + [bad[0][0]]), (1.0, 0.0, 0.0), seed=0)
    with pytest.raises(DataError) as info:
        build_split(one_bad, replace(data, on_error="raise"), "train", seed=0)
    assert info.value.path == bad[0][1]


@pytest.mark.integration
def test_materialised_and_streamed_splits(ray_local, clips):
    entries = [{**c, "split": "train"} for c in clips]
    data = DataSpec(window=3, input_size=(64, 64), context_len=2, context_size=(32, 64))
    ds, report = build_split(entries, data, "train", seed=0)
    batch = next(iter(ds.iter_batches(batch_size=4, batch_format="numpy")))
    assert batch["tube"].shape == (4, 3, 64, 64, 3) and batch["tube"].dtype == np.uint8
    assert batch["context"].shape == (4, 2, 32, 64, 3)
    assert batch["heatmaps"].dtype == np.float32 and batch["affine"].shape == (4, 2, 3)
    assert {"video", "frame", "track_id", "image_id", "head_size", "keypoints_image", "view"} <= set(batch)
    assert report.samples == ds.count() > 0

    decoder_free = replace(data, context_len=0)
    streamed, report2 = build_split(entries, decoder_free, "train", seed=0, stream=True)
    assert report2.samples == report.samples and not report2.skipped

    def epoch():
        rows = streamed.take_all()
        return {(r["video"], r["frame"], r["track_id"]): r["affine"] for r in rows}

    first, second = epoch(), epoch()
    assert first.keys() == second.keys() and len(first) == report.samples
    assert not all(np.allclose(first[k], second[k]) for k in first)  # fresh augmentation each epoch
