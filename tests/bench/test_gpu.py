"""bench/gpu.py: its GPU code path run on the CPU with tiny shapes, and its one line on a machine without a GPU."""

import os
import subprocess
import sys

import pytest
import torch

from sportpose.paths import REPO

SCRIPT = REPO / "bench" / "gpu.py"


def _run(tmp_path, *args: str) -> list[str]:
    env = {**os.environ, "SPORTPOSE_RUNS": str(tmp_path), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()


def test_tiny_cpu_run_measures_every_figure(tmp_path):
    lines = _run(tmp_path, "--device", "cpu", "--tiny")
    pairs = dict(item.split("=", 1) for item in lines[-1].split())
    assert lines[-1].startswith("cores_per_gpu=")
    for key in ("multistream_fps", "multistream_fps_bf16", "stsp_fps", "stsp_fps_bf16", "train_samples_per_s_bf16",
                "tubes_per_s_per_core", "cores_per_gpu"):
        assert float(pairs[key]) > 0, key
    assert pairs["device"] == "cpu" and pairs["tiny"] == "1"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the bench measures instead")
def test_without_a_gpu_one_line_and_exit_0(tmp_path):
    lines = _run(tmp_path)
    assert len(lines) == 1 and lines[0].startswith("no CUDA GPU on this machine")
