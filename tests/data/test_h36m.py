"""Human3.6M in VideoPose3D's layout as a lifting data source: windows, normalisation, splits, bad files, and a
lifting-only run on the stage engine (issue 7, acceptance 4).

The files are written here in VideoPose3D's layout: ``positions_3d`` a pickled dict of (F, 32, 3) world
metres, ``positions_2d`` a pickled dict of lists of 4 per-camera (F, 17, 2) pixel arrays, ``metadata``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from sportpose.data import h36m
from sportpose.data.formats import H36M_KEPT_JOINTS
from sportpose.errors import DataError, SpecError
from sportpose.models.skeleton import H36M
from sportpose.spec.experiment import DataSpec, load_spec

# A standing adult in the h36m order, body frame (x forward, y left, z up), metres.
TEMPLATE = np.array([
    [0, 0, 1.0], [0, -0.12, 1.0], [0, -0.12, 0.55], [0, -0.12, 0.1], [0, 0.12, 1.0], [0, 0.12, 0.55], [0, 0.12, 0.1],
    [0, 0, 1.25], [0, 0, 1.5], [0, 0, 1.6], [0, 0, 1.72], [0, 0.18, 1.48], [0, 0.2, 1.2], [0, 0.2, 0.95],
    [0, -0.18, 1.48], [0, -0.2, 1.2], [0, -0.2, 0.95],
])
SUBJECTS = {"S1": 1.0, "S5": 0.95, "S8": 1.05, "S9": 0.9}  # body scale
ACTIONS = ("Walking 1", "Eating")
FRAMES = 60
FOCAL, CENTRE = 1100.0, 500.0  # px, for 1000 x 1000 images


def _poses(scale: float, phase: float, frames: int) -> np.ndarray:
    """(F, 17, 3) world metres: a body turning on the spot while it swings its arms and steps."""
    t = np.arange(frames)[:, None]
    body = np.broadcast_to(TEMPLATE * scale, (frames, 17, 3)).copy()
    swing = 0.25 * np.sin(0.3 * t + phase)  # (F, 1)
    body[:, [13, 12], 0] += swing * np.array([1.0, 0.5])  # left arm forward and back
    body[:, [16, 15], 0] -= swing * np.array([1.0, 0.5])
    body[:, [3, 2], 0] -= swing * np.array([0.8, 0.4])  # legs opposite to the arms
    body[:, [6, 5], 0] += swing * np.array([0.8, 0.4])
    yaw = phase + 0.05 * t[:, 0]
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.stack([np.stack([c, -s, 0 * c], -1), np.stack([s, c, 0 * c], -1), np.stack([0 * c, 0 * c, 1 + 0 * c], -1)], 1)
    world = np.einsum("fij,fkj->fki", rot, body)  # (F, 17, 3)
    return world + np.array([0.3 * math.cos(phase), 0.3 * math.sin(phase), 0.0])


def _project(world: np.ndarray, camera: int) -> np.ndarray:
    """(F, 17, 2) pixels of a camera 5 m away at azimuth 45° + 90°·camera, 1.5 m high, looking at the origin."""
    azimuth = math.radians(45 + 90 * camera)
    eye = np.array([5 * math.cos(azimuth), 5 * math.sin(azimuth), 1.5])
    forward = -eye / np.linalg.norm(eye)
    right = np.cross(forward, [0, 0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    cam = (world - eye) @ np.stack([right, down, forward]).T  # (F, 17, 3) camera metres
    return FOCAL * cam[..., :2] / cam[..., 2:] + CENTRE


def write_videopose3d(folder: Path, skip: tuple[str, str] | None = None, layout: str = "h36m",
                      longer_2d: int = 2) -> tuple[Path, Path]:
    """``data_3d_h36m.npz`` and ``data_2d_h36m_gt.npz`` in VideoPose3D's layout; ``skip`` leaves one
    (subject, action) out of the 2D file; the 2D sequences run ``longer_2d`` frames past the mocap."""
    rng = np.random.default_rng(0)
    positions_3d, positions_2d = {}, {}
    for i, (subject, scale) in enumerate(SUBJECTS.items()):
        positions_3d[subject], positions_2d[subject] = {}, {}
        for j, action in enumerate(ACTIONS):
            world = _poses(scale, phase=1.3 * i + 0.7 * j, frames=FRAMES + longer_2d)  # (F+, 17, 3) m
            full = rng.normal(size=(len(world), 32, 3))  # the 15 joints VideoPose3D drops: noise
            full[:, list(H36M_KEPT_JOINTS)] = world
            positions_3d[subject][action] = full[:FRAMES]  # (F, 32, 3) metres
            if (subject, action) != skip:
                positions_2d[subject][action] = [_project(world, c).astype(np.float32) for c in range(4)]
    path_3d, path_2d = folder / "data_3d_h36m.npz", folder / "data_2d_h36m_gt.npz"
    np.savez_compressed(path_3d, positions_3d=positions_3d)
    metadata = {"layout_name": layout, "num_joints": 17, "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
    np.savez_compressed(path_2d, positions_2d=positions_2d, metadata=metadata)
    return path_3d, path_2d


def _data(path_3d: Path, path_2d: Path, **h36m_fields) -> DataSpec:
    config = {"data_3d": str(path_3d), "data_2d": str(path_2d), "train": ("S1", "S5"), "val": ("S8",),
              "test": ("S9",), **h36m_fields}
    return DataSpec(source="h36m", joint_set="h36m", tube_anchor="end", window=4, interval=2, frame_stride=3,
                    h36m=h36m.H36MConfig(**config))


def test_sequences_are_normalised_root_relative_and_split_by_subject(tmp_path):
    path_3d, path_2d = write_videopose3d(tmp_path)
    data = _data(path_3d, path_2d, cameras=(0, 2))
    sequences, skipped = h36m.load_sequences(data.h36m)
    assert not skipped
    assert len(sequences) == len(SUBJECTS) * len(ACTIONS) * 2
    assert {s.split for s in sequences if s.subject in ("S1", "S5")} == {"train"}
    assert {(s.subject, s.split) for s in sequences if s.subject in ("S8", "S9")} == {("S8", "val"), ("S9", "test")}

    seq = next(s for s in sequences if (s.subject, s.action, s.camera) == ("S5", "Eating", 2))
    world = _poses(SUBJECTS["S5"], phase=1.3 + 0.7, frames=FRAMES) * 1000.0  # mm
    assert seq.joints_3d.shape == (FRAMES, 17, 3)  # the 2D sequence, 2 frames longer, is cut to the mocap
    np.testing.assert_allclose(seq.joints_3d, world - world[:, :1], atol=1e-2)  # root-relative world mm
    pixels = _project(world / 1000.0, 2)
    np.testing.assert_allclose(seq.keypoints_2d, pixels / 1000.0 * 2.0 - 1.0, atol=1e-5)  # 1000 x 1000 assumed
    assert np.abs(seq.keypoints_2d).max() <= 1.0
    bones = [np.linalg.norm(TEMPLATE[a] - TEMPLATE[b]) for a, b in H36M.edges]
    rigid = [0, 3, 6, 7, 8, 9, 10, 13]  # the bones the swinging arms and legs leave unchanged
    np.testing.assert_allclose(seq.bone_lengths[rigid], np.array(bones)[rigid] * 950.0, rtol=1e-4)  # S5's scale

    cols = h36m.cut_windows(seq, data)
    anchors = np.arange(0, FRAMES, 3)
    assert cols["keypoints_2d"].shape == (len(anchors), 4, 17, 2) and cols["joints_3d"].shape == (len(anchors), 4, 17, 3)
    np.testing.assert_array_equal(cols["frame"], anchors)
    np.testing.assert_array_equal(cols["tube_frames"][1], [0, 0, 1, 3])  # anchor 3, interval 2, clamped at 0
    np.testing.assert_array_equal(cols["joints_3d"][5, -1], seq.joints_3d[15])  # the anchor is the last frame
    assert cols["video"][0] == "S5/Eating/cam2" and cols["view"][0] == "cam2" and cols["track_id"][0] == 2
    assert cols["bone_lengths"].shape == (len(anchors), 16)
    assert len(set(cols["image_id"])) == len(anchors)
    walking = next(s for s in sequences if s.action == "Walking 1")
    assert h36m.cut_windows(walking, data)["action"][0] == "Walking"  # per action, without the take number


def test_bone_lengths_are_the_training_subjects_means(tmp_path):
    """SPEC §5: L_skel's reference is the training set's mean per group (Human3.6M: per subject). A training
    subject carries its own mean; a validation or test subject, absent from training, the training subjects'
    mean, never its own skeleton."""
    path_3d, path_2d = write_videopose3d(tmp_path)
    sequences, _ = h36m.load_sequences(_data(path_3d, path_2d).h36m)
    by_subject = {s.subject: s.bone_lengths for s in sequences}
    own = {s: h36m._bones(seq.joints_3d).mean(0) for s, seq in ((q.subject, q) for q in sequences)}
    for subject in ("S1", "S5"):  # training: their own means (over the frames of every action)
        means = np.concatenate([h36m._bones(q.joints_3d) for q in sequences if q.subject == subject]).mean(0)
        np.testing.assert_allclose(by_subject[subject], means, rtol=1e-4)
    training = (by_subject["S1"] + by_subject["S5"]) / 2.0
    for subject in ("S8", "S9"):
        np.testing.assert_allclose(by_subject[subject], training, rtol=1e-5)
        assert np.abs(by_subject[subject] - own[subject]).max() > 1.0  # their own skeletons differ (mm)


def test_resolution_from_the_config_and_a_sampling_cap(tmp_path):
    path_3d, path_2d = write_videopose3d(tmp_path)
    data = _data(path_3d, path_2d, resolution=(1000, 1002))
    seq = next(s for s in h36m.load_sequences(data.h36m)[0] if (s.subject, s.action) == ("S1", "Walking 1"))
    pixels = _project(_poses(SUBJECTS["S1"], phase=0.0, frames=FRAMES), 0)
    np.testing.assert_allclose(seq.keypoints_2d[..., 1], pixels[..., 1] / 500.0 - 1.002, atol=1e-5)  # VideoPose3D's y
    capped = h36m.cut_windows(seq, DataSpec(**{**data.__dict__, "max_samples_per_clip": 4}))
    np.testing.assert_array_equal(capped["frame"], [0, 18, 39, 57])


@pytest.mark.parametrize("case, field", [
    ("coco layout", "metadata.layout_name"),
    ("camera 4", "positions_2d[S1][Eating]"),
    ("subject S6", "positions_3d[S6]"),
])
def test_bad_files_name_the_file_and_field(tmp_path, case, field):
    path_3d, path_2d = write_videopose3d(tmp_path, layout="coco" if case == "coco layout" else "h36m")
    kwargs = {"camera 4": {"cameras": (4,)}, "subject S6": {"test": ("S6",)}}.get(case, {})
    with pytest.raises(DataError) as err:
        h36m.load_sequences(_data(path_3d, path_2d, **kwargs).h36m)
    assert err.value.field == field


def test_an_action_without_2d_is_skipped_and_reported(tmp_path):
    path_3d, path_2d = write_videopose3d(tmp_path, skip=("S5", "Walking 1"))
    sequences, skipped = h36m.load_sequences(_data(path_3d, path_2d).h36m)
    assert len(sequences) == len(SUBJECTS) * len(ACTIONS) - 1
    assert skipped == [{"clip": "S5/Walking 1", "path": str(path_2d),
                        "reason": "positions_2d[S5][Walking 1]: missing (no 2D keypoints)"}]


LIFT_SPEC = """
name: h36m-lift
seed: 0
data:
  source: h36m
  joint_set: h36m
  tube_anchor: end
  window: 4
  h36m: {{data_3d: {path_3d}, data_2d: {path_2d}, train: [S1, S5], val: [S8], test: [S9], cameras: [0, 1]}}
model: {{kind: stsp, backbone: hrnet_w18_small, width: 16, window: 4, tau: 3, gat_hidden: 32, tmp_dim: 32,
        lift_input: keypoints_2d}}
train:
  stages:
    lift: {{task: lift, epochs: 2, batch_size: 16, optimizer: {{lr: 0.002}}, scaling: {{num_workers: 1}},
           metric: val_mpjpe_mm}}
register: {{enabled: false}}
"""


@pytest.mark.parametrize("text, key", [
    ("stages: {lift: {task: full}}", "train.stages.lift.task"),
    ("stages: {lift: {cache_frozen: true}}", "train.stages.lift.cache_frozen"),
    ("register: {enabled: true}", "register.enabled"),
    ("model: {lift_input: images}", "model.lift_input"),
    ("data: {flow: dis}", "data.flow"),
    ("data: {h36m: {data_2d: ''}}", "data.h36m.data_2d"),
    ("data: {h36m: {val: [S1]}}", "data.h36m.val"),
])
def test_lifting_spec_is_checked(tmp_path, text, key):
    import yaml

    raw = yaml.safe_load(LIFT_SPEC.format(path_3d="a.npz", path_2d="b.npz"))
    change = yaml.safe_load(text)
    section = raw["train"] if "stages" in change else raw
    for name, value in change.items():
        target = section.setdefault(name, {})
        for k, v in value.items():
            target[k] = {**target.get(k, {}), **v} if isinstance(v, dict) else v
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert err.value.key == key


@pytest.mark.integration
def test_lifting_only_run_on_the_stage_engine_reports_mpjpe(ray_local, tmp_path):
    from sportpose.pipelines.train import run_pipeline
    from sportpose.registry import tracking

    path_3d, path_2d = write_videopose3d(tmp_path)
    spec_path = tmp_path / "h36m_lift.yaml"
    spec_path.write_text(LIFT_SPEC.format(path_3d=path_3d, path_2d=path_2d))
    lines: list[str] = []
    result = run_pipeline(load_spec(spec_path), log=lines.append)

    assert result.data_reports["train"]["samples"] == 2 * 2 * 2 * FRAMES  # subjects x actions x cameras x anchors
    history = result.stages["lift"].history
    assert [h["epoch"] for h in history] == [0, 1] and history[-1]["loss"] < history[0]["loss"]
    ev = result.evaluation
    assert ev["split"] == "test" and ev["samples"] == len(ACTIONS) * 2 * FRAMES
    assert 0.0 < ev["mpjpe"] < ev["mpjpe_mean_pose"]
    assert np.isfinite([ev["p_mpjpe"], ev["ts"], ev["ts_mm_per_s2"], ev["ts_no_tmp"]]).all()
    assert sorted(ev["groups"]) == ["Eating", "Walking"]  # per action, then over actions
    assert ev["ts_mm_per_s2"] == pytest.approx(ev["ts"] * h36m.FPS**2, rel=1e-6)
    metrics = tracking.client().get_run(result.parent_run_id).data.metrics
    assert metrics["mpjpe"] == pytest.approx(ev["mpjpe"]) and "mpjpe.Walking" in metrics and "ts.Eating" in metrics
    assert any(line.startswith("per group:") for line in lines)
