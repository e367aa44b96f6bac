"""`sportpose mlflow-server`: the server command line, its defaults and what it refuses.

A real server is started by the integration tests of tests/platform/test_jobs.py.
"""

import pytest

from sportpose.errors import SpecError
from sportpose.platform.mlflow_server import ServerArgs, server_command


def test_mlflow_server_command(tmp_path, monkeypatch):
    monkeypatch.setenv("SPORTPOSE_RUNS", str(tmp_path / "runs"))
    cmd = server_command(ServerArgs())
    assert cmd[1:4] == ["-m", "mlflow", "server"]
    arg = lambda flag: cmd[cmd.index(flag) + 1]  # noqa: E731
    assert arg("--host") == "127.0.0.1" and arg("--port") == "5000"
    assert arg("--backend-store-uri") == f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    assert arg("--artifacts-destination") == str(tmp_path / "runs" / "mlartifacts") and "--serve-artifacts" in cmd
    team = server_command(ServerArgs(host="0.0.0.0", backend_store_uri="postgresql://u@db/mlflow",
                                     artifacts_destination="s3://b/mlflow", allowed_hosts="mlflow.internal:5000"))
    assert "postgresql://u@db/mlflow" in team and "s3://b/mlflow" in team and "mlflow.internal:5000" in team
    with pytest.raises(SpecError, match="--backend-store-uri"):
        ServerArgs(backend_store_uri="/some/folder")
