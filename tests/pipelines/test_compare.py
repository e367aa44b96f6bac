"""``sportpose compare``: evaluations from folders, metrics files and MLflow runs in one table."""

import json

import pytest

from sportpose.errors import DataError
from sportpose.pipelines.compare import compare_table, load_evaluation

GROUPS_A = {"Head": 80.0, "Shou": 70.0, "Elb": 60.0, "Wri": 50.0, "Hip": 65.0, "Knee": 55.0, "Ankl": 45.0, "Total": 61.2}


def evaluation_folder(path, label, total, boxes="ground truth"):
    path.mkdir()
    groups = {**GROUPS_A, "Total": total}
    (path / "metrics.json").write_text(json.dumps({
        "kind": "2d", "model": {"label": label}, "ap": total, "ap_groups": groups, "pckh": 55.5,
        "split": "test", "boxes": boxes, "flip_test": False, "seed": 0, "samples": 120}))
    return path


def cells(table: str, label: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith(f"| {label} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_folders_side_by_side(tmp_path):
    a = evaluation_folder(tmp_path / "a", "sportpose-multistream v1", 61.2)
    b = evaluation_folder(tmp_path / "b", "sportpose-multistream v2", 64.9)
    pipeline = tmp_path / "evaluation.json"  # the training pipeline's evaluation file reads too
    pipeline.write_text(json.dumps({"pckh": 40.0, "ap": 30.0, "ap_groups": {**GROUPS_A, "Total": 30.0},
                                    "split": "test", "boxes": "ground truth", "flip_test": False, "samples": 99}))
    table = compare_table([load_evaluation(str(a)), load_evaluation(str(b)), load_evaluation(str(pipeline))])
    header = cells(table, "evaluation")
    assert header == ["evaluation", "Head", "Shou", "Elb", "Wri", "Hip", "Knee", "Ankl", "Total", "PCKh", "split",
                      "boxes", "flip test", "samples"]
    assert cells(table, "sportpose-multistream v2 (b)")[8] == "64.9"
    assert cells(table, "sportpose-multistream v1 (a)")[-4:] == ["test", "ground truth", "no", "120"]
    assert "different protocols" in table  # the pipeline's file: 99 samples


def test_different_protocols_are_flagged_and_3d_columns_appear(tmp_path):
    a = evaluation_folder(tmp_path / "a", "gt boxes", 61.2)
    same = compare_table([load_evaluation(str(a)), load_evaluation(str(a))])
    assert "different protocols" not in same
    b = evaluation_folder(tmp_path / "b", "detections", 50.0, boxes="detections (dets.json)")
    c = tmp_path / "c.json"
    c.write_text(json.dumps({"mpjpe": 88.2, "p_mpjpe": 60.1, "pck3d": 80.0, "auc3d": 45.0, "ts": 3.21,
                             "split": "test", "boxes": "ground truth", "flip_test": False, "samples": 50}))
    table = compare_table([load_evaluation(str(p)) for p in (a, b, c)])
    assert "different protocols" in table
    header = cells(table, "evaluation")
    assert cells(table, c.parent.name)[header.index("MPJPE")] == "88.2"  # a metrics file is named by its folder
    assert cells(table, c.parent.name)[header.index("TS")] == "3.21"
    assert cells(table, "gt boxes (a)")[header.index("MPJPE")] == "-"


def test_mlflow_runs_and_bad_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("SPORTPOSE_RUNS", str(tmp_path))
    from sportpose.registry import tracking

    with_artifact = tracking.start_run("cmp", "evaluate-x", tags={"sportpose.model_label": "model x"})
    tracking.log_text(with_artifact, json.dumps({"ap": 61.2, "ap_groups": GROUPS_A, "split": "test",
                                                 "boxes": "ground truth", "flip_test": False, "samples": 10}),
                      "evaluation/metrics.json")
    flat = tracking.start_run("cmp", "old")
    tracking.log_metrics(flat, {"ap": 12.5, "pckh": 33.0})
    table = compare_table([load_evaluation(with_artifact), load_evaluation(flat)])
    assert cells(table, f"model x (run {with_artifact[:8]})")[8] == "61.2"
    old = f"old (run {flat[:8]})"
    assert cells(table, old)[cells(table, "evaluation").index("Total")] == "-"
    assert cells(table, old)[cells(table, "evaluation").index("PCKh")] == "33.0"
    with pytest.raises(DataError, match="no MLflow run"):
        load_evaluation("0" * 32)
    with pytest.raises(DataError, match="not an evaluation folder"):
        load_evaluation(str(tmp_path / "nothing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no metrics.json"):
        load_evaluation(str(tmp_path / "empty"))
