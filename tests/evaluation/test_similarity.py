"""Feature similarity over time (2D paper, Fig. 6): pairs of the same track k frames apart, per stream."""

import numpy as np
import pytest
import torch
from torch import nn

from sportpose.evaluation.similarity import cosine, feature_similarity, similarity_on_clips, stream_features


class Drifting(nn.Module):
    """A stand-in model whose backbone feature of frame f is (cos θf, sin θf): cosine(t, t+k) = cos(θk)."""

    class Config:
        kind = "simplebaseline"

    def __init__(self):
        super().__init__()
        self.config = self.Config()
        self.backbone = nn.Identity()

    def input_names(self):
        return ("tube",)

    def forward(self, inputs):
        angle = inputs["tube"][:, 0, 0, 0, 0].float() * 0.1  # the frame index is written in the first pixel
        return {"heatmaps": self.backbone(torch.stack([angle.cos(), angle.sin()], dim=1)[:, :, None, None])}


def test_cosine_similarity_of_pairs_k_frames_apart():
    frames = np.arange(20)
    batch = {"tube": np.zeros((20, 1, 2, 2, 3), np.uint8), "video": np.array(["v"] * 20),
             "track_id": np.zeros(20, int), "frame": frames}
    batch["tube"][:, 0, 0, 0, 0] = frames
    result = feature_similarity(Drifting(), [batch], gaps=(1, 4, 16, 32))
    assert result["gaps"] == [1, 4, 16] and result["pairs"] == {1: 19, 4: 16, 16: 4}
    for k in (1, 4, 16):
        assert result["curves"]["backbone"][k] == pytest.approx(np.cos(0.1 * k), abs=1e-5)
    assert cosine(np.zeros(3), np.ones(3)) == 0.0


def test_multistream_streams_and_stsp_backbone_features():
    from sportpose.models.multistream import MultiStream, MultiStreamConfig
    from sportpose.models.stsp import STSPConfig, STSPNet, complexity_inputs

    config = MultiStreamConfig(width=8, fpn_channels=16, deconv_channels=16, diff_channels=8, tcm_channels=16,
                               tcm_blocks=1, context_hidden=16, context_heads=2, context_len=2, context_size=(32, 32),
                               input_size=(32, 32), window=3, fusion="late")
    model = MultiStream(config, 17).eval()
    inputs = {"tube": torch.randint(0, 255, (2, 3, 32, 32, 3), dtype=torch.uint8),
              "context": torch.randint(0, 255, (2, 2, 32, 32, 3), dtype=torch.uint8)}
    feats = stream_features(model, inputs)
    assert set(feats) == {"spatial", "temporal", "context"}
    assert feats["spatial"].shape == (2, 16 * 8 * 8) and feats["context"].shape == (2, 16)
    stsp = STSPNet(STSPConfig(backbone="hrnet_w18_small", width=8, window=3, tau=2, gat_layers=1, gat_hidden=16,
                              tmp_dim=16, tmp_heads=2)).eval()
    feats = stream_features(stsp, complexity_inputs(stsp.config, 2, (32, 32)))
    assert set(feats) == {"backbone"} and feats["backbone"].shape[0] == 2


def test_similarity_on_synthcourt_clips(tiny_synth, tiny_checkpoint):
    from sportpose.data.dataset import load_clips
    from sportpose.registry.load import load_model

    loaded = load_model(str(tiny_checkpoint))
    clips = load_clips(tiny_synth, (0.0, 0.0, 1.0), seed=0)
    result = similarity_on_clips(loaded.model, loaded.spec, clips, max_clips=1, gaps=(1, 2, 4, 8, 16))
    assert result["gaps"] == [1, 2, 4, 8]  # 16 frames: no pair 16 apart
    assert all(0 < v <= 1 for v in result["curves"]["backbone"].values())
    assert result["clips"] == [clips[0]["name"]] and "Pairs per gap" in result["pairs_note"]
