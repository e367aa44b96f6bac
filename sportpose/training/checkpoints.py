"""Stage checkpoints on disk: one ``checkpoint.pt`` per epoch folder, read without unpickling code.

A checkpoint is a dict of tensors and plain values (model, optimiser and scheduler state, epoch, the loop's
progress, RNG state, config hash, stage, frozen parameter names, history as JSON), so that
``torch.load(weights_only=True)`` reads it back. It is written to a temporary file and renamed (a reader never
sees half a checkpoint) with its SHA-256 beside it (``checkpoint.pt.sha256``); :func:`load` verifies it and
names the file when the checkpoint is truncated or corrupt, and :func:`latest_good` finds the newest epoch
whose checkpoint verifies (resuming falls back to it). Epoch folders are named ``epoch_NNNN`` as Ray Train names
them under a run folder; local-mode stages write the same layout themselves. Nothing here imports Ray: the
registry's loader reads checkpoints in processes that have no Ray.
"""

from __future__ import annotations

import hashlib
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sportpose.errors import DataError
from sportpose.paths import runs_dir

CHECKPOINT_FILE = "checkpoint.pt"
CHECKSUM_SUFFIX = ".sha256"


def epoch_dir_name(epoch: int) -> str:
    """The folder of one epoch's checkpoint under a run folder (Ray Train's ``checkpoint_dir_name``)."""
    return f"epoch_{epoch:04d}"


def epoch_of(folder: str | Path) -> int:
    """The epoch an ``epoch_NNNN`` folder holds."""
    return int(Path(folder).name.split("_")[1])


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save(directory: str | Path, state: dict[str, Any]) -> None:
    """Write ``checkpoint.pt`` atomically (temporary file, then rename) with its checksum beside it.

    Raises:
        OSError: naming ``checkpoint.pt`` when it cannot be written (a full disk, no permission); the epochs
            written before stay as they were.
    """
    directory = Path(directory)
    target = directory / CHECKPOINT_FILE
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{CHECKPOINT_FILE}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                torch.save(state, f)
            except RuntimeError as e:  # torch's writer hides the failed write (a full disk) behind its own error
                if isinstance(e.__context__, OSError):
                    raise OSError(e.__context__.errno, e.__context__.strerror, str(target)) from None
                raise
        digest = _sha256(Path(tmp))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    (directory / (CHECKPOINT_FILE + CHECKSUM_SUFFIX)).write_text(digest + "\n")


def verify(directory: str | Path) -> None:
    """Raises DataError naming ``checkpoint.pt`` when it is missing, empty or differs from its checksum (a
    checkpoint written without one is only checked for being non-empty)."""
    path = Path(directory) / CHECKPOINT_FILE
    if not path.is_file() or path.stat().st_size == 0:
        raise DataError(str(path), "checkpoint", "missing or empty")
    checksum = path.with_name(CHECKPOINT_FILE + CHECKSUM_SUFFIX)
    if checksum.is_file() and checksum.read_text().strip() != _sha256(path):
        raise DataError(str(path), "checkpoint", "does not match its checksum (truncated or corrupt)")


def load(directory: str | Path) -> dict[str, Any]:
    """A stage checkpoint from its folder, verified and loaded without unpickling code.

    Raises:
        DataError: naming the file, when it is missing, truncated, corrupt or not a weights-only checkpoint.
    """
    verify(directory)
    path = Path(directory) / CHECKPOINT_FILE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises RuntimeError, EOFError, UnpicklingError, zipfile errors...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise DataError(str(path), "checkpoint", f"cannot be read ({first})") from None


def latest_good(run_dir: str | Path, log=None) -> Path | None:
    """The newest epoch folder of ``run_dir`` whose checkpoint verifies and loads; ``log`` hears of each
    newer one that does not (the fallback is said, never silent)."""
    for folder in reversed(epoch_dirs(run_dir)):
        try:
            load(folder)
            return folder
        except DataError as e:
            if log is not None:
                log(f"checkpoint {e.path}: {e.message}; falling back to the epoch before")
    return None


def epoch_dirs(run_dir: str | Path) -> list[Path]:
    """The epoch folders of a run folder that hold a checkpoint, oldest first."""
    return sorted(p.parent for p in Path(run_dir).glob(f"epoch_*/{CHECKPOINT_FILE}"))


def storage_root(storage_path: str | None) -> str:
    """Where Ray Train and Tune keep run folders: the spec's ``train.storage_path`` (a local folder made
    absolute, or a URI kept as given), else ``<runs>/ray``."""
    storage = storage_path or str(runs_dir() / "ray")
    return storage if "://" in storage else str(Path(storage).resolve())


def rng_state() -> dict[str, Any]:
    """This process's torch, numpy and Python RNG states, as tensors and plain values."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    random.setstate(state["python"])
