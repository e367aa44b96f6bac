"""The paper-scale specs read the papers' data and init: imported PoseTrack 2018/2017 and Human3.6M manifests
and local pretrained files, paths a user overrides; every study validates at paper scale with real-data
overrides, the files it reads are checked before anything starts, and ``table.md`` names each row's data and
init."""

import json
from pathlib import Path

import pytest

from sportpose.errors import SpecError
from sportpose.paths import EXPERIMENTS
from sportpose.pipelines.reproduce.study import check_study_inputs, load_study, row_inputs, study_names, study_path
from sportpose.spec.experiment import load_spec, read_spec_file, spec_to_dict

PAPER_SPECS = {"multistream_paper.yaml": "posetrack18", "multistream_paper_pt17.yaml": "posetrack17",
               "stsp_paper.yaml": "h36m"}


@pytest.fixture
def real_data(tmp_path) -> dict[str, Path]:
    """Import folders (a manifest naming its dataset) and the papers' pretrained files, as a user has them."""
    roots = {}
    for dataset in ("posetrack18", "posetrack17", "h36m"):
        root = tmp_path / dataset
        root.mkdir()
        (root / "manifest.json").write_text(json.dumps({"dataset": dataset, "clips": []}))
        roots[dataset] = root
    weights = tmp_path / "pretrained"  # the specs' default folder, relative to the working directory
    weights.mkdir()
    for name in ("resnet50-0676ba61.pth", "resnet18-f37072fd.pth", "vgg16-397923af.pth", "resnet101-63fe2227.pth",
                 "efficientnet_b3_rwightman-b3899882.pth", "hrnet_w32_coco_256x192-c78dce93_20200708.pth"):
        (weights / name).write_bytes(b"")  # check_inputs looks for the files; loading is tests/models' job
    roots["weights"] = weights
    return roots


def pretrained_overrides(spec_file: str, weights: Path) -> list[str]:
    model = read_spec_file(EXPERIMENTS / spec_file)["model"]
    return [f"model.{k}={weights / Path(v).name}" for k, v in model.items() if k.endswith("pretrained") and v]


@pytest.mark.parametrize("spec_file", list(PAPER_SPECS))
def test_paper_specs_train_on_imported_data_from_pretrained_files(spec_file):
    spec = load_spec(EXPERIMENTS / spec_file)
    assert spec.data.source == "manifest" and PAPER_SPECS[spec_file] in spec.data.root
    if spec.model.kind == "multistream":
        assert spec.model.backbone == "resnet50" and spec.model.pretrained.endswith("resnet50-0676ba61.pth")
        assert spec.evaluate.split == "val"  # PoseTrack publishes no test annotations
    else:
        assert spec.model.pretrained.endswith("hrnet_w32_coco_256x192-c78dce93_20200708.pth")


def test_the_posetrack17_spec_is_the_posetrack18_spec_on_its_import():
    pt18, pt17 = (spec_to_dict(load_spec(EXPERIMENTS / f)) for f in ("multistream_paper.yaml",
                                                                     "multistream_paper_pt17.yaml"))
    for d in (pt18, pt17):
        d.pop("name"), d["data"].pop("root")
    assert pt17 == pt18


@pytest.mark.parametrize("spec_file", list(PAPER_SPECS))
def test_a_paper_spec_validates_with_real_data_overrides_and_names_missing_files(spec_file, real_data):
    from sportpose.pipelines.checks import check_inputs

    root = real_data[PAPER_SPECS[spec_file]]
    pretrained = pretrained_overrides(spec_file, real_data["weights"])
    spec = load_spec(EXPERIMENTS / spec_file, [f"data.root={root}", *pretrained])
    check_inputs(spec)
    data, init = row_inputs(spec)
    assert data == f"manifest of {PAPER_SPECS[spec_file]} at {root}"
    assert init.startswith("model.pretrained=") and str(real_data["weights"]) in init

    with pytest.raises(SpecError, match=r"model\.pretrained.*not found.*nothing downloads"):
        check_inputs(load_spec(EXPERIMENTS / spec_file, [f"data.root={root}", "model.pretrained=nowhere.pth"]))
    with pytest.raises(SpecError, match=r"data\.root.*no manifest\.json.*sportpose data import"):
        check_inputs(load_spec(EXPERIMENTS / spec_file, [f"data.root={real_data['weights']}", *pretrained]))


def test_every_study_validates_at_paper_scale_on_the_imported_data(real_data, monkeypatch):
    monkeypatch.chdir(real_data["weights"].parent)  # table5-backbones' rows name pretrained/<their own file>
    for name in study_names():
        raw = read_spec_file(study_path(name))
        base = Path(raw["scales"]["paper"]["base"]).name
        dataset = PAPER_SPECS[base]
        study = load_study(study_path(name), "paper",
                           [f"data.root={real_data[dataset]}", *pretrained_overrides(base, real_data["weights"])])
        if study.spec.kind == "complexity":  # counts an untrained network: reads nothing
            continue
        check_study_inputs(study)
        for row, spec in study.rows:
            if spec is None:
                continue
            data, init = row_inputs(spec)
            if "synthcourt" in data:  # studies whose variable only SynthCourt has (camera views, children)
                assert name in ("table11-views", "stsp-children"), (name, row.label)
            else:
                assert data == f"manifest of {dataset} at {real_data[dataset]}", (name, row.label)
                assert init != "scratch", (name, row.label)
