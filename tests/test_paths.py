"""Output folders appear only when complete: a failure leaves nothing, an overwrite replaces only at the end."""

import pytest

from sportpose.errors import DataError, SpecError
from sportpose.paths import check_name, check_output, remove_tree, staged_dir


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


@pytest.mark.parametrize("name", ["..", ".", "", ".hidden", "a/b", "a\\b", "-x", "a" * 101, "run one"])
def test_a_name_that_is_not_one_plain_path_component_is_refused(name):
    with pytest.raises(SpecError, match="it names a folder") as e:
        check_name("sweep.name", name)
    assert e.value.key == "sweep.name"


@pytest.mark.parametrize("name", ["pt18-tiny", "v1.2", "table9_fusion", "S1..S5"])
def test_plain_names_pass(name):
    assert check_name("name", name) == name


def test_remove_tree_deletes_only_inside_the_folder_it_owns(tmp_path):
    owner = tmp_path / "runs"
    (owner / "sweeps" / "s").mkdir(parents=True)
    (owner / "mlflow.db").write_text("x")
    for bad in (owner, owner / "sweeps" / "..", owner / "sweeps" / ".." / "..", tmp_path):
        with pytest.raises(DataError, match="refusing to delete"):
            remove_tree(bad, owner / "sweeps" if bad != owner else owner)
    (owner / "sweeps" / "link").symlink_to(owner)
    with pytest.raises(DataError, match="symbolic link"):
        remove_tree(owner / "sweeps" / "link", owner / "sweeps")
    remove_tree(owner / "sweeps" / "s", owner / "sweeps")
    remove_tree(owner / "sweeps" / "gone", owner / "sweeps")  # a missing folder: nothing to do
    assert (owner / "mlflow.db").exists() and sorted(p.name for p in (owner / "sweeps").iterdir()) == ["link"]
