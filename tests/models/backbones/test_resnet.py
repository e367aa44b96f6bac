"""ResNet backbones: pyramid shapes, torchvision's parameter counts and checkpoint layout."""

from __future__ import annotations

import pytest
import torch

from sportpose.errors import DataError
from sportpose.models.backbones import build_backbone
from sportpose.models.backbones.resnet import resnet50
from sportpose.models.pretrained import load_pretrained

# torchvision.models.resnet*(num_classes=1000): sum of p.numel() over parameters.
TORCHVISION_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
}
EXPANSION = {"resnet18": 1, "resnet34": 1, "resnet50": 4, "resnet101": 4}


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def torchvision_resnet50_keys() -> list[str]:
    """The state dict keys of torchvision's resnet50, written from its published layout."""

    def bn(prefix: str) -> list[str]:
        return [f"{prefix}.{n}" for n in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]

    keys = ["conv1.weight", *bn("bn1")]
    for layer, num_blocks in enumerate((3, 4, 6, 3), start=1):
        for b in range(num_blocks):
            p = f"layer{layer}.{b}"
            for i in (1, 2, 3):
                keys += [f"{p}.conv{i}.weight", *bn(f"{p}.bn{i}")]
            if b == 0:
                keys += [f"{p}.downsample.0.weight", *bn(f"{p}.downsample.1")]
    return keys + ["fc.weight", "fc.bias"]


@pytest.mark.parametrize("name", list(TORCHVISION_PARAMS))
def test_parameter_count_matches_torchvision(name):
    with torch.device("meta"):
        assert count(build_backbone(name, num_classes=1000)) == TORCHVISION_PARAMS[name]


@pytest.mark.parametrize("name", list(TORCHVISION_PARAMS))
@pytest.mark.parametrize("size", [(64, 64), (64, 96), (50, 70)])
def test_pyramid_shapes_and_strides(name, size):
    model = build_backbone(name, width=16).eval()
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        features = model(x)
    assert model.strides == (4, 8, 16, 32)
    assert model.out_channels == tuple(16 * 2**i * EXPANSION[name] for i in range(4))
    assert len(features) == 4
    for f, c, s in zip(features, model.out_channels, model.strides):
        assert f.shape == (1, c, -(-size[0] // s), -(-size[1] // s))


def test_width_scales_every_stage():
    assert build_backbone("resnet18").out_channels == (64, 128, 256, 512)
    assert build_backbone("resnet18", width=32).out_channels == (32, 64, 128, 256)
    assert build_backbone("resnet50", width=32).out_channels == (128, 256, 512, 1024)


def test_last_stage_stops_at_c4_without_layer4():
    model = build_backbone("resnet18", width=16, last_stage=4)
    features = model(torch.randn(2, 3, 64, 64))
    assert [f.shape[1:] for f in features] == [(16, 16, 16), (32, 8, 8), (64, 4, 4)]
    assert model.out_channels == (16, 32, 64) and model.strides == (4, 8, 16)
    assert not any(k.startswith("layer4.") for k in model.state_dict())


def test_classifier_only_when_asked():
    assert not any(k.startswith("fc.") for k in build_backbone("resnet18").state_dict())
    model = build_backbone("resnet18", width=8, num_classes=10)
    assert model.forward_classifier(torch.randn(2, 3, 64, 64)).shape == (2, 10)


def test_torchvision_resnet50_state_dict_loads(tmp_path):
    expected = torchvision_resnet50_keys()
    assert list(resnet50(num_classes=1000).state_dict()) == expected

    # A checkpoint with exactly torchvision's keys; the backbone has no fc, which is skipped.
    reference = resnet50(num_classes=1000)
    torch.nn.init.normal_(reference.layer3[2].conv2.weight)
    state = reference.state_dict()
    assert sorted(state) == sorted(expected)
    path = tmp_path / "resnet50.pth"
    torch.save(state, path)

    backbone = resnet50()
    load_pretrained(backbone, path)
    assert torch.equal(backbone.layer3[2].conv2.weight, state["layer3.2.conv2.weight"])
    classifier = resnet50(num_classes=1000)
    load_pretrained(classifier, path)
    assert torch.equal(classifier.fc.weight, state["fc.weight"])


def test_checkpoint_without_num_batches_tracked_loads(tmp_path):
    # ImageNet checkpoints saved before PyTorch 0.4 have no num_batches_tracked buffers.
    state = {k: v for k, v in resnet50().state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "old.pth")
    load_pretrained(resnet50(), tmp_path / "old.pth")


def test_bad_checkpoint_names_file_and_keys(tmp_path):
    path = tmp_path / "narrow.pth"
    torch.save(resnet50(width=32).state_dict(), path)
    model = resnet50()
    before = model.conv1.weight.clone()
    message = r"narrow\.pth.*shape mismatches: conv1\.weight \(file \(32, 3, 7, 7\), model \(64, 3, 7, 7\)\)"
    with pytest.raises(DataError, match=message):
        load_pretrained(model, path)
    assert torch.equal(model.conv1.weight, before)  # untouched on error

    state = resnet50().state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["layer1.0.conv1.weight"]
    torch.save(state, path)
    message = r"missing keys: layer1\.0\.conv1\.weight.*unexpected keys: extra\.weight"
    with pytest.raises(DataError, match=message):
        load_pretrained(resnet50(), path)

    torch.save([1, 2, 3], path)
    with pytest.raises(DataError, match="expected a state dict"):
        load_pretrained(resnet50(), path)


def test_unknown_backbone_lists_known_names():
    with pytest.raises(KeyError, match="resnet50.*hrnet_w18_small"):
        build_backbone("resnet152")
