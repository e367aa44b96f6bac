"""The registered model: an MLflow pyfunc defined from code (MLflow's models-from-code).

MLflow logs this file as the model's code, with two artifacts: the resolved experiment spec (YAML) and the
model's state dict. Loading rebuilds the network from the spec and loads the weights with
``torch.load(weights_only=True)``, so loading a registered model never unpickles code, and the object a
user gets back is the project's own ``nn.Module`` (``unwrap_python_model().model``), not a traced graph.

``predict`` takes a dict of arrays named after the model's inputs (``tube`` (B, T, H, W, 3) uint8, and
``context`` for MultiStream or ``flow`` for STSP-Net) and returns a dict: for the 2D models ``keypoints``
(B, K, 2) in crop pixels, ``scores`` (B, K) and ``heatmaps`` (B, K, H/4, W/4); for STSP-Net ``joints_3d``
(B, T, J, 3) in mm and ``keypoints`` (B, T, J, 2).

Frame coordinates: the caller who cut the crops passes their affines, the 2x3 frame -> crop pixel matrices
(``cv2.warpAffine``'s ``M``), as the param ``affine``: 6 numbers per tube, row-major, or 6 for every tube
(``params={"affine": [...]}``; in a request to ``/invocations``, ``"params": {"affine": [...]}``). The output then
also holds ``keypoints_frame``, the keypoints in frame pixels, the same shape as ``keypoints``. An STSP-Net that
reads where its crop sits (``frame_position``) has ``affine`` (B, 2, 3) among its inputs already and always
returns ``keypoints_frame``. A param rather than an input because MLflow's tensor inputs cannot be optional.
"""

import warnings

import mlflow
import numpy as np
import torch
import yaml
from mlflow.pyfunc import PythonModel
from mlflow.types.schema import ParamSchema, ParamSpec

from sportpose.models.heatmaps import decode_heatmaps, heatmap_to_crop
from sportpose.spec.experiment import spec_from_dict

# Inputs are validated against the logged tensor signature; type-hint validation does not apply to a dict
# of arrays, and MLflow warns about its absence on every load.
warnings.filterwarnings("ignore", message=".*Add type hints to the `predict` method")

# The signature's params: the crop affines (empty: keypoints in crop pixels only)
PARAMS = ParamSchema([ParamSpec("affine", "double", [], (-1,))])


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
        batch = next(iter(inputs.values())).shape[0]
        affine = crop_affines((params or {}).get("affine"), inputs.get("affine"), batch)
        with torch.no_grad():
            out = self.model(inputs)
        if "joints_3d" in out:  # STSP-Net: 3D joints (mm, root-relative) and 2D keypoints per tube frame
            result = {
                "joints_3d": out["joints_3d"].numpy().astype(np.float32),  # (B, T, J, 3)
                "keypoints": out["keypoints_2d"].numpy().astype(np.float32),  # (B, T, J, 2) crop pixels
            }
        else:
            heatmaps = out["heatmaps"]  # (B, K, H/4, W/4)
            coords, scores = decode_heatmaps(heatmaps)
            result = {
                "keypoints": heatmap_to_crop(coords, 4).numpy().astype(np.float32),  # (B, K, 2)
                "scores": scores.numpy().astype(np.float32),  # (B, K)
                "heatmaps": heatmaps.numpy().astype(np.float32),
            }
        if affine is not None:
            result["keypoints_frame"] = crop_to_frame(result["keypoints"], affine)
        return result


def crop_affines(param, tensor, batch: int) -> np.ndarray | None:
    """(B, 2, 3) frame -> crop affines from the ``affine`` param (6 numbers per tube or 6 for all) or the model's
    own ``affine`` input; None when neither is given.

    Raises:
        ValueError: the param does not hold 6 or 6 x batch numbers (MLflow's server answers it as a bad request).
    """
    if param is not None and len(param):
        values = np.asarray(param, np.float64).reshape(-1)
        if values.size not in (6, 6 * batch):
            raise ValueError(f"params.affine: expected 6 numbers (one 2x3 frame -> crop matrix for every tube) or "
                             f"6 x {batch} (one per tube), got {values.size}")
        return np.broadcast_to(values.reshape(-1, 2, 3), (batch, 2, 3))
    if tensor is not None:
        return tensor.numpy().astype(np.float64).reshape(batch, 2, 3)
    return None


def crop_to_frame(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Crop pixels -> frame pixels: ``points`` (B, ..., 2) through the inverse of each tube's ``affine`` (B, 2, 3)."""
    flat = points.reshape(points.shape[0], -1, 2).astype(np.float64)  # (B, N, 2)
    inverse = np.linalg.inv(affine[:, :, :2])  # (B, 2, 2)
    frame = np.einsum("bij,bnj->bni", inverse, flat - affine[:, None, :, 2])
    return frame.reshape(points.shape).astype(np.float32)


mlflow.models.set_model(SportposeModel())
