"""``sportpose evaluate`` on local Ray: the report, its MLflow run, ``sportpose compare`` on it, and a model that
does not fit the spec."""

import json

import mlflow
import pytest

from sportpose.errors import SpecError
from sportpose.pipelines.compare import compare_table, load_evaluation
from sportpose.pipelines.evaluate import EvaluateArgs, run_evaluate
from sportpose.cli import main as cli
from sportpose.registry import tracking

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def evaluated(ray_local, runs_home, tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluate") / "report"
    args = EvaluateArgs(model=str(tiny_checkpoint), spec=str(tiny_checkpoint / "spec.yaml"), out=str(out),
                        similarity=True, similarity_clips=1, overlays=2)
    return run_evaluate(args, log=lambda _: None)


def test_report_folder_holds_every_table_and_plot(evaluated):
    out = evaluated.out
    names = {p.name for p in out.iterdir()}
    assert {"report.md", "metrics.json", "resolved.yaml", "per_joint.png", "best_frames.png", "worst_frames.png",
            "similarity.png", "breakdown_view.png", "breakdown_body.png"} <= names
    report = (out / "report.md").read_text()
    # the tiny clips differ in view, occlusion and body, not in blur: a line says so, no single bar
    assert "breakdown_blur.png" not in names and "Every sample has the same blur level" in report
    for heading in ("## PoseTrack AP (poseval, %)", "### AP per joint", "## Breakdowns (the 2D paper's Table 11 layout)",
                    "### By camera view", "### By occlusion level", "### By child/adult",
                    "## Best and worst frames", "## Complexity", "## Feature similarity over time (2D paper, Fig. 6)"):
        assert heading in report, heading
    assert "split test · boxes ground truth · flip test off · seed 1" in report
    m = evaluated.metrics
    assert m["samples"] > 0 and m["complexity"]["gmacs"] > 0 and m["similarity"]["gaps"][0] == 1
    assert json.loads((out / "metrics.json").read_text())["ap"] == pytest.approx(m["ap"])


def test_mlflow_run_carries_the_report_and_headline(evaluated):
    run = tracking.client().get_run(evaluated.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["sportpose.kind"] == "evaluation"
    assert run.data.metrics["ap"] == pytest.approx(evaluated.metrics["ap"])
    assert "ap.Head" in run.data.metrics and "complexity.gmacs" in run.data.metrics
    assert any(k.startswith("ap.view.") for k in run.data.metrics)
    text = mlflow.artifacts.load_text(f"runs:/{evaluated.run_id}/evaluation/report.md")
    assert text == (evaluated.out / "report.md").read_text()


def test_compare_reads_the_run_and_the_folder(evaluated, capsys):
    table = compare_table([load_evaluation(evaluated.run_id), load_evaluation(str(evaluated.out))])
    rows = [line for line in table.splitlines() if line.startswith("| model (")]
    assert len(rows) == 2 and rows[0].split("|")[9] == rows[1].split("|")[9]  # the same Total AP
    assert cli.main(["compare", evaluated.run_id, str(evaluated.out)]) == 0
    assert "Total" in capsys.readouterr().out


def test_a_model_cut_for_other_samples_is_refused_naming_the_key(ray_local, runs_home, tiny_checkpoint,
                                                                   stsp_checkpoint):
    args = EvaluateArgs(model=str(tiny_checkpoint), spec=str(stsp_checkpoint / "spec.yaml"), mlflow=False)
    with pytest.raises(SpecError, match=r"spec.yaml: data.joint_set: is 'h36m', but model was trained on samples "
                                        r"with joint_set 'posetrack'"):
        run_evaluate(args, log=lambda _: None)
