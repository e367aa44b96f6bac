"""PoseTrack MOTA / MOTP / precision / recall (poseval's evaluateTracking) on hand-built cases whose numbers are
worked out below, and on the real PoseTrack fixture annotations."""

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest

from sportpose.data.formats import FrameAnnotation, PersonAnnotation, VideoAnnotation, read_posetrack18
from sportpose.errors import DataError
from sportpose.evaluation.tracking import evaluate_tracking, format_tracking_table

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "posetrack18" / "annotations" / "val"
HEAD = np.array([0, 0, 30, 40], np.float32)  # head box diagonal 50 px: head size 0.6 · 50 = 30 px
EARS = (3, 4)  # PoseTrack's ears: not scored by poseval, left unlabeled


def person(track_id: int, x: float, shift: float = 0.0) -> PersonAnnotation:
    """A person whose 15 scored joints stand in a column at ``x`` (+ ``shift`` px, for predictions)."""
    kp = np.zeros((17, 3), np.float32)
    kp[:, 0], kp[:, 1], kp[:, 2] = x + shift, 100 + 10 * np.arange(17), 1
    kp[list(EARS)] = 0
    head = HEAD + np.array([x, 0, 0, 0], np.float32)
    return PersonAnnotation(track_id, kp, None, head, scores=np.ones(17))


def video(frames: list[list[PersonAnnotation]], name: str = "v") -> VideoAnnotation:
    return VideoAnnotation(name, f"{name}.json", len(frames),
                           [FrameAnnotation(i, f"{name}/{i:06d}.jpg", i, True, persons, []) for i, persons in
                            enumerate(frames)], [])


def total(result: dict) -> dict:
    return {m: result[m]["Total"] for m in ("mota", "motp", "precision", "recall")}


A, B = 100.0, 300.0  # where the two GT players stand
TWO = [[person(1, A), person(2, B)] for _ in range(5)]  # five GT frames: poseval leaves the last one out


def test_perfect_tracks_score_100():
    result = evaluate_tracking(video(TWO), video(copy.deepcopy(TWO)))
    assert total(result) == {"mota": 100.0, "motp": 100.0, "precision": 100.0, "recall": 100.0}
    assert result["frames"] == 4 and result["per_joint"]["nose"]["num_objects"] == 8


def test_identity_switch():
    # Predictions 3 px off each joint (distance 3 / 30 = 0.1 head sizes); ids 10 (on A) and 20 (on B) in frames
    # 0-1, swapped in frames 2-3. Per joint: 4 frames x 2 GT = 8 objects; frame 2 switches both GT tracks (2
    # switches), frame 3 keeps the new pairs. MOTA = 1 - 2/8 = 75 %; MOTP = 1 - 0.1 = 90 %; no miss, no FP.
    pred = [[person(10, A, 3), person(20, B, 3)]] * 2 + [[person(20, A, 3), person(10, B, 3)]] * 2 + [[]]
    result = evaluate_tracking(video(TWO), video(pred))
    nose = result["per_joint"]["nose"]
    assert (nose["num_objects"], nose["num_switches"], nose["num_misses"], nose["num_false_positives"]) == (8, 2, 0, 0)
    assert total(result)["mota"] == pytest.approx(75.0)
    assert total(result)["motp"] == pytest.approx(90.0)
    assert total(result)["precision"] == 100.0 and total(result)["recall"] == 100.0
    # the last frame is poseval's blind spot: an empty prediction there changed nothing; counted, it would add a
    # miss and a false positive (poseval's empty-frame case: one of each per joint): MOTA 1 - (2 + 1 + 1)/9
    counted = evaluate_tracking(video(TWO), video(pred), skip_last_frame=False)
    assert total(counted)["mota"] == pytest.approx(100 * (1 - 4 / 9))


def test_a_missed_person():
    # B is not predicted in frames 2 and 3 (A is): 8 objects, 2 misses. MOTA = 75 %, recall 6/8 = 75 %,
    # precision 6/6 = 100 %.
    pred = [[person(10, A), person(20, B)]] * 2 + [[person(10, A)]] * 2 + [[]]
    result = evaluate_tracking(video(TWO), video(pred))
    assert total(result)["mota"] == pytest.approx(75.0) and total(result)["recall"] == pytest.approx(75.0)
    assert total(result)["precision"] == 100.0
    # Nobody predicted in frame 2 is poseval's special case: one object and one false positive per joint, not
    # one miss per GT person: objects 2 + 2 + 1 + 2 = 7, 1 miss, 1 FP; MOTA 1 - 2/7, recall = precision = 6/7.
    pred = [[person(10, A), person(20, B)]] * 2 + [[]] + [[person(10, A), person(20, B)]] + [[]]
    result = evaluate_tracking(video(TWO), video(pred))
    assert result["per_joint"]["nose"]["num_objects"] == 7
    assert total(result)["mota"] == pytest.approx(100 * (1 - 2 / 7))
    assert total(result)["recall"] == pytest.approx(100 * 6 / 7) == pytest.approx(total(result)["precision"])


def test_false_positives():
    # One GT player over four counted frames; a ghost far away (id 99) in frame 1 and a duplicate of A 5 px off
    # (id 98, 0.17 head sizes: close enough to pair, but A keeps its track 10) in frame 2: 4 objects, 2 FP.
    # MOTA = 1 - 2/4 = 50 %, precision 4/6, recall 100 %.
    gt = [[person(1, A)] for _ in range(5)]
    pred = [[person(10, A)], [person(10, A), person(99, 700)], [person(10, A), person(98, A, 5)], [person(10, A)], []]
    result = evaluate_tracking(video(gt), video(pred))
    assert result["per_joint"]["left_wrist"]["num_false_positives"] == 2
    assert total(result)["mota"] == pytest.approx(50.0)
    assert total(result)["precision"] == pytest.approx(100 * 4 / 6) and total(result)["recall"] == 100.0
    table = format_tracking_table(result)
    header, row = table.splitlines()
    assert header.split()[:2] == ["MOTA", "Head"] and len(row.split()) == 11
    assert row.split()[7] == "50.0" and row.split()[9] == "66.7"


def test_a_joint_far_off_is_a_miss_and_a_false_positive():
    # the noses of the predictions 20 px off (0.67 head sizes > 0.5): for the nose joint both tracks are missed
    # and both predictions are false positives in each of the 4 frames: MOTA 1 - (8 + 8)/8 = -100 %; other
    # joints stay at 100 %. Head = mean(head_top, neck, nose) = (100 + 100 - 100) / 3.
    pred = copy.deepcopy(TWO)
    for frame in pred:
        for p in frame:
            p.keypoints[0, 0] += 20  # PoseTrack joint 0 = nose
    result = evaluate_tracking(video(TWO), video(pred))
    assert result["per_joint"]["nose"]["mota"] == pytest.approx(-100.0)
    assert result["per_joint"]["neck"]["mota"] == 100.0
    assert result["mota"]["Head"] == pytest.approx(100 / 3)
    assert result["mota"]["Total"] == pytest.approx((14 * 100 - 100) / 15)
    assert result["motp"]["Total"] == pytest.approx(14 * 100 / 15)  # no nose matches: its MOTP is 0, as poseval


def test_bad_input_is_named():
    with pytest.raises(DataError, match="no prediction video named 'v'"):
        evaluate_tracking(video(TWO), video(TWO, name="other"))
    twins = [[person(10, A), person(10, B)]] * 5
    with pytest.raises(DataError, match="two predicted persons share a track_id"):
        evaluate_tracking(video(TWO), video(twins))


needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"PoseTrack fixtures not found at {FIXTURES}")


@needs_fixtures
def test_the_posetrack_fixture_against_itself_and_a_perturbed_copy(tmp_path):
    # Each fixture video has one annotated frame, which poseval leaves out as each video's last: nothing is
    # counted (NaN). Counting it: the fixture against itself is perfect; a perturbed copy (every joint 4 px to
    # the right, the first person of each video dropped, a copy of the last one 400 px away as a ghost) is not.
    assert math.isnan(total(evaluate_tracking(FIXTURES, FIXTURES))["mota"])
    self = evaluate_tracking(FIXTURES, FIXTURES, skip_last_frame=False)
    assert total(self) == {"mota": 100.0, "motp": 100.0, "precision": 100.0, "recall": 100.0}
    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    for path in sorted(FIXTURES.glob("*.json")):
        data = json.loads(path.read_text())
        anns = data["annotations"]
        for a in anns:
            kp = a["keypoints"]
            a["keypoints"] = [v + 4 if i % 3 == 0 and kp[i + 2] else v for i, v in enumerate(kp)]
        ghost = copy.deepcopy(anns[-1])
        ghost["track_id"], ghost["id"] = 999, ghost["id"] + 1
        ghost["keypoints"] = [v + 400 if i % 3 == 0 and v else v for i, v in enumerate(ghost["keypoints"])]
        data["annotations"] = anns[1:] + [ghost]
        (pred_dir / path.name).write_text(json.dumps(data))
    gt = [v for p in sorted(FIXTURES.glob("*.json")) for v in read_posetrack18(p)]
    result = evaluate_tracking(gt, pred_dir, skip_last_frame=False)
    t = total(result)
    assert 0 < t["mota"] < 100 and t["recall"] < 100 and t["precision"] < 100 and 80 < t["motp"] < 100
    print(format_tracking_table(result))


@needs_fixtures
def test_eval_posetrack_tracking_prints_poseval_table(capsys, tmp_path):
    from sportpose.cli.main import main

    assert main(["eval", "posetrack", "--gt", str(FIXTURES), "--pred", str(FIXTURES), "--tracking", "--all-frames",
                 "--json", str(tmp_path / "m.json")]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("PoseTrack tracking"))
    assert "3 videos, 3 frames counted" in lines[at]
    assert lines[at + 1].split()[:2] == ["MOTA", "Head"] and lines[at + 2].split() == ["100.0"] * 11
    saved = json.loads((tmp_path / "m.json").read_text())
    assert saved["tracking"]["mota"]["Total"] == 100.0 and saved["groups"]["Total"] == 100.0
