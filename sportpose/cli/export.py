"""``sportpose export MODEL --format onnx [--out FILE]``: a trained model's inference graph as ONNX, checked
against PyTorch with onnxruntime (:mod:`sportpose.inference.export`)."""

from __future__ import annotations

import argparse


def export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="models:/NAME@ALIAS, models:/NAME/VERSION, a checkpoint folder or file")
    p.add_argument("--format", choices=["onnx"], default="onnx", help="export format (default onnx)")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="output file (default runs/exports/<model>-v<version>.onnx)")
    p.add_argument("--spec", default=None, help="the experiment spec of a checkpoint (a registered model has its own)")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="max abs difference onnxruntime vs PyTorch allowed per output, times the output's scale "
                        "max(1, max |output|) (default 1e-4)")
    p.add_argument("--no-mlflow", action="store_true",
                   help="do not log the file beside the registered version")


def cmd_export(args: argparse.Namespace) -> int:
    from sportpose.inference import export
    from sportpose.registry.load import load_model

    loaded = load_model(args.model, args.spec)
    result = export.export_onnx(loaded, args.out or export.default_out(loaded), args.tolerance)
    if result.ok and not args.no_mlflow:
        result.artifact = export.log_beside_version(loaded, result)
    print("\n".join(result.lines()))
    export.check(result)
    return 0
