"""Sweeps: stream-weight trials per minute, and a small trained sweep with ASHA against the same sweep without.

(1) A fusion_weights sweep of ``--weight-trials`` trials (2 at a time) on a stream cache of the demo's size:
    SynthCourt validation samples cut as ``experiments/multistream_demo.yaml`` cuts them (96x96 crops, 17
    joints, 24x24 heatmaps), with per-stream heatmaps planted from the targets (spatial: targets + noise;
    temporal: targets shifted 3 px + noise; context: noise), or the real cache of a trained demo with
    ``--cache runs/outputs/multistream-demo/<run>/streams/val_streams.npz``. Trials per minute are over the
    whole ``run_sweep`` call (Tune, MLflow child runs, the Optuna database, plots and report included).
(2) The same grid of nine learning rates (1e-4 .. 5e-2, log-spaced) for a tiny SimpleBaseline (64x64, 1 Ray
    Train worker per trial, 2 trials at a time, ``--epochs`` epochs) twice: with ASHA (grace 1 epoch, reduction
    factor 3: rungs at 1 and 3 epochs of 6) and without. Prints the trial-epochs each spent, the best validation
    loss each found, and per learning rate what ASHA saw next to the full run (the full run's value of the same
    trial at the same epoch, and the two runs' values of one trial, show the run-to-run noise); ASHA's target:
    the same best (within noise) with at most half the trial-epochs.

    Why nine trials and factor 3 (an earlier version had six and factor 2, and landed at 50-56%): asynchronous
    successive halving never stops the first trial to reach a rung (nothing to compare it with), and the trials
    that are good run to the end on merit. With six trials of which two are good, those alone are 12 of 36
    epochs, the first trial another 6; even synchronous halving would spend 15 of 36 (42%). ASHA's saving grows
    with the number of trials and the reduction factor (Hyperband's eta = 3; Ray's default is 4).

Run: python bench/sweep.py [--weight-trials 60] [--epochs 6] [--cache PATH]
Last line: weight_trials_per_min=<…> asha_epoch_ratio=<ASHA trial-epochs / full> asha_best=<…> full_best=<…>
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

# The bases are the tests' tiny specs (experiments/paper/base/*_tiny.yaml) with the bench's sizes.
TINY = Path(__file__).resolve().parents[1] / "experiments" / "paper" / "base"
BASE_MS = ["name=bench-sweep-ms", "data.synth={clips: 10, frames: 30, width: 320, height: 240, min_players: 1, "
           "max_players: 3, seed: 1}", "data.splits=[0.0, 1.0, 0.0]", "data.input_size=[96, 96]",
           "data.context_len=4", "data.context_size=[64, 64]", "data.max_samples_per_clip=null",
           "model={kind: multistream, width: 16, input_size: [96, 96], context_size: [64, 64], window: 3, "
           "context_len: 4, fusion: late}", "train={stages: {fused: {task: fused}}}", "register={enabled: false}",
           "evaluate={}"]
BASE_SB = ["name=bench-sweep-sb", "seed=0", "data.synth={clips: 16, frames: 24, width: 192, height: 144, "
           "max_players: 2, seed: 3}", "data.splits=[0.75, 0.25, 0.0]",
           "data.augment={rotation: 0.0, scale: [1.0, 1.0], color_jitter: 0.0, flip: false}",
           "register={enabled: false}"]


def base_yaml(kind: str, overrides: list[str]) -> str:
    """The resolved YAML of ``<kind>_tiny.yaml`` with ``overrides``."""
    from sportpose.spec.experiment import load_spec, spec_yaml

    return spec_yaml(load_spec(TINY / f"{kind}_tiny.yaml", overrides))


FUSION = """
name: bench-fusion
base: ms.yaml
kind: fusion_weights
cache: {cache}
space: {{model.fusion_weights: {{kind: simplex}}}}
trials: {trials}
concurrency: 2
"""

TRAINED = """
name: {name}
base: sb.yaml
space:
  train.stages.main.optimizer.lr:
    {{kind: choice, values: [0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05]}}
sampler: grid
trials: 9
concurrency: 2
resources: {{cpu: 0.01}}
asha: {{enabled: {asha}, grace_period: 1, reduction_factor: 3}}
"""


def planted_cache(folder: Path, base: Path) -> Path:
    """Validation samples of the demo's geometry with per-stream heatmaps planted from their targets."""
    # Heavy (torch): imported when the bench runs, not for --help.
    from sportpose.data import synthcourt
    from sportpose.data.dataset import load_clips
    from sportpose.data.tubes import cut_clip
    from sportpose.evaluation.evaluate2d import INFO_KEYS, Predictions2D, save_stream_cache
    from sportpose.spec.experiment import load_spec

    spec = load_spec(base)
    synthcourt.generate(Path(spec.data.root), spec.data.synth, progress=False)
    clips = load_clips(spec.data.root, spec.data.splits, spec.seed)
    rows = [r for c in clips for r in cut_clip(c, spec.data, seed=0)]
    targets = np.stack([r["heatmaps"] for r in rows]).astype(np.float32)  # (N, K, h, w)
    rng = np.random.default_rng(0)
    kp = np.stack([r["keypoints_image"] for r in rows])  # (N, K, 3)
    p = Predictions2D(
        pred=kp[..., :2].copy(), scores=np.zeros(kp.shape[:2], np.float32), gt=kp[..., :2], visible=kp[..., 2] > 0,
        head_size=np.array([r["head_size"] for r in rows]), affine=np.stack([r["affine"] for r in rows]),
        info={k: np.array([r[k] for r in rows]) for k in INFO_KEYS if k in rows[0]},
        streams={"heatmaps_spatial": targets + rng.normal(0, 0.05, targets.shape).astype(np.float32),
                 "heatmaps_temporal": np.roll(targets, 3, axis=-1) + rng.normal(0, 0.05, targets.shape).astype(np.float32),
                 "heatmaps_context": np.abs(rng.normal(0, 0.2, targets.shape)).astype(np.float32)})
    return save_stream_cache(p, clips, folder / "val_streams.npz")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weight-trials", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--cache", default=None, help="a real stream cache (val_streams.npz) instead of the planted one")
    args = parser.parse_args()
    cache_arg = str(Path(args.cache).resolve()) if args.cache else None
    with tempfile.TemporaryDirectory(prefix="sportpose-bench-") as tmp:
        os.environ["SPORTPOSE_RUNS"] = tmp
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        from sportpose.pipelines.sweep.run import run_sweep
        from sportpose.pipelines.sweep.trials import load_fusion_cache
        from sportpose.platform.runtime import init_ray, shutdown_ray
        from sportpose.spec.sweep import load_sweep

        folder = Path(tmp)
        (folder / "ms.yaml").write_text(base_yaml("multistream", [*BASE_MS, f"data.root={folder / 'data-ms'}"]))
        (folder / "sb.yaml").write_text(base_yaml("simplebaseline", [
            *BASE_SB, f"data.root={folder / 'data-sb'}",
            f"train.stages.main={{epochs: {args.epochs}, batch_size: 16, scaling: {{num_workers: 1}}}}"]))
        cache = cache_arg or str(planted_cache(folder, folder / "ms.yaml"))
        init_ray(num_cpus=os.cpu_count())
        quiet = lambda line: None  # noqa: E731

        (folder / "fusion.yaml").write_text(FUSION.format(cache=cache, trials=args.weight_trials))
        start = time.perf_counter()
        weights = run_sweep(load_sweep(folder / "fusion.yaml"), log=quiet)
        seconds = time.perf_counter() - start
        samples = load_fusion_cache(cache).samples
        per_min = len(weights.records) / seconds * 60
        print(f"(1) stream weights: {len(weights.records)} trials on {samples} validation samples "
              f"({'given cache' if cache_arg else 'planted demo-size cache'}) in {seconds:.1f} s = {per_min:.1f} "
              f"trials/min (target >= 30); best map {weights.best['value']:.2f} at "
              + " ".join(f"{k}={v:.3f}" for k, v in weights.best["columns"].items()))

        results = {}
        for asha in (True, False):
            name = "bench-asha" if asha else "bench-full"
            (folder / f"{name}.yaml").write_text(TRAINED.format(name=name, asha=str(asha).lower()))
            start = time.perf_counter()
            r = run_sweep(load_sweep(folder / f"{name}.yaml"), log=quiet)
            results[asha] = (r, sum(x["epochs"] for x in r.records), time.perf_counter() - start)
        print(f"(2) 9 learning rates x {args.epochs} epochs, SimpleBaseline 64x64, 2 trials at a time:")
        print(f"{'':8}{'trial-epochs':>14}{'stopped':>9}{'best val_loss':>15}{'best lr':>9}{'minutes':>9}")
        for asha, label in ((True, "ASHA"), (False, "full")):
            r, epochs, secs = results[asha]
            stopped = sum(x["status"] == "stopped" for x in r.records)
            lr = r.best["columns"]["train.stages.main.optimizer.lr"]
            print(f"{label:8}{epochs:>14}{stopped:>9}{r.best['value']:>15.5f}{lr:>9g}{secs / 60:>9.1f}")
        # Per learning rate: what ASHA saw of each trial next to the full run of the same trial. The full run's
        # values of the learning rate ASHA picked show the run-to-run noise the two bests are judged against.
        key = "train.stages.main.optimizer.lr"
        by_lr = {a: {x["columns"][key]: x for x in results[a][0].records} for a in (True, False)}
        print(f"{'lr':>8}{'ASHA epochs':>13}{'ASHA last':>11}{'full last':>11}{'full @ same epoch':>19}")
        for lr in sorted(by_lr[False]):
            a, f = by_lr[True][lr], by_lr[False][lr]
            same = next((h["val_loss"] for h in f["history"] if h["trial_epoch"] == a["epochs"]), float("nan"))
            # .5g: a diverged trial's loss (1e7 at lr 0.05) must not run into the epochs column
            print(f"{lr:>8g}{a['epochs']:>13} {a['value']:>10.5g} {f['value']:>10.5g} {same:>18.5g}")
        ratio = results[True][1] / results[False][1]
        asha_best, full_best = results[True][0].best["value"], results[False][0].best["value"]
        print(f"ASHA used {ratio:.0%} of the trial-epochs (target <= 50%); best val_loss {asha_best:.5f} vs "
              f"{full_best:.5f} without ({(asha_best - full_best) / full_best:+.1%})")
        shutdown_ray()
        print(f"weight_trials_per_min={per_min:.1f} asha_epoch_ratio={ratio:.3f} asha_best={asha_best:.5f} "
              f"full_best={full_best:.5f}")


if __name__ == "__main__":
    main()
