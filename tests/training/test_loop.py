"""The plain PyTorch loop's cache of a frozen prefix: one pass of ``precompute``, then batches of the cache."""

from __future__ import annotations

import torch

from sportpose.models.stsp import STSPConfig, STSPNet
from sportpose.training import loop


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
