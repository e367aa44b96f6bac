"""``sportpose train`` and ``sportpose demo``: an experiment spec's pipeline, and the tour of every pipeline.

Every import of the pipelines is written inside the command that runs it: they load torch, Ray and MLflow,
which ``sportpose --help`` should not wait for.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from sportpose.cli.common import experiment_args, ray_address_arg, resume_arg
from sportpose.errors import SpecError

if TYPE_CHECKING:
    from sportpose.pipelines.train import PipelineResult

TOUR_SPECS = (("multistream", "experiments/tour/multistream.yaml"), ("stsp", "experiments/tour/stsp.yaml"),
              ("sweep", "experiments/tour/fusion_weights.yaml"))


def train_args(p: argparse.ArgumentParser) -> None:
    experiment_args(p)
    resume_arg(p, choices=("refuse-changed", "rerun-changed"),
               help="continue this spec's last run: skip finished stages, continue an unfinished one from its "
                    "checkpoint; a changed setting of a finished stage is refused, or retrained with "
                    "--resume=rerun-changed")
    p.add_argument("--restart", action="store_true",
                   help="start a new run although the last run of this spec did not finish (its MLflow runs and "
                        "checkpoints are kept, marked superseded); without --resume or --restart an unfinished "
                        "run is refused")


def cmd_train(args: argparse.Namespace) -> int:
    from sportpose.spec.experiment import load_spec

    if args.restart and args.resume:
        raise SpecError("--restart", "continues nothing: give --resume or --restart, not both")
    spec = load_spec(args.spec, args.override)  # validated completely before Ray starts
    from sportpose.pipelines.train import run_pipeline
    from sportpose.platform.runtime import init_ray
    from sportpose.registry import tracking

    init_ray(args.address, quiet=not args.verbose)
    try:
        result = run_pipeline(spec, resume="restart" if args.restart else args.resume)
    except KeyboardInterrupt:
        print(f"interrupted: runs marked KILLED; the finished stages and the last checkpoints are kept; continue "
              f"with sportpose train {args.spec} --resume", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(130)  # now: a stage thread still unwinding must not hold the exit
    print(train_summary(result, tracking.tracking_uri()))
    return 0


def train_summary(result: PipelineResult, tracking_uri: str) -> str:
    """What a finished ``sportpose train`` prints: the held-out figures, the registered model, where to look
    (``tracking_uri``: where the run was logged)."""
    ev = result.evaluation
    lines = ["", f"== {result.spec.name}: finished in {result.seconds / 60:.1f} min =="]
    if ev:
        lines.append(f"on held-out {ev['split']} clips ({ev['samples']} samples; boxes: {ev['boxes']}, flip test: "
                     f"{ev['flip_test']}, seed {ev['seed']}):")
        if "mpjpe" in ev:
            lines.append(f"  MPJPE    {ev['mpjpe']:7.1f} mm   (mean-pose baseline {ev['mpjpe_mean_pose']:.1f} mm)")
            lines.append(f"  P-MPJPE  {ev['p_mpjpe']:7.1f} mm   PCK3D {ev['pck3d']:.1f}   AUC {ev['auc3d']:.1f}")
            lines.append(f"  TS       {ev['ts']:7.2f} mm/frame²   (same model without TMP {ev['ts_no_tmp']:.2f})")
            if "epe_err_px" in ev:
                lines.append(f"  EPE 2D   {ev['epe_err_px']:7.2f} px mean keypoint error on {ev['crop_px']} px crops "
                             f"(what the lifter reads)")
        else:
            lines.append(f"  PCKh@{result.spec.evaluate.pckh_alpha}  trained {ev['pckh']:6.1f}   untrained "
                         f"{ev['pckh_untrained']:6.1f}   gain {ev['pckh'] - ev['pckh_untrained']:+6.1f} points")
            if "ap" in ev:
                groups = "  ".join(f"{k} {v:.1f}" for k, v in ev["ap_groups"].items())
                lines.append(f"  AP       trained {ev['ap']:6.1f}   untrained {ev['ap_untrained']:6.1f}"
                             f"   gain {ev['ap'] - ev['ap_untrained']:+6.1f} points")
                lines.append(f"  AP per group: {groups}")
    if result.promotion:
        p = result.promotion
        lines.append(f"registered: models:/{p.name}/{p.version} "
                     f"(alias candidate{', champion' if p.promoted else ''}: {p.reason})")
    lines.append(f"MLflow parent run: {result.parent_run_id}")
    lines.append(f"outputs:   {result.output_dir}")
    if tracking_uri.startswith(("http://", "https://")):
        from sportpose.registry.tracking import experiment_id, ui_url

        lines.append(f"MLflow UI: {ui_url(tracking_uri, experiment_id(result.spec.name))}")
    else:
        lines.append(f"MLflow UI: mlflow ui --backend-store-uri {tracking_uri} --host 127.0.0.1 --port 5000")
    return "\n".join(lines)


def demo_args(p: argparse.ArgumentParser) -> None:
    for name, spec in TOUR_SPECS:
        p.add_argument(f"--{name}", action="append", default=[], metavar="KEY=VALUE",
                       help=f"override a key of {spec} (repeatable)")
    ray_address_arg(p)


def cmd_demo(args: argparse.Namespace) -> int:
    from sportpose.pipelines.tour import run_tour, summary
    from sportpose.platform.runtime import init_ray

    init_ray(args.address, quiet=not args.verbose)
    result = run_tour(overrides={name: getattr(args, name) for name, _ in TOUR_SPECS})
    print()
    print(summary(result))
    return 0
