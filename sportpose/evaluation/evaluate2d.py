"""2D evaluation of a heatmap model on samples of the data pipeline: predictions in image pixels, PCKh, and
PoseTrack AP.

Predictions are decoded from the heatmaps (argmax with quarter-pixel shift, score = heatmap maximum), mapped
to crop pixels, then through the inverse crop affine to image pixels. PCKh uses PoseTrack's head size (0.6 x
head-box diagonal). AP is poseval's (:func:`sportpose.evaluation.metrics.posetrack_ap`) against the
clips' own PoseTrack18 annotation files, restricted to the frames that were evaluated (a frame the pipeline
did not sample, e.g. through ``data.frame_stride``, is not a missed frame). The boxes used are part of the
protocol and are reported with the numbers.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sportpose.data.formats import (FrameAnnotation, PersonAnnotation, VideoAnnotation, read_posetrack18,
                                    write_posetrack18)
from sportpose.data.samples import invert_affine, transform_points
from sportpose.evaluation.metrics import pckh, posetrack_ap
from sportpose.models.heatmaps import HEATMAP_STRIDE, decode_heatmaps, heatmap_to_crop
from sportpose.models.skeleton import JointSet

INFO_KEYS = ("video", "frame", "track_id", "image_id", "view", "blur", "occlusion", "body", "det_score")
STREAM_KEYS = ("heatmaps_spatial", "heatmaps_temporal", "heatmaps_context")


@dataclass
class Predictions2D:
    """Per-sample predictions and ground truth in image pixels."""

    pred: np.ndarray  # (N, K, 2)
    scores: np.ndarray  # (N, K)
    gt: np.ndarray  # (N, K, 2)
    visible: np.ndarray  # (N, K) bool
    head_size: np.ndarray  # (N,)
    info: dict[str, np.ndarray]  # video, frame, track_id, image_id and clip metadata per sample
    affine: np.ndarray | None = None  # (N, 2, 3) image -> crop
    streams: dict[str, np.ndarray] | None = None  # per-stream heatmaps (N, K, h, w) for late-fusion search

    def subset(self, mask: np.ndarray) -> "Predictions2D":
        return Predictions2D(self.pred[mask], self.scores[mask], self.gt[mask], self.visible[mask],
                             self.head_size[mask], {k: v[mask] for k, v in self.info.items()},
                             None if self.affine is None else self.affine[mask],
                             None if self.streams is None else {k: v[mask] for k, v in self.streams.items()})


def _flip_images(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-2)  # (..., H, W, 3): mirror W


def _forward_heatmaps(model: nn.Module, inputs: dict[str, torch.Tensor], flip_perm: np.ndarray | None
                      ) -> dict[str, torch.Tensor]:
    out = model(inputs)
    if flip_perm is None:
        return out
    flipped = model({k: _flip_images(v) if v.dtype == torch.uint8 else v for k, v in inputs.items()})
    perm = torch.as_tensor(flip_perm)
    merged = dict(out)
    for key in ("heatmaps",) + STREAM_KEYS:
        if key in out and key in flipped:
            back = flipped[key][:, perm].flip(-1)  # (B, K, h, w): joints swapped, mirrored back
            merged[key] = 0.5 * (out[key] + back)
    return merged


def decode_to_image(heatmaps: torch.Tensor, affines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps (B, K, h, w) to image pixels (B, K, 2) through each sample's inverse crop affine, and scores."""
    coords, scores = decode_heatmaps(heatmaps)
    crop = heatmap_to_crop(coords, HEATMAP_STRIDE).numpy()  # (B, K, 2)
    image = np.stack([transform_points(c, invert_affine(a)) for c, a in zip(crop, affines)])
    return image, scores.numpy()


@torch.no_grad()
def predict(model: nn.Module, batches: Iterable[dict[str, np.ndarray]], input_names: tuple[str, ...],
            flip_perm: np.ndarray | None = None, keep_streams: bool = False) -> Predictions2D:
    """Run ``model`` over numpy batches of samples (rows of the data pipeline).

    Args:
        flip_perm: the joint set's flip permutation for the flip test (average with the mirrored input), or None.
        keep_streams: keep per-stream heatmaps (MultiStream) for the late-fusion weight search.
    """
    model.eval()
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("pred", "scores", "gt", "visible", "head_size", "affine")}
    streams: dict[str, list[np.ndarray]] = {}
    info: dict[str, list[np.ndarray]] = {}
    for batch in batches:
        inputs = {k: torch.from_numpy(np.array(batch[k])) for k in input_names}  # writable copies
        res = _forward_heatmaps(model, inputs, flip_perm)
        image, scores = decode_to_image(res["heatmaps"], batch["affine"])
        out["pred"].append(image)
        out["scores"].append(scores)
        out["gt"].append(batch["keypoints_image"][..., :2])
        out["visible"].append(batch["keypoints_image"][..., 2] > 0)
        out["head_size"].append(batch["head_size"])
        out["affine"].append(batch["affine"])
        if keep_streams:
            for key in STREAM_KEYS:
                if key in res:
                    streams.setdefault(key, []).append(res[key].numpy())
        for key in INFO_KEYS:
            if key in batch:
                info.setdefault(key, []).append(np.asarray(batch[key]))
    if not out["pred"]:
        raise ValueError("no samples to evaluate")
    cat = {k: np.concatenate(v) for k, v in out.items()}
    return Predictions2D(cat["pred"], cat["scores"], cat["gt"], cat["visible"].astype(bool), cat["head_size"],
                         {k: np.concatenate(v) for k, v in info.items()}, cat["affine"],
                         {k: np.concatenate(v) for k, v in streams.items()} if keep_streams else None)


def pckh_score(p: Predictions2D, alpha: float = 0.5) -> dict[str, Any]:
    """PCKh@alpha in percent: ``mean`` over labeled joints of samples with a head box, and ``per_joint``."""
    has_head = p.head_size > 0
    return pckh(p.pred[has_head], p.gt[has_head], p.visible[has_head], p.head_size[has_head], alpha=alpha)


def to_videos(p: Predictions2D, joint_set: JointSet) -> list[VideoAnnotation]:
    """Predictions as PoseTrack18 videos (one person per sample, per-joint scores, the sample's track id)."""
    if joint_set.name != "posetrack":
        raise ValueError(f"PoseTrack AP needs the posetrack joint set, got {joint_set.name!r}")
    videos: dict[str, dict[int, FrameAnnotation]] = {}
    for i in range(len(p.pred)):
        video = str(p.info["video"][i])
        image_id = int(p.info["image_id"][i])
        frames = videos.setdefault(video, {})
        frame = frames.get(image_id)
        if frame is None:
            frame = frames[image_id] = FrameAnnotation(image_id=image_id, file_name="", frame_index=int(p.info["frame"][i]),
                                                       is_labeled=True, persons=[], ignore_regions=[])
        kp = np.concatenate([p.pred[i], np.ones((joint_set.num_joints, 1))], axis=1).astype(np.float32)
        score = float(p.info["det_score"][i]) if "det_score" in p.info else float(p.scores[i].mean())
        frame.persons.append(PersonAnnotation(track_id=int(p.info["track_id"][i]), keypoints=kp, bbox=None,
                                              bbox_head=None, scores=p.scores[i].astype(np.float64), score=score))
    return [VideoAnnotation(name=v, path="<predictions>", nframes=0,
                            frames=sorted(f.values(), key=lambda f: f.frame_index), categories=[])
            for v, f in sorted(videos.items())]


def write_predictions(p: Predictions2D, clips: list[dict[str, Any]], joint_set: JointSet, folder: Path) -> list[Path]:
    """The predictions as one PoseTrack 2018 file per video (``folder/<video>.json``), named and numbered as the
    ground truth (its image ids and file names), with per-joint scores: what poseval's ``--predictions`` reads."""
    folder.mkdir(parents=True, exist_ok=True)
    truth = {v.name: {f.image_id: f for f in v.frames} for v in ground_truth_for(p, clips)}
    written = []
    for video in to_videos(p, joint_set):
        for frame in video.frames:
            gt = truth.get(video.name, {}).get(frame.image_id)
            if gt is not None:
                frame.file_name = gt.file_name
        path = folder / f"{video.name}.json"
        write_posetrack18(video, path, predictions=True)
        written.append(path)
    return written


def ground_truth_for(p: Predictions2D, clips: list[dict[str, Any]]) -> list[VideoAnnotation]:
    """The clips' annotation files, restricted to the frames present in ``p``."""
    by_name = {c["name"]: c for c in clips}
    evaluated: dict[str, set[int]] = {}
    for video, image_id in zip(p.info["video"], p.info["image_id"]):
        evaluated.setdefault(str(video), set()).add(int(image_id))
    out = []
    for name in sorted(evaluated):
        video = read_posetrack18(by_name[name]["annotations"])[0]
        video.frames = [f for f in video.frames if f.image_id in evaluated[name]]
        out.append(video)
    return out


def ap_score(p: Predictions2D, clips: list[dict[str, Any]], joint_set: JointSet) -> dict[str, Any]:
    """PoseTrack AP (percent) of the predictions against the clips' ground truth."""
    return posetrack_ap(ground_truth_for(p, clips), to_videos(p, joint_set))


def with_heatmaps(p: Predictions2D, heatmaps: np.ndarray) -> Predictions2D:
    """The same samples decoded from other heatmaps (e.g. a re-weighted late fusion)."""
    image, scores = decode_to_image(torch.from_numpy(heatmaps), p.affine)
    return replace(p, pred=image, scores=scores)


def simplex_grid(step: float = 0.1, streams: int = 3) -> list[tuple[float, ...]]:
    """Every weight vector on the simplex with the given step (w >= 0, sum 1)."""
    n = int(round(1.0 / step))
    grid = []
    for combo in itertools.product(range(n + 1), repeat=streams - 1):
        last = n - sum(combo)
        if last >= 0:
            grid.append(tuple(c / n for c in combo) + (last / n,))
    return grid


def search_fusion_weights(p: Predictions2D, clips: list[dict[str, Any]], joint_set: JointSet, step: float = 0.1
                          ) -> tuple[tuple[float, float, float], float, list[dict[str, float]]]:
    """Late fusion's stream weights by grid search over the simplex, scored by AP on these (validation) samples.

    Returns:
        the best (w_s, w_t, w_c), its Total AP, and every grid point's result.
    """
    if p.streams is None or any(k not in p.streams for k in STREAM_KEYS):
        raise ValueError("per-stream heatmaps are needed: predict(..., keep_streams=True) on a three-stream model")
    gt = ground_truth_for(p, clips)
    hs, ht, hc = (p.streams[k] for k in STREAM_KEYS)
    table = []
    for w in simplex_grid(step):
        fused = w[0] * hs + w[1] * ht + w[2] * hc
        total = posetrack_ap(gt, to_videos(with_heatmaps(p, fused), joint_set))["groups"]["Total"]
        table.append({"w_s": w[0], "w_t": w[1], "w_c": w[2], "ap": float(total)})
    best = max(table, key=lambda r: (r["ap"], -abs(r["w_s"] - 1 / 3)))
    return (best["w_s"], best["w_t"], best["w_c"]), best["ap"], table


def save_stream_cache(p: Predictions2D, clips: list[dict[str, Any]], path: str | Path) -> Path:
    """Cache per-stream validation heatmaps so that late-fusion weights can be searched without training.

    The npz holds the three streams' heatmaps (N, K, h, w) float16, the crop affines, the sample identities
    and the annotation files of the clips they came from.
    """
    if p.streams is None or any(k not in p.streams for k in STREAM_KEYS):
        raise ValueError("per-stream heatmaps are needed: predict(..., keep_streams=True) on a three-stream model")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = sorted({str(v) for v in p.info["video"]})
    annotations = {c["name"]: c["annotations"] for c in clips if c["name"] in names}
    np.savez_compressed(
        path, **{k: v.astype(np.float16) for k, v in p.streams.items()},
        pred=p.pred, scores=p.scores, gt=p.gt, visible=p.visible, head_size=p.head_size, affine=p.affine,
        **{f"info_{k}": (np.asarray(v).astype(str) if np.asarray(v).dtype == object else np.asarray(v))
           for k, v in p.info.items()},  # strings as unicode arrays, so that loading needs no pickle
        clips=np.array(json.dumps([{"name": n, "annotations": a} for n, a in annotations.items()])),
    )
    return path


def load_stream_cache(path: str | Path) -> tuple[Predictions2D, list[dict[str, Any]]]:
    """The predictions and clips written by :func:`save_stream_cache` (plain arrays; no pickles)."""
    with np.load(path, allow_pickle=False) as z:
        info = {k[len("info_"):]: z[k] for k in z.files if k.startswith("info_")}
        streams = {k: z[k].astype(np.float32) for k in STREAM_KEYS}
        p = Predictions2D(z["pred"], z["scores"], z["gt"], z["visible"], z["head_size"], info, z["affine"], streams)
        clips = json.loads(str(z["clips"]))
    return p, clips
