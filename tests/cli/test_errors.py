"""A file problem of the user's environment (SPORTPOSE_RUNS under a file, a full disk, no permission) is one line
naming the path and what to do, status 2; the commands' own bugs keep their tracebacks."""

import errno

import pytest

from sportpose.cli.common import run_command
from sportpose.cli.main import main as cli_main


def test_a_runs_folder_that_cannot_exist_is_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "a-file").write_text("x")
    monkeypatch.setenv("SPORTPOSE_RUNS", str(tmp_path / "a-file" / "runs"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert cli_main(["registry", "list"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "a-file" in err and "is a file, not a folder" in err, err


@pytest.mark.parametrize("code, words", [
    (errno.ENOSPC, "the disk is full: free space, or point SPORTPOSE_RUNS / train.storage_path elsewhere"),
    (errno.EACCES, "permission denied: SPORTPOSE_RUNS, train.storage_path and -o paths must be writable"),
])
def test_a_full_disk_or_a_denied_write_is_one_line(code, words, capsys):
    def command(args):
        raise OSError(code, "system words", "/data/runs/ckpt.pt")

    assert run_command(command, None) == 2
    assert capsys.readouterr().err.strip() == f"error: /data/runs/ckpt.pt: {words}"


def test_an_os_error_without_a_file_keeps_its_traceback():
    def command(args):
        raise OSError("a socket failed")

    with pytest.raises(OSError):
        run_command(command, None)
