"""Shared fixtures: one local Ray for every integration test, and a private runs/ folder per session."""

import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def runs_home(tmp_path_factory):
    """A runs/ folder (MLflow SQLite database, checkpoints, data) private to this test session."""
    home = tmp_path_factory.mktemp("runs")
    old = {k: os.environ.get(k) for k in ("SPORTPOSE_RUNS", "MLFLOW_TRACKING_URI")}
    os.environ["SPORTPOSE_RUNS"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield home
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def ray_local(runs_home):
    """A local Ray with this machine's CPUs, shared by the session (starting Ray costs seconds)."""
    from sportpose.platform.runtime import init_ray, shutdown_ray

    init_ray()
    yield
    shutdown_ray()
