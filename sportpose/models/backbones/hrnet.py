"""HRNet (Sun et al. 2019, "Deep High-Resolution Representation Learning for Human Pose Estimation").

The backbone of STSP-Net's EPE (SPEC §5): a stride-4 stem (two stride-2 3x3 convs), stage 1 of
Bottleneck blocks, then stages 2, 3, 4 that each add a branch at half the resolution of the last
(widths W, 2W, 4W, 8W). A stage is ``num_modules`` exchange units; a unit runs ``num_blocks`` BasicBlocks
per branch and then fuses every branch into every other (higher resolution to lower: strided 3x3 convs;
lower to higher: 1x1 conv + BN + nearest upsampling; summed, ReLU). Transition layers between stages
adapt the channels of the existing branches and derive the new branch from the lowest-resolution one.
The last unit of stage 4 outputs only the highest-resolution branch, the stride-4 map the pose head reads.

Names follow the authors' ``pose_hrnet.py`` (``conv1``, ``bn1``, ``conv2``, ``bn2``, ``layer1``,
``transition1``, ``stage2.0.branches.0.0.conv1``, ``stage2.0.fuse_layers.0.1.0``, ...), so that the
backbone part of an official ``pose_hrnet_w32`` checkpoint loads (its ``final_layer.`` is skipped).
One deviation: upsampling interpolates to the exact size of the target branch instead of a fixed
``scale_factor``, so that inputs whose sides are not multiples of 32 work (the ``Upsample`` module had no
parameters, so the names do not change).

Variants:
    hrnet_w32: W=32, stage 1 of 4 Bottlenecks, stages 2/3/4 with 1/4/3 modules of 4 blocks per branch
        (the paper's pose_hrnet_w32: 28,535,552 parameters, 28,536,113 with its 1x1 head to 17 joints,
        the paper's "28.5M").
    hrnet_w18: the same structure at W=18.
    hrnet_w18_small: a CPU-demo network, W=18 (``width`` overrides, e.g. 16), stage 1 of 2 Bottlenecks,
        stages 2/3/4 with 1/1/1 modules of 2 blocks per branch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sportpose.models.backbones.resnet import BasicBlock, Bottleneck, make_layer


def conv_bn(in_channels: int, out_channels: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    """``Sequential(conv3x3, BN[, ReLU])``, the unit of HRNet's transitions and downsampling fuses."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ExchangeUnit(nn.Module):
    """One HRNet module: parallel BasicBlock branches, then a fuse of every branch into every output.

    Args:
        channels: channels of each branch, highest resolution first (branch i at stride 4 * 2**i).
        num_blocks: BasicBlocks per branch.
        multi_scale_output: output every branch (True) or only the highest-resolution one (False, the
            last unit of the network).
    """

    def __init__(self, channels: tuple[int, ...], num_blocks: int, multi_scale_output: bool = True):
        super().__init__()
        self.branches = nn.ModuleList(make_layer(BasicBlock, c, c, num_blocks) for c in channels)
        num_out = len(channels) if multi_scale_output else 1
        fuse_layers = []
        if len(channels) > 1:
            for i in range(num_out):
                row: list[nn.Module | None] = []
                for j in range(len(channels)):
                    if j > i:  # lower resolution to higher: 1x1 conv + BN, upsampled in forward
                        conv = nn.Conv2d(channels[j], channels[i], 1, bias=False)
                        row.append(nn.Sequential(conv, nn.BatchNorm2d(channels[i])))
                    elif j == i:
                        row.append(None)
                    else:  # higher resolution to lower: i - j strided 3x3 convs, the last one without ReLU
                        steps = [conv_bn(channels[j], channels[j], stride=2) for _ in range(i - j - 1)]
                        steps.append(conv_bn(channels[j], channels[i], stride=2, relu=False))
                        row.append(nn.Sequential(*steps))
                fuse_layers.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(fuse_layers)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Args: ``xs[i]`` of shape ``(B, channels[i], H_i, W_i)``. Returns: the same list after exchange
        (only ``[y_0]`` without multi-scale output)."""
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        if len(xs) == 1:
            return xs
        out = []
        for i, row in enumerate(self.fuse_layers):
            size = xs[i].shape[-2:]
            y = xs[i]
            for j, layer in enumerate(row):
                if j == i:
                    continue
                z = layer(xs[j])
                if j > i:
                    z = F.interpolate(z, size=size, mode="nearest")
                y = y + z
            out.append(self.relu(y))  # (B, channels[i], H_i, W_i)
        return out


class HRNet(nn.Module):
    """HRNet returning its highest-resolution branch at stride 4.

    Args:
        width: W, channels of the highest-resolution branch; the branches have W, 2W, 4W, 8W.
        stage_modules: exchange units in stages 2, 3, 4.
        num_blocks: BasicBlocks per branch in every exchange unit.
        stage1_blocks: Bottleneck blocks of stage 1 (64 inner, 256 output channels).
        stem_channels: channels of the two stem convs (64 in the paper).

    Attributes:
        out_channels: W.
        stride: 4.
        pretrained_ignore: ``("final_layer.",)``: the pose head of an official checkpoint.
    """

    def __init__(
        self,
        width: int = 32,
        stage_modules: tuple[int, int, int] = (1, 4, 3),
        num_blocks: int = 4,
        stage1_blocks: int = 4,
        stem_channels: int = 64,
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(3, stem_channels, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_channels)
        self.conv2 = nn.Conv2d(stem_channels, stem_channels, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(stem_channels)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_layer(Bottleneck, stem_channels, 64, stage1_blocks)

        previous: tuple[int, ...] = (64 * Bottleneck.expansion,)
        for stage, num_modules in enumerate(stage_modules, start=2):
            channels = tuple(width * 2**i for i in range(stage))
            setattr(self, f"transition{stage - 1}", self._transition(previous, channels))
            last_stage = stage == len(stage_modules) + 1
            units = [
                ExchangeUnit(channels, num_blocks, multi_scale_output=not (last_stage and m == num_modules - 1))
                for m in range(num_modules)
            ]
            setattr(self, f"stage{stage}", nn.Sequential(*units))
            previous = channels
        self.num_stages = len(stage_modules) + 1
        self.out_channels = width
        self.stride = 4
        self.pretrained_ignore = ("final_layer.",)
        self._init_weights()

    @staticmethod
    def _transition(previous: tuple[int, ...], channels: tuple[int, ...]) -> nn.ModuleList:
        """Adapt the existing branches (a 3x3 conv where the channel count changes, else identity) and
        derive the new lowest-resolution branch from the previous lowest one with a strided 3x3 conv."""
        layers: list[nn.Module | None] = []
        for i, c in enumerate(channels):
            if i < len(previous):
                layers.append(conv_bn(previous[i], c) if previous[i] != c else None)
            else:  # wrapped in a Sequential as in the authors' code, for their checkpoint names
                layers.append(nn.Sequential(conv_bn(previous[-1], c, stride=2)))
        return nn.ModuleList(layers)

    def _init_weights(self) -> None:
        # The authors' initialisation for pose: small normal convs, BN at identity.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The highest-resolution representation.

        Args:
            x: images, ``(B, 3, H, W)``, normalised.

        Returns:
            ``(B, W, ceil(H / 4), ceil(W / 4))``.
        """
        x = self.relu(self.bn1(self.conv1(x)))  # (B, 64, H/2, W/2)
        x = self.relu(self.bn2(self.conv2(x)))  # (B, 64, H/4, W/4)
        xs = [self.layer1(x)]  # [(B, 256, H/4, W/4)]
        for stage in range(2, self.num_stages + 1):
            transition = getattr(self, f"transition{stage - 1}")
            xs = [
                (xs[i] if layer is None else layer(xs[i])) if i < len(xs) else layer(xs[-1])
                for i, layer in enumerate(transition)
            ]  # branch i: (B, W * 2**i, H / 2**(i+2), W / 2**(i+2))
            xs = getattr(self, f"stage{stage}")(xs)
        return xs[0]  # (B, W, H/4, W/4)


def hrnet_w32(**kwargs) -> HRNet:
    """HRNet-W32, the paper's pose backbone (stage modules 1/4/3, 4 blocks per branch)."""
    kwargs.setdefault("width", 32)
    return HRNet(**kwargs)


def hrnet_w18(**kwargs) -> HRNet:
    """HRNet-W18: pose_hrnet_w32's structure at W=18."""
    kwargs.setdefault("width", 18)
    return HRNet(**kwargs)


def hrnet_w18_small(**kwargs) -> HRNet:
    """A small HRNet for CPU demos: W=18 (override with ``width``), stage 1 of 2 Bottlenecks, stage
    modules 1/1/1 of 2 BasicBlocks per branch."""
    for key, value in (("width", 18), ("stage_modules", (1, 1, 1)), ("num_blocks", 2), ("stage1_blocks", 2)):
        kwargs.setdefault(key, value)
    return HRNet(**kwargs)
