"""GPU figures in one command: paper-scale MultiStream and STSP-Net FPS at batch 1, MultiStream training
samples/s with ``amp: bf16`` at batch 32, and the data path's tubes/s per CPU core feeding it (issue 25).

Run: ``python bench/gpu.py`` on a machine with a CUDA GPU (a few minutes). Without one it prints one line
saying so and exits 0. ``python bench/gpu.py --device cpu --tiny`` runs the same code on the CPU with tiny
shapes (bf16 autocast, timing with synchronisation, the data feed), so that nothing here runs for the first
time on a GPU; ``tests/bench/test_gpu.py`` does that.

What is measured:

- **FPS at batch 1**: the paper-scale models of ``bench/model_complexity.py`` (MultiStream: ResNet-50,
  256x256, T=5, L=8 context frames of 256x256, transformer context model, hybrid fusion; STSP-Net: HRNet-W32,
  256x256, T=6 with flow, task ``full``), eval mode, no grad, float32 (the 2D paper's Table 12 measures 25.1
  FPS on a V100 this way), and again under bf16 autocast. Each timed run ends with ``torch.cuda.synchronize``
  (kernels are asynchronous: without it the clock stops when the launch returns); the median of ``RUNS``.
- **Training samples/s**: MultiStream's fused task, Adam, batch 32 under ``torch.autocast(dtype=bfloat16)`` as
  the stage loop's ``amp: bf16`` runs it (:func:`sportpose.training.loop.train_epoch`), on batches of real
  tubes cut by the data path (uint8 on the host, copied to the device, normalised there), synchronised.
- **Data feed**: :func:`sportpose.data.tubes.cut_clip_columns` in this process (one core, one decoder thread)
  on SynthCourt clips of 1280x720 at the training shape: tubes/s per core, and the cores one GPU needs to be
  fed at the training rate (``cores_per_gpu = samples/s / tubes/s per core``).

The last line is ``name=value`` pairs: ``cores_per_gpu``, the FPS figures, ``train_samples_per_s_bf16`` and
``tubes_per_s_per_core``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ itself: model_complexity's paper configs

WARMUP, RUNS, TRAIN_STEPS = 3, 20, 10
TINY_WARMUP, TINY_RUNS, TINY_TRAIN_STEPS = 1, 2, 2


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued kernels (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, warmup: int, runs: int) -> list[float]:
    """Seconds of each of ``runs`` calls of ``fn`` after ``warmup`` calls, each synchronised at both ends."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        synchronize(device)
        out.append(time.perf_counter() - start)
    return out


def autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def models(tiny: bool):
    """(MultiStream config, STSP-Net config): the paper's scale, or tiny shapes for the CPU test."""
    from model_complexity import paper_config

    from sportpose.models.multistream import MultiStreamConfig
    from sportpose.models.stsp import STSPConfig

    if tiny:
        ms = MultiStreamConfig(width=8, fpn_channels=16, deconv_channels=16, context_hidden=16, context_len=2,
                               window=3, input_size=(64, 64), context_size=(64, 64), tcm_channels=16,
                               diff_channels=8, context_layers=1, context_heads=2, context_model="transformer",
                               fusion="hybrid")
        stsp = STSPConfig(backbone="hrnet_w18_small", width=8, window=3, tau=2, gat_hidden=16, tmp_dim=16,
                          tmp_heads=2)
        return ms, stsp
    return paper_config(), STSPConfig()  # STSPConfig's defaults are the paper's scale


def fps(model: torch.nn.Module, inputs: dict, device: torch.device, bf16: bool, warmup: int, runs: int,
        **kwargs) -> float:
    """Frames (samples) per second at batch 1: the median of the synchronised runs."""
    model.eval()
    inputs = {k: v.to(device) for k, v in inputs.items()}

    @torch.no_grad()
    def run():
        with autocast(device, bf16):
            model(inputs, **kwargs)

    return 1.0 / statistics.median(timed(run, device, warmup, runs))


def data_feed(config, tiny: bool) -> tuple[float, dict]:
    """Tubes/s of the data path in this process (one core) at the model's shapes, and the columns it cut."""
    import cv2

    from sportpose.data import synthcourt
    from sportpose.data.dataset import load_clips
    from sportpose.data.tubes import cut_clip_columns
    from sportpose.paths import runs_dir
    from sportpose.spec.data import SynthConfig
    from sportpose.spec.experiment import DataSpec

    cv2.setNumThreads(1)
    clips, frames, width, height = (1, 12, 320, 240) if tiny else (4, 60, 1280, 720)
    root = runs_dir() / "bench" / f"gpu-synthcourt-{width}x{height}-{clips}x{frames}"
    synthcourt.generate(root, SynthConfig(clips=clips, frames=frames, width=width, height=height, min_players=1,
                                          max_players=3, seed=5), progress=False)
    data = DataSpec(root=str(root), window=config.window, interval=1, input_size=tuple(config.input_size),
                    context_len=config.context_len, context_size=tuple(config.context_size), frame_stride=1)
    manifest = load_clips(root, (0.0, 1.0, 0.0), seed=0)
    start = time.perf_counter()
    parts = [cut_clip_columns(c, data, seed=0) for c in manifest]
    seconds = time.perf_counter() - start
    n = sum(len(p["frame"]) for p in parts)
    columns = {k: torch.from_numpy(parts[0][k]) for k in ("tube", "context", "heatmaps", "target_weight")}
    return n / seconds, columns


def train_rate(config, columns: dict, device: torch.device, batch: int, steps: int, warmup: int) -> float:
    """MultiStream fused-task training samples/s under bf16 autocast, the batch copied to the device per step."""
    from sportpose.models.multistream import MultiStream
    from sportpose.training import loop

    torch.manual_seed(0)
    model = MultiStream(config, 17).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    rows = torch.arange(batch) % len(columns["tube"])
    host = {k: v[rows] for k, v in columns.items()}  # (B, ...) uint8 tubes and float32 targets
    if device.type == "cuda":
        host = {k: v.pin_memory() for k, v in host.items()}

    def batches(n: int):
        for _ in range(n):
            yield {k: v.to(device, non_blocking=True) for k, v in host.items()}

    def loss_fn(m, b):
        return m.loss(m(b, task="fused"), b, task="fused")

    loop.train_epoch(model, batches(warmup), optimizer, loss_fn, amp=True, device_type=device.type)
    synchronize(device)
    start = time.perf_counter()
    out = loop.train_epoch(model, batches(steps), optimizer, loss_fn, amp=True, device_type=device.type)
    synchronize(device)
    return out["samples"] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny shapes, batch 4: checks the code, measures nothing")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"no CUDA GPU on this machine (torch {torch.__version__}, built for CUDA {torch.version.cuda}): "
              "nothing measured; `python bench/gpu.py --device cpu --tiny` checks the code on the CPU")
        return
    device = torch.device(args.device)
    warmup, runs, steps = (TINY_WARMUP, TINY_RUNS, TINY_TRAIN_STEPS) if args.tiny else (WARMUP, RUNS, TRAIN_STEPS)
    batch = 4 if args.tiny else 32
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name}; shapes: {'tiny' if args.tiny else 'paper'}; batch 1 FPS median of {runs} runs; "
          f"training batch {batch}, bf16 autocast")

    from sportpose.models.multistream import MultiStream
    from sportpose.models.stsp import STSPNet, complexity_inputs

    ms_config, stsp_config = models(args.tiny)
    h, w = ms_config.input_size
    hc, wc = ms_config.context_size
    g = torch.Generator().manual_seed(0)
    ms_inputs = {"tube": torch.randint(0, 256, (1, ms_config.window, h, w, 3), generator=g, dtype=torch.uint8),
                 "context": torch.randint(0, 256, (1, ms_config.context_len, hc, wc, 3), generator=g,
                                          dtype=torch.uint8)}
    ms = MultiStream(ms_config, 17).to(device)
    ms_fps = fps(ms, ms_inputs, device, False, warmup, runs)
    ms_fps_bf16 = fps(ms, ms_inputs, device, True, warmup, runs)
    del ms
    stsp = STSPNet(stsp_config).to(device)
    stsp_inputs = complexity_inputs(stsp_config, 1, tuple(ms_config.input_size))
    stsp_fps = fps(stsp, stsp_inputs, device, False, warmup, runs, task="full")
    stsp_fps_bf16 = fps(stsp, stsp_inputs, device, True, warmup, runs, task="full")
    del stsp
    print(f"MultiStream batch 1: {ms_fps:.1f} FPS float32, {ms_fps_bf16:.1f} FPS bf16 (paper: 25.1 on a V100)")
    print(f"STSP-Net   batch 1: {stsp_fps:.1f} FPS float32, {stsp_fps_bf16:.1f} FPS bf16")

    feed, columns = data_feed(ms_config, args.tiny)
    print(f"data feed: {feed:.1f} tubes/s per core (T={ms_config.window} {h}x{w} tubes + {ms_config.context_len} "
          f"context frames {hc}x{wc}, heatmaps; 1 process, 1 decoder thread)")
    samples = train_rate(ms_config, columns, device, batch, steps, warmup)
    cores = samples / feed
    print(f"MultiStream training: {samples:.1f} samples/s (batch {batch}, bf16 autocast, Adam); "
          f"{cores:.1f} CPU cores of this data path feed it")
    print(f"cores_per_gpu={cores:.2f} multistream_fps={ms_fps:.2f} multistream_fps_bf16={ms_fps_bf16:.2f} "
          f"stsp_fps={stsp_fps:.2f} stsp_fps_bf16={stsp_fps_bf16:.2f} train_samples_per_s_bf16={samples:.1f} "
          f"tubes_per_s_per_core={feed:.1f} device={name.replace(' ', '_')} tiny={int(args.tiny)}")


if __name__ == "__main__":
    main()
