"""Track association by box IoU and per-joint-sigma keypoint similarity (Hungarian, constant-velocity
prediction), non-maximum suppression, propagated boxes."""

import numpy as np
import pytest

from sportpose.inference.tracker import PoseTracker, box_iou, keypoint_box, nms, oks_sigmas
from sportpose.models.skeleton import H36M, POSETRACK, SYNTH


def person(x: float, y: float, w: float = 20.0, h: float = 60.0):
    box = np.array([x, y, w, h])
    kp = np.stack([np.linspace(x + 2, x + w - 2, 17), np.linspace(y + 2, y + h - 2, 17)], axis=1)
    return box, kp, np.full(17, 0.9)


def test_box_iou_is_exact_and_symmetric():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 0, 10, 10], [20, 20, 5, 5], [0, 0, 10, 10]])
    iou = box_iou(a, b)
    assert np.allclose(iou, [[50 / 150, 0.0, 1.0]])
    assert np.allclose(box_iou(b, a).T, iou)


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = [np.array([0, 0, 10, 10.0]), np.array([1, 0, 10, 10.0]), np.array([50, 50, 10, 10.0])]
    assert nms(boxes, [0.5, 0.9, 0.1]) == [1, 2]


def test_ids_follow_people_and_new_people_get_new_ids():
    tracker = PoseTracker()
    a, b = person(10, 10), person(100, 10)
    assert tracker.update(0, [a[0], b[0]], [a[1], b[1]], [a[2], b[2]]) == [0, 1]
    # both move a little, listed in the other order; a third person appears far away
    a2, b2, c = person(14, 12), person(97, 11), person(200, 50)
    ids = tracker.update(1, [b2[0], c[0], a2[0]], [b2[1], c[1], a2[1]], [b2[2], c[2], a2[2]])
    assert ids == [1, 2, 0]


def test_tracks_end_after_max_age_and_ids_are_not_reused():
    tracker = PoseTracker(max_age=2)
    a = person(10, 10)
    assert tracker.update(0, [a[0]], [a[1]], [a[2]]) == [0]
    assert tracker.update(5, [a[0]], [a[1]], [a[2]]) == [1]  # track 0 ended unseen for 5 frames


def test_lost_tracks_propagate_a_box_from_their_last_pose():
    tracker = PoseTracker()
    a, b = person(10, 10), person(100, 10)
    tracker.update(0, [a[0], b[0]], [a[1], b[1]], [a[2], b[2]])
    ids = tracker.update(1, [a[0]], [a[1]], [a[2]])  # b is missed in frame 1
    lost = tracker.propagated_boxes(1, ids)
    assert list(lost) == [1]
    assert box_iou(lost[1], b[0])[0, 0] > 0.6
    tracker.extend(1, 1, lost[1], b[1], b[2])
    assert tracker.propagated_boxes(2, []) .keys() == {0, 1}


def test_keypoint_box_needs_confident_joints():
    kp = np.array([[0, 0], [10, 20], [5, 5], [3, 8]], float)
    assert keypoint_box(kp, np.array([0.9, 0.9, 0.9, 0.1]), 0.5) is None
    box = keypoint_box(kp, np.full(4, 0.9), 0.5, pad=0.0)
    assert np.allclose(box, [0, 0, 10, 20])


# A standing skeleton in a 40x100 box (PoseTrack's 17 joints, offsets from the box's top left); arms up or down
# tell two players apart by their keypoints.
SKELETON = np.array([[20, 8], [20, 18], [20, 0], [15, 6], [25, 6], [10, 22], [30, 22], [6, 38], [34, 38], [4, 52],
                     [36, 52], [14, 55], [26, 55], [14, 75], [26, 75], [14, 96], [26, 96]], float)


def player(x: float, arms_up: bool):
    kp = SKELETON.copy()
    if arms_up:
        kp[7:11] = [[4, 12], [36, 12], [2, 0], [38, 0]]  # elbows and wrists above the head
    return np.array([x, 50, 40, 100.0]), kp + [x, 50], np.full(17, 0.9)


def ids_through_a_crossing(assignment: str) -> list[tuple[int, int]]:
    """A (arms up) walks right and B (arms down) left, 8 px a frame; they meet at frame 3, where A stops and B
    sprints past in front of A at 20 px a frame."""
    tracker = PoseTracker(joints=POSETRACK.joints, assignment=assignment)
    xa, xb, ids = 100.0, 160.0, []
    for frame in range(10):
        a, b = player(xa, True), player(xb, False)
        ids.append(tuple(tracker.update(frame, [a[0], b[0]], [a[1], b[1]], [a[2], b[2]])))
        xa, xb = (xa + 8, xb - 8) if frame < 3 else (xa, xb - 20)
    return ids


def test_crossing_players_keep_their_ids_where_greedy_swaps_them():
    # at frame 4 B's pose lies nearest A's expected place: the best single pair (greedy's first pick) gives B
    # A's track, and A takes B's; the optimal assignment, the larger summed similarity, keeps both
    assert ids_through_a_crossing("hungarian") == [(0, 1)] * 10
    greedy = ids_through_a_crossing("greedy")
    assert greedy[:4] == [(0, 1)] * 4 and greedy[4:] == [(1, 0)] * 6


def test_walking_players_are_followed_at_their_velocity():
    # two players walking through each other at a steady 14 px a frame: the tracks' constant-velocity prediction
    # keeps the ids; compared with the tracks as last seen, each pose is nearer the other's track and they swap
    def run(motion):
        tracker = PoseTracker(joints=POSETRACK.joints, motion=motion)
        out = []
        for frame in range(12):
            a, b = player(100 + 14 * frame, True), player(160 - 14 * frame, False)
            out.append(tuple(tracker.update(frame, [a[0], b[0]], [a[1], b[1]], [a[2], b[2]])))
        return out
    assert run(True) == [(0, 1)] * 12
    assert run(False)[:3] == [(0, 1)] * 3 and run(False)[3:] == [(1, 0)] * 9


def test_oks_uses_each_joints_sigma():
    assert len(oks_sigmas(POSETRACK.joints)) == 17 and len(oks_sigmas(H36M.joints)) == 17
    assert len(oks_sigmas(SYNTH.joints)) == SYNTH.num_joints
    sigmas = oks_sigmas(POSETRACK.joints)
    assert sigmas[POSETRACK.index("nose")] == 0.026 and sigmas[POSETRACK.index("left_hip")] == 0.107
    tracker = PoseTracker(joints=POSETRACK.joints, motion=False)
    box, kp, sc = player(100, False)
    (tid,) = tracker.update(0, [box], [kp], [sc])
    track = tracker.tracks[0]
    nose, hip = kp.copy(), kp.copy()
    nose[POSETRACK.index("nose"), 0] += 6
    hip[POSETRACK.index("left_hip"), 0] += 6
    # the same 6 px cost more on the nose (σ 0.026) than on the hip (σ 0.107)
    assert tracker.similarity(box, nose, sc, track) < tracker.similarity(box, hip, sc, track) < 1.0
    uniform = PoseTracker(motion=False)
    uniform.update(0, [box], [kp], [sc])
    assert np.isclose(uniform.similarity(box, nose, sc, uniform.tracks[0]),
                      uniform.similarity(box, hip, sc, uniform.tracks[0]))
    with pytest.raises(KeyError, match="no OKS sigma for joint 'tail'"):
        oks_sigmas(("nose", "tail"))
