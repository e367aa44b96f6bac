"""CNN backbones written in the project (torchvision cannot be imported beside the CPU torch build here).

Every backbone but HRNet returns a list of feature maps ``[c2, c3, c4, c5]`` at strides ``(4, 8, 16, 32)``
and exposes ``out_channels`` and ``strides``; HRNet returns one map at stride 4 and exposes
``out_channels`` (an int) and ``stride``. Each module keeps the parameter names of its reference
implementation, so a local checkpoint of it initialises the module through :func:`load_pretrained`.
Nothing is ever downloaded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from sportpose.errors import DataError
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

_MAX_KEYS_SHOWN = 20


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


def _show(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_KEYS_SHOWN])
    more = len(keys) - _MAX_KEYS_SHOWN
    return shown + (f", ... and {more} more" if more > 0 else "")


def load_pretrained(module: nn.Module, path: str | Path) -> nn.Module:
    """Initialise ``module`` from a local state dict file in its reference layout (e.g. torchvision's).

    Keys under the module's ``pretrained_ignore`` prefixes (a classifier the module was built without,
    ``fc.`` for a ResNet backbone; a stage it does not build) are skipped. BatchNorm's
    ``num_batches_tracked`` may be absent from the file, as in checkpoints older than PyTorch 0.4.
    Anything else must match exactly; the module is left untouched when it does not.

    Args:
        module: a backbone of this package.
        path: a file written by ``torch.save(state_dict)``; loaded with ``weights_only=True`` so loading
            never runs code.

    Returns:
        ``module``, loaded.

    Raises:
        DataError: names the file and the missing keys, unexpected keys or mismatched shapes.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(path, "", "expected a state dict (a mapping of parameter names to tensors)")
    ignore = tuple(getattr(module, "pretrained_ignore", ()))
    state = {k: v for k, v in state.items() if not (ignore and k.startswith(ignore))}
    own = module.state_dict()

    unexpected = [k for k in state if k not in own]
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    mismatched = [
        f"{k} (file {tuple(v.shape)}, model {tuple(own[k].shape)})"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {_show(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_show(unexpected)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches: {_show(mismatched)}")
    if problems:
        raise DataError(path, "state_dict", f"does not fit {type(module).__name__}: " + "; ".join(problems))
    module.load_state_dict(state, strict=False)  # strict=False only for absent num_batches_tracked
    return module


__all__ = [
    "BACKBONES",
    "EfficientNet",
    "HRNet",
    "ResNet",
    "VGG",
    "build_backbone",
    "load_pretrained",
]
