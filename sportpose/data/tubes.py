"""Cutting one clip's samples: person tubes with their targets, decoded once per frame (SPEC §3.3).

A sample is a person tube anchored on an annotated frame t (``tube_anchor``): ``centre`` gives MultiStream's
t-(T//2)Δ … t+(T//2)Δ, ``end`` gives STSP-Net's t-(T-1)Δ … t with the current frame last; indices are
clamped at the clip ends. Every frame is cropped with the anchor frame's box (enlarged ``box_scale`` times,
fixed aspect) through one affine. Optional parts: a context clip of L full frames ending at t, targets for
every tube frame (the same track's keypoints in each frame through the one affine; a frame where the track
is missing has zero weights), root-relative 3D joints, and optical flow between consecutive crops.

:func:`cut_clip_columns` reads the clip's annotations (and 3D file when needed), opens its video once,
decodes every frame its samples need exactly once, in increasing order and at reduced size when every crop
allows it, and cuts all of the clip's samples; frames no later sample needs are dropped as decoding goes.
Frames stay YUV planes where the video allows (:class:`~sportpose.data.video.PlanarFrame`): a crop converts only
the region it samples to RGB, a context frame is converted once however many samples' contexts hold it.
This module knows nothing of Ray: :mod:`~sportpose.data.dataset` runs it as one Ray task per clip.

Augmentation (train split only): flip with left/right joint swap, rotation, scale and colour jitter, drawn
once per tube and applied to all of its frames; context frames are left as decoded. Draws come from
``(seed, epoch, clip, frame, track)``.

No sample is silently wrong: a truncated or unreadable video, an empty file, annotated frames beyond the
video's length, a box of zero area or outside the frame and NaN keypoints (in the JSON or the 3D file) all
raise `DataError` naming the file at fault rather than produce a bad sample.
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from sportpose.data import samples as S
from sportpose.data.bones import lengths_for, person_group
from sportpose.data.flow import FlowEstimator
from sportpose.data.formats import FrameAnnotation, VideoAnnotation, read_detections, read_posetrack18
from sportpose.data.video import PlanarFrame, decode_scale_affine, iter_frames, open_video, probe_video
from sportpose.errors import DataError
from sportpose.models.heatmaps import HEATMAP_STRIDE
from sportpose.models.skeleton import JOINT_SETS, JointSet, convert
from sportpose.spec.data import DataSpec

META_KEYS = ("view", "blur", "occlusion", "body")
STRING_COLUMNS = ("video", *META_KEYS)
MAX_DECODE_FACTOR = 8  # decode at up to 1/8 of the video's size when every crop allows it
DECODE_CHUNK = 16  # frames decoded per reader call (a task holds about this many plus a tube's span)


def tube_indices(anchor: int, window: int, interval: int, num_frames: int, tube_anchor: str = "centre") -> list[int]:
    """Frame indices of a tube, clamped at the clip ends.

    ``centre``: ``anchor + (j - window // 2) * interval`` (MultiStream); ``end``: ``anchor - (window - 1 - j) *
    interval``, the anchor last (STSP-Net).
    """
    first = anchor - (window // 2 if tube_anchor == "centre" else window - 1) * interval
    return [min(max(first + j * interval, 0), num_frames - 1) for j in range(window)]


def context_indices(anchor: int, length: int, num_frames: int) -> list[int]:
    """The L consecutive frames ending at the anchor, clamped at the clip's start."""
    return [min(max(anchor - length + 1 + j, 0), num_frames - 1) for j in range(length)]


def _sample_seed(seed: int, *parts: Any) -> int:
    digest = hashlib.sha256(json.dumps([seed, *parts]).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def sample_schema(data: DataSpec, detections: bool = False) -> dict[str, tuple[tuple[int, ...], Any]]:
    """Per-row shape and dtype of every column the samples of ``data`` have (strings have shape ``()``).

    Args:
        data: a ``DataSpec``.
        detections: samples cut from a detections file (``det_score`` instead of ``joints_3d``).
    """
    k = JOINT_SETS[data.joint_set].num_joints
    t = data.window
    h, w = data.input_size
    hm = (h // HEATMAP_STRIDE, w // HEATMAP_STRIDE)
    per_frame = (t,) if data.targets == "all" else ()
    schema: dict[str, tuple[tuple[int, ...], Any]] = {
        "tube": ((t, h, w, 3), np.uint8),  # crops, RGB
        "tube_frames": ((t,), np.int64),  # frame index of each crop
        "heatmaps": ((*per_frame, k, *hm), np.float32),
        "target_weight": ((*per_frame, k), np.float32),
        "keypoints": ((*per_frame, k, 3), np.float32),  # crop pixels + labeled flag
        "keypoints_image": ((k, 3), np.float32),  # anchor frame, image pixels + labeled flag
        "affine": ((2, 3), np.float32),  # image -> crop (flip included)
        "frame_size": ((2,), np.float32),  # the video's (width, height), image pixels
        "head_size": ((), np.float32),  # image pixels, 0 = no head box
        "frame": ((), np.int64),
        "track_id": ((), np.int64),  # -1 for a detection
        "image_id": ((), np.int64),
    }
    if data.context_len:
        schema["context"] = ((data.context_len, *data.context_size, 3), np.uint8)
    if data.flow != "none":
        schema["flow"] = ((t - 1, h, w, 2), np.float32)
    if detections:
        schema["det_score"] = ((), np.float32)
    elif data.points3d:
        schema["joints_3d"] = ((*per_frame, JOINT_SETS["h36m"].num_joints, 3), np.float32)  # root-relative mm
        schema["bone_lengths"] = ((len(JOINT_SETS["h36m"].edges),), np.float32)  # mm; NaN = not known
    for name in STRING_COLUMNS:
        schema[name] = ((), str)
    return schema


def empty_columns(data: DataSpec, detections: bool = False, n: int = 0) -> dict[str, np.ndarray]:
    """Zero-filled columns for ``n`` samples (``n = 0``: the batch of a clip without samples)."""
    return {name: (np.full((n,), "", dtype=object) if dtype is str else np.zeros((n, *shape), dtype))
            for name, (shape, dtype) in sample_schema(data, detections).items()}


class _Poses:
    """The clip's keypoints in the samples' joint set (from the JSON or the 3D file) and its 3D joints."""

    def __init__(self, clip: dict[str, Any], video: VideoAnnotation, joint_set: str, need_3d: bool):
        self.joint_set = joint_set
        self._json = {(f.frame_index, p.track_id): p.keypoints for f in video.frames for p in f.persons}
        self._npz_path = clip.get("points3d") or ""
        self._rows: dict[int, int] = {}
        self._is_child = None  # (P,) bool: SynthCourt's per-player body-scale group, where the 3D file has it
        self.frames = 1 << 30  # frames of the 3D file (unbounded without one)
        if joint_set == "posetrack" and not need_3d:
            return
        path = self._npz_path
        if not path:
            raise DataError(clip["annotations"], "points3d",
                            f"joint_set {joint_set} and points3d need the clip's 3D file; the manifest names none")
        try:
            with np.load(path) as z:
                arrays = {key: z[key] for key in ("joints_2d", "joints_cam", "visibility", "track_ids")}
                layout = str(z["layout"]) if "layout" in z.files else "synth"
                self._is_child = z["is_child"] if "is_child" in z.files else None
        except FileNotFoundError:
            raise DataError(path, "", "file not found") from None
        except KeyError as e:
            raise DataError(path, str(e).strip("'\""), "missing") from None
        except (OSError, ValueError, zipfile.BadZipFile) as e:
            raise DataError(path, "", f"cannot be read: {str(e).splitlines()[0][:200]}") from None
        shape = arrays["joints_cam"].shape
        if layout not in ("synth", "h36m"):
            raise DataError(path, "layout", f"expected 'synth' or 'h36m' joints, got {layout!r}")
        n = JOINT_SETS[layout].num_joints
        if len(shape) != 4 or shape[-2:] != (n, 3) or arrays["joints_2d"].shape != shape[:3] + (2,):
            raise DataError(path, "joints_cam", f"expected (F, P, {n}, 3) and joints_2d (F, P, {n}, 2) for "
                                                f"{layout} joints, got {shape} and {arrays['joints_2d'].shape}")
        self._j2d = convert(arrays["joints_2d"], layout, "h36m")  # (F, P, 17, 2) px
        vis = arrays["visibility"][..., None].astype(np.float64)  # (F, P, J, 1)
        self._vis = convert(vis, layout, "h36m")[..., 0] > 0  # (F, P, 17)
        self._j3d = convert(arrays["joints_cam"], layout, "h36m")  # (F, P, 17, 3) camera mm
        self._rows = {int(t): i for i, t in enumerate(arrays["track_ids"])}
        self.frames = shape[0]

    def _row(self, frame: int, track: int) -> int:
        row = self._rows.get(track)
        if row is None:
            raise DataError(self._npz_path, "track_ids", f"has no track {track} (annotated at frame {frame})")
        if frame >= self.frames:
            raise DataError(self._npz_path, "joints_cam", f"frame {frame} is beyond the file's {self.frames} frames")
        return row

    def keypoints(self, frame: int, track: int) -> np.ndarray | None:
        """(K, 3) x, y image pixels and the labeled flag, zeros where unlabeled (PoseTrack's convention); None
        where the track has no annotation."""
        if self.joint_set == "posetrack":
            kp = self._json.get((frame, track))
            return None if kp is None else kp.astype(np.float64)
        row = self._row(frame, track)
        xy = self._j2d[frame, row]
        if not np.isfinite(xy).all():
            raise DataError(self._npz_path, f"joints_2d[{frame}, {row}]", "NaN or infinite coordinates")
        vis = self._vis[frame, row, :, None]  # (K, 1)
        return np.concatenate([np.where(vis, xy, 0.0), vis], axis=1)  # (K, 3)

    def is_child(self, track: int) -> bool | None:
        """The 3D file's ``is_child`` of the track, None where it has none (an import's file)."""
        if self._is_child is None or track not in self._rows:
            return None
        return bool(self._is_child[self._rows[track]])

    def joints_3d(self, frame: int, track: int) -> np.ndarray:
        """(17, 3) h36m joints, camera mm."""
        row = self._row(frame, track)
        joints = self._j3d[frame, row]
        if not np.isfinite(joints).all():
            raise DataError(self._npz_path, f"joints_cam[{frame}, {row}]", "NaN or infinite coordinates")
        return joints


@dataclass
class _Plan:
    """One sample to cut: where its pixels come from and how they are transformed."""

    frame: FrameAnnotation
    track_id: int  # negative for a detection (-1 - its index in the frame), written as -1
    keypoints: np.ndarray  # (K, 3) anchor frame, image pixels + labeled flag (zeros for a detection)
    head_size: float
    det_score: float
    tube: list[int]
    context: list[int]
    aug: S.Augmentation
    affine: np.ndarray  # (2, 3) image -> crop, with the flip
    warp_affine: np.ndarray  # (2, 3) image -> un-flipped crop: the pixels are warped, then mirrored
    density: float  # crop pixels per image pixel

    @property
    def first(self) -> int:
        return min(self.tube + self.context)

    @property
    def last(self) -> int:
        return max(self.tube + self.context)


def without_ignored(kp: np.ndarray, regions: list[np.ndarray]) -> np.ndarray:
    """``kp`` (K, 3) with the joints inside any ignore region (polygons (N, 2) in image pixels) unlabeled: their
    target weight is 0, as PoseTrack's evaluation ignores them."""
    kp = kp.copy()
    for j in np.flatnonzero(kp[:, 2] > 0):
        point = (float(kp[j, 0]), float(kp[j, 1]))
        if any(len(r) >= 3 and cv2.pointPolygonTest(r.reshape(-1, 1, 2), point, False) >= 0 for r in regions):
            kp[j] = 0.0
    return kp


def _check_box(box: np.ndarray, width: int, height: int, path: str, where: str) -> None:
    if not np.isfinite(box).all() or box[2] <= 0 or box[3] <= 0:
        raise DataError(path, f"{where} bbox", f"zero or negative area: {box.tolist()}")
    if box[0] >= width or box[1] >= height or box[0] + box[2] <= 0 or box[1] + box[3] <= 0:
        raise DataError(path, f"{where} bbox", f"outside the {width}x{height} frame: {box.tolist()}")


def cut_clip_columns(
    clip: dict[str, Any], data: DataSpec, seed: int, epoch: int = 0, *, boxes: str = "gt",
    open_reader: Callable[..., Any] = open_video, decode_threads: int = 1, check_only: bool = False,
) -> dict[str, np.ndarray]:
    """Every sample of one clip as columns (arrays with one row per sample), decoding each needed frame once.

    Args:
        clip: an entry of :func:`load_clips`.
        data: the spec's ``DataSpec``.
        seed: experiment seed; augmentation draws derive from it, ``epoch`` and the sample's identity.
        epoch: the pass over the data (fresh augmentation per epoch when the train split is streamed).
        boxes: ``gt`` or a COCO-style detections file (one sample per detection scoring at least
            ``data.det_threshold``, with ``det_score``, zero targets and ``track_id`` -1).
        open_reader: ``open_video`` or a stand-in with its signature (tests count decoded frames with it).
        decode_threads: decord threads.
        check_only: decode every needed frame and check every annotation, but cut nothing; returns
            ``{"samples": (1,)}`` with the clip's sample count.

    Returns:
        The columns of :func:`sample_schema`, one row per sample.

    Raises:
        DataError: the clip cannot be read or holds an impossible annotation (naming the file at fault).
    """
    joint_set = JOINT_SETS[data.joint_set]
    detections = boxes != "gt"
    videos = read_posetrack18(clip["annotations"])
    if len(videos) != 1:
        raise DataError(clip["annotations"], "images", f"expected one video per file, found {len(videos)}")
    video = videos[0]
    poses = _Poses(clip, video, data.joint_set, data.points3d and not detections)
    labeled = [f for f in video.frames if f.is_labeled][:: data.frame_stride]
    width, height = probe_video(clip["video"], clip.get("frames"))

    # Candidates: (frame, track, box, anchor keypoints, head size, detection score)
    candidates = []
    if detections:
        image_ids = {f.image_id: f for f in labeled}
        for image_id, dets in read_detections(boxes).items():
            if image_id not in image_ids:
                continue  # a detections file covers many videos
            for k, (box, score) in enumerate(dets):
                if score < data.det_threshold:
                    continue
                _check_box(box, width, height, boxes, f"image {image_id} detection {k}")
                candidates.append((image_ids[image_id], -1 - k, box, np.zeros((joint_set.num_joints, 3)), 0.0, score))
        candidates.sort(key=lambda c: (c[0].frame_index, -c[1]))
    else:
        for frame in labeled:
            for person in frame.persons:
                where = f"image {frame.image_id} track {person.track_id}"
                if not np.isfinite(person.keypoints).all():
                    raise DataError(clip["annotations"], f"{where} keypoints", "NaN coordinates")
                if person.bbox is None:
                    continue
                if frame.frame_index >= poses.frames:
                    raise DataError(clip["annotations"], f"image {frame.image_id}", f"annotated frame "
                                    f"{frame.frame_index} is beyond the 3D file's {poses.frames} frames")
                kp = poses.keypoints(frame.frame_index, person.track_id)
                # Evaluation keeps every labeled person: one left out would count as missed in the AP.
                minimum = data.min_visible_joints if clip.get("split") == "train" else 1
                if kp is not None and frame.ignore_regions:
                    kp = without_ignored(kp, frame.ignore_regions)
                if kp is None or int((kp[:, 2] > 0).sum()) < minimum:
                    continue
                _check_box(np.asarray(person.bbox, np.float64), width, height, clip["annotations"], where)
                head = person.bbox_head
                head_size = float(0.6 * math.hypot(head[2], head[3])) if head is not None else 0.0
                candidates.append((frame, person.track_id, person.bbox, kp, head_size, 1.0))
    if data.max_samples_per_clip and len(candidates) > data.max_samples_per_clip:
        keep = np.linspace(0, len(candidates) - 1, data.max_samples_per_clip).round().astype(int)
        candidates = [candidates[i] for i in keep]

    size = tuple(data.input_size)
    augment = clip["split"] == "train" and not detections
    a = data.augment
    plans: list[_Plan] = []
    for frame, track, box, kp, head_size, score in candidates:
        crop = S.box_to_crop(np.asarray(box, np.float64), size, data.box_scale)
        aug = S.Augmentation()
        if augment:
            rng = np.random.default_rng(_sample_seed(seed, epoch, clip["name"], frame.frame_index, track))
            aug = S.Augmentation.draw(rng, a.flip, a.rotation, a.scale, a.color_jitter, a.probability)
        crop = S.CropTransform(crop.center, crop.size, rotation=aug.rotation, flip=aug.flip)
        plans.append(_Plan(
            frame=frame, track_id=track, keypoints=np.asarray(kp, np.float64), head_size=head_size,
            det_score=float(score), tube=[], context=[], aug=aug,
            affine=S.crop_affine(crop, size, scale=aug.scale),
            warp_affine=S.crop_affine(replace(crop, flip=False), size, scale=aug.scale),
            density=size[1] / (crop.size[0] * aug.scale),
        ))

    # Decode at 1/k of the video's size when no crop (and no context frame) samples the frame more finely (a
    # downscale first, rather than a sparse bilinear warp, so that small crops do not alias); whole factors k
    # only (the planar decoder's plane resize is an exact box average then; swscale's 3/4 costs more than 1/1).
    need = max([p.density for p in plans] + ([max(data.context_size[1] / width, data.context_size[0] / height)]
                                             if data.context_len else []), default=1.0)
    factor = min(MAX_DECODE_FACTOR, math.floor(1.0 / need)) if need > 0 else 1
    decode_size = (round(width / factor), round(height / factor)) if factor >= 2 else None
    numbering = {"frames": clip["frames"]} if clip.get("frames") else {}  # a frame folder's own numbering
    reader = open_reader(clip["video"], num_threads=decode_threads, size=decode_size, planar=True, **numbering)
    reader_frames = reader.num_frames
    for p in plans:
        if p.frame.frame_index >= reader_frames:
            raise DataError(clip["annotations"], f"image {p.frame.image_id}", f"annotated frame {p.frame.frame_index} "
                            f"is beyond the video's {reader_frames} frames ({clip['video']})")
        p.tube = tube_indices(p.frame.frame_index, data.window, data.interval, reader_frames, data.tube_anchor)
        p.context = context_indices(p.frame.frame_index, data.context_len, reader_frames)

    n = len(plans)
    cols = None if check_only else empty_columns(data, detections, n)
    flow = FlowEstimator(data.flow) if data.flow != "none" and not check_only else None
    order = sorted(range(n), key=lambda i: plans[i].last)
    # first frame any sample from position j of `order` on still needs (frames before it can be dropped)
    still_needed = np.minimum.accumulate([plans[i].first for i in order][::-1])[::-1] if n else []
    frames: dict[int, Any] = {}  # frame index -> decoded frame (PlanarFrame or RGB array)
    contexts: dict[int, np.ndarray] = {}  # frame index -> its context-size picture, made once per frame
    to_decoded: dict[tuple[int, int], np.ndarray] = {}  # decoded frame size -> image -> decoded pixels affine
    done = 0
    needed = sorted({i for p in plans for i in p.tube + p.context})
    for part, batch in iter_frames(reader, needed, DECODE_CHUNK):
        frames.update(zip(part, batch))
        while done < n and plans[order[done]].last <= part[-1]:
            i = order[done]
            if check_only:
                _check_targets(plans[i], data, poses)
            else:
                _cut(plans[i], i, frames, cols, data, joint_set, poses, flow, (width, height), to_decoded, contexts)
            done += 1
        if done < n:
            for idx in [k for k in frames if k < still_needed[done]]:
                del frames[idx]
                contexts.pop(idx, None)
    if check_only:
        return {"samples": np.array([n], np.int64)}
    cols["video"][:] = clip["name"]
    cols["frame_size"][:] = (width, height)
    for key in META_KEYS:
        cols[key][:] = clip["meta"].get(key, "")
    if "bone_lengths" in cols:  # L_skel's reference: the training mean of each person's body-scale group
        groups, default = clip.get("bone_groups", {}), clip.get("bone_group", "")
        for i, plan in enumerate(plans):
            cols["bone_lengths"][i] = lengths_for(groups, person_group(default, poses.is_child(plan.track_id)))
    return _as_strings(cols)


def _check_targets(plan: _Plan, data: DataSpec, poses: _Poses) -> None:
    """Look up every target a sample would read (a checking pass finds bad 3D files without cutting)."""
    if plan.track_id < 0:
        return
    which = plan.tube if data.targets == "all" else [plan.frame.frame_index]
    for index in which:
        poses.keypoints(index, plan.track_id)
        if data.points3d:
            poses.joints_3d(index, plan.track_id)


def _cut(plan: _Plan, i: int, frames: dict[int, np.ndarray], cols: dict[str, np.ndarray], data: DataSpec,
         joint_set: JointSet, poses: _Poses, flow: FlowEstimator | None, native: tuple[int, int],
         to_decoded: dict, contexts: dict[int, np.ndarray]) -> None:
    """Fill row ``i`` of ``cols`` with the sample of ``plan``; every frame it needs is in ``frames``.

    A :class:`~sportpose.data.video.PlanarFrame` is cropped from its YUV planes (only the crop's region is
    converted to RGB); an RGB frame is warped whole. Context pictures are made once per frame (``contexts``)
    and copied into every sample whose context clip holds that frame.
    """
    size = tuple(data.input_size)
    sample = frames[plan.tube[0]]
    decoded = (sample.shape[1], sample.shape[0])
    if decoded not in to_decoded:
        to_decoded[decoded] = S.invert_affine(decode_scale_affine(native, decoded))  # decoded -> image pixels
    warp = S.compose_affine(plan.warp_affine, to_decoded[decoded])  # decoded pixels -> un-flipped crop
    tube = cols["tube"][i]  # (T, H, W, 3), written in place
    for j, index in enumerate(plan.tube):
        frame = frames[index]
        if isinstance(frame, PlanarFrame):
            frame.crop(warp, size, out=tube[j])
        else:
            S.warp(frame, warp, size, out=tube[j])
    if flow is not None:
        flow.tube(tube, out=cols["flow"][i])  # (T-1, H, W, 2) on the un-flipped, un-jittered crops
    aug = plan.aug
    perm = joint_set.flip_permutation()
    if aug.flip:
        tube[:] = S.flip_images(tube)
        if flow is not None:
            cols["flow"][i] = S.flip_flow(cols["flow"][i])
    jittered = aug.apply_colour(tube)
    if jittered is not tube:
        tube[:] = jittered
    for j, index in enumerate(plan.context):
        if index not in contexts:
            frame, wh = frames[index], tuple(data.context_size[::-1])
            contexts[index] = (frame.resize(wh) if isinstance(frame, PlanarFrame) else
                               cv2.resize(frame, wh, interpolation=cv2.INTER_AREA))
        cols["context"][i, j] = contexts[index]

    detection = plan.track_id < 0
    if data.targets == "all":
        kps = [plan.keypoints if index == plan.frame.frame_index or detection else
               poses.keypoints(index, plan.track_id) for index in plan.tube]
        kp = np.stack([np.zeros_like(plan.keypoints) if k is None else k for k in kps])  # (T, K, 3) image px
    else:
        kp = plan.keypoints  # (K, 3)
    kp_crop = S.transform_points(kp[..., :2], plan.affine)  # (..., K, 2)
    vis = kp[..., 2] > 0  # (..., K)
    if aug.flip:
        kp_crop, vis = kp_crop[..., perm, :], vis[..., perm]
    kp_crop = np.where(vis[..., None], kp_crop, 0.0)
    cols["heatmaps"][i], cols["target_weight"][i] = S.gaussian_heatmaps(kp_crop, vis, size, data.heatmap_sigma)
    cols["keypoints"][i] = np.concatenate([kp_crop, vis[..., None]], axis=-1)
    if "joints_3d" in cols:
        which = plan.tube if data.targets == "all" else [plan.frame.frame_index]
        joints = np.stack([poses.joints_3d(index, plan.track_id) for index in which])  # (T or 1, J, 3) camera mm
        joints = joints - joints[:, JOINT_SETS["h36m"].root : JOINT_SETS["h36m"].root + 1]  # root-relative
        joints = S.joints_3d_to_crop(joints, aug.rotation, aug.flip, JOINT_SETS["h36m"].flip_permutation())
        cols["joints_3d"][i] = joints if data.targets == "all" else joints[0]
    cols["tube_frames"][i] = plan.tube
    cols["keypoints_image"][i] = plan.keypoints
    cols["affine"][i] = plan.affine
    cols["head_size"][i] = plan.head_size
    cols["frame"][i] = plan.frame.frame_index
    cols["track_id"][i] = plan.track_id if not detection else -1
    cols["image_id"][i] = plan.frame.image_id
    if "det_score" in cols:
        cols["det_score"][i] = plan.det_score


def cut_clip(clip: dict[str, Any], data: DataSpec, seed: int, epoch: int = 0, **kwargs: Any) -> list[dict[str, Any]]:
    """Every sample of one clip as rows (dicts); see :func:`cut_clip_columns` for the arguments.

    Returns:
        rows with the columns of :func:`sample_schema`: ``tube`` (T, H, W, 3) uint8, ``tube_frames`` (T,),
        ``heatmaps`` (K, H/4, W/4) or (T, K, H/4, W/4) float32, ``target_weight`` (K,) or (T, K),
        ``keypoints`` (K, 3) or (T, K, 3) crop pixels + labeled flag, ``keypoints_image`` (K, 3) image pixels
        + flag, ``affine`` (2, 3) image -> crop, ``frame_size`` (2,) the video's (width, height),
        ``head_size``, ``video``, ``frame``, ``track_id``, ``image_id``, the clip's metadata, and as asked
        ``context`` (L, Hc, Wc, 3) uint8, ``flow`` (T-1, H, W, 2) float32, ``joints_3d`` (J, 3) or (T, J, 3) mm,
        ``det_score``.
    """
    cols = cut_clip_columns(clip, data, seed, epoch, **kwargs)
    n = len(cols["frame"])
    rows = []
    for i in range(n):
        row = {}
        for name, values in cols.items():
            v = values[i]
            if name in STRING_COLUMNS:
                v = str(v)
            elif values.dtype == np.int64 and values.ndim == 1:
                v = int(v)
            row[name] = v
        rows.append(row)
    return rows


def _as_strings(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    for name in STRING_COLUMNS:
        if name in cols:
            cols[name] = cols[name].astype(str)
    return cols
