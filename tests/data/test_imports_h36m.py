"""``data import h36m``: the four real Human3.6M frames of ``../shared/fixtures/h36m`` in MMPose's layout, a
Human3.6M video layout built from them (VideoPose3D's pickled 3D and 2D archives), and the files an import
refuses."""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from sportpose.data.dataset import load_clips
from sportpose.data.imports import run_import
from sportpose.data.imports.h36m import project
from sportpose.data.tubes import cut_clip_columns
from sportpose.errors import DataError
from sportpose.models.skeleton import H36M
from sportpose.spec.data import DataSpec

H36M_FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "h36m"
pytestmark = pytest.mark.skipif(not H36M_FIXTURES.is_dir(), reason=f"the Human3.6M fixtures are not at {H36M_FIXTURES}")
ARCHIVE = H36M_FIXTURES / "test_h36m_body3d.npz"


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("h36m-import")
    run_import("h36m", H36M_FIXTURES, out, progress=False)
    return out


def test_clips_follow_the_subject_splits_with_the_mmpose_numbering_and_bone_lengths(imported):
    doc = json.loads((imported / "manifest.json").read_text())
    clips = {c["name"]: c for c in doc["clips"]}
    assert doc["dataset"] == "h36m" and not doc["skipped"]
    assert {n: c["split"] for n, c in clips.items()} == {
        "S1_Directions_1.54138969": "train", "S5_SittingDown.54138969": "train", "S7_Greeting.55011271": "train",
        "S8_WalkDog_1.55011271": "val"}
    assert all(c["frames"]["step"] == 5 for c in clips.values())  # MMPose keeps every 5th training frame
    assert clips["S5_SittingDown.54138969"]["frames"]["first"] == 2061
    assert all(c["stats"]["projection_error_px"] < 0.2 for c in clips.values())
    s = np.load(ARCHIVE)["S"][0, :, :3] * 1000.0
    bones = [np.linalg.norm(s[i] - s[j]) for i, j in H36M.edges]
    np.testing.assert_allclose(clips["S1_Directions_1.54138969"]["meta"]["bone_lengths"], bones, atol=0.01)
    assert clips["S8_WalkDog_1.55011271"]["meta"]["action"] == "WalkDog 1"


def test_reimport_of_an_unchanged_root_is_a_no_op(imported):
    before = (imported / "manifest.json").stat().st_mtime_ns
    assert run_import("h36m", H36M_FIXTURES, imported, progress=False).up_to_date
    assert (imported / "manifest.json").stat().st_mtime_ns == before


def test_tubes_carry_the_archive_s_root_relative_mm_and_its_2d_part(imported):
    data = DataSpec(source="manifest", root=str(imported), joint_set="h36m", points3d=True, input_size=(64, 64),
                    window=3, tube_anchor="end", targets="all", flow="none", max_samples_per_clip=None)
    archive = np.load(ARCHIVE)
    for clip in load_clips(imported, (1.0, 0.0, 0.0), 0):
        row = next(i for i, name in enumerate(archive["imgname"]) if f"/{clip['name']}/" in f"/{name}")
        clip = {**clip, "split": "val"}  # no augmentation: targets as the archive has them
        cols = cut_clip_columns(clip, data, seed=0)
        assert len(cols["frame"]) == 1 and cols["tube"].shape == (1, 3, 64, 64, 3) and cols["tube"].std() > 10
        s = archive["S"][row, :, :3] * 1000.0
        np.testing.assert_allclose(cols["joints_3d"][0, -1], s - s[0], atol=0.01)  # root-relative mm
        np.testing.assert_allclose(cols["keypoints_image"][0, :, :2], archive["part"][row, :, :2], atol=1e-3)
        # the crop keypoints are part through the crop affine
        crop = archive["part"][row, :, :2] @ cols["affine"][0][:, :2].T + cols["affine"][0][:, 2]
        np.testing.assert_allclose(cols["keypoints"][0, -1, :, :2], crop, atol=1e-3)
        assert np.isfinite(cols["bone_lengths"]).all() and cols["bone_lengths"][0, 1] > 300  # a thigh, mm


def _copy_fixture(tmp_path: Path) -> Path:
    root = tmp_path / "h36m"
    shutil.copytree(H36M_FIXTURES, root)
    return root


def test_an_archive_without_s_is_skipped_naming_the_file_and_field(tmp_path):
    root = _copy_fixture(tmp_path)
    a = dict(np.load(ARCHIVE))
    np.savez(root / "extra_body3d.npz", **{k: v for k, v in a.items() if k != "S"})
    result = run_import("h36m", root, tmp_path / "out", progress=False)
    assert len(result.clips) == 4
    [skip] = result.skipped
    assert skip["path"] == str(root / "extra_body3d.npz") and "field S missing" in skip["reason"]
    (root / "test_h36m_body3d.npz").unlink()
    with pytest.raises(DataError, match="no usable clip.*field S missing"):
        run_import("h36m", root, tmp_path / "out2", progress=False)


def test_missing_frames_and_a_wrong_camera_skip_their_clips(tmp_path):
    root = _copy_fixture(tmp_path)
    next((root / "S5" / "S5_SittingDown.54138969").glob("*.jpg")).unlink()
    cams = json.loads((root / "cameras.json").read_text())
    cams["S7/55011271"]["f"] = [[v[0] * 1.05] for v in cams["S7/55011271"]["f"]]  # another lens
    (root / "cameras.json").write_text(json.dumps(cams))
    result = run_import("h36m", root, tmp_path / "out", progress=False)
    assert [c["name"] for c in result.clips] == ["S1_Directions_1.54138969", "S8_WalkDog_1.55011271"]
    reasons = {Path(s["path"].split(" (")[1].rstrip(")")).name: s["reason"] for s in result.skipped}
    assert "not on disk, first" in reasons["S5_SittingDown.54138969"]
    assert "px from part" in reasons["S7_Greeting.55011271"] and len(reasons) == 2


def _pickled_npz(path: Path, **values) -> None:
    """An archive as VideoPose3D's scripts write it: dicts stored as pickled 0-d object arrays."""
    arrays = {}
    for key, value in values.items():
        arr = np.empty((), dtype=object)
        arr[()] = value
        arrays[key] = arr
    np.savez(path, **arrays)


def test_the_video_layout_projects_world_joints_through_the_cameras(tmp_path):
    """S1's fixture frame as a 6-frame video, its S turned into world coordinates with the published camera."""
    root = tmp_path / "h36m-videos"
    (root / "S1" / "Videos").mkdir(parents=True)
    cams = json.loads((H36M_FIXTURES / "cameras.json").read_text())
    shutil.copy(H36M_FIXTURES / "cameras.json", root / "cameras.json")
    image = cv2.imread(str(next((H36M_FIXTURES / "S1" / "S1_Directions_1.54138969").glob("*.jpg"))))
    writer = cv2.VideoWriter(str(root / "S1" / "Videos" / "Directions 1.54138969.mp4"),
                             cv2.VideoWriter_fourcc(*"mp4v"), 50, (image.shape[1], image.shape[0]))
    for _ in range(6):
        writer.write(image)
    writer.release()
    cam = {k: np.asarray(v, np.float64) for k, v in cams["S1/54138969"].items() if k in ("R", "T", "c", "f", "k", "p")}
    cam = {k: (v.reshape(3, 3) if k == "R" else v.reshape(-1)) for k, v in cam.items()}
    s = np.load(ARCHIVE)["S"][0, :, :3]  # (17, 3) camera metres
    world = s @ cam["R"] + cam["T"]  # X_cam = R (X_world - T)
    positions = np.repeat(world[None], 6, axis=0)  # (6, 17, 3) metres
    _pickled_npz(root / "data_3d_h36m.npz", positions_3d={"S1": {"Directions 1": positions}})
    part = project(cam, s)  # (17, 2)
    _pickled_npz(root / "data_2d_h36m_gt.npz", positions_2d={"S1": {"Directions 1": [np.repeat(part[None], 6, 0)] * 4}},
                 metadata={"layout_name": "h36m", "num_joints": 17})
    result = run_import("h36m", root, tmp_path / "out", progress=False)
    [clip] = result.clips
    assert clip["split"] == "train" and clip["stats"]["labelled_frames"] == 6, result.skipped
    z = np.load(clip["points3d"])
    np.testing.assert_allclose(z["joints_cam"][3, 0], s * 1000.0, atol=1e-3)
    np.testing.assert_allclose(z["joints_2d"][0, 0], np.load(ARCHIVE)["part"][0, :, :2], atol=0.1)
    # a 2D file that disagrees with the camera: the clip is skipped, with the distance
    _pickled_npz(root / "data_2d_h36m_gt.npz", positions_2d={"S1": {"Directions 1": [np.repeat(part[None] + 9, 6, 0)] * 4}},
                 metadata={"layout_name": "h36m", "num_joints": 17})
    with pytest.raises(DataError, match="no usable clip.*lies 9.0 px from data_2d_h36m_gt.npz"):
        run_import("h36m", root, tmp_path / "out2", progress=False)
