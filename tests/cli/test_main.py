"""The command table's small promises: --version, the help texts, registry list outside the project folder,
and the Launch: line in each spec's header."""

import argparse
import re

import pytest
import tomllib

from sportpose import __version__
from sportpose.cli.main import build_parser, main
from sportpose.cli.train import TOUR_SPECS
from sportpose.paths import REPO


def test_version_matches_the_package(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"sportpose {__version__}"
    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"] == __version__


def _help(command: str) -> str:
    """What `sportpose COMMAND --help` prints."""
    (commands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001
    return commands.choices[command].format_help()


def test_data_help_lists_every_action_and_evaluate_shows_an_evaluate_override():
    text = _help("data")
    assert all(re.search(rf"^\s+{a}\s", text, re.M) for a in ("synth", "import", "inspect", "prepare"))
    evaluate = " ".join(_help("evaluate").split())
    assert "-o evaluate." in evaluate and "-o train." not in evaluate


def test_registry_list_elsewhere_names_where_it_looked_and_creates_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPORTPOSE_RUNS", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["registry", "list"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "runs" / "mlflow.db") in err and "SPORTPOSE_RUNS" in err and "MLFLOW_TRACKING_URI" in err
    assert not (tmp_path / "runs").exists()


def test_each_specs_launch_line_runs_that_spec():
    """`sportpose demo` only for the tour's specs; a train, sweep or submit line names the spec's own file."""
    tour = {spec for _, spec in TOUR_SPECS}
    checked = 0
    for path in sorted((REPO / "experiments").rglob("*.yaml")):
        rel = str(path.relative_to(REPO))
        launch = next((line for line in path.read_text().splitlines() if line.startswith("# Launch:")), None)
        if launch is None:
            continue
        command = launch.split("(")[0]  # what follows in brackets is a remark
        if "sportpose demo" in command:
            assert rel in tour, f"{rel}: `sportpose demo` runs the tour ({sorted(tour)}), not this spec"
        if re.search(r"sportpose (train|sweep|submit) ", command):
            assert rel in command, f"{rel}: its Launch: line runs another file: {launch}"
        checked += 1
    assert checked > 20
