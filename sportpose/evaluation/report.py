"""The evaluation report: the numbers and pictures the papers print, from one model's predictions (SPEC §7).

:func:`report_2d` and :func:`report_3d` take predictions already made (``evaluate2d.predict`` /
``evaluate3d.predict``) and write into a folder:

- ``report.md``: the protocol (split, boxes, flip test, seed, samples) next to every table;
  2D: PoseTrack AP per group (Head … Total, :func:`~sportpose.evaluation.metrics.posetrack_ap`,
  poseval's) and per joint, PCKh per joint; 3D: MPJPE, P-MPJPE, PCK3D, AUC, TS per clip group, averaged as
  :func:`~sportpose.evaluation.evaluate3d.evaluate` does, pooled, and without TMP;
  breakdowns by camera view, blur level, occlusion level and child/adult (the clips' metadata), first in the
  layout of the 2D paper's Table 11 (one row per model, one column per level, then the overall figure) and
  then per level with every group; the complexity row (parameters, GMACs, FPS at batch 1 on this machine);
  the feature similarity over time when computed;
- PNGs: ``per_joint.png`` (AP, or MPJPE, per joint), ``breakdown_<factor>.png``, ``best_frames.png`` and
  ``worst_frames.png`` (2D: frames with the prediction in the side colours over the ground truth in white;
  3D: skeletons, prediction over the ground truth in grey), ``similarity.png`` when given, and
  ``learning_curves.png`` (:func:`write_learning_curves`) when the stages' histories are given;
- ``report.html``: the same report as one self-contained page, its PNGs embedded (what MLflow's artifact
  viewer shows with its pictures; :mod:`sportpose.viz.html`);
- ``metrics.json``: every number of the report. Its top-level keys follow the pipeline's
  ``evaluation/metrics.json`` (``ap``, ``ap_groups``, ``ap_per_joint``, ``pckh``, ``mpjpe``, … ``split``,
  ``boxes``, ``flip_test``, ``seed``, ``samples``), so ``sportpose compare`` reads both.

No metric is computed here: every number comes from the metric functions of ``metrics.py``, ``evaluate2d.py``
and ``evaluate3d.py``, on the predictions (or a subset of them for a breakdown level). Best and worst frames
are ranked by per-frame PCKh@alpha with ground-truth boxes (each sample is its own person), by per-frame AP
with detected boxes, and by per-sample MPJPE in 3D; the 2D ones are taken from as many clips as possible.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sportpose.data.formats import read_posetrack18
from sportpose.data.tubes import META_KEYS
from sportpose.data.video import open_video, read_frames
from sportpose.evaluation import evaluate3d
from sportpose.evaluation import metrics as M
from sportpose.evaluation.evaluate2d import (
    Predictions2D,
    ap_score,
    ground_truth_for,
    pckh_score,
    to_videos,
    with_heatmaps,
)
from sportpose.evaluation.evaluate3d import Predictions3D
from sportpose.evaluation.similarity import similarity_table
from sportpose.evaluation.tables import fmt as _fmt
from sportpose.evaluation.tables import md_table
from sportpose.models.skeleton import H36M, JointSet
from sportpose.viz import draw, plots
from sportpose.viz.html import write_markdown_page

AP_COLUMNS = (*M.AP_GROUPS, "Total")
FACTORS = {"view": "camera view", "blur": "blur level", "occlusion": "occlusion level", "body": "child/adult"}
assert set(FACTORS) == set(META_KEYS)
METRICS_3D = (("mpjpe", "MPJPE (mm)", "{:.1f}"), ("p_mpjpe", "P-MPJPE (mm)", "{:.1f}"), ("pck3d", "PCK3D (%)", "{:.1f}"),
              ("auc3d", "AUC (%)", "{:.1f}"), ("ts_mm_per_frame2", "TS (mm/frame²)", "{:.2f}"))
GT_COLOURS = {"left": (255, 255, 255), "right": (255, 255, 255), "centre": (255, 255, 255)}


@dataclass(frozen=True)
class Protocol:
    """What the numbers were measured under; printed with every table (SPEC §7)."""

    split: str
    boxes: str  # "ground truth" or "detections (<file>)"
    flip_test: bool
    seed: int
    samples: int
    clips: int
    skipped: int = 0  # clips of the split that could not be read
    data: str = ""  # the data the split came from (spec name and root)

    def line(self) -> str:
        skipped = f", {self.skipped} skipped" if self.skipped else ""
        return (f"split {self.split} · boxes {self.boxes} · flip test {'on' if self.flip_test else 'off'} · "
                f"seed {self.seed} · {self.samples} samples from {self.clips} clips{skipped}")


def _levels(info: dict[str, np.ndarray], factor: str) -> list[str]:
    if factor not in info:
        return []
    values = sorted({str(v) for v in info[factor]} - {""})
    return values


def _clean(value: Any) -> Any:
    """JSON-safe: numpy scalars and arrays as Python, NaN as None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _header(title: str, model: dict[str, Any], protocol: Protocol) -> list[str]:
    lines = [f"# Evaluation: {model.get('label', model.get('source', 'model'))}", ""]
    facts = [f"model `{model.get('source', '')}`"]
    if model.get("registry_run_id"):
        facts.append(f"source run `{model['registry_run_id']}`")
    facts.append(f"kind {model.get('kind', '')}")
    if protocol.data:
        facts.append(f"data {protocol.data}")
    lines += ["- " + " · ".join(facts), f"- protocol: {protocol.line()}", "", f"## {title}", ""]
    return lines


def _complexity_section(complexity: dict[str, Any] | None) -> list[str]:
    if not complexity:
        return []
    row = [_fmt(complexity.get("params_m"), "{:.3g}"), _fmt(complexity.get("gmacs"), "{:.3g}"),
           _fmt(complexity.get("gflops"), "{:.3g}"), _fmt(complexity.get("latency_ms"), "{:.1f}"),
           _fmt(complexity.get("fps"), "{:.1f}"), str(complexity.get("machine", ""))]
    return ["## Complexity", "",
            md_table(["params (M)", "GMACs", "GFLOPs", "latency (ms, batch 1)", "FPS (batch 1)", "machine"], [row]), "",
            "GMACs = 10⁹ multiply-accumulates, GFLOPs = 2 × GMACs (convolutions and matrix products, "
            "`torch.utils.flop_counter`); latency is the median of timed passes at batch 1 on this machine.", ""]


def _similarity_section(similarity: dict[str, Any] | None, out: Path) -> list[str]:
    if not similarity:
        return []

    plots.line_chart(similarity["curves"], out / "similarity.png",
                     "feature similarity over time (cosine, frames t and t+k)", "frame gap k",
                     "mean cosine similarity")
    return ["## Feature similarity over time (2D paper, Fig. 6)", "", similarity_table(similarity), "",
            f"{similarity['pairs_note']}", "", "![similarity](similarity.png)", ""]


# -- 2D -----------------------------------------------------------------------------------------------------


def write_learning_curves(stages: dict[str, dict[str, Any]] | None, out: str | Path) -> list[str]:
    """``learning_curves.png`` in ``out``: each training stage's losses and validation metric per epoch, the
    epoch it handed on starred; returns the report's markdown section ([] without stages).

    Args:
        stages: stage -> ``{"history": StageResult.history, "metric": name, "mode": "min" | "max"}``, in
            training order (the pipeline's stage results; a model evaluated on its own has none).
    """
    stages = {name: s for name, s in (stages or {}).items() if s.get("history")}
    if not stages:
        return []
    out = Path(out)
    plots.learning_curves({n: s["history"] for n, s in stages.items()},
                          {n: (s["metric"], s["mode"]) for n, s in stages.items()}, out / "learning_curves.png",
                          "Training stages: losses and the validation metric per epoch")
    rows = []
    for name, s in stages.items():
        values = [(h.get(s["metric"], float("nan")), int(h["epoch"])) for h in s["history"]]
        values = [(v, e) for v, e in values if v == v]
        best = (max if s["mode"] == "max" else min)(values, key=lambda ve: ve[0]) if values else (float("nan"), -1)
        rows.append([name, s["metric"], str(len(s["history"])), str(best[1] + 1) if best[1] >= 0 else "-",
                     _fmt(best[0], "{:.4g}")])
    return ["## Training stages", "", "Each stage's output is its best epoch by the stage metric (SPEC §6).", "",
            md_table(["Stage", "Metric", "Epochs", "Best epoch", "Best value"], rows), "",
            "![learning curves](learning_curves.png)", ""]


def _frame_keys(p: Predictions2D) -> list[tuple[str, int]]:
    return [(str(v), int(i)) for v, i in zip(p.info["video"], p.info["image_id"])]


def frame_scores(p: Predictions2D, clips: list[dict[str, Any]], joint_set: JointSet, gt_boxes: bool,
                 alpha: float = 0.5) -> dict[tuple[str, int], float]:
    """Per evaluated frame: PCKh@alpha of its samples (ground-truth boxes: each sample is its own person), or
    its PoseTrack AP Total (detected boxes), both in percent."""
    keys = np.array([f"{v}\x00{i}" for v, i in _frame_keys(p)])
    out = {}
    for key in sorted(set(keys)):
        mask = keys == key
        video, image_id = key.split("\x00")
        sub = p.subset(mask)
        if gt_boxes:
            if not (sub.visible.any() and (sub.head_size > 0).any()):
                continue
            score = pckh_score(sub, alpha)["mean"]
        else:
            gt = ground_truth_for(sub, clips)
            if not any(f.persons for v in gt for f in v.frames):
                continue
            score = M.posetrack_ap(gt, to_videos(sub, joint_set))["groups"]["Total"]
        if math.isfinite(score):
            out[(video, int(image_id))] = float(score)
    return out


def _overlay_frames_2d(p: Predictions2D, clips: list[dict[str, Any]], joint_set: JointSet,
                       chosen: list[tuple[tuple[str, int], float]], label: str) -> np.ndarray | None:
    """A contact sheet of the chosen frames: ground truth in white, predictions in the side colours."""

    by_name = {c["name"]: c for c in clips}
    tiles, captions = [], []
    keys = _frame_keys(p)
    for (video, image_id), score in chosen:
        clip = by_name.get(video)
        if clip is None or not clip.get("video") or not Path(clip["video"]).is_file():
            continue
        (annotation,) = read_posetrack18(clip["annotations"])
        frame = next(f for f in annotation.frames if f.image_id == image_id)
        image = read_frames(open_video(clip["video"], frames=clip.get("frames")), [frame.frame_index])[frame.frame_index].copy()
        for person in frame.persons:
            kp = np.asarray(person.keypoints, np.float64)
            labeled = ~(kp == 0).all(axis=1)
            draw.draw_skeleton(image, np.concatenate([kp[:, :2], labeled[:, None]], axis=1), joint_set,
                               colours=GT_COLOURS, thickness=1)
        for i in [i for i, k in enumerate(keys) if k == (video, image_id)]:
            draw.draw_skeleton(image, p.pred[i], joint_set)
        tiles.append(image)
        captions.append(f"{video} f{frame.frame_index}: {label} {score:.1f}")
    if not tiles:
        return None
    draw.draw_legend(tiles[0])
    return draw.contact_sheet(tiles, cols=min(4, len(tiles)), captions=captions, tile_width=min(480, tiles[0].shape[1]))


def spread(ranked: list[tuple[tuple[str, int], float]], n: int) -> list[tuple[tuple[str, int], float]]:
    """The first ``n`` of ``ranked`` frames, taking one frame per video before a second of any (so that the best
    frames show several clips, not one clip's neighbouring frames), in rank order."""
    chosen, seen = [], set()
    for item in ranked:
        if len(chosen) < n and item[0][0] not in seen:
            chosen.append(item)
            seen.add(item[0][0])
    chosen += [item for item in ranked if item not in chosen][: n - len(chosen)]
    order = {item[0]: i for i, item in enumerate(ranked)}
    return sorted(chosen, key=lambda item: order[item[0]])


def _ap_rows(result: dict[str, Any]) -> list[str]:
    return [_fmt(result["groups"][c]) for c in AP_COLUMNS]


def report_2d(p: Predictions2D, clips: list[dict[str, Any]], joint_set: JointSet, protocol: Protocol,
              model: dict[str, Any], out: str | Path, *, complexity: dict[str, Any] | None = None,
              similarity: dict[str, Any] | None = None, alpha: float = 0.5, overlays: int = 4) -> dict[str, Any]:
    """Write the 2D report of ``p`` into ``out`` (see the module doc) and return its numbers.

    Args:
        p: predictions of the evaluated split, with ``info`` (video, image_id, frame, and the clips' metadata).
        clips: the clips (name, video, annotations) the predictions came from.
        joint_set: the model's joint set (PoseTrack AP needs ``posetrack``).
        protocol: split, boxes, flip test, seed, counts.
        model: facts about the model (``LoadedModel.describe()``).
        complexity: the complexity row (``complexity.complexity`` plus ``machine``), or None.
        similarity: :func:`~sportpose.evaluation.similarity.feature_similarity` output, or None.
        alpha: PCKh threshold (× head size).
        overlays: best and worst frames drawn, each.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    gt_boxes = protocol.boxes == "ground truth"
    posetrack = joint_set.name == "posetrack"
    metrics: dict[str, Any] = {"kind": "2d", "model": model, "protocol": asdict(protocol), **_protocol_keys(protocol)}
    lines = _header("PoseTrack AP (poseval, %)" if posetrack else f"PCKh@{alpha} (%)", model, protocol)

    if posetrack:
        ap = ap_score(p, clips, joint_set)
        metrics |= {"ap": ap["groups"]["Total"], "ap_groups": ap["groups"], "ap_per_joint": ap["per_joint"]}
        lines += [md_table(["model", *AP_COLUMNS], [[model.get("label", ""), *_ap_rows(ap)]]), "",
                  "### AP per joint", "",
                  md_table(list(ap["per_joint"]), [[_fmt(v) for v in ap["per_joint"].values()]]), "",
                  "![AP per joint](per_joint.png)", ""]
        plots.bar_chart(ap["per_joint"], out / "per_joint.png", f"PoseTrack AP per joint ({protocol.split})", "AP (%)")
    pck = pckh_score(p, alpha) if gt_boxes else None
    if pck is not None:
        per_joint = {joint_set.joints[j]: float(v) for j, v in enumerate(pck["per_joint"])}
        metrics |= {"pckh": pck["mean"], "pckh_per_joint": per_joint}
        lines += [f"### PCKh@{alpha} (%)", "", md_table(["mean", *per_joint], [[_fmt(pck["mean"]),
                                                                                 *[_fmt(v) for v in per_joint.values()]]]), ""]
        if not posetrack:
            plots.bar_chart(per_joint, out / "per_joint.png", f"PCKh@{alpha} per joint", "PCKh (%)")
            lines += ["![PCKh per joint](per_joint.png)", ""]
    else:
        metrics["pckh"] = float("nan")
        lines += ["PCKh pairs each sample with its own person: not defined with detected boxes.", ""]

    # Breakdowns by the clips' metadata.
    breakdowns: dict[str, dict[str, Any]] = {}
    summary_rows = []
    detail: list[str] = []
    uniform: list[tuple[str, str]] = []
    headline = "AP Total" if posetrack else f"PCKh@{alpha}"
    for factor, title in FACTORS.items():
        levels = _levels(p.info, factor)
        if len(levels) == 1:  # one level compares nothing: said in a line, no table or bars
            uniform.append((title, levels[0]))
        if len(levels) < 2:
            continue
        table = {}
        for level in levels:
            mask = np.array([str(v) == level for v in p.info[factor]])
            sub = p.subset(mask)
            row: dict[str, Any] = {"samples": int(mask.sum()), "clips": len({str(v) for v in sub.info["video"]})}
            if posetrack:
                row["ap_groups"] = ap_score(sub, clips, joint_set)["groups"]
            if gt_boxes:
                row["pckh"] = pckh_score(sub, alpha)["mean"]
            table[level] = row
        breakdowns[factor] = table
        overall = metrics["ap"] if posetrack else metrics.get("pckh")
        value = (lambda r: r["ap_groups"]["Total"]) if posetrack else (lambda r: r.get("pckh"))
        summary_rows.append((title, levels, [value(table[l]) for l in levels], overall))
        columns = list(AP_COLUMNS) if posetrack else []
        detail += [f"### By {title}", "",
                   md_table([factor, *columns, *([f"PCKh@{alpha}"] if gt_boxes else []), "samples", "clips"],
                            [[level, *([_fmt(table[level]["ap_groups"][c]) for c in columns]),
                              *([_fmt(table[level]["pckh"])] if gt_boxes else []),
                              str(table[level]["samples"]), str(table[level]["clips"])] for level in levels]), "",
                   f"![by {title}](breakdown_{factor}.png)", ""]
        chart = {level: (table[level]["ap_groups"] if posetrack else {f"PCKh@{alpha}": table[level].get("pckh")})
                 for level in levels}
        plots.grouped_bars(chart, columns or [f"PCKh@{alpha}"], out / f"breakdown_{factor}.png",
                           f"{'AP' if posetrack else headline} by {title} ({protocol.split})", "%")
    metrics["breakdowns"] = breakdowns
    lines += _breakdown_sections(summary_rows, detail, model, headline, "{:.1f}", uniform)
    if p.streams:
        streams, stream_lines = _streams_section(p, clips, joint_set, posetrack, alpha, out, protocol.split)
        metrics["streams"] = streams
        lines += stream_lines

    # Best and worst frames.
    scores = frame_scores(p, clips, joint_set, gt_boxes, alpha) if overlays else {}
    label = f"PCKh@{alpha}" if gt_boxes else "AP"
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    best, worst = spread(ranked, overlays), spread(ranked[::-1], overlays)
    metrics["best_frames"] = [{"video": v, "image_id": i, label: s} for (v, i), s in best]
    metrics["worst_frames"] = [{"video": v, "image_id": i, label: s} for (v, i), s in worst]
    lines += ["## Best and worst frames", "",
              f"Ranked by per-frame {label} (%) over {len(scores)} frames; prediction in the side colours, "
              "ground truth in white.", ""]
    for name, chosen in (("best", best), ("worst", worst)):
        sheet = _overlay_frames_2d(p, clips, joint_set, chosen, label) if chosen else None
        if sheet is not None:
            draw.write_png(out / f"{name}_frames.png", sheet)
            lines += [f"{name.capitalize()}: " + ", ".join(f"{v} image {i} ({s:.1f})" for (v, i), s in chosen), "",
                      f"![{name} frames]({name}_frames.png)", ""]
        elif chosen:
            lines += [f"{name.capitalize()}: " + ", ".join(f"{v} image {i} ({s:.1f})" for (v, i), s in chosen)
                      + " (videos not found: no overlay)", ""]

    lines += _complexity_section(complexity)
    metrics["complexity"] = complexity
    lines += _similarity_section(similarity, out)
    metrics["similarity"] = similarity
    return _finish(out, lines, metrics)


STREAM_LABELS = {"heatmaps_spatial": "spatial", "heatmaps_temporal": "temporal", "heatmaps_context": "context"}


def _streams_section(p: Predictions2D, clips: list[dict[str, Any]], joint_set: JointSet, posetrack: bool,
                     alpha: float, out: Path, split: str) -> tuple[dict[str, Any], list[str]]:
    """Each stream alone (its own head's heatmaps) beside the fused model, overall and per level of every
    factor: what each stream adds where (the 2D paper's claim is the temporal and context streams' help under
    motion blur). The headline figure is AP Total with PoseTrack joints, PCKh otherwise."""

    def score(q: Predictions2D) -> float:
        return ap_score(q, clips, joint_set)["groups"]["Total"] if posetrack else pckh_score(q, alpha)["mean"]

    models = {"fused": p} | {STREAM_LABELS.get(k, k): with_heatmaps(p, v) for k, v in p.streams.items()}
    factors = [f for f in FACTORS if _levels(p.info, f)]
    table: dict[str, dict[str, float]] = {}
    for name, q in models.items():
        row = {"all": score(q)}
        for factor in factors:
            for level in _levels(p.info, factor):
                row[f"{factor}={level}"] = score(q.subset(np.array([str(v) == level for v in p.info[factor]])))
        table[name] = row
    columns = list(next(iter(table.values())))
    label = "AP Total" if posetrack else f"PCKh@{alpha}"
    lines = ["## Streams", "",
             f"{label} (%) of each stream's own prediction beside the fused model's, on the same samples.", "",
             md_table(["model", *columns], [[name, *[_fmt(row[c]) for c in columns]] for name, row in table.items()]),
             "", "![streams](streams.png)", ""]
    plots.grouped_bars(table, columns, out / "streams.png", f"{label} by stream ({split})", "%")
    return table, lines


def _protocol_keys(protocol: Protocol) -> dict[str, Any]:
    return {"split": protocol.split, "boxes": protocol.boxes, "flip_test": protocol.flip_test,
            "seed": protocol.seed, "samples": protocol.samples}


def _breakdown_sections(summary_rows: list, detail: list[str], model: dict[str, Any], headline: str,
                        pattern: str, uniform: list[tuple[str, str]] = ()) -> list[str]:
    """The breakdown tables; a property with one level among the samples (``uniform``: title, level) is named in a
    line instead, since a single bar compares nothing."""
    same = ([f"Every sample has the same {title} ({level}): no breakdown by it." for title, level in uniform]
            + [""] if uniform else [])
    if not summary_rows:
        return ["## Breakdowns", "", *(same or ["The clips carry no metadata (camera view, blur, occlusion, "
                                                "child/adult): no breakdown.", ""])]
    lines = ["## Breakdowns (the 2D paper's Table 11 layout)", "",
             f"{headline} per level of each clip property, then overall.", "", *same]
    if headline == "AP Total":
        lines += ["Overall pools every sample; it can lie below each level's AP, since AP ranks the joints of all "
                  "levels by one score scale.", ""]
    for title, levels, values, overall in summary_rows:
        lines += [f"**{title}**", "",
                  md_table(["model", *levels, "overall"],
                           [[model.get("label", ""), *[_fmt(v, pattern) for v in values], _fmt(overall, pattern)]]), ""]
    return lines + detail


def _finish(out: Path, lines: list[str], metrics: dict[str, Any]) -> dict[str, Any]:
    (out / "report.md").write_text("\n".join(lines).rstrip() + "\n")
    write_markdown_page(out / "report.md")
    (out / "metrics.json").write_text(json.dumps(_clean(metrics), indent=2, allow_nan=False) + "\n")
    return metrics


# -- 3D -----------------------------------------------------------------------------------------------------


def _metrics_row(values: dict[str, float], extra: list[str] | None = None) -> list[str]:
    return [*(extra or []), *[_fmt(values.get(k), f) for k, _, f in METRICS_3D]]


def report_3d(p: Predictions3D, clips: list[dict[str, Any]], protocol: Protocol, model: dict[str, Any],
              out: str | Path, *, stride: int = 1, fps: float | None = None, groups: tuple[str, ...] = ("view", "body"),
              complexity: dict[str, Any] | None = None, similarity: dict[str, Any] | None = None,
              overlays: int = 4) -> dict[str, Any]:
    """Write the 3D report of ``p`` into ``out`` (see the module doc) and return its numbers.

    Args:
        p: predictions of the evaluated split (anchor frames), mm.
        clips: the clips the predictions came from (for captions).
        protocol, model, complexity, similarity: as :func:`report_2d`.
        stride: frames between consecutive anchors (``data.frame_stride``), for TS.
        fps: the clips' frame rate, for TS in mm/s².
        groups: clip properties the headline averages over (per group, then over groups: SPEC §7).
        overlays: best and worst samples drawn, each.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = evaluate3d.evaluate(p, stride=stride, fps=fps, groups=groups)
    g, pooled, nt = result["group_mean"], result["pooled"], result["group_mean_no_tmp"]
    metrics: dict[str, Any] = {
        "kind": "3d", "model": model, "protocol": asdict(protocol), **_protocol_keys(protocol),
        "mpjpe": g["mpjpe"], "p_mpjpe": g["p_mpjpe"], "n_mpjpe": g["n_mpjpe"], "pck3d": g["pck3d"], "auc3d": g["auc3d"],
        "ts": g.get("ts_mm_per_frame2", float("nan")), "ts_mm_per_s2": g.get("ts_mm_per_s2", float("nan")),
        "jitter": g.get("jitter_mm_per_frame2", float("nan")),
        "mpjpe_no_tmp": nt["mpjpe"], "ts_no_tmp": nt.get("ts_mm_per_frame2", float("nan")),
        "group_keys": result["group_keys"], "group_mean": g, "pooled": pooled, "groups": result["groups"],
    }
    per_group = "/".join(result["group_keys"]) or "all samples"
    lines = _header("3D pose (mm)", model, protocol)
    lines += [md_table(["", *[n for _, n, _ in METRICS_3D], "TS (mm/s²)"], [
        _metrics_row(g, [f"mean over {per_group} groups"]) + [_fmt(g.get("ts_mm_per_s2"), "{:.0f}")],
        _metrics_row(pooled, ["pooled"]) + [_fmt(pooled.get("ts_mm_per_s2"), "{:.0f}")],
        _metrics_row(nt, ["without TMP (GSR alone), group mean"]) + [_fmt(nt.get("ts_mm_per_s2"), "{:.0f}")],
    ]), "", f"TS is the acceleration error over runs of consecutive anchors {stride} frame(s) apart "
            f"(mm/frame² of that spacing{', and mm/s² at ' + format(fps, 'g') + ' fps' if fps else ''}). "
            "PCK3D: error < 150 mm; AUC over 0–150 mm.", "",
              "### Per group", "", evaluate3d.group_table(result["groups"], result["group_keys"]), ""]
    per_joint = {H36M.joints[j]: M.mpjpe(p.pred[:, j], p.gt[:, j]) for j in range(p.pred.shape[1])}
    metrics["per_joint_mpjpe"] = per_joint
    plots.bar_chart(per_joint, out / "per_joint.png", f"MPJPE per joint ({protocol.split})", "MPJPE (mm)", limit=None)
    lines += ["### MPJPE per joint (mm)", "", md_table(list(per_joint), [[_fmt(v) for v in per_joint.values()]]), "",
              "![MPJPE per joint](per_joint.png)", ""]

    breakdowns: dict[str, Any] = {}
    summary_rows, detail, uniform = [], [], []
    for factor, title in FACTORS.items():
        levels = _levels(p.info, factor)
        if len(levels) == 1:
            uniform.append((title, levels[0]))
        if len(levels) < 2:
            continue
        by_level = evaluate3d.evaluate(p, stride=stride, fps=fps, groups=(factor,))["groups"]
        breakdowns[factor] = by_level
        summary_rows.append((title, levels, [by_level[l]["mpjpe"] for l in levels], pooled["mpjpe"]))
        detail += [f"### By {title}", "", evaluate3d.group_table(by_level, [factor]), "",
                   f"![by {title}](breakdown_{factor}.png)", ""]
        plots.grouped_bars({l: {"MPJPE": by_level[l]["mpjpe"], "P-MPJPE": by_level[l]["p_mpjpe"]} for l in levels},
                           ["MPJPE", "P-MPJPE"], out / f"breakdown_{factor}.png", f"3D error by {title}", "mm", limit=None)
    metrics["breakdowns"] = breakdowns
    lines += _breakdown_sections(summary_rows, detail, model, "MPJPE (mm, over every sample of the level; overall: "
                                 "over every sample, the pooled row above)", "{:.1f}", uniform)

    errors = np.array([M.mpjpe(p.pred[i], p.gt[i]) for i in range(len(p.pred))])
    order = np.argsort(errors, kind="stable")
    best, worst = list(order[:overlays]), list(order[::-1][:overlays])
    names = {k: p.info[k] for k in ("video", "frame", "track_id") if k in p.info}

    def who(i: int) -> str:
        return " ".join(f"{k} {names[k][i]}" for k in names)

    metrics["best_frames"] = [{"sample": int(i), "mpjpe": float(errors[i]), **{k: _clean(names[k][i]) for k in names}}
                              for i in best]
    metrics["worst_frames"] = [{"sample": int(i), "mpjpe": float(errors[i]), **{k: _clean(names[k][i]) for k in names}}
                               for i in worst]
    lines += ["## Best and worst samples", "",
              "Ranked by MPJPE of the anchor frame; prediction in the side colours, ground truth grey.", ""]
    for name, chosen in (("best", best), ("worst", worst)):
        if chosen:
            plots.skeletons_3d_figure([(f"{who(i)}\nMPJPE {errors[i]:.0f} mm", p.pred[i], p.gt[i]) for i in chosen],
                                      H36M, out / f"{name}_frames.png", title=f"{name} samples")
            lines += [f"![{name} samples]({name}_frames.png)", ""]
    lines += _complexity_section(complexity)
    metrics["complexity"] = complexity
    lines += _similarity_section(similarity, out)
    metrics["similarity"] = similarity
    return _finish(out, lines, metrics)
