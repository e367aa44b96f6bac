"""HRNet backbones: stride-4 output, exchange units, parameter count of pose_hrnet_w32."""

from __future__ import annotations

import pytest
import torch

from sportpose.models.backbones import build_backbone


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_w32_matches_pose_hrnet_w32():
    with torch.device("meta"):
        backbone = build_backbone("hrnet_w32")
    head = 32 * 17 + 17  # pose_hrnet's final_layer: 1x1 conv, 32 -> 17 joints, with bias
    assert count(backbone) == 28_535_552
    assert count(backbone) + head == 28_536_113  # the paper's 28.5M


def test_official_checkpoint_names():
    keys = set(build_backbone("hrnet_w32").state_dict())
    for key in (
        "conv2.weight",
        "layer1.3.bn3.running_mean",
        "transition1.0.0.weight",
        "transition1.1.0.0.weight",
        "transition3.3.0.0.weight",
        "stage2.0.branches.1.3.conv2.weight",
        "stage3.3.fuse_layers.2.0.1.0.weight",  # 2 strided convs from branch 0 to branch 2
        "stage4.2.fuse_layers.0.3.0.weight",  # upsampling branch 3 into branch 0
    ):
        assert key in keys, key
    # The last unit of stage 4 outputs only branch 0.
    assert not any(k.startswith("stage4.2.fuse_layers.1.") for k in keys)
    assert any(k.startswith("stage4.1.fuse_layers.3.") for k in keys)


@pytest.mark.parametrize(
    "name, kwargs, width",
    [
        ("hrnet_w32", {}, 32),
        ("hrnet_w18", {}, 18),
        ("hrnet_w18_small", {}, 18),
        ("hrnet_w18_small", {"width": 16}, 16),
    ],
)
@pytest.mark.parametrize("size", [(64, 64), (64, 96), (50, 70)])
def test_output_stride_4_and_width_channels(name, kwargs, width, size):
    model = build_backbone(name, **kwargs).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert model.out_channels == width and model.stride == 4
    assert out.shape == (1, width, -(-size[0] // 4), -(-size[1] // 4))


def test_small_is_smaller():
    with torch.device("meta"):
        assert count(build_backbone("hrnet_w18_small", width=16)) < count(build_backbone("hrnet_w18_small"))
        assert count(build_backbone("hrnet_w18_small")) < count(build_backbone("hrnet_w18")) / 4


def test_gradient_reaches_every_branch():
    model = build_backbone("hrnet_w18_small", width=8)
    for m in model.modules():  # the pose init (std 0.001) makes gradients tiny; any nonzero value counts
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight)
    model(torch.randn(2, 3, 64, 64)).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # Every branch of the last stage, including the lowest-resolution one, feeds the output.
    assert all(model.stage4[0].branches[i][0].conv1.weight.grad.abs().sum() > 0 for i in range(4))
