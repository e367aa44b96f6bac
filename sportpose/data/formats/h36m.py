"""Human3.6M in the VideoPose3D layout: ``data_3d_h36m.npz`` and ``data_2d_h36m_<detector>.npz`` (SPEC §3.2).

3D joints come back in mm (the files hold metres), reduced from the 32 mocap joints to the 17 ``h36m`` joints
(:data:`H36M_KEPT_JOINTS`).

Trust: VideoPose3D stores its dicts as pickled object arrays inside the ``.npz``, so `read_h36m_3d` and
`read_h36m_2d` load them with ``allow_pickle=True``. Unpickling can run arbitrary code: load only archives
built by VideoPose3D's own preparation scripts or by yourself. No other reader of the formats unpickles.
"""

from __future__ import annotations

import os
import zipfile
from typing import Any

import numpy as np

from sportpose.errors import DataError
from sportpose.data.formats.checks import one_line

# VideoPose3D's Human36mDataset.remove_joints: the 32 mocap joints minus these 15 give the 17 h36m joints.
H36M_REMOVED_JOINTS = (4, 5, 9, 10, 11, 16, 20, 21, 22, 23, 24, 28, 29, 30, 31)
H36M_KEPT_JOINTS = tuple(j for j in range(32) if j not in H36M_REMOVED_JOINTS)


def _npz_object(path: str, key: str) -> Any:
    """The pickled object stored under ``key`` of a VideoPose3D ``.npz`` (trusted files only, see the module doc)."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):  # refuse to unpickle anything that is not a zip archive
        raise DataError(path, "", "not an .npz archive")
    try:
        archive = np.load(path, allow_pickle=True)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise DataError(path, "", f"not a readable .npz archive ({one_line(e)})") from None
    with archive:
        if key not in archive.files:
            raise DataError(path, key, f"missing; the archive holds {sorted(archive.files)}")
        try:
            value = archive[key]
        except Exception as e:  # a corrupt member or pickle: report it against the file
            raise DataError(path, key, f"cannot be read ({one_line(e)})") from None
    if isinstance(value, np.ndarray) and value.dtype == object and value.ndim == 0:
        value = value.item()
    return value


def _subject_actions(value: Any, path: str, key: str) -> dict:
    if not isinstance(value, dict):
        raise DataError(path, key, f"expected a pickled dict subject -> action -> data, got {type(value).__name__}")
    for subject, actions in value.items():
        if not isinstance(actions, dict):
            raise DataError(path, f"{key}[{subject}]", f"expected a dict action -> data, got {type(actions).__name__}")
    return value


def _finite_array(value: Any, path: str, field: str, shape_ok, expected: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(path, field, f"expected {expected}, got {type(value).__name__}") from None
    if not shape_ok(arr.shape):
        raise DataError(path, field, f"expected {expected}, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise DataError(path, field, "non-finite values (NaN or inf)")
    return arr


def read_h36m_3d(path: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
    """Read VideoPose3D's ``data_3d_h36m.npz``: world-frame joints per subject and action.

    The file holds ``positions_3d[subject][action]`` = (T, 32, 3) metres. The 32 mocap joints are reduced to
    the 17 ``h36m`` joints by removing indices 4, 5, 9, 10, 11, 16, 20–24, 28–31 (VideoPose3D's
    ``remove_joints``) and converted to mm; arrays already reduced to 17 joints are only converted.
    Root-relative coordinates are the caller's job. Loads a pickle: trusted files only (module doc).

    Returns:
        subject -> action -> (T, 17, 3) float32, mm.

    Raises:
        DataError: not an ``.npz``, no ``positions_3d``, an array of another shape, NaN values.
    """
    path = str(path)
    positions = _subject_actions(_npz_object(path, "positions_3d"), path, "positions_3d")
    out: dict[str, dict[str, np.ndarray]] = {}
    for subject, actions in positions.items():
        out[subject] = {}
        for action, value in actions.items():
            arr = _finite_array(
                value, path, f"positions_3d[{subject}][{action}]",
                lambda s: len(s) == 3 and s[1] in (32, 17) and s[2] == 3, "(T, 32, 3) metres",
            )
            if arr.shape[1] == 32:
                arr = arr[:, H36M_KEPT_JOINTS]  # (T, 17, 3)
            out[subject][action] = (arr * 1000.0).astype(np.float32)
    return out


def read_h36m_2d(path: str | os.PathLike) -> tuple[dict[str, dict[str, list[np.ndarray]]], dict]:
    """Read VideoPose3D's ``data_2d_h36m_<detector>.npz``: 2D keypoints per subject, action and camera.

    Loads a pickle: trusted files only (module doc).

    Returns:
        (positions_2d, metadata): ``positions_2d[subject][action]`` = list of per-camera (T, J, 2) float32
        pixel arrays (4 cameras for Human3.6M); ``metadata`` as stored (``layout_name``, ``num_joints``,
        ``keypoints_symmetry``).

    Raises:
        DataError: not an ``.npz``, no ``positions_2d`` or ``metadata``, a camera array of another shape, NaN.
    """
    path = str(path)
    positions = _subject_actions(_npz_object(path, "positions_2d"), path, "positions_2d")
    metadata = _npz_object(path, "metadata")
    if not isinstance(metadata, dict):
        raise DataError(path, "metadata", f"expected a pickled dict, got {type(metadata).__name__}")
    out: dict[str, dict[str, list[np.ndarray]]] = {}
    for subject, actions in positions.items():
        out[subject] = {}
        for action, cameras in actions.items():
            field = f"positions_2d[{subject}][{action}]"
            if isinstance(cameras, np.ndarray) and cameras.dtype != object:
                cameras = list(cameras)  # a stacked (C, T, J, 2) array
            if not isinstance(cameras, (list, tuple, np.ndarray)) or len(cameras) == 0:
                raise DataError(path, field, "expected a non-empty list of per-camera (T, J, 2) arrays")
            out[subject][action] = [
                _finite_array(
                    cam, path, f"{field}[{c}]", lambda s: len(s) == 3 and s[2] == 2, "(T, J, 2) pixels"
                ).astype(np.float32)
                for c, cam in enumerate(cameras)
            ]
    return out, metadata
