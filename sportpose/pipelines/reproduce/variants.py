"""Model variants trained from a finished run's shared stages, each evaluated on the held-out split.

STSP-Net's TMP window τ (paper Table 4) and GAT depth (Table 5) change GSR and TMP but not EPE, so the EPE
stage of a finished run of the base spec can serve every variant: for each variant (the base spec with a few
``-o`` overrides) the stages after the reused ones train again on the stage engine (one Ray Train job per
stage, from the reused checkpoints), and the final checkpoint is evaluated exactly as ``sportpose train``
evaluates it (MPJPE, P-MPJPE, PCK3D, AUC, TS, jitter per clip group, the mean-pose baseline, the same model
without TMP). One run per variant, every figure reported, whichever way it goes::

    sportpose train experiments/stsp_demo.yaml          # the base run: epe, lift, full
    python -m sportpose.pipelines.reproduce.variants experiments/stsp_demo.yaml --reuse epe \\
        --variant tau1 model.tau=1 --variant tau3 model.tau=3 \\
        --variant depth1 model.gat_layers=1 --variant depth3 model.gat_layers=3

The base run (the latest run of the base spec, ``runs/pipelines/<name>/state.json``) is the row ``base``; its
own stages after the reused ones were trained the same way, from the same checkpoints. Each variant is an
MLflow run in the spec's experiment (tag ``sportpose.kind=variant``) with a child run per stage; the table
is written to ``runs/outputs/<name>/variants/<base run>.md`` (and ``.json``).

The sweep engine (:mod:`sportpose.pipelines.sweep.run`, ``init_from``) does the same hand-off under Ray Tune with
ASHA, scored on the validation split; this module trains every variant to the end and scores it on the
held-out split, as the paper's tables do.

A variant may not change what the reused stages saw: ``data.*``, ``seed``, the reused stages' own settings,
or a model key that shapes EPE (:data:`EPE_KEYS`) is refused. A variant's Ray Train runs are named after its
resolved spec, so running the same command again reuses finished variants.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sportpose.paths import runs_dir
from sportpose.errors import SpecError

EPE_KEYS = ("backbone", "width", "pretrained", "window", "gamma", "lam", "saliency_floor", "beta", "use_motion",
            "alpha_smooth")  # model keys that shape STSP-Net's EPE: a variant reusing EPE may not change them
# MultiStream's stage-1 streams: the model keys that shape (or train) each stream. A variant reusing a stream
# stage may not change them; fusion, dropout and the fused stages' settings are free (Tables 9, 10).
STREAM_KEYS = {
    "spatial": ("backbone", "width", "pretrained", "fpn_channels", "deconv_channels", "sam", "input_size", "streams"),
    "temporal": ("temporal_backbone", "temporal_width", "temporal_pretrained", "diff_channels", "tcm_channels",
                 "tcm_blocks", "conv_type", "window", "deconv_channels", "input_size", "streams"),
    "context": ("context_backbone", "context_width", "context_pretrained", "context_model", "context_len",
                "context_hidden", "context_size", "context_layers", "context_heads", "mask_ratio", "mfm_weight",
                "input_size", "streams"),
}


def reused_model_keys(kind: str, stage: str) -> tuple[str, ...]:
    """Model keys a variant may not change when it reuses ``stage`` of a base run (by the stage's name in the
    papers' specs: STSP-Net's ``epe``; MultiStream's ``spatial``, ``temporal``, ``context``). Any other stage
    shapes the whole model: every model key."""
    if kind == "stsp" and stage == "epe":
        return EPE_KEYS
    if kind == "multistream" and stage in STREAM_KEYS:
        return STREAM_KEYS[stage]
    from sportpose.spec.experiment import MODEL_CONFIGS
    from dataclasses import fields

    return tuple(f.name for f in fields(MODEL_CONFIGS[kind]))
COLUMNS = (("mpjpe", "MPJPE", "{:.1f}"), ("mpjpe_mean_pose", "mean pose", "{:.1f}"), ("p_mpjpe", "P-MPJPE", "{:.1f}"),
           ("pck3d", "PCK3D", "{:.1f}"), ("auc3d", "AUC", "{:.1f}"), ("ts", "TS", "{:.2f}"),
           ("ts_no_tmp", "TS no TMP", "{:.2f}"), ("ts_mm_per_s2", "TS mm/s²", "{:.0f}"), ("jitter", "jitter", "{:.2f}"),
           ("mpjpe_no_tmp", "MPJPE no TMP", "{:.1f}"))


def check_overrides(overrides: list[str], reuse: list[str]) -> None:
    """Refuse overrides that would change what the reused stages were trained on.

    Raises:
        SpecError: naming the override.
    """
    for item in overrides:
        key = item.partition("=")[0].strip()
        parts = key.split(".")
        if parts[0] in ("data", "seed") or (parts[0] == "model" and len(parts) > 1 and parts[1] in EPE_KEYS) \
                or (parts[:2] == ["train", "stages"] and len(parts) > 2 and parts[2] in reuse):
            raise SpecError(key, f"a variant cannot change what the reused stages {reuse} were trained on")


def run_variants(spec_path: str | Path, variants: dict[str, list[str]], reuse: list[str],
                 log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Train and evaluate every variant from the reused stages of the base spec's latest run.

    Args:
        spec_path: the base experiment spec.
        variants: name -> ``-o`` overrides of the base spec.
        reuse: stages taken from the base run (finished there), e.g. ``["epe"]``.

    Returns:
        One row per variant (the base run first): ``variant``, ``overrides``, ``minutes`` and the evaluation's
        flat figures and ``groups``.

    Raises:
        SpecError: a refused override, a reused stage the base run has not finished, or a base run trained
            on other data.
    """
    from sportpose.data.dataset import load_clips
    from sportpose.data.prepare import open_split
    from sportpose.pipelines.train import _json_default, _state_path, prepare_data, read_state
    from sportpose.registry import tracking
    from sportpose.spec.experiment import load_spec, spec_to_dict

    base = load_spec(spec_path)
    path = _state_path(base)
    if not path.exists():
        raise SpecError("<base run>", f"no run of spec {base.name!r} ({path}); train it first: sportpose train {spec_path}")
    state = read_state(path)
    resolved = spec_to_dict(base)
    for key in ("data", "seed"):
        if state["spec"].get(key) != resolved[key]:
            raise SpecError(key, f"differs from the base run's ({path}): its checkpoints were trained on other data")
    checkpoints = {}
    for name in reuse:
        info = state["stages"].get(name, {})
        if info.get("status") != "finished":
            raise SpecError(f"train.stages.{name}", f"is not finished in the base run ({path})")
        if state["spec"]["train"]["stages"].get(name) != resolved["train"]["stages"].get(name):
            raise SpecError(f"train.stages.{name}", f"changed since the base run ({path})")
        checkpoints[name] = info["checkpoint"]
    for overrides in variants.values():
        check_overrides(overrides, reuse)

    root = prepare_data(base, log)
    clips = load_clips(root, base.data.splits, base.seed)
    datasets = {split: open_split(base, split, clips, evaluation=(split == base.evaluate.split))[0]
                for split in ("train", "val", "test")}
    out_dir = runs_dir() / "outputs" / base.name / "variants"
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    base_eval = runs_dir() / "outputs" / base.name / state["parent_run_id"][:8] / "evaluation.json"
    if base_eval.exists():
        rows.append({"variant": "base", "overrides": [], "minutes": float("nan"), **json.loads(base_eval.read_text())})

    for variant, overrides in variants.items():
        spec = load_spec(spec_path, overrides)
        start = time.perf_counter()
        evaluation, _ = train_variant(spec, checkpoints, datasets, clips, out_dir, label=variant, log=log,
                                      tags={"sportpose.base_run": state["parent_run_id"],
                                            "sportpose.overrides": " ".join(overrides)})
        rows.append({"variant": variant, "overrides": overrides, "minutes": (time.perf_counter() - start) / 60,
                     **evaluation})
        log(f"variant {variant}: " + table(rows[-1:]).splitlines()[-1])

    text = table(rows)
    name = state["parent_run_id"][:8]
    (out_dir / f"{name}.md").write_text(text + "\n")
    (out_dir / f"{name}.json").write_text(json.dumps(rows, indent=1, default=_json_default))
    log(text)
    return rows


def train_variant(spec: Any, checkpoints: dict[str, str], datasets: dict[str, Any], clips: list[dict[str, Any]],
                  out_dir: Path, *, label: str, parent_id: str | None = None, run_key: str | None = None,
                  tags: dict[str, str] | None = None, log: Callable[[str], None] = print) -> tuple[dict[str, Any], str]:
    """Train the stages of ``spec`` not in ``checkpoints`` (each from the checkpoints of the stages it comes
    after) on the stage engine, then evaluate the final checkpoint as ``sportpose train`` does.

    One MLflow run (tag ``sportpose.kind=variant``; a child of ``parent_id`` when given) with a child run per
    stage. The Ray Train runs are named ``<spec name>-variant-<run_key>-<stage>`` (default key: the resolved
    spec's hash), so a rerun continues or reuses them.

    Args:
        checkpoints: stage -> checkpoint of the stages taken as they are (from a base run).

    Returns:
        the evaluation and the final stage's checkpoint.
    """
    from sportpose.evaluation import evaluate3d
    from sportpose.pipelines.train import evaluate_final
    from sportpose.training.stage import plan_init, run_stage
    from sportpose.registry import tracking
    from sportpose.spec.experiment import spec_hash, spec_to_dict, stage_order

    run_key = run_key or spec_hash(spec)[:8]
    run_id = tracking.start_run(spec.name, run_name=f"variant-{label}", parent_id=parent_id, tags={
        "sportpose.kind": "variant", "sportpose.variant": label, "sportpose.reused": ",".join(checkpoints),
        "sportpose.spec_hash": spec_hash(spec), "sportpose.git_commit": tracking.git_commit(), **(tags or {})})
    tracking.log_params(run_id, spec_to_dict(spec))
    done = dict(checkpoints)
    try:
        for stage in [s for s in stage_order(spec.train.stages) if s not in checkpoints]:
            init = plan_init(spec, stage, {d: done[d] for d in spec.train.stages[stage].after})
            child = tracking.start_run(spec.name, run_name=f"{label}-{stage}", parent_id=run_id,
                                       tags={"sportpose.kind": "stage", "sportpose.stage": stage})
            log(f"variant {label}: stage {stage}, {spec.train.stages[stage].epochs} epochs")
            result = run_stage(spec, stage, {"train": datasets["train"], "val": datasets["val"]},
                               run_name=f"{spec.name}-variant-{run_key}-{stage}",
                               tracking_uri=tracking.tracking_uri(), run_id=child, init=init)
            tracking.set_tags(child, {"sportpose.checkpoint": result.checkpoint})
            tracking.end_run(child)
            done[stage] = result.checkpoint
        final = done[stage_order(spec.train.stages)[-1]]
        evaluation, _, _ = evaluate_final(spec, final, datasets, clips, out_dir, log)
    except BaseException:
        tracking.end_run(run_id, "FAILED")
        raise
    tracking.log_metrics(run_id, {k: v for k, v in evaluation.items() if isinstance(v, float) and v == v})
    if "groups" in evaluation:
        tracking.log_metrics(run_id, evaluate3d.group_metrics(evaluation["groups"]))
    tracking.end_run(run_id)
    return evaluation, final


def table(rows: list[dict[str, Any]]) -> str:
    """The variants' headline figures as a markdown table (mm; TS and jitter in mm/frame² of the anchor
    spacing)."""
    lines = ["| variant | overrides | " + " | ".join(c[1] for c in COLUMNS) + " | minutes |",
             "|---" * (len(COLUMNS) + 3) + "|"]
    for row in rows:
        cells = [fmt.format(row[k]) if k in row else "-" for k, _, fmt in COLUMNS]
        minutes = f"{row['minutes']:.1f}" if row.get("minutes") == row.get("minutes") else "-"
        lines.append(f"| {row['variant']} | {' '.join(row['overrides']) or '(base run)'} | " + " | ".join(cells)
                     + f" | {minutes} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sportpose.pipelines.reproduce.variants", description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", help="the base experiment spec (its latest run provides the reused stages)")
    parser.add_argument("--reuse", nargs="+", required=True, help="stages taken from the base run, e.g. epe")
    parser.add_argument("--variant", nargs="+", action="append", required=True, metavar=("NAME", "KEY=VALUE"),
                        help="a variant: its name, then -o overrides of the base spec")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray)")
    args = parser.parse_args(argv)
    variants = {v[0]: v[1:] for v in args.variant}
    from sportpose.platform.runtime import init_ray

    try:
        for overrides in variants.values():
            check_overrides(overrides, args.reuse)
        init_ray(args.address)
        run_variants(args.spec, variants, args.reuse)
    except SpecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
