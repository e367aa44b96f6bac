"""What each kind of study of :mod:`sportpose.pipelines.reproduce.study` computes per row.

Each function takes the study's :class:`~sportpose.pipelines.reproduce.study.Runner`, the MLflow parent run and the
report folder, and returns one dict per row of the study: ``figures`` (what the columns' keys look up),
``protocol`` (split, seed, boxes, flip test of the evaluation) and anything else worth keeping in
``results.json``. Skipped rows get an empty dict.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sportpose.data.dataset import numpy_batches
from sportpose.evaluation.complexity import complexity as count_complexity
from sportpose.evaluation.evaluate2d import (
    STREAM_KEYS,
    Predictions2D,
    ap_score,
    load_stream_cache,
    predict,
    search_fusion_weights,
    with_heatmaps,
)
from sportpose.evaluation.similarity import similarity_on_clips
from sportpose.models.skeleton import JOINT_SETS
from sportpose.models.stsp import complexity_inputs
from sportpose.spec.experiment import ExperimentSpec
from sportpose.training.stage import stage_weights
from sportpose.viz.plots import pyplot

PROTOCOL_KEYS = ("split", "seed", "boxes", "flip_test", "samples")


def _protocol(evaluation: dict[str, Any]) -> dict[str, Any]:
    return {k: evaluation[k] for k in PROTOCOL_KEYS if k in evaluation}


def variants(runner, parent_id: str, out: Path) -> list[dict[str, Any]]:
    """Every row trained (stages in ``reuse`` from the base run) and evaluated on the held-out split."""
    results = []
    for i, (row, spec) in enumerate(runner.study.rows):
        if spec is None:
            results.append({})
            continue
        runner.log(f"[{i + 1}/{len(runner.study.rows)}] {row.label}")
        r = runner.train_row(row, spec, parent_id)
        ev = r["evaluation"]
        results.append({"figures": ev, "protocol": _protocol(ev), "overrides": list(row.overrides),
                        "reused": r["reused"], "checkpoint": r["checkpoint"]})
    return results


def views(runner, parent_id: str, out: Path) -> list[dict[str, Any]]:
    """Rows trained as :func:`variants` (on the base spec's views), then tested zero-shot on a SynthCourt set
    of the study's views (another seed, every split unseen): AP per view group and over all of them."""
    results = variants(runner, parent_id, out)
    zero = runner.study.spec.zero_shot
    for (row, spec), result in zip(runner.study.rows, results):
        if spec is None:
            continue
        test = replace(spec, data=replace(spec.data, source="synthcourt", root=f"{spec.data.root}-zeroshot-{'-'.join(zero)}",
                                          synth=replace(spec.data.synth, views=tuple(zero),
                                                        seed=spec.data.synth.seed + 1000)))
        datasets, clips = runner.data(test)
        model_spec = spec.model
        if spec.model.kind == "multistream" and "fusion_weights" in result["figures"]:  # the row's searched weights
            model_spec = replace(model_spec, fusion_weights=tuple(result["figures"]["fusion_weights"]))
        joint_set = JOINT_SETS[spec.data.joint_set]
        model = replace(spec, model=model_spec).build_model()
        model.load_state_dict(stage_weights(result["checkpoint"]))
        names = tuple(model.input_names())
        parts = [predict(model, numpy_batches(datasets[s], spec.evaluate.batch_size),
                         names) for s in ("train", "val", "test")]
        p = _concat(parts)
        by_view = {"all": float(ap_score(p, clips, joint_set)["groups"]["Total"])}
        for view in zero:
            mask = p.info["view"] == view
            by_view[view] = float(ap_score(p.subset(mask), clips, joint_set)["groups"]["Total"]) if mask.any() \
                else float("nan")
        runner.log(f"{row.label}: zero-shot AP " + ", ".join(f"{k} {v:.1f}" for k, v in by_view.items()))
        result["figures"] = {**result["figures"], "views": by_view}
        result["zero_shot_samples"] = {v: int((p.info["view"] == v).sum()) for v in zero}
    return results


def _concat(parts: list[Predictions2D]) -> Predictions2D:
    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(p, name) for p in parts])

    info = {k: np.concatenate([p.info[k] for p in parts]) for k in parts[0].info}
    return Predictions2D(cat("pred"), cat("scores"), cat("gt"), cat("visible"), cat("head_size"), info, cat("affine"))


def groups(runner, parent_id: str, out: Path) -> list[dict[str, Any]]:
    """The base run's 3D figures per group value (e.g. body child/adult): the mean over the clip groups
    (view/body) holding that value, as the headline averages over groups (SPEC §7)."""
    ev = runner.base_evaluation()
    keys = ev["group_keys"]
    key = runner.study.spec.group_key
    if key not in keys:
        raise ValueError(f"the base run's groups are by {keys}, not by {key!r}")
    position = keys.index(key)
    results = []
    for row, _ in runner.study.rows:
        members = {g: v for g, v in ev["groups"].items() if g.split("/")[position] == row.select}
        figures: dict[str, Any] = {}
        for metric in ("mpjpe", "p_mpjpe", "pck3d", "auc3d", "ts_mm_per_frame2", "ts_mm_per_s2", "samples"):
            values = [v[metric] for v in members.values() if v.get(metric) is not None and np.isfinite(v[metric])]
            figures[metric] = float(np.mean(values)) if values and metric != "samples" else float(sum(values))
        runner.log(f"{row.label}: {len(members)} clip groups {sorted(members)}, {int(figures['samples'])} samples")
        results.append({"figures": figures, "protocol": _protocol(ev), "groups": sorted(members)})
    return results


def complexity(runner, parent_id: str, out: Path) -> list[dict[str, Any]]:
    """Parameters, GMACs and batch-1 CPU latency of each row's model (untrained: only the shapes matter)."""
    scale = runner.study.scale
    runs = 1 if scale == "tiny" else 5
    results = []
    for row, spec in runner.study.rows:
        if spec is None:
            results.append({})
            continue
        torch.manual_seed(spec.seed)
        model = spec.build_model()  # untrained: counting needs only the shapes (no pretrained file is read)
        figures = count_complexity(model, _complexity_inputs(spec), warmup=0 if scale == "tiny" else 1, runs=runs)
        runner.log(f"{row.label}: {figures['params_m']:.2f}M params, {figures['gmacs']:.2f} GMACs, "
                   f"{figures['fps']:.1f} FPS (CPU, batch 1)")
        results.append({"figures": figures, "protocol": {"split": "-", "seed": spec.seed, "boxes": "-",
                                                         "flip_test": False},
                        "threads": torch.get_num_threads()})
    return results


def _complexity_inputs(spec: ExperimentSpec) -> dict[str, Any]:
    m = spec.model
    if m.kind == "stsp":
        return complexity_inputs(m, 1, tuple(spec.data.input_size))
    h, w = spec.data.input_size
    inputs = {"tube": torch.randint(0, 256, (1, spec.data.window, h, w, 3), dtype=torch.uint8)}
    if spec.data.context_len:
        hc, wc = spec.data.context_size
        inputs["context"] = torch.randint(0, 256, (1, spec.data.context_len, hc, wc, 3), dtype=torch.uint8)
    return inputs


def fusion_weights(runner, parent_id: str, out: Path) -> list[dict[str, Any]]:
    """Late-fusion weights over the simplex on the base run's cached per-stream validation heatmaps, and the
    paper's three surfaces (MAP over two weights, the third = 1 - the two) as ``reports/NAME/<figure>``."""
    ev = runner.base_evaluation()
    if "stream_cache" not in ev:
        raise ValueError("the base run cached no per-stream heatmaps (a three-stream MultiStream run does)")
    p, clips = load_stream_cache(ev["stream_cache"])
    best, best_ap, grid = search_fusion_weights(p, clips, JOINT_SETS["posetrack"])
    runner.log(f"fusion weights: {len(grid)} grid points; best (w_s, w_t, w_c) = {best}, val AP {best_ap:.1f}")
    points = {(round(g["w_s"], 2), round(g["w_t"], 2), round(g["w_c"], 2)): g["ap"] for g in grid}
    named = {"spatial": (1.0, 0.0, 0.0), "temporal": (0.0, 1.0, 0.0), "context": (0.0, 0.0, 1.0),
             "uniform": None, "best": tuple(round(w, 2) for w in best)}
    results = []
    for row, _ in runner.study.rows:
        key = row.select or "best"
        if key == "uniform":  # the simplex grid has no exact 1/3: score it directly
            fused = sum(p.streams[k] for k in STREAM_KEYS) / 3.0
            w, ap = (1 / 3, 1 / 3, 1 / 3), float(ap_score(with_heatmaps(p, fused), clips, JOINT_SETS["posetrack"])["groups"]["Total"])
        else:
            w = named[key]
            ap = points[w]
        results.append({"figures": {"ap": ap, "w_s": w[0], "w_t": w[1], "w_c": w[2]},
                        "protocol": {"split": "val (cached stream heatmaps)", "seed": ev.get("seed"),
                                     "boxes": ev.get("boxes"), "flip_test": ev.get("flip_test")}})
    if runner.study.spec.figure:
        _plot_weight_surfaces(grid, out / runner.study.spec.figure, runner.study.spec.caption)
    (out / "grid.json").write_text(json.dumps(grid))
    return results


def _plot_weight_surfaces(grid: list[dict[str, float]], path: Path, title: str) -> None:
    plt = pyplot()
    ws, wt, wc = (np.array([g[k] for g in grid]) for k in ("w_s", "w_t", "w_c"))
    ap = np.array([g["ap"] for g in grid])
    fig = plt.figure(figsize=(15, 4.6))
    for i, (x, y, xl, yl) in enumerate(((ws, wt, "spatial weight w_s", "temporal weight w_t"),
                                        (ws, wc, "spatial weight w_s", "contextual weight w_c"),
                                        (wt, wc, "temporal weight w_t", "contextual weight w_c"))):
        ax = fig.add_subplot(1, 3, i + 1, projection="3d")
        ax.plot_trisurf(x, y, ap, cmap="viridis", edgecolor="none", alpha=0.9)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.set_zlabel("val MAP (%)")
    fig.suptitle(f"{title} (the third weight = 1 - the other two)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def similarity(runner, parent_id: str, out: Path) -> list[dict[str, Any]]:
    """Fig. 6: per-stream feature similarity between frames t and t+k of the same person, for the base run's
    final model on held-out clips (:func:`sportpose.evaluation.similarity.similarity_on_clips`: every
    annotated frame an anchor, ground-truth boxes); one row per stream, one column per k (frames)."""
    spec = runner.study.base
    ev = runner.base_evaluation()
    if spec.model.kind == "multistream" and "fusion_weights" in ev:
        spec = replace(spec, model=replace(spec.model, fusion_weights=tuple(ev["fusion_weights"])))
    model = spec.build_model()
    model.load_state_dict(stage_weights(runner.base_final_checkpoint()))
    _, clips = runner.data(spec)
    held_out = [c for c in clips if c["split"] == spec.evaluate.split]
    lags = runner.study.spec.lags
    result = similarity_on_clips(model, spec, held_out, max_clips=8, batch_size=spec.evaluate.batch_size, gaps=lags)
    sims = result["curves"]
    for stream, values in sims.items():
        runner.log(f"{stream}: " + ", ".join(f"k={k} {v:.3f}" for k, v in values.items()))
    results = []
    for row, _ in runner.study.rows:
        values = sims.get(row.select or "", {})
        results.append({"figures": {f"k{k}": v for k, v in values.items()},
                        "protocol": {**_protocol(ev), "samples": result["pairs"]}, "note": result["pairs_note"]})
    if runner.study.spec.figure:
        _plot_similarity(sims, out / runner.study.spec.figure, runner.study.spec.caption)
    return results


def _plot_similarity(sims: dict[str, dict[int, float]], path: Path, title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for stream, values in sims.items():
        ks = sorted(values)
        ax.plot(ks, [values[k] for k in ks], marker="o", label=f"{stream} stream")
    ax.set_xlabel("time interval (frames)")
    ax.set_ylabel("mean cosine similarity of features")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


KINDS: dict[str, Callable[..., list[dict[str, Any]]]] = {
    "variants": variants, "views": views, "groups": groups, "complexity": complexity,
    "fusion_weights": fusion_weights, "similarity": similarity,
}
