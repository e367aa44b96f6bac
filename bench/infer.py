"""Where ``sportpose infer``'s time goes: the whole loop against the model alone on the same frames, in one run.

Run: ``python bench/infer.py`` (a few minutes on 2 cores; the clip is generated once into ``runs/bench/``).

For MultiStream and STSP-Net at their demo sizes (``experiments/multistream_demo.yaml``,
``experiments/stsp_demo.yaml``; untrained weights: speed does not depend on them), on one SynthCourt clip
(32 frames, 320x240, 3 players) with ground-truth boxes as detections (so every frame has its people):

- **loop**: ``sportpose infer``'s own loop (:func:`sportpose.inference.run.write_run` over
  :class:`~sportpose.inference.api.Inferencer`): decoding, people, cutting tubes (and STSP-Net's optical
  flow), forward passes, tracking, TMP, drawing, H.264 overlay, PoseTrack18 parts. The files written once at
  the end (the JSON file, STSP-Net's npz; its 3D animations are not drawn here) are not part of the loop.
- **model**: the same forward passes again, on the very inputs the loop fed the model (recorded batch by
  batch), timed alone, plus the loop's TMP steps (which run per frame along tracks).

``ratio = loop FPS / model FPS`` is the share of the loop's time spent in the model (1 = no overhead; target
>= 0.8). Each model runs twice: people batched across frames (up to ``batch_size`` people of several frames
per forward pass, the default) and one frame per pass, the loop before batching. The per-stage seconds of
the batched loop are timed (the functions doing each part wrapped with a clock) to say what bounds it.

The last line is ``name=value`` pairs, ratios first.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI sets it (cli.common.passive_openmp), before torch

import torch

from sportpose.data.synthcourt import generate
from sportpose.inference import run as run_module
from sportpose.inference.api import Inferencer
from sportpose.inference.estimator import PoseEstimator
from sportpose.inference.run import InferArgs, write_run
from sportpose.inference.tracker import PoseTracker
from sportpose.inference.writers import H264Writer, PoseTrackParts
from sportpose.paths import EXPERIMENTS, runs_dir
from sportpose.registry.load import LoadedModel
from sportpose.spec.data import SynthConfig
from sportpose.spec.experiment import load_spec

CLIP = SynthConfig(clips=1, frames=32, width=320, height=240, min_players=3, max_players=3, views=("sideline",),
                   blur=("none",), seed=4)
REPEATS = 3
MODELS = {"multistream": EXPERIMENTS / "multistream_demo.yaml", "stsp": EXPERIMENTS / "stsp_demo.yaml"}
STAGES = {  # the loop's parts timed (wrapped), by the functions that do them; the rest is decoding and bookkeeping
    "cut_and_flow": (PoseEstimator, "prepare"),
    "model": (PoseEstimator, "forward"),
    "tmp": (PoseEstimator, "refine"),
    "track": (PoseTracker, "update"),
    "draw": (run_module, "draw_frame"),
    "encode": (H264Writer, "write"),
    "json_parts": (PoseTrackParts, "add"),
}


@contextmanager
def timed_stages():
    """The functions of :data:`STAGES` wrapped to add their wall time to the yielded dict (seconds)."""
    seconds = {name: 0.0 for name in STAGES}
    saved = []
    for name, (owner, attr) in STAGES.items():
        real = getattr(owner, attr)

        def wrapper(*args, _real=real, _name=name, **kwargs):
            started = time.perf_counter()
            try:
                return _real(*args, **kwargs)
            finally:
                seconds[_name] += time.perf_counter() - started

        saved.append((owner, attr, real))
        setattr(owner, attr, wrapper)
    try:
        yield seconds
    finally:
        for owner, attr, real in saved:
            setattr(owner, attr, real)


def clip() -> tuple[Path, Path]:
    """The SynthCourt clip and a detections file of its ground-truth boxes."""
    root = runs_dir() / "bench" / "infer-synth"
    if not (root / "manifest.json").exists():
        generate(root, CLIP, progress=False)
    video = next((root / "videos").glob("*.mp4"))
    dets = root / "dets.json"
    if not dets.exists():
        data = json.loads((root / "annotations" / f"{video.stem}.json").read_text())
        dets.write_text(json.dumps([{"image_id": a["image_id"], "bbox": a["bbox"], "score": 1.0, "category_id": 1}
                                    for a in data["annotations"] if a.get("bbox")]))
    return video, dets


def model_alone(run) -> float:
    """Seconds of the recorded forward passes run again alone, plus the loop's TMP steps."""
    model = run.estimator.model
    with torch.no_grad():
        model(run.estimator.record[0])  # warm
        started = time.perf_counter()
        for inputs in run.estimator.record:
            model(inputs)
    return time.perf_counter() - started + run.estimator.refine_seconds


def one(loaded: LoadedModel, video: Path, dets: Path, batch_frames: int | None) -> dict:
    """The loop and the model alone, :data:`REPEATS` times each, alternating; the best of each (the machine is
    shared, and other work only ever slows a run down)."""
    inferencer = Inferencer(loaded, detections=str(dets))
    list(inferencer(str(video)))  # warm: first passes allocate
    args = InferArgs(source=str(video), model="-", out="-", detections=str(dets), progress=False, sample_frames=0,
                     animate_tracks=0)  # the 3D animations are written after the loop: timed by the CLI, not here
    best = None
    for _ in range(REPEATS):
        (source,) = inferencer.videos(str(video))
        run = inferencer.stream(source)
        run.estimator.record = []
        if batch_frames is not None:
            run.batch_frames = batch_frames
        with tempfile.TemporaryDirectory() as tmp, timed_stages() as seconds:
            write_run(run, args, Path(tmp), log=lambda _: None)
        seconds["rest"] = run.seconds - sum(seconds.values())  # decoding, people, the loop's own bookkeeping
        model = model_alone(run)
        if best is None or run.seconds < best["loop_s"]:
            best = {**(best or {}), "loop_s": run.seconds, "stages": {k: round(v, 2) for k, v in seconds.items()}}
        best["model_s"] = min(best.get("model_s", model), model)
        best["frames"], best["batches"] = run.frames, len(run.estimator.record)
    best["loop_fps"], best["model_fps"] = best["frames"] / best["loop_s"], best["frames"] / best["model_s"]
    best["ratio"] = best["loop_fps"] / best["model_fps"]
    return best


def main() -> None:
    video, dets = clip()
    print(f"clip {video.name}: {CLIP.frames} frames {CLIP.width}x{CLIP.height}, {CLIP.max_players} players, "
          f"ground-truth boxes as detections; torch threads {torch.get_num_threads()}")
    pairs = []
    for kind, path in MODELS.items():
        spec = load_spec(path)
        torch.manual_seed(0)
        loaded = LoadedModel(spec, spec.build_model().eval(), str(path), f"{kind} (untrained, demo size)")
        batched = one(loaded, video, dets, None)
        per_frame = one(loaded, video, dets, 1)
        print(f"{kind}: loop {batched['loop_fps']:.2f} FPS, model alone {batched['model_fps']:.2f} FPS, "
              f"ratio {batched['ratio']:.2f} (people batched across frames, {batched['batches']} passes); "
              f"one frame per pass: loop {per_frame['loop_fps']:.2f} FPS, model {per_frame['model_fps']:.2f} FPS, "
              f"ratio {per_frame['ratio']:.2f} ({per_frame['batches']} passes)")
        print(f"  the batched loop's {batched['loop_s']:.1f} s by part: "
              + ", ".join(f"{k} {v}" for k, v in batched["stages"].items()))
        pairs += [(f"ratio_{kind}", batched["ratio"]), (f"ratio_{kind}_per_frame", per_frame["ratio"]),
                  (f"loop_fps_{kind}", batched["loop_fps"]), (f"model_fps_{kind}", batched["model_fps"]),
                  (f"loop_fps_{kind}_per_frame", per_frame["loop_fps"])]
    ratios = [p for p in pairs if p[0].startswith("ratio")]
    print(" ".join(f"{k}={v:.3f}" for k, v in ratios + [p for p in pairs if p not in ratios]))


if __name__ == "__main__":
    main()
