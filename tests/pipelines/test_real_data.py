"""Training and evaluating on an imported real dataset: the PoseTrack 2018 fixtures, imported as a user imports
a download (train and val folders), a one-epoch stage on local Ray, and ``sportpose evaluate`` writing
predictions that the PoseTrack evaluation reads against the dataset's own annotation files."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from sportpose.data.formats import read_posetrack18, write_posetrack18
from sportpose.data.imports import run_import
from sportpose.evaluation.posetrack_eval import evaluate_folders
from sportpose.pipelines.evaluate import EvaluateArgs, run_evaluate
from sportpose.pipelines.reproduce.study import load_study, run_study, study_path
from sportpose.pipelines.train import run_pipeline
from sportpose.registry import tracking
from sportpose.spec.experiment import load_spec, spec_yaml
from tests.conftest import tiny_spec

POSETRACK = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "posetrack18"
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not POSETRACK.is_dir(), reason=f"the PoseTrack fixtures are not at {POSETRACK}")]
SPLITS = {"003418_mpii_test": "train", "012834_mpii_test": "train", "009473_mpii_test": "val"}


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    """The three fixture videos laid out as a PoseTrack 2018 download with a train and a val folder."""
    root = tmp_path_factory.mktemp("posetrack18-download")
    for name, split in SPLITS.items():
        (root / "annotations" / split).mkdir(parents=True, exist_ok=True)
        write_posetrack18(read_posetrack18(POSETRACK / "annotations" / "val" / f"{name}.json")[0],
                          root / "annotations" / split / f"{name}.json", predictions=False)
        (root / "images" / "val").mkdir(parents=True, exist_ok=True)
        (root / "images" / "val" / name).symlink_to(POSETRACK / "images" / "val" / name)
    out = root.parent / "posetrack18-import"
    run_import("posetrack18", root, out, progress=False)
    return out


def mmpose_checkpoint(path: Path, model_overrides: list[str]) -> Path:
    """A SimpleBaseline checkpoint in MMPose's layout (``state_dict`` with ``backbone.`` and ``keypoint_head.``
    keys, a 17-row COCO head, ``meta``) at the tiny spec's widths, as the model zoo's files are at the paper's."""
    torch.manual_seed(1)
    model = tiny_spec("simplebaseline", model_overrides).build_model()
    state = {f"backbone.{k}": v for k, v in model.backbone.state_dict().items()}
    state |= {f"keypoint_head.deconv_layers.{k}": v for k, v in model.deconv.state_dict().items()}
    state |= {f"keypoint_head.final_layer.{k}": v for k, v in model.head.state_dict().items()}
    torch.save({"meta": {"epoch": 210}, "state_dict": state}, path)
    return path


@pytest.fixture(scope="module")
def trained(ray_local, runs_home, imported, tiny_yaml, tmp_path_factory):
    folder = tmp_path_factory.mktemp("real")
    spec_path = folder / "pt18.yaml"
    weights = mmpose_checkpoint(folder / "res18_coco.pth", [])
    spec_path.write_text(tiny_yaml("sb-base", "name=pt18-tiny", "data.source=manifest", f"data.root={imported}",
                                   f"model.pretrained={weights}",
                                   "data.max_samples_per_clip=null", "data.min_visible_joints=1",
                                   "train.stages.main.epochs=1", "train.stages.main.scaling.num_workers=1",
                                   "evaluate.split=val", "register={enabled: false}"))
    spec = load_spec(spec_path)
    return spec_path, run_pipeline(spec, log=lambda _: None)


def test_a_stage_trains_on_the_imported_frames_and_is_evaluated_on_official_val(trained):
    _, result = trained
    assert result.data_reports["train"]["samples"] == 12 and not result.data_reports["train"]["skipped"]
    assert result.stages["main"].history and result.stages["main"].history[0]["loss"] > 0
    assert result.evaluation["samples"] == 2  # the val video's two people


def test_evaluate_writes_predictions_poseval_reads_against_the_dataset_files(trained, tmp_path):
    spec_path, result = trained
    out = tmp_path / "eval"
    evaluated = run_evaluate(EvaluateArgs(model=result.stages["main"].checkpoint, spec=str(spec_path),
                                          out=str(out), overlays=1), log=lambda _: None)
    predictions = out / "predictions" / "009473_mpii_test.json"
    doc = json.loads(predictions.read_text())
    gt = json.loads((POSETRACK / "annotations" / "val" / "009473_mpii_test.json").read_text())
    labelled = {i["id"]: i["file_name"] for i in gt["images"] if i["is_labeled"]}
    assert {i["id"]: i["file_name"] for i in doc["images"]} == labelled
    assert all(len(a["keypoints"]) == 51 and len(a["scores"]) == 17 for a in doc["annotations"])
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    shutil.copy(POSETRACK / "annotations" / "val" / "009473_mpii_test.json", gt_dir)
    ap = evaluate_folders(gt_dir, out / "predictions")
    assert ap["groups"]["Total"] == pytest.approx(evaluated.metrics["ap"], abs=1e-6)
    assert "split val" in (out / "report.md").read_text()
    assert yaml_split(out) == "val"


def yaml_split(out: Path) -> str:
    return load_spec(out / "resolved.yaml").evaluate.split


def test_the_pretrained_key_table_is_in_the_stage_run_artifacts(trained, tmp_path):
    _, result = trained
    runs = tracking.client().search_runs([tracking.client().get_run(result.parent_run_id).info.experiment_id],
                                         f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    (stage,) = [r for r in runs if r.data.tags.get("sportpose.stage") == "main"]
    table = Path(tracking.client().download_artifacts(stage.info.run_id, "pretrained/keys.md", str(tmp_path)))
    text = table.read_text()
    assert "(mmpose): " in text and "0 unused" in text
    assert "| backbone.layer1.0.conv1.weight | backbone.layer1.0.conv1.weight | matched |" in text
    assert "| keypoint_head.final_layer.weight | head.weight | rows | 15/17 joints from COCO" in text
    summary = json.loads(Path(tracking.client().download_artifacts(stage.info.run_id, "pretrained/summary.json",
                                                                   str(tmp_path))).read_text())
    assert summary["files"][0]["counts"]["matched"] > 100


def test_the_resolved_spec_names_the_imported_manifest(trained):
    spec_path, result = trained
    assert "source: manifest" in spec_yaml(result.spec) and result.spec.data.root == load_spec(spec_path).data.root


def test_a_paper_table_runs_at_tiny_scale_on_the_imported_data(ray_local, runs_home, imported, tmp_path):
    """``sportpose reproduce table9-fusion --scale tiny -o data.root=<import>``: the tiny settings on the real
    clips (the SynthCourt base switches to the import's manifest, evaluated on its official val split)."""
    lines: list[str] = []
    study = load_study(study_path("table9-fusion"), "tiny", [f"data.root={imported}"])
    out = run_study(study, log=lines.append, reports=tmp_path / "reports")
    assert any("holds an imported 'posetrack18' manifest" in line and "held-out split val" in line for line in lines)
    assert "data: train: 5 samples from 2 clips" in lines and "data: val: 2 samples from 1 clips" in lines
    table = (Path(out["dir"]) / "table.md").read_text()
    for row, _ in study.rows:
        assert f"- {row.label}: data manifest of posetrack18 at {imported}; init scratch" in table
    results = json.loads((Path(out["dir"]) / "results.json").read_text())
    assert all(v is not None for r in results["rows"] for v in r["ours"].values())
