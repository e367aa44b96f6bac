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


@pytest.mark.integration
def test_optuna_dashboard_command_serves(tmp_path):
    """The command ``sportpose dashboard`` starts for optuna-dashboard answers HTTP on 127.0.0.1."""
    import socket
    import subprocess
    import time
    import urllib.request

    import optuna

    from sportpose.platform.dashboard import optuna_dashboard_command

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(storage=storage, study_name="s").optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = optuna_dashboard_command(storage, port)
    assert command is not None, "optuna-dashboard is a dev dependency: it should be installed"
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline, status = time.monotonic() + 60, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as r:
                    status = r.status
                    body = r.read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert proc.poll() is None, f"optuna-dashboard exited: {proc.stderr.read().decode()[-500:]}"
        assert status == 200 and '"s"' in body
    finally:
        proc.kill()
        proc.wait()
