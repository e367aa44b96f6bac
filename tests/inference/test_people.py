"""Image ids of a video, detections checked against them, and the built-in person proposal."""

import json

import cv2
import numpy as np
import pytest

from sportpose.errors import DataError
from sportpose.data.formats import read_posetrack18
from sportpose.inference.people import DetectionBoxes, ForegroundProposal, person_blobs, video_ids


def test_video_ids_from_names_and_ground_truth(tiny_synth):
    assert video_ids("x/000001_mpiinew_test.mp4").base == 30000010000
    assert video_ids("x/012834_mpii_test.mp4").base == 10128340000
    ids = video_ids("x/synth_5_0001.mp4")
    assert ids.known and ids.image_id(7) == 10000010007 and ids.file_name(7) == "images/synth_5_0001/000007.jpg"
    assert not video_ids("x/holiday.mp4").known
    (gt,) = read_posetrack18(tiny_synth / "annotations" / "synth_5_0001.json")
    ids = video_ids("anything.mp4", gt)
    assert ids.name == "synth_5_0001" and ids.image_id(3) == gt.frames[3].image_id
    assert ids.file_name(3) == gt.frames[3].file_name


def write(path, dets):
    path.write_text(json.dumps([{"image_id": i, "bbox": b, "score": s} for i, b, s in dets]))
    return path


def test_detections_of_the_video_are_read_by_frame(tmp_path):
    ids = video_ids("000001_mpiinew_test.mp4")
    path = write(tmp_path / "d.json", [(30000010002, [1, 2, 30, 60], 0.9), (30000010002, [5, 5, 10, 10], 0.2),
                                       (10000000001, [0, 0, 5, 5], 1.0)])  # another video's detection is ignored
    dets = DetectionBoxes(path, ids, num_frames=5, threshold=0.5)
    boxes = dets(2, None)
    assert len(boxes) == 1 and np.allclose(boxes[0][0], [1, 2, 30, 60]) and boxes[0][1] == 0.9
    assert dets(0, None) == []


def test_detections_of_another_video_are_refused(tmp_path):
    path = write(tmp_path / "other.json", [(10000030000, [1, 2, 30, 60], 0.9)])
    with pytest.raises(DataError, match="no detection is of video 000001_mpiinew_test"):
        DetectionBoxes(path, video_ids("000001_mpiinew_test.mp4"), num_frames=5)
    beyond = write(tmp_path / "long.json", [(30000010099, [1, 2, 30, 60], 0.9)])
    with pytest.raises(DataError, match="frame 99 .* 5 frames"):
        DetectionBoxes(beyond, video_ids("000001_mpiinew_test.mp4"), num_frames=5)


def test_a_video_of_unknown_name_takes_the_ids_of_a_one_video_detections_file(tmp_path):
    path = write(tmp_path / "d.json", [(10000030004, [1, 2, 30, 60], 0.9)])
    dets = DetectionBoxes(path, video_ids("holiday.mp4"), num_frames=10)
    assert dets.ids.base == 10000030000 and len(dets(4, None)) == 1


def test_person_blobs_keep_person_shapes_only():
    mask = np.zeros((120, 160), np.uint8)
    mask[20:80, 30:45] = 1  # a standing person
    mask[100:104, 0:160] = 1  # a court line
    mask[10:14, 100:104] = 1  # a speck
    boxes = person_blobs(mask)
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    assert x < 30 and x + w > 44 and y < 20 and y + h > 79


def field(players, shift=0):
    """A green pitch with white lines and dark upright players at the given x (a camera shift moves all)."""
    img = np.zeros((240, 320, 3), np.uint8)
    img[:] = (40, 140, 50)
    texture = np.random.default_rng(0).integers(-12, 13, (240, 400, 1))  # grass texture, moves with the camera
    img = np.clip(img + texture[:, 40 - shift : 360 - shift], 0, 255).astype(np.uint8)
    cv2.line(img, (0, 200 + shift), (319, 180 + shift), (255, 255, 255), 2)
    for x in players:
        cv2.rectangle(img, (x + shift, 90), (x + 18 + shift, 160), (30, 30, 160), -1)
        cv2.circle(img, (x + 9 + shift, 82), 7, (200, 160, 140), -1)
    return img


def test_proposal_finds_players_on_a_moving_camera_by_the_playing_surface():
    proposal = ForegroundProposal()
    boxes = []
    for t in range(4):
        boxes = proposal(t, field([60, 200], shift=3 * t))  # a panning camera: the surface cue
    assert proposal.cues["surface"] == 4 and len(boxes) == 2
    xs = sorted(b[0] + b[2] / 2 for b, _ in boxes)
    assert abs(xs[0] - (69 + 9)) < 6 and abs(xs[1] - (209 + 9)) < 6


def test_proposal_uses_motion_under_a_still_camera():
    proposal = ForegroundProposal()
    for t in range(8):
        boxes = proposal(t, field([20 + 30 * t]))  # one player runs, the camera stands still
    assert proposal.cues["motion"] > 0
    assert len(boxes) == 1 and abs(boxes[0][0][0] + boxes[0][0][2] / 2 - (20 + 210 + 9)) < 8
