"""Stage checkpoints on disk: one ``checkpoint.pt`` per epoch folder, read without unpickling code.

A checkpoint is a dict of tensors and plain values (model, optimiser and scheduler state, epoch, the loop's
progress, RNG state, config hash, stage, frozen parameter names, history as JSON), so that
``torch.load(weights_only=True)`` reads it back. Epoch folders are named ``epoch_NNNN`` as Ray Train names
them under a run folder; local-mode stages write the same layout themselves. Nothing here imports Ray: the
registry's loader reads checkpoints in processes that have no Ray.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sportpose.paths import runs_dir

CHECKPOINT_FILE = "checkpoint.pt"


def epoch_dir_name(epoch: int) -> str:
    """The folder of one epoch's checkpoint under a run folder (Ray Train's ``checkpoint_dir_name``)."""
    return f"epoch_{epoch:04d}"


def epoch_of(folder: str | Path) -> int:
    """The epoch an ``epoch_NNNN`` folder holds."""
    return int(Path(folder).name.split("_")[1])


def save(directory: str | Path, state: dict[str, Any]) -> None:
    torch.save(state, Path(directory) / CHECKPOINT_FILE)


def load(directory: str | Path) -> dict[str, Any]:
    """A stage checkpoint from its folder, loaded without unpickling code."""
    return torch.load(Path(directory) / CHECKPOINT_FILE, map_location="cpu", weights_only=True)


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
