"""``sportpose sweep`` and ``sportpose reproduce``: a hyper-parameter sweep (SPEC §8), and a table or figure of
the papers (``experiments/paper/``).

The pipelines' imports are written inside the commands: they load torch, Ray, Optuna and MLflow, which
``sportpose --help`` should not wait for. Both specs are loaded and checked completely before Ray starts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sportpose.cli.common import override_arg, ray_address_arg, resume_arg
from sportpose.spec.study import SCALES


def sweep_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="sweep spec (YAML), e.g. experiments/sweeps/fusion_weights_demo.yaml")
    override_arg(p, help="override a sweep key, e.g. -o trials=10 -o concurrency=2 (repeatable)")
    resume_arg(p, help="continue this sweep's last run: finished trials stay, interrupted ones continue")
    ray_address_arg(p)


def cmd_sweep(args: argparse.Namespace) -> int:
    from sportpose.spec.sweep import load_sweep

    sweep = load_sweep(args.spec, args.override)  # the sweep and its base spec, checked before anything starts
    from sportpose.pipelines.sweep.run import run_sweep
    from sportpose.platform.runtime import init_ray

    init_ray(args.address, quiet=not args.verbose)
    result = run_sweep(sweep, resume=args.resume)
    done = sum(r["status"] in ("completed", "stopped", "error") for r in result.records)
    spec = sweep.spec
    print()
    print(f"== sweep {result.name}: {done}/{result.trials} trials finished ({result.new_trials} now, "
          f"{result.seconds / 60:.1f} min) ==")
    if result.best:
        values = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.best["columns"].items())
        print(f"best: trial {result.best['number']}: {spec.metric} = {result.best['value']:.4g} ({spec.mode})  {values}")
    for name, label in (("results_csv", "results"), ("best_spec", "best spec"), ("html", "report")):
        if name in result.outputs:
            print(f"{label + ':':11s}{result.outputs[name]}")
    if "best_spec" in result.outputs:
        print(f"train it:  sportpose train {result.outputs['best_spec']}")
    print(f"Optuna:    study {result.study_name} in {result.storage}")
    print(f"MLflow parent run: {result.parent_run_id}   (dashboards: sportpose dashboard)")
    if result.interrupted:
        print(f"interrupted: continue with sportpose sweep {args.spec} --resume", file=sys.stderr)
        return 130
    return 0


def reproduce_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="the study: a table or figure of the papers (see --list)")
    p.add_argument("--list", action="store_true", help="list the studies and exit")
    p.add_argument("--scale", default="demo", choices=SCALES,
                   help="tiny (seconds, Ray Train local mode), demo (minutes here), paper (the papers' settings, GPU cluster)")
    override_arg(p, help="override a key of the study's base experiment spec, every row (repeatable)")
    ray_address_arg(p)
    p.add_argument("--reports", default=None, metavar="DIR", help="report folder (default: reports/ of the repository)")
    p.add_argument("--rows", default=None, metavar="LABEL,...",
                   help="run only these rows, by their labels (default: every row)")


def cmd_reproduce(args: argparse.Namespace) -> int:
    from sportpose.pipelines.reproduce.study import check_study_inputs, load_study, run_study, study_names, study_path
    from sportpose.spec.experiment import read_spec_file

    if args.list or not args.name:
        for name in study_names():
            print(f"{name:<22} {read_spec_file(study_path(name)).get('caption', '')}")
        return 0 if args.list else 2
    rows = None if args.rows is None else [label.strip() for label in args.rows.split(",")]
    study = load_study(study_path(args.name), args.scale, args.override, rows)  # validated before anything starts
    check_study_inputs(study)  # and the files it reads (manifests, pretrained weights) exist
    from sportpose.platform.runtime import init_ray

    init_ray(args.address, quiet=not args.verbose)
    run_study(study, reports=Path(args.reports) if args.reports else None)
    return 0
