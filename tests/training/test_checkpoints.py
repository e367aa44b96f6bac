"""Stage checkpoints: written atomically with a checksum, a truncated one named when loaded, and the newest
good epoch found behind it."""

import pickle

import pytest
import torch

from sportpose.errors import DataError
from sportpose.training import checkpoints


def _state(epoch: int) -> dict:
    return {"model": {"w": torch.full((3,), float(epoch))}, "epoch": epoch, "history": "[]"}


def _run(tmp_path, epochs=3):
    for e in range(epochs):
        d = tmp_path / checkpoints.epoch_dir_name(e)
        d.mkdir()
        checkpoints.save(d, _state(e))
    return tmp_path


def test_a_checkpoint_round_trips_with_its_checksum_and_no_temporary_file(tmp_path):
    _run(tmp_path, 1)
    d = tmp_path / "epoch_0000"
    assert sorted(p.name for p in d.iterdir()) == ["checkpoint.pt", "checkpoint.pt.sha256"]
    assert checkpoints.load(d)["epoch"] == 0


def test_a_truncated_checkpoint_is_named_and_the_previous_epoch_is_the_newest_good(tmp_path):
    _run(tmp_path)
    bad = tmp_path / "epoch_0002" / "checkpoint.pt"
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(DataError, match="epoch_0002/checkpoint.pt: checkpoint: does not match its checksum"):
        checkpoints.load(bad.parent)
    said = []
    assert checkpoints.latest_good(tmp_path, said.append) == tmp_path / "epoch_0001"
    assert len(said) == 1 and "epoch_0002" in said[0] and "falling back" in said[0]


def test_a_checkpoint_without_checksum_that_cannot_be_read_is_named(tmp_path):
    d = tmp_path / "epoch_0000"
    d.mkdir()
    (d / "checkpoint.pt").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DataError, match="checkpoint.pt: checkpoint: cannot be read"):
        checkpoints.load(d)
    (d / "checkpoint.pt").write_bytes(pickle.dumps({"model": 1}))  # a pickle, not weights-only
    with pytest.raises(DataError, match="cannot be read"):
        checkpoints.load(d)
    assert checkpoints.latest_good(tmp_path) is None


def test_a_full_disk_is_an_os_error_naming_the_checkpoint_and_keeps_the_epoch_before(small_disk):
    import errno

    disk = small_disk(64)
    _run(disk, 1)  # a few hundred bytes fit
    (disk / "epoch_0001").mkdir()
    with pytest.raises(OSError) as e:  # torch's own error hides the full disk: the file and ENOSPC come through
        checkpoints.save(disk / "epoch_0001", {"model": {"w": torch.zeros(100_000)}, "epoch": 1})
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(disk / "epoch_0001" / "checkpoint.pt")
    assert list((disk / "epoch_0001").iterdir()) == []  # no partial file left behind
    assert checkpoints.latest_good(disk) == disk / "epoch_0000"
