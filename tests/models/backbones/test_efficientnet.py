"""EfficientNet-B3 backbone: pyramid shapes, torchvision's parameter count and names."""

from __future__ import annotations

import pytest
import torch

from sportpose.models.backbones import build_backbone
from sportpose.models.backbones.efficientnet import make_divisible


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_count_matches_torchvision():
    with torch.device("meta"):
        assert count(build_backbone("efficientnet_b3", num_classes=1000)) == 12_233_232


def test_torchvision_names():
    keys = set(build_backbone("efficientnet_b3", num_classes=1000).state_dict())
    for key in (
        "features.0.0.weight",
        "features.0.1.running_var",
        "features.1.0.block.0.0.weight",  # stage 1 has no expansion: depthwise first
        "features.1.0.block.1.fc1.weight",
        "features.2.0.block.0.0.weight",  # expansion
        "features.2.0.block.1.0.weight",  # depthwise
        "features.2.0.block.2.fc2.bias",  # squeeze-excitation
        "features.2.0.block.3.1.weight",  # projection BN
        "features.7.1.block.3.0.weight",  # depth 1 * 1.4 -> 2 blocks
        "features.8.0.weight",
        "classifier.1.weight",
    ):
        assert key in keys, key


def test_make_divisible_rounds_like_the_reference():
    assert [make_divisible(c * 1.2) for c in (32, 16, 24, 40, 80, 112, 192, 320)] == [
        40, 24, 32, 48, 96, 136, 232, 384,
    ]


@pytest.mark.parametrize("size", [(64, 64), (64, 96), (50, 70)])
def test_pyramid_shapes_and_strides(size):
    model = build_backbone("efficientnet_b3").eval()
    with torch.no_grad():
        features = model(torch.randn(1, 3, *size))
    assert model.out_channels == (32, 48, 136, 1536)
    assert model.strides == (4, 8, 16, 32)
    for f, c, s in zip(features, model.out_channels, model.strides, strict=True):
        assert f.shape == (1, c, -(-size[0] // s), -(-size[1] // s))


def test_width_multiplier_changes_channels():
    model = build_backbone("efficientnet_b3", width_mult=0.5, depth_mult=0.5)
    assert model.out_channels == (16, 24, 56, 640)
    assert [f.shape[1] for f in model(torch.randn(2, 3, 32, 32))] == list(model.out_channels)


def test_stochastic_depth_only_in_training():
    model = build_backbone("efficientnet_b3", width_mult=0.5, depth_mult=0.5, stochastic_depth_prob=0.9)
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x)[-1], model(x)[-1])
    model.train()
    torch.manual_seed(0)
    a = model(x)[-1]
    torch.manual_seed(1)
    assert not torch.allclose(a, model(x)[-1])
