"""The plain PyTorch loop: the cache of a frozen prefix (one pass of ``precompute``, then batches of the cache),
SST stage-2 freezing of every stream backbone with its BatchNorm kept in eval mode."""

from __future__ import annotations

import math

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


def test_collected_batches_are_one_cache_of_every_row_in_order():
    batches = [{"x": torch.arange(3) + i * 3, "y": torch.zeros(3, 2) + i} for i in range(3)]
    cache = loop.collect_batches(iter(batches))
    assert torch.equal(cache["x"], torch.arange(9)) and cache["y"].shape == (9, 2)
    assert torch.equal(cache["y"][:, 0], torch.tensor([0.0, 0, 0, 1, 1, 1, 2, 2, 2]))
    assert loop.collect_batches(iter([])) == {}


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


def test_the_best_epoch_is_the_best_task_metric_not_the_lowest_validation_loss():
    """SPEC §6: a 2D stage keeps the epoch of the highest PCKh even where the heatmap loss is lower elsewhere."""
    history = [{"epoch": 0, "loss": 0.9, "val_loss": 0.50, "val_pckh": 40.0},
               {"epoch": 1, "loss": 0.7, "val_loss": 0.30, "val_pckh": 55.0},
               {"epoch": 2, "loss": 0.5, "val_loss": 0.20, "val_pckh": 52.0}]
    assert loop.best_epoch(history, "val_pckh", "max") == 1
    assert loop.best_epoch(history, "val_loss", "min") == 2
    progress = loop.Progress("val_pckh", "max", patience=1)
    for h in history:
        progress.record(h)
    assert progress.best == 55.0 and progress.since_best == 1 and progress.stopped
    # no validation split: the lowest training loss, also for a maximised metric
    no_val = [{"epoch": e, "loss": v} for e, v in enumerate([0.9, 0.4, 0.6])]
    assert loop.best_epoch(no_val, "val_pckh", "max") == 1


def test_validate_pools_metric_counts_so_that_workers_average_to_the_pooled_ratio():
    """PCKh is correct over counted joints of all samples, not a mean of per-batch or per-worker ratios."""
    def eval_fn(model, batch):
        return {"loss": batch["x"].mean()}, {"pckh": (batch["hits"].sum(), batch["total"].sum())}

    shards = [[{"x": torch.ones(2), "hits": torch.tensor([1.0, 1.0]), "total": torch.tensor([1.0, 1.0])}],
              [{"x": torch.zeros(1), "hits": torch.tensor([0.0]), "total": torch.tensor([8.0])},
               {"x": torch.zeros(1), "hits": torch.tensor([1.0]), "total": torch.tensor([0.0])}]]
    model = torch.nn.Linear(1, 1)
    per_worker = [loop.validate(model, shard, eval_fn, ["pckh"]) for shard in shards]
    n = [v.pop("val_samples") for v in per_worker]
    pooled = {k: sum(v[k] * w for v, w in zip(per_worker, n)) / sum(n) for k in per_worker[0]}  # the all-reduce
    metrics = loop.finish_counts(pooled, ["pckh"])
    assert metrics["val_pckh"] == 3 / 10 and "val_pckh_hits" not in metrics
    assert metrics["val_loss"] == 0.5
    empty = loop.validate(model, [], eval_fn, ["pckh"])  # a worker without batches reports the same keys
    assert set(empty) == {"val_pckh_hits", "val_pckh_total", "val_samples"}
    assert math.isnan(loop.finish_counts({"val_pckh_hits": 0.0, "val_pckh_total": 0.0}, ["pckh"])["val_pckh"])


def test_accumulated_micro_batches_give_the_batch_gradient_and_sync_once_per_step():
    """``accumulate: 2``: two half batches, losses weighted by their rows, sum to the whole batch's gradient; every
    micro-batch but the last runs inside the model's ``no_sync`` (DDP's: one all-reduce per step)."""
    import contextlib

    class Linear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 1)
            self.unsynced = 0

        def forward(self, x):
            return self.fc(x)

        @contextlib.contextmanager
        def no_sync(self):
            self.unsynced += 1
            yield

    g = torch.Generator().manual_seed(0)
    batch = {"x": torch.randn(6, 4, generator=g), "y": torch.randn(6, 1, generator=g)}

    def loss_fn(m, b):
        return {"loss": ((m(b["x"]) - b["y"]) ** 2).mean()}

    grads = []
    for accumulate in (1, 2, 3):
        torch.manual_seed(0)
        model = Linear()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the weights stay, the gradients remain
        out = loop.train_epoch(model, [batch], optimizer, loss_fn, accumulate=accumulate)
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
        assert model.unsynced == accumulate - 1
        assert out["samples"] == 6
    torch.testing.assert_close(grads[1], grads[0])
    torch.testing.assert_close(grads[2], grads[0])


def test_amp_bf16_autocasts_the_training_forward_on_the_cpu_and_validates_in_float32():
    """``amp: bf16`` on a stage without a GPU: the training forward runs under CPU bf16 autocast (a CPU with
    native bf16 runs convolutions ~1.5x faster there), validation in float32, and the weights stay float32."""
    seen = []

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 1)

        def forward(self, x):
            y = self.fc(x)
            seen.append((self.training, y.dtype))
            return y

    g = torch.Generator().manual_seed(0)
    batch = {"x": torch.randn(6, 4, generator=g), "y": torch.randn(6, 1, generator=g)}

    def loss_fn(m, b):
        return {"loss": ((m(b["x"]).float() - b["y"]) ** 2).mean()}

    stage = load_spec(REPO / "experiments" / "paper" / "base" / "simplebaseline_tiny.yaml",
                      ["train.stages.main.epochs=1", "train.stages.main.amp=bf16"]).train.stages["main"]
    model = Probe()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.fc.weight.detach().clone()
    loop.fit(model, stage, optimizer, None, lambda split, epoch: [batch], loss_fn, loop.Progress("val_loss", "min"),
             lambda metrics: None)
    assert seen == [(True, torch.bfloat16), (False, torch.float32)]
    assert model.fc.weight.dtype == torch.float32 and not torch.equal(model.fc.weight, before)
