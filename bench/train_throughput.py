"""Training throughput: the same model and data in a plain PyTorch loop and in Ray Train with 1 and 2 workers.

Steady-state samples/s are the mean over the epochs after a warm-up epoch; start-up time (Ray Train's worker
group, dataset split) is measured apart. The global batch is 32 in every setup (SPEC §6: 16 per worker with
two). Setups:

- (a) plain PyTorch loop, one intra-op thread; (b) Ray Train, 1 worker x 1 thread: (b)/(a) is what Ray
  Train costs (``ratio_ray_vs_plain``, target >= 0.9).
- (c) Ray Train, 2 DDP workers x 1 thread (gloo): (c)/(b) is the old figure, two cores against one
  (``ratio_2w_vs_1w``).
- (d) Ray Train, 1 worker x 2 threads: the same two cores used by intra-op threads instead of a second
  process; (c)/(d) is the fair data-parallel figure (``ratio_2w_vs_1w2t``, target >= 1.0).
- (e) as (c) with DDP gradient buckets of ``SMALL_BUCKET_MB`` (``scaling.bucket_cap_mb``) instead of 25 MB:
  with the model's gradients in one bucket the all-reduce starts only after the whole backward pass.
- (f), (g): (c) and (d) with ``cache_samples`` (each worker's shard held in memory once read): the
  data-parallel figure without the data path's share of the two cores (``ratio_2w_vs_1w2t_cached`` = (f)/(g)).

The gloo all-reduce time per step (``allreduce_ms_per_step``: the sum over a step's gradient buckets from a
bucket's launch to its end, :class:`sportpose.training.stage.AllreduceClock`) is reported for (c) and (e),
beside the step time.

Run: python bench/train_throughput.py [--epochs 4] [--clips 16] [--size 96]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch

from sportpose.data.dataset import build_split, load_clips
from sportpose.paths import EXPERIMENTS
from sportpose.pipelines.train import prepare_data
from sportpose.platform.runtime import init_ray, shutdown_ray
from sportpose.spec.experiment import load_spec
from sportpose.training import loop
from sportpose.training.stage import TARGET_COLUMNS, run_stage

# The tests' tiny SimpleBaseline, widened to a size where a step is mostly compute (96x96 crops, width 32).
SPEC = EXPERIMENTS / "paper" / "base" / "simplebaseline_tiny.yaml"
OVERRIDES = ["name=bench-throughput", "seed=0", "data.splits=[0.9, 0.1, 0.0]",
             "model={kind: simplebaseline, width: 32, deconv_channels: 64}"]


def plain_loop(spec, ds) -> list[float]:
    """(a): the plain PyTorch loop over the same materialised samples, one thread."""
    torch.set_num_threads(1)
    torch.manual_seed(spec.seed)
    stage = spec.train.stages["main"]
    model = spec.build_model()
    optimizer = loop.build_optimizer(model, stage.optimizer)
    columns = tuple(model.input_names()) + TARGET_COLUMNS

    def loss_fn(m, batch):
        return m.loss(m(batch), batch)

    def batches():
        for b in ds.iter_batches(batch_size=stage.batch_size, batch_format="numpy"):
            yield {c: torch.from_numpy(np.array(b[c])) for c in columns if c in b}

    rates = []
    for _ in range(stage.epochs):
        rates.append(loop.train_epoch(model, batches(), optimizer, loss_fn)["samples_per_s"])
    return rates


SMALL_BUCKET_MB = 1.0


def ray_train(spec, datasets, workers: int, threads: int = 1, bucket_mb: float = 25.0, cache: bool = False
              ) -> tuple[list[float], float, float, float, float]:
    """(b)-(e): the stage engine with ``workers`` DDP workers of ``threads`` intra-op threads each.

    Returns:
        per-epoch samples/s, start-up seconds, steady all-reduce ms per step and buckets per step (0 for 1 worker),
        and the steady share of an epoch a worker waits for its next batch (``data_wait_fraction``).
    """
    from sportpose.spec.experiment import apply_overrides, spec_from_dict, spec_to_dict

    spec = spec_from_dict(apply_overrides(spec_to_dict(spec), [
        f"train.stages.main.scaling.num_workers={workers}", f"train.stages.main.scaling.torch_threads={threads}",
        f"train.stages.main.scaling.bucket_cap_mb={bucket_mb}", f"train.stages.main.cache_samples={cache}"]))
    start = time.perf_counter()
    result = run_stage(spec, "main", datasets,
                       run_name=f"bench-throughput-{workers}w{threads}t{bucket_mb:g}mb-{int(time.time())}")
    total = time.perf_counter() - start
    rates = [h["samples_per_s"] for h in result.history]
    training = sum(h["epoch_time_s"] for h in result.history)
    steady = result.history[1:] or result.history
    allreduce = float(np.mean([h.get("allreduce_ms_per_step", 0.0) for h in steady]))
    buckets = float(np.mean([h.get("allreduce_buckets", 0.0) for h in steady]))
    wait = float(np.mean([h.get("data_wait_fraction", 0.0) for h in steady]))
    return rates, total - training, allreduce, buckets, wait


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--size", type=int, default=96,
                        help="crop side (multiple of 32): compute per sample grows with its square, the "
                             "all-reduce (the model's gradients) stays")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sportpose-bench-") as tmp:
        os.environ["SPORTPOSE_RUNS"] = tmp
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        spec = load_spec(SPEC, [*OVERRIDES, f"data.root={os.path.join(tmp, 'data')}",
                                f"data.input_size=[{args.size}, {args.size}]",
                                f"data.synth={{clips: {args.clips}, frames: 24, width: 320, height: 240, "
                                f"max_players: 3, seed: 11}}",
                                f"train.stages.main={{epochs: {args.epochs}, batch_size: 32, "
                                f"scaling: {{num_workers: 1, torch_threads: 1}}}}"])
        init_ray(num_cpus=2)
        root = prepare_data(spec, log=lambda _: None)
        clips = load_clips(root, spec.data.splits, spec.seed)
        train, report = build_split(clips, spec.data, "train", spec.seed)
        val, _ = build_split(clips, spec.data, "val", spec.seed)
        print(f"data: {report.samples} training samples, batch 32 per worker, {args.epochs} epochs (first is warm-up)")

        params = sum(p.numel() for p in spec.build_model().parameters())
        print(f"model: {params / 1e6:.2f}M parameters ({params * 4 / 2**20:.1f} MB of float32 gradients)")
        datasets = {"train": train, "val": val}
        plain = plain_loop(spec, train)
        one, start_one, _, _, wait_one = ray_train(spec, datasets, 1)
        two, start_two, allreduce, buckets, wait_two = ray_train(spec, datasets, 2)
        threads2, start_threads2, _, _, wait_threads2 = ray_train(spec, datasets, 1, threads=2)
        small, start_small, allreduce_small, buckets_small, _ = ray_train(spec, datasets, 2,
                                                                          bucket_mb=SMALL_BUCKET_MB)
        cached, start_cached, _, _, wait_cached = ray_train(spec, datasets, 2, cache=True)
        cached_1w2t, _, _, _, _ = ray_train(spec, datasets, 1, threads=2, cache=True)
        shutdown_ray()

    def steady(r: list[float]) -> float:
        return float(np.mean(r[1:])) if len(r) > 1 else float(r[0])

    a, b, c, d, e = steady(plain), steady(one), steady(two), steady(threads2), steady(small)
    f, g = steady(cached), steady(cached_1w2t)
    step_ms = 1000.0 * 32 / c  # one global step of (c), both workers in parallel
    print(f"{'setup':<36}{'samples/s (steady)':>20}{'per epoch':>40}{'start-up s':>12}")
    print(f"{'(a) plain PyTorch, 1 thread':<36}{a:>20.1f}{str([round(x, 1) for x in plain]):>40}{'-':>12}")
    print(f"{'(b) Ray Train, 1 worker x 1 thread':<36}{b:>20.1f}{str([round(x, 1) for x in one]):>40}{start_one:>12.1f}")
    print(f"{'(c) Ray Train, 2 workers x 1 thread':<36}{c:>20.1f}{str([round(x, 1) for x in two]):>40}{start_two:>12.1f}")
    print(f"{'(d) Ray Train, 1 worker x 2 threads':<36}{d:>20.1f}{str([round(x, 1) for x in threads2]):>40}"
          f"{start_threads2:>12.1f}")
    print(f"{f'(e) as (c), {SMALL_BUCKET_MB:g} MB buckets':<36}{e:>20.1f}{str([round(x, 1) for x in small]):>40}"
          f"{start_small:>12.1f}")
    print(f"{'(f) as (c), cache_samples':<36}{f:>20.1f}{str([round(x, 1) for x in cached]):>40}"
          f"{start_cached:>12.1f}")
    print(f"{'(g) as (d), cache_samples':<36}{g:>20.1f}{str([round(x, 1) for x in cached_1w2t]):>40}{'':>12}")
    print(f"gloo all-reduce per step: (c) {allreduce:.1f} ms over {buckets:.0f} bucket(s), (e) {allreduce_small:.1f} ms "
          f"over {buckets_small:.0f} buckets; a step of (c) takes {step_ms:.0f} ms")
    print(f"share of an epoch spent waiting for the next batch: (b) {wait_one:.2f}, (c) {wait_two:.2f}, "
          f"(d) {wait_threads2:.2f}, (f) {wait_cached:.2f}")
    print(f"with the samples cached in the workers (cache_samples): (f)/(g) = {f / g:.2f}   (f)/(d) = {f / d:.2f}")
    print(f"(b)/(a) = {b / a:.2f} (target >= 0.9)   (c)/(d) = {c / d:.2f} (target >= 1.0)   (c)/(b) = {c / b:.2f}   "
          f"(e)/(c) = {e / c:.2f}")
    print(f"ratio_ray_vs_plain={b / a:.3f} ratio_2w_vs_1w2t={c / d:.3f} ratio_2w_vs_1w2t_cached={f / g:.3f} "
          f"ratio_2w_vs_1w={c / b:.3f} ratio_small_buckets={e / c:.3f} allreduce_ms_per_step={allreduce:.1f} "
          f"allreduce_ms_per_step_small_buckets={allreduce_small:.1f} step_ms_2w={step_ms:.0f} "
          f"samples_per_s_plain={a:.1f} samples_per_s_ray_1w={b:.1f} samples_per_s_ray_2w={c:.1f} "
          f"samples_per_s_ray_1w2t={d:.1f} samples_per_s_ray_2w_small_buckets={e:.1f} startup_s_1w={start_one:.1f} "
          f"startup_s_2w={start_two:.1f} data_wait_1w={wait_one:.2f} data_wait_2w={wait_two:.2f} "
          f"data_wait_1w2t={wait_threads2:.2f} load_1m={os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
