"""Where things live on disk: the runs folder, the source tree, and output folders that appear only when complete.

The ground floor of the package (SPEC §1): every floor may import it; it imports nothing of sportpose but the
error types.

- :func:`runs_dir`: runs, data, checkpoints and the SQLite database (``SPORTPOSE_RUNS`` or ``./runs``);
- :data:`REPO` and :func:`project_root`: the folder above the package, and whether it is a source tree;
- :func:`check_output` / :func:`staged_dir`: output folders written beside their destination, then renamed
  into place;
- :func:`check_name`: the one rule for a name that becomes a path (spec, sweep, stage, study), checked in the
  spec layer; :func:`remove_tree`: the only way the project deletes a folder, confined to a folder it owns.

``sportpose infer`` and ``sportpose evaluate`` write into a hidden ``.<name>.partial-XXXX`` folder next to
the output folder; when everything is written it is renamed to the output folder (one ``rename`` on the same
file system), and on any failure it is deleted. A folder named like an output is therefore always complete,
and a failed run leaves nothing that looks like a result.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sportpose.errors import DataError, SpecError

REPO = Path(__file__).resolve().parents[1]  # the folder holding the package (a checkout's root)
EXPERIMENTS = REPO / "experiments"  # the shipped specs, in a source checkout


NAME_RULE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")  # starts with a letter or digit: never '.' or '..'


def check_name(key: str, name: str) -> str:
    """``name`` when it may become one path component: 1-100 letters, digits, '-', '_' or '.', starting with a
    letter or digit (so never ``.``, ``..``, a hidden name or anything with a separator).

    Raises:
        SpecError: naming ``key``.
    """
    if not isinstance(name, str) or not NAME_RULE.match(name):
        raise SpecError(key, "must be 1-100 letters, digits, '-', '_' or '.', starting with a letter or digit "
                             f"(it names a folder), got {name!r}")
    return name


def remove_tree(path: str | Path, owner: str | Path, missing_ok: bool = True) -> None:
    """Delete the folder ``path``, which must lie strictly inside ``owner`` (the folder the caller owns).

    Raises:
        DataError: ``path`` is ``owner`` itself, lies outside it (after resolving ``..`` and links), or is a
            link: nothing is removed then.
    """
    path, owner = Path(path), Path(owner).resolve()
    if path.is_symlink():
        raise DataError(str(path), "", "is a symbolic link; refusing to delete through it")
    resolved = path.resolve()
    if resolved == owner or owner not in resolved.parents:
        raise DataError(str(path), "", f"refusing to delete a folder that is not inside {owner}")
    if not resolved.exists() and missing_ok:
        return
    shutil.rmtree(resolved)


def runs_dir() -> Path:
    """The local folder for runs, data, checkpoints and the SQLite database (``SPORTPOSE_RUNS`` or ./runs)."""
    return Path(os.environ.get("SPORTPOSE_RUNS", "runs")).resolve()


def project_root() -> Path | None:
    """The source tree this package was loaded from, or None when it is installed as a package."""
    pyproject = REPO / "pyproject.toml"
    if pyproject.is_file() and 'name = "sportpose"' in pyproject.read_text():
        return REPO
    return None


def check_output(out: str | Path, overwrite: bool = False, flag: str = "--out") -> Path:
    """``out`` as a Path, after checking it may be written.

    Raises:
        DataError: ``out`` is a file, or a non-empty folder and ``overwrite`` is off.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(str(out), flag, "exists and is a file; give a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise DataError(str(out), flag, "exists and is not empty (choose another folder, or pass --overwrite)")
    return out


def umask() -> int:
    """The process's file-mode creation mask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_dir(path: str | Path) -> Path:
    """``path`` and its parents created as ``mkdir -p`` does, with the user's umask."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def staged_dir(out: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """A temporary folder beside ``out`` that replaces ``out`` when the ``with`` block completes.

    Args:
        out: the output folder.
        overwrite: replace a non-empty ``out`` (only once the new one is complete).

    Yields:
        The folder to write into.

    Raises:
        DataError: as :func:`check_output`, before anything is written.
    """
    out = check_output(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes it drwx------; the output is the user's, as mkdir would make it
    try:
        yield tmp
    except BaseException:
        remove_tree(tmp, out.parent)
        raise
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / out.name)
        os.replace(tmp, out)
        remove_tree(old, out.parent)
    else:
        os.replace(tmp, out)
