"""``sportpose export``: both families' inference graphs as ONNX, dynamic batch, onnxruntime within 1e-4 of
PyTorch, and the file logged beside the registered version."""

import onnx
import pytest
import torch

from sportpose.cli.main import main
from sportpose.registry import register, tracking
from sportpose.spec.experiment import spec_yaml
from tests.conftest import TINY_STSP, TINY_VARIANTS, seeded_model, tiny_spec


def _checkpoint(folder, spec, scale: float | None = None):
    """A checkpoint of ``spec``'s model, its weights drawn at ``scale`` (He-like) where given, so that outputs are
    far above 1e-4 (an untrained MultiStream's heatmaps are about 1e-4 themselves and would pass any parity
    check; an untrained STSP-Net's keypoints span the crop)."""
    folder.mkdir(parents=True)
    (folder / "spec.yaml").write_text(spec_yaml(spec))
    torch.save({"model": seeded_model(spec, scale).state_dict()}, folder / "checkpoint.pt")
    return folder


def _parity(text: str) -> dict[str, float]:
    rows = [line.split() for line in text.splitlines() if line.strip().startswith("parity")]
    return {r[1]: float(r[r.index("relative") + 1]) for r in rows}  # the difference over the output's scale


@pytest.mark.integration
def test_multistream_tube_and_context_to_heatmaps(tmp_path, capsys):
    kind, base = TINY_VARIANTS["ms"]
    folder = _checkpoint(tmp_path / "ms", tiny_spec(kind, base), 1.2)
    out = tmp_path / "ms.onnx"
    assert main(["export", str(folder), "--format", "onnx", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    graph = onnx.load(str(out)).graph
    assert [i.name for i in graph.input] == ["tube", "context"] and [o.name for o in graph.output] == ["heatmaps"]
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"  # dynamic batch
    parity = _parity(text)
    assert set(parity) == {"heatmaps"} and parity["heatmaps"] <= 1e-4, text
    assert "(3, 17, 16, 16)" in text  # checked at a batch other than the traced one


@pytest.mark.integration
def test_stsp_registered_version_exports_2d_and_3d_and_logs_the_file_beside_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("SPORTPOSE_RUNS", str(tmp_path))
    folder = _checkpoint(tmp_path / "stsp", tiny_spec("stsp", TINY_STSP))
    torch.save(torch.load(folder / "checkpoint.pt", weights_only=True)["model"], folder / "weights.pt")
    run_id = tracking.start_run("tiny-stsp", "register")
    register.log_and_register(run_id, "sportpose-stsp", folder / "spec.yaml", folder / "weights.pt", None, None,
                              "mpjpe", 1.0, "min", "data")
    assert main(["export", "models:/sportpose-stsp@champion"]) == 0
    text = capsys.readouterr().out
    out = tmp_path / "exports" / "sportpose-stsp-v1.onnx"
    graph = onnx.load(str(out)).graph
    assert [i.name for i in graph.input] == ["tube", "flow", "affine", "frame_size"]
    assert [o.name for o in graph.output] == ["keypoints_2d", "joints_3d"]
    parity = _parity(text)
    assert set(parity) == {"keypoints_2d", "joints_3d"} and max(parity.values()) <= 1e-4, text
    logged = [f.path for f in tracking.client().list_artifacts(run_id, "onnx")]
    assert logged == ["onnx/sportpose-stsp-v1.onnx"] and f"runs:/{run_id}/onnx/sportpose-stsp-v1.onnx" in text
