"""`sportpose reproduce`: the studies of experiments/paper/ load at every scale, bad study files are named, and
every study runs at tiny scale (Ray Train local mode) into a table with the paper's rows and columns."""

import json
import os
from pathlib import Path

import pytest

from sportpose.cli.main import main as cli_main
from sportpose.errors import SpecError
from sportpose.pipelines.reproduce.study import (
    SCALES,
    STUDY_DIR,
    factor_covers,
    load_study,
    read_spec_file,
    row_changes,
    row_factor,
    run_study,
    study_names,
    study_path,
)
from sportpose.spec.experiment import spec_to_dict

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
varies: [model.fusion]
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
    # the factor: declared, well formed, naming keys of the spec, and nothing changes outside it
    (GOOD.replace("varies: [model.fusion]\n", ""), "varies"),
    (GOOD.replace("varies: [model.fusion]", "varies: [model.fusion, model..dropout]"), "varies.1"),
    (GOOD.replace("varies: [model.fusion]", "varies: [modle.fusion]"), "varies.0"),
    (GOOD.replace("varies: [model.fusion]", "varies: [model.fusion, model.fusion]"), "varies.1"),
    (GOOD.replace("varies: [model.fusion]", "varies: [name]"), "varies.0"),
    (GOOD.replace("varies: [model.fusion]", "varies: [model.fusoin]"), "varies.0"),
    (GOOD.replace("rows: [{label: Late,", "rows: [{label: Late, varies: [model.fusoin],"), "rows.0.varies.0"),
    (GOOD.replace("overrides: [model.fusion=late]", "overrides: [model.fusion=late, model.dropout=0.3]"), "rows.0"),
    (GOOD.replace("overrides: [model.fusion=late]", "overrides: [model.fusion=early, seed=1]"), "rows.0"),
    (GOOD.replace("overrides: [model.fusion=late]", "varies: [model.dropout], overrides: [model.fusion=early]"), "rows.0"),
])
def test_bad_study_file_names_key_and_file(tmp_path, text, key):
    path = write_study(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_study(path, "tiny")
    assert info.value.key == key
    assert str(path) in str(info.value) or "multistream_tiny.yaml" in str(info.value)


def test_a_row_outside_its_factor_is_named(tmp_path):
    text = GOOD.replace("overrides: [model.fusion=late]", "overrides: [model.fusion=early, train.stages.fuse.epochs=3]")
    with pytest.raises(SpecError, match=r"row 'Late' changes train.stages.fuse.epochs from the base spec at scale tiny, "
                                        r"outside its factor \(varies: \['model.fusion'\]\)"):
        load_study(write_study(tmp_path, text), "tiny")
    # a wildcard segment covers any one key; a row's own factor replaces the study's
    lr = GOOD.replace("varies: [model.fusion]", "varies: ['train.stages.*.optimizer.lr']").replace(
        "overrides: [model.fusion=late]", "overrides: [train.stages.fuse.optimizer.lr=0.01, train.stages.joint.optimizer.lr=0.01]")
    study = load_study(write_study(tmp_path, lr), "tiny")
    assert row_changes(study.base, study.rows[0][1]) == ["train.stages.fuse.optimizer.lr", "train.stages.joint.optimizer.lr"]
    assert factor_covers("train.stages.*.optimizer.lr", "train.stages.fuse.optimizer.lr")
    assert factor_covers("model", "model.fusion") and not factor_covers("model.fusion", "model.fusion_weights")
    assert not factor_covers("train.stages.*.optimizer.lr", "train.stages.fuse.optimizer.kind")


def _leaves(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


# Rows that are the base at a scale: no difference at all (the paper's default configuration of the table)
BASE_ROWS = {("table9-fusion", "paper"): "Hybrid Fusion", ("table9-fusion", "tiny"): "Late Fusion",
             ("table4-modules", "paper"): "Full Model", ("table10-sst", "paper"): "Freeze 4 layers (SST default)",
             ("table5-backbones", "paper"): "Baseline (ResNet-50)", ("table7-temporal", "paper"): "5 / 1 / 3D",
             ("table8-context", "demo"): "Transformer", ("stsp-table3-modules", "paper"): "Baseline + GSR-Module + TMP-Module (Full)",
             ("stsp-table4-window", "demo"): "5", ("stsp-table5-gat", "paper"): "2"}


@pytest.mark.parametrize("scale", SCALES)
def test_every_row_varies_only_what_the_paper_varied(scale):
    """Every study of experiments/paper/ declares its factor, and at every scale each row's resolved spec (the
    study's own resolution: base, scale and row overrides, own names and data folders) differs from the base's
    resolved spec only under it. Left out as bookkeeping: the spec's name, and data.root when both read
    SynthCourt (the clips are data.synth's)."""
    for name in study_names():
        raw = read_spec_file(study_path(name))
        assert "varies" in raw, f"{name}: no factor declared"
        study = load_study(study_path(name), scale)
        base = _leaves(spec_to_dict(study.base))
        for row, spec in study.rows:
            if spec is None:
                continue
            leaves = _leaves(spec_to_dict(spec))
            bookkeeping = {"name"} | ({"data.root"} if spec.data.source == study.base.data.source == "synthcourt" else set())
            changed = sorted(k for k in base.keys() | leaves.keys()
                             if k not in bookkeeping and base.get(k, "<absent>") != leaves.get(k, "<absent>"))
            assert changed == row_changes(study.base, spec)
            factor = row_factor(study.spec, row)
            outside = [k for k in changed if not any(factor_covers(p, k) for p in factor)]
            assert not outside, f"{name} at {scale}, row {row.label!r}: {outside} outside {list(factor)}"
            if BASE_ROWS.get((name, scale)) == row.label:
                assert changed == [], f"{name} at {scale}: {row.label!r} is the base, got {changed}"
        if study.spec.kind in ("variants", "views"):  # a stage a row trains divides its global batch
            for _, spec in study.rows:
                for stage in (spec.train.stages.values() if spec else ()):
                    assert stage.batch_size % max(1, stage.scaling.num_workers) == 0


@pytest.mark.parametrize("scale", SCALES)
def test_review_findings_stay_fixed(scale):
    """What the review of the studies found (issue 21): each row varies what its label names, at every scale."""
    def rows(name):
        study = load_study(study_path(name), scale)
        return study, {row.label: spec for row, spec in study.rows}

    study, table3 = rows("stsp-table3-modules")  # EPE only: the MLP lifter (the model drops GSR's constraints)
    assert row_changes(study.base, table3["Baseline (EPE-Module only)"]) == ["model.use_gsr", "model.use_tmp"]
    assert row_changes(study.base, table3["Baseline + GSR-Module"]) == ["model.use_tmp"]

    study, table10 = rows("table10-sst")  # every stage's learning rate x10 and x0.1, never the base's
    for label, factor in (("High learning rate (0.01)", 10), ("Low learning rate (0.0001)", 0.1)):
        for stage, base_stage in study.base.train.stages.items():
            lr = table10[label].train.stages[stage].optimizer.lr
            assert lr == pytest.approx(factor * base_stage.optimizer.lr), (label, stage)
    if scale == "paper":
        assert table10["High learning rate (0.01)"].train.stages["spatial"].optimizer.lr == pytest.approx(0.01)
        assert table10["Low learning rate (0.0001)"].train.stages["spatial"].optimizer.lr == pytest.approx(0.0001)

    study, table4 = rows("table4-modules")  # rows with SST train the base's stages, schedules included
    for label in ("B (only SST)", "E (Feature Fusion + SST)"):
        for stage in ("spatial", "joint"):
            assert table4[label].train.stages[stage] == study.base.train.stages[stage], (label, stage)
    for label in ("Baseline (only BAP-MDSNA)", "A (only Feature Fusion)", "C (BAP-MDSNA + Feature Fusion)"):
        e2e, spatial = table4[label].train.stages["e2e"], study.base.train.stages["spatial"]
        assert (e2e.epochs, e2e.optimizer, e2e.schedule) == (spatial.epochs, spatial.optimizer, spatial.schedule)

    study = load_study(study_path("fig3-weights"), scale)  # stream heads trained in every stage (SPEC §4)
    assert study.base.model.fusion == "late"

    study, table6 = rows("table6-spatial")  # every row built, varying the spatial stream's conv layers
    assert [spec is not None for spec in table6.values()] == [True] * 6
    assert [table6[f"{n} layers / 3x3 / 64"].model.spatial_convs for n in (3, 5, 7)] == [3, 5, 7]
    assert table6["5 layers / 5x5 / 64"].model.spatial_kernel == 5
    filters = [table6[f"{n} filters"].model.spatial_filters or study.base.model.fpn_channels for n in (64, 128)]
    assert filters[1] == 2 * filters[0]

    study, window = rows("stsp-table4-window")  # one tube length for every tau
    assert {spec.data.window for spec in window.values()} == {study.base.data.window} == {10}


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
