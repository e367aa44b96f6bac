"""evaluate3d.predict: the anchor frame's poses and EPE's 2D keypoint error beside them."""

from __future__ import annotations

import numpy as np
import torch

from sportpose.models.stsp import STSPConfig, STSPNet
from sportpose.evaluation import evaluate3d

J, SIZE = 17, 64


def _batch(b: int, t: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    keypoints = np.concatenate([rng.uniform(0, SIZE, (b, t, J, 2)), np.ones((b, t, J, 1))], -1).astype(np.float32)
    keypoints[0, -1, 3, 2] = 0.0  # one joint not labelled at the anchor frame
    joints = rng.normal(0, 200, (b, t, J, 3)).astype(np.float32)
    return {
        "tube": rng.integers(0, 256, (b, t, SIZE, SIZE, 3), dtype=np.uint8),
        "flow": rng.normal(0, 2, (b, t - 1, SIZE, SIZE, 2)).astype(np.float32),
        "keypoints": keypoints,
        "joints_3d": joints - joints[:, :, :1],
        "video": np.array(["v"] * b), "track_id": np.arange(b), "frame": np.zeros(b, dtype=np.int64),
    }


def test_predict_reports_the_2d_error_of_epe_at_the_anchor_frame():
    torch.manual_seed(0)
    model = STSPNet(STSPConfig(backbone="hrnet_w18_small", width=16, window=4, tau=2, gat_hidden=16, tmp_dim=16))
    batches = [_batch(2, 4, 0), _batch(3, 4, 1)]
    p = evaluate3d.predict(model, batches, model.input_names("full"))
    assert p.pred.shape == (5, J, 3) and p.err_2d.shape == (5, J)

    with torch.no_grad():
        kp = torch.cat([model({k: torch.from_numpy(b[k]) for k in ("tube", "flow")})["keypoints_2d"][:, -1]
                        for b in batches]).numpy()  # (5, J, 2) crop px
    labels = np.concatenate([b["keypoints"][:, -1] for b in batches])
    expected = np.linalg.norm(kp - labels[..., :2], axis=-1)
    assert np.isnan(p.err_2d[0, 3])  # not labelled: not scored
    mask = labels[..., 2] > 0
    np.testing.assert_allclose(p.err_2d[mask], expected[mask], rtol=1e-5)


def test_predict_from_2d_keypoints_has_no_2d_error():
    model = STSPNet(STSPConfig(backbone="hrnet_w18_small", width=16, window=4, tau=2, gat_hidden=16, tmp_dim=16,
                               lift_input="keypoints_2d"))
    b = _batch(2, 4, 0)
    b["keypoints_2d"] = b["keypoints"][..., :2] / SIZE * 2 - 1
    p = evaluate3d.predict(model, [b], model.input_names("lift"), task="lift")
    assert p.err_2d is None
