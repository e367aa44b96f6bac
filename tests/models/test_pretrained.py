"""Pretrained initialisation from files in the published layouts: torchvision's ImageNet state dicts and the
MMPose model zoo's top-down checkpoints. The key names and shapes are the published ones, listed in
``published_keys/`` (see its README.txt for where each list comes from); each test writes a file with exactly
those keys and loads it into the project's modules."""

from pathlib import Path

import pytest
import torch

from sportpose.errors import DataError
from sportpose.models.backbones import build_backbone
from sportpose.models.pretrained import (
    COCO_JOINTS,
    FROM_COCO,
    initialise,
    load_pretrained,
    read_checkpoint,
    reports_markdown,
)
from sportpose.models.simplebaseline import SimpleBaseline, SimpleBaselineConfig
from sportpose.models.skeleton import H36M, POSETRACK
from sportpose.models.stsp import STSPConfig, STSPNet

KEYS = Path(__file__).parent / "published_keys"
TORCHVISION = ("resnet18", "resnet34", "resnet50", "resnet101", "vgg16", "efficientnet_b3")


def published(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with the published keys and shapes of ``name``. Tensors are stride-0 views of one value
    per key (files of a few kB), except that every key gets its own value so a copy to the wrong place shows."""
    state = {}
    for i, line in enumerate((KEYS / f"{name}.txt").read_text().splitlines()):
        key, shape = line.split()
        dims = () if shape == "-" else tuple(int(d) for d in shape.split(","))
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7, dtype=torch.long)
        else:
            state[key] = torch.full((1,) * len(dims), float(i + seed) / 1000).expand(dims)
    return state


def assert_loaded(module: torch.nn.Module, state: dict[str, torch.Tensor], prefix: str = "", file_prefix: str = ""):
    own = module.state_dict()
    for key, value in state.items():
        if key.startswith(file_prefix) and prefix + key[len(file_prefix):] in own:
            torch.testing.assert_close(own[prefix + key[len(file_prefix):]].float(), value.float().expand_as(
                own[prefix + key[len(file_prefix):]]), msg=key)


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_imagenet_files_cover_every_backbone_key(name, tmp_path):
    state = published(name)
    path = tmp_path / f"{name}.pth"
    torch.save(state, path)
    backbone = build_backbone(name)
    report = load_pretrained(backbone, path)
    assert report.layout == "torchvision"
    covered = {r.model_key for r in report.rows if r.status in ("matched", "kept")}
    assert covered == set(backbone.state_dict())  # zero missing keys
    unused = {r.file_key for r in report.rows if r.status == "unused"}
    assert unused == {k for k in state if k.startswith(("fc.", "classifier."))}  # only the classifier
    assert_loaded(backbone, state)


def test_temporal_resnet_to_c4_leaves_layer4_unused(tmp_path):
    torch.save(published("resnet18"), tmp_path / "r18.pth")
    report = load_pretrained(build_backbone("resnet18", last_stage=4), tmp_path / "r18.pth")
    unused = [r.file_key for r in report.rows if r.status == "unused"]
    assert unused and all(k.startswith(("layer4.", "fc.")) for k in unused) and report.count("matched") > 0


def mmpose_file(path: Path, state: dict[str, torch.Tensor], version: str = "0.x") -> Path:
    if version == "1.x":
        state = {("head." + k[len("keypoint_head."):] if k.startswith("keypoint_head.") else k): v
                 for k, v in state.items()}
    torch.save({"meta": {"epoch": 210, "mmpose_version": version, "env_info": "ignored"}, "state_dict": state}, path)
    return path


@pytest.mark.parametrize("version", ["0.x", "1.x"])
def test_mmpose_simplebaseline_r50_loads_backbone_deconvs_and_head_rows(version, tmp_path):
    state = published("mmpose_res50_coco_256x192")
    path = mmpose_file(tmp_path / "res50_coco_256x192.pth", state, version)
    config = SimpleBaselineConfig(backbone="resnet50", deconv_channels=256, pretrained=str(path))
    model = SimpleBaseline(config, POSETRACK.num_joints)
    head_before = model.head.weight.detach().clone()
    (report,) = initialise(model, config, "posetrack")
    assert report.layout == "mmpose" and report.name == "pretrained"
    covered = {r.model_key for r in report.rows if r.status in ("matched", "kept", "rows")}
    assert covered == set(model.state_dict())  # backbone, deconvolutions and head: nothing missing
    assert not [r for r in report.rows if r.status == "unused"]
    assert_loaded(model.backbone, state, file_prefix="backbone.")
    assert_loaded(model.deconv, state, file_prefix="keypoint_head.deconv_layers.")
    coco = state["keypoint_head.final_layer.weight"]
    for j, name in enumerate(POSETRACK.joints):
        if name in COCO_JOINTS:
            torch.testing.assert_close(model.head.weight[j], coco[COCO_JOINTS.index(name)].expand_as(model.head.weight[j]))
        else:  # head_bottom, head_top: COCO has no such joint
            torch.testing.assert_close(model.head.weight[j], head_before[j])
    assert "15/17 joints from COCO" in report.table()


def test_mmpose_hrnet_w32_initialises_stsp_epe(tmp_path):
    state = published("mmpose_hrnet_w32_coco_256x192")
    path = mmpose_file(tmp_path / "hrnet_w32_coco_256x192.pth", state)
    config = STSPConfig(backbone="hrnet_w32", pretrained=str(path))
    model = STSPNet(config, H36M.num_joints)
    (report,) = initialise(model, config, "h36m")
    backbone_keys = {f"epe.backbone.{k}" for k in model.epe.backbone.state_dict()}
    covered = {r.model_key for r in report.rows if r.status in ("matched", "kept")}
    assert backbone_keys <= covered  # zero missing backbone keys
    assert_loaded(model.epe.backbone, state, file_prefix="backbone.")
    coco = state["keypoint_head.final_layer.weight"]
    assert FROM_COCO["h36m"][H36M.index("r_knee")] == COCO_JOINTS.index("right_knee")
    torch.testing.assert_close(model.epe.head.weight[H36M.index("r_knee")],
                               coco[COCO_JOINTS.index("right_knee")].expand_as(model.epe.head.weight[0]))
    rows = [r for r in report.rows if r.status == "rows"]
    assert {r.model_key for r in rows} == {"epe.head.weight", "epe.head.bias"} and "12/17" in rows[0].note


def test_shape_mismatch_names_the_key_and_both_shapes(tmp_path):
    path = mmpose_file(tmp_path / "res50.pth", published("mmpose_res50_coco_256x192"))
    config = SimpleBaselineConfig(backbone="resnet50", deconv_channels=128, pretrained=str(path))
    model = SimpleBaseline(config, POSETRACK.num_joints)
    before = model.backbone.conv1.weight.detach().clone()
    message = (r"res50\.pth.*keypoint_head\.deconv_layers\.0\.weight \(file \(2048, 256, 4, 4\), "
               r"model \(2048, 128, 4, 4\)\)")
    with pytest.raises(DataError, match=message):
        initialise(model, config, "posetrack")
    torch.testing.assert_close(model.backbone.conv1.weight, before)  # nothing loaded on error

    torch.save(published("resnet50"), tmp_path / "r50.pth")
    with pytest.raises(DataError, match=r"conv1\.weight \(file \(64, 3, 7, 7\), model \(32, 3, 7, 7\)\)"):
        load_pretrained(build_backbone("resnet50", width=32), tmp_path / "r50.pth")


def test_a_wrong_layout_and_pickled_code_are_refused(tmp_path):
    torch.save(published("vgg16"), tmp_path / "vgg16.pth")
    with pytest.raises(DataError, match=r"vgg16\.pth.*missing keys: conv1\.weight.*unexpected keys: features\.0"):
        load_pretrained(build_backbone("resnet18"), tmp_path / "vgg16.pth")

    class Payload:
        def __reduce__(self):
            return (print, ("ran",))

    torch.save({"state_dict": Payload()}, tmp_path / "payload.pth")
    with pytest.raises(DataError, match=r"payload\.pth.*weights-only"):
        read_checkpoint(tmp_path / "payload.pth")
    with pytest.raises(DataError, match=r"missing\.pth.*file not found"):
        read_checkpoint(tmp_path / "missing.pth")


def test_the_key_table_marks_what_a_later_stage_overwrites(tmp_path):
    torch.save(published("resnet18"), tmp_path / "r18.pth")
    report = load_pretrained(build_backbone("resnet18"), tmp_path / "r18.pth", field_name="pretrained")
    text = reports_markdown([report], {"stage1": ("layer1.",)})
    assert "| layer1.0.conv1.weight | layer1.0.conv1.weight | matched | 64x64x3x3; then loaded from stage stage1 |" \
        in text
    assert "| fc.weight | - | unused |" in text and report.summary().startswith("pretrained: ")
