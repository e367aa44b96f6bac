"""Model complexity: parameters, GMACs, GFLOPs and latency at batch 1 on the machine at hand (SPEC §7).

The counter of ``bench/model_complexity.py``, moved here so that ``sportpose evaluate`` prints the same
complexity row the bench measures (the bench imports it from here). Conventions, stated because papers mix
them up:

- **GMACs** = 10^9 multiply-accumulates, **GFLOPs** = 10^9 floating-point operations = 2 x GMACs, both from
  ``torch.utils.flop_counter.FlopCounterMode``: 2 FLOPs per MAC of convolutions (transposed ones included) and
  matrix products (linear, bmm, attention), nothing else (BatchNorm, activations, pooling, interpolation and
  softmax are left out, as fvcore and the pose papers' counters do). ``nn.LSTM``'s fused kernel is not seen
  (counted as 0), nor the transformer's fused inference path, which :func:`complexity` switches off while it
  counts.
- **Latency**: batch 1, eval mode, no grad, the median (and minimum) of ``runs`` timed passes after
  ``warmup`` untimed ones, with the torch threads the process has; FPS = 1000 / median latency (ms).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sportpose.models.stsp import example_placement
from sportpose.spec.data import DataSpec


def complexity(model: nn.Module, inputs: dict[str, torch.Tensor], forward: Callable | None = None,
               warmup: int = 1, runs: int = 5) -> dict[str, float]:
    """Parameters, MACs, FLOPs and batch-1 latency of one forward pass.

    Args:
        model: the model, put in eval mode here.
        inputs: one batch (batch size 1) as the model's forward takes it.
        forward: ``forward(model, inputs)``; default ``model(inputs)``.
        warmup: untimed passes after the counting pass.
        runs: timed passes.

    Returns:
        ``params_m`` (millions), ``gmacs``, ``gflops`` (= 2 x gmacs), ``latency_ms`` (median),
        ``latency_min_ms``, ``fps`` (from the median).
    """
    forward = forward or (lambda m, x: m(x))
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused transformer kernel is invisible to the counter
    try:
        with torch.no_grad():
            counter = FlopCounterMode(display=False)
            with counter:
                forward(model, inputs)
            flops = counter.get_total_flops()
            for _ in range(warmup):
                forward(model, inputs)
            times = []
            for _ in range(max(1, runs)):
                start = time.perf_counter()
                forward(model, inputs)
                times.append(time.perf_counter() - start)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    latency = statistics.median(times) * 1000
    return {
        "params_m": params / 1e6,
        "gmacs": flops / 2e9,
        "gflops": flops / 1e9,
        "latency_ms": latency,
        "latency_min_ms": min(times) * 1000,
        "fps": 1000 / latency,
    }


def example_inputs(model: nn.Module, data: DataSpec, batch: int = 1, seed: int = 0) -> dict[str, torch.Tensor]:
    """A batch of ``batch`` (B) for ``model`` as the data section ``data`` (a ``DataSpec``) cuts its samples:
    ``tube`` (B, T, H, W, 3) uint8, and ``context`` (B, L, Hc, Wc, 3) uint8 / ``flow`` (B, T-1, H, W, 2)
    float32 / ``affine`` (B, 2, 3) and ``frame_size`` (B, 2) where the model reads them. Random content seeded
    by ``seed``."""
    g = torch.Generator().manual_seed(seed)
    h, w = data.input_size
    shapes = {
        "tube": ((batch, data.window, h, w, 3), torch.uint8),
        "image": ((batch, h, w, 3), torch.uint8),
        "context": ((batch, data.context_len, *data.context_size, 3), torch.uint8),
        "flow": ((batch, max(data.window - 1, 1), h, w, 2), torch.float32),
    }
    inputs = {}
    placement = {"affine", "frame_size"} & set(model.input_names())
    if placement:  # where the crop sits in the frame (STSP-Net's frame_position): a valid placement, not noise
        inputs.update(example_placement(batch, (h, w)))
    for name in model.input_names():
        if name in placement:
            continue
        shape, dtype = shapes[name]
        inputs[name] = (torch.randint(0, 256, shape, generator=g, dtype=dtype) if dtype == torch.uint8
                        else 2.0 * torch.randn(shape, generator=g))
    return inputs
