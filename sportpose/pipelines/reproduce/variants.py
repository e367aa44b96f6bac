"""Model variants trained from a finished run's shared stages, each evaluated on the held-out split.

A study of :mod:`sportpose.pipelines.reproduce.study` whose rows change only what comes after some stages of
its base run (STSP-Net's TMP window τ and GAT depth change GSR and TMP but not EPE; MultiStream's fusion rows
change neither stage-1 stream) trains, per row, only the stages after the reused ones, on the stage engine
(one Ray Train job per stage, from the reused checkpoints), and evaluates the final checkpoint exactly as
``sportpose train`` evaluates it (MPJPE, P-MPJPE, PCK3D, AUC, TS, jitter per clip group, the mean-pose
baseline, the same model without TMP; or AP and PCKh).

A variant may not change what the reused stages saw: :func:`reused_model_keys` names the model keys that
shape each reusable stage. The sweep engine (:mod:`sportpose.pipelines.sweep.run`, ``init_from``) does the
same hand-off under Ray Tune with ASHA, scored on the validation split; a study trains every variant to the
end and scores it on the held-out split, as the paper's tables do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from sportpose.evaluation import evaluate3d
from sportpose.pipelines.train import evaluate_final
from sportpose.registry import tracking
from sportpose.spec.experiment import MODEL_CONFIGS, ExperimentSpec, spec_hash, spec_to_dict, stage_order
from sportpose.training.stage import plan_init, run_stage

EPE_KEYS = ("backbone", "width", "pretrained", "window", "gamma", "lam", "saliency_floor", "beta", "use_motion",
            "alpha_smooth")  # model keys that shape STSP-Net's EPE: a variant reusing EPE may not change them
# MultiStream's stage-1 streams: the model keys that shape (or train) each stream. A variant reusing a stream
# stage may not change them; fusion, dropout and the fused stages' settings are free (Tables 9, 10).
STREAM_KEYS = {
    "spatial": ("backbone", "width", "pretrained", "fpn_channels", "spatial_convs", "spatial_kernel", "spatial_filters",
                "deconv_channels", "sam", "input_size", "streams"),
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
    return tuple(f.name for f in fields(MODEL_CONFIGS[kind]))


def train_variant(spec: ExperimentSpec, checkpoints: dict[str, str], datasets: dict[str, Any],
                  clips: list[dict[str, Any]], out_dir: Path, *, label: str, parent_id: str | None = None,
                  run_key: str | None = None, log: Callable[[str], None] = print) -> tuple[dict[str, Any], str]:
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
    run_key = run_key or spec_hash(spec)[:8]
    run_id = tracking.start_run(spec.name, run_name=f"variant-{label}", parent_id=parent_id, tags={
        "sportpose.kind": "variant", "sportpose.variant": label, "sportpose.reused": ",".join(checkpoints),
        "sportpose.spec_hash": spec_hash(spec), "sportpose.git_commit": tracking.git_commit()})
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
