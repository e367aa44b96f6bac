"""MLflow tracking on a real SQLite backend: the default URI, parent and child runs, params (redacted)."""

import pytest

from sportpose.registry import tracking


@pytest.fixture
def mlflow_home(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("SPORTPOSE_RUNS", str(tmp_path / "runs"))
    return tmp_path


def test_default_uri_is_sqlite_under_runs(mlflow_home):
    assert tracking.tracking_uri() == f"sqlite:///{mlflow_home / 'runs' / 'mlflow.db'}"


def test_parent_and_child_runs_with_params(mlflow_home):
    parent = tracking.start_run("exp", "pipeline")
    child = tracking.start_run("exp", "stage", parent_id=parent)
    tracking.log_params(child, {"train": {"lr": 0.1, "stages": {"a": {"epochs": 2}}}, "aws_secret_key": "x"})
    tracking.log_metrics(child, {"loss": 1.5}, step=3)
    run = tracking.client().get_run(child)
    assert run.data.tags[tracking.PARENT_TAG] == parent
    assert run.data.params["train.stages.a.epochs"] == "2"
    assert run.data.params["aws_secret_key"] == "***"
    assert run.data.metrics["loss"] == 1.5


def test_passwords_inside_url_values_are_masked_in_params_tags_and_artifacts(mlflow_home, tmp_path):
    url = "postgresql://u:pw@h/db"
    run = tracking.start_run("exp", "sweep", tags={"sportpose.storage": url})
    tracking.log_params(run, {"sweep": {"storage": url, "base": "plain/path.yaml"}})
    tracking.set_tags(run, {"note": f"optuna at {url}"})
    tracking.log_text(run, f"storage: {url}\n", "sweep.yaml")
    spec = tmp_path / "resolved.yaml"
    spec.write_text(f"storage: {url}\nuri: http://host:5000/x\n")
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "state.json").write_text(f'{{"storage": "{url}"}}')
    (folder / "plot.png").write_bytes(b"\x89PNG")
    tracking.log_artifact(run, spec)
    tracking.log_artifact(run, folder, "out")
    data = tracking.client().get_run(run).data
    assert data.params["sweep.storage"] == "postgresql://u:***@h/db" and data.params["sweep.base"] == "plain/path.yaml"
    assert data.tags["sportpose.storage"] == "postgresql://u:***@h/db" and "pw@" not in data.tags["note"]
    texts = [tracking.client().download_artifacts(run, name, str(tmp_path / f"dl{i}"))
             for i, name in enumerate(("sweep.yaml", "resolved.yaml", "out/state.json"))]
    for text in (open(p).read() for p in texts):
        assert "u:***@h/db" in text and "pw" not in text
    assert "http://host:5000/x" in open(texts[1]).read()  # no credentials: unchanged
    assert spec.read_text().count("u:pw@h") == 1  # the user's file is left as it was


def test_experiments_are_tagged_for_mlflows_training_view(mlflow_home):
    """MLflow's UI opens an experiment tagged mlflow.experimentKind=custom_model_development in its training
    view; an experiment made before the tag gets it with its next run."""
    tracking.start_run("new-exp", "pipeline")
    c = tracking.client()
    assert c.get_experiment_by_name("new-exp").tags[tracking.EXPERIMENT_KIND[0]] == "custom_model_development"
    old = c.create_experiment("old-exp")
    assert tracking.EXPERIMENT_KIND[0] not in c.get_experiment(old).tags
    tracking.start_run("old-exp", "pipeline")
    assert c.get_experiment(old).tags[tracking.EXPERIMENT_KIND[0]] == "custom_model_development"


def test_ui_links_open_mlflows_training_view(mlflow_home):
    """MLflow 3.17's UI picks GenAI or Model training from the link's workflowType before its own default."""
    assert tracking.experiment_links("http://127.0.0.1:5000") == []  # no database: nothing, and none made
    assert not (mlflow_home / "runs" / "mlflow.db").exists()
    run = tracking.start_run("with-a-run", "pipeline")
    tracking.client().create_experiment("empty")
    exp = tracking.client().get_run(run).info.experiment_id
    assert tracking.experiment_links("http://127.0.0.1:5000/") == [
        ("with-a-run", f"http://127.0.0.1:5000/#/experiments/{exp}?workflowType=machine_learning")]
