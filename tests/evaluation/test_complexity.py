"""The complexity counter: exact MACs of known layers, and batch-1 inputs shaped as a spec cuts samples."""

import torch
from torch import nn

from sportpose.evaluation.complexity import complexity, example_inputs


class Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 32)

    def forward(self, inputs):
        return self.fc(inputs["x"])


def test_macs_of_a_linear_layer_are_exact():
    row = complexity(Linear(), {"x": torch.zeros(1, 64)}, runs=2)
    assert row["gmacs"] * 1e9 == 64 * 32 and row["gflops"] == 2 * row["gmacs"]
    assert row["params_m"] * 1e6 == 64 * 32 + 32
    assert row["latency_ms"] > 0 and row["fps"] == 1000 / row["latency_ms"]


def test_example_inputs_follow_the_model_and_the_data_section(tiny_checkpoint, stsp_checkpoint):
    from sportpose.registry.load import load_model

    loaded = load_model(str(tiny_checkpoint))
    inputs = example_inputs(loaded.model, loaded.spec.data)
    assert set(inputs) == {"tube"} and inputs["tube"].shape == (1, 1, 64, 64, 3)
    stsp = load_model(str(stsp_checkpoint))
    inputs = example_inputs(stsp.model, stsp.spec.data)
    assert inputs["tube"].shape == (1, 3, 64, 64, 3) and inputs["flow"].shape == (1, 2, 64, 64, 2)
    row = complexity(stsp.model, inputs, runs=1)
    assert row["gmacs"] > 0
