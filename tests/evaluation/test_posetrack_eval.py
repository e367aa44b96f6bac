"""PoseTrack AP as poseval computes it: hand-computed cases and the folder API on the real fixtures.

Every hand case uses head boxes of 30 x 40 px: head size 0.6 × 50 = 30 px, so a joint matches within 15 px.
AP is VOC all-point interpolated: with recall/precision points (r_k, p_k) in score order,
AP = Σ (r_k − r_{k−1}) · max_{i ≥ k} p_i.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest

from sportpose.paths import REPO
from sportpose.errors import DataError
from sportpose.models.skeleton import POSETRACK
from sportpose.data.formats import (
    FrameAnnotation,
    PersonAnnotation,
    VideoAnnotation,
    read_posetrack18,
    write_posetrack18,
)
from sportpose.evaluation.metrics import POSEVAL_JOINTS, posetrack_ap
from sportpose.evaluation.posetrack_eval import evaluate_folders, format_ap_table, to_json

FIXTURES = REPO.parent / "shared" / "fixtures" / "posetrack18"
needs_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason=f"PoseTrack 2018 fixtures not found at {FIXTURES} (../shared/fixtures/posetrack18)"
)
GROUPS = ("Head", "Shou", "Elb", "Wri", "Hip", "Knee", "Ankl", "Total")
R_WRIST = POSETRACK.index("right_wrist")
HEAD_TOP = POSETRACK.index("head_top")


def person(x0: float, score: float | None = 1.0, track_id: int = 0) -> PersonAnnotation:
    """The 15 scored joints 50 px apart on a row at y = 50, ears unlabeled; joint j at x = x0 + 50 j."""
    kp = np.zeros((17, 3), dtype=np.float32)
    for j in range(17):
        if POSETRACK.joints[j] not in ("left_ear", "right_ear"):
            kp[j] = (x0 + 50 * j, 50, 1)
    return PersonAnnotation(
        track_id=track_id,
        keypoints=kp,
        bbox=None,
        bbox_head=np.array([x0, 0, 30, 40], dtype=np.float32),
        scores=None if score is None else np.full(17, score),
    )


def video(*frames: list[PersonAnnotation], ignore: dict[int, list[np.ndarray]] | None = None) -> VideoAnnotation:
    return VideoAnnotation(
        name="000001_mpii_test",
        path="memory.json",
        nframes=len(frames),
        frames=[
            FrameAnnotation(
                image_id=10000010000 + i,
                file_name=f"images/val/000001_mpii_test/{i:06d}.jpg",
                frame_index=i,
                is_labeled=bool(persons),
                persons=persons,
                ignore_regions=(ignore or {}).get(i, []),
            )
            for i, persons in enumerate(frames)
        ],
        categories=[],
    )


def ap(gt_frames, pred_frames, ignore=None) -> dict:
    return posetrack_ap([video(*gt_frames, ignore=ignore)], [video(*pred_frames)])


def assert_all(result: dict, value: float):
    for name in POSEVAL_JOINTS:
        assert result["per_joint"][name] == pytest.approx(value), name
    for name in GROUPS:
        assert result["groups"][name] == pytest.approx(value), name


def test_perfect_predictions():
    assert_all(ap([[person(0), person(1000)]], [[person(0), person(1000)]]), 100.0)


def test_missed_person():
    # 2 GT persons, 1 exact prediction: per joint one TP, precision [1], recall [1/2]
    # -> AP = 1/2 × 1 + 1/2 × 0 = 50.
    assert_all(ap([[person(0), person(1000)]], [[person(0)]]), 50.0)


def test_false_positive_person_and_score_ordering():
    # GT A; predictions A (exact) and F (far from any GT).
    # F ranked below A: TP then FP -> precision [1, 1/2], recall [1, 1] -> AP = 1 × 1 = 100.
    assert_all(ap([[person(0)]], [[person(0, score=0.9), person(5000, score=0.8)]]), 100.0)
    # F ranked above A: FP then TP -> precision [0, 1/2], recall [0, 1] -> AP = 1 × 1/2 = 50.
    assert_all(ap([[person(0)]], [[person(0, score=0.9), person(5000, score=0.95)]]), 50.0)


def test_joint_outside_the_threshold():
    # The right wrist 16 px off (> 15): that joint is a FP of the matched person (PCKh 14/15 still matches):
    # precision [0], recall [0] -> AP 0; Wri = (0 + 100) / 2 = 50; Total = 14 × 100 / 15.
    pred = person(0)
    pred.keypoints[R_WRIST, 1] += 16
    result = ap([[person(0)]], [[pred]])
    assert result["per_joint"]["right_wrist"] == 0.0
    assert result["groups"]["Wri"] == pytest.approx(50.0)
    assert result["groups"]["Total"] == pytest.approx(1400.0 / 15)
    assert result["groups"]["Head"] == pytest.approx(100.0)
    # 15 px is still correct (distance ≤ 0.5 × head size)
    pred.keypoints[R_WRIST, 1] -= 1
    assert_all(ap([[person(0)]], [[pred]]), 100.0)


def test_joint_inside_an_ignore_region():
    # Frame 0: exact prediction (scores 0.9). Frame 1: the predicted right wrist is 100 px below the GT's.
    # An ignore region around the right wrist (x 480..520, y 0..200) in frame 1 holds both.
    frame1_pred = person(0, score=0.8)
    frame1_pred.keypoints[R_WRIST, 1] += 100
    gt = [[person(0)], [person(0)]]
    pred = [[person(0, score=0.9)], [frame1_pred]]
    region = np.array([[480, 0], [520, 0], [520, 200], [480, 200]], dtype=np.float32)
    # Without the region: right wrist TP (0.9), FP (0.8) of 2 GT -> precision [1, 1/2], recall [1/2, 1/2]
    # -> AP = 1/2 × 1 = 50.
    assert ap(gt, pred)["per_joint"]["right_wrist"] == pytest.approx(50.0)
    # With it: both dropped, 1 GT and 1 TP -> AP 100.
    assert_all(ap(gt, pred, ignore={1: [region]}), 100.0)


def test_frame_without_ground_truth_is_dropped():
    # Frame 1 has no GT person: its prediction (scored highest) is ignored, not a false positive.
    # Counted, it would give FP then TP -> AP 50.
    assert_all(ap([[person(0)], []], [[person(0, score=0.9)], [person(0, score=0.95)]]), 100.0)


def test_frame_whose_ground_truth_lies_in_an_ignore_region_still_counts():
    # poseval drops empty GT frames before it removes ignored joints: in frame 1 every GT joint is ignored,
    # the frame stays, and its prediction elsewhere (0.95) is a FP: FP then TP of 1 GT -> AP 50.
    everything = np.array([[-100, -100], [2000, -100], [2000, 300], [-100, 300]], dtype=np.float32)
    gt = [[person(0)], [person(0)]]
    pred = [[person(0, score=0.9)], [person(5000, score=0.95)]]
    assert_all(ap(gt, pred, ignore={1: [everything]}), 50.0)


def test_each_ground_truth_takes_the_prediction_with_the_best_pckh_not_the_best_score():
    # P1 exact (PCKh 1, score 0.5); P2 (score 0.9) with nose, head_bottom, head_top, both shoulders and the
    # left elbow 100 px off (PCKh 9/15): the GT takes P1, and every joint of P2 is a FP, even the 9 right
    # ones -> FP then TP -> AP 50 for each joint.
    p2 = person(0, score=0.9)
    p2.keypoints[:8, 1] += 100  # posetrack joints 0..7
    p2.keypoints[3:5] = 0  # the ears stay unlabeled
    assert_all(ap([[person(0)]], [[person(0, score=0.5), p2]]), 50.0)


def test_joint_without_ground_truth():
    # head_top never annotated in GT. Predicted: poseval's recall is 0/0 -> AP NaN, Head NaN, and the Total
    # averages the 14 others (100). Not predicted either: AP 0 (poseval's initial value), Total 14 × 100 / 15.
    gt = person(0)
    gt.keypoints[HEAD_TOP] = 0
    result = ap([[gt]], [[person(0)]])
    assert math.isnan(result["per_joint"]["head_top"]) and math.isnan(result["groups"]["Head"])
    assert result["groups"]["Total"] == pytest.approx(100.0)
    pred = person(0)
    pred.keypoints[HEAD_TOP] = 0
    result = ap([[gt]], [[pred]])
    assert result["per_joint"]["head_top"] == 0.0
    assert result["groups"]["Total"] == pytest.approx(1400.0 / 15)
    assert json.loads(to_json(ap([[gt]], [[person(0)]])))["groups"]["Head"] is None


def test_missing_prediction_frame_or_video_is_an_error():
    with pytest.raises(DataError, match="no frame 1"):
        ap([[person(0)], [person(0)]], [[person(0)]])
    with pytest.raises(DataError, match="no prediction video"):
        posetrack_ap([video([person(0)])], [])


# ---------------------------------------------------------------------------------------------------------------
# Folder API on the real fixtures


def write_perfect_predictions(gt_dir: Path, out: Path) -> None:
    for path in sorted(gt_dir.glob("*.json")):
        (gt,) = read_posetrack18(path)
        pred = copy.deepcopy(gt)
        for frame in pred.frames:
            for p in frame.persons:
                p.scores = np.ones(17)
        write_posetrack18(pred, out / path.name)


@needs_fixtures
def test_fixture_predictions_equal_to_ground_truth_give_100(tmp_path):
    gt_dir = FIXTURES / "annotations" / "val"
    write_perfect_predictions(gt_dir, tmp_path)
    result = evaluate_folders(gt_dir, tmp_path)
    assert list(result["groups"]) == list(GROUPS) and list(result["per_joint"]) == list(POSEVAL_JOINTS)
    assert_all(result, 100.0)
    table = format_ap_table(result)
    assert table.splitlines()[0].split() == list(GROUPS) and table.splitlines()[1].split() == ["100.0"] * 8
    assert json.loads(to_json(result)) == result


@needs_fixtures
def test_fixture_predictions_with_a_dropped_person(tmp_path):
    # 012834 has 11 persons, the others 3; dropping one of 14 lowers every joint the person has.
    gt_dir = FIXTURES / "annotations" / "val"
    write_perfect_predictions(gt_dir, tmp_path)
    (pred,) = read_posetrack18(tmp_path / "012834_mpii_test.json")
    del pred.frames[0].persons[0]
    write_posetrack18(pred, tmp_path / "012834_mpii_test.json")
    groups = evaluate_folders(gt_dir, tmp_path)["groups"]
    assert groups["Total"] < 100.0 and groups["Shou"] < 100.0


@needs_fixtures
def test_missing_prediction_file_is_an_error(tmp_path):
    gt_dir = FIXTURES / "annotations" / "val"
    write_perfect_predictions(gt_dir, tmp_path)
    (tmp_path / "009473_mpii_test.json").unlink()
    with pytest.raises(DataError) as err:
        evaluate_folders(gt_dir, tmp_path)
    assert str(err.value).startswith(str(tmp_path / "009473_mpii_test.json"))
