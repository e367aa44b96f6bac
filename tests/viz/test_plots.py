"""Charts of the reports: files are written, NaN values are tolerated, 3D skeletons draw."""

import cv2
import numpy as np

from sportpose.models.skeleton import H36M
from sportpose.viz import plots


def test_bar_and_grouped_charts_write_pngs(tmp_path):
    plots.bar_chart({"left_knee": 50.0, "right_knee": float("nan"), "neck": 90.0}, tmp_path / "bar.png", "t", "AP")
    plots.grouped_bars({"sideline": {"Head": 80.0, "Total": 50.0}, "baseline": {"Head": 60.0}}, ["Head", "Total"],
                       tmp_path / "groups.png", "t", "AP")
    plots.line_chart({"spatial": {1: 0.99, 2: 0.98, 16: 0.9}}, tmp_path / "line.png", "t", "k", "cos")
    for name in ("bar.png", "groups.png", "line.png"):
        image = cv2.imread(str(tmp_path / name))
        assert image is not None and image.shape[0] > 200


def test_3d_skeletons_with_ground_truth_and_a_frame(tmp_path):
    rng = np.random.default_rng(0)
    pose = rng.normal(0, 200, (17, 3))
    frame = np.zeros((120, 160, 3), np.uint8)
    plots.skeletons_3d_figure([("a", pose, pose + 20), ("b", pose, None)], H36M, tmp_path / "s.png", image=frame,
                              title="two")
    assert cv2.imread(str(tmp_path / "s.png")).shape[1] > 3 * 300
