"""The checks made before anything trains, on the session's real local Ray: a stage that can never be placed on a
cluster without an autoscaler is refused at once, naming the stage, what it asks and what the cluster has, both
for the Ray the driver started and for a driver that joins a cluster started by hand."""

import os
import subprocess
import sys

import pytest
import ray

from sportpose.errors import SpecError
from sportpose.paths import REPO
from sportpose.pipelines.checks import autoscaler, check_inputs, check_resources, started_here
from sportpose.spec.experiment import load_spec


def test_the_session_ray_has_no_autoscaler(ray_local):
    assert started_here() and autoscaler() is False  # Ray's read-only monitor: node types named after node ids


def test_a_worker_bigger_than_any_node_is_refused(ray_local, tmp_path, tiny_yaml):
    cpus = ray.cluster_resources()["CPU"]
    spec = tmp_path / "big.yaml"
    spec.write_text(tiny_yaml("sb-base", "name=big", f"train.stages.main.scaling.cpus_per_worker={cpus + 1:g}",
                              "train.stages.main.scaling.num_workers=1"))
    with pytest.raises(SpecError, match=rf"train\.stages\.main\.scaling\.num_workers: stage main asks for 1 workers x "
                                        rf"{cpus + 1:g} CPU = {cpus + 1:g} CPU; the cluster has {cpus:g} CPU, 0 GPU on 1 "
                                        rf"node, room for 0 such workers \(a local Ray: no node will join"):
        check_resources(load_spec(spec))
    spec.write_text(tiny_yaml("sb-base", "name=big", "train.stages.main.scaling.use_gpu=true"))
    with pytest.raises(SpecError, match=r"scaling\.use_gpu: stage main asks for 2 workers x 1 CPU = 2 CPU \+ 2 workers "
                                        r"x 1 GPU = 2 GPU; the cluster has .* 0 GPU"):
        check_resources(load_spec(spec))


@pytest.mark.integration
def test_a_driver_joining_a_cluster_without_autoscaler_refuses_a_stage_too_big(ray_local, runs_home, tmp_path,
                                                                                tiny_yaml):
    """Issue 22 item 9: `sportpose train --address` on a cluster started by hand with more workers than it has is
    one line before any data is made, where Ray Train would wait for the workers forever."""
    spec = tmp_path / "wide.yaml"
    spec.write_text(tiny_yaml("sb-base", "name=wide", f"data.root={tmp_path / 'data'}",
                              "train.stages.main.scaling.num_workers=64", "train.stages.main.batch_size=64"))
    address = ray.get_runtime_context().gcs_address
    env = {**os.environ, "SPORTPOSE_RUNS": str(runs_home), "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "sportpose", "train", str(spec), "--address", address],
                         capture_output=True, text=True, timeout=240, cwd=tmp_path, env=env)
    cpus = ray.cluster_resources()["CPU"]
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.strip().splitlines()[-1:] == [
        f"error: train.stages.main.scaling.num_workers: stage main asks for 64 workers x 1 CPU = 64 CPU; the "
        f"cluster has {cpus:g} CPU, 0 GPU on 1 node, room for {cpus:g} such workers (no autoscaler: no node will "
        "join; lower scaling.num_workers or cpus_per_worker, use scaling.num_workers=0 for local mode, or run on a "
        "bigger cluster)"], out.stderr
    assert not (tmp_path / "data").exists()  # refused before any clip was generated


def test_a_storage_path_that_cannot_be_written_is_refused_before_anything_starts(tmp_path, tiny_yaml, small_disk):
    """Issue 22 item 12: a read-only file system, or a file where a folder should be, as train.storage_path."""
    (tmp_path / "a-file").write_text("x")
    cases = [(str(small_disk(16, read_only=True) / "ray"), "a read-only file system: point SPORTPOSE_RUNS / "
                                                           "train.storage_path at a writable folder"),
             (str(tmp_path / "a-file" / "ray"), "a path component is a file, not a folder")]
    for storage, words in cases:
        spec = tmp_path / "s.yaml"
        spec.write_text(tiny_yaml("sb", f"train.storage_path={storage}"))
        with pytest.raises(SpecError) as e:
            check_inputs(load_spec(spec))
        assert str(e.value).startswith(f"train.storage_path: '{storage}' cannot be written: {words}"), str(e.value)


def test_a_runs_folder_on_a_read_only_disk_is_one_line(small_disk, monkeypatch, capsys):
    """Issue 22 item 12: an unwritable SPORTPOSE_RUNS, where MLflow would retry opening its database for minutes."""
    from sportpose.cli.common import run_command
    from sportpose.registry import tracking

    runs = small_disk(16, read_only=True)
    monkeypatch.setenv("SPORTPOSE_RUNS", str(runs))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert run_command(lambda args: bool(tracking.tracking_uri()), None) == 2
    assert capsys.readouterr().err.strip() == (f"error: {runs}/mlflow.db: a read-only file system: point "
                                               "SPORTPOSE_RUNS / train.storage_path at a writable folder")
