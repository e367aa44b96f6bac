"""Spec loading: defaults, overrides, the resolved round trip, and every error path naming key and file."""

import subprocess
import sys

import pytest

from sportpose.errors import SpecError
from sportpose.models import MODELS
from sportpose.paths import REPO
from sportpose.pipelines.reproduce.study import load_study
from sportpose.spec.experiment import (
    ExperimentSpec,
    apply_overrides,
    load_spec,
    read_spec_file,
    spec_from_dict,
    spec_hash,
    spec_to_dict,
    stage_order,
)
from sportpose.spec.sweep import load_sweep

MINIMAL = "name: t\nmodel: {kind: simplebaseline}\n"


def write(tmp_path, text, name="spec.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def load_error(tmp_path, text, overrides=()) -> SpecError:
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_spec(path, overrides)
    assert str(path) in str(info.value)
    return info.value


def test_every_yaml_in_experiments_loads():
    """Every YAML under experiments/ loads with its own loader: experiment specs, sweeps and paper studies (at
    each scale they declare). A file that is none of the three fails the test."""
    files = sorted((REPO / "experiments").rglob("*.yaml"))
    assert files, "experiments/ holds no specs"
    kinds = {"experiment": 0, "sweep": 0, "study": 0}
    for path in files:
        raw = read_spec_file(path)
        if "space" in raw:
            load_sweep(path)
            kinds["sweep"] += 1
        elif "rows" in raw:
            for scale in raw.get("scales", {}):
                load_study(path, scale)
            kinds["study"] += 1
        else:
            assert "model" in raw, f"{path}: neither an experiment spec, a sweep nor a study"
            assert isinstance(load_spec(path), ExperimentSpec)
            kinds["experiment"] += 1
    assert all(kinds.values()), kinds


def test_minimal_spec_fills_defaults(tmp_path):
    spec = load_spec(write(tmp_path, MINIMAL))
    assert spec.model.backbone == "resnet18"
    assert spec.data.input_size == (128, 128)
    assert list(spec.train.stages) == ["main"]
    assert spec.registered_name == "sportpose-simplebaseline"


def test_resolved_round_trip_and_hash(tmp_path):
    spec = load_spec(write(tmp_path, MINIMAL), ["train.stages.main.epochs=3"])
    again = spec_from_dict(spec_to_dict(spec))
    assert again == spec
    assert spec_hash(again) == spec_hash(spec)
    assert spec_hash(load_spec(write(tmp_path, MINIMAL))) != spec_hash(spec)


def test_overrides_parse_yaml_values(tmp_path):
    spec = load_spec(write(tmp_path, MINIMAL), ["data.input_size=[64, 96]", "train.stages.main.grad_clip=1.5",
                                               "model.width=32", "register.name=my-model"])
    assert spec.data.input_size == (64, 96)
    assert spec.train.stages["main"].grad_clip == 1.5
    assert spec.model.width == 32
    assert spec.registered_name == "my-model"


def test_override_through_a_value_is_an_error():
    with pytest.raises(SpecError, match="name"):
        apply_overrides({"name": "x"}, ["name.sub=1"], "f.yaml")
    with pytest.raises(SpecError, match="key.path=value"):
        apply_overrides({}, ["novalue"], "f.yaml")


@pytest.mark.parametrize("text, key, words", [
    (MINIMAL + "trian: {}\n", "trian", "unknown key"),
    ("name: t\nmodel: {kind: simplebaseline, widht: 3}\n", "model.widht", "unknown key"),
    (MINIMAL + "data: {windw: 3}\n", "data.windw", "unknown key"),
    (MINIMAL + "train: {stages: {main: {epoch: 3}}}\n", "train.stages.main.epoch", "unknown key"),
    (MINIMAL + "seed: one\n", "seed", "expected an integer"),
    (MINIMAL + "seed: true\n", "seed", "expected an integer"),
    (MINIMAL + "data: {input_size: 128}\n", "data.input_size", "expected a list"),
    (MINIMAL + "data: {input_size: [128]}\n", "data.input_size", "list of 2"),
    (MINIMAL + "data: {augment: {flip: 1}}\n", "data.augment.flip", "true or false"),
    (MINIMAL + "data: {on_error: ignore}\n", "data.on_error", "expected one of"),
    (MINIMAL + "data: {window: 4}\n", "data.window", "odd"),
    (MINIMAL + "data: {input_size: [100, 128]}\n", "data.input_size", "multiples of 32"),
    (MINIMAL + "data: {splits: [0.5, 0.2, 0.2]}\n", "data.splits", "summing to 1"),
    (MINIMAL + "data: {joint_set: coco}\n", "data.joint_set", "expected one of"),
    (MINIMAL + "data: {synth: {max_players: 9}}\n", "data.synth.max_players", ""),
    (MINIMAL + "train: {stages: {main: {epochs: 0}}}\n", "train.stages.main.epochs", "at least 1"),
    (MINIMAL + "train: {stages: {main: {optimizer: {lr: -1}}}}\n", "train.stages.main.optimizer.lr", "positive"),
    (MINIMAL + "train: {stages: {main: {optimizer: {kind: lamb}}}}\n", "train.stages.main.optimizer.kind", "expected one of"),
    (MINIMAL + "train: {stages: {b: {after: [a]}}}\n", "train.stages.b.after", "unknown stage"),
    (MINIMAL + "train: {stages: {a: {after: [b]}, b: {after: [a]}}}\n", "train.stages.a.after", "cycle"),
    (MINIMAL + "train: {stages: {}}\n", "train.stages", "at least one"),
    (MINIMAL + "train: {stages: {main: {cache_frozen: true}}}\n", "train.stages.main.cache_frozen", "no frozen part"),
    (MINIMAL + "data: {stream: true}\ntrain: {stages: {main: {cache_samples: true}}}\n", "train.stages.main.cache_samples",
     "a cache would freeze"),
    ("model: {kind: simplebaseline}\n", "name", "required"),
    ("name: t\n", "model", "required"),
    ("name: t\nmodel: {kind: transformer}\n", "model.kind", "expected"),
    ("name: 'a b'\nmodel: {kind: simplebaseline}\n", "name", "letters"),
    ("name: t\nmodel: {kind: simplebaseline, backbone: vgg16}\n", "model.backbone", "resnet"),
    ("- just\n- a list\n", "<root>", "mapping"),
    ("name: [unclosed\n", "<yaml>", "not valid YAML"),
    ("name: t\nmodel: {kind: simplebaseline}\ndata:\n  window: 5\n   interval: 2\n", "<yaml>", "line 5, column 12"),
])
def test_bad_specs_name_the_key_and_file(tmp_path, text, key, words):
    err = load_error(tmp_path, text)
    assert err.key == key
    assert words in err.message


def test_a_folder_or_binary_file_as_the_spec_is_one_line(tmp_path):
    with pytest.raises(SpecError, match=r"<file>: is a folder; expected a YAML spec file"):
        load_spec(tmp_path)
    (tmp_path / "model.pt").write_bytes(b"PK\x03\x04\xff\xfe\x00binary")
    with pytest.raises(SpecError, match=r"model\.pt: <file>: is not a text file"):
        load_spec(tmp_path / "model.pt")


def test_cache_frozen_only_where_the_model_has_a_frozen_part():
    """STSP-Net's lift stage keeps EPE frozen (cacheable); its epe and full stages train EPE."""
    demo = REPO / "experiments" / "stsp_demo.yaml"
    assert load_spec(demo, ["train.stages.lift.cache_frozen=true"]).train.stages["lift"].cache_frozen
    for stage in ("epe", "full"):
        with pytest.raises(SpecError) as info:
            load_spec(demo, [f"train.stages.{stage}.cache_frozen=true"])
        assert info.value.key == f"train.stages.{stage}.cache_frozen" and "cacheable tasks: ['lift']" in info.value.message


def test_freeze_layers_only_where_the_model_has_backbone_stages():
    """MultiStream freezes up to 5 backbone stages (SST stage 2); STSP-Net has no such schedule: refused up front."""
    multistream = REPO / "experiments" / "multistream_demo.yaml"
    stage = next(iter(load_spec(multistream).train.stages))
    assert load_spec(multistream, [f"train.stages.{stage}.freeze_layers=4"]).train.stages[stage].freeze_layers == 4
    with pytest.raises(SpecError) as info:
        load_spec(multistream, [f"train.stages.{stage}.freeze_layers=6"])
    assert info.value.key == f"train.stages.{stage}.freeze_layers" and "at most 5" in info.value.message
    stsp = REPO / "experiments" / "stsp_demo.yaml"
    with pytest.raises(SpecError) as info:
        load_spec(stsp, ["train.stages.lift.freeze_layers=2"])
    assert info.value.key == "train.stages.lift.freeze_layers" and "no backbone stages" in info.value.message
    assert str(stsp) in str(info.value)


def test_every_model_family_declares_what_the_stages_ask_of_it():
    for kind, cls in MODELS.items():
        for name in ("TASKS", "CACHEABLE_TASKS", "FREEZE_LAYERS", "input_names", "trainable_prefixes", "loss",
                     "loss_names", "task_metric", "metric_counts"):
            assert hasattr(cls, name), f"{kind} lacks {name} of ModelFamily"
        assert set(cls.CACHEABLE_TASKS) <= set(cls.TASKS)
        assert (cls.FREEZE_LAYERS > 0) == hasattr(cls, "freeze_prefixes")


def test_bad_override_names_the_key(tmp_path):
    err = load_error(tmp_path, MINIMAL, ["train.stages.main.epochs=zero"])
    assert err.key == "train.stages.main.epochs"


def test_missing_file(tmp_path):
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "nope.yaml")


def test_stage_order_respects_dependencies(tmp_path):
    spec = load_spec(write(tmp_path, MINIMAL + """
train:
  stages:
    joint: {after: [fuse]}
    fuse: {after: [spatial, temporal]}
    spatial: {}
    temporal: {}
"""))
    order = stage_order(spec.train.stages)
    assert order.index("fuse") > order.index("spatial") and order.index("fuse") > order.index("temporal")
    assert order[-1] == "joint"


def test_cli_misspelt_key_is_one_line_without_traceback(tmp_path):
    path = write(tmp_path, MINIMAL + "train: {stages: {main: {epohcs: 2}}}\n")
    out = subprocess.run([sys.executable, "-m", "sportpose", "train", str(path)], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert out.returncode != 0
    lines = [l for l in out.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, out.stderr
    assert "train.stages.main.epohcs" in lines[0] and str(path) in lines[0]
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("text, key", [
    ("name: t\nmodel: {kind: multistream, window: 5, input_size: [64, 64]}\ndata: {window: 3, input_size: [64, 64]}\n",
     "model.window"),
    ("name: t\nmodel: {kind: multistream, window: 3, input_size: [96, 96]}\ndata: {window: 3, input_size: [64, 64]}\n",
     "model.input_size"),
    ("name: t\nmodel: {kind: multistream, window: 3, input_size: [64, 64], context_len: 4}\n"
     "data: {window: 3, input_size: [64, 64], context_len: 2}\n", "model.context_len"),
    ("name: t\nmodel: {kind: stsp, window: 6, tau: 5}\ndata: {window: 6, tube_anchor: end}\n", "data.targets"),
])
def test_model_and_data_must_agree(tmp_path, text, key):
    assert load_error(tmp_path, text).key == key


def test_an_override_does_not_create_a_stage_the_spec_lacks(tmp_path, tiny_yaml):
    path = tmp_path / "s.yaml"
    path.write_text(tiny_yaml("sb-base"))
    with pytest.raises(SpecError, match=r"train.stages has no entry 'mian' \(it has \['main'\]\).*\+train.stages.mian") as e:
        load_spec(path, ["train.stages.mian.epochs=3"])
    assert e.value.key == "train.stages.mian"
    assert load_spec(path, ["train.stages.main.epochs=3"]).train.stages["main"].epochs == 3
    spec = load_spec(path, ["+train.stages.extra={after: [main]}"])
    assert list(spec.train.stages) == ["main", "extra"]


def test_the_default_stages_count_as_the_spec_s_own(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: x\nmodel: {kind: simplebaseline}\n")  # no train section: the default stage main
    assert load_spec(path, ["train.stages.main.epochs=2"]).train.stages["main"].epochs == 2
    with pytest.raises(SpecError, match="no entry 'other'"):
        load_spec(path, ["train.stages.other.epochs=2"])


@pytest.mark.parametrize("override, key", [
    ("train.stages.main.optimizer.lr=.inf", "train.stages.main.optimizer.lr"),
    ("train.stages.main.optimizer.lr=.nan", "train.stages.main.optimizer.lr"),
    ("train.stages.main.optimizer.weight_decay=.nan", "train.stages.main.optimizer.weight_decay"),
    ("train.stages.main.grad_clip=.inf", "train.stages.main.grad_clip"),
    ("train.stages.main.scaling.cpus_per_worker=.inf", "train.stages.main.scaling.cpus_per_worker"),
    ("train.stages.main.scaling.gpus_per_worker=-1", "train.stages.main.scaling.gpus_per_worker"),
    ("data.heatmap_sigma=.nan", "data.heatmap_sigma"),
    ("data.box_scale=-.inf", "data.box_scale"),
    ("data.splits=[.nan, 0.5, 0.5]", "data.splits.0"),
    ("evaluate.batch_size=0", "evaluate.batch_size"),
])
def test_non_finite_and_impossible_numbers_are_refused_naming_the_key(tmp_path, tiny_yaml, override, key):
    path = tmp_path / "s.yaml"
    path.write_text(tiny_yaml("sb-base"))
    with pytest.raises(SpecError) as e:
        load_spec(path, [override])
    assert e.value.key == key, str(e.value)


def test_batch_size_is_the_global_batch_and_must_divide_among_the_workers(tmp_path):
    """SPEC §6: ``batch_size`` is a step's global batch; each worker takes its share, local mode (0) is one
    process; a batch that does not divide is refused naming the key, before anything trains."""
    def stage(batch, workers):
        text = MINIMAL + f"train: {{stages: {{main: {{batch_size: {batch}, scaling: {{num_workers: {workers}}}}}}}}}\n"
        return load_spec(write(tmp_path, text)).train.stages["main"]

    assert stage(32, 4).worker_batch_size == 8
    assert stage(32, 1).worker_batch_size == 32
    assert stage(6, 0).worker_batch_size == 6  # Ray Train local mode: one process takes the whole batch
    err = load_error(tmp_path, MINIMAL + "train: {stages: {main: {batch_size: 32, scaling: {num_workers: 3}}}}\n")
    assert err.key == "train.stages.main.batch_size"
    assert "32 does not divide among scaling.num_workers = 3" in err.message


def test_every_shipped_stage_trains_the_batch_it_means():
    """The per-step batches of the shipped specs (global now; they were per worker): the papers' 32 at paper
    scale, the demos' former per-step sample counts."""
    def batches(name):
        spec = load_spec(REPO / "experiments" / name)
        return {n: (s.batch_size, s.worker_batch_size) for n, s in spec.train.stages.items()}

    assert set(batches("multistream_paper.yaml").values()) == {(32, 8)}
    assert set(batches("stsp_paper.yaml").values()) == {(32, 8)}
    assert batches("multistream_demo.yaml") == {"spatial": (32, 32), "temporal": (32, 32), "context": (32, 32),
                                                "fuse": (64, 32), "joint": (64, 32)}
    assert set(batches("stsp_demo.yaml").values()) == {(16, 8)}
    assert batches("demo.yaml") == {"main": (64, 32)}


def test_a_stage_s_metric_defaults_to_its_task_s_validation_metric(tmp_path):
    """SPEC §6: PCKh for 2D heatmap stages, MPJPE for 3D ones, the loss for self-supervised context modelling;
    a named metric must be one the stage's epochs report, else it is refused naming the key."""
    def metrics(name):
        spec = load_spec(REPO / "experiments" / name)
        return {n: (s.metric, s.mode) for n, s in spec.train.stages.items()}

    assert metrics("demo.yaml") == {"main": ("val_pckh", "max")}
    assert metrics("multistream_demo.yaml") == {
        "spatial": ("val_pckh", "max"), "temporal": ("val_pckh", "max"), "context": ("val_loss", "min"),
        "fuse": ("val_pckh", "max"), "joint": ("val_pckh", "max")}
    assert metrics("stsp_demo.yaml") == {"epe": ("val_pckh", "max"), "lift": ("val_mpjpe_mm", "min"),
                                         "full": ("val_mpjpe_mm", "min")}
    chosen = load_spec(write(tmp_path, MINIMAL + "train: {stages: {main: {metric: val_loss}}}\n"))
    assert (chosen.train.stages["main"].metric, chosen.train.stages["main"].mode) == ("val_loss", "min")
    resolved = spec_from_dict(spec_to_dict(chosen))
    assert resolved == chosen
    err = load_error(tmp_path, MINIMAL + "train: {stages: {main: {metric: val_mpjpe_mm}}}\n")
    assert err.key == "train.stages.main.metric" and "val_pckh" in err.message
