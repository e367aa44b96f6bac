"""The ``sportpose`` command line: one table of commands, each a help text, the function that adds its
arguments and the function that runs it. It parses, then calls; nothing else.

Errors a user can fix (a bad spec key, an unreadable file) print one line naming the file and the key and exit
with status 2, without a traceback (:func:`sportpose.cli.common.run_command`). Each command's module imports
the floors below only inside the command, so ``sportpose --help`` answers without loading torch, Ray or MLflow.
"""

from __future__ import annotations

import argparse
import sys

from sportpose import __version__
from sportpose.cli import cluster, data, evaluate, export, registry, sweep, train
from sportpose.cli.common import Commands, group_args, group_run, run_command
from sportpose.platform.console import quiet_console

COMMANDS: Commands = {
    "demo": ("the tour: SynthCourt, MultiStream and STSP-Net trained in stages on local Ray, reports, a sweep, "
             "the registry", train.demo_args, train.cmd_demo),
    "train": ("run an experiment spec's training pipeline on Ray, evaluate and register the model",
              train.train_args, train.cmd_train),
    "export": ("a model's inference graph as ONNX (dynamic batch), checked against PyTorch with onnxruntime and "
               "logged beside its registered version", export.export_args, export.cmd_export),
    "registry": ("list registered models, or move an alias (promote)", registry.registry_args, registry.cmd_registry),
    "data": ("datasets: generate SynthCourt (synth), import PoseTrack, Human3.6M or your own videos (import), inspect a "
             "SynthCourt or PoseTrack dataset (inspect), cut a spec's samples into Parquet (prepare)", group_args(data.DATA_COMMANDS), group_run(data.DATA_COMMANDS)),
    "eval": ("evaluate prediction files against ground truth: PoseTrack AP (posetrack)",
             group_args(evaluate.EVAL_COMMANDS), group_run(evaluate.EVAL_COMMANDS)),
    "submit": ("submit `sportpose train SPEC` (or sweep) to a Ray cluster as a job; --follow streams its logs",
               cluster.submit_args, cluster.cluster_errors(cluster.cmd_submit)),
    "jobs": ("a Ray cluster's jobs: list, status, logs, stop",
             group_args(cluster.JOBS_COMMANDS), group_run(cluster.JOBS_COMMANDS)),
    "mlflow-server": ("run an MLflow tracking server (database backend, artifact store) for a team or a cluster",
                      cluster.mlflow_server_args, cluster.cmd_mlflow_server),
    "sweep": ("run a hyper-parameter sweep (Ray Tune, Optuna TPE, ASHA): table, best spec, plots, sweep.html",
              sweep.sweep_args, sweep.cmd_sweep),
    "dashboard": ("start the MLflow UI and optuna-dashboard (where installed) on 127.0.0.1 and print their URLs",
                  cluster.dashboard_args, cluster.cmd_dashboard),
    "infer": ("run a model on a video: tracked skeletons (mp4), PoseTrack18 JSON, 3D joints for STSP-Net, FPS",
              evaluate.infer_args, evaluate.cmd_infer),
    "evaluate": ("evaluate a model on a spec's test split: report.md with AP or 3D tables, breakdowns, plots, "
                 "MLflow run", evaluate.evaluate_args, evaluate.cmd_evaluate),
    "compare": ("several evaluations side by side in one markdown table (evaluate folders, MLflow runs, models:/)",
                evaluate.compare_args, evaluate.cmd_compare),
    "reproduce": ("reproduce a table or figure of the papers (--list): reports/NAME/table.md beside the paper's "
                  "numbers", sweep.reproduce_args, sweep.cmd_reproduce),
}

# Re-exported for tests and scripts that reach a command's table or flags through this module.
DATA_COMMANDS, EVAL_COMMANDS, SYNTH_FLAGS = data.DATA_COMMANDS, evaluate.EVAL_COMMANDS, data.SYNTH_FLAGS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sportpose", description="Sports video pose estimation experiments on Ray.")
    parser.add_argument("--version", action="version", version=f"sportpose {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (text, add_args, func) in COMMANDS.items():
        p = sub.add_parser(name, help=text, description=text)
        add_args(p)
        p.set_defaults(func=func)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_console(verbose=getattr(args, "verbose", False))  # before the command imports MLflow and Ray
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
