"""MultiStream: shapes over the variants, per-task gradients (the DDP contract), SST freezing, fusions, SAM,
masked frame modelling and config validation. Tiny sizes: 64x64 crops and context frames, width 16."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from sportpose.errors import SpecError
from sportpose.models.backbones import build_backbone
from sportpose.models.multistream import (
    MaskedFrameModelling,
    MultiStream,
    MultiStreamConfig,
    PositionAttention,
    backbone_stages,
    late_fuse,
    matches_prefix,
    temporal_conv_block,
)
from sportpose.models.pretrained import initialise


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tensors are tiny: one intra-op thread is as fast and does not spin when the CPUs are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


K = 5  # joints
B = 2
SIZE = 64


def tiny(**overrides) -> MultiStreamConfig:
    base = dict(
        width=16, fpn_channels=32, deconv_channels=16, context_hidden=32, context_len=4, window=3,
        input_size=(SIZE, SIZE), context_size=(SIZE, SIZE), tcm_channels=32, diff_channels=16,
        context_layers=1, context_heads=4,
    )
    return MultiStreamConfig(**{**base, **overrides})


def make_inputs(config: MultiStreamConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    h, w = config.input_size
    hc, wc = config.context_size
    return {
        "tube": torch.randint(0, 256, (B, config.window, h, w, 3), generator=g, dtype=torch.uint8),
        "context": torch.randint(0, 256, (B, config.context_len, hc, wc, 3), generator=g, dtype=torch.uint8),
    }


def make_batch(config: MultiStreamConfig) -> dict[str, torch.Tensor]:
    h, w = config.input_size
    weight = torch.ones(B, K)
    weight[0, 1] = 0  # an unlabeled joint
    return {"heatmaps": torch.rand(B, K, h // 4, w // 4), "target_weight": weight}


def run_task(model: MultiStream, config: MultiStreamConfig, task: str):
    """Forward, loss and backward of one task on fresh gradients."""
    model.train()
    model.zero_grad(set_to_none=True)
    inputs = {k: v for k, v in make_inputs(config).items() if k in model.input_names(task)}
    outputs = model(inputs, task=task)
    losses = model.loss(outputs, make_batch(config), task=task)
    losses["loss"].backward()
    return outputs, losses


def assert_trainable_get_gradients(model: MultiStream, task: str) -> None:
    """Every parameter under trainable_prefixes(task) has a gradient; none outside has one."""
    prefixes = model.trainable_prefixes(task)
    assert prefixes
    missing = [n for n, p in model.named_parameters() if matches_prefix(n, prefixes) and p.grad is None]
    assert not missing, f"{task}: no gradient for {missing[:10]}"
    stray = [n for n, p in model.named_parameters() if not matches_prefix(n, prefixes) and p.grad is not None]
    assert not stray, f"{task}: gradient outside trainable_prefixes: {stray[:10]}"


def assert_fused_outputs(outputs: dict, config: MultiStreamConfig, streams=("spatial", "temporal", "context")):
    hm = (B, K, SIZE // 4, SIZE // 4)
    feat = (B, config.deconv_channels, SIZE // 4, SIZE // 4)
    assert outputs["heatmaps"].shape == hm
    for stream in streams:
        assert outputs[f"heatmaps_{stream}"].shape == hm
    if "spatial" in streams:
        assert outputs["feat_spatial"].shape == feat
    if "temporal" in streams:
        assert outputs["feat_temporal"].shape == feat
    if "context" in streams:
        assert outputs["context_vector"].shape == (B, config.context_hidden)


# -- shapes and gradients over the variants ----------------------------------------------------------------


@pytest.mark.parametrize("conv_type", ["3d", "2plus1d"])
@pytest.mark.parametrize("context_model", ["mlp", "lstm", "transformer"])
@pytest.mark.parametrize("fusion", ["early", "late", "hybrid", "none"])
def test_fused_variants(fusion, context_model, conv_type):
    torch.manual_seed(0)
    config = tiny(fusion=fusion, context_model=context_model, conv_type=conv_type)
    model = MultiStream(config, K)
    outputs, losses = run_task(model, config, "fused")
    assert_fused_outputs(outputs, config)
    assert all(torch.isfinite(v) for v in losses.values())
    assert set(losses) == {"loss", "loss_fused", "loss_spatial", "loss_temporal", "loss_context"}
    assert_trainable_get_gradients(model, "fused")


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50", "vgg16", "efficientnet_b3"])
def test_backbones(backbone):
    torch.manual_seed(0)
    config = tiny(backbone=backbone, context_backbone=backbone, fusion="hybrid", window=5)
    model = MultiStream(config, K)
    outputs, losses = run_task(model, config, "fused")
    assert_fused_outputs(outputs, config)
    assert torch.isfinite(losses["loss"])
    assert_trainable_get_gradients(model, "fused")


def test_temporal_backbone_resnet50_and_no_sam():
    config = tiny(temporal_backbone="resnet50", sam=False, fusion="early")
    model = MultiStream(config, K)
    assert model.spatial.sam is None
    outputs, _ = run_task(model, config, "fused")
    assert_fused_outputs(outputs, config)
    assert_trainable_get_gradients(model, "fused")


# -- tasks -------------------------------------------------------------------------------------------------

TASK_KEYS = {
    "spatial": {"heatmaps", "feat_spatial"},
    "temporal": {"heatmaps", "feat_temporal"},
    "context": {"heatmaps", "context_vector", "reconstruction", "frame_targets", "frame_mask"},
    "fused": {"heatmaps", "heatmaps_spatial", "heatmaps_temporal", "heatmaps_context", "feat_spatial",
              "feat_temporal", "context_vector"},
}


@pytest.mark.parametrize("task", MultiStream.TASKS)
def test_task_outputs_losses_and_gradients(task):
    torch.manual_seed(0)
    config = tiny(context_model="transformer")
    model = MultiStream(config, K)
    outputs, losses = run_task(model, config, task)
    assert set(outputs) == TASK_KEYS[task]
    assert outputs["heatmaps"].shape == (B, K, SIZE // 4, SIZE // 4)
    assert all(torch.isfinite(v) for v in losses.values())
    assert set(losses) == set(MultiStream.loss_names(config, task))  # what a stage's metric may name
    if task == "context":
        assert set(losses) == {"loss", "loss_heatmap", "loss_mfm"}
        assert outputs["reconstruction"].shape == (B, config.context_len, config.context_hidden)
        assert outputs["frame_mask"].dtype == torch.bool
        assert outputs["frame_mask"].sum(dim=1).min() >= 1
    assert_trainable_get_gradients(model, task)
    # forward(task) runs only the task's modules: nothing outside task_modules(task) took part.
    modules = model.task_modules(task)
    assert not [n for n, p in model.named_parameters() if not matches_prefix(n, modules) and p.grad is not None]


@pytest.mark.parametrize("context_model", ["mlp", "lstm"])
def test_context_task_with_each_sequence_model(context_model):
    config = tiny(context_model=context_model, streams=("context",), fusion="none")
    model = MultiStream(config, K)
    outputs, losses = run_task(model, config, "context")
    assert set(outputs) == TASK_KEYS["context"]
    assert torch.isfinite(losses["loss"]) and losses["loss_mfm"] > 0
    assert model.mfm.mask_token.grad is not None
    assert_trainable_get_gradients(model, "context")


def test_input_names_and_task_modules():
    model = MultiStream(tiny(), K)
    assert model.input_names("spatial") == ("tube",)
    assert model.input_names("temporal") == ("tube",)
    assert model.input_names("context") == ("context",)
    assert model.input_names("fused") == ("tube", "context")
    assert model.task_modules("spatial") == ("spatial",)
    assert model.task_modules("context") == ("context", "mfm")
    assert set(model.task_modules("fused")) == {"spatial", "temporal", "context", "mfm", "fusion"}
    # Stream heads that the fused loss does not train are left out (hybrid: the context head).
    assert "context.head" not in model.trainable_prefixes("fused")
    assert {"spatial", "temporal", "fusion"} <= set(model.trainable_prefixes("fused"))


def test_spatial_task_takes_a_single_image():
    config = tiny(streams=("spatial",), fusion="none")
    model = MultiStream(config, K).eval()
    tube = make_inputs(config)["tube"]
    with torch.no_grad():
        from_tube = model({"tube": tube}, task="spatial")["heatmaps"]
        from_image = model({"image": tube[:, config.window // 2]}, task="spatial")["heatmaps"]
    torch.testing.assert_close(from_tube, from_image)


def test_unavailable_task_and_bad_inputs():
    config = tiny(streams=("spatial", "context"), fusion="late")
    model = MultiStream(config, K)
    with pytest.raises(ValueError, match="temporal"):
        model(make_inputs(config), task="temporal")
    with pytest.raises(ValueError, match="unknown task"):
        model.input_names("pose")
    full = MultiStream(tiny(), K)
    inputs = make_inputs(tiny(window=5))  # five frames for a window of three
    with pytest.raises(ValueError, match="window"):
        full(inputs, task="temporal")
    with pytest.raises(ValueError, match="input_size"):
        full({"tube": torch.zeros(B, 3, 96, 96, 3, dtype=torch.uint8)}, task="spatial")
    with pytest.raises(ValueError, match="context"):
        full({"context": torch.zeros(B, 2, SIZE, SIZE, 3, dtype=torch.uint8)}, task="context")


# -- missing streams ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "streams, fusion",
    [
        (("spatial",), "none"),
        (("spatial",), "hybrid"),
        (("temporal",), "early"),
        (("context",), "late"),
        (("spatial", "temporal"), "hybrid"),
        (("spatial", "context"), "early"),
        (("temporal", "context"), "hybrid"),
        (("context", "spatial"), "late"),
    ],
)
def test_missing_streams(streams, fusion):
    torch.manual_seed(0)
    config = tiny(streams=streams, fusion=fusion)
    model = MultiStream(config, K)
    assert model.input_names("fused") == (
        (("tube",) if {"spatial", "temporal"} & set(streams) else ()) + (("context",) if "context" in streams else ())
    )
    outputs, losses = run_task(model, config, "fused")
    present = tuple(s for s in ("spatial", "temporal", "context") if s in streams)
    assert_fused_outputs(outputs, config, present)
    assert not {f"heatmaps_{s}" for s in ("spatial", "temporal", "context") if s not in streams} & set(outputs)
    assert set(losses) == {"loss", "loss_fused", *(f"loss_{s}" for s in present)}
    assert_trainable_get_gradients(model, "fused")


# -- fusions -----------------------------------------------------------------------------------------------


def test_late_fusion_is_the_weighted_sum():
    config = tiny(fusion="late", fusion_weights=(0.5, 0.3, 0.2))
    model = MultiStream(config, K).eval()
    with torch.no_grad():
        out = model(make_inputs(config))
    expected = 0.5 * out["heatmaps_spatial"] + 0.3 * out["heatmaps_temporal"] + 0.2 * out["heatmaps_context"]
    torch.testing.assert_close(out["heatmaps"], expected)


def test_late_fusion_renormalises_over_present_streams():
    config = tiny(fusion="late", fusion_weights=(0.5, 0.25, 0.25), streams=("spatial", "temporal"))
    model = MultiStream(config, K).eval()
    with torch.no_grad():
        out = model(make_inputs(config))
    expected = (2 / 3) * out["heatmaps_spatial"] + (1 / 3) * out["heatmaps_temporal"]
    torch.testing.assert_close(out["heatmaps"], expected)


def test_no_fusion_is_the_mean():
    config = tiny(fusion="none")
    model = MultiStream(config, K).eval()
    with torch.no_grad():
        out = model(make_inputs(config))
    expected = (out["heatmaps_spatial"] + out["heatmaps_temporal"] + out["heatmaps_context"]) / 3
    torch.testing.assert_close(out["heatmaps"], expected)


def test_late_fuse_helper():
    a, b = torch.ones(1, 2, 4, 4), torch.zeros(1, 2, 4, 4)
    torch.testing.assert_close(late_fuse([a, b], [3.0, 1.0]), torch.full((1, 2, 4, 4), 0.75))
    with pytest.raises(ValueError):
        late_fuse([a, b], [0.0, 0.0])


@pytest.mark.parametrize("fusion", ["late", "none"])
def test_late_and_none_train_every_stream_head(fusion):
    config = tiny(fusion=fusion)
    model = MultiStream(config, K)
    _, losses = run_task(model, config, "fused")
    total = losses["loss_spatial"] + losses["loss_temporal"] + losses["loss_context"]
    torch.testing.assert_close(losses["loss"].detach(), total)
    assert model.fusion is None
    assert set(model.trainable_prefixes("fused")) == {"spatial", "temporal", "context"}


# -- SST ---------------------------------------------------------------------------------------------------


def test_stage2_freezing_trains_fusion_only_outside_frozen_stages():
    torch.manual_seed(0)
    config = tiny(fusion="hybrid")
    model = MultiStream(config, K)
    frozen = model.freeze_prefixes(4)
    trainable = model.trainable_prefixes("fused")
    for name, p in model.named_parameters():
        p.requires_grad_(matches_prefix(name, trainable) and not matches_prefix(name, frozen))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    run_task(model, config, "fused")
    optimizer.step()
    after = dict(model.named_parameters())

    frozen_names = [n for n in before if matches_prefix(n, frozen)]
    assert any(n.startswith("spatial.backbone.layer3.") for n in frozen_names)
    assert any(n.startswith("temporal.backbone.layer3.") for n in frozen_names)
    assert any(n.startswith("context.backbone.layer3.") for n in frozen_names)
    assert all(torch.equal(before[n], after[n]) for n in frozen_names)
    for prefix in ("fusion.", "spatial.backbone.layer4.", "context.sequence."):
        changed = [n for n in before if n.startswith(prefix) and not torch.equal(before[n], after[n])]
        assert changed, f"nothing under {prefix} changed"


def test_freeze_prefixes_stage_tables():
    model = MultiStream(tiny(), K)
    assert model.freeze_prefixes(0) == ()
    five = model.freeze_prefixes(5)
    assert "spatial.backbone.layer4" in five and "temporal.backbone.layer3" in five
    assert "context.backbone.layer4" in five  # SPEC §4: each stream's backbone, the context one included
    assert not any(p.startswith(("context.sequence", "context.head", "fusion")) for p in five)
    assert model.freeze_prefixes(1) == ("spatial.backbone.conv1", "spatial.backbone.bn1", "temporal.backbone.conv1",
                                        "temporal.backbone.bn1", "context.backbone.conv1", "context.backbone.bn1")
    with pytest.raises(ValueError):
        model.freeze_prefixes(6)


@pytest.mark.parametrize(
    "name, kwargs",
    [("resnet18", {"width": 8}), ("vgg16", {"width": 8}), ("efficientnet_b3", {"width_mult": 0.25})],
)
def test_backbone_stages_cover_every_parameter(name, kwargs):
    backbone = build_backbone(name, **kwargs)
    stages = backbone_stages(backbone)
    assert len(stages) == 5
    prefixes = [p for stage in stages for p in stage]
    assert all(matches_prefix(n, prefixes) for n, _ in backbone.named_parameters())


# -- blocks ------------------------------------------------------------------------------------------------


def test_position_attention_is_the_identity_at_init():
    torch.manual_seed(0)
    pam = PositionAttention(16)
    assert pam.gamma.item() == 0
    x = torch.randn(2, 16, 6, 5)
    torch.testing.assert_close(pam(x), x)
    with torch.no_grad():
        pam.gamma.fill_(0.5)
    assert not torch.allclose(pam(x), x)


def test_2plus1d_matches_3d_parameter_budget():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    full = count(temporal_conv_block(96, 64, "3d"))
    factored = count(temporal_conv_block(96, 64, "2plus1d"))
    assert abs(factored - full) / full < 0.05
    x = torch.randn(1, 96, 5, 4, 4)
    assert temporal_conv_block(96, 64, "2plus1d")(x).shape == (1, 64, 5, 4, 4)


def test_frame_masks():
    mfm = MaskedFrameModelling(8, 8, (0.15, 0.3))
    mask = mfm.sample_mask(200, 8)
    counts = mask.sum(dim=1)
    assert counts.min() >= 1 and counts.max() <= 3  # round(0.3 * 8) = 2; never all frames
    one = MaskedFrameModelling(8, 1, (0.15, 0.3)).sample_mask(4, 1)
    assert one.all()  # L = 1: the single frame is masked
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert torch.equal(mfm.sample_mask(4, 8, g1), mfm.sample_mask(4, 8, g2))


def test_context_eval_masks_are_fixed_and_loss_only_counts_masked_frames():
    config = tiny()
    model = MultiStream(config, K).eval()
    inputs = {"context": make_inputs(config)["context"]}
    with torch.no_grad():
        a, b = model(inputs, task="context"), model(inputs, task="context")
    assert torch.equal(a["frame_mask"], b["frame_mask"])
    # Unmasked frames do not count: corrupting their reconstruction leaves the loss unchanged.
    batch = make_batch(config)
    corrupted = dict(a, reconstruction=torch.where(a["frame_mask"][..., None], a["reconstruction"], 1e3))
    torch.testing.assert_close(model.loss(a, batch, "context")["loss_mfm"],
                               model.loss(corrupted, batch, "context")["loss_mfm"])


# -- config ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, overrides",
    [
        ("window", {"window": 4}),
        ("window", {"window": 1}),  # the temporal stream needs 3 frames
        ("fusion_weights", {"fusion_weights": (0.5, 0.5, 0.5)}),
        ("fusion_weights", {"fusion_weights": (-0.5, 1.0, 0.5)}),
        ("fusion_weights", {"fusion_weights": (0.5, 0.5)}),
        ("fusion_weights", {"fusion": "late", "fusion_weights": (0.0, 0.0, 1.0), "streams": ("spatial",)}),
        ("backbone", {"backbone": "resnet200"}),
        ("backbone", {"backbone": "hrnet_w32"}),
        ("temporal_backbone", {"temporal_backbone": "vgg16"}),
        ("context_backbone", {"context_backbone": "alexnet"}),
        ("streams", {"streams": ("spatial", "optical_flow")}),
        ("streams", {"streams": ()}),
        ("streams", {"streams": ("spatial", "spatial")}),
        ("context_len", {"context_len": 0}),
        ("conv_type", {"conv_type": "2d"}),
        ("context_model", {"context_model": "gru"}),
        ("fusion", {"fusion": "middle"}),
        ("fusion", {"fusion": "hybrid", "streams": ("context",)}),
        ("dropout", {"dropout": 1.0}),
        ("mask_ratio", {"mask_ratio": (0.3, 0.15)}),
        ("context_heads", {"context_model": "transformer", "context_hidden": 30, "context_heads": 4}),
        ("context_size", {"context_size": (100, 100)}),
        ("input_size", {"input_size": (64,)}),
        ("width", {"width": 4}),
        ("kind", {"kind": "simplebaseline"}),
        ("spatial_convs", {"spatial_convs": 0}),
        ("spatial_kernel", {"spatial_kernel": 4}),
        ("spatial_kernel", {"spatial_kernel": 0}),
        ("spatial_filters", {"spatial_filters": 0}),
    ],
)
def test_bad_config_names_the_field(field, overrides):
    with pytest.raises(SpecError) as err:
        tiny(**overrides)
    assert err.value.key == field
    assert str(err.value).startswith(f"{field}:")


def test_spatial_conv_layers_change_the_stream():
    """Table 6's knobs: spatial_convs layers of spatial_kernel x spatial_kernel with spatial_filters channels
    after the pyramid concatenation, at stride 8 before SAM; feat_s and the heatmaps keep their shapes."""
    torch.manual_seed(0)
    default = tiny(fusion="hybrid")
    assert default.spatial_convs == 1 and default.spatial_kernel == 3 and default.spatial_filters is None

    def spatial_params(model: MultiStream, prefix: str = "spatial.") -> int:
        return sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefix))

    base = MultiStream(default, K)
    assert len(base.spatial.fpn.convs) == 0 and spatial_params(base, "spatial.fpn.convs") == 0
    fpn = default.fpn_channels

    def layer(c_in: int, c_out: int, k: int) -> int:  # conv without bias, BN weight and bias
        return c_in * c_out * k * k + 2 * c_out

    for convs, kernel, filters in [(3, 3, None), (5, 3, None), (5, 5, None), (3, 3, 64)]:
        config = dataclasses.replace(default, spatial_convs=convs, spatial_kernel=kernel, spatial_filters=filters)
        model = MultiStream(config, K)
        width = filters or fpn
        assert len(model.spatial.fpn.convs) == convs - 1
        fuse = spatial_params(model, "spatial.fpn.fuse")
        extra = spatial_params(model, "spatial.fpn.convs")
        assert fuse == layer(3 * fpn, width, kernel)
        assert extra == (convs - 1) * layer(width, width, kernel)
        assert model.spatial.sam.position.value.in_channels == width  # SAM and the deconv take the new width
        assert model.spatial.deconv[0].in_channels == width
        _, c3, c4, c5 = model.spatial.backbone(torch.zeros(B, 3, SIZE, SIZE))
        assert model.spatial.fpn(c3, c4, c5).shape == (B, width, SIZE // 8, SIZE // 8)
        outputs, losses = run_task(model, config, "fused")
        assert_fused_outputs(outputs, config)
        assert torch.isfinite(losses["loss"])
        assert_trainable_get_gradients(model, "fused")
    deeper = MultiStream(dataclasses.replace(default, spatial_convs=7), K)
    assert spatial_params(deeper) - spatial_params(base) == 6 * layer(fpn, fpn, 3)
    # the default keeps the parameter names of checkpoints written before the knob
    assert {n for n in base.state_dict() if n.startswith("spatial.fpn.fuse.")} == {
        "spatial.fpn.fuse.0.weight", "spatial.fpn.fuse.1.weight", "spatial.fpn.fuse.1.bias",
        "spatial.fpn.fuse.1.running_mean", "spatial.fpn.fuse.1.running_var", "spatial.fpn.fuse.1.num_batches_tracked"}
    assert not any(n.startswith("spatial.fpn.convs") for n in base.state_dict())


def test_config_defaults_and_yaml_lists():
    config = MultiStreamConfig()
    assert config.deconv_channels == 64 and config.window == 5 and config.context_len == 8
    from_yaml = MultiStreamConfig(streams=["spatial", "temporal"], fusion_weights=[0.5, 0.5, 0.0], fusion="late")
    assert from_yaml.streams == ("spatial", "temporal") and isinstance(from_yaml.fusion_weights, tuple)
    assert dataclasses.replace(from_yaml, fusion_weights=(1.0, 0.0, 0.0)).fusion_weights == (1.0, 0.0, 0.0)
    hash(from_yaml)


def test_pretrained_state_dicts_initialise_every_backbone(tmp_path):
    reference = build_backbone("resnet18", num_classes=1000)  # torchvision's layout, with fc
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    config = tiny(width=64, pretrained=str(path), temporal_pretrained=str(path), context_pretrained=str(path))
    model = MultiStream(config, K)
    reports = initialise(model, config, "posetrack")
    assert [r.name for r in reports] == ["pretrained", "temporal_pretrained", "context_pretrained"]
    for stream in (model.spatial, model.temporal, model.context):
        torch.testing.assert_close(stream.backbone.conv1.weight, reference.conv1.weight)
        torch.testing.assert_close(stream.backbone.layer3[0].conv1.weight, reference.layer3[0].conv1.weight)
    assert not hasattr(model.temporal.backbone, "layer4")  # built to C4; the file's layer4 is skipped


def test_paper_scale_builds():
    config = MultiStreamConfig(backbone="resnet50", input_size=(256, 256), context_size=(256, 256),
                               context_model="transformer")
    with torch.device("meta"):
        model = MultiStream(config, 17)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    assert 40 < params < 70  # the paper reports 60.1M; bench/model_complexity.py prints the exact figure
    assert model.spatial.backbone.out_channels[-1] == 2048
