"""Drawing helpers: side colours for every joint set, score thresholds, boxes, polygons, contact sheets."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from sportpose.models.skeleton import JOINT_SETS, POSETRACK
from sportpose.viz import draw


def blank(h: int = 200, w: int = 200) -> np.ndarray:
    return np.zeros((h, w, 3), np.uint8)


def colour_at(image: np.ndarray, xy) -> tuple[int, int, int]:
    return tuple(int(c) for c in image[int(round(xy[1])), int(round(xy[0]))])


@pytest.mark.parametrize(
    "name, side",
    [("left_knee", "left"), ("l_knee", "left"), ("right_wrist", "right"), ("r_hip", "right"), ("nose", "centre"),
     ("root", "centre"), ("head_bottom", "centre"), ("neck", "centre")],
)
def test_joint_side_from_name(name, side):
    assert draw.joint_side(name) == side


@pytest.mark.parametrize("set_name", sorted(JOINT_SETS))
def test_every_joint_set_has_left_and_right_joints(set_name):
    sides = {draw.joint_side(j) for j in JOINT_SETS[set_name].joints}
    assert {"left", "right", "centre"} <= sides
    for a, b in JOINT_SETS[set_name].flip_pairs:  # flip pairs swap sides, so their colours swap too
        assert {draw.joint_side(JOINT_SETS[set_name].joints[a]), draw.joint_side(JOINT_SETS[set_name].joints[b])} == {
            "left", "right"}


@pytest.mark.parametrize("set_name", sorted(JOINT_SETS))
@pytest.mark.parametrize("side", ["left", "right", "centre"])
def test_edge_drawn_in_its_side_colour(set_name, side):
    joint_set = JOINT_SETS[set_name]
    a, b = next((a, b) for a, b in joint_set.edges if draw.edge_side(joint_set, a, b) == side)
    kp = np.zeros((joint_set.num_joints, 3))
    kp[a], kp[b] = (40, 100, 1), (160, 100, 1)  # only this edge's two joints are labeled
    image = draw.draw_skeleton(blank(), kp, joint_set, thickness=3)
    assert colour_at(image, (100, 100)) == draw.SIDE_COLOURS[side]
    assert colour_at(image, (40, 100)) == draw.SIDE_COLOURS[draw.joint_side(joint_set.joints[a])]
    assert image[:, :30].max() == 0 and image[:, 171:].max() == 0  # nothing else drawn


def test_posetrack_limbs_left_green_right_orange():
    kp = np.zeros((17, 3))
    kp[POSETRACK.index("left_elbow")] = (20, 20, 1)
    kp[POSETRACK.index("left_wrist")] = (20, 180, 1)
    kp[POSETRACK.index("right_elbow")] = (180, 20, 1)
    kp[POSETRACK.index("right_wrist")] = (180, 180, 1)
    image = draw.draw_skeleton(blank(), kp, POSETRACK, thickness=2)
    assert colour_at(image, (20, 100)) == draw.LEFT == (0, 220, 0)
    assert colour_at(image, (180, 100)) == draw.RIGHT == (255, 140, 0)


def test_unlabeled_invisible_and_low_score_joints_are_not_drawn():
    kp = np.zeros((17, 3))
    kp[POSETRACK.index("left_hip")] = (50, 50, 1)
    kp[POSETRACK.index("left_knee")] = (50, 150, 1)
    kp[POSETRACK.index("right_hip")] = (150, 50, 0)  # v = 0: not drawn
    kp[POSETRACK.index("right_knee")] = (150, 150, 1)
    image = draw.draw_skeleton(blank(), kp, POSETRACK, thickness=2)
    assert colour_at(image, (50, 100)) == draw.LEFT
    assert image[:, 120:].max() > 0  # the right knee alone: a dot
    assert colour_at(image, (150, 100)) == (0, 0, 0) and colour_at(image, (150, 50)) == (0, 0, 0)
    assert colour_at(image, (0, 0)) == (0, 0, 0)  # the 0, 0, 0 joints

    scores = np.ones(17)
    scores[POSETRACK.index("left_knee")] = 0.2
    image = draw.draw_skeleton(blank(), kp, POSETRACK, scores=scores, threshold=0.5, thickness=2)
    assert colour_at(image, (50, 100)) == (0, 0, 0) and colour_at(image, (50, 150)) == (0, 0, 0)
    assert colour_at(image, (50, 50)) == draw.LEFT  # the hip is still drawn


def test_keypoints_without_visibility_and_bad_shapes():
    kp = np.array([[30.0, 30.0], [170.0, 170.0]] + [[np.nan, np.nan]] * 15)  # (17, 2): NaN joints are skipped
    image = draw.draw_skeleton(blank(), kp, POSETRACK, thickness=2)
    assert colour_at(image, (100, 100)) == draw.CENTRE  # nose - head_bottom
    with pytest.raises(ValueError, match="posetrack"):
        draw.draw_skeleton(blank(), np.zeros((16, 3)), POSETRACK)


def test_box_label_and_polygon():
    image = draw.draw_box(blank(), [40, 60, 100, 80], (255, 0, 0), thickness=1, label="7")
    assert colour_at(image, (90, 140)) == (255, 0, 0)  # bottom edge
    assert colour_at(image, (90, 100)) == (0, 0, 0)  # inside
    edge = draw.draw_box(blank(), [-30, -30, 50, 50], (0, 255, 0), label="12")  # a label at negative coordinates
    assert edge.shape == (200, 200, 3) and edge[:25, :25].max() > 0

    image = np.full((100, 100, 3), 200, np.uint8)
    draw.shade_polygons(image, [np.array([[10, 10], [60, 10], [60, 60], [10, 60]], float)], colour=(255, 0, 255), alpha=0.5)
    assert colour_at(image, (35, 35)) == (228, 100, 228)  # blended halfway
    assert colour_at(image, (80, 80)) == (200, 200, 200)


def test_track_colours_differ():
    colours = [draw.track_colour(i) for i in range(10)]
    assert len(set(colours)) == 10 and draw.track_colour(3) == colours[3]


def test_contact_sheet_layout():
    images = [np.full((h, w, 3), 40 * i, np.uint8) for i, (h, w) in enumerate([(50, 100), (100, 100), (30, 60), (80, 40), (50, 100)])]
    sheet = draw.contact_sheet(images, cols=3, captions=[f"tile {i}" for i in range(5)], tile_width=100, pad=4)
    assert sheet.dtype == np.uint8 and sheet.shape[1] == 3 * (100 + 4) + 4
    assert (sheet[4:54, 4:104] == 0).all()  # tile 0 in place, unscaled
    assert (sheet[4:104, 108:208] == 40).all()  # tile 1
    assert (sheet[4:54, 212:312] == 80).all()  # tile 2 scaled from 60 to 100 wide: 50 high
    # rows as tall as their tallest tile plus a caption strip: 100 + c, then 200 + c (tile 3 scaled to 100 x 200)
    caption = (sheet.shape[0] - 4 - (100 + 4) - (200 + 4)) // 2
    assert caption > 5 and sheet.shape[0] == 4 + (100 + caption + 4) + (200 + caption + 4)
    row1 = 4 + 100 + caption + 4
    assert (sheet[row1 : row1 + 200, 4:104] == 120).all()
    assert sheet[4 + 100 : 4 + 100 + caption, 4:104].max() == 255  # the caption text, white
    no_captions = draw.contact_sheet(images[:2], cols=4)
    assert no_captions.shape == (4 + 100 + 4, 4 + 2 * 104, 3)
    with pytest.raises(ValueError):
        draw.contact_sheet([])
    with pytest.raises(ValueError, match="captions"):
        draw.contact_sheet(images, captions=["one"])


def test_write_png_keeps_rgb(tmp_path):
    image = blank(20, 30)
    image[..., 0] = 255  # red
    draw.write_png(tmp_path / "red.png", image)
    assert tuple(cv2.imread(str(tmp_path / "red.png"))[5, 5]) == (0, 0, 255)  # OpenCV reads BGR
