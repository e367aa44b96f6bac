"""Models from checkpoint files and folders (with their specs found) and from the MLflow registry."""

import json
import shutil

import pytest
import torch

from sportpose.errors import DataError
from sportpose.registry import register, tracking
from sportpose.registry.load import load_model, parse_registry_uri


def same_weights(a: torch.nn.Module, b: dict) -> bool:
    return all(torch.equal(v, b[k]) for k, v in a.state_dict().items())


def test_checkpoint_file_and_folder_with_the_spec_beside_them(tiny_checkpoint):
    saved = torch.load(tiny_checkpoint / "checkpoint.pt", weights_only=True)["model"]
    for source in (tiny_checkpoint, tiny_checkpoint / "checkpoint.pt"):
        loaded = load_model(str(source))
        assert loaded.kind == "simplebaseline" and loaded.spec.name == "tiny-infer"
        assert not loaded.model.training and same_weights(loaded.model, saved)
        assert loaded.checkpoint.endswith("checkpoint.pt")


def test_a_bare_state_dict_with_an_explicit_spec(tiny_checkpoint, tmp_path):
    state = torch.load(tiny_checkpoint / "checkpoint.pt", weights_only=True)["model"]
    torch.save(state, tmp_path / "weights.pt")
    with pytest.raises(DataError, match="--spec"):
        load_model(str(tmp_path / "weights.pt"))
    loaded = load_model(str(tmp_path / "weights.pt"), spec=tiny_checkpoint / "spec.yaml")
    assert same_weights(loaded.model, state) and loaded.label == "weights"


def test_a_ray_train_run_folder_gives_its_best_epoch_and_the_pipelines_spec(tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("SPORTPOSE_RUNS", str(tmp_path / "runs"))
    resolved = tmp_path / "runs" / "outputs" / "tiny-infer" / "abcdef12" / "resolved.yaml"
    resolved.parent.mkdir(parents=True)
    shutil.copy(tiny_checkpoint / "spec.yaml", resolved)
    run = tmp_path / "runs" / "ray" / "tiny-infer-abcdef12-main"
    blob = torch.load(tiny_checkpoint / "checkpoint.pt", weights_only=True)
    # the 2D stage's metric is PCKh (SPEC §6): epoch 1 has the best, epoch 2 the lowest validation loss
    history = [{"epoch": 0, "val_loss": 0.5, "val_pckh": 30.0}, {"epoch": 1, "val_loss": 0.2, "val_pckh": 60.0},
               {"epoch": 2, "val_loss": 0.1, "val_pckh": 50.0}]
    for epoch in range(3):
        (run / f"epoch_{epoch:04d}").mkdir(parents=True)
        state = {k: v + epoch if v.is_floating_point() else v for k, v in blob["model"].items()}
        torch.save({"model": state, "stage": "main", "history": json.dumps(history[: epoch + 1])},
                   run / f"epoch_{epoch:04d}" / "checkpoint.pt")
    loaded = load_model(str(run))
    assert loaded.checkpoint.endswith("epoch_0001/checkpoint.pt")  # val_pckh is the stage's metric, mode max
    assert loaded.label == "tiny-infer-abcdef12-main/epoch_0001"


def test_bad_checkpoints_are_one_line_errors(tiny_checkpoint, tmp_path):
    with pytest.raises(DataError, match="no such checkpoint"):
        load_model(str(tmp_path / "missing.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="not a readable PyTorch checkpoint"):
        load_model(str(tmp_path / "junk.pt"), spec=tiny_checkpoint / "spec.yaml")
    torch.save({"model": {"layer.weight": torch.zeros(3)}}, tmp_path / "other.pt")
    with pytest.raises(DataError, match="do not fit the spec's simplebaseline model"):
        load_model(str(tmp_path / "other.pt"), spec=tiny_checkpoint / "spec.yaml")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds neither"):
        load_model(str(tmp_path / "empty"))


def test_registry_uris_are_parsed_or_refused():
    assert parse_registry_uri("models:/sportpose-multistream@champion") == ("sportpose-multistream", "champion", None)
    assert parse_registry_uri("models:/sportpose-stsp/3") == ("sportpose-stsp", None, "3")
    with pytest.raises(DataError, match="models:/NAME@ALIAS"):
        load_model("models:/no-alias-or-version")
    with pytest.raises(DataError, match="expected models:/NAME@ALIAS"):
        load_model("s3://bucket/model.pt")


@pytest.fixture
def registry(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("SPORTPOSE_RUNS", str(tmp_path))
    return tracking.client()


def test_a_missing_model_or_alias_names_what_the_registry_has(registry):
    registry.create_registered_model("sportpose-simplebaseline")
    with pytest.raises(DataError, match="no registered model 'sportpose-nothing'.*registered: sportpose-simplebaseline"):
        load_model("models:/sportpose-nothing@champion")
    with pytest.raises(DataError, match="has no alias 'champion'; its aliases: none"):
        load_model("models:/sportpose-simplebaseline@champion")
    with pytest.raises(DataError, match="has no version 7"):
        load_model("models:/sportpose-simplebaseline/7")


@pytest.mark.integration
def test_a_registered_model_is_rebuilt_from_its_spec_and_weights(registry, tiny_checkpoint):
    state = torch.load(tiny_checkpoint / "checkpoint.pt", weights_only=True)["model"]
    torch.save(state, tiny_checkpoint.parent / "weights.pt")
    run_id = tracking.start_run("tiny-infer", "register")
    register.log_and_register(run_id, "sportpose-simplebaseline", tiny_checkpoint / "spec.yaml",
                              tiny_checkpoint.parent / "weights.pt", None, None, "pckh", 1.0, "max", "data")
    loaded = load_model("models:/sportpose-simplebaseline@champion")
    assert loaded.label == "sportpose-simplebaseline v1" and loaded.registry["run_id"] == run_id
    assert same_weights(loaded.model, state) and loaded.spec.name == "tiny-infer"
