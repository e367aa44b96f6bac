"""Field checks shared by the format readers: each names the file and the field, on one line (`DataError`).

``path`` is the file being read, ``field`` the place in it (``annotations[3].keypoints``); a check returns
the value in the type its name says or raises ``DataError(path, field, message)``.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

from sportpose.errors import DataError


def one_line(text: Any) -> str:
    """``text`` with every run of whitespace (newlines included) made one space."""
    return " ".join(str(text).split())


def describe(value: Any) -> str:
    """A short description of a JSON value for an error message: ``null``, ``a list of 3``, ``str 'a'``."""
    if value is None:
        return "null"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def numbers(value: Any, n: int | None, path: str, field: str) -> np.ndarray:
    """A JSON list of ``n`` finite numbers (any length when ``n`` is None) as float64."""
    if not isinstance(value, list) or (n is not None and len(value) != n):
        want = f"a list of {n} numbers" if n is not None else "a list of numbers"
        raise DataError(path, field, f"expected {want}, got {describe(value)}")
    for i, v in enumerate(value):
        if not _is_number(v):
            raise DataError(path, field, f"expected numbers, got {describe(v)} at index {i}")
    arr = np.asarray(value, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise DataError(path, field, f"non-finite value ({arr[bad[0]]}) at index {int(bad[0])}")
    return arr


def number(value: Any, path: str, field: str) -> float:
    """A finite JSON number."""
    if not _is_number(value) or not math.isfinite(value):
        raise DataError(path, field, f"expected a finite number, got {describe(value)}")
    return float(value)


def integer(value: Any, path: str, field: str) -> int:
    """A JSON integer (a float with an integral value counts)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise DataError(path, field, f"expected an integer, got {describe(value)}")
    return value


def required(obj: dict, key: str, path: str, prefix: str) -> Any:
    """``obj[key]``; missing, it is an error at ``prefix.key``."""
    if key not in obj:
        raise DataError(path, f"{prefix}.{key}" if prefix else key, "missing")
    return obj[key]


def json_object(value: Any, path: str, field: str) -> dict:
    """A JSON object."""
    if not isinstance(value, dict):
        raise DataError(path, field, f"expected an object, got {describe(value)}")
    return value


def json_list(value: Any, path: str, field: str) -> list:
    """A JSON list."""
    if not isinstance(value, list):
        raise DataError(path, field, f"expected a list, got {describe(value)}")
    return value


def box(value: Any, path: str, field: str) -> np.ndarray | None:
    """``[x, y, w, h]`` as float32, or None for a missing box (null or [])."""
    if value is None or value == []:
        return None
    return numbers(value, 4, path, field).astype(np.float32)


def load_json(path: str | os.PathLike) -> Any:
    """The file's JSON; a missing file raises the usual ``FileNotFoundError``."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(path, "", f"not valid JSON ({one_line(e)})") from None
