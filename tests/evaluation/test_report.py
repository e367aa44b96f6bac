"""The evaluation report's numbers are the metric functions' numbers on the same predictions (2D and 3D), and
every table and picture is written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sportpose.data.dataset import load_clips
from sportpose.data.formats import read_posetrack18
from sportpose.evaluation import evaluate3d
from sportpose.evaluation import metrics as M
from sportpose.evaluation.evaluate2d import Predictions2D, ap_score, pckh_score, with_heatmaps
from sportpose.evaluation.evaluate3d import Predictions3D
from sportpose.evaluation.report import AP_COLUMNS, Protocol, report_2d, report_3d, write_learning_curves
from sportpose.models.skeleton import POSETRACK, convert

MODEL = {"label": "noisy-truth", "source": "test", "kind": "simplebaseline"}
COMPLEXITY = {"params_m": 1.5, "gmacs": 0.25, "gflops": 0.5, "latency_ms": 10.0, "fps": 100.0, "machine": "test"}


def tables(report: str, heading: str) -> list[list[list[str]]]:
    """The markdown tables under ``heading`` (up to the next heading of any level), as rows of cells."""
    lines = report.splitlines()
    start = lines.index(heading) + 1
    found, current = [], None
    for line in lines[start:]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if current is None:
                current = [cells]
            elif not set("".join(cells)) <= {"-"}:
                current.append(cells)
        elif current is not None:
            found.append(current)
            current = None
    if current is not None:
        found.append(current)
    return found


def one_decimal(value: float) -> str:
    return "-" if not np.isfinite(value) else f"{value:.1f}"


@pytest.fixture(scope="module")
def clips(tiny_synth):
    return load_clips(tiny_synth, (0.0, 0.0, 1.0), seed=0)


@pytest.fixture(scope="module")
def predictions_2d(clips) -> Predictions2D:
    """Every labeled person of every other frame, the truth plus noise (some joints far off), random scores."""
    rng = np.random.default_rng(3)
    rows = {k: [] for k in ("pred", "scores", "gt", "visible", "head_size")}
    info = {k: [] for k in ("video", "frame", "track_id", "image_id", "view", "blur", "occlusion", "body")}
    for clip in clips:
        (video,) = read_posetrack18(clip["annotations"])
        for frame in video.frames[::2]:
            for person in frame.persons:
                gt = person.keypoints[:, :2].astype(np.float64)
                noise = rng.normal(0, 2.0, gt.shape) + (rng.random((17, 1)) < 0.3) * rng.normal(0, 25, gt.shape)
                rows["pred"].append(gt + noise)
                rows["scores"].append(rng.random(17))
                rows["gt"].append(gt)
                rows["visible"].append(person.keypoints[:, 2] > 0)
                rows["head_size"].append(M.posetrack_head_size(person.bbox_head))
                for key, value in (("video", clip["name"]), ("frame", frame.frame_index), ("track_id", person.track_id),
                                   ("image_id", frame.image_id), *[(k, clip["meta"][k]) for k in
                                                                   ("view", "blur", "occlusion", "body")]):
                    info[key].append(value)
    return Predictions2D(**{k: np.array(v) for k, v in rows.items()}, info={k: np.array(v) for k, v in info.items()})


def test_2d_report_numbers_are_the_metric_functions_numbers(predictions_2d, clips, tmp_path):
    p = predictions_2d
    protocol = Protocol(split="test", boxes="ground truth", flip_test=False, seed=0, samples=len(p.pred), clips=2)
    metrics = report_2d(p, clips, POSETRACK, protocol, MODEL, tmp_path, complexity=COMPLEXITY, overlays=2)
    report = (tmp_path / "report.md").read_text()
    page = (tmp_path / "report.html").read_text()  # MLflow's artifact viewer shows this one with its pictures
    assert page.count("data:image/") == report.count("](") > 0 and "missing image" not in page

    expected = ap_score(p, clips, POSETRACK)
    assert metrics["ap_groups"] == expected["groups"] and metrics["ap_per_joint"] == expected["per_joint"]
    (ap_table,) = tables(report, "## PoseTrack AP (poseval, %)")
    (per_joint_table,) = tables(report, "### AP per joint")
    assert ap_table[0] == ["model", *AP_COLUMNS]
    assert ap_table[1] == ["noisy-truth", *[one_decimal(expected["groups"][c]) for c in AP_COLUMNS]]
    assert per_joint_table[0] == list(expected["per_joint"])
    assert per_joint_table[1] == [one_decimal(v) for v in expected["per_joint"].values()]

    pck = pckh_score(p, 0.5)
    (pck_table,) = tables(report, "### PCKh@0.5 (%)")
    assert pck_table[1][0] == one_decimal(pck["mean"]) and metrics["pckh"] == pck["mean"]

    # breakdowns: each level's AP is the AP of the predictions of that level's clips
    for factor, heading in (("view", "### By camera view"), ("body", "### By child/adult")):
        (table,) = tables(report, heading)
        levels = sorted(set(p.info[factor]))
        assert [row[0] for row in table[1:]] == levels
        for row in table[1:]:
            mask = p.info[factor] == row[0]
            groups = ap_score(p.subset(mask), clips, POSETRACK)["groups"]
            assert row[1:9] == [one_decimal(groups[c]) for c in AP_COLUMNS]
            assert row[9] == one_decimal(pckh_score(p.subset(mask), 0.5)["mean"])
            assert row[10] == str(int(mask.sum()))
            assert metrics["breakdowns"][factor][row[0]]["ap_groups"] == groups
    assert "## Breakdowns (the 2D paper's Table 11 layout)" in report
    (view_summary,) = tables(report, "## Breakdowns (the 2D paper's Table 11 layout)")[:1]
    assert view_summary[0] == ["model", *sorted(set(p.info["view"])), "overall"]
    assert view_summary[1][-1] == one_decimal(expected["groups"]["Total"])

    (complexity,) = tables(report, "## Complexity")
    assert complexity[1][:5] == ["1.5", "0.25", "0.5", "10.0", "100.0"]
    varied = [f for f in ("view", "blur", "occlusion", "body") if len(set(p.info[f])) > 1]
    assert {"view", "body"} <= set(varied)
    for name in ("per_joint.png", *[f"breakdown_{f}.png" for f in varied], "best_frames.png", "worst_frames.png",
                 "metrics.json"):
        assert (tmp_path / name).is_file(), name
        assert f"({name})" in report or name == "metrics.json"
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["ap"] == expected["groups"]["Total"] and saved["split"] == "test" and saved["boxes"] == "ground truth"
    assert "split test · boxes ground truth · flip test off · seed 0" in report


def test_best_frames_outrank_worst_frames(predictions_2d, clips, tmp_path):
    p = predictions_2d
    protocol = Protocol(split="test", boxes="ground truth", flip_test=False, seed=0, samples=len(p.pred), clips=2)
    metrics = report_2d(p, clips, POSETRACK, protocol, MODEL, tmp_path, overlays=3)
    best = [f["PCKh@0.5"] for f in metrics["best_frames"]]
    worst = [f["PCKh@0.5"] for f in metrics["worst_frames"]]
    assert best == sorted(best, reverse=True) and worst == sorted(worst) and best[0] > worst[0]
    assert len({f["video"] for f in metrics["best_frames"]}) == 2  # one frame of each clip first
    for frames, pick in ((metrics["best_frames"], max), (metrics["worst_frames"], min)):
        for video in {f["video"] for f in frames}:  # each clip's own best (or worst) frame is among them
            mine = [f["PCKh@0.5"] for f in frames if f["video"] == video]
            every = []
            for image_id in set(p.info["image_id"][p.info["video"] == video]):
                mask = (p.info["video"] == video) & (p.info["image_id"] == image_id)
                every.append(pckh_score(p.subset(mask), 0.5)["mean"])
            assert pick(mine) == pytest.approx(pick(v for v in every if np.isfinite(v)))
    first = metrics["best_frames"][0]
    keys = list(zip(p.info["video"], p.info["image_id"]))
    mask = np.array([k == (first["video"], first["image_id"]) for k in keys])
    assert first["PCKh@0.5"] == pytest.approx(pckh_score(p.subset(mask), 0.5)["mean"])


@pytest.fixture(scope="module")
def predictions_3d(clips) -> Predictions3D:
    """The clips' root-relative h36m joints (every other frame) plus noise; GSR alone noisier."""
    rng = np.random.default_rng(4)
    pred, pred_gsr, gt = [], [], []
    info = {k: [] for k in ("video", "frame", "track_id", "image_id", "view", "blur", "occlusion", "body")}
    for clip in clips:
        with np.load(clip["points3d"]) as z:
            joints = convert(z["joints_cam"], "synth", "h36m")  # (F, P, 17, 3) mm
            tracks = z["track_ids"]
        joints = joints - joints[:, :, :1]
        for f in range(0, joints.shape[0], 2):
            for row, track in enumerate(tracks):
                truth = joints[f, row]
                gt.append(truth)
                pred.append(truth + rng.normal(0, 30, truth.shape))
                pred_gsr.append(truth + rng.normal(0, 45, truth.shape))
                for key, value in (("video", clip["name"]), ("frame", f), ("track_id", int(track)), ("image_id", f),
                                   *[(k, clip["meta"][k]) for k in ("view", "blur", "occlusion", "body")]):
                    info[key].append(value)
    return Predictions3D(np.array(pred), np.array(pred_gsr), np.array(gt), {k: np.array(v) for k, v in info.items()})


def test_3d_report_numbers_are_the_metric_functions_numbers(predictions_3d, clips, tmp_path):
    p = predictions_3d
    protocol = Protocol(split="test", boxes="ground truth", flip_test=False, seed=0, samples=len(p.pred), clips=2)
    metrics = report_3d(p, clips, protocol, {**MODEL, "kind": "stsp"}, tmp_path, stride=2, fps=25.0,
                        complexity=COMPLEXITY, overlays=2)
    report = (tmp_path / "report.md").read_text()
    expected = evaluate3d.evaluate(p, stride=2, fps=25.0, groups=("view", "body"))
    g = expected["group_mean"]
    (main,) = tables(report, "## 3D pose (mm)")
    (groups_table,) = tables(report, "### Per group")
    assert main[0][1:6] == ["MPJPE (mm)", "P-MPJPE (mm)", "PCK3D (%)", "AUC (%)", "TS (mm/frame²)"]
    assert main[1][1:6] == [f"{g['mpjpe']:.1f}", f"{g['p_mpjpe']:.1f}", f"{g['pck3d']:.1f}", f"{g['auc3d']:.1f}",
                            f"{g['ts_mm_per_frame2']:.2f}"]
    pooled = expected["pooled"]
    assert main[2][1] == f"{M.mpjpe(p.pred, p.gt):.1f}" == f"{pooled['mpjpe']:.1f}"
    assert main[3][1] == f"{expected['group_mean_no_tmp']['mpjpe']:.1f}"
    assert metrics["mpjpe"] == g["mpjpe"] and metrics["ts"] == g["ts_mm_per_frame2"]
    assert len(groups_table) - 1 == len(expected["groups"])

    (per_joint,) = tables(report, "### MPJPE per joint (mm)")
    assert per_joint[1] == [f"{M.mpjpe(p.pred[:, j], p.gt[:, j]):.1f}" for j in range(17)]

    (summary,) = tables(report, "## Breakdowns (the 2D paper's Table 11 layout)")[:1]
    assert summary[1][-1] == f"{pooled['mpjpe']:.1f}"  # overall: pooled, as each level
    (table,) = tables(report, "### By camera view")
    for row in table[1:]:
        mask = p.info["view"] == row[0]
        assert row[2] == f"{M.mpjpe(p.pred[mask], p.gt[mask]):.1f}"  # one group per level: its MPJPE
    for name in ("per_joint.png", "breakdown_view.png", "breakdown_body.png", "best_frames.png", "worst_frames.png"):
        assert (tmp_path / name).is_file(), name
    worst = metrics["worst_frames"][0]
    assert worst["mpjpe"] == pytest.approx(max(M.mpjpe(p.pred[i], p.gt[i]) for i in range(len(p.pred))))


def test_a_property_with_one_level_gets_a_line_not_a_single_bar(predictions_3d, clips, tmp_path):
    p = predictions_3d
    info = {**p.info, "blur": np.full(len(p.pred), "none")}
    p = Predictions3D(p.pred, p.pred_gsr, p.gt, info)
    protocol = Protocol(split="test", boxes="ground truth", flip_test=False, seed=0, samples=len(p.pred), clips=2)
    metrics = report_3d(p, clips, protocol, {**MODEL, "kind": "stsp"}, tmp_path, stride=2, fps=25.0,
                        complexity=COMPLEXITY, overlays=1)
    report = (tmp_path / "report.md").read_text()
    assert "Every sample has the same blur level (none): no breakdown by it." in report
    assert "### By blur level" not in report and not (tmp_path / "breakdown_blur.png").exists()
    assert "blur" not in metrics["breakdowns"] and "view" in metrics["breakdowns"]
    assert (tmp_path / "breakdown_view.png").is_file()

def test_learning_curves_show_each_stage_s_metric_and_the_epoch_it_handed_on(tmp_path):
    """The stages' histories as the pipeline has them: the table's best epoch is the best task metric's, not the
    lowest validation loss's; a stage judged by its loss (context) is starred on it; no histories, no section."""
    spatial = [{"epoch": e, "loss": 1.0 / (e + 1), "val_loss": v, "val_pckh": pckh}
               for e, (v, pckh) in enumerate([(0.5, 40.0), (0.3, 61.0), (0.2, 55.0)])]
    context = [{"epoch": e, "loss": 1.0, "val_loss": v} for e, v in enumerate([0.4, 0.2])]
    lines = write_learning_curves({"spatial": {"history": spatial, "metric": "val_pckh", "mode": "max"},
                                   "context": {"history": context, "metric": "val_loss", "mode": "min"},
                                   "empty": {"history": [], "metric": "val_pckh", "mode": "max"}}, tmp_path)
    assert (tmp_path / "learning_curves.png").stat().st_size > 10_000
    text = "\n".join(lines)
    assert "| spatial | val_pckh | 3 | 2 | 61 |" in text and "| context | val_loss | 2 | 2 | 0.2 |" in text
    assert "empty" not in text
    assert write_learning_curves(None, tmp_path / "none") == []



def _peaks(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, K, h, w) heatmaps with one σ=1 Gaussian at each point given in heatmap pixels."""
    h, w = size
    ys, xs = np.mgrid[0:h, 0:w]
    d2 = (xs[None, None] - points[..., 0, None, None]) ** 2 + (ys[None, None] - points[..., 1, None, None]) ** 2
    return np.exp(-d2 / 2.0).astype(np.float32)


def test_the_streams_table_scores_each_stream_s_own_heatmaps(predictions_2d, clips, tmp_path):
    base = predictions_2d.subset(np.arange(len(predictions_2d.pred)) < 60)
    n = len(base.pred)
    affine = np.tile(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), (n, 1, 1))  # crop = image
    to_heatmap = lambda xy: (xy + 0.5) / 4 - 0.5  # noqa: E731 (image px -> heatmap px at stride 4)
    size = (60, 80)  # 240 x 320 frames
    streams = {"heatmaps_spatial": _peaks(to_heatmap(base.gt), size),  # the truth
               "heatmaps_temporal": _peaks(to_heatmap(base.gt + 12.0), size)}  # every joint 17 px off
    p = with_heatmaps(Predictions2D(base.pred, base.scores, base.gt, base.visible, base.head_size, base.info,
                                    affine, streams), 0.5 * streams["heatmaps_spatial"] + 0.5 * streams["heatmaps_temporal"])
    protocol = Protocol(split="test", boxes="ground truth", flip_test=False, seed=0, samples=n, clips=2)
    metrics = report_2d(p, clips, POSETRACK, protocol, MODEL, tmp_path, overlays=0)
    report = (tmp_path / "report.md").read_text()

    (table,) = tables(report, "## Streams")
    assert [row[0] for row in table[1:]] == ["fused", "spatial", "temporal"]
    expected = {"fused": p, "spatial": with_heatmaps(p, streams["heatmaps_spatial"]),
                "temporal": with_heatmaps(p, streams["heatmaps_temporal"])}
    for row in table[1:]:
        assert row[1] == one_decimal(ap_score(expected[row[0]], clips, POSETRACK)["groups"]["Total"])
        for level in sorted(set(p.info["view"])):
            mask = p.info["view"] == level
            value = ap_score(expected[row[0]].subset(mask), clips, POSETRACK)["groups"]["Total"]
            assert metrics["streams"][row[0]][f"view={level}"] == value
    assert metrics["streams"]["spatial"]["all"] > 90 > metrics["streams"]["temporal"]["all"]
    assert (tmp_path / "streams.png").is_file() and "(streams.png)" in report
