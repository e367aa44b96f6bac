"""ONNX export of a trained model's inference graph, with an onnxruntime parity check (``sportpose export``).

- **Graphs.** MultiStream (and SimpleBaseline): ``tube`` (B, T, H, W, 3) uint8 + ``context`` (B, L, Hc, Wc, 3)
  uint8 where the model has a context stream -> ``heatmaps`` (B, K, H/4, W/4). STSP-Net: ``tube`` + ``flow``
  (B, T-1, H, W, 2) float32 crop px (and ``affine`` (B, 2, 3) image -> crop, ``frame_size`` (B, 2) px for a
  model with ``frame_position``) -> ``keypoints_2d`` (B, T, J, 2) crop px and ``joints_3d`` (B, T, J, 3) mm.
  The inputs are the model's own ``input_names()`` in that order, the names the pyfunc signature uses; the
  batch axis is dynamic.
- **Exporter.** torch.onnx's TorchScript exporter (``dynamo=False``, opset 17): it needs only ``onnx``, which
  the package pins beside ``onnxruntime``; the dynamo exporter would also need onnxscript.
- **Parity.** The graph is traced on a batch of 2 and checked on a batch of 3 of other seeded inputs (so a batch
  size baked into the graph fails the check): every output's max abs difference from PyTorch must be within
  ``tolerance`` (1e-4 by default) times the output's scale, ``max(1, max |PyTorch output|)``: absolute for
  heatmaps and normalised values, relative for outputs in pixels or millimetres (STSP-Net's ``joints_3d``
  reach ~700 mm, where float32 itself rounds at ~6e-5 mm and two correct runtimes differ by ~2e-4 mm).
- **Registry.** A ``models:/`` model's file is logged as an artifact ``onnx/<file>`` of the run that logged
  the registered version, beside its ``model/`` (the registered version's ``run_id``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from torch import nn

from sportpose.errors import DataError, TrainingError
from sportpose.evaluation.complexity import example_inputs
from sportpose.paths import runs_dir
from sportpose.registry import tracking
from sportpose.registry.load import LoadedModel

OPSET = 17
TOLERANCE = 1e-4
OUTPUTS = {  # the outputs of each family's inference graph, in order
    "simplebaseline": ("heatmaps",),
    "multistream": ("heatmaps",),
    "stsp": ("keypoints_2d", "joints_3d"),
}
ARTIFACT_DIR = "onnx"


class InferenceGraph(nn.Module):
    """A model's dict forward as positional tensors in, a tuple of tensors out: the form torch.onnx traces."""

    def __init__(self, model: nn.Module, inputs: tuple[str, ...], outputs: tuple[str, ...]):
        super().__init__()
        self.model, self.inputs, self.outputs = model, inputs, outputs

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(dict(zip(self.inputs, tensors)))
        return tuple(out[name] for name in self.outputs)


@dataclass
class ExportResult:
    """What ``sportpose export`` wrote and checked."""

    path: Path
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    parity: dict[str, float]  # output name -> max abs difference onnxruntime vs PyTorch, batch of 3
    tolerance: float
    scale: dict[str, float] = field(default_factory=dict)  # output name -> max(1, max |PyTorch output|)
    artifact: str = ""  # runs:/RUN_ID/onnx/FILE where it was logged beside the registered version
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # output name -> shape at batch 3

    def allowed(self, name: str) -> float:
        """The largest difference ``name`` may show: the tolerance times the output's scale."""
        return self.tolerance * self.scale.get(name, 1.0)

    @property
    def ok(self) -> bool:
        return all(v <= self.allowed(n) for n, v in self.parity.items())

    def lines(self) -> list[str]:
        """The command's report: the file, the graph's inputs and outputs, and the parity per output."""
        out = [f"wrote {self.path} (ONNX opset {OPSET}, dynamic batch): {', '.join(self.inputs)} -> "
               f"{', '.join(self.outputs)}"]
        for name, diff in self.parity.items():
            verdict = "ok" if diff <= self.allowed(name) else "FAILS"
            scale = self.scale.get(name, 1.0)
            out.append(f"  parity {name} {self.shapes.get(name, '')}: max abs diff {diff:.3g}, relative "
                       f"{diff / scale:.3g} (tolerance {self.tolerance:g} x scale {scale:.3g}) {verdict}")
        if self.artifact:
            out.append(f"logged as {self.artifact} (the registered version's run)")
        return out


def export_onnx(loaded: LoadedModel, out: str | Path, tolerance: float = TOLERANCE) -> ExportResult:
    """Export ``loaded``'s inference graph to ``out`` and check it against PyTorch with onnxruntime.

    Raises:
        DataError: a model family without an inference graph here, or an ``out`` that cannot be written.
    """
    kind = loaded.kind
    if kind not in OUTPUTS:
        raise DataError(loaded.source, "model.kind", f"{kind!r} has no ONNX graph (exported: {', '.join(OUTPUTS)})")
    model = loaded.model.eval()
    inputs = tuple(model.input_names())
    outputs = OUTPUTS[kind]
    graph = InferenceGraph(model, inputs, outputs).eval()
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(str(out), "--out", f"cannot be written: {e.strerror}") from None
    trace = example_inputs(model, loaded.spec.data, batch=2, seed=0)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused transformer-layer kernel has no ONNX form
    try:
        with torch.no_grad():
            torch.onnx.export(graph, tuple(trace[n] for n in inputs), str(out), input_names=list(inputs),
                              output_names=list(outputs), opset_version=OPSET, dynamo=False,
                              dynamic_axes={n: {0: "batch"} for n in (*inputs, *outputs)})
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    check = example_inputs(model, loaded.spec.data, batch=3, seed=1)
    with torch.no_grad():
        expected = graph(*(check[n] for n in inputs))
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(list(outputs), {n: check[n].numpy() for n in inputs})
    parity = {n: float(np.abs(e.numpy() - g).max()) for n, e, g in zip(outputs, expected, got)}
    scale = {n: max(1.0, float(np.abs(e.numpy()).max())) for n, e in zip(outputs, expected)}
    shapes = {n: tuple(g.shape) for n, g in zip(outputs, got)}
    return ExportResult(path=out, inputs=inputs, outputs=outputs, parity=parity, tolerance=tolerance, scale=scale,
                        shapes=shapes)


def log_beside_version(loaded: LoadedModel, result: ExportResult) -> str:
    """Log the exported file to the run of ``loaded``'s registered version (``onnx/<file>``); "" for a checkpoint.

    Returns:
        ``runs:/RUN_ID/onnx/FILE``, or "" when the model is not a registered version.
    """
    run_id = loaded.registry.get("run_id", "")
    if not run_id:
        return ""
    tracking.log_artifact(run_id, result.path, ARTIFACT_DIR)
    tracking.set_tags(run_id, {f"onnx.{result.path.name}.max_abs_diff": max(result.parity.values())})
    return f"runs:/{run_id}/{ARTIFACT_DIR}/{result.path.name}"


def default_out(loaded: LoadedModel) -> Path:
    """``runs/exports/<label>.onnx``: ``sportpose-stsp-v3.onnx`` for a registered version, else the label."""
    name = loaded.label.replace(" ", "-").replace("/", "-")
    return runs_dir() / "exports" / f"{name}.onnx"


def check(result: ExportResult) -> None:
    """Raise when the parity check failed.

    Raises:
        TrainingError: an output whose difference exceeds the tolerance, naming it.
    """
    bad = {n: v for n, v in result.parity.items() if v > result.allowed(n)}
    if bad:
        raise TrainingError(f"{result.path}: onnxruntime differs from PyTorch beyond {result.tolerance:g} x the "
                            "output's scale: " + ", ".join(f"{n} {v:.3g} (allowed {result.allowed(n):.3g})"
                                                          for n, v in bad.items()))
