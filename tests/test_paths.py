"""Output folders appear only when complete: a failure leaves nothing, an overwrite replaces only at the end."""

import pytest

from sportpose.errors import DataError
from sportpose.paths import check_output, staged_dir


def entries(folder):
    return sorted(p.name for p in folder.iterdir())


def test_the_folder_appears_when_the_block_completes(tmp_path):
    out = tmp_path / "out"
    with staged_dir(out) as tmp:
        (tmp / "a.txt").write_text("a")
        assert not out.exists() and tmp.parent == tmp_path and tmp.name.startswith(".out.partial-")
    assert entries(out) == ["a.txt"] and entries(tmp_path) == ["out"]


def test_a_failure_leaves_nothing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with staged_dir(out) as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("boom")
    assert entries(tmp_path) == []


def test_a_non_empty_folder_needs_overwrite_and_is_replaced_only_at_the_end(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(DataError, match="not empty"):
        check_output(out)
    with pytest.raises(RuntimeError):
        with staged_dir(out, overwrite=True) as tmp:
            (tmp / "new.txt").write_text("new")
            raise RuntimeError("boom")
    assert entries(out) == ["old.txt"]  # the earlier results survive a failed overwrite
    with staged_dir(out, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert entries(out) == ["new.txt"] and entries(tmp_path) == ["out"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is a file"):
        check_output(tmp_path / "file", overwrite=True)
