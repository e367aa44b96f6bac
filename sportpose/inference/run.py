"""``sportpose infer``: a trained model on a source, streamed, written as overlays, PoseTrack18 files and 3D views.

A thin loop over the Python API (:class:`~sportpose.inference.api.Inferencer`): for each video of the source
(:mod:`~sportpose.inference.sources`: a video, a frame folder, an image, a folder of these, a camera or a
stream URL) it iterates :meth:`~sportpose.inference.api.Inferencer.stream` and hands every frame result to
the writers (:mod:`~sportpose.inference.writers`), so the files hold exactly what the API yields:

- ``overlay.mp4`` (H.264; ``overlay.png`` for an image): boxes in each track's colour with its id,
  skeletons, a caption;
- ``<video>.json``: PoseTrack18 predictions (per-joint ``scores``, ``track_id``, ``bbox``; STSP-Net's 3D joints
  as ``keypoints_3d``; h36m joints converted to PoseTrack's, those it lacks unlabeled), in parts
  ``<video>_part001.json`` ... for a video of more than 10,000 frames (PoseTrack image ids hold four frame
  digits) or a live stream;
- STSP-Net: ``joints_3d.npz``, ``skeleton3d_track<ID>.mp4`` (an animated 3D skeleton per track) and
  ``skeleton3d_f<frame>.png`` at sample frames;
- ``summary.json``: timing (FPS of the whole loop and of the model alone), people source, tracks, with
  ``--smooth`` the acceleration error before and after, with ``--gt`` the PoseTrack AP and tracking metrics.

One video's files go into ``--out``; a folder's videos each into ``--out/<video>/``, with ``summary.md`` (a
table, one line per video) beside them; a video that fails there is a line of the table with its error and
the others go on. Each video's folder is written beside its destination and renamed into place when
complete (:mod:`sportpose.paths`): a failure leaves no partial output behind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import torch
from tqdm import tqdm

from sportpose.data.formats import FRAMES_PER_VIDEO
from sportpose.errors import DataError, SpecError
from sportpose.evaluation.metrics import posetrack_ap
from sportpose.evaluation.posetrack_eval import to_json
from sportpose.evaluation.tracking import evaluate_tracking
from sportpose.inference.api import FrameResult, Inferencer, VideoRun, open_videos
from sportpose.inference.sources import VideoSource
from sportpose.inference.writers import H264Writer, PoseTrackParts, TrackAnimations
from sportpose.paths import check_output, make_dir, staged_dir
from sportpose.viz import draw
from sportpose.viz.plots import skeletons_3d_figure


@dataclass(frozen=True)
class InferArgs:
    """What ``sportpose infer`` was asked to do."""

    source: str
    """A video file, frame folder, image, folder of videos, camera device index or stream URL."""
    model: str
    """``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, a checkpoint folder or a checkpoint file."""
    out: str
    """Output folder; each video's appears only when everything of it is written."""
    detections: str | None = None
    """Person detections in the COCO results format; None: ``detector``, else the built-in proposal."""
    detector: str | None = None
    """An ONNX person detector (:mod:`sportpose.inference.detector`)."""
    smooth: str | None = None
    """``oneeuro`` or ``savgol``: smooth keypoints (and 3D joints) along tracks."""
    spec: str | None = None
    """The experiment spec of a checkpoint (default: found beside it, see ``load.py``)."""
    gt: str | None = None
    """PoseTrack18 ground truth (one video, or a merged file naming the videos): AP and tracking metrics."""
    det_threshold: float = 0.5
    """Detections scoring below this are not used."""
    keep_threshold: float = 0.3
    """A pose estimated in a box propagated from a track is kept when its mean joint score reaches this."""
    draw_threshold: float = 0.2
    """Joints scoring below this are not drawn on the overlay (all are written to the JSON)."""
    batch_size: int = 16
    """Person tubes per forward pass."""
    threads: int | None = None
    """torch intra-op threads; None: torch's default (one per core). 1 on a machine busy with other work."""
    decoder: str = "opencv"
    """``opencv`` (decord when OpenCV cannot open the file) or ``decord``. Not decord first, as the data pipeline:
    decord's decoding and a video writer in one process hold on to about a decoded frame's size per frame
    (1 GB after 1,000 frames of 640x480, measured), while OpenCV decoding stays flat; OpenCV also decodes full
    frames in order twice as fast here."""
    sample_frames: int = 4
    """STSP-Net: frames drawn as 3D skeleton PNGs (evenly spread)."""
    animate_tracks: int = 8
    """STSP-Net: tracks animated as 3D skeleton videos (the longest)."""
    part_frames: int = FRAMES_PER_VIDEO
    """Frames per PoseTrack18 file (PoseTrack's limit; smaller only to test the parts)."""
    max_frames: int | None = None
    """Stop after this many frames (a live source otherwise runs until it ends)."""
    all_frames: bool = False
    """Tracking metrics with ``gt``: count each video's last annotated frame too, which poseval leaves out."""
    overwrite: bool = False
    """Replace a non-empty output folder (once the new one is complete)."""
    progress: bool = True
    """A progress bar on stderr."""

    def __post_init__(self):
        if not 0.0 <= self.draw_threshold <= 1.0:
            raise SpecError("--draw-threshold", f"must be in [0.0, 1.0], got {self.draw_threshold}")
        if self.sample_frames < 0:
            raise SpecError("--sample-frames", f"must be non-negative, got {self.sample_frames}")
        if self.animate_tracks < 0:
            raise SpecError("--animate-tracks", f"must be non-negative, got {self.animate_tracks}")
        if not 1 <= self.part_frames <= FRAMES_PER_VIDEO:
            raise SpecError("part_frames", f"must be in [1, {FRAMES_PER_VIDEO}], got {self.part_frames}")
        if self.max_frames is not None and self.max_frames < 1:
            raise SpecError("--max-frames", f"must be at least 1, got {self.max_frames}")


@dataclass
class InferResult:
    """One video's run: where it went and its figures (``error`` set, and nothing written, when it failed)."""

    name: str
    out: Path
    frames: int = 0
    seconds: float = 0.0  # the whole loop: decoding, people, model, tracking, smoothing, drawing, writing
    model_seconds: float = 0.0  # forward passes alone
    poses: int = 0
    tracks: int = 0
    boxes: str = ""  # where the person boxes came from
    files: dict[str, str] = field(default_factory=dict)
    ap: dict[str, Any] | None = None
    tracking: dict[str, Any] | None = None
    smoothing: dict[str, Any] | None = None
    error: str | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")

    @property
    def model_fps(self) -> float:
        return self.frames / self.model_seconds if self.model_seconds > 0 else float("nan")


def run_infer(args: InferArgs, log: Callable[[str], None] = print) -> list[InferResult]:
    """Run ``sportpose infer`` (see the module doc): one result per video of the source.

    Raises:
        DataError: a bad source, model, detector, detections or ground-truth file, or an output folder in the
            way; for a single video, any failure of it (nothing is left behind in ``args.out``).
        SpecError: a bad option, or a checkpoint's spec that does not validate.
    """
    check_output(args.out, args.overwrite)  # before any work
    videos = open_videos(args.source, args.decoder)  # a bad source fails before the model loads
    inferencer = Inferencer(args.model, spec=args.spec, detector=args.detector, detections=args.detections,
                            smooth=args.smooth, det_threshold=args.det_threshold, keep_threshold=args.keep_threshold,
                            batch_size=args.batch_size, threads=args.threads, decoder=args.decoder)
    loaded = inferencer.loaded
    people = (f"detections {Path(args.detections).name}" if args.detections else
              f"ONNX detector {Path(args.detector).name}" if args.detector else "built-in proposal")
    log(f"infer: {args.source} ({len(videos)} video{'s' * (len(videos) != 1)}) with {loaded.label} ({loaded.kind}); "
        f"people: {people}" + (f"; smoothing: {args.smooth}" if args.smooth else ""))
    if len(videos) == 1:
        return [_infer_video(inferencer, videos[0], Path(args.out), args, log, by_name=False)]
    out = Path(args.out)
    make_dir(out)
    results = []
    for video in videos:
        try:
            results.append(_infer_video(inferencer, video, out / video.name, args, log, by_name=True))
        except (DataError, SpecError) as e:
            log(f"infer: {video.name}: failed: {e}")
            results.append(InferResult(video.name, out / video.name, error=str(e)))
    (out / "summary.md").write_text(summary_table(results) + "\n")
    return results


def summary_table(results: list[InferResult]) -> str:
    """A markdown table, one line per video: frames, people, tracks, FPS, AP and MOTA where known, or the error."""
    lines = ["| video | frames | poses | tracks | FPS | model FPS | AP total | MOTA total | output |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r.error:
            lines.append(f"| {r.name} | - | - | - | - | - | - | - | error: {r.error.replace('|', '/')} |")
            continue
        ap = _total(r.ap.get("groups", {}) if r.ap else {})
        mota = _total(r.tracking.get("mota", {}) if r.tracking else {})
        lines.append(f"| {r.name} | {r.frames} | {r.poses} | {r.tracks} | {r.fps:.2f} | {r.model_fps:.2f} | {ap} | "
                     f"{mota} | {r.out.name}/ |")
    return "\n".join(lines)


def _total(table: dict) -> str:
    value = table.get("Total") if isinstance(table, dict) else None
    return "-" if value is None or value != value else f"{float(value):.1f}"


def _infer_video(inferencer: Inferencer, video: VideoSource, out: Path, args: InferArgs,
                 log: Callable[[str], None], by_name: bool) -> InferResult:
    run = inferencer.stream(video, gt=args.gt, gt_by_name=by_name)
    with staged_dir(out, args.overwrite) as tmp:
        result = write_run(run, args, tmp, log)
    result.out = out
    return result


def write_run(run: VideoRun, args: InferArgs, tmp: Path, log: Callable[[str], None]) -> InferResult:
    """Iterate one video's run, writing each frame result as it comes; then the files written at the end."""
    video, loaded = run.video, run.loaded
    joint_set = loaded.joint_set
    stsp = loaded.kind == "stsp"
    parts = PoseTrackParts(tmp, run.ids, joint_set, args.part_frames)
    overlay = None if video.kind == "image" else H264Writer(tmp / "overlay.mp4", video.fps)
    animations = TrackAnimations(joint_set, args.animate_tracks) if stsp and args.animate_tracks else None
    records: list[tuple[int, Any]] = []  # STSP-Net: (frame, pose) for joints_3d.npz
    samples: set[int] = set()
    if stsp and args.sample_frames and video.num_frames:
        samples = {int(round(v)) for v in np.linspace(0, video.num_frames - 1, args.sample_frames + 2)[1:-1]}
    pngs: list[str] = []
    fallback: tuple[int, np.ndarray, list] | None = None  # the last frame with people, for a 3D PNG
    total = video.num_frames if args.max_frames is None else min(video.num_frames or args.max_frames, args.max_frames)
    bar = tqdm(total=total, unit="frame", desc=f"infer {run.ids.name}", disable=not args.progress)
    try:
        for result in run:
            canvas = result.image.copy()
            draw_frame(canvas, result, args.draw_threshold, bar.format_dict.get("rate"))
            if overlay is None:
                cv2.imwrite(str(tmp / "overlay.png"), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
            else:
                overlay.write(canvas)
            parts.add(result.index, result.persons)
            if stsp:
                records += [(result.index, p) for p in result.persons]
                if animations is not None:
                    animations.add(result.index, result.persons)
                if result.persons:
                    fallback = (result.index, canvas, result.persons)
                    if result.index in samples:
                        pngs.append(_skeleton_png(tmp, result.index, canvas, result.persons, joint_set))
            bar.update(1)
            if args.max_frames is not None and run.frames >= args.max_frames:
                break
    finally:
        bar.close()
        if overlay is not None:
            overlay.close()
        video.close()
    files = {"overlay": "overlay.png" if overlay is None else "overlay.mp4"}
    files["posetrack18"] = ", ".join(parts.close())
    result = InferResult(run.ids.name, tmp, frames=run.frames, seconds=run.seconds, model_seconds=run.model_seconds,
                         poses=run.poses, tracks=run.tracks, boxes=run.describe_boxes(), files=files)
    if run.gt is not None:
        result.ap = posetrack_ap([run.gt], parts.videos)
        result.tracking = evaluate_tracking([run.gt], parts.videos, skip_last_frame=not args.all_frames)
    if run.smoother is not None:
        result.smoothing = run.smoother.summary()
    if stsp:
        if not pngs and fallback is not None:
            pngs.append(_skeleton_png(tmp, *fallback, joint_set))
        _save_joints(tmp / "joints_3d.npz", records, joint_set)
        files["joints_3d"] = "joints_3d.npz"
        files["skeleton_pngs"] = ", ".join(pngs)
        if animations is not None:
            files["skeleton_videos"] = ", ".join(animations.write(tmp, video.fps))
    _write_summary(tmp, result, run, args)
    files["summary"] = "summary.json"
    return result


def draw_frame(canvas: np.ndarray, result: FrameResult, threshold: float, rate: float | None = None) -> None:
    """Boxes in the track's colour with its id, skeletons in the side colours, and a caption."""
    for p in result.persons:
        draw.draw_box(canvas, p.box, draw.track_colour(p.track_id), label=str(p.track_id))
    for p in result.persons:
        draw.draw_skeleton(canvas, p.keypoints, result.joint_set, scores=p.scores, threshold=threshold)
    caption = f"{result.video}  frame {result.index}  {len(result.persons)} people" + (
        f"  {rate:.1f} fps" if rate else "")
    draw.draw_label(canvas, caption, (4, 4))


def _skeleton_png(tmp: Path, frame: int, canvas: np.ndarray, poses: list, joint_set) -> str:
    name = f"skeleton3d_f{frame:06d}.png"
    panels = [(f"track {p.track_id}", p.joints_3d, None) for p in poses[:3] if p.joints_3d is not None]
    scale = min(1.0, 480 / canvas.shape[1])
    thumb = cv2.resize(canvas, (round(canvas.shape[1] * scale), round(canvas.shape[0] * scale)),
                       interpolation=cv2.INTER_AREA)
    skeletons_3d_figure(panels, joint_set, tmp / name, image=thumb,
                        title=f"frame {frame}: 3D joints (mm, root-relative, camera frame)")
    return name


def _save_joints(path: Path, records: list[tuple[int, Any]], joint_set) -> None:
    j = joint_set.num_joints
    np.savez_compressed(
        path,
        frames=np.array([f for f, _ in records], np.int64),  # (N,) frame index of each pose
        track_ids=np.array([p.track_id for _, p in records], np.int64),  # (N,)
        joints_3d=np.array([p.joints_3d for _, p in records], np.float32).reshape(-1, j, 3),
        keypoints_2d=np.array([p.keypoints for _, p in records], np.float32).reshape(-1, j, 2),
        scores=np.array([p.scores for _, p in records], np.float32).reshape(-1, j),
        joint_names=np.array(joint_set.joints), edges=np.array(joint_set.edges, np.int64),
    )


def _write_summary(tmp: Path, result: InferResult, run: VideoRun, args: InferArgs) -> None:
    loaded, video = run.loaded, run.video
    summary = {
        "source": video.path if video.kind == "live" else str(Path(video.path).resolve()), "source_kind": video.kind,
        "video_name": run.ids.name, "frames": result.frames, "size": list(run.size), "video_fps": video.fps,
        "model": loaded.describe(), "model_input": {"window": loaded.spec.data.window,
                                                    "interval": loaded.spec.data.interval,
                                                    "input_size": list(loaded.spec.data.input_size),
                                                    "context_len": loaded.spec.data.context_len},
        "boxes": result.boxes, "poses": result.poses, "tracks": result.tracks,
        "seconds": round(result.seconds, 3), "fps": round(result.fps, 3),
        "model_seconds": round(result.model_seconds, 3), "model_fps": round(result.model_fps, 3),
        "torch_threads": torch.get_num_threads(), "batch_size": args.batch_size,
        "smoothing": result.smoothing,
        "files": {**result.files, "summary": "summary.json"},
        "ground_truth": str(Path(args.gt).resolve()) if run.gt is not None else None,
        "ap": json.loads(to_json(result.ap)) if result.ap else None,  # NaN (a joint without GT) as null
        "tracking": json.loads(to_json(result.tracking)) if result.tracking else None,
    }
    (tmp / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
