"""STSP-Net's EPE and lifting stages on imported Human3.6M frames: the four real frames of
``../shared/fixtures/h36m`` imported as MMPose's layout (S1, S5, S7 train, S8 val), one epoch each in Ray Train's
local mode, the lifting stage reading the subjects' own bone lengths."""

from pathlib import Path

import numpy as np
import pytest

from sportpose.data.imports import run_import
from sportpose.pipelines.train import run_pipeline
from sportpose.spec.experiment import load_spec, spec_yaml
from tests.conftest import tiny_spec

H36M_FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "h36m"
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not H36M_FIXTURES.is_dir(), reason=f"the Human3.6M fixtures are not at {H36M_FIXTURES}")]


def test_epe_and_lift_stages_train_on_the_imported_frames(ray_local, runs_home, tmp_path):
    out = tmp_path / "h36m-import"
    run_import("h36m", H36M_FIXTURES, out, progress=False)
    spec_path = tmp_path / "stsp-h36m.yaml"
    spec = tiny_spec("stsp", ["name=stsp-h36m-tiny", "data.source=manifest", f"data.root={out}", "data.window=3",
                              "data.max_samples_per_clip=null", "model.window=3", "model.tau=2",
                              "train.stages={epe: {task: epe, epochs: 1, batch_size: 2, scaling: {num_workers: 0}, "
                              "metric: val_loss_heatmap}, lift: {task: lift, after: [epe], epochs: 1, batch_size: 2, "
                              "scaling: {num_workers: 0}, metric: val_mpjpe_mm}}",
                              "evaluate={split: val}"])
    spec_path.write_text(spec_yaml(spec))
    result = run_pipeline(load_spec(spec_path), log=lambda _: None)
    assert result.data_reports["train"]["samples"] == 3 and not result.data_reports["train"]["skipped"]
    assert result.data_reports["val"]["samples"] == 1
    for stage in ("epe", "lift"):
        assert np.isfinite(result.stages[stage].history[0]["loss"])
    assert "val_mpjpe_mm" in result.stages["lift"].history[0]
    assert np.isfinite(result.evaluation["mpjpe"])
