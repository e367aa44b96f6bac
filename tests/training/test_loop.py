"""The plain PyTorch loop: the cache of a frozen prefix (one pass of ``precompute``, then batches of the cache),
SST stage-2 freezing of every stream backbone with its BatchNorm kept in eval mode."""

from __future__ import annotations

import pytest
import torch

from sportpose.models.multistream import MultiStream, MultiStreamConfig, backbone_stages
from sportpose.models.stsp import STSPConfig, STSPNet
from sportpose.paths import REPO
from sportpose.spec.experiment import load_spec
from sportpose.training import loop
from sportpose.training.stage import prepare_stage_model


def test_cached_batches_yield_every_row_once_in_a_seeded_order():
    cache = {"x": torch.arange(10), "y": torch.arange(10) * 2}
    ordered = list(loop.cached_batches(cache, 4, seed=None))
    assert [len(b["x"]) for b in ordered] == [4, 4, 2]
    assert torch.equal(torch.cat([b["x"] for b in ordered]), torch.arange(10))
    first, again, other = (torch.cat([b["x"] for b in loop.cached_batches(cache, 4, seed)]) for seed in (1, 1, 2))
    assert sorted(first.tolist()) == list(range(10)) and torch.equal(first, again) and not torch.equal(first, other)
    for b in loop.cached_batches(cache, 3, seed=5):  # columns stay row-aligned
        assert torch.equal(b["y"], b["x"] * 2)
    assert list(loop.cached_batches({}, 4, seed=0)) == []


def test_precompute_concatenates_the_frozen_outputs_with_the_targets_and_restores_the_mode():
    torch.manual_seed(0)
    model = STSPNet(STSPConfig(backbone="hrnet_w18_small", width=8, window=3, tau=2, gat_hidden=16, tmp_dim=16,
                               tmp_heads=2))
    g = torch.Generator().manual_seed(1)
    batches = [{"tube": torch.randint(0, 256, (n, 3, 32, 32, 3), generator=g, dtype=torch.uint8),
                "flow": torch.randn(n, 2, 32, 32, 2, generator=g), "joints_3d": torch.randn(n, 3, 17, 3, generator=g)}
               for n in (2, 3)]
    model.train()
    cache = loop.precompute(model, batches, "lift", keep=("joints_3d", "heatmaps"))
    assert model.training and model.epe.training  # handed back in the mode it came in
    assert sorted(cache) == ["joint_features", "joints_3d", "keypoints_2d_norm"]
    assert cache["keypoints_2d_norm"].shape == (5, 3, 17, 2) and cache["joint_features"].shape[:3] == (5, 3, 17)
    assert torch.equal(cache["joints_3d"], torch.cat([b["joints_3d"] for b in batches]))
    model.eval()  # BatchNorm in eval mode: each tube's outputs do not depend on its batch
    whole = model.precompute({k: torch.cat([b[k] for b in batches]) for k in ("tube", "flow")}, "lift")
    torch.testing.assert_close(cache["joint_features"], whole["joint_features"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("spec_file", ["multistream_demo.yaml", "multistream_paper.yaml", "tour/multistream.yaml"])
def test_sst_stage_2_freezes_the_first_stages_of_every_stream_backbone(spec_file):
    """SPEC §4: stage 2 (``fuse``) freezes the first ``freeze_layers`` stages of the spatial, temporal AND
    context backbones; the stages after them, the context sequence model, the heads and the fusion train."""
    spec = load_spec(REPO / "experiments" / spec_file)
    stage = spec.train.stages["fuse"]
    n = stage.freeze_layers
    assert n == 4
    if spec.model.pretrained is None:  # the stage's own path (the paper spec's ImageNet files are not here)
        model, frozen = prepare_stage_model(spec, "fuse", [])
    else:
        model = spec.build_model()
        frozen = loop.freeze_outside(model, model.trainable_prefixes(stage.task))
        frozen += loop.freeze_modules(model, model.freeze_prefixes(n))
    frozen = set(frozen)
    for stream in ("spatial", "temporal", "context"):
        if getattr(model, stream) is None:
            continue
        tables = backbone_stages(getattr(model, stream).backbone)
        for i, table in enumerate(tables):
            names = [name for name, _ in model.named_parameters()
                     if any(loop.matches(name, f"{stream}.backbone.{p}") for p in table)]
            assert names, (stream, table)
            if i < n:
                assert frozen.issuperset(names), f"{stream} backbone stage {i} is not frozen"
            else:
                assert not frozen.intersection(names), f"{stream} backbone stage {i} is frozen"
    assert not any(name.startswith(("context.sequence.", "fusion.")) for name in frozen)


def test_frozen_backbone_batchnorm_stays_in_eval_mode_and_keeps_its_statistics():
    torch.manual_seed(0)
    config = MultiStreamConfig(width=16, fpn_channels=32, deconv_channels=16, context_hidden=32, context_len=4,
                               window=3, input_size=(64, 64), context_size=(64, 64), tcm_channels=32,
                               diff_channels=16, context_layers=1, fusion="hybrid")
    model = MultiStream(config, 5)
    loop.freeze_outside(model, model.trainable_prefixes("fused"))
    loop.freeze_modules(model, model.freeze_prefixes(4))
    frozen = loop.frozen_module_prefixes(model)
    g = torch.Generator().manual_seed(1)
    batch = {"tube": torch.randint(0, 256, (2, 3, 64, 64, 3), generator=g, dtype=torch.uint8),
             "context": torch.randint(0, 256, (2, 4, 64, 64, 3), generator=g, dtype=torch.uint8),
             "heatmaps": torch.rand(2, 5, 16, 16, generator=g), "target_weight": torch.ones(2, 5)}
    stats = {n: b.clone() for n, b in model.named_buffers() if n.endswith("running_mean")}
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    loop.train_epoch(model, [batch], optimizer, lambda m, b: m.loss(m(b, task="fused"), b, task="fused"),
                     frozen=frozen)
    after = dict(model.named_buffers())
    modules = dict(model.named_modules())
    for stream in ("spatial", "temporal", "context"):
        bn = f"{stream}.backbone.layer3.0.bn1"
        assert not modules[bn].training, f"{bn} is frozen but in train mode"
        assert torch.equal(stats[f"{bn}.running_mean"], after[f"{bn}.running_mean"]), f"{bn} statistics moved"
    # the first unfrozen stage of the spatial backbone trains, BatchNorm statistics included
    assert modules["spatial.backbone.layer4.0.bn1"].training
    assert not torch.equal(stats["spatial.backbone.layer4.0.bn1.running_mean"],
                           after["spatial.backbone.layer4.0.bn1.running_mean"])
