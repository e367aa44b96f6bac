"""L_skel's reference bone lengths per body-scale group, from the training split (SPEC §5 GSR), end to end on
generated SynthCourt clips: manifest -> load_clips -> the samples' ``bone_lengths`` column -> STSPNet.loss."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from sportpose.data import synthcourt
from sportpose.data.bones import OVERALL, bone_lengths_mm, training_bone_lengths
from sportpose.data.dataset import load_clips
from sportpose.data.tubes import cut_clip_columns
from sportpose.errors import DataError
from sportpose.models.skeleton import convert
from sportpose.models.stsp import ADULT_BONE_LENGTHS_MM, STSPConfig, STSPNet
from sportpose.spec.data import DataSpec, SynthConfig

DATA = DataSpec(joint_set="h36m", points3d=True, input_size=(64, 64), window=2, tube_anchor="end", targets="all",
                flow="none", min_visible_joints=1)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[dict]:
    root = tmp_path_factory.mktemp("synthcourt_bones")
    synthcourt.generate(root, SynthConfig(clips=8, frames=4, width=160, height=120, min_players=1, max_players=2,
                                          child_fraction=0.5, seed=3), progress=False)
    out = load_clips(root, (0.5, 0.0, 0.5), seed=0)
    groups = {(c["split"], c["bone_group"]) for c in out}
    assert {("train", "child"), ("train", "adult"), ("test", "child"), ("test", "adult")} <= groups
    return out


def _players(clip: dict) -> list[tuple[bool, np.ndarray]]:
    """(is_child, (E,) mm) of each player of a clip, measured here from its 3D file (frame 0: rigid bones)."""
    with np.load(clip["points3d"]) as z:
        joints = convert(z["joints_cam"], "synth", "h36m")  # (F, P, 17, 3) mm
        return [(bool(z["is_child"][p]), bone_lengths_mm(joints[0, p])) for p in range(joints.shape[1])]


def _skeleton_loss_mm(rows: dict[str, np.ndarray], lengths: np.ndarray | None) -> float:
    """STSPNet's L_skel (mm) of the rows' ground-truth skeletons taken as the prediction, against the rows'
    ``bone_lengths`` (``lengths`` None) or against ``lengths`` for every row."""
    model = STSPNet(STSPConfig(backbone="hrnet_w18_small", width=8, gat_hidden=16, tmp_dim=16, tmp_heads=2))
    gt = torch.from_numpy(rows["joints_3d"])  # (N, T, 17, 3) mm, root-relative
    reference = rows["bone_lengths"] if lengths is None else np.broadcast_to(lengths, rows["bone_lengths"].shape)
    batch = {"joints_3d": gt, "bone_lengths": torch.from_numpy(np.ascontiguousarray(reference, np.float32))}
    terms = model.loss({"joints_3d_gsr": gt, "joints_3d": gt}, batch, task="lift")
    return float(terms["loss_skel"]) * 1000.0


def test_group_means_are_over_the_training_players_only(clips):
    """child / adult means over the training clips' players (each player once), the overall mean over all of
    them; the held-out clips' players take no part."""
    groups = clips[0]["bone_groups"]
    assert all(c["bone_groups"] == groups for c in clips)  # computed once, handed to every clip
    train = [p for c in clips if c["split"] == "train" for p in _players(c)]
    for name, child in (("child", True), ("adult", False)):
        expected = np.mean([v for is_child, v in train if is_child == child], axis=0)
        np.testing.assert_allclose(groups[name], expected, atol=0.01)
    np.testing.assert_allclose(groups[OVERALL], np.mean([v for _, v in train], axis=0), atol=0.01)
    everyone = [p for c in clips for p in _players(c)]
    assert np.abs(np.mean([v for c, v in everyone if c], axis=0) - groups["child"]).max() > 0.5  # mm
    # children's bones are shorter, every one of them (the head least: it scales as height**0.35)
    ratio = np.array(groups["child"]) / np.array(groups["adult"])
    assert (ratio < 0.95).all() and ratio.mean() < 0.8


def test_a_child_skeleton_is_held_to_the_child_bones_not_the_adult_template(clips):
    """A held-out child's ground-truth skeleton, cut by the pipeline, gets L_skel near 0 against the row's
    lengths (the within-group spread of children's sizes), where the adult template gave 50-114 mm per bone."""
    groups = clips[0]["bone_groups"]
    child = next(c for c in clips if c["split"] == "test" and c["bone_group"] == "child")
    rows = cut_clip_columns(child, DATA, seed=0)
    assert len(rows["frame"]) > 0
    np.testing.assert_allclose(rows["bone_lengths"], np.broadcast_to(groups["child"], rows["bone_lengths"].shape),
                               atol=1e-3)
    own = _skeleton_loss_mm(rows, None)
    template = _skeleton_loss_mm(rows, np.array(ADULT_BONE_LENGTHS_MM))
    assert own < 30.0 and template > 60.0 and own < 0.35 * template, (own, template)
    # the children's own sizes are what is left: against their own bones the loss is 0
    sizes = np.array([v for _, v in _players(child)])  # (P, E)
    exact = _skeleton_loss_mm({**rows, "bone_lengths": sizes[rows["track_id"]].astype(np.float32)}, None)
    assert exact < 0.05
    # an adult of the held-out clips gets the adult means
    adult = next(c for c in clips if c["split"] == "test" and c["bone_group"] == "adult")
    adult_rows = cut_clip_columns(adult, DATA, seed=0)
    np.testing.assert_allclose(adult_rows["bone_lengths"][0], groups["adult"], atol=1e-3)
    assert _skeleton_loss_mm(adult_rows, None) < 30.0


def test_a_group_without_training_players_gets_the_overall_training_mean(clips):
    """No child in the training split: a held-out child gets the overall training mean (here the adults')."""
    no_children = [{**c, "split": "val"} if c["split"] == "train" and c["bone_group"] == "child" else c
                   for c in clips]
    groups = training_bone_lengths(no_children)
    assert "child" not in groups and set(groups) == {"adult", OVERALL}
    child = next(c for c in no_children if c["split"] == "test" and c["bone_group"] == "child")
    rows = cut_clip_columns({**child, "bone_groups": groups}, DATA, seed=0)
    np.testing.assert_allclose(rows["bone_lengths"][0], groups[OVERALL], atol=1e-3)
    # without any training 3D there are no lengths: NaN, the model's template
    rows = cut_clip_columns({**child, "bone_groups": training_bone_lengths([])}, DATA, seed=0)
    assert np.isnan(rows["bone_lengths"]).all()


def test_a_malformed_measured_length_names_the_key(clips):
    bad = [{**c, "bone_lengths": [1.0, 2.0]} if c["split"] == "train" else c for c in clips]
    with pytest.raises(DataError) as info:
        training_bone_lengths(bad)
    assert "meta.bone_lengths" in str(info.value) and str(Path(bad[0]["annotations"]).parent) in str(info.value)


def test_a_malformed_manifest_length_is_a_data_error_naming_the_key(clips, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(Path(clips[0]["video"]).parent.parent, root)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["clips"][1]["meta"]["bone_lengths"] = [100.0] * 15 + [-1.0]
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError) as info:
        load_clips(root, (0.5, 0.0, 0.5), seed=0)
    assert "clips[1].meta.bone_lengths" in str(info.value) and "manifest.json" in str(info.value)
