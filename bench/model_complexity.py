"""Model complexity: parameters, GMACs, GFLOPs and CPU latency at batch 1, beside the papers' figures (SPEC §7).

Run: ``python bench/model_complexity.py`` (about two minutes on 2 CPU cores). The counter itself is
:mod:`sportpose.evaluation.complexity`, which ``sportpose evaluate`` uses for its complexity row.

Conventions, stated because papers mix them up:

- **GMACs** = 10^9 multiply-accumulates. **GFLOPs** = 10^9 floating-point operations = 2 x GMACs. Both are
  counted by ``torch.utils.flop_counter.FlopCounterMode``, which counts 2 FLOPs per MAC of convolutions
  (transposed ones included) and matrix products (linear, bmm, attention) and nothing else (BatchNorm,
  activations, pooling, interpolation, softmax are left out, as fvcore and the pose papers' counters do).
  It does not see inside ``nn.LSTM``'s fused kernel (counted as 0; a two-layer LSTM over L=8 vectors of
  256 is 0.008 GMACs) nor the transformer's fused inference path, which is switched off here.
- Most pose papers' "GFLOPs" are GMACs: HRNet-W32 at 256x192 is reported as 7.10 GFLOPs (Sun et al.,
  CVPR 2019, Table 1) and measures about 7.6 *GMACs* (15 GFLOPs) here, see the calibration row (HRNet has
  no transposed convolution, whose counting differs between counters). The MultiStream paper's 45.6
  "GFLOPs" is compared with GMACs for that reason; its parameter count says nothing about the convention.
- Latency: batch 1, ``torch.set_num_threads(2)``, eval mode, no grad, median (and minimum) of ``RUNS`` runs
  after ``WARMUP`` warm-up runs, on this machine's CPU (the paper's 25.1 FPS is on a V100). On a shared
  machine single runs can stall for seconds; the minimum is the figure that survives that.

MultiStream paper configuration (SPEC §4 "paper scale"): ResNet-50 spatial backbone, 256x256 crops, T=5,
L=8, the default light ResNet-18 to C4 for the temporal stream, a ResNet-18 context backbone on 256x256
context frames (the paper evaluates at a "uniform input resolution (256 x 256)"; it gives no separate
context size), transformer context model (its stage-1 pre-training section) and hybrid fusion (its best).
Parameters are those of the whole module, including the 0.27M of the masked-frame-modelling decoder that
only stage-1 pre-training uses.

STSP-Net paper configuration (SPEC §5 "paper scale", ``experiments/stsp_paper.yaml``): HRNet-W32, 256x256
crops, a tube of T=6 frames (τ=5 past poses and the current frame) with the optical flow between them, GAT
2x256, TMP 256; the demo configuration is ``experiments/stsp_demo.yaml``'s (hrnet_w18_small at width 16,
64x64 crops, GAT 2x64, TMP 64). One forward pass is the whole tube (EPE on every frame, GSR per frame, TMP),
task "full". The paper gives neither parameters nor FLOPs (it claims "real-time efficiency" only).

The last line of the output is one line of ``name=value`` pairs for the run log; add new models (e.g.
STSP-Net) as rows of :func:`main` and as pairs of that line.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from sportpose.models.backbones import build_backbone
from sportpose.models.heatmaps import normalize_images
from sportpose.models.multistream import MultiStream, MultiStreamConfig
from sportpose.models.stsp import STSPConfig, STSPNet, complexity_inputs
from sportpose.evaluation.complexity import complexity as _complexity

THREADS = 2
WARMUP = 1  # plus the FLOP-counting pass, which runs first
RUNS = 5
NUM_JOINTS = 17  # PoseTrack

PAPER_MULTISTREAM = {"params_m": 60.1, "gflops_as_reported": 45.6, "fps_v100": 25.1}  # Table 12
PAPER_HRNET_W32 = {"params_m": 28.5, "gflops_as_reported": 7.10}  # HRNet's Table 1, 256x192


def complexity(model: nn.Module, inputs: dict[str, torch.Tensor], forward=None) -> dict:
    """The package's counter (:func:`sportpose.evaluation.complexity.complexity`, which
    ``sportpose evaluate`` prints too) with this bench's warm-up and run counts."""
    return _complexity(model, inputs, forward, warmup=WARMUP, runs=RUNS)


def print_table(rows: list[tuple[str, dict, str]]) -> None:
    """One row per model: name, measured figures, and the published figures to compare with."""
    header = (
        f"{'model':<34} {'params(M)':>9} {'GMACs':>8} {'GFLOPs':>8} {'median(ms)':>10} {'min(ms)':>8} {'FPS':>6}"
        "  reported"
    )
    print(header)
    print("-" * len(header))
    for name, r, reported in rows:
        print(
            f"{name:<34} {r['params_m']:>9.2f} {r['gmacs']:>8.2f} {r['gflops']:>8.2f} "
            f"{r['latency_ms']:>10.1f} {r['latency_min_ms']:>8.1f} {r['fps']:>6.2f}  {reported}"
        )


def multistream_inputs(config: MultiStreamConfig) -> dict[str, torch.Tensor]:
    """A batch of one: uint8 tube (1, T, H, W, 3) and context clip (1, L, Hc, Wc, 3)."""
    h, w = config.input_size
    hc, wc = config.context_size
    return {
        "tube": torch.randint(0, 256, (1, config.window, h, w, 3), dtype=torch.uint8),
        "context": torch.randint(0, 256, (1, config.context_len, hc, wc, 3), dtype=torch.uint8),
    }


def paper_config(**overrides) -> MultiStreamConfig:
    """MultiStream at paper scale (see the module docstring)."""
    base = dict(
        backbone="resnet50", input_size=(256, 256), window=5, context_len=8, context_size=(256, 256),
        context_model="transformer", fusion="hybrid",
    )
    return MultiStreamConfig(**{**base, **overrides})


def demo_config() -> MultiStreamConfig:
    """What a laptop trains in minutes: narrow ResNet-18s (width 32), 128x128 crops, 128x128 context."""
    return MultiStreamConfig(
        backbone="resnet18", width=32, fpn_channels=128, tcm_channels=128, context_hidden=128,
        input_size=(128, 128), window=5, context_len=8, context_size=(128, 128), context_model="mlp",
        fusion="hybrid",
    )


def main() -> None:
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    # The transformer's fused inference kernel is invisible to the FLOP counter; the plain path is counted.
    torch.backends.mha.set_fastpath_enabled(False)

    rows: list[tuple[str, dict, str]] = []

    hrnet = nn.Sequential(build_backbone("hrnet_w32"), nn.Conv2d(32, NUM_JOINTS, 1))  # pose_hrnet_w32
    image = {"image": torch.randint(0, 256, (1, 256, 192, 3), dtype=torch.uint8)}
    calib = complexity(hrnet, image, forward=lambda m, x: m(normalize_images(x["image"])))
    rows.append(("hrnet_w32_256x192 (calibration)", calib, "28.5M, 7.10 'GFLOPs' (HRNet Table 1)"))

    config = paper_config()
    paper = complexity(MultiStream(config, NUM_JOINTS), multistream_inputs(config))
    rows.append(("multistream_paper (R50, 256, T5 L8)", paper, "60.1M, 45.6 'GFLOPs', 25.1 FPS V100"))

    config = paper_config(streams=("spatial",), fusion="none")
    spatial = complexity(MultiStream(config, NUM_JOINTS), multistream_inputs(config))
    rows.append(("spatial_only (R50, 256)", spatial, "baseline: spatial stream alone"))

    config = demo_config()
    demo = complexity(MultiStream(config, NUM_JOINTS), multistream_inputs(config))
    rows.append(("multistream_demo (R18/32, 128)", demo, "-"))

    config = STSPConfig()  # the paper's scale is the config's default
    stsp_paper = complexity(STSPNet(config), complexity_inputs(config, 1, (256, 256)))
    rows.append(("stsp_paper (HRNet-W32, 256, T6)", stsp_paper, "not reported ('real-time')"))

    config = STSPConfig(backbone="hrnet_w18_small", width=16, gat_hidden=64, tmp_dim=64)
    stsp_demo = complexity(STSPNet(config), complexity_inputs(config, 1, (64, 64)))
    rows.append(("stsp_demo (W18-small/16, 64, T6)", stsp_demo, "-"))

    print_table(rows)
    print(f"(load average over the last minute: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
          "latencies are only meaningful on an otherwise idle machine)")
    print()
    print(
        "GMACs = multiply-accumulates; GFLOPs = 2 x GMACs (FlopCounterMode: conv + matmul only). "
        f"The calibration row measures {calib['gmacs']:.2f} GMACs against HRNet-W32's reported 7.10 'GFLOPs': "
        "the papers' 'GFLOPs' are GMACs, so the MultiStream paper's 45.6 is compared with GMACs "
        f"(ratio {paper['gmacs'] / PAPER_MULTISTREAM['gflops_as_reported']:.2f}; against FLOPs it would be "
        f"{paper['gflops'] / PAPER_MULTISTREAM['gflops_as_reported']:.2f})."
    )
    pairs = [
        ("multistream_paper_params_m", paper["params_m"]),
        ("multistream_paper_gmacs", paper["gmacs"]),
        ("multistream_paper_gflops", paper["gflops"]),
        ("params_ratio_vs_paper", paper["params_m"] / PAPER_MULTISTREAM["params_m"]),
        ("gmacs_ratio_vs_paper", paper["gmacs"] / PAPER_MULTISTREAM["gflops_as_reported"]),
        ("gflops_ratio_vs_paper", paper["gflops"] / PAPER_MULTISTREAM["gflops_as_reported"]),
        ("hrnet_w32_gmacs_ratio_vs_reported", calib["gmacs"] / PAPER_HRNET_W32["gflops_as_reported"]),
        ("spatial_only_params_m", spatial["params_m"]),
        ("spatial_only_gmacs", spatial["gmacs"]),
        ("demo_params_m", demo["params_m"]),
        ("demo_gmacs", demo["gmacs"]),
        ("multistream_paper_latency_ms", paper["latency_ms"]),
        ("multistream_paper_latency_min_ms", paper["latency_min_ms"]),
        ("spatial_only_latency_ms", spatial["latency_ms"]),
        ("demo_latency_ms", demo["latency_ms"]),
        ("hrnet_w32_latency_ms", calib["latency_ms"]),
        ("stsp_paper_params_m", stsp_paper["params_m"]),
        ("stsp_paper_gmacs", stsp_paper["gmacs"]),
        ("stsp_paper_gflops", stsp_paper["gflops"]),
        ("stsp_demo_params_m", stsp_demo["params_m"]),
        ("stsp_demo_gmacs", stsp_demo["gmacs"]),
        ("stsp_paper_latency_ms", stsp_paper["latency_ms"]),
        ("stsp_demo_latency_ms", stsp_demo["latency_ms"]),
        ("load_1m", os.getloadavg()[0]),  # latencies mean little when this exceeds the core count
    ]
    print(" ".join(f"{key}={value:.4g}" for key, value in pairs))


if __name__ == "__main__":
    main()
