"""Training throughput: the same model and data in a plain PyTorch loop and in Ray Train with 1 and 2 workers.

Steady-state samples/s are the mean over the epochs after a warm-up epoch, each process with one intra-op
thread; start-up time (Ray Train's worker group, dataset split) is measured apart. Prints (b)/(a): what
Ray Train costs over plain PyTorch, and (c)/(b): how two DDP workers of 1 CPU scale over one.

Run: python bench/train_throughput.py [--epochs 4] [--clips 16]
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
OVERRIDES = ["name=bench-throughput", "seed=0", "data.splits=[0.9, 0.1, 0.0]", "data.input_size=[96, 96]",
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


def ray_train(spec, datasets, workers: int) -> tuple[list[float], float]:
    """(b), (c): the stage engine with ``workers`` DDP workers of 1 CPU; returns per-epoch rates, start-up s."""
    from sportpose.spec.experiment import apply_overrides, spec_from_dict, spec_to_dict

    spec = spec_from_dict(apply_overrides(spec_to_dict(spec), [f"train.stages.main.scaling.num_workers={workers}"]))
    start = time.perf_counter()
    result = run_stage(spec, "main", datasets, run_name=f"bench-throughput-{workers}w-{int(time.time())}")
    total = time.perf_counter() - start
    rates = [h["samples_per_s"] for h in result.history]
    training = sum(h["epoch_time_s"] for h in result.history)
    return rates, total - training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--clips", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sportpose-bench-") as tmp:
        os.environ["SPORTPOSE_RUNS"] = tmp
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        spec = load_spec(SPEC, [*OVERRIDES, f"data.root={os.path.join(tmp, 'data')}",
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

        plain = plain_loop(spec, train)
        one, start_one = ray_train(spec, {"train": train, "val": val}, 1)
        two, start_two = ray_train(spec, {"train": train, "val": val}, 2)
        shutdown_ray()

    def steady(r: list[float]) -> float:
        return float(np.mean(r[1:])) if len(r) > 1 else float(r[0])

    a, b, c = steady(plain), steady(one), steady(two)
    print(f"{'setup':<28}{'samples/s (steady)':>20}{'per epoch':>40}{'start-up s':>12}")
    print(f"{'(a) plain PyTorch, 1 thread':<28}{a:>20.1f}{str([round(x, 1) for x in plain]):>40}{'-':>12}")
    print(f"{'(b) Ray Train, 1 worker':<28}{b:>20.1f}{str([round(x, 1) for x in one]):>40}{start_one:>12.1f}")
    print(f"{'(c) Ray Train, 2 workers':<28}{c:>20.1f}{str([round(x, 1) for x in two]):>40}{start_two:>12.1f}")
    print(f"(b)/(a) = {b / a:.2f}  (target >= 0.9)    (c)/(b) = {c / b:.2f}  (target >= 1.6)")
    print(f"ratio_ray_vs_plain={b / a:.3f} ratio_2w_vs_1w={c / b:.3f} samples_per_s_plain={a:.1f} "
          f"samples_per_s_ray_1w={b:.1f} samples_per_s_ray_2w={c:.1f} startup_s_1w={start_one:.1f} "
          f"startup_s_2w={start_two:.1f} load_1m={os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
