"""evaluate3d.predict: the anchor frame's poses, TMP run along each track, and EPE's 2D keypoint error."""

from __future__ import annotations

import numpy as np
import torch

from sportpose.evaluation import evaluate3d
from sportpose.models.stsp import STSPConfig, STSPNet

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


def _track_samples(tracks: dict[int, int], t: int, seed: int) -> list[dict]:
    """One sample per anchor: ``tracks`` maps a track id to its number of anchors (frames 0, 1, ...); each tube
    ends at its anchor, clamped at the clip's start, with its own random 2D input (a crop of its own)."""
    rng = np.random.default_rng(seed)
    rows = []
    for track, n in tracks.items():
        for f in range(n):
            joints = rng.normal(0, 200, (t, J, 3)).astype(np.float32)
            rows.append({"keypoints_2d": rng.uniform(-1, 1, (t, J, 2)).astype(np.float32),
                         "joints_3d": joints - joints[:, :1], "video": "v", "track_id": track, "frame": f,
                         "tube_frames": np.maximum(np.arange(f - t + 1, f + 1), 0)})
    return rows


def _batches(rows: list[dict], size: int) -> list[dict[str, np.ndarray]]:
    return [{k: np.stack([np.asarray(r[k]) for r in rows[i : i + size]]) for k in rows[0]}
            for i in range(0, len(rows), size)]


def _lifter(t: int = 4, tau: int = 2) -> STSPNet:
    torch.manual_seed(0)
    model = STSPNet(STSPConfig(backbone="hrnet_w18_small", width=8, window=t, tau=tau, gat_hidden=16, tmp_dim=16,
                               lift_input="keypoints_2d"))
    with torch.no_grad():  # a TMP whose corrections are large enough to tell histories apart
        model.tmp.predict[-1].weight.mul_(300.0)
    return model.eval()


def _by_sample(p: evaluate3d.Predictions3D) -> dict[tuple[int, int], np.ndarray]:
    return {(int(k), int(f)): x for k, f, x in zip(p.info["track_id"], p.info["frame"], p.pred)}


def test_tmp_reads_the_models_own_previous_outputs_along_the_track():
    """Anchors one frame apart (each tube adds one frame): the anchor's TMP reads the outputs predict gave the
    same track's previous anchors, not its own tube's GSR poses; a track's first anchor has only its tube."""
    t, tau = 4, 2
    model = _lifter(t, tau)
    rows = _track_samples({0: 6}, t, seed=0)
    p = evaluate3d.predict(model, _batches(rows, 4), ("keypoints_2d",), task="lift")
    pred = _by_sample(p)
    with torch.no_grad():
        for f, row in enumerate(rows):
            out = model({"keypoints_2d": torch.from_numpy(row["keypoints_2d"])[None]}, task="lift")
            alone = out["joints_3d"][0, -1].numpy()  # the tube on its own: TMP over its own GSR poses
            if f == 0:
                np.testing.assert_allclose(pred[(0, 0)], alone, rtol=1e-5, atol=1e-3)
                continue
            slots = [int(row["tube_frames"][0]) - tau + s for s in range(tau)] + list(row["tube_frames"])
            history = np.full((tau + t, J, 3), np.nan, np.float32)  # frames before the tube, then its own
            for q, frame in enumerate(slots):
                if 0 <= frame < f:  # the outputs of the track's earlier frames (before the clip: none)
                    history[q] = pred[(0, frame)]
            joints, _ = model.refine(torch.from_numpy(history)[None], out["joints_3d_gsr"], out["nodes_gsr"])
            np.testing.assert_allclose(pred[(0, f)], joints[0, -1].numpy(), rtol=1e-5, atol=1e-3)
            assert np.abs(pred[(0, f)] - alone).max() > 1.0  # the history changed the pose
    np.testing.assert_allclose(p.pred_gsr, np.stack([model({"keypoints_2d": torch.from_numpy(r["keypoints_2d"])[None]},
                               task="lift")["joints_3d_gsr"][0, -1].detach().numpy() for r in rows]), atol=1e-3)


def test_tracks_in_any_order_and_interleaved_give_the_same_poses():
    t = 4
    model = _lifter(t)
    rows = _track_samples({0: 5, 1: 7}, t, seed=1)
    alone = {}
    for track in (0, 1):
        part = [r for r in rows if r["track_id"] == track]
        alone |= _by_sample(evaluate3d.predict(model, _batches(part, 3), ("keypoints_2d",), task="lift"))
    shuffled = [rows[i] for i in np.random.default_rng(0).permutation(len(rows))]
    for order, size in ((rows, 12), (shuffled, 5), (shuffled[::-1], 1)):
        both = _by_sample(evaluate3d.predict(model, _batches(order, size), ("keypoints_2d",), task="lift"))
        assert both.keys() == alone.keys()
        for key in alone:
            np.testing.assert_allclose(both[key], alone[key], rtol=1e-5, atol=1e-3, err_msg=str(key))


def test_evaluation_is_causal_along_the_track():
    """Changing a later anchor's tube changes nothing before it; it does change that anchor and the ones after."""
    t = 4
    model = _lifter(t)
    rows = _track_samples({0: 8}, t, seed=2)
    before = _by_sample(evaluate3d.predict(model, _batches(rows, 8), ("keypoints_2d",), task="lift"))
    changed = [dict(r) for r in rows]
    changed[5]["keypoints_2d"] = changed[5]["keypoints_2d"] * 0.5
    after = _by_sample(evaluate3d.predict(model, _batches(changed, 8), ("keypoints_2d",), task="lift"))
    for f in range(5):
        np.testing.assert_allclose(after[(0, f)], before[(0, f)], rtol=1e-5, atol=1e-3)
    assert np.abs(after[(0, 5)] - before[(0, 5)]).max() > 1.0  # its own tube
    assert np.abs(after[(0, 6)] - before[(0, 6)]).max() > 0.1  # through the history it reads (float noise: 1e-4)
