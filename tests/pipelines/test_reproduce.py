"""`sportpose reproduce`: the studies of experiments/paper/ load at every scale, bad study files are named, and
every study runs at tiny scale (Ray Train local mode) into a table with the paper's rows and columns."""

import json
import os
from pathlib import Path

import pytest

from sportpose.errors import SpecError
from sportpose.pipelines.reproduce.study import SCALES, STUDY_DIR, load_study, read_spec_file, run_study, study_names, study_path
from sportpose.cli.main import main as cli_main

NAMES = ["table4-modules", "table5-backbones", "table6-spatial", "table7-temporal", "table8-context", "table9-fusion",
         "table10-sst", "table11-views", "table12-complexity", "fig3-weights", "fig6-similarity",
         "stsp-table3-modules", "stsp-table4-window", "stsp-table5-gat", "stsp-children"]


def test_list_names_every_study(capsys):
    assert cli_main(["reproduce", "--list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert sorted(listed) == sorted(NAMES) == study_names()


@pytest.mark.parametrize("scale", SCALES)
def test_every_study_loads_and_validates(scale):
    for name in NAMES:
        study = load_study(study_path(name), scale)
        raw = read_spec_file(study_path(name))
        assert [row.label for row, _ in study.rows] == [r["label"] for r in raw["rows"]]
        for row, spec in study.rows:
            assert (spec is None) == bool(row.skip)
        if scale == "paper":
            stages = study.base.train.stages.values()
            assert all(s.scaling.use_gpu for s in stages), f"{name}: paper scale is for GPU clusters"
        if scale == "tiny":
            assert all(s.scaling.num_workers == 0 and s.epochs == 1 for s in study.base.train.stages.values())


def write_study(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace("BASE", str(STUDY_DIR / "base" / "multistream_tiny.yaml")))
    return path


GOOD = """
name: bad
paper: multistream
caption: a test
scales: {tiny: {base: BASE}, demo: {base: BASE}, paper: {base: BASE}}
columns: [{label: Total, key: ap_groups.Total}]
rows: [{label: Late, overrides: [model.fusion=late]}]
"""


def test_good_study_file_loads(tmp_path):
    study = load_study(write_study(tmp_path, GOOD), "tiny")
    assert study.rows[0][1].model.fusion == "late"


@pytest.mark.parametrize("text, key", [
    (GOOD + "colour: red\n", "colour"),
    (GOOD.replace("rows: [{label: Late,", "rows: [{label: Late, reuse_stages: [spatial],"), "rows.0.reuse_stages"),
    (GOOD.replace("{label: Total, key", "{label: Total, digits: many, key"), "columns.0.digits"),
    (GOOD.replace("paper: {base: BASE}}", "}"), "scales"),
    (GOOD.replace("model.fusion=late", "model.fusoin=late"), "model.fusoin"),
    (GOOD.replace("overrides: [model.fusion=late]", "overrides: [data.window=5, model.window=5], reuse: [spatial]"),
     "rows.0.reuse"),
    (GOOD.replace("overrides: [model.fusion=late]", "paper: {Head: 80.0}"), "rows.0.paper.Head"),
])
def test_bad_study_file_names_key_and_file(tmp_path, text, key):
    path = write_study(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_study(path, "tiny")
    assert info.value.key == key
    assert str(path) in str(info.value) or "multistream_tiny.yaml" in str(info.value)


def test_rows_option_runs_only_the_rows_named(capsys):
    study = load_study(study_path("stsp-table4-window"), "tiny", rows=["1", "5"])
    chosen = {row.label: spec for row, spec in study.rows}
    assert chosen["1"].model.tau == 1 and chosen["5"].model.tau == 5
    assert chosen["3"] is None and chosen["7"] is None and chosen["9"] is None
    assert "--rows 1,5" in study.rows[1][0].skip and study.rows[0][0].skip is None
    with pytest.raises(SpecError, match=r"expected row labels .*'4'") as info:
        load_study(study_path("stsp-table4-window"), "tiny", rows=["1", "4"])
    assert info.value.key == "--rows"
    # the command line: an unknown label is refused before anything starts
    from sportpose.cli import main as cli

    assert cli.main(["reproduce", "stsp-table4-window", "--scale", "tiny", "--rows", "1,4"]) == 2
    assert "--rows" in capsys.readouterr().err


def test_unknown_study_and_bad_scale():
    with pytest.raises(SpecError, match="unknown study"):
        study_path("table99-nothing")
    with pytest.raises(SpecError, match="--scale"):
        load_study(study_path("table9-fusion"), "huge")


@pytest.fixture(scope="module")
def tiny_workdir(tmp_path_factory, runs_home, ray_local):
    """Relative data roots of the tiny specs land in a folder of this test module, not in the checkout."""
    work = tmp_path_factory.mktemp("reproduce")
    old = os.getcwd()
    os.chdir(work)
    yield work
    os.chdir(old)


@pytest.mark.integration
@pytest.mark.parametrize("name", NAMES)
def test_study_at_tiny_scale_writes_the_papers_table(tiny_workdir, name):
    study = load_study(study_path(name), "tiny")
    out = run_study(study, log=lambda line: None, reports=tiny_workdir / "reports")
    folder = Path(out["dir"])
    table = (folder / "table.md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| "))
    assert [c.strip() for c in header.strip("|").split("|")][1:] == [c.label for c in study.spec.columns]
    body = [line for line in table.splitlines() if line.startswith("| ") and line != header]
    assert [line.split("|")[1].strip() for line in body] == [row.label for row, _ in study.rows]
    assert "Protocol: scale tiny" in table and "seed 0" in table
    results = json.loads((folder / "results.json").read_text())
    for row, result in zip(study.spec.rows, results["rows"]):
        assert result["paper"] == {c.label: row.paper.get(c.label) for c in study.spec.columns}
        if not row.skip:  # every figure of a row that ran is measured (a zero-shot view may lack samples)
            measured = [v for v in result["ours"].values() if v is not None]
            assert len(measured) >= (1 if study.spec.kind == "views" else len(study.spec.columns)), result
    if study.spec.figure:
        assert (folder / study.spec.figure).stat().st_size > 10_000
    assert any(r["paper"][c] is not None for r in results["rows"] for c in r["paper"]) or study.spec.paper == "multistream"


@pytest.mark.integration
def test_running_a_study_again_trains_nothing(tiny_workdir):
    """After the parametrised run above: every row of table9-fusion is the base run or a finished row."""
    lines: list[str] = []
    study = load_study(study_path("table9-fusion"), "tiny")
    run_study(study, log=lines.append, reports=tiny_workdir / "reports")
    assert not [line for line in lines if line.startswith("variant ") or "training" in line], lines
    assert sum("finished earlier" in line for line in lines) == 3 and any("the base run" in line for line in lines)
    # table4's "Full Model" and "D" are table9's "Hybrid Fusion" and "No Fusion" (the same resolved spec from the
    # same stage-1 checkpoints): trained once, by whichever study ran first
    rows4, rows9 = ({r["label"]: r for r in json.loads((tiny_workdir / "reports" / n / "results.json").read_text())["rows"]}
                    for n in ("table4-modules", "table9-fusion"))
    assert rows9["Hybrid Fusion"]["checkpoint"] == rows4["Full Model"]["checkpoint"]
    assert rows9["No Fusion"]["checkpoint"] == rows4["D (BAP-MDSNA + SST)"]["checkpoint"]
    assert rows9["Early Fusion"]["checkpoint"] != rows9["Hybrid Fusion"]["checkpoint"]


def test_local_mode_is_a_valid_scaling():
    from sportpose.spec.experiment import ScalingSpec

    assert ScalingSpec(num_workers=0).num_workers == 0
    with pytest.raises(SpecError, match="local mode"):
        ScalingSpec(num_workers=-1)
