"""Prepared Parquet shards: written once, streamed back with their tensor shapes, reused while the spec's
sample-shaping fields are unchanged and rebuilt when one changes (SPEC §3.3)."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sportpose.errors import DataError
from sportpose.models.simplebaseline import SimpleBaselineConfig
from sportpose.data import synthcourt
from sportpose.data.dataset import build_split, load_clips
from sportpose.data.prepare import (
    NOT_SHAPING, is_prepared, load_prepared, open_split, prepare, prepared_dir, shaping_fields, shard_groups,
)
from sportpose.spec.data import SynthConfig
from sportpose.spec.experiment import DataSpec, ExperimentSpec

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synthcourt")
    synthcourt.generate(out, SynthConfig(clips=3, frames=12, width=160, height=120), progress=False)
    return out


def _spec(root: Path, name: str = "prep", **data) -> ExperimentSpec:
    fields = {"root": str(root), "splits": (0.34, 0.33, 0.33), "window": 3, "input_size": (64, 64), **data}
    return ExperimentSpec(name=name, model=SimpleBaselineConfig(), data=DataSpec(**fields))


def _rows(ds) -> dict:
    return {(r["video"], r["frame"], r["track_id"]): r for r in ds.take_all()}


def test_prepared_shards_round_trip_and_are_reused(ray_local, runs_home, root, capsys):
    spec = _spec(root)
    clips = load_clips(root, spec.data.splits, spec.seed)
    assert {c["split"] for c in clips} == {"train", "val", "test"}
    folder = prepare(spec, progress=True)
    assert folder == prepared_dir(spec) and folder.parent == runs_home / "prepared"
    assert folder.name.startswith("prep-") and is_prepared(spec)
    assert "prepare" in capsys.readouterr().err  # the progress bar
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["data"] == shaping_fields(spec.data) and not set(NOT_SHAPING) & set(manifest["data"])
    assert sorted(c["name"] for c in manifest["clips"]) == sorted(c["name"] for c in clips)
    assert {c["split"] for c in manifest["clips"]} == {"train", "val", "test"}
    assert manifest["fingerprint"] == folder.name.split("-")[-1]
    assert all(any((folder / s).glob("*.parquet")) for s in ("train", "val", "test"))

    # the same samples as cutting from video, with shapes and dtypes
    for split in ("train",):  # augmented: the draws are the same when cut again
        prepared = _rows(load_prepared(spec, split))
        direct = _rows(build_split(clips, spec.data, split, spec.seed)[0])
        assert prepared.keys() == direct.keys() and manifest["splits"][split]["report"]["samples"] == len(direct)
        for key, row in prepared.items():
            assert row["tube"].shape == (3, 64, 64, 3) and row["tube"].dtype == np.uint8
            assert row["heatmaps"].shape == (17, 16, 16) and row["heatmaps"].dtype == np.float32
            np.testing.assert_array_equal(row["tube"], direct[key]["tube"])
            np.testing.assert_array_equal(row["affine"], direct[key]["affine"])
    batch = next(iter(load_prepared(spec, "train").iter_batches(batch_size=4, batch_format="numpy")))
    assert batch["tube"].shape == (4, 3, 64, 64, 3) and batch["target_weight"].shape == (4, 17)

    # unchanged spec, or a field that does not shape samples: reused, nothing rewritten
    stamp = (folder / "manifest.json").stat().st_mtime_ns
    shards = sorted(p.name for p in (folder / "train").iterdir())
    for same in (spec, replace(spec, data=replace(spec.data, max_skip_fraction=0.5, on_error="raise", prepared=True))):
        assert prepare(same, progress=False) == folder
    assert (folder / "manifest.json").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in (folder / "train").iterdir()) == shards

    # a field that shapes samples: another folder, prepared anew
    changed = replace(spec, data=replace(spec.data, interval=2))
    assert not is_prepared(changed)
    other = prepare(changed, progress=False)
    assert other != folder and json.loads((other / "manifest.json").read_text())["data"]["interval"] == 2
    row = next(iter(load_prepared(changed, "val").take(1)))
    assert row["tube_frames"][2] - row["tube_frames"][1] in (0, 2)
    assert is_prepared(spec)  # the first is still there for a switch back


def test_open_split_streams_prepared_samples_or_cuts_from_video(ray_local, runs_home, root):
    spec = _spec(root, name="open", prepared=True)
    ds, report = open_split(spec, "train", progress=False)
    assert report.samples == ds.count() > 0 and report.split == "train"
    assert is_prepared(spec)
    video, report2 = open_split(replace(spec, data=replace(spec.data, prepared=False)), "train")
    assert report2.samples == report.samples
    assert video.count() == ds.count()


def test_stsp_samples_keep_their_shapes_through_parquet(ray_local, runs_home, root):
    spec = _spec(root, name="stsp", window=4, tube_anchor="end", targets="all", joint_set="h36m", points3d=True,
                 flow="dis", context_len=2, context_size=(32, 32))
    prepare(spec, progress=False)
    batch = next(iter(load_prepared(spec, "test").iter_batches(batch_size=2, batch_format="numpy")))
    assert batch["tube"].shape == (2, 4, 64, 64, 3) and batch["tube"].dtype == np.uint8
    assert batch["heatmaps"].shape == (2, 4, 17, 16, 16) and batch["heatmaps"].dtype == np.float32
    assert batch["keypoints"].shape == (2, 4, 17, 3) and batch["target_weight"].shape == (2, 4, 17)
    assert batch["joints_3d"].shape == (2, 4, 17, 3) and batch["joints_3d"].dtype == np.float32
    assert batch["flow"].shape == (2, 3, 64, 64, 2) and batch["flow"].dtype == np.float32
    assert batch["context"].shape == (2, 2, 32, 32, 3)
    assert np.all(batch["tube_frames"][:, -1] == batch["frame"])


def test_detections_are_prepared_for_the_evaluation_split(ray_local, runs_home, root, tmp_path):
    clips = load_clips(root, (0.34, 0.33, 0.33), 0)
    test_clip = next(c for c in clips if c["split"] == "test")
    doc = json.loads(Path(test_clip["annotations"]).read_text())
    dets = [{"image_id": a["image_id"], "bbox": a["bbox"], "score": 0.8, "category_id": 1} for a in doc["annotations"]]
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(dets))
    spec = _spec(root, name="dets", boxes=str(path), prepared=True)
    folder = prepare(spec, progress=False)
    assert (folder / "test-detections").is_dir()
    ds, report = open_split(spec, "test", evaluation=True, progress=False)
    assert report.boxes == str(path) and report.samples == len(dets) == ds.count()
    batch = next(iter(ds.iter_batches(batch_size=len(dets), batch_format="numpy")))
    assert np.allclose(batch["det_score"], 0.8) and batch["target_weight"].sum() == 0
    gt, gt_report = open_split(spec, "test", progress=False)  # training-side samples keep ground-truth boxes
    assert gt_report.boxes == "gt" and "det_score" not in gt.schema().names


def test_a_failed_prepare_keeps_nothing(ray_local, runs_home, root, tmp_path):
    clips = load_clips(root, (0.34, 0.33, 0.33), 0)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"")
    clips = [{**c, "video": str(broken)} if c["split"] == "val" else c for c in clips]
    spec = _spec(root, name="broken")
    with pytest.raises(DataError, match="max_skip_fraction") as info:
        prepare(spec, clips=clips, progress=False)
    assert info.value.path == str(broken)
    folder = prepared_dir(spec, clips)
    assert not folder.exists() and not folder.with_name(folder.name + ".partial").exists()


def test_prepare_warns_about_doubtful_boxes_and_a_short_video(doubtful_synth):
    """Issue 22 item 12: what prepare() says before it cuts the clips of data.root."""
    from sportpose.data.dataset import load_clips
    from sportpose.data.prepare import warn_doubts

    folder, (boxes_file, short_file) = doubtful_synth
    said: list[str] = []
    assert warn_doubts(load_clips(folder, (1.0, 0.0, 0.0), 0), said.append) == 2
    assert said[0].startswith(f"warning: {boxes_file}: 2 person boxes of zero area or negative size")
    assert said[1] == (f"warning: {short_file}: frames are annotated up to index 5, but its video decodes to 3 "
                       "frames (the video is shorter than its annotations)")


def test_shards_are_read_in_groups_of_consecutive_files_with_about_equal_bytes():
    files = [(f"s{i:02d}.parquet", size) for i, size in enumerate([10, 10, 10, 10, 40, 10, 10, 10, 10, 10, 10, 10])]
    groups = shard_groups(files, cpus=2, target_bytes=1000)
    assert [f for g in groups for f in g] == [f for f, _ in files]  # every shard once, in order
    assert len(groups) == 8  # four per CPU: bytes alone would make one
    sizes = dict(files)
    assert max(sum(sizes[f] for f in g) for g in groups) <= 40  # the big shard alone, the others share
    assert len(shard_groups(files, cpus=2, target_bytes=10)) == 12  # by bytes, at most one group per shard
    assert shard_groups(files[:3], cpus=8) == [["s00.parquet"], ["s01.parquet"], ["s02.parquet"]]
    assert shard_groups([], cpus=2) == []
