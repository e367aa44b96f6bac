"""ResNet-18/34/50/101 (He et al. 2016) as feature pyramids C2..C5, with torchvision's parameter names.

Parameter and buffer names are exactly torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer1.0.downsample.0`` / ``.1``, ..., ``fc``) so that an ImageNet state dict saved from torchvision loads
with no missing or unexpected key (:func:`sportpose.models.backbones.load_pretrained`). The Bottleneck is
torchvision's "v1.5": the stride of a downsampling block sits on the 3x3 conv, not on the first 1x1.

The pose models use the backbone without its classifier (``num_classes=None``: no ``fc``);
``num_classes=1000`` adds ``fc`` and :meth:`ResNet.forward_classifier`, which gives torchvision's parameter
counts (resnet18 11,689,512; resnet34 21,797,672; resnet50 25,557,032; resnet101 44,549,160).
"""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or 1x1 projection) shortcut; ResNet-18/34.

    Args:
        in_channels: channels of the input.
        planes: channels of both convs; the block outputs ``planes * expansion`` channels.
        stride: stride of the first conv (2 in the first block of layer2..layer4).
        downsample: the projection shortcut (1x1 conv + BN) when shape changes, else None.
    """

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)  # (B, planes, H/stride, W/stride)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride, torchvision's v1.5), 1x1 expand by 4; ResNet-50/101.

    Args:
        in_channels: channels of the input.
        planes: channels of the two inner convs; the block outputs ``planes * 4`` channels.
        stride: stride of the 3x3 conv.
        downsample: the projection shortcut (1x1 conv + BN) when shape changes, else None.
    """

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)  # (B, 4 * planes, H/stride, W/stride)


def make_layer(
    block: type[BasicBlock] | type[Bottleneck], in_channels: int, planes: int, num_blocks: int, stride: int = 1
) -> nn.Sequential:
    """One ResNet stage: ``num_blocks`` blocks, the first one changing stride and/or channels.

    The shortcut of the first block is a projection ``Sequential(conv1x1, BN)`` (torchvision's
    ``downsample.0`` / ``downsample.1``) whenever the stride or the channel count changes. HRNet's stage 1
    uses it too.
    """
    out_channels = planes * block.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
            nn.BatchNorm2d(out_channels),
        )
    blocks = [block(in_channels, planes, stride, downsample)]
    blocks += [block(out_channels, planes) for _ in range(1, num_blocks)]
    return nn.Sequential(*blocks)


class ResNet(nn.Module):
    """ResNet returning the feature maps C2..C5 (strides 4, 8, 16, 32).

    Args:
        block: :class:`BasicBlock` (ResNet-18/34) or :class:`Bottleneck` (ResNet-50/101).
        layers: blocks per stage, e.g. ``(3, 4, 6, 3)`` for ResNet-50.
        width: channels of the stem and of layer1's inner convs; every stage scales with it (64 is the
            published network and the only width an ImageNet checkpoint fits; 32 is a narrow demo model).
        num_classes: None for a pure backbone (no ``fc``, what the pose models use); an int adds global
            pooling and ``fc`` for :meth:`forward_classifier`.
        last_stage: 5 builds C2..C5; 4 stops at C4 (no ``layer4`` at all, so no unused parameters under
            DDP), as the temporal stream of MultiStream uses it.

    Attributes:
        out_channels: channels of the returned maps, e.g. ``(256, 512, 1024, 2048)`` for ResNet-50.
        strides: their strides with respect to the input, ``(4, 8, 16, 32)`` (or the first three).
        pretrained_ignore: key prefixes of a torchvision checkpoint this module does not build
            (``fc.`` without a classifier, ``layer4.`` with ``last_stage=4``), skipped by ``load_pretrained``.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: tuple[int, int, int, int],
        width: int = 64,
        num_classes: int | None = None,
        last_stage: int = 5,
    ):
        super().__init__()
        if last_stage not in (4, 5):
            raise ValueError(f"last_stage must be 4 or 5, got {last_stage}")
        if num_classes is not None and last_stage != 5:
            raise ValueError("a classifier (num_classes) needs last_stage=5")
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)

        channels = width
        out_channels = []
        for stage in range(1, last_stage):  # layer1..layer{last_stage-1} give C2..C{last_stage}
            planes = width * 2 ** (stage - 1)
            stride = 1 if stage == 1 else 2
            setattr(self, f"layer{stage}", make_layer(block, channels, planes, layers[stage - 1], stride))
            channels = planes * block.expansion
            out_channels.append(channels)
        self.out_channels = tuple(out_channels)
        self.strides = (4, 8, 16, 32)[: last_stage - 1]
        self.num_stages = last_stage - 1

        ignore = []
        if num_classes is not None:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(channels, num_classes)
        else:
            ignore.append("fc.")
        if last_stage < 5:
            ignore.append("layer4.")
        self.pretrained_ignore = tuple(ignore)
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's initialisation, so that a model trained from scratch behaves like theirs.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of every built stage.

        Args:
            x: images, ``(B, 3, H, W)``, normalised.

        Returns:
            ``[c2, c3, c4, c5]`` (``[c2, c3, c4]`` with ``last_stage=4``); ``c_k`` is
            ``(B, out_channels[k-2], ceil(H / 2**k), ceil(W / 2**k))``.
        """
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, width, H/4, W/4)
        features = []
        for stage in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{stage}")(x)  # (B, out_channels[stage-1], H/2**(stage+1), W/2**(stage+1))
            features.append(x)
        return features

    def forward_classifier(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-style logits, ``(B, num_classes)``; only with ``num_classes`` set."""
        if not hasattr(self, "fc"):
            raise RuntimeError("this ResNet was built without a classifier (num_classes=None)")
        c5 = self.forward(x)[-1]
        return self.fc(torch.flatten(self.avgpool(c5), 1))  # (B, num_classes)


def resnet18(**kwargs) -> ResNet:
    """ResNet-18: BasicBlocks (2, 2, 2, 2); ``out_channels`` ``(64, 128, 256, 512)`` at width 64."""
    return ResNet(BasicBlock, (2, 2, 2, 2), **kwargs)


def resnet34(**kwargs) -> ResNet:
    """ResNet-34: BasicBlocks (3, 4, 6, 3); ``out_channels`` ``(64, 128, 256, 512)`` at width 64."""
    return ResNet(BasicBlock, (3, 4, 6, 3), **kwargs)


def resnet50(**kwargs) -> ResNet:
    """ResNet-50: Bottlenecks (3, 4, 6, 3); ``out_channels`` ``(256, 512, 1024, 2048)`` at width 64."""
    return ResNet(Bottleneck, (3, 4, 6, 3), **kwargs)


def resnet101(**kwargs) -> ResNet:
    """ResNet-101: Bottlenecks (3, 4, 23, 3); ``out_channels`` ``(256, 512, 1024, 2048)`` at width 64."""
    return ResNet(Bottleneck, (3, 4, 23, 3), **kwargs)
