"""VGG-16 (Simonyan & Zisserman 2015), with or without BatchNorm, as feature pyramids C2..C5.

The layout is torchvision's: one ``features`` Sequential (conv, [BN,] ReLU per conv, a max-pool after
each of the five blocks) and, with a classifier, ``avgpool`` and ``classifier.0/3/6``, so that
torchvision's ``vgg16`` / ``vgg16_bn`` state dicts load. With ``num_classes=1000`` the parameter count is
torchvision's (vgg16 138,357,544; vgg16_bn 138,365,992).

Where the pyramid is tapped: VGG's block k works at stride 2**(k-1) and its max-pool takes it to 2**k, so
the maps at strides 4, 8, 16 are the outputs of the conv stacks of blocks 3, 4, 5 *before* their pooling
(conv3_3, conv4_3, conv5_3 after ReLU, as SSD and FCN tap them), and the map at stride 32 is the output of
the last pooling (pool5):

    C2 = conv3_3  (stride 4,  4 * width channels)
    C3 = conv4_3  (stride 8,  8 * width)
    C4 = conv5_3  (stride 16, 8 * width)
    C5 = pool5    (stride 32, 8 * width)
"""

from __future__ import annotations

import torch
from torch import nn

# Convs per block of VGG-16 (configuration "D") and each block's channels as a multiple of ``width``.
VGG16_BLOCKS: tuple[int, ...] = (2, 2, 3, 3, 3)
VGG16_WIDTHS: tuple[int, ...] = (1, 2, 4, 8, 8)


class VGG(nn.Module):
    """VGG returning C2..C5 (strides 4, 8, 16, 32), see the module docstring for the taps.

    Args:
        blocks: convs per block (``VGG16_BLOCKS`` for VGG-16).
        batch_norm: BN after every conv (torchvision's ``vgg16_bn``).
        width: channels of the first block (64 in the published network); later blocks use
            ``2, 4, 8, 8`` times it.
        num_classes: None for a pure backbone; an int adds torchvision's ``avgpool`` (7x7) and the
            three-layer ``classifier`` for :meth:`forward_classifier`.
        dropout: dropout probability of the classifier.

    Attributes:
        out_channels: channels of C2..C5, ``(256, 512, 512, 512)`` at width 64.
        strides: ``(4, 8, 16, 32)``.
        pretrained_ignore: ``("classifier.",)`` without a classifier, skipped by ``load_pretrained``.
    """

    def __init__(
        self,
        blocks: tuple[int, ...] = VGG16_BLOCKS,
        batch_norm: bool = False,
        width: int = 64,
        num_classes: int | None = None,
        dropout: float = 0.5,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        self._taps: list[int] = []  # index in ``features`` after which a pyramid level is read
        in_channels = 3
        for block, (num_convs, mult) in enumerate(zip(blocks, VGG16_WIDTHS), start=1):
            channels = width * mult
            for _ in range(num_convs):
                layers.append(nn.Conv2d(in_channels, channels, 3, padding=1))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(channels))
                layers.append(nn.ReLU(inplace=True))
                in_channels = channels
            if block >= 3:
                self._taps.append(len(layers) - 1)  # the last ReLU of blocks 3, 4, 5
            layers.append(nn.MaxPool2d(2, stride=2))
        self._taps.append(len(layers) - 1)  # pool5
        self.features = nn.Sequential(*layers)
        self.out_channels = (width * 4, width * 8, width * 8, width * 8)
        self.strides = (4, 8, 16, 32)

        if num_classes is not None:
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(in_channels * 7 * 7, 4096),
                nn.ReLU(True),
                nn.Dropout(dropout),
                nn.Linear(4096, 4096),
                nn.ReLU(True),
                nn.Dropout(dropout),
                nn.Linear(4096, num_classes),
            )
            self.pretrained_ignore: tuple[str, ...] = ()
        else:
            self.pretrained_ignore = ("classifier.",)
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's initialisation.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps C2..C5.

        Args:
            x: images, ``(B, 3, H, W)``, normalised; H and W are floored by each 2x2 pooling, so sizes
                divisible by 32 give exact strides.

        Returns:
            ``[c2, c3, c4, c5]``; ``c_k`` is ``(B, out_channels[k-2], H // 2**k, W // 2**k)``.
        """
        features = []
        taps = iter(self._taps)
        tap = next(taps)
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index == tap:
                features.append(x)  # (B, C_k, H/2**k, W/2**k)
                tap = next(taps, -1)
        return features

    def forward_classifier(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-style logits, ``(B, num_classes)``; only with ``num_classes`` set."""
        if not hasattr(self, "classifier"):
            raise RuntimeError("this VGG was built without a classifier (num_classes=None)")
        pool5 = self.forward(x)[-1]
        return self.classifier(torch.flatten(self.avgpool(pool5), 1))  # (B, num_classes)


def vgg16(batch_norm: bool = False, **kwargs) -> VGG:
    """VGG-16 (torchvision's ``vgg16``, or ``vgg16_bn`` with ``batch_norm=True``)."""
    return VGG(VGG16_BLOCKS, batch_norm=batch_norm, **kwargs)
