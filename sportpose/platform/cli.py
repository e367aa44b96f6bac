"""The ``sportpose`` command line: a plain table of commands. It parses, then calls; nothing else.

Errors a user can fix (a bad spec key, an unreadable file) print one line naming the file and the key and
exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from sportpose.errors import DataError, SpecError

REPO = Path(__file__).resolve().parents[2]
DEMO_SPEC = REPO / "experiments" / "demo.yaml"


def _add_spec_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="experiment spec (YAML)")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec key, e.g. -o train.stages.main.epochs=2 (repeatable)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")


def cmd_train(args: argparse.Namespace) -> int:
    from sportpose.platform.config import load_spec

    spec = load_spec(args.spec, args.override)  # validated completely before anything starts
    from sportpose.pipelines.training.pipeline import run_pipeline
    from sportpose.platform.runtime import init_ray

    init_ray(args.address)
    result = run_pipeline(spec, resume=args.resume)
    _print_summary(result)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from sportpose.pipelines.training.pipeline import run_pipeline
    from sportpose.platform.config import load_spec
    from sportpose.platform.runtime import init_ray

    spec = load_spec(DEMO_SPEC, args.override)
    init_ray(args.address)
    result = run_pipeline(spec)
    _print_summary(result)
    return 0


def _print_summary(result) -> None:
    from sportpose.platform import tracking

    ev = result.evaluation
    print()
    print(f"== {result.spec.name}: finished in {result.seconds / 60:.1f} min ==")
    if ev:
        print(f"PCKh@{result.spec.evaluate.pckh_alpha} on held-out {ev['split']} clips ({ev['samples']} samples, "
              f"boxes: {ev['boxes']}, flip test: {ev['flip_test']}, seed {ev['seed']}):")
        print(f"  trained   {ev['pckh']:6.1f}")
        print(f"  untrained {ev['pckh_untrained']:6.1f}")
        print(f"  gain      {ev['pckh'] - ev['pckh_untrained']:+6.1f} points")
    if result.promotion:
        p = result.promotion
        print(f"registered: models:/{p.name}/{p.version} (alias candidate{', champion' if p.promoted else ''}: {p.reason})")
    print(f"MLflow parent run: {result.parent_run_id}")
    print(f"outputs:   {result.output_dir}")
    print(f"MLflow UI: mlflow ui --backend-store-uri {tracking.tracking_uri()} --host 127.0.0.1 --port 5000")


def cmd_registry(args: argparse.Namespace) -> int:
    from sportpose.platform import tracking

    if args.action == "list":
        rows = tracking.registry_rows()
        if not rows:
            print(f"no registered models in {tracking.tracking_uri()}")
            return 0
        cols = ("name", "version", "aliases", "metric", "created", "run_id")
        widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
        print("  ".join(c.ljust(widths[c]) for c in cols))
        for r in rows:
            print("  ".join(r[c].ljust(widths[c]) for c in cols))
        return 0
    if not args.name or not args.version:
        raise SpecError("registry promote", "needs NAME and VERSION, e.g. sportpose registry promote sportpose-simplebaseline 3")
    tracking.promote(args.name, args.version, args.alias)
    print(f"{args.name}: alias {args.alias} -> version {args.version}")
    return 0


Command = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]


def _train_args(p: argparse.ArgumentParser) -> None:
    _add_spec_args(p)
    p.add_argument("--resume", action="store_true", help="skip finished stages; continue an unfinished one")


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--address", default=None)


def _registry_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["list", "promote"])
    p.add_argument("name", nargs="?", help="registered model (promote)")
    p.add_argument("version", nargs="?", help="model version (promote)")
    p.add_argument("--alias", default="champion", help="alias to move (promote; default champion)")


COMMANDS: list[Command] = [
    ("demo", _demo_args, cmd_demo),
    ("train", _train_args, cmd_train),
    ("registry", _registry_args, cmd_registry),
]

HELP = {
    "demo": "run the embedded end-to-end experiment (experiments/demo.yaml) on local Ray",
    "train": "run an experiment spec's training pipeline on Ray, evaluate and register the model",
    "registry": "list registered models, or move an alias (promote)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sportpose", description="Sports video pose estimation experiments on Ray.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, add_args, func in COMMANDS:
        p = sub.add_parser(name, help=HELP[name], description=HELP[name])
        add_args(p)
        p.set_defaults(func=func)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (SpecError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
