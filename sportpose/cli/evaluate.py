"""``sportpose infer``, ``evaluate``, ``compare`` and ``eval posetrack``: a model on a video, a model on a spec's
held-out split, evaluations side by side, and prediction files against ground truth (SPEC §7).

The imports of inference, evaluation and the pipelines are written inside the commands: they load torch, Ray
and MLflow, which ``sportpose --help`` should not wait for.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sportpose.cli.common import Commands, override_arg, passive_openmp, ray_address_arg, write_output

# ---- infer -------------------------------------------------------------------------------------------------


def infer_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="a video file, a frame folder, an image, a folder of videos (one output folder each), "
                                  "a camera device index (0) or a stream URL (rtsp://, http://)")
    p.add_argument("--model", required=True, metavar="URI|CHECKPOINT",
                   help="models:/NAME@ALIAS, models:/NAME/VERSION, a checkpoint folder (a stage's, or a Ray Train run "
                        "folder: its best epoch) or a checkpoint file")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (appears only when complete)")
    p.add_argument("--detections", default=None, metavar="FILE",
                   help="person detections in the COCO results format (default: the built-in proposal, see README)")
    p.add_argument("--detector", default=None, metavar="FILE.onnx",
                   help="an ONNX person detector (YOLOX/RTMDet/YOLO export layouts, see README), run with onnxruntime")
    p.add_argument("--smooth", default=None, choices=("oneeuro", "savgol"),
                   help="smooth keypoints (and 3D joints) along tracks; the summary gives the acceleration error "
                        "before and after")
    p.add_argument("--spec", default=None, help="experiment spec of a checkpoint (default: spec.yaml or resolved.yaml "
                                                "beside it, or the pipeline's record of its run)")
    p.add_argument("--gt", default=None, metavar="FILE",
                   help="the video's PoseTrack18 ground truth (or a merged file naming the videos): print and write "
                        "the predictions' AP and tracking metrics (MOTA, MOTP, precision, recall)")
    p.add_argument("--all-frames", action="store_true",
                   help="with --gt: count each video's last annotated frame in the tracking metrics, which poseval "
                        "leaves out (a video of one annotated frame then counts; no longer poseval's numbers)")
    p.add_argument("--det-threshold", type=float, default=0.5, help="drop detections scoring below (default 0.5)")
    p.add_argument("--keep-threshold", type=float, default=0.3,
                   help="keep a pose estimated in a box propagated from a track when its mean joint score reaches "
                        "this (default 0.3)")
    p.add_argument("--draw-threshold", type=float, default=0.2, help="joints scoring below are not drawn (default 0.2)")
    p.add_argument("--batch-size", type=int, default=16,
                   help="person tubes per forward pass, people of several frames together (default 16)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: one per core; 1 on a busy machine)")
    p.add_argument("--decoder", default="opencv", choices=("opencv", "decord"),
                   help="video decoder (default opencv, decord when OpenCV cannot open the file; see README)")
    p.add_argument("--animate-tracks", type=int, default=8,
                   help="STSP-Net: tracks animated as 3D skeleton videos, the longest first (default 8)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames (for a camera or stream)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder once the new one is done")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_infer(args: argparse.Namespace) -> int:
    passive_openmp()
    from sportpose.evaluation.posetrack_eval import format_ap_table
    from sportpose.inference.run import InferArgs, run_infer, summary_table

    results = run_infer(InferArgs(
        source=args.source, model=args.model, out=args.out, detections=args.detections, detector=args.detector,
        smooth=args.smooth, spec=args.spec, gt=args.gt, det_threshold=args.det_threshold,
        keep_threshold=args.keep_threshold, draw_threshold=args.draw_threshold, batch_size=args.batch_size,
        threads=args.threads, decoder=args.decoder, animate_tracks=args.animate_tracks, max_frames=args.max_frames,
        all_frames=args.all_frames, overwrite=args.overwrite, progress=not args.no_progress))
    for result in results:
        if result.error:
            continue
        if len(results) > 1:
            print(f"== {result.name} ==")
        print(f"{result.frames} frames in {result.seconds:.1f} s: {result.fps:.1f} FPS end to end "
              f"(model alone {result.model_fps:.1f} FPS); {result.poses} poses in {result.tracks} tracks")
        print(f"boxes: {result.boxes}")
        if result.smoothing:
            s = result.smoothing
            for unit in ("px", "mm"):
                e = s.get(f"acceleration_error_{unit}")
                if e and e["triples"]:
                    print(f"smoothing {s['method']} (lag {s['lag_frames']} frames): acceleration error "
                          f"{e['raw']:.3f} -> {e['smoothed']:.3f} {unit}/frame²")
        if result.ap is not None:
            print(f"PoseTrack AP (poseval, %) against {args.gt}:")
            print(format_ap_table(result.ap))
        if result.tracking is not None:
            from sportpose.evaluation.tracking import format_tracking_table

            t = result.tracking
            left_out = ("every annotated frame counted: --all-frames" if args.all_frames else
                        "the last annotated frame left out, as poseval does; --all-frames counts it")
            print(f"PoseTrack tracking (poseval evaluateTracking, %) against {args.gt}: {t['frames']} frames "
                  f"counted ({left_out})")
            print(format_tracking_table(t))
        for what, name in result.files.items():
            if name:
                print(f"{what + ':':16s}{result.out / name if ',' not in name else name}")
    if len(results) > 1:
        print(summary_table(results))
        print(f"summary:        {Path(args.out) / 'summary.md'}")
    failed = [r for r in results if r.error]
    return 2 if failed else 0


# ---- evaluate ----------------------------------------------------------------------------------------------


def evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="models:/NAME@ALIAS, models:/NAME/VERSION, a checkpoint folder or file")
    p.add_argument("spec", help="experiment spec (YAML) whose test split, boxes and protocol the model is scored on")
    override_arg(p, help="override a spec key, e.g. -o evaluate.flip_test=false -o evaluate.split=val (repeatable)")
    ray_address_arg(p)
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default runs/outputs/<spec name>/eval-<run id>)")
    p.add_argument("--similarity", action="store_true",
                   help="also the feature similarity over time between frames t and t+k (2D paper, Fig. 6)")
    p.add_argument("--similarity-clips", type=int, default=4, help="clips the similarity is computed on (default 4)")
    p.add_argument("--overlays", type=int, default=4, help="best and worst frames drawn, each (default 4)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    p.add_argument("--no-mlflow", action="store_true", help="write the folder only, no MLflow run")


def cmd_evaluate(args: argparse.Namespace) -> int:
    passive_openmp()
    from sportpose.pipelines.evaluate import EvaluateArgs, run_evaluate
    from sportpose.platform.runtime import init_ray

    eval_args = EvaluateArgs(model=args.model, spec=args.spec, overrides=tuple(args.override), out=args.out,
                             similarity=args.similarity, similarity_clips=args.similarity_clips,
                             overlays=args.overlays, overwrite=args.overwrite, mlflow=not args.no_mlflow)
    init_ray(args.address, quiet=not args.verbose)
    result = run_evaluate(eval_args)
    m = result.metrics
    print()
    print(f"== {m['model'].get('label')}: {m['protocol']['split']} split of {m['protocol']['data']} ==")
    print("protocol: " + " · ".join(f"{k} {m['protocol'][k]}" for k in ("split", "boxes", "flip_test", "seed",
                                                                         "samples", "clips")))
    if m["kind"] == "3d":
        print(f"MPJPE {m['mpjpe']:.1f} mm · P-MPJPE {m['p_mpjpe']:.1f} mm · PCK3D {m['pck3d']:.1f} · "
              f"AUC {m['auc3d']:.1f} · TS {m['ts']:.2f} mm/frame²")
    else:
        if m.get("ap_groups"):
            print("AP  " + "  ".join(f"{k} {v:.1f}" for k, v in m["ap_groups"].items()))
        if m.get("pckh") == m.get("pckh"):  # not NaN
            print(f"PCKh {m['pckh']:.1f}")
    c = m.get("complexity") or {}
    if c:
        print(f"complexity: {c['params_m']:.2f} M params · {c['gmacs']:.2f} GMACs · {c['fps']:.1f} FPS at batch 1")
    print(f"report:    {result.out / 'report.md'}")
    if result.run_id:
        print(f"MLflow run {result.run_id} (artifacts: evaluation/)")
    return 0


# ---- compare -----------------------------------------------------------------------------------------------


def compare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="+", metavar="RUN_OR_MODEL",
                   help="an evaluate output folder or metrics.json, an MLflow run id, or models:/NAME@ALIAS")
    p.add_argument("--out", default=None, metavar="FILE", help="also write the table to this markdown file")


def cmd_compare(args: argparse.Namespace) -> int:
    from sportpose.pipelines.compare import compare_table, load_evaluation

    table = compare_table([load_evaluation(source) for source in args.sources])
    print(table)
    if args.out:
        write_output(args.out, table, "--out")
    return 0


# ---- eval posetrack ----------------------------------------------------------------------------------------


def eval_posetrack_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gt", required=True, help="folder of ground-truth PoseTrack JSON files, one per video")
    p.add_argument("--pred", required=True, help="folder of prediction files with the same names")
    p.add_argument("--tracking", action="store_true",
                   help="also PoseTrack's tracking metrics: MOTA per joint group, MOTP, precision and recall, as "
                        "poseval's evaluateTracking (predictions need track_id)")
    p.add_argument("--all-frames", action="store_true",
                   help="with --tracking: count each video's last annotated frame too, which poseval leaves out (a "
                        "video of one annotated frame then counts; the numbers are no longer poseval's)")
    p.add_argument("--json", default=None, metavar="OUT",
                   help="write {per_joint, groups} AP in percent (with --tracking also {tracking}) to this file")


def cmd_eval_posetrack(args: argparse.Namespace) -> int:
    from sportpose.evaluation.posetrack_eval import evaluate_folders, format_ap_table, to_json

    result = evaluate_folders(args.gt, args.pred)
    print(f"PoseTrack AP (poseval), %: ground truth {args.gt}, predictions {args.pred} (boxes as predicted)")
    print(format_ap_table(result))
    if args.tracking:
        from sportpose.evaluation.tracking import evaluate_tracking, format_tracking_table

        tracking = evaluate_tracking(args.gt, args.pred, skip_last_frame=not args.all_frames)
        left_out = ("every annotated frame counted: --all-frames" if args.all_frames else
                    "each video's last annotated frame is left out, as poseval does; --all-frames counts it")
        print(f"PoseTrack tracking (poseval evaluateTracking), %: {tracking['videos']} videos, {tracking['frames']} "
              f"frames counted ({left_out})")
        print(format_tracking_table(tracking))
        result = {**result, "tracking": tracking}
    if args.json:
        print(f"wrote {write_output(args.json, to_json(result), '--json')}")
    return 0


EVAL_COMMANDS: Commands = {
    "posetrack": ("PoseTrack AP (and with --tracking MOTA) of a prediction folder against a ground-truth folder, "
                  "as poseval computes them",
                  eval_posetrack_args, cmd_eval_posetrack),
}
