"""The demo tour (``sportpose demo``, ``make demo``): the whole platform in one command, minutes on a laptop.

SynthCourt -> Ray Data -> MultiStream's staged stream training (three single-stream Ray Train jobs, the fused
model, joint fine-tuning) and STSP-Net's three stages on local Ray -> an evaluation report per model -> a
short stream-weight sweep (Ray Tune + Optuna) over the MultiStream run's cached validation heatmaps -> both
models registered (alias ``candidate``; ``champion`` where no better one holds it) -> a closing summary.

The tour's specs live in ``experiments/tour/``: the demo specs (``experiments/multistream_demo.yaml``,
``experiments/stsp_demo.yaml``) with fewer clips and epochs, so that both models and everything around them
fit in a quarter of an hour on two cores. Each step is the same code a user's own command runs: ``sportpose
train``, ``sportpose evaluate``, ``sportpose sweep``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sportpose.paths import EXPERIMENTS
from sportpose.pipelines.evaluate import EvaluateArgs, run_evaluate
from sportpose.pipelines.sweep.run import SweepResult, run_sweep
from sportpose.pipelines.train import PipelineResult, run_pipeline
from sportpose.registry import tracking
from sportpose.spec.experiment import load_spec
from sportpose.spec.sweep import load_sweep

TOUR_DIR = EXPERIMENTS / "tour"
STEPS = ("multistream", "stsp", "reports", "sweep")


@dataclass
class TourResult:
    pipelines: dict[str, PipelineResult] = field(default_factory=dict)  # by model kind
    reports: dict[str, Path] = field(default_factory=dict)  # model kind -> report.md
    sweep: SweepResult | None = None
    sweep_metric: str = ""
    seconds: float = 0.0
    step_seconds: dict[str, float] = field(default_factory=dict)  # step of STEPS -> wall seconds


def run_tour(log: Callable[[str], None] = print, overrides: dict[str, list[str]] | None = None) -> TourResult:
    """Run every step of the tour on the current Ray and return what each produced.

    Args:
        overrides: ``-o`` overrides per tour spec (``multistream``, ``stsp``, ``sweep``).
    """

    overrides = overrides or {}
    start = time.perf_counter()
    result = TourResult()
    for i, (kind, title) in enumerate((("multistream", "MultiStream: three stream jobs at once, fused, joint"),
                                       ("stsp", "STSP-Net: EPE, then GSR + TMP, then everything"))):
        log(f"\n== tour {i + 1}/4: {title} ==")
        t0 = time.perf_counter()
        spec = load_spec(TOUR_DIR / f"{kind}.yaml", overrides.get(kind, []))
        result.pipelines[kind] = run_pipeline(spec, resume="auto", log=log)  # an interrupted tour continues
        result.step_seconds[kind] = time.perf_counter() - t0
    log("\n== tour 3/4: evaluation reports on the held-out clips ==")
    t0 = time.perf_counter()
    for kind, pipeline in result.pipelines.items():  # the registered version, as `sportpose evaluate` reads it
        p = pipeline.promotion
        model = f"models:/{p.name}/{p.version}" if p is not None else pipeline.stages[list(pipeline.stages)[-1]].checkpoint
        args = EvaluateArgs(model=model, spec=str(TOUR_DIR / f"{kind}.yaml"),
                            overrides=tuple(overrides.get(kind, [])), overlays=3)
        result.reports[kind] = run_evaluate(args, log=log).out / "report.md"
    result.step_seconds["reports"] = time.perf_counter() - t0
    log("\n== tour 4/4: stream-weight sweep (Ray Tune, Optuna TPE) on cached validation heatmaps ==")
    t0 = time.perf_counter()
    sweep = load_sweep(TOUR_DIR / "fusion_weights.yaml", overrides.get("sweep", []))
    result.sweep, result.sweep_metric = run_sweep(sweep, log=log), sweep.spec.metric
    result.step_seconds["sweep"] = time.perf_counter() - t0
    result.seconds = time.perf_counter() - start
    return result


def summary(result: TourResult) -> str:
    """The closing summary: the numbers, where the plots are, how to open the MLflow UI."""

    lines = [f"== sportpose tour: finished in {result.seconds / 60:.1f} min =="]
    if result.step_seconds:
        lines.append("steps: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in result.step_seconds.items()))
    ms, st = result.pipelines.get("multistream"), result.pipelines.get("stsp")
    if ms is not None:
        ev = ms.evaluation
        lines += [f"MultiStream ({ms.spec.model.fusion} fusion), held-out {ev['split']} clips, {ev['samples']} persons:",
                  f"  AP    trained {ev['ap']:5.1f}   untrained {ev['ap_untrained']:5.1f}   "
                  f"gain {ev['ap'] - ev['ap_untrained']:+5.1f}",
                  "  AP per group: " + "  ".join(f"{k} {v:.1f}" for k, v in ev["ap_groups"].items()),
                  f"  PCKh  trained {ev['pckh']:5.1f}   untrained {ev['pckh_untrained']:5.1f}"]
        if "fusion_weights" in ev:
            lines.append("  late-fusion weights (grid on val): " + ", ".join(f"{w:.2f}" for w in ev["fusion_weights"]))
    if st is not None:
        ev = st.evaluation
        lines += [f"STSP-Net, held-out {ev['split']} clips, {ev['samples']} tubes:",
                  f"  MPJPE {ev['mpjpe']:6.1f} mm   mean-pose baseline {ev['mpjpe_mean_pose']:.1f} mm   "
                  f"P-MPJPE {ev['p_mpjpe']:.1f} mm   PCK3D {ev['pck3d']:.1f}",
                  f"  TS    {ev['ts']:6.2f} mm/frame²   same model without TMP {ev['ts_no_tmp']:.2f}"]
        if "epe_err_px" in ev:
            lines.append(f"  EPE 2D keypoint error {ev['epe_err_px']:.2f} px on {ev['crop_px']} px crops (the lifter's input)")
    if result.sweep is not None and result.sweep.best is not None:
        best = result.sweep.best
        params = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in best["columns"].items())
        lines.append(f"sweep {result.sweep.name}: {len(result.sweep.records)} trials, best {result.sweep_metric} "
                     f"{best['value']:.2f} (trial {best['number']}) with {params}")
        lines.append(f"  table, best spec, plots, sweep.html: {result.sweep.out_dir}")
    for kind, pipeline in result.pipelines.items():
        p = pipeline.promotion
        if p is not None:
            aliases = "candidate, champion" if p.promoted else "candidate"
            lines.append(f"registered: models:/{p.name}/{p.version} ({aliases}: {p.reason})")
    for kind, path in result.reports.items():
        lines.append(f"report ({kind}): {path}  (plots beside it)")
    uri = tracking.tracking_uri()
    lines.append(f"MLflow: {uri}")
    lines.append("MLflow UI: sportpose dashboard   (MLflow and optuna-dashboard on 127.0.0.1)")
    return "\n".join(lines)

