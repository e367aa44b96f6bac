"""Errors a user can act on: each names the file, the key or field, and what was expected."""

from __future__ import annotations

import errno


class SpecError(ValueError):
    """A bad value in an experiment spec or a config dataclass.

    Config dataclasses raise it from ``__post_init__`` with the field name as ``key``; the spec loader
    prefixes the dotted path of the section and adds the file, so the user sees
    ``experiments/demo.yaml: data.window: must be odd, got 4``.
    """

    def __init__(self, key: str, message: str, file: str | None = None):
        self.key = key
        self.message = message
        self.file = file
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.file}: " if self.file else ""
        return f"{where}{self.key}: {self.message}"

    def __reduce__(self):  # survives pickling (Ray hands task exceptions back to the driver)
        return (SpecError, (self.key, self.message, self.file))

    def within(self, prefix: str | None = None, file: str | None = None) -> "SpecError":
        """The same error seen from an enclosing section (``prefix``) or file."""
        key = f"{prefix}.{self.key}" if prefix else self.key
        return SpecError(key, self.message, file or self.file)


class DataError(ValueError):
    """A bad input file: names the file, the field, and what was expected."""

    def __init__(self, path: str, field: str, message: str):
        self.path = str(path)
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __reduce__(self):  # survives pickling (Ray hands task exceptions back to the driver)
        return (type(self), (self.path, self.field, self.message))

    def __str__(self) -> str:
        field = f" {self.field}:" if self.field else ""
        return f"{self.path}:{field} {self.message}"


class TrainingError(RuntimeError):
    """Training cannot go on (a loss that is not finite): names the stage, the epoch and the step, and what
    is kept."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)

    def __reduce__(self):  # survives pickling (Ray hands worker exceptions back to the driver)
        return (type(self), (self.message,))


def os_problem(e: OSError) -> str:
    """What a failed file operation means for a user: the system's words and where to look."""
    hint = {errno.ENOSPC: "the disk is full: free space, or point SPORTPOSE_RUNS / train.storage_path elsewhere",
            errno.EACCES: "permission denied: SPORTPOSE_RUNS, train.storage_path and -o paths must be writable",
            errno.EROFS: "a read-only file system: point SPORTPOSE_RUNS / train.storage_path at a writable folder",
            errno.ENOTDIR: "a path component is a file, not a folder (check SPORTPOSE_RUNS and the paths given)"}
    words = e.strerror or (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
    return hint.get(e.errno, words)
