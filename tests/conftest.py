"""Shared fixtures: one local Ray for every integration test, a private runs/ folder per session, a tiny SynthCourt
set and untrained models saved as checkpoints with their specs (an untrained model is enough for formats,
consistency and memory; nothing is trained)."""

import os
from pathlib import Path

import pytest
import torch

from sportpose.data.synthcourt import generate
from sportpose.paths import EXPERIMENTS, REPO
from sportpose.spec.experiment import load_spec, spec_yaml

FIXTURES = REPO.parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def runs_home(tmp_path_factory):
    """A runs/ folder (MLflow SQLite database, checkpoints, data) private to this test session."""
    home = tmp_path_factory.mktemp("runs")
    old = {k: os.environ.get(k) for k in ("SPORTPOSE_RUNS", "MLFLOW_TRACKING_URI")}
    os.environ["SPORTPOSE_RUNS"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield home
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def ray_local(runs_home):
    """A local Ray with this machine's CPUs, shared by the session (starting Ray costs seconds)."""
    from sportpose.platform.runtime import init_ray, shutdown_ray

    init_ray()
    yield
    shutdown_ray()


TINY_BASE = EXPERIMENTS / "paper" / "base"  # the tiny specs every test and bench starts from, with overrides
# Two SynthCourt clips of 16 frames (160x120; a sideline and a baseline clip, a child and an adult one), all test
TINY_CLIPS = ["data.synth={clips: 2, frames: 16, width: 160, height: 120, max_players: 2, views: [sideline, baseline], "
              "blur: [none, low], child_fraction: 0.5, seed: 5}", "data.splits=[0.0, 0.0, 1.0]"]
TINY_2D = ["name=tiny-infer", *TINY_CLIPS, "train.stages.main.epochs=1", "train.stages.main.scaling.num_workers=1"]
TINY_STSP = ["name=tiny-stsp", *TINY_CLIPS, "data.input_size=[64, 64]", "data.window=3", "data.flow=dis",
             "data.frame_stride=2", "data.max_samples_per_clip=null", "model.window=3", "model.tau=2",
             "model.gat_layers=1",
             "train.stages={main: {task: full, epochs: 1, batch_size: 8, scaling: {num_workers: 1}}}",
             "register={name: sportpose-stsp, metric: mpjpe, mode: min}", "evaluate={}"]


# Named variants of the tiny specs shared by several test files (the base file, then its overrides).
TINY_VARIANTS = {
    "sb-base": ("simplebaseline", []),
    "sb": ("simplebaseline", ["name=tiny-sb", "train.stages.main.scaling.num_workers=1", "register={enabled: false}"]),
    "ms": ("multistream", ["name=tiny-ms", "data.synth={clips: 2, frames: 12, width: 160, height: 120, max_players: 2, "
                                          "seed: 1}", "data.splits=[0.0, 1.0, 0.0]", "data.context_len=4",
                           "data.input_size=[64, 64]", "data.context_size=[64, 64]", "data.max_samples_per_clip=null",
                           "model={kind: multistream, width: 16, fpn_channels: 32, deconv_channels: 16, "
                           "context_hidden: 32, context_len: 4, window: 3, input_size: [64, 64], "
                           "context_size: [64, 64], tcm_channels: 32, diff_channels: 16, context_layers: 1, "
                           "context_heads: 4, fusion: hybrid}",
                           "train.stages={fused: {task: fused, epochs: 1, scaling: {num_workers: 1}}}",
                           "register={enabled: false}", "evaluate={}"]),
}


@pytest.fixture(scope="session")
def tiny_yaml():
    """``tiny_yaml(variant, *overrides)``: the resolved YAML of a :data:`TINY_VARIANTS` spec, to write as a file."""
    def make(variant: str, *overrides: str) -> str:
        kind, base = TINY_VARIANTS[variant]
        return spec_yaml(tiny_spec(kind, [*base, *overrides]))
    return make


def seeded_model(spec, scale: float | None = None) -> torch.nn.Module:
    """``spec``'s model drawn from seed 0, its weight matrices at ``scale`` (He-like) where given, so that outputs
    are far from an untrained network's near-zero heatmaps (a parity or equality check on those would pass on
    anything)."""
    torch.manual_seed(0)
    model = spec.build_model()
    if scale:
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() > 1:
                    p.normal_(0.0, scale / p[0].numel() ** 0.5)
    return model


def tiny_spec(kind: str, overrides: list[str] = ()):
    """``experiments/paper/base/<kind>_tiny.yaml`` with ``overrides`` (kind: simplebaseline, multistream, stsp)."""
    return load_spec(TINY_BASE / f"{kind}_tiny.yaml", list(overrides))


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory) -> Path:
    """Two SynthCourt clips of 16 frames (160x120; a sideline and a baseline clip, a child and an adult one)."""
    root = tmp_path_factory.mktemp("tiny_synth")
    generate(root, tiny_spec("simplebaseline", TINY_CLIPS).data.synth, progress=False)
    return root


def _checkpoint(folder: Path, kind: str, overrides: list[str], root: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.yaml").write_text(spec_yaml(tiny_spec(kind, [*overrides, f"data.root={root}"])))
    spec = load_spec(folder / "spec.yaml")
    torch.manual_seed(0)
    model = spec.build_model()
    torch.save({"model": model.state_dict(), "epoch": 0}, folder / "checkpoint.pt")
    return folder


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_synth) -> Path:
    """An untrained SimpleBaseline (64x64 crops) as ``checkpoint.pt`` with its ``spec.yaml`` beside it."""
    return _checkpoint(tmp_path_factory.mktemp("ckpt2d") / "model", "simplebaseline", TINY_2D, tiny_synth)


@pytest.fixture(scope="session")
def stsp_checkpoint(tmp_path_factory, tiny_synth) -> Path:
    """An untrained, narrow STSP-Net (T=3, τ=2, 64x64, GSR reading where crops sit in the frame) as
    ``checkpoint.pt`` with its ``spec.yaml`` beside it."""
    return _checkpoint(tmp_path_factory.mktemp("ckpt3d") / "model", "stsp", TINY_STSP, tiny_synth)


@pytest.fixture(scope="session")
def gt_detections():
    """``gt_detections(annotation, out)``: a COCO-results detections file made from a PoseTrack18 ground truth's
    person boxes (score 1)."""
    import json

    def make(annotation: Path, out: Path) -> Path:
        data = json.loads(Path(annotation).read_text())
        dets = [{"image_id": a["image_id"], "bbox": a["bbox"], "score": 1.0, "category_id": 1}
                for a in data["annotations"] if a.get("bbox")]
        out.write_text(json.dumps(dets))
        return out

    return make


@pytest.fixture
def small_disk(tmp_path):
    """``small_disk(kb, read_only=False)``: a real file system of ``kb`` KiB (a tmpfs mounted under tmp_path), to
    meet a full disk or a read-only one as a user would; skipped where this process may not mount."""
    import subprocess

    mounted = []

    def make(kb: int, read_only: bool = False) -> Path:
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        opts = f"size={kb}k" + (",ro" if read_only else "")
        if subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(point)], capture_output=True).returncode:
            pytest.skip("cannot mount a tmpfs here (needs root)")
        mounted.append(point)
        return point

    yield make
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


@pytest.fixture(scope="session")
def doubtful_synth(tmp_path_factory):
    """Three SynthCourt clips of 6 frames with a zero-area and a negative person box in clip 0 and clip 1's video
    cut to 3 frames; returns the folder and the annotation files of clips 0 and 1."""
    import json

    import cv2

    from sportpose.spec.data import SynthConfig

    folder = tmp_path_factory.mktemp("doubtful")
    generate(folder, SynthConfig(clips=3, frames=6, width=160, height=120, max_players=2, seed=5), progress=False)
    manifest = json.loads((folder / "manifest.json").read_text())
    ann = folder / manifest["clips"][0]["annotations"]
    doc = json.loads(ann.read_text())
    doc["annotations"][0]["bbox"][2] = 0.0
    doc["annotations"][1]["bbox"][3] = -5.0
    ann.write_text(json.dumps(doc))
    video = folder / manifest["clips"][1]["video"]
    cap = cv2.VideoCapture(str(video))
    frames = [cap.read()[1] for _ in range(3)]
    cap.release()
    out = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 25, (frames[0].shape[1], frames[0].shape[0]))
    for f in frames:
        out.write(f)
    out.release()
    return folder, [str(ann), str(folder / manifest["clips"][1]["annotations"])]
