"""CNN backbones written in the project (torchvision cannot be imported beside the CPU torch build here).

Every backbone but HRNet returns a list of feature maps ``[c2, c3, c4, c5]`` at strides ``(4, 8, 16, 32)``
and exposes ``out_channels`` and ``strides``; HRNet returns one map at stride 4 and exposes
``out_channels`` (an int) and ``stride``. Each module keeps the parameter names of its reference
implementation, so a local checkpoint of it initialises the module through
:func:`sportpose.models.pretrained.load_pretrained`.
Nothing is ever downloaded.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from sportpose.models.backbones.efficientnet import EfficientNet, efficientnet_b3
from sportpose.models.backbones.hrnet import HRNet, hrnet_w18, hrnet_w18_small, hrnet_w32
from sportpose.models.backbones.resnet import ResNet, resnet18, resnet34, resnet50, resnet101
from sportpose.models.backbones.vgg import VGG, vgg16

BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "resnet101": resnet101,
    "vgg16": vgg16,
    "efficientnet_b3": efficientnet_b3,
    "hrnet_w32": hrnet_w32,
    "hrnet_w18": hrnet_w18,
    "hrnet_w18_small": hrnet_w18_small,
}

def build_backbone(name: str, **kwargs) -> nn.Module:
    """Build a backbone by name.

    Args:
        name: a key of :data:`BACKBONES`.
        **kwargs: passed to its constructor (e.g. ``width=32``, ``num_classes=1000``, ``last_stage=4``).

    Returns:
        The module, randomly initialised.

    Raises:
        KeyError: for an unknown name; the message lists the known ones.
    """
    if name not in BACKBONES:
        raise KeyError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}")
    return BACKBONES[name](**kwargs)


__all__ = [
    "BACKBONES",
    "EfficientNet",
    "HRNet",
    "ResNet",
    "VGG",
    "build_backbone",
]
