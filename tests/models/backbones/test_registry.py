"""The backbone table and what every backbone promises the pose models."""

from __future__ import annotations

import pytest
import torch

from sportpose.models.backbones import BACKBONES, build_backbone

# Small enough for a CPU test; each constructor's own width argument.
TINY = {
    "resnet18": {"width": 8},
    "resnet34": {"width": 8},
    "resnet50": {"width": 8},
    "resnet101": {"width": 8},
    "vgg16": {"width": 8},
    "efficientnet_b3": {"width_mult": 0.25, "depth_mult": 0.5},
    "hrnet_w32": {"width": 8},
    "hrnet_w18": {"width": 8},
    "hrnet_w18_small": {"width": 8},
}


def test_table_names_every_variant():
    assert set(BACKBONES) == set(TINY)


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_parameter_is_used(name):
    # DDP fails on parameters that take no part in the forward pass.
    model = build_backbone(name, **TINY[name])
    out = model(torch.randn(2, 3, 64, 64))
    outputs = out if isinstance(out, list) else [out]
    sum(o.float().mean() for o in outputs).backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert unused == []
