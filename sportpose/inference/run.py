"""``sportpose infer``: a trained model on a video, streamed, with tracks, overlays and PoseTrack18 output.

setup -> stream -> write, one frame at a time:

1. **setup**: the output folder is checked (a non-empty one needs ``--overwrite``), the model loaded
   (:mod:`~sportpose.registry.load`), the video opened (OpenCV, decord as fallback: see
   ``InferArgs.decoder`` for why not decord first), the people
   source chosen: a detections file checked against the video's image ids, or the built-in proposal
   (:mod:`~sportpose.inference.people`).
2. **stream**: frames are decoded once, in order, and each is held only while a tube or context clip still
   needs it, so memory does not grow with the video's length (the predictions themselves, a few hundred
   bytes per person per frame, are kept for the JSON). Frame t is estimated as soon as the frames its tubes
   need have arrived: the model's own spec says how (its ``data`` section: window T, interval Δ, centred or
   end-anchored tubes, context length L and size, crop size, box enlargement, optical flow), and the crops,
   tube and context indices, affines and flow are the data pipeline's own functions, so a person is cut
   exactly as in training and evaluation (every tube frame cropped with frame t's box). Heatmaps are decoded
   as evaluation decodes them; STSP-Net's 2D keypoints (soft-argmax) are mapped back through the same
   inverse affine and its per-joint scores are its heatmaps' maxima. Poses are then given track ids
   (:mod:`~sportpose.inference.tracker`), drawn, and the frame is written to the overlay video.
3. **write**: the PoseTrack18 JSON (per-joint ``scores``, ``track_id``, ``bbox``; STSP-Net's 3D joints as
   ``keypoints_3d``; h36m joints converted to PoseTrack's, those it lacks written as unlabeled), read back
   with the project's reader as a check; for STSP-Net ``joints_3d.npz`` and PNGs of 3D skeletons at sample
   frames; ``summary.json`` with the timing (FPS of the whole loop and of the model alone) and, given the
   video's ground truth (``--gt``), its PoseTrack AP.

Everything is written into a temporary folder beside ``--out`` and renamed into place at the end
(:mod:`sportpose.paths`): a failure leaves no partial output behind.
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import torch
from tqdm import tqdm

from sportpose.data import samples as S
from sportpose.data.flow import FlowEstimator
from sportpose.data.formats import (
    FrameAnnotation,
    PersonAnnotation,
    VideoAnnotation,
    read_posetrack18,
    write_posetrack18,
)
from sportpose.data.tubes import context_indices, tube_indices
from sportpose.data.video import iter_frames, open_video
from sportpose.errors import DataError, SpecError
from sportpose.evaluation.evaluate2d import decode_to_image
from sportpose.evaluation.metrics import posetrack_ap
from sportpose.evaluation.posetrack_eval import to_json
from sportpose.inference.people import FRAMES_PER_VIDEO, DetectionBoxes, ForegroundProposal, VideoIds, video_ids
from sportpose.inference.tracker import PoseTracker, nms
from sportpose.models.skeleton import POSETRACK, convert
from sportpose.models.stsp import TrackHistory
from sportpose.paths import check_output, staged_dir
from sportpose.registry.load import LoadedModel, load_model
from sportpose.spec.data import DataSpec
from sportpose.viz import draw
from sportpose.viz.plots import skeletons_3d_figure

DECODE_CHUNK = 8  # frames per decoder call


@dataclass(frozen=True)
class InferArgs:
    """What ``sportpose infer`` was asked to do."""

    video: str
    """The video file (any container decord or OpenCV decodes)."""
    model: str
    """``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, a checkpoint folder or a checkpoint file."""
    out: str
    """Output folder; it appears only when everything is written."""
    detections: str | None = None
    """Person detections in the COCO results format; None: the built-in proposal."""
    spec: str | None = None
    """The experiment spec of a checkpoint (default: found beside it, see ``load.py``)."""
    gt: str | None = None
    """The video's PoseTrack18 ground truth: the predictions' AP goes into summary.json."""
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
    decord's decoding and OpenCV's video writer in one process hold on to about a decoded frame's size per
    frame (1 GB after 1,000 frames of 640x480, measured), while OpenCV decoding and writing stay flat; OpenCV
    also decodes full frames in order twice as fast here."""
    sample_frames: int = 4
    """STSP-Net: frames drawn as 3D skeleton PNGs (evenly spread)."""
    overwrite: bool = False
    """Replace a non-empty output folder (once the new one is complete)."""
    progress: bool = True
    """A progress bar on stderr."""

    def __post_init__(self):
        for flag, value, low, high in (("--det-threshold", self.det_threshold, 0.0, 1.0),
                                       ("--keep-threshold", self.keep_threshold, 0.0, 1.0),
                                       ("--draw-threshold", self.draw_threshold, 0.0, 1.0)):
            if not low <= value <= high:
                raise SpecError(flag, f"must be in [{low}, {high}], got {value}")
        if self.batch_size < 1:
            raise SpecError("--batch-size", f"must be at least 1, got {self.batch_size}")
        if self.threads is not None and self.threads < 1:
            raise SpecError("--threads", f"must be at least 1, got {self.threads}")
        if self.decoder not in ("opencv", "decord"):
            raise SpecError("--decoder", f"expected opencv or decord, got {self.decoder!r}")
        if self.sample_frames < 0:
            raise SpecError("--sample-frames", f"must be non-negative, got {self.sample_frames}")


@dataclass
class InferResult:
    out: Path
    frames: int
    seconds: float  # the whole loop: decoding, people, model, tracking, drawing, writing
    model_seconds: float  # forward passes alone
    poses: int
    tracks: int
    boxes: str  # where the person boxes came from
    files: dict[str, str] = field(default_factory=dict)
    ap: dict[str, Any] | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")

    @property
    def model_fps(self) -> float:
        return self.frames / self.model_seconds if self.model_seconds > 0 else float("nan")


@dataclass(frozen=True)
class TubeGeometry:
    """How a model's samples are cut, from its spec's data section (what training and evaluation cut)."""

    window: int
    interval: int
    anchor: str  # centre | end
    context_len: int
    context_size: tuple[int, int]  # Hc, Wc
    input_size: tuple[int, int]  # H, W
    box_scale: float
    flow: str

    @staticmethod
    def of(data: DataSpec) -> "TubeGeometry":
        return TubeGeometry(data.window, data.interval, data.tube_anchor, data.context_len, tuple(data.context_size),
                            tuple(data.input_size), data.box_scale, data.flow)

    @property
    def back(self) -> int:
        """Frames before the anchor that a tube or context clip reads."""
        tube = (self.window // 2 if self.anchor == "centre" else self.window - 1) * self.interval
        return max(tube, self.context_len - 1)

    @property
    def ahead(self) -> int:
        """Frames after the anchor that a tube reads (a centred tube's second half)."""
        return (self.window // 2) * self.interval if self.anchor == "centre" else 0


@dataclass
class Pose:
    """One person in one frame, in the model's joint set."""

    box: np.ndarray  # (4,) the box it was estimated in, image pixels
    keypoints: np.ndarray  # (K, 2) image pixels
    scores: np.ndarray  # (K,)
    joints_3d: np.ndarray | None = None  # (J, 3) mm, root-relative camera frame (STSP-Net)
    track_id: int = -1
    # STSP-Net with TMP: GSR's poses (T, J, 3) mm and node features (T, J, d) of the tube and its frame indices,
    # which PoseEstimator.refine turns into joints_3d along the pose's track once the tracker has named it
    lifted: tuple[torch.Tensor, torch.Tensor, list[int]] | None = None


class PoseEstimator:
    """A loaded model applied to the people of one frame, cutting tubes as the data pipeline does.

    Args:
        loaded: the model and its spec.
        batch_size: tubes per forward pass.
    """

    def __init__(self, loaded: LoadedModel, batch_size: int = 16):
        self.model = loaded.model
        self.kind = loaded.kind
        self.geometry = TubeGeometry.of(loaded.spec.data)
        self.names = tuple(self.model.input_names())
        self.batch_size = batch_size
        self.flow = FlowEstimator(self.geometry.flow) if "flow" in self.names else None
        self.seconds = 0.0  # time spent in forward passes
        config = getattr(self.model, "config", None)
        # STSP-Net's TMP reads the model's own outputs at the track's previous frames (stsp.TrackHistory)
        self.history = (TrackHistory(config.tau, self.geometry.interval)
                        if getattr(config, "use_tmp", False) and hasattr(self.model, "refine") else None)

    def __call__(self, anchor: int, frames: dict[int, np.ndarray], boxes: list[np.ndarray], known: int) -> list[Pose]:
        """Poses of the people in ``boxes`` at frame ``anchor``.

        Args:
            anchor: the frame estimated.
            frames: decoded frames (H, W, 3) uint8 RGB by index; every index the tubes need must be present.
            boxes: (4,) ``[x, y, w, h]`` image pixels, one per person.
            known: frames known to exist (indices are clamped below it, as at a clip's end).
        """
        g = self.geometry
        if not boxes:
            return []
        tube_idx = tube_indices(anchor, g.window, g.interval, known, g.anchor)
        context = None
        if "context" in self.names:
            size = (g.context_size[1], g.context_size[0])
            context = np.stack([cv2.resize(frames[i], size, interpolation=cv2.INTER_AREA)
                                for i in context_indices(anchor, g.context_len, known)])  # (L, Hc, Wc, 3)
        poses = []
        for start in range(0, len(boxes), self.batch_size):
            chunk = boxes[start : start + self.batch_size]
            affines = np.stack([S.crop_affine(S.box_to_crop(b, g.input_size, g.box_scale), g.input_size)
                                for b in chunk])  # (B, 2, 3) image -> crop
            tubes = np.stack([np.stack([S.warp(frames[i], a, g.input_size) for i in tube_idx])
                              for a in affines])  # (B, T, H, W, 3)
            inputs = {"tube": torch.from_numpy(tubes)}
            if "affine" in self.names:  # where each crop sits in the frame (STSP-Net's frame_position)
                height, width = frames[tube_idx[-1]].shape[:2]
                inputs["affine"] = torch.from_numpy(affines.astype(np.float32))  # (B, 2, 3)
                inputs["frame_size"] = torch.tensor([[float(width), float(height)]]).expand(len(chunk), 2)  # (B, 2)
            if context is not None:
                inputs["context"] = torch.from_numpy(np.repeat(context[None], len(chunk), axis=0))  # (B, L, Hc, Wc, 3)
            if self.flow is not None:
                inputs["flow"] = torch.from_numpy(np.stack([self.flow.tube(t) for t in tubes]))  # (B, T-1, H, W, 2)
            started = time.perf_counter()
            with torch.no_grad():
                out = self.model({k: inputs[k] for k in self.names})
            self.seconds += time.perf_counter() - started
            if "joints_3d" in out:  # STSP-Net: the anchor is the tube's last frame
                crop = out["keypoints_2d"][:, -1].numpy()  # (B, J, 2) crop pixels
                keypoints = np.stack([S.transform_points(c, S.invert_affine(a)) for c, a in zip(crop, affines)])
                scores = out["heatmaps"][:, -1].amax(dim=(-2, -1)).numpy()  # (B, J)
                joints = out["joints_3d"][:, -1].numpy()  # (B, J, 3) mm, this tube alone until refine()
                lifted = ([(p, n, tube_idx) for p, n in zip(out["joints_3d_gsr"], out["nodes_gsr"])]
                          if self.history is not None else [None] * len(chunk))
            else:
                keypoints, scores = decode_to_image(out["heatmaps"], affines)  # (B, K, 2), (B, K)
                joints, lifted = [None] * len(chunk), [None] * len(chunk)
            poses += [Pose(np.asarray(b, np.float64), k, s, j, lifted=f)
                      for b, k, s, j, f in zip(chunk, keypoints, scores, joints, lifted)]
        return poses

    def refine(self, poses: list[Pose]) -> None:
        """STSP-Net's TMP along each pose's track: ``joints_3d`` from the model's own outputs for that track at
        the frames before (a pose without a track, ``track_id`` < 0, has none). Call once per frame, in frame
        order, after the tracker has given the poses their ids; other models are left as they are."""
        todo = [p for p in poses if p.lifted is not None]
        if self.history is None or not todo:
            return
        started = time.perf_counter()
        keys = [p.track_id if p.track_id >= 0 else None for p in todo]
        joints = self.history.step(self.model, keys, [p.lifted[2] for p in todo],
                                   torch.stack([p.lifted[0] for p in todo]), torch.stack([p.lifted[1] for p in todo]))
        self.seconds += time.perf_counter() - started
        for p, j in zip(todo, joints.numpy()):
            p.joints_3d, p.lifted = j[-1], None


def run_infer(args: InferArgs, log: Callable[[str], None] = print) -> InferResult:
    """Run ``sportpose infer`` (see the module doc).

    Raises:
        DataError: a bad video, model, detections or ground-truth file, or an output folder in the way; nothing
            is left behind in ``args.out``.
        SpecError: a checkpoint's spec that does not validate.
    """
    check_output(args.out, args.overwrite)  # before any work
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_model(args.model, args.spec)
    with _native_stderr_silenced():  # FFmpeg prints its own lines about a corrupt file; the DataError says it once
        try:
            reader = open_video(args.video, backend=args.decoder)
        except DataError:
            if args.decoder != "opencv":
                raise
            reader = open_video(args.video, backend="auto")  # decord where installed: it may read what OpenCV cannot
    if reader.num_frames <= 0:
        raise DataError(args.video, "video", "holds no frames (or the container does not say how many)")
    gt = _ground_truth(args.gt, args.video)
    ids = video_ids(args.video, gt)
    if args.detections:
        people: Any = DetectionBoxes(args.detections, ids, reader.num_frames, args.det_threshold)
        ids = people.ids
    else:
        people = ForegroundProposal()
    if reader.num_frames > FRAMES_PER_VIDEO:
        raise DataError(args.video, "frames", f"{reader.num_frames} frames: PoseTrack18 image ids hold at most "
                                              f"{FRAMES_PER_VIDEO} per video; cut the video into parts")
    log(f"infer: {Path(args.video).name} ({reader.num_frames} frames at {reader.fps:.3g} fps) with {loaded.label} "
        f"({loaded.kind}); people: {'detections ' + Path(args.detections).name if args.detections else 'built-in proposal'}")
    with staged_dir(args.out, args.overwrite) as tmp:
        result, state = _stream(loaded, reader, people, ids, args, tmp)
        result.files.update(_write_outputs(result, state, ids, reader, loaded, gt, args, tmp))
        result.out = Path(args.out)
    return result


@contextmanager
def _native_stderr_silenced():
    """Route the process's file descriptor 2 to /dev/null for the block (C libraries write there directly)."""

    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _ground_truth(path: str | None, video: str) -> VideoAnnotation | None:
    if not path:
        return None
    if not Path(path).is_file():
        raise DataError(path, "--gt", "file not found")
    videos = read_posetrack18(path)
    if len(videos) == 1:
        return videos[0]
    named = [v for v in videos if v.name == Path(video).stem]
    if not named:
        raise DataError(path, "images", f"holds {len(videos)} videos, none named {Path(video).stem!r}")
    return named[0]


@dataclass
class _Stream:
    """What the loop accumulates: the poses per frame (for the JSON) and the 3D samples drawn."""

    poses: dict[int, list[Pose]] = field(default_factory=dict)
    size: tuple[int, int] = (0, 0)  # (width, height) of the frames
    sample_pngs: list[str] = field(default_factory=list)


def _stream(loaded: LoadedModel, reader: Any, people: Any, ids: VideoIds, args: InferArgs, tmp: Path
            ) -> tuple[InferResult, _Stream]:
    estimator = PoseEstimator(loaded, args.batch_size)
    geometry = estimator.geometry
    tracker = PoseTracker()
    propagate = isinstance(people, ForegroundProposal)
    joint_set = loaded.joint_set
    total = reader.num_frames
    samples = set()
    if loaded.kind == "stsp" and args.sample_frames:
        samples = {int(round(v)) for v in np.linspace(0, total - 1, args.sample_frames + 2)[1:-1]}
    state = _Stream()
    frames: dict[int, np.ndarray] = {}
    boxes: dict[int, list[tuple[np.ndarray, float]]] = {}
    writer = None
    overlay_path = tmp / "overlay.mp4"
    bar = tqdm(total=total, unit="frame", desc=f"infer {ids.name}", disable=not args.progress)
    start = time.perf_counter()
    next_anchor = decoded = 0
    fallback: tuple[int, np.ndarray, list[Pose]] | None = None  # last frame with people, for the 3D PNG

    def estimate(anchor: int, known: int) -> None:
        nonlocal writer, fallback
        image = frames[anchor]
        found = [(b, s) for b, s in boxes.pop(anchor) if b[2] > 1 and b[3] > 1]
        if propagate and found:
            keep = nms([b for b, _ in found], [s for _, s in found])
            found = [found[i] for i in keep]
        poses = estimator(anchor, frames, [b for b, _ in found], known)
        track_ids = tracker.update(anchor, [p.box for p in poses], [p.keypoints for p in poses],
                                   [p.scores for p in poses])
        for p, t in zip(poses, track_ids):
            p.track_id = t
        if propagate:  # tracks the proposal lost in this frame: estimate them in boxes from their last pose
            lost = tracker.propagated_boxes(anchor, track_ids)
            for t, p in zip(lost, estimator(anchor, frames, list(lost.values()), known)):
                inside = (_inside(p.box, np.stack([q.box for q in poses])) if poses else 0.0)
                if float(np.mean(p.scores)) >= args.keep_threshold and inside < 0.5:
                    tracker.extend(t, anchor, p.box, p.keypoints, p.scores)
                    p.track_id = t
                    poses.append(p)
        estimator.refine(poses)  # STSP-Net: TMP along each track, now that the poses have their track ids
        state.poses[anchor] = poses
        canvas = image.copy()  # the frame itself may still be read by later tubes
        _draw(canvas, poses, joint_set, args.draw_threshold, anchor, ids.name, bar)
        if writer is None:
            writer = _open_writer(overlay_path, reader.fps, (canvas.shape[1], canvas.shape[0]))
            state.size = (canvas.shape[1], canvas.shape[0])
        writer.write(cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
        if loaded.kind == "stsp" and poses:
            fallback = (anchor, canvas, poses)
            if anchor in samples:
                state.sample_pngs.append(_skeleton_png(tmp, anchor, canvas, poses, joint_set))
        bar.update(1)

    try:
        for part, batch in iter_frames(reader, range(total), DECODE_CHUNK):
            for index, image in zip(part, batch):
                frames[index] = image
                boxes[index] = people(index, image)
                decoded = index + 1
                while next_anchor + geometry.ahead < decoded:
                    estimate(next_anchor, decoded)
                    next_anchor += 1
                    for old in [k for k in frames if k < next_anchor - geometry.back]:
                        del frames[old]
            if decoded > 1 and next_anchor % 16 == 0:
                bar.set_postfix(fps=f"{next_anchor / (time.perf_counter() - start):.1f}")
        while next_anchor < decoded:  # the last frames: their tubes are clamped at the video's end
            estimate(next_anchor, decoded)
            next_anchor += 1
    finally:
        bar.close()
        if writer is not None:
            writer.release()
    if decoded == 0:
        raise DataError(reader.path, "video", "no frame could be decoded")
    if loaded.kind == "stsp" and not state.sample_pngs and fallback is not None:
        state.sample_pngs.append(_skeleton_png(tmp, fallback[0], fallback[1], fallback[2], joint_set))
    seconds = time.perf_counter() - start
    result = InferResult(out=tmp, frames=decoded, seconds=seconds, model_seconds=estimator.seconds,
                         poses=sum(len(v) for v in state.poses.values()), tracks=tracker.next_id,
                         boxes=people.describe(), files={"overlay": overlay_path.name})
    return result, state


def _inside(box: np.ndarray, others: np.ndarray) -> float:
    """The largest share of ``box``'s area that lies inside one of ``others`` (N, 4)."""
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[0] + box[2], others[:, 0] + others[:, 2])
    y2 = np.minimum(box[1] + box[3], others[:, 1] + others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    return float(inter.max() / max(box[2] * box[3], 1e-9))


def _open_writer(path: Path, fps: float, size: tuple[int, int]):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps or 25.0), size)
    if not writer.isOpened():
        raise DataError(str(path), "overlay", "OpenCV cannot write an mp4v video here (FFmpeg support missing?)")
    return writer


def _draw(canvas: np.ndarray, poses: list[Pose], joint_set, threshold: float, frame: int, name: str, bar) -> None:
    """Boxes in the track's colour with its id, skeletons in the side colours, and a caption."""
    for p in poses:
        draw.draw_box(canvas, p.box, draw.track_colour(p.track_id), label=str(p.track_id))
    for p in poses:
        draw.draw_skeleton(canvas, p.keypoints, joint_set, scores=p.scores, threshold=threshold)
    rate = bar.format_dict.get("rate")
    caption = f"{name}  frame {frame}  {len(poses)} people" + (f"  {rate:.1f} fps" if rate else "")
    draw.draw_label(canvas, caption, (4, 4))


def _skeleton_png(tmp: Path, frame: int, canvas: np.ndarray, poses: list[Pose], joint_set) -> str:
    name = f"skeleton3d_f{frame:06d}.png"
    panels = [(f"track {p.track_id}", p.joints_3d, None) for p in poses[:3] if p.joints_3d is not None]
    scale = min(1.0, 480 / canvas.shape[1])
    thumb = cv2.resize(canvas, (round(canvas.shape[1] * scale), round(canvas.shape[0] * scale)),
                       interpolation=cv2.INTER_AREA)
    skeletons_3d_figure(panels, joint_set, tmp / name, image=thumb,
                        title=f"frame {frame}: 3D joints (mm, root-relative, camera frame)")
    return name


def to_posetrack(pose: Pose, joint_set) -> PersonAnnotation:
    """A pose as a PoseTrack18 person: 17 PoseTrack joints (converted from another set; joints it lacks are
    ``0, 0, 0`` with score 0, i.e. unlabeled), per-joint scores, box and track id, and 3D joints if any."""
    xys = np.concatenate([pose.keypoints, pose.scores[:, None]], axis=1)  # (K, 3): x, y, score
    if joint_set.name != POSETRACK.name:
        xys = convert(xys, joint_set.name, POSETRACK.name)  # (17, 3), NaN where the set has no such joint
    present = np.isfinite(xys).all(axis=1)
    keypoints = np.where(present[:, None], np.concatenate([xys[:, :2], np.ones((17, 1))], axis=1), 0.0)
    scores = np.where(present, xys[:, 2], 0.0).astype(np.float64)
    return PersonAnnotation(track_id=int(pose.track_id), keypoints=keypoints.astype(np.float32),
                            bbox=pose.box.astype(np.float32), bbox_head=None, scores=scores,
                            score=float(scores[present].mean()) if present.any() else 0.0,
                            keypoints_3d=None if pose.joints_3d is None else pose.joints_3d.astype(np.float32))


def _write_outputs(result: InferResult, state: _Stream, ids: VideoIds, reader: Any, loaded: LoadedModel,
                   gt: VideoAnnotation | None, args: InferArgs, tmp: Path) -> dict[str, str]:
    joint_set = loaded.joint_set
    files: dict[str, str] = {}
    frames = [FrameAnnotation(image_id=ids.image_id(f), file_name=ids.file_name(f), frame_index=f, is_labeled=True,
                              persons=[to_posetrack(p, joint_set) for p in state.poses.get(f, [])], ignore_regions=[])
              for f in range(result.frames)]
    json_path = tmp / f"{ids.name}.json"
    write_posetrack18(VideoAnnotation(ids.name, str(json_path), result.frames, frames, categories=[]), json_path)
    (written,) = read_posetrack18(json_path)  # the project's reader accepts it, or this raises
    files["posetrack18"] = json_path.name
    if gt is not None:
        result.ap = posetrack_ap([gt], [written])
    if loaded.kind == "stsp":
        records = [(f, p) for f in sorted(state.poses) for p in state.poses[f]]
        np.savez_compressed(
            tmp / "joints_3d.npz",
            frames=np.array([f for f, _ in records], np.int64),  # (N,) frame index of each pose
            track_ids=np.array([p.track_id for _, p in records], np.int64),  # (N,)
            joints_3d=np.array([p.joints_3d for _, p in records], np.float32).reshape(-1, joint_set.num_joints, 3),
            keypoints_2d=np.array([p.keypoints for _, p in records], np.float32).reshape(-1, joint_set.num_joints, 2),
            scores=np.array([p.scores for _, p in records], np.float32).reshape(-1, joint_set.num_joints),
            joint_names=np.array(joint_set.joints), edges=np.array(joint_set.edges, np.int64),
        )
        files["joints_3d"] = "joints_3d.npz"
        files["skeleton_pngs"] = ", ".join(state.sample_pngs)
    summary = {
        "video": str(Path(args.video).resolve()), "video_name": ids.name, "frames": result.frames,
        "size": list(state.size), "video_fps": reader.fps,
        "model": loaded.describe(), "model_input": {"window": loaded.spec.data.window,
                                                    "interval": loaded.spec.data.interval,
                                                    "input_size": list(loaded.spec.data.input_size),
                                                    "context_len": loaded.spec.data.context_len},
        "boxes": result.boxes, "poses": result.poses, "tracks": result.tracks,
        "seconds": round(result.seconds, 3), "fps": round(result.fps, 3),
        "model_seconds": round(result.model_seconds, 3), "model_fps": round(result.model_fps, 3),
        "torch_threads": torch.get_num_threads(),
        "files": {**files, "overlay": "overlay.mp4"},
        "ground_truth": str(Path(args.gt).resolve()) if args.gt else None,
        "ap": json.loads(to_json(result.ap)) if result.ap else None,  # NaN (a joint without GT) as null
    }
    (tmp / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default) + "\n")
    files["summary"] = "summary.json"
    return files


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
