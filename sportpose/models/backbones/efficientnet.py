"""EfficientNet-B3 (Tan & Le 2019) as feature pyramids C2..C5, with torchvision's parameter names.

The network is EfficientNet-B0's stage table scaled by width 1.2 and depth 1.4 (B3) the way torchvision
scales it (channels rounded to multiples of 8, depth rounded up), built from MBConv blocks (1x1 expansion,
depthwise kxk, squeeze-excitation, 1x1 projection; SiLU; stochastic depth on the residual branch growing
linearly with block index to ``stochastic_depth_prob``). Names follow torchvision:
``features.0`` stem, ``features.1``..``features.7`` the seven MBConv stages
(``features.S.M.block.{0,1,2,3}``: expand, depthwise, SE ``fc1/fc2``, project), ``features.8`` the final
1x1 conv, and with a classifier ``classifier.1``; a torchvision ``efficientnet_b3`` state dict loads and
``num_classes=1000`` gives its parameter count (12,233,232).

Pyramid taps (strides with respect to the input; the stage table is in ``B0_STAGES``):

    C2 = features.2 (stride 4,  32 ch for B3)
    C3 = features.3 (stride 8,  48 ch)
    C4 = features.5 (stride 16, 136 ch)
    C5 = features.8 (stride 32, 1536 ch: after the final 1x1 conv, so that every parameter of the
         ImageNet ``features`` is used and DDP sees no unused parameter)
"""

from __future__ import annotations

import math

import torch
from torch import nn

# EfficientNet-B0's stages: (expand_ratio, kernel, stride, in_channels, out_channels, num_layers).
B0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)
TAPS: tuple[int, ...] = (2, 3, 5, 8)  # indices in ``features`` read as C2..C5


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never going down by more than 10%.

    The rounding of the TensorFlow reference (and torchvision), which fixes the channel counts of a
    width-scaled network and so the shapes of its checkpoints.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def conv_bn_act(
    in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True
) -> nn.Sequential:
    """``Sequential(conv, BN[, SiLU])`` with "same" padding: torchvision's ``Conv2dNormActivation`` keys."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if act:
        layers.append(nn.SiLU(inplace=True))
    return nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    """Channel gating: ``x * sigmoid(fc2(silu(fc1(mean_hw(x)))))`` with 1x1 convs ``fc1``/``fc2``.

    Args:
        channels: channels of the gated map.
        squeeze_channels: channels of the bottleneck (a quarter of the MBConv's *input* channels).
    """

    def __init__(self, channels: int, squeeze_channels: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.activation = nn.SiLU(inplace=True)
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.fc2(self.activation(self.fc1(self.avgpool(x))))  # (B, C, 1, 1)
        return x * self.scale_activation(scale)  # (B, C, H, W)


class MBConv(nn.Module):
    """Mobile inverted bottleneck with squeeze-excitation.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
        expand_ratio: expansion of the hidden width (1: no expansion conv).
        kernel: kernel size of the depthwise conv.
        stride: stride of the depthwise conv.
        drop_prob: stochastic depth probability of the residual branch (per sample, training only).
    """

    def __init__(
        self, in_channels: int, out_channels: int, expand_ratio: int, kernel: int, stride: int, drop_prob: float
    ):
        super().__init__()
        hidden = make_divisible(in_channels * expand_ratio)
        layers: list[nn.Module] = []
        if hidden != in_channels:
            layers.append(conv_bn_act(in_channels, hidden, 1))
        layers.append(conv_bn_act(hidden, hidden, kernel, stride, groups=hidden))
        layers.append(SqueezeExcitation(hidden, max(1, in_channels // 4)))
        layers.append(conv_bn_act(hidden, out_channels, 1, act=False))
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)  # (B, out_channels, H/stride, W/stride)
        if not self.use_residual:
            return out
        if self.training and self.drop_prob > 0:
            keep = 1.0 - self.drop_prob
            mask = torch.empty(out.shape[0], 1, 1, 1, dtype=out.dtype, device=out.device).bernoulli_(keep)
            out = out * mask / keep
        return out + x


class EfficientNet(nn.Module):
    """EfficientNet returning C2..C5 (strides 4, 8, 16, 32), see the module docstring for the taps.

    Args:
        width_mult: channel multiplier of B0's table (1.2 for B3).
        depth_mult: layer multiplier of B0's table (1.4 for B3).
        num_classes: None for a pure backbone; an int adds pooling, dropout and ``classifier.1``.
        stochastic_depth_prob: drop probability of the last block's residual branch (torchvision: 0.2);
            0 disables stochastic depth.
        dropout: dropout before the classifier (torchvision's B3: 0.3).

    Attributes:
        out_channels: channels of C2..C5, ``(32, 48, 136, 1536)`` for B3.
        strides: ``(4, 8, 16, 32)``.
        pretrained_ignore: ``("classifier.",)`` without a classifier, skipped by ``load_pretrained``.
    """

    def __init__(
        self,
        width_mult: float = 1.2,
        depth_mult: float = 1.4,
        num_classes: int | None = None,
        stochastic_depth_prob: float = 0.2,
        dropout: float = 0.3,
    ):
        super().__init__()
        stages = []  # B0's table scaled: channels rounded to multiples of 8, layers rounded up
        for expand, kernel, stride, c_in, c_out, n in B0_STAGES:
            c_in, c_out = make_divisible(c_in * width_mult), make_divisible(c_out * width_mult)
            stages.append((expand, kernel, stride, c_in, c_out, math.ceil(n * depth_mult)))
        total_blocks = sum(stage[-1] for stage in stages)
        layers: list[nn.Module] = [conv_bn_act(3, stages[0][3], 3, stride=2)]
        block_id = 0
        for expand, kernel, stride, in_channels, out_channels, num_layers in stages:
            blocks = []
            for i in range(num_layers):
                drop = stochastic_depth_prob * block_id / total_blocks
                cin, s = (in_channels, stride) if i == 0 else (out_channels, 1)
                blocks.append(MBConv(cin, out_channels, expand, kernel, s, drop))
                block_id += 1
            layers.append(nn.Sequential(*blocks))
        last_channels = 4 * stages[-1][4]
        layers.append(conv_bn_act(stages[-1][4], last_channels, 1))
        self.features = nn.Sequential(*layers)

        stage_out = [stages[0][3]] + [stage[4] for stage in stages] + [last_channels]
        self.out_channels = tuple(stage_out[i] for i in TAPS)
        self.strides = (4, 8, 16, 32)

        if num_classes is not None:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Sequential(
                nn.Dropout(dropout, inplace=True), nn.Linear(last_channels, num_classes)
            )
            self.pretrained_ignore: tuple[str, ...] = ()
        else:
            self.pretrained_ignore = ("classifier.",)
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's initialisation.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps C2..C5.

        Args:
            x: images, ``(B, 3, H, W)``, normalised.

        Returns:
            ``[c2, c3, c4, c5]``; ``c_k`` is ``(B, out_channels[k-2], ceil(H / 2**k), ceil(W / 2**k))``.
        """
        features = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in TAPS:
                features.append(x)  # (B, C_k, H/2**k, W/2**k)
        return features

    def forward_classifier(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-style logits, ``(B, num_classes)``; only with ``num_classes`` set."""
        if not hasattr(self, "classifier"):
            raise RuntimeError("this EfficientNet was built without a classifier (num_classes=None)")
        c5 = self.forward(x)[-1]
        return self.classifier(torch.flatten(self.avgpool(c5), 1))  # (B, num_classes)


def efficientnet_b3(**kwargs) -> EfficientNet:
    """EfficientNet-B3: width 1.2, depth 1.4 (torchvision's ``efficientnet_b3``)."""
    kwargs.setdefault("width_mult", 1.2)
    kwargs.setdefault("depth_mult", 1.4)
    return EfficientNet(**kwargs)
