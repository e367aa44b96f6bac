"""Track association by box IoU and keypoint similarity, non-maximum suppression, propagated boxes."""

import numpy as np

from sportpose.inference.tracker import PoseTracker, box_iou, keypoint_box, nms


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
