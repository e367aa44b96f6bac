"""SimpleBaseline: a single-frame heatmap model (backbone C5 -> three deconvolutions -> 1x1 head).

Xiao et al., "Simple Baselines for Human Pose Estimation and Tracking" (ECCV 2018). It is the platform's
first end-to-end model and the single-frame reference the video models are compared against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from sportpose.errors import SpecError
from sportpose.models.backbones import BACKBONES, build_backbone
from sportpose.models.family import PCKH, TaskMetric
from sportpose.models.heatmaps import heatmap_mse, normalize_images, pckh_counts


@dataclass(frozen=True)
class SimpleBaselineConfig:
    kind: Literal["simplebaseline"] = "simplebaseline"
    backbone: str = "resnet18"  # any ResNet of models.backbones
    width: int = 64  # backbone base width: 64 as torchvision; 32 makes a narrow, 4x cheaper demo model
    deconv_channels: int = 256  # the paper's 256; 128 is plenty at demo scale
    deconv_layers: int = 3  # each doubles the resolution: stride 32 -> 4
    pretrained: str | None = None  # local torchvision ImageNet ResNet, or an MMPose SimpleBaseline checkpoint

    def __post_init__(self):
        if not self.backbone.startswith("resnet") or self.backbone not in BACKBONES:
            raise SpecError("backbone", f"expected one of resnet18/34/50/101, got {self.backbone!r}")
        if self.width < 8:
            raise SpecError("width", f"must be at least 8, got {self.width}")
        if self.deconv_layers != 3:
            raise SpecError("deconv_layers", f"must be 3 (stride 32 -> 4), got {self.deconv_layers}")
        if self.deconv_channels < 1:
            raise SpecError("deconv_channels", f"must be positive, got {self.deconv_channels}")


def deconv_stack(in_channels: int, channels: int, layers: int) -> nn.Sequential:
    """``layers`` stride-2 4x4 transposed convolutions with BN and ReLU; each doubles H and W."""
    blocks: list[nn.Module] = []
    for _ in range(layers):
        blocks += [
            nn.ConvTranspose2d(in_channels, channels, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        ]
        in_channels = channels
    return nn.Sequential(*blocks)


class SimpleBaseline(nn.Module):
    """Heatmaps for the centre frame of a person crop."""

    TASKS = ("default",)
    CACHEABLE_TASKS: tuple[str, ...] = ()
    FREEZE_LAYERS = 0  # the baseline trains whole
    # models.pretrained.initialise: a torchvision ResNet, or MMPose's SimpleBaseline with its head
    PRETRAINED = {"pretrained": ("backbone", {"deconv_layers": "deconv", "final_layer": "head"})}

    def __init__(self, config: SimpleBaselineConfig, num_joints: int):
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config.backbone, width=config.width)
        self.deconv = deconv_stack(self.backbone.out_channels[-1], config.deconv_channels, config.deconv_layers)
        self.head = nn.Conv2d(config.deconv_channels, num_joints, 1)
        nn.init.normal_(self.head.weight, std=0.001)
        nn.init.zeros_(self.head.bias)

    def forward(self, inputs: dict[str, torch.Tensor], task: str = "default") -> dict[str, torch.Tensor]:
        """
        Args:
            inputs: ``image`` (B, H, W, 3) uint8, or ``tube`` (B, T, H, W, 3) uint8 whose centre frame is used.

        Returns:
            ``heatmaps`` (B, K, H/4, W/4).
        """
        image = inputs["image"] if "image" in inputs else inputs["tube"][:, inputs["tube"].shape[1] // 2]
        x = normalize_images(image)  # (B, 3, H, W)
        c5 = self.backbone(x)[-1]  # (B, C5, H/32, W/32)
        return {"heatmaps": self.head(self.deconv(c5))}  # (B, K, H/4, W/4)

    def input_names(self, task: str = "default") -> tuple[str, ...]:
        """The data columns ``forward`` reads (a tube of one or more frames; its centre frame is used)."""
        return ("tube",)

    def trainable_prefixes(self, task: str = "default") -> tuple[str, ...]:
        """Every module trains (one task)."""
        return ("",)

    def loss(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], task: str = "default"
             ) -> dict[str, torch.Tensor]:
        """Heatmap MSE weighted by the target weights."""
        return {"loss": heatmap_mse(outputs["heatmaps"], batch["heatmaps"], batch["target_weight"])}

    @classmethod
    def loss_names(cls, config: SimpleBaselineConfig, task: str = "default") -> tuple[str, ...]:
        """The keys :meth:`loss` returns."""
        return ("loss",)

    @classmethod
    def task_metric(cls, task: str = "default") -> TaskMetric:
        """PCKh@0.5 (``val_pckh``, %, maximised): a 2D heatmap model (SPEC §6)."""
        return PCKH

    def metric_counts(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], task: str = "default"
                      ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``{"pckh": (100 × correct, counted joints)}`` of a validation batch (:func:`heatmaps.pckh_counts`)."""
        hits, total = pckh_counts(outputs["heatmaps"], batch["keypoints"], batch["head_size"], batch["affine"])
        return {"pckh": (100.0 * hits, total)}
