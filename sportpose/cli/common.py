"""What the commands share: the recurring flags, command groups, aligned tables, output files, and the error
handling that turns a mistake a user can fix into one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from sportpose.errors import DataError, SpecError, TrainingError, os_problem

AddArgs = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]
# A table of commands: name -> (help text, add-arguments function, run function)
Commands = dict[str, tuple[str, AddArgs, Run]]


# ---- the recurring flags -----------------------------------------------------------------------------------


def spec_arg(p: argparse.ArgumentParser, help: str = "experiment spec (YAML)") -> None:
    p.add_argument("spec", help=help)


def override_arg(p: argparse.ArgumentParser,
                 help: str = "override a spec key, e.g. -o train.stages.main.epochs=2 (repeatable; +KEY=VALUE adds a stage "
                                   "or mapping entry the spec lacks)") -> None:
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE", help=help)


def ray_address_arg(p: argparse.ArgumentParser) -> None:
    """``--address`` of the Ray cluster the command's own driver joins, and ``--verbose``: the flags of every
    command that runs a Ray driver (:mod:`sportpose.platform.console`)."""
    p.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also print Ray's and MLflow's own log lines (progress bars, dataset and worker notes)")


def job_address_arg(p: argparse.ArgumentParser) -> None:
    """``--address`` of a cluster's job API, for commands that submit or watch jobs from outside the cluster."""
    p.add_argument("--address", default=None, metavar="URL",
                   help="the cluster's job API, http://HEAD:8265 (default: RAY_API_SERVER_ADDRESS, else an http RAY_ADDRESS)")


def resume_arg(p: argparse.ArgumentParser, help: str, choices: Sequence[str] = ()) -> None:
    """``--resume``: a switch, or with ``choices`` an optional value whose first choice is what a bare
    ``--resume`` means (``args.resume`` is False when the flag is left out)."""
    if choices:
        p.add_argument("--resume", nargs="?", const=choices[0], default=False, choices=list(choices), help=help)
    else:
        p.add_argument("--resume", action="store_true", help=help)


def experiment_args(p: argparse.ArgumentParser) -> None:
    """An experiment spec, its ``-o`` overrides and the Ray ``--address``: every command that runs a spec."""
    spec_arg(p)
    override_arg(p)
    ray_address_arg(p)


# ---- command groups (sportpose data synth, sportpose jobs list, ...) ---------------------------------------


def group_args(table: Commands) -> AddArgs:
    """The arguments of a command group: one sub-command per entry of ``table``, chosen as ``args.action``."""

    def add_args(p: argparse.ArgumentParser) -> None:
        sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
        for name, (text, add, _) in table.items():
            add(sub.add_parser(name, help=text, description=text))

    return add_args


def group_run(table: Commands) -> Run:
    return lambda args: table[args.action][2](args)


# ---- output ------------------------------------------------------------------------------------------------


def columns(rows: list[dict[str, str]], cols: Sequence[str]) -> str:
    """Rows as a plain text table, a header line of the column names, each column as wide as its longest cell."""
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join(lines)


def write_output(path: str, text: str, flag: str) -> Path:
    """Write ``text`` and a newline to the file a flag names, creating its folder.

    Raises:
        DataError: naming the file and the flag when it cannot be written.
    """
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    except OSError as e:
        raise DataError(str(out), flag, f"cannot be written ({e.strerror})") from None
    return out


def passive_openmp() -> None:
    """OpenMP threads that sleep while they wait, set before torch loads: with the default (spinning) policy a
    forward pass on a machine whose cores are busy with other work runs many times slower (measured 7x for a
    small model on 2 busy cores)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# ---- errors ------------------------------------------------------------------------------------------------


def run_command(func: Run, args: argparse.Namespace) -> int:
    """Run a command: a bad spec key or an unreadable file is one line naming the file and the key (status 2,
    no traceback); Ctrl-C is ``interrupted`` (status 130)."""
    try:
        return func(args)
    except (SpecError, DataError, TrainingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        if not e.filename:  # not about a file of the user's: a real traceback helps more
            raise
        print(f"error: {e.filename}: {os_problem(e)}", file=sys.stderr)
        return 2
