"""Direct feeds: workers read equal, disjoint shares of a materialised or prepared split themselves, with the
rows and tensors Ray Data would hand them; lazy datasets are left to Ray Data."""

from pathlib import Path

import numpy as np
import pytest
import ray

from sportpose.data import synthcourt
from sportpose.data.dataset import build_split, load_clips
from sportpose.data.feed import direct_feed
from sportpose.data.prepare import load_prepared, prepare
from sportpose.models.simplebaseline import SimpleBaselineConfig
from sportpose.spec.data import SynthConfig
from sportpose.spec.experiment import DataSpec, ExperimentSpec

pytestmark = pytest.mark.integration


def _keys(batches) -> list[tuple]:
    return [(str(v), int(f), int(t)) for b in batches for v, f, t in zip(b["video"], b["frame"], b["track_id"])]


def test_shares_are_equal_disjoint_and_reordered_per_epoch(ray_local):
    ds = ray.data.range(103, override_num_blocks=7).map_batches(
        lambda b: {"video": b["id"].astype(str), "frame": b["id"], "track_id": b["id"] % 3,
                   "x": np.repeat(b["id"][:, None], 4, 1).astype(np.float32)}).materialize()
    feed = direct_feed(ds)
    assert feed is not None and feed.rows == 103 and len(feed.pieces) > 2
    shares = [list(feed.shard(r, 2).iter_batches(10, seed=5)) for r in range(2)]
    rows = [_keys(s) for s in shares]
    assert len(rows[0]) == len(rows[1]) == 51 and not set(rows[0]) & set(rows[1])  # one row of 103 left out
    assert [len(b["x"]) for b in shares[0]] == [10] * 5 + [1]  # exact batches, only the last one short
    for batch in shares[0]:
        np.testing.assert_array_equal(batch["x"][:, 0], batch["frame"].astype(np.float32))
    assert _keys(feed.shard(0, 2).iter_batches(10, seed=5)) == rows[0]  # the seed's order, repeatable
    assert _keys(feed.shard(0, 2).iter_batches(10, seed=6)) != rows[0]
    assert sorted(_keys(feed.shard(0, 1).iter_batches(64))) == sorted(_keys(ds.iter_batches(batch_size=64)))
    assert direct_feed(ds.map_batches(lambda b: b)) is None  # lazy: Ray Data's


def test_prepared_shards_are_fed_as_ray_data_reads_them(ray_local, runs_home, tmp_path: Path):
    root = tmp_path / "synthcourt"
    synthcourt.generate(root, SynthConfig(clips=3, frames=12, width=160, height=120), progress=False)
    spec = ExperimentSpec(name="feed", model=SimpleBaselineConfig(),
                          data=DataSpec(root=str(root), splits=(0.34, 0.33, 0.33), window=3, input_size=(64, 64)))
    prepare(spec, progress=False)
    ds = load_prepared(spec, "train")
    feed = direct_feed(ds)
    assert feed is not None and all(str(p.source).endswith(".parquet") for p in feed.pieces)
    streamed = {k: r for k, r in zip(_keys(ds.iter_batches(batch_size=1000)), ds.take_all())}
    fed = list(feed.shard(0, 1).iter_batches(4))
    assert sorted(_keys(fed)) == sorted(streamed) and feed.rows == len(streamed)
    for batch in fed:
        for i, key in enumerate(_keys([batch])):
            assert batch["tube"][i].shape == (3, 64, 64, 3) and batch["tube"].dtype == np.uint8
            np.testing.assert_array_equal(batch["tube"][i], streamed[key]["tube"])
            np.testing.assert_array_equal(batch["heatmaps"][i], streamed[key]["heatmaps"])
    clips = load_clips(root, spec.data.splits, spec.seed)
    cut, _ = build_split(clips, spec.data, "train", spec.seed)
    assert direct_feed(cut) is not None  # cut once: materialised in the object store
    assert direct_feed(ds.limit(2)) is None
