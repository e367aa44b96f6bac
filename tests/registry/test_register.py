"""The registry's champion rule on a real SQLite backend: candidate always, champion only on improvement."""

import pytest

from sportpose.registry import register, tracking


@pytest.fixture
def mlflow_home(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("SPORTPOSE_RUNS", str(tmp_path / "runs"))
    return tmp_path


def test_beats_is_direction_aware():
    assert register.beats(0.8, None, "max")
    assert register.beats(0.8, 0.7, "max") and not register.beats(0.7, 0.8, "max")
    assert register.beats(50.0, 60.0, "min") and not register.beats(60.0, 50.0, "min")
    assert not register.beats(0.7, 0.7, "max")  # a tie does not move the champion


def _new_version(name: str, tmp_path) -> str:
    c = tracking.client()
    try:
        c.create_registered_model(name)
    except Exception:
        pass
    run = tracking.start_run("reg", "r")
    return str(c.create_model_version(name, source=str(tmp_path), run_id=run).version)


@pytest.mark.parametrize("mode, values, champions", [
    ("max", [50.0, 40.0, 60.0, 60.0], ["1", "1", "3", "3"]),
    ("min", [50.0, 40.0, 60.0, 30.0], ["1", "2", "2", "4"]),
])
def test_champion_moves_only_on_improvement(mlflow_home, tmp_path, mode, values, champions):
    name = f"m-{mode}"
    c = tracking.client()
    for value, expected in zip(values, champions):
        version = _new_version(name, tmp_path)
        decision = register.apply_aliases(name, str(version), "pckh", value, mode, "data-A")
        assert str(c.get_model_version_by_alias(name, "candidate").version) == str(version)
        assert str(c.get_model_version_by_alias(name, "champion").version) == expected
        assert decision.promoted == (expected == str(version))


def test_champion_not_compared_across_evaluation_data(mlflow_home, tmp_path):
    name = "m-data"
    c = tracking.client()
    register.apply_aliases(name, _new_version(name, tmp_path), "pckh", 50.0, "max", "data-A")
    decision = register.apply_aliases(name, _new_version(name, tmp_path), "pckh", 90.0, "max", "data-B")
    assert not decision.promoted and "other data" in decision.reason
    assert str(c.get_model_version_by_alias(name, "champion").version) == "1"
    register.promote(name, "2")
    assert str(c.get_model_version_by_alias(name, "champion").version) == "2"
    rows = tracking.registry_rows()
    assert [(r["version"], r["aliases"]) for r in rows] == [("2", "candidate,champion"), ("1", "")]


def test_promoting_a_missing_model_or_version_names_what_there_is(mlflow_home, tmp_path):
    from sportpose.errors import DataError

    name = "m-promote"
    _new_version(name, tmp_path)
    with pytest.raises(DataError, match=r"registry: m-promote has no version '7' \(versions: 1\)"):
        register.promote(name, "7")
    with pytest.raises(DataError, match=r"registry: no registered model 'm-typo' \(registered: .*m-promote"):
        register.promote("m-typo", "1")


@pytest.mark.integration
@pytest.mark.parametrize("level, shown", [("WARNING", False), ("INFO", True)])
def test_mlflows_registration_lines_reach_the_console_only_at_its_info_level(mlflow_home, tmp_path, monkeypatch,
                                                                             capfd, level, shown):
    import torch

    from tests.conftest import tiny_spec

    monkeypatch.setenv("MLFLOW_LOGGING_LEVEL", level)
    spec = tiny_spec("simplebaseline")
    (tmp_path / "spec.yaml").write_text(register.spec_yaml(spec))
    torch.save(spec.build_model().state_dict(), tmp_path / "weights.pt")
    for _ in range(2):  # a new model, then a new version of it
        run = tracking.start_run("reg", "r")
        register.log_and_register(run, "m-lines", tmp_path / "spec.yaml", tmp_path / "weights.pt", None, None,
                                  "pckh", 1.0, "max", "data")
    err = capfd.readouterr().err
    for line in ("Successfully registered model 'm-lines'.", "Registered model 'm-lines' already exists",
                 "Created version '2' of model 'm-lines'"):
        assert (line in err) == shown, err
