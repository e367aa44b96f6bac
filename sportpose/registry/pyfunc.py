"""The registered model: an MLflow pyfunc defined from code (MLflow's models-from-code).

MLflow logs this file as the model's code, with two artifacts: the resolved experiment spec (YAML) and the
model's state dict. Loading rebuilds the network from the spec and loads the weights with
``torch.load(weights_only=True)``, so loading a registered model never unpickles code, and the object a
user gets back is the project's own ``nn.Module`` (``unwrap_python_model().model``), not a traced graph.

``predict`` takes a dict of arrays named after the model's inputs (``tube`` (B, T, H, W, 3) uint8, and
``context`` for MultiStream or ``flow`` for STSP-Net) and returns a dict: for the 2D models ``keypoints``
(B, K, 2) in crop pixels, ``scores`` (B, K) and ``heatmaps`` (B, K, H/4, W/4); for STSP-Net ``joints_3d``
(B, T, J, 3) in mm and ``keypoints`` (B, T, J, 2).
"""

import warnings

import mlflow
import numpy as np
import torch
import yaml
from mlflow.pyfunc import PythonModel

from sportpose.models.heatmaps import decode_heatmaps, heatmap_to_crop
from sportpose.spec.experiment import spec_from_dict

# Inputs are validated against the logged tensor signature; type-hint validation does not apply to a dict
# of arrays, and MLflow warns about its absence on every load.
warnings.filterwarnings("ignore", message=".*Add type hints to the `predict` method")


class SportposeModel(PythonModel):
    def load_context(self, context):
        with open(context.artifacts["spec"]) as f:
            self.spec = spec_from_dict(yaml.safe_load(f))
        self.model = self.spec.build_model()
        state = torch.load(context.artifacts["weights"], map_location="cpu", weights_only=True)
        self.model.load_state_dict(state)
        self.model.eval()

    def predict(self, context, model_input, params=None):
        inputs = {k: torch.from_numpy(np.array(v)) for k, v in dict(model_input).items()}  # writable copies
        with torch.no_grad():
            out = self.model(inputs)
        if "joints_3d" in out:  # STSP-Net: 3D joints (mm, root-relative) and 2D keypoints per tube frame
            return {
                "joints_3d": out["joints_3d"].numpy().astype(np.float32),  # (B, T, J, 3)
                "keypoints": out["keypoints_2d"].numpy().astype(np.float32),  # (B, T, J, 2) crop pixels
            }
        heatmaps = out["heatmaps"]  # (B, K, H/4, W/4)
        coords, scores = decode_heatmaps(heatmaps)
        return {
            "keypoints": heatmap_to_crop(coords, 4).numpy().astype(np.float32),  # (B, K, 2)
            "scores": scores.numpy().astype(np.float32),  # (B, K)
            "heatmaps": heatmaps.numpy().astype(np.float32),
        }


mlflow.models.set_model(SportposeModel())
