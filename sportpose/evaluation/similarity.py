"""Feature similarity over time, the 2D paper's Fig. 6: how much each stream's features of a person change
between frames t and t+k, k ∈ {1, 2, 4, 8, 16}.

For every person track of the clips, a sample is cut at every annotated frame (ground-truth boxes, the data
pipeline's :func:`~sportpose.data.dataset.cut_clip_columns`, so each frame's crop follows the
person); the model's features of each sample are flattened, and the cosine similarity of the features of the
same track at frames t and t+k is averaged over every such pair of every track. Features per model:

- MultiStream: ``feat_spatial`` (the spatial stream's map before its head, 64 x H/4 x W/4), ``feat_temporal``
  (the temporal stream's, after the TCM) and ``context_vector`` (the context stream's c), as its fused
  forward returns them, for the streams it has;
- SimpleBaseline: its backbone's last feature map (C5);
- STSP-Net: its HRNet backbone's map (stride 4) of the current (last) tube frame, before the motion
  weighting.

The paper reads its figure as: temporal features change most with k (motion), spatial features stay
stable, context features stay high. Whether a trained model here shows the same is what the curve says.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from sportpose.data.tubes import cut_clip_columns
from sportpose.evaluation.tables import md_table
from sportpose.spec.experiment import ExperimentSpec

GAPS = (1, 2, 4, 8, 16)
STREAM_FEATURES = {"spatial": "feat_spatial", "temporal": "feat_temporal", "context": "context_vector"}


def stream_features(model: nn.Module, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-sample feature vectors of each stream (MultiStream) or of the backbone (other models).

    Returns:
        stream name -> (B, D) float.
    """
    kind = getattr(model.config, "kind", "")
    with torch.no_grad():
        if kind == "multistream":
            out = model(inputs, task="fused")
            return {name: out[key].flatten(1) for name, key in STREAM_FEATURES.items() if key in out}
        captured: dict[str, torch.Tensor] = {}
        backbone = model.epe.backbone if kind == "stsp" else model.backbone

        def hook(_module, _inputs, output):
            captured["x"] = output[-1] if isinstance(output, (list, tuple)) else output

        handle = backbone.register_forward_hook(hook)
        try:
            model(inputs)
        finally:
            handle.remove()
        x = captured["x"]  # (B, C, h, w), or (B·T, C, h, w) for STSP-Net
        if kind == "stsp":
            b = inputs["tube"].shape[0]
            x = x.reshape(b, -1, *x.shape[1:])[:, -1]  # (B, C, h, w): the current frame
        return {"backbone": x.flatten(1)}


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors (0 when either is zero)."""
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(np.dot(a, b) / (na * nb)) if na > 0 and nb > 0 else 0.0


def feature_similarity(model: nn.Module, batches: Iterable[dict[str, np.ndarray]], gaps: tuple[int, ...] = GAPS
                       ) -> dict[str, Any]:
    """Mean cosine similarity of each stream's features between frames t and t+k of the same track.

    Args:
        model: the model, in eval mode.
        batches: numpy batches of samples with the model's inputs and ``video``, ``track_id``, ``frame``.
        gaps: the frame gaps k.

    Returns:
        ``{"gaps": [...], "curves": {stream: {k: mean similarity}}, "pairs": {k: pairs averaged},
        "tracks": number of tracks}``; a gap without any pair is left out of the curves.
    """
    model.eval()
    names = tuple(model.input_names())
    feats: dict[str, list[np.ndarray]] = {}
    keys: list[tuple[str, int]] = []
    frames: list[int] = []
    for batch in batches:
        inputs = {k: torch.from_numpy(np.array(batch[k])) for k in names}
        for stream, value in stream_features(model, inputs).items():
            feats.setdefault(stream, []).append(value.float().numpy())
        keys += [(str(v), int(t)) for v, t in zip(batch["video"], batch["track_id"])]
        frames += [int(f) for f in batch["frame"]]
    if not keys:
        raise ValueError("no samples to compute feature similarity on")
    stacked = {s: np.concatenate(v) for s, v in feats.items()}  # stream -> (N, D)
    index = {(k, f): i for i, (k, f) in enumerate(zip(keys, frames))}
    curves: dict[str, dict[int, float]] = {s: {} for s in stacked}
    pairs: dict[int, int] = {}
    for k in gaps:
        found = [(i, index[(key, f + k)]) for (key, f), i in index.items() if (key, f + k) in index]
        if not found:
            continue
        pairs[k] = len(found)
        for stream, x in stacked.items():
            curves[stream][k] = float(np.mean([cosine(x[i], x[j]) for i, j in found]))
    return {"gaps": [k for k in gaps if k in pairs], "curves": curves, "pairs": pairs, "tracks": len(set(keys))}


def similarity_on_clips(model: nn.Module, spec: ExperimentSpec, clips: list[dict[str, Any]], max_clips: int = 4,
                        batch_size: int = 32, gaps: tuple[int, ...] = GAPS) -> dict[str, Any]:
    """:func:`feature_similarity` on samples cut at every annotated frame of the first ``max_clips`` clips.

    Args:
        model: the model.
        spec: the experiment spec whose data section cuts the samples (frame stride 1, no cap, GT boxes).
        clips: clips of the evaluated split (:func:`~sportpose.data.dataset.load_clips` entries).
    """

    data = replace(spec.data, frame_stride=1, max_samples_per_clip=None)
    chosen = clips[:max_clips]

    def batches():
        for clip in chosen:
            cols = cut_clip_columns(clip, data, spec.seed)
            for start in range(0, len(cols["frame"]), batch_size):
                yield {k: v[start : start + batch_size] for k, v in cols.items()}

    result = feature_similarity(model, batches(), gaps)
    result["clips"] = [c["name"] for c in chosen]
    result["pairs_note"] = (f"Cosine similarity of flattened features of the same person at frames t and t+k, "
                            f"averaged over {result['tracks']} tracks of {len(chosen)} clips "
                            f"({', '.join(result['clips'])}); every annotated frame is an anchor, ground-truth "
                            f"boxes. Pairs per gap: " + ", ".join(f"k={k}: {n}" for k, n in result["pairs"].items()))
    return result


def similarity_table(similarity: dict[str, Any]) -> str:
    """The curves as a markdown table: one row per stream, one column per gap k."""
    gaps = similarity["gaps"]
    rows = [[stream, *[f"{curve[k]:.3f}" if k in curve else "-" for k in gaps]]
            for stream, curve in similarity["curves"].items()]
    return md_table(["features", *[f"k={k}" for k in gaps]], rows)
