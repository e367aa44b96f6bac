"""MultiStream: spatial, temporal and contextual streams fused early, late or hybrid (SPEC §4).

Zhang et al., "Learning spatio-temporal context for basketball action pose estimation with a multi-stream
network", Sci. Rep. 15, 29173 (2025). Input: a person tube ``tube`` (B, T, H, W, 3) uint8 whose centre frame
T//2 is the annotated frame t, and the context clip ``context`` (B, L, Hc, Wc, 3) uint8 of the L full frames
ending at t. Output: K heatmaps at H/4 x W/4 for frame t.

Streams (each a module of this file; blocks take plain arguments, only :class:`MultiStream` takes the config):

- **spatial** (:class:`SpatialStream`): backbone on X_t -> C3..C5; FPN top-down (1x1 laterals to
  ``fpn_channels``); concatenation of P3 with P4 and P5 upsampled to P3 (stride 8); ``spatial_convs`` fuse
  convs (``spatial_kernel`` x ``spatial_kernel``, ``spatial_filters`` each; default one 3x3 conv); SAM =
  position attention (DANet) then a spatial gate (CBAM); one stride-2 deconvolution to stride 4 -> ``feat_s``;
  1x1 head -> Ŷ_s.
- **temporal** (:class:`TemporalStream`): a light ResNet to C4 (stride 16) on every frame of the tube; the
  T-1 frame differences encoded by strided convs to stride 16; per-frame maps stacked in time; temporal
  convolution module (TCM); the centre time step; two stride-2 deconvolutions to stride 4 -> ``feat_t``;
  1x1 head -> Ŷ_t.
- **context** (:class:`ContextStream`): backbone on each of the L full frames, global average pooling, FC to
  D_c -> frame vectors v_1..v_L; a sequence model (``mlp`` | ``lstm`` | ``transformer``) -> context vector c;
  an MLP to K x 16 x 16 bilinearly upsampled to H/4 x W/4 -> Ŷ_c.

Decisions where the SPEC is silent or does not compose (SPEC §0: "write the decision down"):

- **Spatial resolution.** The SPEC concatenates "P3 with upsampled P4 and P5" and then asks for "two stride-2
  deconvolutions to stride 4"; P3 is at stride 8, so two deconvolutions would land at stride 2. The
  concatenation at P3 (the paper's multi-scale fusion of F_{L-2}, F_{L-1}, F_L) and the stride-4 output are
  kept, with *one* stride-2 deconvolution. SAM runs at stride 8 (as DANet's position attention does).
- **The spatial stream's convolution layers** (the paper's Table 6: "the number of convolutional layers, filter
  size, and the number of filters per layer" of the spatial stream, 3 to 7 layers, 3x3 or 5x5, 64 or 128
  filters). Counted are the convolutions the spatial stream adds at stride 8 between the backbone's pyramid and
  SAM: the fuse conv of [P3; up(P4); up(P5)] and ``spatial_convs`` - 1 more conv-BN-ReLU layers after it, all
  ``spatial_kernel`` x ``spatial_kernel`` with ``spatial_filters`` output channels (SAM and the deconvolution
  then take that width). Not counted: the backbone's layers (Table 5 varies the backbone), the FPN laterals
  (1x1 channel projections, no spatial filter), SAM's convolutions (the attention module, ablated by ``sam``)
  and the deconvolution (the upsampling to stride 4). The default, one 3x3 conv of ``fpn_channels`` filters,
  is the model as the SPEC describes it; its parameter names (``spatial.fpn.fuse``) are unchanged, the extra
  layers are ``spatial.fpn.convs``.
- **Aligning the T-1 differences with the T frames.** D_k = X_{k+1} - X_k (k = 1..T-1) is encoded once to
  E_k. Frame k is given both differences that touch it, [E_{k-1}; E_k] (backward and forward motion), with
  zeros where the window ends (E_0 = E_T = 0, "no motion known"; a tube clamped at a clip end repeats frames
  and gives zero differences too). The alignment is symmetric, every D_k is used, and the centre frame sees
  the motion into and out of t. The TCM keeps T time steps (temporal padding 1); "pool over time at the
  centre" takes the centre step T//2, whose receptive field spans ±``tcm_blocks`` frames (the whole window
  at T=5 with the default two blocks). Differences are taken on the normalised images.
- **Context vector.** ``mlp`` (the paper's method section): mean over the L frame vectors, then a two-layer
  MLP. ``lstm`` and ``transformer`` (with learned positions): c is the output at the last step, which is the
  current frame t (the clip ends at t).
- **Masked frame modelling** (stage 1 of the context stream, the continuous analogue of the paper's MLM):
  per sample a ratio r ~ U(mask_ratio) is drawn and round(r·L) frame vectors (at least 1, at most L-1 when
  L > 1) are replaced by a learned mask token; the sequence model runs on the masked sequence and a small
  decoder (module ``mfm``) predicts each frame vector from [h_l; c; position_l] (h_l the sequence model's
  output at l; the ``mlp`` model has no per-step output, so h_l = c and the position says which frame to
  predict). The loss is the MSE over the masked positions against the unmasked frame vectors, detached and
  layer-normalised (without affine) — as MAE / data2vec normalise their targets, so that the encoder cannot
  shrink the loss by shrinking its vectors. The coarse heatmap head is trained in the same step on c from a
  second, unmasked run of the (cheap) sequence model, so Ŷ_c is trained on what it sees at fusion time. In
  eval mode the mask comes from a fixed seed, so validation losses are comparable between epochs.
- **Missing streams** (``streams`` omits some, for the ablations): the fusions use the streams present, in
  the order spatial, temporal, context. ``early``/``hybrid`` concatenate the present feature maps (and tile(P c)
  only with a context stream; hybrid's second stage takes the present ones of Ŷ_s, Ŷ_t) and need spatial or
  temporal; ``late`` renormalises the present streams' weights to sum 1 (absent streams' weights are ignored);
  ``none`` averages the present predictions. With one stream, ``late`` and ``none`` return its prediction.
- **Dropout** sits before the final 1x1 head of ``early`` and ``hybrid`` fusion; ``late``/``none`` have no head.
- **Fused loss.** ``early``/``hybrid``: the fused heatmaps' MSE. ``late``/``none`` learn no weights, so the
  loss is the sum of the stream heads' MSEs. Every variant also logs the others (detached).
- **Tasks and DDP.** ``forward(task=X)`` runs only the modules of task X. Parameters a task computes with
  but does not train are excluded from :meth:`MultiStream.trainable_prefixes` (for "fused": ``mfm``, and the
  stream heads whose heatmaps are only returned for caching — all three with ``early``, the context head with
  ``hybrid``); the stage sets ``requires_grad=False`` outside those prefixes so that DDP runs with
  ``find_unused_parameters=False``.

Paper scale is ``backbone=resnet50``, 256 x 256, T=5, L=8; ``bench/model_complexity.py`` reports its
parameters and MACs beside the paper's 60.1M and 45.6 "GFLOPs".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from sportpose.errors import SpecError
from sportpose.models.backbones import build_backbone
from sportpose.models.backbones.efficientnet import B0_STAGES, EfficientNet
from sportpose.models.backbones.resnet import ResNet
from sportpose.models.backbones.vgg import VGG
from sportpose.models.family import PCKH, TaskMetric
from sportpose.models.heatmaps import heatmap_mse, normalize_images, pckh_counts
from sportpose.models.simplebaseline import deconv_stack

STREAMS = ("spatial", "temporal", "context")
RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101")
PYRAMID_BACKBONES = (*RESNETS, "vgg16", "efficientnet_b3")  # those returning C2..C5 (HRNet does not)
WIDTH_BACKBONES = (*RESNETS, "vgg16")  # those taking a ``width``; EfficientNet-B3's widths are fixed
CONTEXT_MODELS = ("mlp", "lstm", "transformer")
FUSIONS = ("early", "late", "hybrid", "none")
CONV_TYPES = ("3d", "2plus1d")
COARSE_SIZE = 16  # Ŷ_c is predicted on a 16x16 grid (SPEC §4), then upsampled to H/4 x W/4
INPUT_MULTIPLE = 32  # crops and context frames: multiples of the backbones' largest stride
EVAL_MASK_SEED = 0  # fixed masks in eval mode: validation MFM losses comparable across epochs


@dataclass(frozen=True)
class MultiStreamConfig:
    kind: Literal["multistream"] = "multistream"
    backbone: str = "resnet18"  # spatial stream: resnet18/34/50/101, vgg16, efficientnet_b3 (paper: resnet50)
    width: int = 64  # base width of every ResNet/VGG backbone (64 = published, ImageNet-loadable; 32 = demo)
    # The temporal and context backbones run on T and L frames per sample: a CPU demo affords them narrower.
    temporal_width: int | None = None  # None: `width`
    context_width: int | None = None  # None: `width`
    temporal_backbone: str = "resnet18"  # light ResNet of the temporal stream, built only to C4
    context_backbone: str = "resnet18"  # backbone run on each of the L full frames
    fpn_channels: int = 256  # FPN lateral width (SPEC: 256)
    # The spatial stream's own conv layers (Table 6; see "The spatial stream's convolution layers" above): the
    # fuse conv of the concatenated pyramid and spatial_convs - 1 more after it, at stride 8 before SAM
    spatial_convs: int = 1  # number of those layers (>= 1; the paper's rows: 3, 5, 7)
    spatial_kernel: int = 3  # their filter size (odd; the paper's rows: 3, 5)
    spatial_filters: int | None = None  # their output channels, also SAM's width (None: fpn_channels)
    deconv_channels: int = 64  # feat_s / feat_t channels, also the width of the fusion convs (SPEC: 64)
    sam: bool = True  # spatial attention module on/off (for the paper's ablations)
    conv_type: Literal["3d", "2plus1d"] = "3d"  # TCM: Conv3D (3,3,3) or spatial 2D + temporal 1D (Table 7)
    window: int = 5  # T (odd), frames of the tube; must equal data.window
    context_model: Literal["mlp", "lstm", "transformer"] = "mlp"  # sequence model over the L frame vectors
    context_len: int = 8  # L, full frames of the context clip; must equal the data's context length
    context_hidden: int = 256  # D_c, frame vector and context vector size
    context_size: tuple[int, int] = (128, 128)  # Hc, Wc of the context frames (multiples of 32)
    fusion: Literal["early", "late", "hybrid", "none"] = "hybrid"
    fusion_weights: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)  # late fusion w_s, w_t, w_c (>= 0, sum 1)
    dropout: float = 0.5  # before the fusion head (the paper's 0.5)
    mask_ratio: tuple[float, float] = (0.15, 0.3)  # masked frame modelling: share of the L frames masked
    streams: tuple[str, ...] = STREAMS  # which streams exist (ablations: e.g. ("spatial",))
    pretrained: str | None = None  # local ImageNet state dict for the spatial backbone (width 64 only)
    # Fields the paper leaves open (sizes of the blocks it names, per-stream initialisation):
    input_size: tuple[int, int] = (256, 256)  # H, W of the crops: the context task predicts H/4 x W/4
    # heatmaps without seeing a tube, so the size is fixed here; must equal the data's crop size
    temporal_pretrained: str | None = None  # local ImageNet state dict for the temporal ResNet (layer4 skipped)
    context_pretrained: str | None = None  # local ImageNet state dict for the context backbone
    diff_channels: int = 64  # channels of each encoded frame difference (frame k gets two: 2x this)
    tcm_channels: int = 256  # width of the TCM blocks
    tcm_blocks: int = 2  # TCM depth; with kernel 3 the centre step sees ±tcm_blocks frames (2 covers T=5)
    context_layers: int = 2  # layers of the LSTM / transformer (ignored by mlp)
    context_heads: int = 4  # attention heads of the transformer; must divide context_hidden
    mfm_weight: float = 1.0  # weight of the masked-frame reconstruction beside the coarse heatmap MSE

    def __post_init__(self):
        # YAML gives lists; the dataclass is frozen and hashable only with tuples.
        for f in fields(self):
            if isinstance(getattr(self, f.name), list):
                object.__setattr__(self, f.name, tuple(getattr(self, f.name)))
        if self.kind != "multistream":
            raise SpecError("kind", f"expected 'multistream', got {self.kind!r}")
        for name, allowed in (
            ("backbone", PYRAMID_BACKBONES),
            ("temporal_backbone", RESNETS),  # built to C4 (last_stage=4): only the ResNets can stop there
            ("context_backbone", PYRAMID_BACKBONES),
            ("conv_type", CONV_TYPES),
            ("context_model", CONTEXT_MODELS),
            ("fusion", FUSIONS),
        ):
            if getattr(self, name) not in allowed:
                raise SpecError(name, f"expected one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if not self.streams:
            raise SpecError("streams", "needs at least one of spatial, temporal, context")
        for stream in self.streams:
            if stream not in STREAMS:
                raise SpecError("streams", f"unknown stream {stream!r}; expected spatial, temporal, context")
        if len(set(self.streams)) != len(self.streams):
            raise SpecError("streams", f"names a stream twice: {list(self.streams)}")
        if self.width < 8:
            raise SpecError("width", f"must be at least 8, got {self.width}")
        for name in ("temporal_width", "context_width"):
            value = getattr(self, name)
            if value is not None and value < 8:
                raise SpecError(name, f"must be at least 8, got {value}")
        for name in ("fpn_channels", "deconv_channels", "context_hidden", "tcm_channels", "tcm_blocks",
                     "context_layers", "context_heads"):
            if getattr(self, name) < 1:
                raise SpecError(name, f"must be positive, got {getattr(self, name)}")
        if self.spatial_convs < 1:
            raise SpecError("spatial_convs", f"must be at least 1 (the pyramid's fuse conv), got {self.spatial_convs}")
        if self.spatial_kernel < 1 or self.spatial_kernel % 2 == 0:
            raise SpecError("spatial_kernel", f"must be a positive odd size (same padding), got {self.spatial_kernel}")
        if self.spatial_filters is not None and self.spatial_filters < 1:
            raise SpecError("spatial_filters", f"must be positive (or null: fpn_channels), got {self.spatial_filters}")
        if self.diff_channels < 4 or self.diff_channels % 4:
            raise SpecError("diff_channels", f"must be a positive multiple of 4, got {self.diff_channels}")
        if self.window < 1 or self.window % 2 == 0:
            raise SpecError("window", f"must be odd (the centre frame is the annotated one), got {self.window}")
        if "temporal" in self.streams and self.window < 3:
            raise SpecError("window", f"the temporal stream needs at least 3 frames, got {self.window}")
        if self.context_len < 1:
            raise SpecError("context_len", f"must be at least 1, got {self.context_len}")
        if self.context_model == "transformer" and self.context_hidden % self.context_heads:
            raise SpecError(
                "context_heads", f"must divide context_hidden ({self.context_hidden}), got {self.context_heads}"
            )
        for name in ("context_size", "input_size"):
            size = getattr(self, name)
            if len(size) != 2 or any(s < INPUT_MULTIPLE or s % INPUT_MULTIPLE for s in size):
                raise SpecError(name, f"must be two positive multiples of {INPUT_MULTIPLE}, got {list(size)}")
        weights = self.fusion_weights
        if len(weights) != 3:
            raise SpecError("fusion_weights", f"expected three weights (w_s, w_t, w_c), got {list(weights)}")
        if any(not math.isfinite(w) or w < 0 for w in weights):
            raise SpecError("fusion_weights", f"must be non-negative, got {list(weights)}")
        if not math.isclose(sum(weights), 1.0, abs_tol=1e-6):
            raise SpecError("fusion_weights", f"must sum to 1, got {list(weights)} (sum {sum(weights):.6g})")
        if self.fusion == "late" and sum(w for w, s in zip(weights, STREAMS) if s in self.streams) <= 0:
            raise SpecError("fusion_weights", f"the present streams {list(self.streams)} all have weight 0")
        if self.fusion in ("early", "hybrid") and not {"spatial", "temporal"} & set(self.streams):
            raise SpecError("fusion", f"{self.fusion!r} fuses feature maps: needs a spatial or temporal stream")
        if not 0 <= self.dropout < 1:
            raise SpecError("dropout", f"must be in [0, 1), got {self.dropout}")
        if len(self.mask_ratio) != 2 or not 0 < self.mask_ratio[0] <= self.mask_ratio[1] < 1:
            raise SpecError("mask_ratio", f"expected (low, high) with 0 < low <= high < 1, got {list(self.mask_ratio)}")
        if self.mfm_weight < 0:
            raise SpecError("mfm_weight", f"must be non-negative, got {self.mfm_weight}")


# ----------------------------------------------------------------------------------------------------------
# Shared helpers


def conv_bn_relu(in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    """``Sequential(conv kxk, BN, ReLU)`` with "same" padding."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def heatmap_head(in_channels: int, num_joints: int) -> nn.Conv2d:
    """1x1 conv to K heatmaps, initialised small as SimpleBaseline's (predictions start near 0)."""
    head = nn.Conv2d(in_channels, num_joints, 1)
    nn.init.normal_(head.weight, std=0.001)
    nn.init.zeros_(head.bias)
    return head


def pyramid_backbone(name: str, width: int, **kwargs) -> nn.Module:
    """A backbone of :mod:`sportpose.models.backbones`, ``width`` passed where the family has one."""
    if name in WIDTH_BACKBONES:
        kwargs["width"] = width
    return build_backbone(name, **kwargs)


def backbone_stages(backbone: nn.Module) -> list[tuple[str, ...]]:
    """The backbone's stages, first to last, as tuples of its parameter-name prefixes (for freezing).

    ResNet: stem (``conv1``, ``bn1``), ``layer1`` .. ``layer4`` (five stages, four when built to C4).
    VGG: its five conv blocks (the ``features.i`` with parameters up to each max-pool).
    EfficientNet: five stages by output stride 2, 4, 8, 16, 32 (``features.0-1``, ``2``, ``3``, ``4-5``, ``6-8``).
    """
    if isinstance(backbone, ResNet):
        return [("conv1", "bn1")] + [(f"layer{i}",) for i in range(1, backbone.num_stages + 1)]
    if isinstance(backbone, VGG):
        stages: list[tuple[str, ...]] = []
        current: list[str] = []
        for index, layer in enumerate(backbone.features):
            if any(True for _ in layer.parameters()):  # ReLU and max-pool have nothing to freeze
                current.append(f"features.{index}")
            if isinstance(layer, nn.MaxPool2d):
                stages.append(tuple(current))
                current = []
        return stages
    if isinstance(backbone, EfficientNet):
        groups: dict[int, list[str]] = {1: ["features.0"]}  # the stem has stride 2
        stride = 2
        for index, stage in enumerate(B0_STAGES, start=1):
            stride *= stage[2]
            groups.setdefault(int(math.log2(stride)), []).append(f"features.{index}")
        groups[5].append(f"features.{len(B0_STAGES) + 1}")  # the final 1x1 conv, at stride 32
        return [tuple(groups[level]) for level in sorted(groups)]
    raise TypeError(f"no stage table for {type(backbone).__name__}")


def matches_prefix(name: str, prefixes: Sequence[str]) -> bool:
    """Whether the parameter ``name`` lies under one of the module ``prefixes`` (``"a.b"`` is under ``"a"``,
    ``"ab"`` is not)."""
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def late_fuse(predictions: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """Weighted average of heatmaps, the weights renormalised to sum 1; no gradient through the weights.

    Also usable on cached per-stream validation predictions by the late-fusion weight sweep.

    Args:
        predictions: heatmaps of equal shape, e.g. (B, K, H/4, W/4) each.
        weights: one non-negative weight per prediction, not all zero.

    Returns:
        (B, K, H/4, W/4) Σ w_i Ŷ_i / Σ w_i.
    """
    total = float(sum(weights))
    if len(predictions) != len(weights) or total <= 0:
        raise ValueError(f"need one weight per prediction and a positive sum, got {list(weights)}")
    return sum(p * (w / total) for p, w in zip(predictions, weights))  # (B, K, H/4, W/4)


# ----------------------------------------------------------------------------------------------------------
# Spatial stream


class FPNConcat(nn.Module):
    """FPN top-down pathway over C3..C5, then [P3; up(P4); up(P5)] fused by ``layers`` convs at stride 8.

    Lin et al. 2017: P5 = lat(C5), P4 = lat(C4) + up(P5), P3 = lat(C3) + up(P4) (nearest upsampling). The
    per-level 3x3 smoothing convs of FPN are left out: the fuse conv after the concatenation plays their part.

    Args:
        in_channels: channels of C3, C4, C5.
        channels: lateral width (``fpn_channels``).
        layers: conv-BN-ReLU layers after the concatenation (``fuse``, then ``layers`` - 1 in ``convs``).
        kernel: their filter size (odd).
        filters: their output channels, the output width (None: ``channels``).
    """

    def __init__(self, in_channels: Sequence[int], channels: int, layers: int = 1, kernel: int = 3,
                 filters: int | None = None):
        super().__init__()
        filters = filters or channels
        self.out_channels = filters
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.fuse = conv_bn_relu(3 * channels, filters, kernel)
        self.convs = nn.Sequential(*(conv_bn_relu(filters, filters, kernel) for _ in range(layers - 1)))

    def forward(self, c3: torch.Tensor, c4: torch.Tensor, c5: torch.Tensor) -> torch.Tensor:
        p5 = self.lateral[2](c5)  # (B, C, H/32, W/32)
        p4 = self.lateral[1](c4) + F.interpolate(p5, size=c4.shape[-2:], mode="nearest")  # (B, C, H/16, W/16)
        p3 = self.lateral[0](c3) + F.interpolate(p4, size=c3.shape[-2:], mode="nearest")  # (B, C, H/8, W/8)
        size = p3.shape[-2:]
        up4 = F.interpolate(p4, size=size, mode="bilinear", align_corners=False)  # (B, C, H/8, W/8)
        up5 = F.interpolate(p5, size=size, mode="bilinear", align_corners=False)  # (B, C, H/8, W/8)
        return self.convs(self.fuse(torch.cat([p3, up4, up5], dim=1)))  # (B, filters, H/8, W/8)


class PositionAttention(nn.Module):
    """DANet's position attention: F' = γ·V Aᵀ + F with A = softmax(QᵀK) over positions, γ initialised to 0.

    Args:
        channels: C of the input and output.
        reduction: Q and K have C / reduction channels (DANet: 8).
    """

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        inner = max(1, channels // reduction)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))  # starts as the identity; attention is blended in as learnt

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.query(x).flatten(2)  # (B, C', N) with N = h*w
        k = self.key(x).flatten(2)  # (B, C', N)
        v = self.value(x).flatten(2)  # (B, C, N)
        attention = torch.bmm(q.transpose(1, 2), k).softmax(dim=-1)  # (B, N, N): row i attends over j
        out = torch.bmm(v, attention.transpose(1, 2)).view(b, c, h, w)  # (B, C, h, w)
        return self.gamma * out + x  # (B, C, h, w)


class SpatialGate(nn.Module):
    """CBAM's spatial gate: F · σ(conv7x7([mean_c F; max_c F]))."""

    def __init__(self, kernel: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel, padding=kernel // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)  # (B, 2, h, w)
        return x * torch.sigmoid(self.conv(pooled))  # (B, C, h, w)


class SpatialAttention(nn.Module):
    """SAM: position attention, then the spatial gate (SPEC §4)."""

    def __init__(self, channels: int):
        super().__init__()
        self.position = PositionAttention(channels)
        self.gate = SpatialGate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gate(self.position(x))  # (B, C, h, w)


class SpatialStream(nn.Module):
    """Backbone -> FPN concat at stride 8 -> SAM -> deconv to stride 4 (``feat_s``) -> 1x1 head (Ŷ_s).

    Args:
        backbone: a pyramid backbone (C2..C5).
        fpn_channels: FPN width.
        channels: channels of ``feat_s``.
        num_joints: K.
        sam: with the spatial attention module.
        convs, kernel, filters: the stream's conv layers after the pyramid concatenation (:class:`FPNConcat`).
    """

    def __init__(self, backbone: nn.Module, fpn_channels: int, channels: int, num_joints: int, sam: bool,
                 convs: int = 1, kernel: int = 3, filters: int | None = None):
        super().__init__()
        self.backbone = backbone
        self.fpn = FPNConcat(backbone.out_channels[1:], fpn_channels, convs, kernel, filters)
        width = self.fpn.out_channels
        self.sam = SpatialAttention(width) if sam else None
        self.deconv = deconv_stack(width, channels, 1)  # stride 8 -> 4
        self.head = heatmap_head(channels, num_joints)

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised -> ``feat_s`` (B, channels, H/4, W/4)."""
        _, c3, c4, c5 = self.backbone(image)
        x = self.fpn(c3, c4, c5)  # (B, filters, H/8, W/8)
        if self.sam is not None:
            x = self.sam(x)  # (B, filters, H/8, W/8)
        return self.deconv(x)  # (B, channels, H/4, W/4)


# ----------------------------------------------------------------------------------------------------------
# Temporal stream


def difference_encoder(out_channels: int) -> nn.Sequential:
    """Four stride-2 3x3 convs (3 -> d/4 -> d/2 -> d -> d): a frame difference to stride 16."""
    widths = (3, out_channels // 4, out_channels // 2, out_channels, out_channels)
    return nn.Sequential(*(conv_bn_relu(a, b, 3, stride=2) for a, b in zip(widths[:-1], widths[1:])))


def temporal_conv_block(in_channels: int, out_channels: int, conv_type: str) -> nn.Sequential:
    """One TCM block on (B, C, T, h, w), keeping T, h, w.

    ``3d``: Conv3D with kernel (3, 3, 3) + BN + ReLU. ``2plus1d``: a (1, 3, 3) spatial conv and a (3, 1, 1)
    temporal conv, each with BN + ReLU, the inner width chosen as in R(2+1)D (Tran et al. 2018) so that both
    variants have the same number of parameters (the paper's Table 7 comparison).
    """
    if conv_type == "3d":
        return nn.Sequential(
            nn.Conv3d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
        )
    inner = max(1, (27 * in_channels * out_channels) // (9 * in_channels + 3 * out_channels))
    return nn.Sequential(
        nn.Conv3d(in_channels, inner, (1, 3, 3), padding=(0, 1, 1), bias=False),
        nn.BatchNorm3d(inner),
        nn.ReLU(inplace=True),
        nn.Conv3d(inner, out_channels, (3, 1, 1), padding=(1, 0, 0), bias=False),
        nn.BatchNorm3d(out_channels),
        nn.ReLU(inplace=True),
    )


class TemporalStream(nn.Module):
    """Per-frame C4 features with the adjacent frame differences -> TCM -> centre step -> stride 4 -> Ŷ_t.

    See the module docstring for how the T-1 differences align with the T frames.

    Args:
        backbone: a ResNet built to C4 (``last_stage=4``).
        diff_channels: channels of an encoded difference.
        tcm_channels: width of the TCM blocks.
        tcm_blocks: number of TCM blocks.
        conv_type: ``3d`` or ``2plus1d``.
        channels: channels of ``feat_t``.
        num_joints: K.
    """

    def __init__(
        self,
        backbone: nn.Module,
        diff_channels: int,
        tcm_channels: int,
        tcm_blocks: int,
        conv_type: str,
        channels: int,
        num_joints: int,
    ):
        super().__init__()
        self.backbone = backbone
        self.difference = difference_encoder(diff_channels)
        in_channels = backbone.out_channels[-1] + 2 * diff_channels
        self.tcm = nn.Sequential(
            *(temporal_conv_block(in_channels if i == 0 else tcm_channels, tcm_channels, conv_type)
              for i in range(tcm_blocks))
        )
        self.deconv = deconv_stack(tcm_channels, channels, 2)  # stride 16 -> 8 -> 4
        self.head = heatmap_head(channels, num_joints)

    def features(self, tube: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) normalised -> ``feat_t`` (B, channels, H/4, W/4) for the centre frame."""
        b, t = tube.shape[:2]
        frames = tube.flatten(0, 1)  # (B*T, 3, H, W)
        appearance = self.backbone(frames)[-1]  # (B*T, C4, H/16, W/16)
        appearance = appearance.view(b, t, *appearance.shape[1:])  # (B, T, C4, h, w)
        diffs = (tube[:, 1:] - tube[:, :-1]).flatten(0, 1)  # (B*(T-1), 3, H, W): D_k = X_{k+1} - X_k
        motion = self.difference(diffs)  # (B*(T-1), d, h, w)
        motion = motion.view(b, t - 1, *motion.shape[1:])  # (B, T-1, d, h, w)
        motion = F.pad(motion, (0, 0, 0, 0, 0, 0, 1, 1))  # (B, T+1, d, h, w): E_0 = E_T = 0
        motion = torch.cat([motion[:, :-1], motion[:, 1:]], dim=2)  # (B, T, 2d, h, w): [E_{k-1}; E_k]
        x = torch.cat([appearance, motion], dim=2).transpose(1, 2)  # (B, C4 + 2d, T, h, w)
        x = self.tcm(x)  # (B, tcm_channels, T, h, w)
        x = x[:, :, t // 2]  # (B, tcm_channels, h, w): the centre frame t
        return self.deconv(x)  # (B, channels, H/4, W/4)


# ----------------------------------------------------------------------------------------------------------
# Context stream


class MLPContext(nn.Module):
    """Mean over the L frame vectors, then a two-layer MLP (the paper's "pool + FC")."""

    def __init__(self, hidden: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, hidden))

    def forward(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, D) -> per-step outputs (B, L, D) (c repeated: the pooled model has none of its own) and c
        (B, D)."""
        c = self.mlp(v.mean(dim=1))  # (B, D)
        return c[:, None].expand_as(v), c


class LSTMContext(nn.Module):
    """An LSTM over the L frame vectors; c is the output at the last step (the current frame)."""

    def __init__(self, hidden: int, layers: int):
        super().__init__()
        self.lstm = nn.LSTM(hidden, hidden, num_layers=layers, batch_first=True)

    def forward(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, D) -> per-step outputs (B, L, D) and c (B, D)."""
        h, _ = self.lstm(v)  # (B, L, D)
        return h, h[:, -1]


class TransformerContext(nn.Module):
    """A pre-norm transformer encoder with learned positions; c is the output at the last step."""

    def __init__(self, hidden: int, layers: int, heads: int, length: int, dropout: float = 0.1):
        super().__init__()
        self.position = nn.Parameter(torch.zeros(1, length, hidden))
        nn.init.trunc_normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(
            hidden, heads, dim_feedforward=4 * hidden, dropout=dropout, activation="gelu",
            batch_first=True, norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(hidden), enable_nested_tensor=False)

    def forward(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, D) -> per-step outputs (B, L, D) and c (B, D)."""
        h = self.encoder(v + self.position)  # (B, L, D)
        return h, h[:, -1]


class CoarseHeatmapHead(nn.Module):
    """Ŷ_c: an MLP from c to K x 16 x 16, bilinearly upsampled to the heatmap size."""

    def __init__(self, hidden: int, num_joints: int):
        super().__init__()
        self.num_joints = num_joints
        self.mlp = nn.Sequential(
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_joints * COARSE_SIZE**2)
        )
        nn.init.normal_(self.mlp[-1].weight, std=0.001)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, c: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        coarse = self.mlp(c).view(-1, self.num_joints, COARSE_SIZE, COARSE_SIZE)  # (B, K, 16, 16)
        return F.interpolate(coarse, size=size, mode="bilinear", align_corners=False)  # (B, K, H/4, W/4)


class ContextStream(nn.Module):
    """Backbone + GAP + FC on each full frame -> frame vectors; sequence model -> c; coarse head -> Ŷ_c.

    Args:
        backbone: a pyramid backbone; its C5 (F_L) is pooled.
        hidden: D_c.
        sequence: an :class:`MLPContext`, :class:`LSTMContext` or :class:`TransformerContext`.
        num_joints: K.
    """

    def __init__(self, backbone: nn.Module, hidden: int, sequence: nn.Module, num_joints: int):
        super().__init__()
        self.backbone = backbone
        self.frame_fc = nn.Linear(backbone.out_channels[-1], hidden)
        self.sequence = sequence
        self.head = CoarseHeatmapHead(hidden, num_joints)

    def frame_vectors(self, clip: torch.Tensor) -> torch.Tensor:
        """(B, L, 3, Hc, Wc) normalised -> frame vectors v (B, L, D)."""
        b, length = clip.shape[:2]
        c5 = self.backbone(clip.flatten(0, 1))[-1]  # (B*L, C5, Hc/32, Wc/32)
        v = self.frame_fc(c5.mean(dim=(2, 3)))  # (B*L, D)
        return v.view(b, length, -1)  # (B, L, D)


class MaskedFrameModelling(nn.Module):
    """The context stream's pretext task: a learned mask token and a decoder from [h_l; c; position_l] to v_l.

    Args:
        hidden: D_c.
        length: L.
        mask_ratio: (low, high) share of the L frames masked per sample.
    """

    def __init__(self, hidden: int, length: int, mask_ratio: tuple[float, float]):
        super().__init__()
        self.mask_ratio = mask_ratio
        self.mask_token = nn.Parameter(torch.zeros(hidden))
        self.position = nn.Parameter(torch.zeros(length, hidden))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        nn.init.trunc_normal_(self.position, std=0.02)
        self.decoder = nn.Sequential(nn.Linear(3 * hidden, hidden), nn.GELU(), nn.Linear(hidden, hidden))

    def sample_mask(self, batch: int, length: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, L) bool, True where a frame is masked: round(r·L) frames per sample, r ~ U(mask_ratio),
        clamped to [1, L-1] (to 1 when L = 1)."""
        low, high = self.mask_ratio
        ratio = low + (high - low) * torch.rand(batch, generator=generator)  # (B,)
        count = (ratio * length).round().clamp(1, max(1, length - 1))  # (B,)
        rank = torch.rand(batch, length, generator=generator).argsort(dim=1).argsort(dim=1)  # (B, L)
        return rank < count[:, None]  # (B, L)

    def apply_mask(self, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Replace the masked frame vectors by the mask token: (B, L, D), (B, L) -> (B, L, D)."""
        return torch.where(mask[..., None], self.mask_token.to(v.dtype), v)  # (B, L, D)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Reconstruct every frame vector from the sequence model's outputs.

        Args:
            h: per-step outputs (B, L, D).
            c: the context vector (B, D).

        Returns:
            (B, L, D) predicted frame vectors.
        """
        b, length, d = h.shape
        query = torch.cat(
            [h, c[:, None].expand(b, length, d), self.position[None].expand(b, length, d)], dim=-1
        )  # (B, L, 3D)
        return self.decoder(query)  # (B, L, D)


# ----------------------------------------------------------------------------------------------------------
# Fusion


def phi_light(in_channels: int, channels: int) -> nn.Sequential:
    """The paper's φ_light = ReLU(Conv(ReLU(Conv(Conv(x))))): three 3x3 convs, two ReLUs."""
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 3, padding=1),
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.ReLU(inplace=True),
    )


def tile(vector: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, C) -> (B, C, h, w), the vector repeated at every position."""
    return vector[:, :, None, None].expand(-1, -1, *size)  # (B, C, h, w)


class EarlyFusion(nn.Module):
    """Ŷ = head(dropout(φ_fuse([feat_s; feat_t; tile(P c)]))), φ_fuse = three 3x3 conv-BN-ReLU layers.

    Args:
        num_maps: feature maps concatenated (the present spatial / temporal streams).
        channels: their channels, P's output and φ_fuse's width (64).
        context_hidden: D_c, or None without a context stream (no P, nothing tiled).
        num_joints: K.
        dropout: before the head.
    """

    def __init__(self, num_maps: int, channels: int, context_hidden: int | None, num_joints: int, dropout: float):
        super().__init__()
        self.project = nn.Linear(context_hidden, channels) if context_hidden else None
        in_channels = channels * (num_maps + (1 if context_hidden else 0))
        self.fuse = nn.Sequential(*(conv_bn_relu(in_channels if i == 0 else channels, channels) for i in range(3)))
        self.dropout = nn.Dropout(dropout)
        self.head = heatmap_head(channels, num_joints)

    def forward(self, maps: list[torch.Tensor], context: torch.Tensor | None) -> torch.Tensor:
        """maps: feature maps (B, C, H/4, W/4) each; context: c (B, D_c) or None -> (B, K, H/4, W/4)."""
        if self.project is not None:
            maps = [*maps, tile(self.project(context), maps[0].shape[-2:])]
        z = self.fuse(torch.cat(maps, dim=1))  # (B, C, H/4, W/4)
        return self.head(self.dropout(z))  # (B, K, H/4, W/4)


class HybridFusion(nn.Module):
    """z₁ = φ_light([feat_s; feat_t; tile(P c)]), z₂ = φ_light([z₁; Ŷ_s; Ŷ_t]), Ŷ = head(dropout(z₂)).

    Args:
        num_maps: feature maps (and stream heatmaps) of the present spatial / temporal streams.
        channels: their channels, P's output and φ_light's width (64).
        context_hidden: D_c, or None without a context stream.
        num_joints: K.
        dropout: before the head.
    """

    def __init__(self, num_maps: int, channels: int, context_hidden: int | None, num_joints: int, dropout: float):
        super().__init__()
        self.project = nn.Linear(context_hidden, channels) if context_hidden else None
        self.light1 = phi_light(channels * (num_maps + (1 if context_hidden else 0)), channels)
        self.light2 = phi_light(channels + num_maps * num_joints, channels)
        self.dropout = nn.Dropout(dropout)
        self.head = heatmap_head(channels, num_joints)

    def forward(
        self, maps: list[torch.Tensor], context: torch.Tensor | None, heatmaps: list[torch.Tensor]
    ) -> torch.Tensor:
        """maps: (B, C, H/4, W/4) each; context: (B, D_c) or None; heatmaps: Ŷ_s, Ŷ_t present, (B, K, H/4,
        W/4) each -> (B, K, H/4, W/4)."""
        if self.project is not None:
            maps = [*maps, tile(self.project(context), maps[0].shape[-2:])]
        z1 = self.light1(torch.cat(maps, dim=1))  # (B, C, H/4, W/4)
        z2 = self.light2(torch.cat([z1, *heatmaps], dim=1))  # (B, C, H/4, W/4)
        return self.head(self.dropout(z2))  # (B, K, H/4, W/4)


# ----------------------------------------------------------------------------------------------------------
# The model


class MultiStream(nn.Module):
    """The three streams and their fusion; one ``forward`` per SST task.

    Tasks: ``spatial``, ``temporal``, ``context`` (stage-1 single-stream pre-training, each running only its
    stream) and ``fused`` (stages 2 and 3). A stream task is available only when the stream is in
    ``config.streams``.

    Args:
        config: the model's config.
        num_joints: K.
    """

    TASKS = ("spatial", "temporal", "context", "fused")
    CACHEABLE_TASKS: tuple[str, ...] = ()  # every task trains through its backbones: nothing frozen to cache
    FREEZE_LAYERS = 5  # freeze_prefixes(N): stem, layer1..layer4 of the stream backbones (SST stage 2)
    # Where each pretrained file goes (models.pretrained.initialise): backbones only; the heads are the paper's
    PRETRAINED = {"pretrained": ("spatial.backbone", {}), "temporal_pretrained": ("temporal.backbone", {}),
                  "context_pretrained": ("context.backbone", {})}

    def __init__(self, config: MultiStreamConfig, num_joints: int):
        super().__init__()
        self.config = config
        self.num_joints = num_joints
        self.streams = tuple(s for s in STREAMS if s in config.streams)  # canonical order
        channels = config.deconv_channels

        self.spatial = self.temporal = self.context = self.mfm = self.fusion = None
        if "spatial" in self.streams:
            backbone = pyramid_backbone(config.backbone, config.width)
            self.spatial = SpatialStream(backbone, config.fpn_channels, channels, num_joints, config.sam,
                                         config.spatial_convs, config.spatial_kernel, config.spatial_filters)
        if "temporal" in self.streams:
            backbone = pyramid_backbone(
                config.temporal_backbone, config.temporal_width or config.width, last_stage=4
            )
            self.temporal = TemporalStream(
                backbone, config.diff_channels, config.tcm_channels, config.tcm_blocks, config.conv_type,
                channels, num_joints,
            )
        if "context" in self.streams:
            backbone = pyramid_backbone(config.context_backbone, config.context_width or config.width)
            hidden = config.context_hidden
            if config.context_model == "mlp":
                sequence: nn.Module = MLPContext(hidden)
            elif config.context_model == "lstm":
                sequence = LSTMContext(hidden, config.context_layers)
            else:
                sequence = TransformerContext(hidden, config.context_layers, config.context_heads, config.context_len)
            self.context = ContextStream(backbone, hidden, sequence, num_joints)
            self.mfm = MaskedFrameModelling(hidden, config.context_len, config.mask_ratio)
        num_maps = len({"spatial", "temporal"} & set(self.streams))
        context_hidden = config.context_hidden if self.context is not None else None
        if config.fusion == "early":
            self.fusion = EarlyFusion(num_maps, channels, context_hidden, num_joints, config.dropout)
        elif config.fusion == "hybrid":
            self.fusion = HybridFusion(num_maps, channels, context_hidden, num_joints, config.dropout)

    # -- inputs --------------------------------------------------------------------------------------------

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """(H/4, W/4) of the heatmaps."""
        return self.config.input_size[0] // 4, self.config.input_size[1] // 4

    def _tube(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        tube = inputs["tube"]
        if tube.dim() != 5 or tube.shape[-1] != 3 or tuple(tube.shape[2:4]) != tuple(self.config.input_size):
            raise ValueError(
                f"tube: expected (B, T, {self.config.input_size[0]}, {self.config.input_size[1]}, 3) "
                f"(input_size), got {tuple(tube.shape)}"
            )
        return tube

    def _centre_image(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """X_t normalised, (B, 3, H, W), from ``image`` (B, H, W, 3) or the centre frame of ``tube``."""
        if "image" in inputs:
            return normalize_images(inputs["image"])  # (B, 3, H, W)
        tube = self._tube(inputs)
        return normalize_images(tube[:, tube.shape[1] // 2])  # (B, 3, H, W)

    def _run_spatial(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.spatial.features(self._centre_image(inputs))  # (B, C, H/4, W/4)
        return feat, self.spatial.head(feat)  # (B, C, H/4, W/4), (B, K, H/4, W/4)

    def _run_temporal(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        tube = self._tube(inputs)
        if tube.shape[1] != self.config.window:
            raise ValueError(f"tube: {tube.shape[1]} frames, but window is {self.config.window}")
        feat = self.temporal.features(normalize_images(tube))  # (B, C, H/4, W/4)
        return feat, self.temporal.head(feat)  # (B, C, H/4, W/4), (B, K, H/4, W/4)

    def _frame_vectors(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        clip = inputs["context"]
        expected = (self.config.context_len, *self.config.context_size, 3)
        if clip.dim() != 5 or tuple(clip.shape[1:]) != expected:
            raise ValueError(f"context: expected (B, {', '.join(map(str, expected))}), got {tuple(clip.shape)}")
        return self.context.frame_vectors(normalize_images(clip))  # (B, L, D)

    # -- forward -------------------------------------------------------------------------------------------

    def forward(self, inputs: dict[str, torch.Tensor], task: str = "fused") -> dict[str, torch.Tensor]:
        """Run the modules of one task.

        Args:
            inputs: ``tube`` (B, T, H, W, 3) uint8 (the spatial task also takes ``image`` (B, H, W, 3)) and
                ``context`` (B, L, Hc, Wc, 3) uint8, as :meth:`input_names` lists for the task.
            task: one of :attr:`TASKS`.

        Returns:
            ``heatmaps`` (B, K, H/4, W/4), the task's prediction, and
            - spatial: ``feat_spatial`` (B, 64, H/4, W/4);
            - temporal: ``feat_temporal`` (B, 64, H/4, W/4);
            - context: ``context_vector`` (B, D_c) and the masked-frame-modelling terms ``reconstruction``
              (B, L, D_c), ``frame_targets`` (B, L, D_c) (normalised, detached) and ``frame_mask`` (B, L) bool;
            - fused: ``heatmaps_spatial`` / ``heatmaps_temporal`` / ``heatmaps_context`` (B, K, H/4, W/4) and
              ``feat_spatial``, ``feat_temporal``, ``context_vector`` of the present streams.
        """
        self._check_task(task)
        if task == "spatial":
            feat, heatmaps = self._run_spatial(inputs)
            return {"heatmaps": heatmaps, "feat_spatial": feat}
        if task == "temporal":
            feat, heatmaps = self._run_temporal(inputs)
            return {"heatmaps": heatmaps, "feat_temporal": feat}
        if task == "context":
            return self._forward_context(inputs)
        return self._forward_fused(inputs)

    def _forward_context(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        v = self._frame_vectors(inputs)  # (B, L, D)
        b, length, _ = v.shape
        generator = None if self.training else torch.Generator().manual_seed(EVAL_MASK_SEED)
        mask = self.mfm.sample_mask(b, length, generator).to(v.device)  # (B, L)
        h_masked, c_masked = self.context.sequence(self.mfm.apply_mask(v, mask))  # (B, L, D), (B, D)
        reconstruction = self.mfm(h_masked, c_masked)  # (B, L, D)
        _, c = self.context.sequence(v)  # (B, D): unmasked, as the fused model sees it
        return {
            "heatmaps": self.context.head(c, self.heatmap_size),  # (B, K, H/4, W/4)
            "context_vector": c,  # (B, D)
            "reconstruction": reconstruction,  # (B, L, D)
            "frame_targets": F.layer_norm(v.detach(), v.shape[-1:]),  # (B, L, D)
            "frame_mask": mask,  # (B, L)
        }

    def _forward_fused(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        maps: list[torch.Tensor] = []  # feat_s, feat_t of the present streams
        predictions: dict[str, torch.Tensor] = {}  # per-stream heatmaps, (B, K, H/4, W/4) each
        if self.spatial is not None:
            out["feat_spatial"], predictions["spatial"] = self._run_spatial(inputs)
            maps.append(out["feat_spatial"])
        if self.temporal is not None:
            out["feat_temporal"], predictions["temporal"] = self._run_temporal(inputs)
            maps.append(out["feat_temporal"])
        c = None
        if self.context is not None:
            _, c = self.context.sequence(self._frame_vectors(inputs))  # (B, D)
            out["context_vector"] = c
            predictions["context"] = self.context.head(c, self.heatmap_size)  # (B, K, H/4, W/4)

        fusion = self.config.fusion
        if fusion == "early":
            fused = self.fusion(maps, c)
        elif fusion == "hybrid":
            stream_maps = [predictions[s] for s in ("spatial", "temporal") if s in predictions]
            fused = self.fusion(maps, c, stream_maps)
        elif fusion == "late":
            weights = dict(zip(STREAMS, self.config.fusion_weights))
            fused = late_fuse(list(predictions.values()), [weights[s] for s in predictions])
        else:  # none: the uniform average
            fused = late_fuse(list(predictions.values()), [1.0] * len(predictions))
        out["heatmaps"] = fused  # (B, K, H/4, W/4)
        for stream, heatmaps in predictions.items():
            out[f"heatmaps_{stream}"] = heatmaps  # (B, K, H/4, W/4)
        return out

    # -- loss ----------------------------------------------------------------------------------------------

    def loss(
        self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], task: str = "fused"
    ) -> dict[str, torch.Tensor]:
        """Named losses of a task; ``loss`` is optimised, the others are detached, for logging.

        Args:
            outputs: :meth:`forward`'s output for the same task.
            batch: ``heatmaps`` (B, K, H/4, W/4) and ``target_weight`` (B, K).
            task: one of :attr:`TASKS`.

        Returns:
            spatial / temporal: ``loss`` = heatmap MSE (target-weighted, SimpleBaseline's).
            context: ``loss`` = heatmap MSE of Ŷ_c + mfm_weight · ``loss_mfm`` (MSE over masked frames),
            with ``loss_heatmap``, ``loss_mfm``.
            fused: ``loss`` = the fused heatmaps' MSE (early / hybrid) or the sum of the stream heads' MSEs
            (late / none), with ``loss_fused`` and ``loss_<stream>`` for each present stream.
        """
        self._check_task(task)
        target, weight = batch["heatmaps"], batch["target_weight"]
        if task in ("spatial", "temporal"):
            return {"loss": heatmap_mse(outputs["heatmaps"], target, weight)}
        if task == "context":
            heatmap = heatmap_mse(outputs["heatmaps"], target, weight)
            mask = outputs["frame_mask"]  # (B, L)
            error = (outputs["reconstruction"] - outputs["frame_targets"]).pow(2).mean(dim=-1)  # (B, L)
            mfm = (error * mask).sum() / mask.sum().clamp(min=1)
            return {
                "loss": heatmap + self.config.mfm_weight * mfm,
                "loss_heatmap": heatmap.detach(),
                "loss_mfm": mfm.detach(),
            }
        stream_losses = {s: heatmap_mse(outputs[f"heatmaps_{s}"], target, weight) for s in self.streams}
        fused = heatmap_mse(outputs["heatmaps"], target, weight)
        total = sum(stream_losses.values()) if self.config.fusion in ("late", "none") else fused
        logged = {f"loss_{s}": value.detach() for s, value in stream_losses.items()}
        return {"loss": total, "loss_fused": fused.detach(), **logged}

    @classmethod
    def loss_names(cls, config: MultiStreamConfig, task: str = "fused") -> tuple[str, ...]:
        """The keys :meth:`loss` returns for ``task`` (a stage's ``metric`` may name them)."""
        if task == "context":
            return ("loss", "loss_heatmap", "loss_mfm")
        if task == "fused":
            return ("loss", "loss_fused") + tuple(f"loss_{s}" for s in STREAMS if s in config.streams)
        return ("loss",)

    @classmethod
    def task_metric(cls, task: str = "fused") -> TaskMetric:
        """What picks a stage's best checkpoint (SPEC §6): PCKh@0.5 of the task's heatmaps (``val_pckh``, %)
        for spatial, temporal and fused; the validation loss for the self-supervised context stage (masked
        frame modelling beside a coarse heatmap head)."""
        return TaskMetric("val_loss", "min") if task == "context" else PCKH

    def metric_counts(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], task: str = "fused"
                      ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``{"pckh": (100 × correct, counted joints)}`` of the task's ``heatmaps`` (the fused ones in
        ``fused``) on a validation batch (:func:`heatmaps.pckh_counts`); {} for ``context``."""
        if not self.task_metric(task).counted:
            return {}
        hits, total = pckh_counts(outputs["heatmaps"], batch["keypoints"], batch["head_size"], batch["affine"])
        return {"pckh": (100.0 * hits, total)}

    # -- what each task needs, trains and hands on ---------------------------------------------------------

    def _check_task(self, task: str) -> None:
        if task not in self.TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {', '.join(self.TASKS)}")
        if task != "fused" and task not in self.streams:
            raise ValueError(f"task {task!r} needs the {task} stream; this model has {list(self.streams)}")

    def input_names(self, task: str = "fused") -> tuple[str, ...]:
        """The batch keys ``forward(task=...)`` reads."""
        self._check_task(task)
        if task in ("spatial", "temporal"):
            return ("tube",)
        if task == "context":
            return ("context",)
        needs_tube = self.spatial is not None or self.temporal is not None
        return (("tube",) if needs_tube else ()) + (("context",) if self.context is not None else ())

    def task_modules(self, task: str) -> tuple[str, ...]:
        """Top-level modules a task trains and hands on in its checkpoint (stage 1 -> stage 2 assembly).

        ``spatial`` -> ``("spatial",)``, ``temporal`` -> ``("temporal",)``, ``context`` -> ``("context",
        "mfm")``, ``fused`` -> every module of the model.
        """
        self._check_task(task)
        if task == "fused":
            return tuple(name for name, _ in self.named_children())
        return (task, "mfm") if task == "context" else (task,)

    def _fused_heads_trained(self) -> tuple[str, ...]:
        """Streams whose head is in the fused loss: all with late / none, Ŷ_s and Ŷ_t with hybrid, none with
        early."""
        fusion = self.config.fusion
        if fusion in ("late", "none"):
            return self.streams
        return ("spatial", "temporal") if fusion == "hybrid" else ()

    def trainable_prefixes(self, task: str) -> tuple[str, ...]:
        """Module prefixes whose every parameter gets a gradient from ``loss(task=...)``.

        A stage sets ``requires_grad=False`` on every other parameter (see :func:`matches_prefix`) so that
        DDP can run with ``find_unused_parameters=False``. For ``fused`` this leaves out ``mfm`` and the
        stream heads whose heatmaps are only returned for caching (see :meth:`_fused_heads_trained`).
        """
        self._check_task(task)
        if task != "fused":
            return self.task_modules(task)
        prefixes: list[str] = []
        for stream in self.streams:
            if stream in self._fused_heads_trained():
                prefixes.append(stream)
            else:
                prefixes += [f"{stream}.{name}" for name, _ in getattr(self, stream).named_children() if name != "head"]
        if self.fusion is not None:
            prefixes.append("fusion")
        return tuple(prefixes)

    def freeze_prefixes(self, freeze_layers: int) -> tuple[str, ...]:
        """SST stage 2 (SPEC §4): the first ``freeze_layers`` stages of each stream's backbone — spatial,
        temporal and context — so that stage 2 trains fusion, heads and the context sequence model.

        Stages are stem, layer1 .. layer4 for a ResNet (see :func:`backbone_stages` for VGG and
        EfficientNet); the temporal ResNet stops at C4 and so has four (5 freezes all of them). The stage keeps
        the BatchNorm layers of wholly frozen modules in eval mode (``loop.train_epoch``), so their running
        statistics stay those of stage 1.

        Args:
            freeze_layers: 0..5 (paper: 4).

        Returns:
            Prefixes such as ``("spatial.backbone.conv1", "spatial.backbone.bn1", "spatial.backbone.layer1",
            ...)``.
        """
        if not 0 <= freeze_layers <= 5:
            raise ValueError(f"freeze_layers must be in 0..5 (stem, layer1..layer4), got {freeze_layers}")
        prefixes: list[str] = []
        for name in STREAMS:
            stream = getattr(self, name)
            if stream is None:
                continue
            for stage in backbone_stages(stream.backbone)[:freeze_layers]:
                prefixes += [f"{name}.backbone.{p}" for p in stage]
        return tuple(prefixes)
