"""``sportpose data synth|import|inspect|prepare``: generate SynthCourt, import a downloaded dataset, look at a
dataset, cut a spec's samples.

Every import of the data floor and the pipelines is written inside the command that needs it: SynthCourt and
its config load cv2 and torch, preparing loads Ray, and ``sportpose --help`` should not wait for them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sportpose.cli.common import Commands, experiment_args
from sportpose.errors import DataError, SpecError

# Flags of `data synth` named like SynthConfig's fields; a flag left out keeps the field's default (the defaults
# in the help texts are SynthConfig's: tests/cli/test_data.py checks them).
SYNTH_FLAGS = ("clips", "frames", "width", "height", "fps", "min_players", "max_players", "views", "blur",
               "child_fraction", "motions", "seed")


def synth_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="dataset folder (created; left as is when already up to date)")
    p.add_argument("--clips", type=int, help="number of clips (default 8)")
    p.add_argument("--frames", type=int, help="frames per clip, at most 9999 (default 48)")
    p.add_argument("--width", type=int, help="frame width in pixels, even (default 320)")
    p.add_argument("--height", type=int, help="frame height in pixels, even (default 240)")
    p.add_argument("--fps", type=float, help="frame rate (default 25)")
    p.add_argument("--min-players", type=int, help="fewest players in a clip, 1-6 (default 1)")
    p.add_argument("--max-players", type=int, help="most players in a clip, 1-6 (default 3)")
    p.add_argument("--views", nargs="+", metavar="VIEW",
                   help="camera view groups from sideline, baseline, high_angle; clip i uses the (i mod n)-th (default sideline)")
    p.add_argument("--blur", nargs="+", metavar="LEVEL", help="motion blur levels from none, low, high (default none)")
    p.add_argument("--child-fraction", type=float, help="fraction of clips whose players are children (default 0)")
    p.add_argument("--motions", nargs="+", metavar="MOTION",
                   help="motion primitives players may perform (default run jog dribble jump_shot pass defensive_slide idle)")
    p.add_argument("--seed", type=int, help="random seed: the same seed gives the same annotations (default 0)")
    p.add_argument("--workers", type=int, default=1, help="processes generating clips in parallel (default 1)")


def cmd_synth(args: argparse.Namespace) -> int:
    from sportpose.data.inspect import format_summary, load_dataset, summarize
    from sportpose.data.synthcourt import generate
    from sportpose.spec.data import SynthConfig

    try:
        config = SynthConfig(**{k: getattr(args, k) for k in SYNTH_FLAGS if getattr(args, k) is not None})
    except SpecError as e:  # name the flag the user typed, not the dataclass field
        raise SpecError(f"--{e.key.replace('_', '-')}", e.message) from None
    if args.workers < 1:
        raise SpecError("--workers", f"expected at least 1 process, got {args.workers}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise DataError(str(out), "--out", "is a file; expected a dataset folder")
    manifest = out / "manifest.json"
    before = manifest.stat().st_mtime_ns if manifest.exists() else None
    start = time.perf_counter()
    manifest = generate(out, config, progress=True, workers=args.workers)
    seconds = time.perf_counter() - start
    if before is not None and manifest.stat().st_mtime_ns == before:
        print(f"SynthCourt: {out} is up to date with this config; nothing generated")
    else:
        print(synth_line(config, seconds))
    print(format_summary(summarize(load_dataset(manifest))))
    print(f"manifest: {manifest}")
    return 0


def synth_line(config, seconds: float) -> str:
    """What was generated (``config``: the :class:`sportpose.spec.data.SynthConfig`) and how fast."""
    n = config.clips * config.frames
    return (f"SynthCourt: {config.clips} clips x {config.frames} frames ({config.width}x{config.height}, "
            f"{config.fps:g} fps, seed {config.seed}) in {seconds:.1f} s ({n / max(seconds, 1e-9):.0f} frames/s)")


def import_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=("posetrack18", "posetrack17", "h36m", "folder"),
                   help="posetrack18 / posetrack17: the release's annotations/<split>/*.json over images/...; "
                        "h36m: MMPose's frame folders with their annotation .npz (imgname/center/scale/part/S), "
                        "or S*/Videos/*.mp4 with VideoPose3D's data_3d_h36m.npz, and cameras.json; "
                        "folder: your own videos, each labelled by a PoseTrack 2018 .json of the same stem")
    p.add_argument("root", help="the dataset as downloaded (nothing in it is copied or changed)")
    p.add_argument("--out", required=True, help="folder for manifest.json (and converted annotations); train with "
                                                "-o data.source=manifest -o data.root=OUT")
    p.add_argument("--transcode", action="store_true",
                   help="write each frame folder as an H.264 clip in OUT/videos (for storage where many small files "
                        "are slow); the frame folders are left as they are")
    p.add_argument("--keyframe-interval", type=int, default=8, metavar="N",
                   help="with --transcode: a keyframe every N frames, no B-frames (default 8: a seek decodes <= 8)")


def cmd_import(args: argparse.Namespace) -> int:
    from sportpose.data.imports import run_import, summary

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise DataError(str(out), "--out", "is a file; expected a folder for the manifest")
    result = run_import(args.kind, args.root, out, progress=True,
                        transcode=args.keyframe_interval if args.transcode else None)
    print(summary(result))
    print(f"train on it: sportpose train SPEC -o data.source=manifest -o data.root={result.manifest.parent}")
    return 0


def inspect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="a SynthCourt folder, or PoseTrack annotations (a .json file or a folder of them)")
    p.add_argument("--out", default=None,
                   help="output folder (default PATH/inspect when writable, else runs/inspect/NAME)")
    p.add_argument("--frames", type=int, default=12, help="frames on the contact sheet (default 12)")


def cmd_inspect(args: argparse.Namespace) -> int:
    from sportpose.data.inspect import format_summary, inspect_dataset

    result = inspect_dataset(args.path, args.out, frames=args.frames)
    print(format_summary(result.summary))
    print(f"contact sheet: {result.sheet} ({result.sheet_size[0]}x{result.sheet_size[1]} px)")
    print(f"summary:       {result.summary_file}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from sportpose.spec.experiment import load_spec

    spec = load_spec(args.spec, args.override)  # validated completely before Ray starts
    from sportpose.data.prepare import prepare
    from sportpose.pipelines.train import prepare_data
    from sportpose.platform.runtime import init_ray

    init_ray(args.address, quiet=not args.verbose)
    prepare_data(spec)
    folder = prepare(spec, progress=True)
    print(f"prepared samples: {folder}")
    print("train from them with -o data.prepared=true (an unchanged spec reuses them)")
    return 0


DATA_COMMANDS: Commands = {
    "synth": ("generate a SynthCourt dataset: mp4 clips, PoseTrack18 JSON, 3D joints, manifest",
              synth_args, cmd_synth),
    "import": ("turn a downloaded dataset (PoseTrack 2018/2017, Human3.6M, your own videos) into a manifest the pipeline "
               "trains from, media left in place; every unusable file listed with its reason", import_args, cmd_import),
    "inspect": ("summary counts and a contact sheet of frames with the ground truth drawn (SynthCourt or PoseTrack)",
                inspect_args, cmd_inspect),
    "prepare": ("cut a spec's samples once into Parquet shards, reused while the fields that shape them are unchanged",
                experiment_args, cmd_prepare),
}
