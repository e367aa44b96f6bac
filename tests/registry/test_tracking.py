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
