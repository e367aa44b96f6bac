"""The stage engine on a local Ray: a DAG of stages with concurrent jobs, checkpoint hand-off with frozen
modules, MLflow lineage, resume after an interruption, refusal of changed settings, and a worker killed
mid-epoch."""

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import ray
import torch

from sportpose.errors import SpecError
from sportpose.paths import runs_dir
from sportpose.pipelines.train import run_pipeline
from sportpose.registry import tracking
from sportpose.spec.experiment import DataSpec, load_spec
from sportpose.training.checkpoints import load as load_checkpoint

pytestmark = pytest.mark.integration

# The tiny SimpleBaseline (experiments/paper/base/simplebaseline_tiny.yaml) as a DAG of four stages: two trained
# independently, one fusing them with the backbone frozen, one fine-tuning everything from its workers' cached
# samples (cache_samples: two DDP workers, two epochs drawn from memory).
DAG = ["name=dag", "seed=2", "data.synth.seed=5", "data.frame_stride=3", "register={enabled: false}",
       "train.stages={a: {epochs: 1, batch_size: 8, scaling: {num_workers: 1}}, "
       "b: {epochs: 1, batch_size: 8, scaling: {num_workers: 1}, optimizer: {lr: 0.01}}, "
       "fuse: {after: [a, b], load: {a: [backbone], b: [deconv, head]}, freeze: [backbone], epochs: 1, "
       "batch_size: 8, scaling: {num_workers: 2}}, "
       "joint: {after: [fuse], epochs: 2, batch_size: 8, scaling: {num_workers: 2}, optimizer: {lr: 0.0001}, "
       "cache_samples: true}}"]


class Interrupt(KeyboardInterrupt):
    pass


@pytest.fixture(scope="module")
def dag_spec_path(runs_home, tmp_path_factory, tiny_yaml):
    path = tmp_path_factory.mktemp("dag") / "dag.yaml"
    path.write_text(tiny_yaml("sb-base", *DAG, f"data.root={runs_home / 'data' / 'dag'}"))
    return path


def _params(checkpoint: str, prefix: str) -> dict[str, torch.Tensor]:
    state = load_checkpoint(checkpoint)["model"]
    return {k: v for k, v in state.items() if k.startswith(prefix + ".") and "num_batches_tracked" not in k}


def _children(parent_id: str):
    client = tracking.client()
    exp = client.get_run(parent_id).info.experiment_id
    return client.search_runs([exp], f"tags.`{tracking.PARENT_TAG}` = '{parent_id}'")


@pytest.fixture(scope="module")
def dag_run(ray_local, dag_spec_path):
    """Interrupted right after stage a finishes (b still running), then resumed with --resume."""
    spec = load_spec(dag_spec_path)
    lines = []

    def interrupting_log(line: str) -> None:
        lines.append(line)
        if line.startswith("stage a: done"):
            raise Interrupt("interrupted after stage a")

    with pytest.raises(KeyboardInterrupt):
        run_pipeline(spec, log=interrupting_log)
    state = (runs_dir() / "pipelines" / "dag" / "state.json").read_text()
    first_children = {c.data.tags["sportpose.stage"]: c for c in _children(__import__("json").loads(state)["parent_run_id"])}
    resumed_lines = []
    result = run_pipeline(spec, resume=True, log=resumed_lines.append)
    return spec, result, first_children, lines, resumed_lines


def test_independent_stages_ran_concurrently(dag_run):
    spec, result, first, lines, _ = dag_run
    a, b = first["a"].info, first["b"].info
    assert a.start_time < b.end_time and b.start_time < a.end_time, "stage-1 jobs a and b did not overlap"
    assert lines.index(next(l for l in lines if l.startswith("stage b: training"))) < \
        lines.index(next(l for l in lines if l.startswith("stage a: done")))


def test_resume_skips_finished_stages_and_reuses_their_runs(dag_run):
    spec, result, first, _, resumed = dag_run
    assert any(l.startswith("stage a: finished earlier") for l in resumed)
    assert not any(l.startswith("stage a: training") for l in resumed)
    children = {c.data.tags["sportpose.stage"]: c for c in _children(result.parent_run_id)}
    assert sorted(children) == ["a", "b", "fuse", "joint"]  # one child run per stage, as uninterrupted
    assert children["a"].info.run_id == first["a"].info.run_id
    assert all(c.info.status == "FINISHED" for c in children.values())
    assert tracking.client().get_run(result.parent_run_id).info.status == "FINISHED"
    for name, stage in result.stages.items():
        assert Path(stage.checkpoint, "checkpoint.pt").exists()
        assert len(stage.history) == spec.train.stages[name].epochs
        assert children[name].data.tags["sportpose.checkpoint"] == stage.checkpoint
    assert children["fuse"].data.tags["sportpose.init.a"] == f"{result.stages['a'].checkpoint} modules=backbone"
    # batch_size is the global batch of a step (SPEC §6): 8 rows on one worker, 4 on each of two
    assert [h["batch_rows"] for h in result.stages["a"].history] == [8.0]
    assert [h["batch_rows"] for h in result.stages["fuse"].history] == [4.0]
    # every epoch logs the task's validation metric beside the losses (SPEC §6), in MLflow too
    assert all(spec.train.stages[n].metric == "val_pckh" for n in result.stages)
    assert all(0.0 <= h["val_pckh"] <= 100.0 and "val_loss" in h for s in result.stages.values() for h in s.history)
    assert "val_pckh" in children["fuse"].data.metrics


def test_hand_off_loads_declared_modules_and_keeps_frozen_ones(dag_run):
    _, result, _, _, _ = dag_run
    a, b = result.stages["a"].checkpoint, result.stages["b"].checkpoint
    fuse, joint = result.stages["fuse"].checkpoint, result.stages["joint"].checkpoint
    backbone_a, backbone_fuse = _params(a, "backbone"), _params(fuse, "backbone")
    assert backbone_a.keys() == backbone_fuse.keys()
    for k in backbone_a:  # frozen in fuse: exactly stage a's weights, BatchNorm statistics included
        assert torch.equal(backbone_a[k], backbone_fuse[k]), k
    head_b, head_fuse = _params(b, "head"), _params(fuse, "head")
    assert any(not torch.equal(head_b[k], head_fuse[k]) for k in head_b), "fuse did not train the head"
    # joint trains everything from fuse's weights: the backbone moves now
    assert any(not torch.equal(backbone_fuse[k], v) for k, v in _params(joint, "backbone").items())
    assert load_checkpoint(fuse)["frozen"] and all(n.startswith("backbone.") for n in load_checkpoint(fuse)["frozen"])
    # joint's two epochs came from its workers' cached shards: every epoch saw the split's samples, none waited on
    # the data path after the cache was read
    client = tracking.client()
    child = next(c for c in _children(result.parent_run_id) if c.data.tags["sportpose.stage"] == "joint")
    assert sorted(m.step for m in client.get_metric_history(child.info.run_id, "loss")) == [0, 1]
    waits = [m.value for m in client.get_metric_history(child.info.run_id, "data_wait_fraction")]
    assert len(waits) == 2 and all(0.0 <= w < 1.0 for w in waits)


def test_resume_refuses_a_changed_finished_stage(dag_run, dag_spec_path):
    spec = load_spec(dag_spec_path, ["train.stages.b.optimizer.lr=0.5"])
    with pytest.raises(SpecError) as info:
        run_pipeline(spec, resume=True, log=lambda _: None)
    assert info.value.key == "train.stages.b.optimizer.lr"
    assert "rerun-changed" in info.value.message


def _kill_a_worker_in_epoch_1(run_dir: Path, address: str, killed: list[int]) -> threading.Thread:
    """A thread that SIGKILLs a Ray Train worker of the run in ``run_dir`` once its first epoch is checkpointed."""
    from ray.util.state import list_actors

    def killer():
        deadline = time.time() + 300
        while time.time() < deadline and not (run_dir / "epoch_0000").exists():
            time.sleep(0.2)
        time.sleep(1.0)  # into epoch 1
        workers = list_actors(address=address, filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")])
        pid = max(w.pid for w in workers)
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    return thread


def test_rerun_changed_retrains_that_stage_and_those_after_it_and_survives_a_killed_worker(dag_run, dag_spec_path):
    """Only joint trains again (3 epochs on 2 workers, one failure allowed); a worker killed mid-epoch 1 is
    replaced and the stage resumes from its latest checkpoint."""
    _, before, _, _, _ = dag_run
    spec = load_spec(dag_spec_path, ["train.stages.joint.optimizer.lr=0.0002", "train.stages.joint.epochs=3",
                                     "train.stages.joint.max_failures=1"])
    lines = []
    killed: list[int] = []
    run_dir = runs_dir() / "ray" / f"dag-{before.parent_run_id[:8]}-joint-r1"  # the rerun's Ray Train run
    thread = _kill_a_worker_in_epoch_1(run_dir, ray.get_runtime_context().gcs_address, killed)
    after = run_pipeline(spec, resume="rerun-changed", log=lines.append)
    thread.join(timeout=10)
    assert [l.split(":")[0] for l in lines if l.endswith("Ray Train workers") or "workers from" in l] == ["stage joint"]
    for name in ("a", "b", "fuse"):
        assert after.stages[name].checkpoint == before.stages[name].checkpoint
    assert after.stages["joint"].checkpoint != before.stages["joint"].checkpoint
    # the killed worker
    assert killed, "no worker was killed"
    with pytest.raises(OSError):
        os.kill(killed[0], 0)  # that process is gone
    joint = after.stages["joint"]
    assert Path(joint.run_path).resolve() == run_dir.resolve()
    assert [h["epoch"] for h in joint.history] == [0, 1, 2]
    names = sorted(p.name for p in Path(joint.run_path).glob("epoch_*"))
    assert names == ["epoch_0000", "epoch_0001", "epoch_0002"]


def test_missing_module_in_hand_off_names_both(dag_run, dag_spec_path):
    spec = load_spec(dag_spec_path, ["train.stages.fuse.load.a=[neck]"])
    with pytest.raises(SpecError) as info:
        run_pipeline(spec, resume="rerun-changed", log=lambda _: None)
    assert info.value.key == "train.stages.fuse.load.a" and "'neck'" in info.value.message


def test_training_batches_mix_clips_that_were_cut_one_after_another(ray_local):
    # A split's rows come clip by clip (here 40 clips of 12 tubes): with the spec's default shuffle buffer
    # a batch of 8 draws from many clips, each epoch's seed orders them differently and every row comes
    # once; a buffer of four batches (the floor) leaves each batch to a few neighbouring clips.
    from sportpose.data.feed import direct_feed
    from sportpose.training.stage import shard_batches

    rows = [{"keypoints": np.array([[clip, row, 0]], np.float32)} for clip in range(40) for row in range(12)]
    ds = ray.data.from_items(rows).materialize()

    def draw(source, buffer, seed):
        batches = [b["keypoints"][:, 0, :2] for b in shard_batches(source, ("keypoints",), 8, buffer, seed)]
        return np.mean([len(set(b[:, 0].tolist())) for b in batches]), batches

    default = DataSpec().shuffle_buffer
    ray_source = ds.iterator()
    for source in (ray_source, direct_feed(ds).shard(0, 1)):  # Ray Data's shard, and a direct feed's
        mixed, first = draw(source, max(32, default), seed=0)
        narrow, _ = draw(source, 32, seed=0)
        _, second = draw(source, max(32, default), seed=1)
        in_order, plain = draw(source, None, seed=0)
        seen = sorted(map(tuple, torch.cat(first).tolist()))
        assert seen == [(c, r) for c in range(40) for r in range(12)]
        assert [len(b) for b in first] == [8] * 60
        assert mixed >= 7 and in_order <= 1.5, (mixed, in_order)
        # Ray Data's blocks come in order; a direct feed also draws its blocks' order per epoch
        assert narrow <= 5 or source is not ray_source, narrow
        assert not torch.equal(first[0], second[0])


def test_batches_follow_the_worker_device():
    """A worker's batches reach its device (a GPU under use_gpu): here the meta device, which a CPU has too."""
    import torch

    from sportpose.training.stage import _on_device

    batches = [{"tube": torch.zeros(2, 3), "joints_3d": torch.ones(2, 1)}]
    moved = list(_on_device(iter(batches), torch.device("meta")))
    assert [{k: v.device.type for k, v in b.items()} for b in moved] == [{"tube": "meta", "joints_3d": "meta"}]
    assert list(_on_device(iter(batches), torch.device("cpu")))[0]["tube"] is batches[0]["tube"]  # no copy on CPU
