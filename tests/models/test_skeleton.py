"""Joint sets: sizes, edges, flip pairs, angle limits and the conversion tables."""

import numpy as np
import pytest

from sportpose.models.skeleton import CONVERSIONS, H36M, JOINT_SETS, POSETRACK, POSETRACK15, convert, joint_angles


@pytest.mark.parametrize("name", sorted(JOINT_SETS))
def test_joint_set_is_consistent(name):
    s = JOINT_SETS[name]
    assert len(set(s.joints)) == s.num_joints
    for a, b in s.edges + s.flip_pairs:
        assert 0 <= a < s.num_joints and 0 <= b < s.num_joints and a != b
    perm = s.flip_permutation()
    assert sorted(perm) == list(range(s.num_joints))
    assert (perm[perm] == np.arange(s.num_joints)).all()
    for a, b in s.flip_pairs:  # left/right pairs really are left and right
        names = s.joints[a] + s.joints[b]
        assert ("left" in names and "right" in names) or ("l_" in names and "r_" in names)
    adj = s.adjacency()
    assert (adj == adj.T).all() and adj.diagonal().all()


def test_sizes():
    assert POSETRACK.num_joints == 17 and POSETRACK15.num_joints == 15 and H36M.num_joints == 17
    assert JOINT_SETS["synth"].num_joints == 21


def test_posetrack_to_poseval_order():
    pts = np.arange(17, dtype=float)[:, None].repeat(2, 1)
    out = convert(pts, "posetrack", "posetrack15")
    names15 = [POSETRACK.joints[int(v)] for v in out[:, 0]]
    assert names15 == ["right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
                       "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow",
                       "left_wrist", "head_bottom", "nose", "head_top"]
    back = convert(out, "posetrack15", "posetrack")
    ears = [POSETRACK.index("left_ear"), POSETRACK.index("right_ear")]
    assert np.isnan(back[ears]).all()
    keep = [i for i in range(17) if i not in ears]
    assert np.allclose(back[keep], pts[keep])


def test_every_table_has_destination_length():
    for (src, dst), table in CONVERSIONS.items():
        assert len(table) == JOINT_SETS[dst].num_joints, (src, dst)
        for entry in table:
            idx = () if entry is None else (entry,) if isinstance(entry, int) else entry
            assert all(0 <= i < JOINT_SETS[src].num_joints for i in idx)


def test_synth_names_map_to_same_names():
    pts = np.random.default_rng(0).normal(size=(21, 3))
    out = convert(pts, "synth", "posetrack")
    synth = JOINT_SETS["synth"]
    pairs = {"nose": "nose", "head_bottom": "neck_base", "head_top": "head_top", "left_shoulder": "l_shoulder",
             "right_wrist": "r_wrist", "left_ankle": "l_foot", "right_hip": "r_hip"}
    for pt_name, s_name in pairs.items():
        assert np.allclose(out[POSETRACK.index(pt_name)], pts[synth.index(s_name)])


def test_averaged_entries():
    pts = np.random.default_rng(1).normal(size=(17, 2))
    out = convert(pts, "posetrack", "h36m")
    assert np.allclose(out[0], pts[[11, 12]].mean(0))


def test_unknown_conversion():
    with pytest.raises(KeyError, match="no joint conversion"):
        convert(np.zeros((15, 2)), "posetrack15", "h36m")


def test_joint_angles():
    pts = np.zeros((17, 3))
    pts[H36M.index("l_shoulder")] = [0, 0, 0]
    pts[H36M.index("l_elbow")] = [1, 0, 0]
    pts[H36M.index("l_wrist")] = [1, 1, 0]
    angles = joint_angles(pts, H36M)
    assert angles[0] == pytest.approx(90.0)
