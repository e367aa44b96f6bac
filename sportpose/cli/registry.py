"""``sportpose registry list|promote``: the MLflow model registry's models, and moving an alias.

The registry's import is written inside the command: it loads MLflow, which ``sportpose --help`` should not
wait for.
"""

from __future__ import annotations

import argparse

from sportpose.cli.common import columns
from sportpose.errors import SpecError

REGISTRY_COLUMNS = ("name", "version", "aliases", "metric", "created", "run_id")


def registry_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["list", "promote"])
    p.add_argument("name", nargs="?", help="registered model (promote)")
    p.add_argument("version", nargs="?", help="model version (promote)")
    p.add_argument("--alias", default="champion", help="alias to move (promote; default champion)")


def cmd_registry(args: argparse.Namespace) -> int:
    from sportpose.registry import tracking

    tracking.require_store()  # never an empty database made in the wrong folder
    if args.action == "list":
        rows = tracking.registry_rows()
        print(columns(rows, REGISTRY_COLUMNS) if rows else f"no registered models in {tracking.tracking_uri()}")
        return 0
    if not args.name or not args.version:
        raise SpecError("registry promote",
                        "needs NAME and VERSION, e.g. sportpose registry promote sportpose-multistream 3")
    from sportpose.registry import register

    register.promote(args.name, args.version, args.alias)
    print(f"{args.name}: alias {args.alias} -> version {args.version}")
    return 0
