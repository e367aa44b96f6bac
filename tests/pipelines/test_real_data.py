"""Training and evaluating on an imported real dataset: the PoseTrack 2018 fixtures, imported as a user imports
a download (train and val folders), a one-epoch stage on local Ray, and ``sportpose evaluate`` writing
predictions that the PoseTrack evaluation reads against the dataset's own annotation files."""

import json
import shutil
from pathlib import Path

import pytest

from sportpose.data.formats import read_posetrack18, write_posetrack18
from sportpose.data.imports import run_import
from sportpose.evaluation.posetrack_eval import evaluate_folders
from sportpose.pipelines.evaluate import EvaluateArgs, run_evaluate
from sportpose.pipelines.train import run_pipeline
from sportpose.spec.experiment import load_spec, spec_yaml

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


@pytest.fixture(scope="module")
def trained(ray_local, runs_home, imported, tiny_yaml, tmp_path_factory):
    spec_path = tmp_path_factory.mktemp("real") / "pt18.yaml"
    spec_path.write_text(tiny_yaml("sb-base", "name=pt18-tiny", "data.source=manifest", f"data.root={imported}",
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


def test_the_resolved_spec_names_the_imported_manifest(trained):
    spec_path, result = trained
    assert "source: manifest" in spec_yaml(result.spec) and result.spec.data.root == load_spec(spec_path).data.root
