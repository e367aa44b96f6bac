"""VGG-16 backbone: pyramid taps, strides and torchvision's layout."""

from __future__ import annotations

import pytest
import torch

from sportpose.models.backbones import build_backbone


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("batch_norm, expected", [(False, 138_357_544), (True, 138_365_992)])
def test_parameter_count_matches_torchvision(batch_norm, expected):
    with torch.device("meta"):
        assert count(build_backbone("vgg16", batch_norm=batch_norm, num_classes=1000)) == expected


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("size", [(64, 64), (64, 96)])
def test_pyramid_shapes_and_strides(batch_norm, size):
    model = build_backbone("vgg16", batch_norm=batch_norm, width=8).eval()
    with torch.no_grad():
        features = model(torch.randn(1, 3, *size))
    assert model.out_channels == (32, 64, 64, 64)
    assert model.strides == (4, 8, 16, 32)
    for f, c, s in zip(features, model.out_channels, model.strides, strict=True):
        assert f.shape == (1, c, size[0] // s, size[1] // s)


def test_taps_are_conv3_3_conv4_3_conv5_3_and_pool5():
    model = build_backbone("vgg16", width=8).eval()
    x = torch.randn(1, 3, 64, 64)
    # torchvision's vgg16 features: ReLU after conv3_3 at 15, conv4_3 at 22, conv5_3 at 29, pool5 at 30.
    with torch.no_grad():
        expected = [model.features[: i + 1](x) for i in (15, 22, 29, 30)]
        for got, want in zip(model(x), expected, strict=True):
            assert torch.equal(got, want)


def test_torchvision_layout_and_classifier():
    keys = list(build_backbone("vgg16", num_classes=10, width=8).state_dict())
    convs = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)  # torchvision's vgg16 conv indices
    assert keys == [f"features.{i}.{p}" for i in convs for p in ("weight", "bias")] + [
        f"classifier.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias")
    ]
    model = build_backbone("vgg16", width=8, num_classes=10).eval()
    assert model.forward_classifier(torch.randn(1, 3, 64, 64)).shape == (1, 10)
    assert not any(k.startswith("classifier.") for k in build_backbone("vgg16", width=8).state_dict())
