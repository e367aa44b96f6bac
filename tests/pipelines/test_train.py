"""End to end on local Ray: SynthCourt clips -> Ray Data -> a 2-worker Ray Train stage -> PCKh -> registry."""

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

from sportpose.errors import DataError, SpecError, TrainingError
from sportpose.paths import REPO
from sportpose.pipelines.train import run_pipeline
from sportpose.registry import tracking
from sportpose.spec.experiment import load_spec

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny_run(ray_local, runs_home, tmp_path_factory, tiny_yaml):
    """experiments/paper/base/simplebaseline_tiny.yaml as it is: two stages' epochs on two workers, registered."""
    spec_path = tmp_path_factory.mktemp("spec") / "tiny.yaml"
    spec_path.write_text(tiny_yaml("sb-base", f"data.root={runs_home / 'data' / 'tiny'}"))
    spec = load_spec(spec_path)
    return spec, run_pipeline(spec, log=lambda _: None)


def test_stage_trains_on_two_workers_and_checkpoints_every_epoch(tiny_run):
    spec, result = tiny_run
    stage = result.stages["main"]
    assert [h["epoch"] for h in stage.history] == [0, 1]
    ckpts = sorted(p.name for p in Path(stage.run_path).glob("epoch_*"))
    assert ckpts == ["epoch_0000", "epoch_0001"]
    assert Path(stage.checkpoint, "checkpoint.pt").exists()
    assert all(h["samples_per_s"] > 0 and h["loss"] > 0 for h in stage.history)
    # the stage's output is its epoch of the best task metric, PCKh@0.5 for this 2D model (SPEC §6)
    assert spec.train.stages["main"].metric == "val_pckh" and spec.train.stages["main"].mode == "max"
    assert all(0.0 <= h["val_pckh"] <= 100.0 for h in stage.history)
    best = max(stage.history, key=lambda h: (h["val_pckh"], -h["epoch"]))
    assert stage.metrics["epoch"] == best["epoch"] and stage.metrics["val_pckh"] == best["val_pckh"]
    assert Path(stage.checkpoint).name == f"epoch_{int(best['epoch']):04d}"
    assert (Path(result.output_dir) / "learning_curves.png").exists()  # the stages' epochs, in the run's outputs
    assert result.data_reports["train"]["samples"] > 0 and result.data_reports["test"]["samples"] > 0


def test_mlflow_holds_parent_and_child_runs(tiny_run):
    spec, result = tiny_run
    client = tracking.client()
    parent = client.get_run(result.parent_run_id)
    assert parent.data.params["train.stages.main.epochs"] == "2"
    assert parent.data.tags["sportpose.spec_hash"]
    assert "pckh" in parent.data.metrics and "pckh_untrained" in parent.data.metrics
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.`{tracking.PARENT_TAG}` = '{result.parent_run_id}'")
    assert [c.data.tags["sportpose.stage"] for c in children] == ["main"]
    child = children[0]
    assert child.info.status == "FINISHED"
    assert "loss" in child.data.metrics and "val_loss" in child.data.metrics
    history = client.get_metric_history(child.info.run_id, "loss")
    assert sorted(m.step for m in history) == [0, 1]
    assert sorted(m.step for m in client.get_metric_history(child.info.run_id, "val_pckh")) == [0, 1]
    resolved = yaml.safe_load(mlflow.artifacts.load_text(f"runs:/{result.parent_run_id}/spec/resolved.yaml"))
    assert resolved["name"] == "tiny" and resolved["data"]["input_size"] == [64, 64]
    report = json.loads(mlflow.artifacts.load_text(f"runs:/{result.parent_run_id}/data/data_report_train.json"))
    assert report["skipped_clips"] == 0


def test_model_is_registered_and_loads_from_the_registry(tiny_run):
    import numpy as np

    spec, result = tiny_run
    assert result.promotion is not None and result.promotion.promoted
    model = mlflow.pyfunc.load_model("models:/sportpose-simplebaseline@candidate")
    out = model.predict({"tube": np.zeros((2, 1, 64, 64, 3), np.uint8)})
    assert out["keypoints"].shape == (2, 17, 2) and out["heatmaps"].shape == (2, 17, 16, 16)
    listing = subprocess.run([sys.executable, "-m", "sportpose", "registry", "list"], capture_output=True, text=True,
                             timeout=120)
    assert listing.returncode == 0, listing.stderr
    line = next(l for l in listing.stdout.splitlines() if l.startswith("sportpose-simplebaseline"))
    assert "candidate" in line and "champion" in line and "pckh=" in line


def test_a_saved_run_reads_fields_added_to_the_spec_since_as_their_defaults(tmp_path):
    """An upgrade that adds a spec field (with its default) does not make a finished run "changed" on resume."""
    from sportpose.pipelines.resume import check_resume
    from sportpose.pipelines.train import read_state
    from sportpose.spec.experiment import spec_to_dict

    spec = load_spec(REPO / "experiments" / "stsp_demo.yaml")
    older = spec_to_dict(spec)
    assert [s["cache_frozen"] for s in older["train"]["stages"].values()] == [False, True, False]
    for stage in older["train"]["stages"].values():
        del stage["cache_frozen"]  # as a run saved before the field existed
    del older["model"]["epe_frames"]
    path = tmp_path / "state.json"

    def save(spec_dict: dict) -> None:
        path.write_text(json.dumps({"parent_run_id": "0" * 32, "spec": spec_dict, "finished": True,
                                    "stages": {s: {"status": "finished"} for s in spec_dict["train"]["stages"]}}))

    save(older)
    state = read_state(path)
    assert state["spec"]["train"]["stages"]["epe"]["cache_frozen"] is False
    assert state["spec"]["model"]["epe_frames"] is None  # the default, not the demo's 1: the model is "changed"
    with pytest.raises(SpecError, match="model.epe_frames"):
        check_resume(state, spec_to_dict(spec), spec)
    older["model"]["epe_frames"] = 1
    save(older)  # the lift stage ran without the cache the spec now asks for: that stage (and full) changed
    with pytest.raises(SpecError, match="train.stages.lift.cache_frozen"):
        check_resume(read_state(path), spec_to_dict(spec), spec)
    assert check_resume(read_state(path), spec_to_dict(spec), spec, rerun_changed=True) == ["lift", "full"]
    older["train"]["stages"]["lift"]["cache_frozen"] = True
    save(older)
    assert check_resume(read_state(path), spec_to_dict(spec), spec) == []


def test_a_diverging_run_stops_with_a_named_step_and_registers_nothing(ray_local, runs_home, tmp_path, tiny_yaml):
    """lr 1e30 (finite, so the spec takes it): the first update sends the weights to ~1e30 and the next loss is
    not finite. The stage stops there naming stage, epoch and step; runs are FAILED; no model version exists."""
    spec_path = tmp_path / "diverge.yaml"
    spec_path.write_text(tiny_yaml("sb-base", "name=diverge", f"data.root={runs_home / 'data' / 'tiny'}",
                                   "train.stages.main.optimizer.lr=1.0e+30", "train.stages.main.scaling.num_workers=0",
                                   "register.name=sportpose-diverge"))
    with pytest.raises(TrainingError, match=r"stage main: the training loss is not finite .* at epoch 1, step 1"):
        run_pipeline(load_spec(spec_path), log=lambda _: None)
    client = tracking.client()
    runs = client.search_runs([client.get_experiment_by_name("diverge").experiment_id])
    assert runs and all(r.info.status == "FAILED" for r in runs)
    assert not client.search_model_versions("name = 'sportpose-diverge'")

    # The unfinished run is kept: running the spec again without --resume is refused, naming both ways on
    (old,) = [r for r in runs if r.data.tags.get("sportpose.kind") == "pipeline"]
    with pytest.raises(SpecError, match=r"state\.json: --resume: the last run of 'diverge' did not finish .*"
                                        r"stages finished \[\], not finished \['main'\].*--resume.*--restart"):
        run_pipeline(load_spec(spec_path), log=lambda _: None)
    with pytest.raises(TrainingError):  # --restart: a new run beside it; the old MLflow records stay, marked
        run_pipeline(load_spec(spec_path), resume="restart", log=lambda _: None)
    kept = client.get_run(old.info.run_id)
    assert kept.info.status == "FAILED" and kept.data.tags["sportpose.superseded"] == "true"
    assert len(client.search_runs([kept.info.experiment_id], "tags.`sportpose.kind` = 'pipeline'")) == 2


def test_what_the_end_of_a_run_needs_is_checked_before_training(ray_local, runs_home, tmp_path, tiny_yaml):
    from sportpose.pipelines.checks import check_inputs

    spec_path = tmp_path / "late.yaml"
    spec_path.write_text(tiny_yaml("sb-base", "name=late", f"data.root={runs_home / 'data' / 'tiny'}",
                                   "register.metric=ap_total"))
    with pytest.raises(SpecError, match=r"register\.metric: the evaluation of this spec reports no 'ap_total'; "
                                        r"it reports pckh, pckh_untrained, ap, ap_untrained"):
        check_inputs(load_spec(spec_path))
    spec_path.write_text(tiny_yaml("sb-base", "name=late", f"data.root={runs_home / 'data' / 'tiny'}",
                                   "data.splits=[1.0, 0.0, 0.0]"))
    lines: list[str] = []
    with pytest.raises(DataError, match=r"test split: has no samples \(0 clips\); the final evaluation"):
        run_pipeline(load_spec(spec_path), log=lines.append)
    assert not any(line.startswith("stage ") for line in lines)  # refused before any stage trained
    spec_path.write_text(tiny_yaml("sb-base", "name=late", f"data.root={runs_home / 'data' / 'tiny'}",
                                   "train.stages.main.scaling.num_workers=64", "train.stages.main.batch_size=64"))
    lines.clear()
    with pytest.raises(SpecError, match=r"train\.stages\.main\.scaling\.num_workers: stage main asks for 64 workers x 1 "
                                        r"CPU = 64 CPU; the cluster has \d+ CPU, 0 GPU on 1 node, room for \d+ such "
                                        r"workers \(a local Ray: no node will join"):
        run_pipeline(load_spec(spec_path), log=lines.append)
    assert not any(line.startswith("stage ") for line in lines)


@pytest.mark.timeout(300)
def test_a_killed_drivers_runs_are_ended_by_the_next_start(ray_local, runs_home, tmp_path, tiny_yaml):
    """SIGKILL leaves the driver no chance to end its MLflow runs: the next start of the spec finds the dead
    driver (its recorded pid and start time) and ends them FAILED, and --resume continues from the checkpoint."""
    import os
    import signal
    import time

    spec_path = tmp_path / "killed.yaml"
    spec_path.write_text(tiny_yaml("sb-base", "name=killed", f"data.root={runs_home / 'data' / 'tiny'}",
                                   "train.stages.main.epochs=40", "train.stages.main.scaling.num_workers=0",
                                   "register={enabled: false}", "data.feed=ray_data"))  # Ray Train's shards feed it
    state_path = runs_home / "pipelines" / "killed" / "state.json"
    env = {**os.environ, "SPORTPOSE_RUNS": str(runs_home)}
    env.pop("RAY_ADDRESS", None)
    driver = subprocess.Popen([sys.executable, "-m", "sportpose", "train", str(spec_path)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 240
    while not (state_path.exists() and list(state_path.parent.parent.parent.glob("ray/killed-*-main/epoch_0000"))):
        assert driver.poll() is None and time.monotonic() < deadline, driver.stdout.read() if driver.poll() else "slow"
        time.sleep(0.5)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    client = tracking.client()
    runs = client.search_runs([client.get_experiment_by_name("killed").experiment_id])
    assert {r.info.status for r in runs} == {"RUNNING"}  # nobody ended them

    spec = load_spec(spec_path, ["train.stages.main.epochs=2"])
    with pytest.raises(SpecError, match="did not finish"):  # the next start: refused (no --resume), runs ended
        run_pipeline(spec, log=lambda _: None)
    for run in runs:
        ended = client.get_run(run.info.run_id)
        assert ended.info.status == "FAILED" and "died" in ended.data.tags["sportpose.ended"]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("workers", [0, 1])
def test_ctrl_c_stops_the_running_stage_at_once_and_says_how_to_resume(runs_home, tmp_path, tiny_yaml, workers):
    """One SIGINT while a 200-epoch stage trains (in the driver's process, or on a Ray Train worker): the driver
    exits within seconds with status 130, its runs KILLED and the epochs it finished on disk."""
    import os
    import signal
    import time

    name = f"ctrlc{workers}"
    spec_path = tmp_path / f"{name}.yaml"
    spec_path.write_text(tiny_yaml("sb-base", f"name={name}", f"data.root={runs_home / 'data' / 'tiny'}",
                                   "train.stages.main.epochs=200", f"train.stages.main.scaling.num_workers={workers}",
                                   "register={enabled: false}"))
    env = {**os.environ, "SPORTPOSE_RUNS": str(runs_home)}
    env.pop("RAY_ADDRESS", None)
    driver = subprocess.Popen([sys.executable, "-m", "sportpose", "train", str(spec_path)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not list(runs_home.glob(f"ray/{name}-*-main/epoch_0000/checkpoint.pt")):
        assert driver.poll() is None and time.monotonic() < deadline, driver.communicate()
        time.sleep(0.5)
    driver.send_signal(signal.SIGINT)
    sent = time.monotonic()
    out, err = driver.communicate(timeout=60)
    assert driver.returncode == 130, err[-3000:]
    assert time.monotonic() - sent < 30  # not when the 200 epochs end
    assert "interrupted: stopping main" in out and f"sportpose train {spec_path} --resume" in err
    client = tracking.client()
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id])
    assert runs and {r.info.status for r in runs} == {"KILLED"}


def test_a_full_disk_under_the_checkpoints_stops_the_stage_in_one_line(ray_local, runs_home, tmp_path, tiny_yaml,
                                                                       small_disk):
    """Issue 22 item 12: ENOSPC writing a checkpoint is one line naming the stage, the epoch and the file."""
    disk = small_disk(64)
    spec_path = tmp_path / "full.yaml"
    spec_path.write_text(tiny_yaml("sb", "name=full-disk", f"data.root={runs_home / 'data' / 'tiny'}",
                                   "train.stages.main.scaling.num_workers=0", "train.stages.main.epochs=1",
                                   f"train.storage_path={disk}"))
    with pytest.raises(TrainingError) as e:
        run_pipeline(load_spec(spec_path), log=lambda _: None)
    line = str(e.value)
    assert len(line.splitlines()) == 1 and line.startswith("stage main: epoch 0: its checkpoint cannot be written: "
                                                           f"{disk}/"), line
    assert "/epoch_0000/checkpoint.pt: the disk is full: free space, or point SPORTPOSE_RUNS / train.storage_path " \
           "elsewhere" in line
