"""STSP-Net: 3D pose from monocular video through EPE -> GSR -> TMP (SPEC §5).

Liu et al., "STSP-Net: A Spatial-Temporal Skeletal Perception Network for Robust 3D Pose Estimation in
Children's Sports" (JISEM 2025). Three modules, each a block below:

- **EPE** (efficient pose extraction): HRNet features ``F_t`` at stride 4, scaled by the motion-saliency
  weights ``W_t = 1 + γ·exp(λ·Ŝ_t)`` from the optical flow into frame t, a 1x1 heatmap head and a soft-argmax.
- **GSR** (graph-based skeletal representation): per frame, one node per joint with its normalised 2D
  position and the enhanced feature sampled there; masked graph attention over the H36M skeleton (edges plus
  self-loops); ``Φ_3D`` regresses root-relative 3D joints.
- **TMP** (temporal motion perception): for each frame t, the model's own τ previous 3D outputs for the person
  are encoded (linear + learned temporal position encoding) into keys and values; the current frame's node
  features query them (multi-head cross-attention); ``P̂_t = P_3D^t + Φ_pred([h'_t; A_t])``. It runs causally
  along a person's track (:meth:`STSPNet.refine`, :class:`TrackHistory`).

Decisions where the paper and SPEC are silent:

- **Frame alignment.** A tube holds T consecutive crops (``data.interval`` frames apart); the *current* frame is
  the last one (t = T−1). Every frame gets heatmaps, 2D keypoints, a GSR pose and a TMP output, and every
  target in the batch is per frame, aligned by index.
- **TMP along a track** (issue 21). The paper's TMP reads "the previous τ 3D poses" of the person: the model's
  own earlier outputs. Reading the GSR poses of the anchor's own tube instead gave neighbouring anchors
  histories from different crops, and TMP added acceleration between anchors instead of removing it (demo: TS
  94.06 mm/frame² with TMP, 91.22 without). So TMP runs causally over the frames of a track, each frame
  reading the model's outputs (``joints_3d``) at the τ frames before it:

  - *History spacing*: every frame of the tube grid, ``data.interval`` frames apart (1 in every shipped spec),
    at training and at inference alike; not the anchor spacing ``data.frame_stride``, which a T-frame tube
    cannot hold τ steps of. Evaluation therefore computes every frame of a track, not only the anchors: each
    anchor's tube contributes its frames after the last frame the track already has an output for (its last
    ``frame_stride`` frames when anchors are ``frame_stride`` apart), computed from that tube's crops
    (:class:`TrackHistory`); the video inferencer, whose anchors are every frame, computes one frame per tube.
  - *Training* (teacher forcing with the model's own detached outputs): GSR runs over the tube's T frames,
    then TMP over frames 1 … T−1 in time order, frame k reading the detached outputs of frames k−τ … k−1
    computed just before it. Detached outputs rather than ground truth, because at inference the history is
    the model's outputs, with their errors (a TMP trained on clean or synthetically noised ground truth learns
    to trust a history that is never that good); detached so that the cost stays T−1 small TMP calls with no
    backpropagation through time. Every refined frame gets L_seq, and L_vel / L_acc run over the refined
    trajectory, so TMP is trained to make its own successive outputs smooth, which is what TS measures.
  - *Track starts*: a frame with fewer than τ earlier outputs repeats the earliest one in its missing (leading)
    slots, as the data side clamps a tube at a clip's start; the first frame of a track, which has none, keeps
    its GSR pose. Training tubes start that way (no outputs before their frame 0), so every such case is
    trained.
- **Flow of frame 0.** ``flow[:, k]`` goes from frame k to k+1, so frame t >= 1 uses the flow into it,
  ``flow[:, t−1]``. Frame 0 has no incoming flow; it uses the flow out of it, ``flow[:, 0]``: the same
  moving regions one frame later, a better proxy than no enhancement (which would give frame 0 a different
  feature scale from the others).
- **Saliency normalisation.** ``Ŝ_t = S_t / max(max S_t, saliency_floor)``, after average-pooling the flow
  magnitude to the feature map: in [0, 1], 0 where nothing moves, finite for any flow; the floor (1 px by
  default) keeps a frame with only sub-pixel flow noise from being stretched to full saliency.
- **Units.** GSR and TMP regress metres (``POSE_UNIT_MM`` = 1000) so that targets are O(1); outputs are mm.
  The 3D losses are computed in metres (radians for the angle hinge) so that weights of 1 balance
  them against the heatmap MSE; ``L_smooth`` is computed on keypoints in normalised crop coordinates
  ([-1, 1]) so that α means the same at every crop size. Diagnostics ``mpjpe_mm`` / ``mpjpe_gsr_mm`` are mm.
- **TMP's tokens.** Each past pose is encoded as its displacement from the current frame's GSR pose,
  ``Φ_enc(P̂_{t−i} − P_3D^t)``, not as an absolute pose: the values the attention mixes are then how far the
  track's recent outputs lie from this frame's estimate, and pulling the estimate towards them (what lowers
  the acceleration of the output trajectory) is a linear map of the attention output. On the same finished
  EPE (stsp_demo.yaml at 640 clips), absolute tokens against displacements: test MPJPE 94.7 -> 86.7 mm, TS
  with TMP 48.16 -> 35.95 mm/frame² (the same model's GSR output without TMP: 49.66 / 60.98).
- **TMP losses.** ``L_seq`` is the MPJPE over the TMP frames 1 … T−1 (frame 0, with no earlier output, keeps
  its GSR pose); ``L_vel`` and ``L_acc`` run over the whole output trajectory ``joints_3d``.
- **Root.** Every 3D pose is made root-relative by subtracting its predicted root joint.
- **Φ_3D** reads the flattened node features of all joints (a joint's root-relative position depends on
  joints farther than L graph hops away); ``Φ_pred`` is per joint (the TMP query already carries the pose
  history), with a small initialisation so that TMP starts close to the GSR pose.
- **2D noise while lifting** (``lift_noise``). EPE's keypoints are better on the players it was trained on
  than on held-out ones (demo: train heatmap loss about half the validation loss), so a lifter trained on them
  alone learns to trust its 2D input more than it should at test time; Gaussian noise of ``lift_noise``
  (crop-normalised units) on GSR's 2D positions while training (not on the sampled features, nor on the frame
  positions) stands in for that gap. Off by default and in the demo: 0.03 (~1 px) on the demo's finished EPE
  gave test MPJPE 87.6 mm against 86.7 without.
- **Lifting input.** With ``keypoints_2d`` (B, T, J, 2) in normalised crop coordinates and no images
  (Human3.6M), EPE is skipped and the learned per-joint embedding stands in for the sampled image feature.
  The embedding is always added to the node features (it tells the shared-weight GAT which joint a node
  is), so it receives a gradient with either input.
- **EPE pre-training frames** (``epe_frames``). Task "epe" in training mode may read k random frames of each
  tube instead of all T, with those frames' targets; evaluation and the other tasks read the whole tube.
  k = 1 reads one frame; k >= 2 a run of k consecutive frames. Neighbouring frames are near-duplicates, so
  at a fixed compute budget fewer frames per tube show EPE more players. Each frame's motion weights take its
  incoming flow (frame 0 its outgoing flow), whichever frames are read; ``L_smooth`` (an acceleration) is
  0 with fewer than 3 frames, so with k < 3 the local trajectory constraint is first trained in the full
  stage.
- **Stage 2 ("lift").** EPE runs under ``no_grad``: it is frozen in that stage. The training stage should
  also put ``model.epe`` in eval mode there so that its BatchNorm statistics stay frozen.
- **Caching the frozen EPE** (the stage's ``cache_frozen``). In "lift", the frozen EPE maps a tube to the same
  2D keypoints and sampled joint features every epoch, and it costs all but a sliver of the step:
  ``precompute(inputs, "lift")`` returns them (``keypoints_2d_norm`` (B, T, J, 2) and ``joint_features``
  (B, T, J, C), about 7 KB per 6-frame tube at demo scale, 14 KB at paper scale), and ``forward`` in "lift"
  accepts them in place of ``tube`` + ``flow``, giving what the tube gives (a test holds the two equal). The
  stage engine runs ``precompute`` once per worker over its shard and trains GSR + TMP on the cache.
- **Frame position** (``frame_position``). SPEC §5's node feature is ``[normalised p_i; F*_t at p_i]``; the
  crop is scaled to the player's box, so crop-normalised keypoints say nothing of how far away the player is,
  and the lifter cannot tell a child's size from an adult's. With ``frame_position`` each node also gets
  ``p_i`` placed in the whole frame (:func:`frame_positions`: the crop's centre and scale from its affine,
  normalised by the frame width as VideoPose3D's screen coordinates), the cue a monocular lifter has for
  distance and so for size. Off by default (the paper's node
  features); on in the demo specs.
- ``use_gsr=False`` (Table 3's "EPE only" row, SPEC §5) replaces the GAT by :class:`JointMLP`, a per-joint MLP
  of the GAT's depth and width on the same node features (0.99 of the GAT's parameters at every width), and
  drops GSR's constraints from the loss: ``L_GSR = MPJPE`` whatever ``beta1_skel`` and ``beta2_angle`` say
  (``loss_skel`` and ``loss_angle`` are still reported, as diagnostics without gradient), so that every spec
  with ``use_gsr: false`` means the same row. ``Φ_3D`` and TMP are unchanged.

Sizes and costs at paper and demo scale are what ``bench/model_complexity.py`` prints; the paper reports
neither parameters nor FLOPs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sportpose.errors import SpecError
from sportpose.models import losses
from sportpose.models.backbones import build_backbone
from sportpose.models.family import PCKH, TaskMetric
from sportpose.models.heatmaps import heatmap_mse, heatmap_to_crop, normalize_images, pckh_counts
from sportpose.models.skeleton import H36M

STSP_BACKBONES = ("hrnet_w32", "hrnet_w18", "hrnet_w18_small")
POSE_UNIT_MM = 1000.0  # GSR and TMP regress metres; outputs are mm
TASKS = ("epe", "lift", "full")

# Reference bone lengths (mm) of an adult, per H36M edge: SynthCourt's adult template
# (sportpose.data.synthcourt.ADULT_MM; a test keeps the two in step). Hip and shoulder bones are the
# hypotenuses of their lateral offset and drop.
ADULT_BONE_LENGTHS_MM = (
    math.hypot(120.0, 30.0), 425.0, 415.0,  # root-r_hip, r_hip-r_knee, r_knee-r_foot
    math.hypot(120.0, 30.0), 425.0, 415.0,  # left leg
    225.0, 245.0, 115.0, 110.0,  # root-spine, spine-thorax, thorax-neck_base, neck_base-head
    math.hypot(165.0, 25.0), 285.0, 255.0,  # thorax-l_shoulder, upper arm, forearm
    math.hypot(165.0, 25.0), 285.0, 255.0,  # right arm
)

_WEIGHTS = ("gamma", "alpha_smooth", "beta1_skel", "beta2_angle", "gamma1_vel", "gamma2_acc", "omega1", "omega2")


@dataclass(frozen=True)
class STSPConfig:
    kind: Literal["stsp"] = "stsp"
    backbone: str = "hrnet_w32"  # hrnet_w32 (paper) | hrnet_w18 | hrnet_w18_small (CPU demo)
    width: int | None = None  # HRNet width override (demo: 16); None keeps the variant's own (32 / 18)
    pretrained: str | None = None  # local MMPose top-down HRNet checkpoint (or pose_hrnet state dict); no download
    window: int = 6  # T: frames per tube (the data side's window); must be >= tau + 1
    tau: int = 5  # TMP window: number of past poses (paper: 5, Table 4)
    gat_layers: int = 2  # paper: 2 (Table 5)
    gat_hidden: int = 256  # paper: 256 units per layer
    gat_heads: int = 1  # heads are concatenated: gat_hidden must be a multiple
    tmp_dim: int = 256  # d': width of the encoded past poses and of the cross-attention
    tmp_heads: int = 4  # tmp_dim must be a multiple
    gamma: float = 1.0  # W = 1 + gamma * exp(lam * S_hat)
    lam: float = 1.0  # 0..20: S_hat is in [0, 1], so W spans 1 + gamma .. 1 + gamma * e^lam
    saliency_floor: float = 1.0  # px: S_hat = S / max(max S, floor); sub-pixel flow noise is not motion
    # soft-argmax sharpness, softmax(beta * H): 20 decodes a unit-peak sigma-2 target within 0.07 px of its peak
    # at every heatmap size (1 pulls it to the map's centre, 36 px off near a corner of a 64x64 map; 10 still
    # 2.3 px); see soft_argmax
    beta: float = 20.0
    # radius (heatmap px) of a local soft-argmax window around each map's maximum; None: the whole map (paper
    # eq. 7). Sigma-1 targets need it: no beta decodes them within 0.25 px over a whole map (soft_argmax)
    softargmax_window: int | None = None
    alpha_smooth: float = 0.1  # L_smooth weight in L_EPE
    beta1_skel: float = 0.1  # L_skel weight in L_GSR
    beta2_angle: float = 0.1  # L_angle weight in L_GSR
    gamma1_vel: float = 1.0  # L_vel weight in L_TMP
    gamma2_acc: float = 0.1  # L_acc weight in L_TMP
    omega1: float = 1.0  # L_GSR weight in the total
    omega2: float = 1.0  # L_TMP weight in the total
    use_motion: bool = True  # False: W_t = 1 (no flow needed)
    # False: Table 3's "EPE only": a per-joint MLP of the GAT's size in place of the GAT, and no L_skel, L_angle
    use_gsr: bool = True
    use_tmp: bool = True  # False: joints_3d = joints_3d_gsr and no L_TMP
    lift_input: Literal["images", "keypoints_2d"] = "images"  # what stage "lift" reads: tubes, or 2D only (H36M)
    # True: each GSR node also gets its keypoint's place in the whole frame (frame_positions), beside its place
    # in the crop: a crop is scaled to the box, so only where the box sits and how big it is in the frame tell
    # the player's distance, and with it the body's size in mm. Reads the tube's `affine` and `frame_size`.
    frame_position: bool = False
    # EPE pre-training (task "epe", training mode) reads this many random frames of each tube instead of all T
    # (1: one frame; more: a run of consecutive frames): neighbouring frames are near-duplicates, so the same
    # compute sees more players. L_smooth (an acceleration) needs 3 frames; None: the whole tube.
    epe_frames: int | None = None
    bone_lengths: tuple[float, ...] | None = None  # l_ij per H36M edge (mm); None -> ADULT_BONE_LENGTHS_MM
    # std of Gaussian noise added to GSR's 2D input (crop-normalised units: [-1, 1] across the crop, so 0.03 is
    # ~1 px of a 64-px crop) while training outside "epe": EPE's keypoints on its own training players are
    # better than on held-out ones, and a lifter trained on them alone trusts its input too much (module doc)
    lift_noise: float = 0.0

    def __post_init__(self):
        if self.backbone not in STSP_BACKBONES:
            raise SpecError("backbone", f"expected one of {', '.join(STSP_BACKBONES)}, got {self.backbone!r}")
        if self.width is not None and self.width < 8:
            raise SpecError("width", f"must be at least 8 (or null for the variant's own), got {self.width}")
        if self.tau < 1:
            raise SpecError("tau", f"must be at least 1 past pose, got {self.tau}")
        if self.tau >= self.window:
            raise SpecError("tau", f"must be less than window = {self.window} (a tube holds the tau past poses and "
                                   f"the current frame), got {self.tau}")
        if self.gat_layers < 1:
            raise SpecError("gat_layers", f"must be at least 1, got {self.gat_layers}")
        for name, dim, heads in (("gat", self.gat_hidden, self.gat_heads), ("tmp", self.tmp_dim, self.tmp_heads)):
            if heads < 1:
                raise SpecError(f"{name}_heads", f"must be at least 1, got {heads}")
            if dim < 1 or dim % heads:
                key = "gat_hidden" if name == "gat" else "tmp_dim"
                raise SpecError(key, f"must be a positive multiple of {name}_heads = {heads}, got {dim}")
        for name in _WEIGHTS:
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise SpecError(name, f"must be a finite weight >= 0, got {value}")
        if not 0.0 <= self.lam <= 20.0:
            raise SpecError("lam", f"must be in [0, 20] (W spans 1 + gamma .. 1 + gamma * e^lam), got {self.lam}")
        if not math.isfinite(self.lift_noise) or self.lift_noise < 0:
            raise SpecError("lift_noise", f"must be a std >= 0 (crop-normalised units), got {self.lift_noise}")
        if not math.isfinite(self.beta) or self.beta <= 0:
            raise SpecError("beta", f"must be a finite sharpness > 0, got {self.beta}")
        if self.softargmax_window is not None and (isinstance(self.softargmax_window, bool)
                                                   or not isinstance(self.softargmax_window, int)
                                                   or self.softargmax_window < 1):
            raise SpecError("softargmax_window", f"must be a radius of at least 1 heatmap pixel, or null for the "
                                                 f"whole map, got {self.softargmax_window!r}")
        if not math.isfinite(self.saliency_floor) or self.saliency_floor < 0:
            raise SpecError("saliency_floor", f"must be >= 0 px, got {self.saliency_floor}")
        if self.epe_frames is not None and not 1 <= self.epe_frames <= self.window:
            raise SpecError("epe_frames", f"must be in [1, window = {self.window}] or null for the whole tube, "
                                          f"got {self.epe_frames}")
        if self.lift_input not in ("images", "keypoints_2d"):
            raise SpecError("lift_input", f"expected 'images' or 'keypoints_2d', got {self.lift_input!r}")
        if self.frame_position and self.lift_input == "keypoints_2d":
            raise SpecError("frame_position", "needs image tubes with their crop boxes; lift_input keypoints_2d "
                                              "gives neither")
        if self.bone_lengths is not None:
            if len(self.bone_lengths) != len(H36M.edges):
                raise SpecError("bone_lengths", f"expected {len(H36M.edges)} lengths (one per h36m edge, in the "
                                                f"order of skeleton.H36M.edges), got {len(self.bone_lengths)}")
            if not all(math.isfinite(v) and v > 0 for v in self.bone_lengths):
                raise SpecError("bone_lengths", f"must be positive lengths in mm, got {self.bone_lengths}")


# ----------------------------------------------------------------------------------------------------------
# EPE
# ----------------------------------------------------------------------------------------------------------

def motion_weights(
    flow: torch.Tensor, size: tuple[int, int], gamma: float, lam: float, floor: float = 1.0
) -> torch.Tensor:
    """Motion-saliency weights ``W = 1 + γ·exp(λ·Ŝ)`` (paper eqs. 3-4, with SPEC's per-frame normalisation).

    Args:
        flow: (N, H, W, 2) optical flow in crop pixels, channels last as the data pipeline stores it.
        size: (h, w) of the feature map the weights multiply.
        gamma, lam: γ and λ.
        floor: px; ``Ŝ = S / max(max S, floor)`` so that sub-pixel noise is not stretched to full saliency.

    Returns:
        (N, 1, h, w) weights in [1 + γ, 1 + γ·e^λ], finite for any finite flow.
    """
    s = torch.linalg.vector_norm(flow.float(), dim=-1).unsqueeze(1)  # (N, 1, H, W) px
    big = (int(flow.shape[1]), int(flow.shape[2]))
    if big[0] % size[0] == 0 and big[1] % size[1] == 0:  # the same mean as adaptive pooling, and ONNX-exportable
        kernel = (big[0] // size[0], big[1] // size[1])
        s = F.avg_pool2d(s, kernel, kernel)  # (N, 1, h, w)
    else:
        s = F.adaptive_avg_pool2d(s, size)  # (N, 1, h, w)
    s_max = s.amax(dim=(2, 3), keepdim=True).clamp_min(max(floor, 1e-6))  # (N, 1, 1, 1)
    return 1.0 + gamma * torch.exp(lam * (s / s_max))  # (N, 1, h, w)


def incoming_flow(flow: torch.Tensor) -> torch.Tensor:
    """Each frame's flow for its motion weights: the flow into it, and for frame 0 its outgoing flow.

    Args:
        flow: (B, T−1, H, W, 2), ``flow[:, k]`` from frame k to k+1.

    Returns:
        (B, T, H, W, 2).
    """
    return torch.cat([flow[:, :1], flow], dim=1)


def soft_argmax(heatmaps: torch.Tensor, beta: float, window: int | None = None) -> torch.Tensor:
    """Integral keypoints ``p = Σ (x, y)·softmax(β·H)`` (paper eq. 7), over the whole map or a local window.

    How sharp is sharp enough (SPEC §5: a target Gaussian decodes within 0.25 px of its peak anywhere at least 3σ
    from the border, at every heatmap size a spec uses; ``tests/models/test_stsp.py`` plants such targets, made by
    the data pipeline's generator, for the default config and every shipped STSP spec). Two errors pull in
    opposite directions:

    - **Background pull** (β too small): every pixel far from the peak keeps weight ``e^0 = 1``, and the h·w of
      them drag the expectation towards the map's centre. A σ = 2 target 3σ from a corner of a 64x64 map
      decodes 36 px off at β = 1 (at the map's centre), 2.3 px at β = 10, 0.05 px at β = 15.
    - **Quantisation bias** (β too large): near the peak ``softmax(β·H)`` is a Gaussian of σ/√β sampled on the
      pixel grid; below ~0.45 px it snaps to the nearest pixel (up to 0.35 px off, the β → ∞ limit of a hard
      argmax). A σ = 2 target is 0.06 px off at β = 20, 0.11 at 25, 0.23 at 40, 0.32 at 60.

    With σ = 2 (the data default), β = 20 passes at every map size (the default: 0.063 px at 64x64 and at 16x16,
    0.064 at 128x128; the pull falls as e^-β, so larger maps need no more). With σ = 1 no β passes over a whole
    map: the pull needs β >= ~10 at 16x16 while the bias needs σ/√β >= ~0.45, β <= ~5 (the best, β = 12, is
    0.26 px off). A window of ``window`` pixels around the map's maximum removes the pull at any β, so a small β
    is free of the bias: σ = 1 decodes within 0.09 px with ``window`` 2 and β = 6 (the demo specs). The whole
    map stays the default, the paper's formula. The window's position (the argmax) has no gradient; the
    weights inside it do. Float32 is safe at any β (the softmax subtracts the maximum; logits are at most β);
    targets rounded to bfloat16 (``amp: bf16``) decode as well as in float32 (0.064 px).

    Args:
        heatmaps: (..., h, w).
        beta: sharpness β.
        window: radius in heatmap pixels of the square window around each map's maximum the softmax runs over
            (``(2·window + 1)²`` pixels, cut at the border); None: the whole map.

    Returns:
        (..., 2) x, y in heatmap pixels (pixel centres at integers).
    """
    *lead, h, w = heatmaps.shape
    logits = beta * heatmaps.reshape(*lead, h * w).float()  # (..., h·w)
    xs = torch.arange(w, device=heatmaps.device)
    ys = torch.arange(h, device=heatmaps.device)
    if window is not None:
        peak = logits.argmax(dim=-1, keepdim=True)  # (..., 1)
        near_x = (xs - peak % w).abs() <= window  # (..., w)
        near_y = (ys - torch.div(peak, w, rounding_mode="floor")).abs() <= window  # (..., h)
        inside = (near_y[..., :, None] & near_x[..., None, :]).reshape(*lead, h * w)  # (..., h·w)
        logits = logits.masked_fill(~inside, float("-inf"))
    prob = torch.softmax(logits, dim=-1).reshape(*lead, h, w)  # (..., h, w)
    x = (prob.sum(-2) * xs.to(prob.dtype)).sum(-1)  # (...)
    y = (prob.sum(-1) * ys.to(prob.dtype)).sum(-1)
    return torch.stack([x, y], dim=-1)  # (..., 2)


def crop_to_normalized(points: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop pixels (centres at integers) to [-1, 1] over the crop's extent, ``grid_sample``'s
    ``align_corners=False`` convention: ``x_n = (2x + 1) / W − 1``.

    Args:
        points: (..., 2) x, y crop pixels.
        size: crop (H, W).
    """
    scale = points.new_tensor([size[1], size[0]])
    return (2.0 * points + 1.0) / scale - 1.0  # (..., 2)


def sample_joint_features(features: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """EPE's enhanced features at each keypoint (bilinear): the visual part of GSR's node features.

    Args:
        features: (B·T, C, h, w) EPE's enhanced features.
        points: (B, T, J, 2) keypoints in normalised crop coordinates [-1, 1].

    Returns:
        (B·T, J, C).
    """
    b, t, j, _ = points.shape
    grid = points.reshape(b * t, j, 1, 2)  # (B·T, J, 1, 2)
    sampled = F.grid_sample(features, grid, mode="bilinear", align_corners=False)  # (B·T, C, J, 1)
    return sampled.squeeze(-1).transpose(1, 2)  # (B·T, J, C)


def frame_positions(points: torch.Tensor, affine: torch.Tensor, frame_size: torch.Tensor,
                    crop_size: tuple[int, int]) -> torch.Tensor:
    """Keypoints placed in the whole frame, normalised by the frame's width (VideoPose3D's screen
    coordinates: x in [-1, 1], y in [-h/w, h/w]).

    The crop is placed by its centre and scale only: its own orientation is kept, so a training crop rotated or
    mirrored by augmentation (whose 3D target is rotated or mirrored with it) is placed as a rotated or mirrored
    view of the frame (a mirrored crop's centre is mirrored in the frame).

    Args:
        points: (B, T, J, 2) keypoints in normalised crop coordinates [-1, 1].
        affine: (B, 2, 3) the tube's image -> crop pixel transform.
        frame_size: (B, 2) the frame's (width, height) in pixels.
        crop_size: crop (H, W).

    Returns:
        (B, T, J, 2).
    """
    h, w = crop_size
    m, shift = affine[:, :, :2].double(), affine[:, :, 2].double()  # (B, 2, 2), (B, 2)
    centre = shift.new_tensor([(w - 1) / 2.0, (h - 1) / 2.0])  # crop pixels
    a, b, c, d = m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1]  # (B,) each
    det = a * d - b * c  # (B,) < 0 for a mirrored crop
    r = centre - shift  # (B, 2)
    # m⁻¹ r written out for the 2x2 matrix (an ONNX graph has no linear solve)
    box = torch.stack([d * r[:, 0] - b * r[:, 1], a * r[:, 1] - c * r[:, 0]], dim=-1) / det[:, None]  # (B, 2) image px
    size = frame_size.double()  # (B, 2)
    box_x = torch.where(det < 0, size[:, 0] - 1.0 - box[:, 0], box[:, 0])
    box = torch.stack([box_x, box[:, 1]], dim=-1)  # (B, 2)
    scale = det.abs().sqrt()  # (B,) crop px per image px
    px = ((points.double() + 1.0) * points.new_tensor([w, h]).double() - 1.0) / 2.0  # (B, T, J, 2) crop px
    image = box[:, None, None] + (px - centre) / scale[:, None, None, None]  # (B, T, J, 2) image px
    offset = torch.stack([torch.ones_like(size[:, 0]), size[:, 1] / size[:, 0]], dim=-1)  # (B, 2)
    return (2.0 * image / size[:, None, None, :1] - offset[:, None, None]).to(points.dtype)  # (B, T, J, 2)


class EPE(nn.Module):
    """Efficient pose extraction: HRNet -> motion enhancement -> 1x1 heatmap head -> soft-argmax.

    Args:
        backbone: an HRNet returning (N, C, H/4, W/4), with ``out_channels`` C.
        num_joints: J heatmaps.
        gamma, lam, saliency_floor: the motion weights (:func:`motion_weights`).
        beta: soft-argmax sharpness.
        window: radius of the local soft-argmax window (heatmap px), None for the whole map (:func:`soft_argmax`).
        use_motion: False: ``W_t = 1``.
    """

    def __init__(self, backbone: nn.Module, num_joints: int, gamma: float, lam: float, saliency_floor: float,
                 beta: float, use_motion: bool, window: int | None = None):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Conv2d(backbone.out_channels, num_joints, 1)
        nn.init.normal_(self.head.weight, std=0.001)
        nn.init.zeros_(self.head.bias)
        self.gamma, self.lam, self.saliency_floor = gamma, lam, saliency_floor
        self.beta, self.window, self.use_motion = beta, window, use_motion
        self.stride = backbone.stride

    def forward(self, tube: torch.Tensor, flow: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """
        Args:
            tube: (B, T, H, W, 3) uint8 crops.
            flow: (B, T, H, W, 2) float flow, each frame's own (:func:`incoming_flow`); unused without motion.

        Returns:
            ``heatmaps`` (B, T, J, H/4, W/4), ``keypoints_2d`` (B, T, J, 2) crop pixels,
            ``features`` (B·T, C, H/4, W/4) the enhanced F*_t, ``motion_weights`` (B, T, 1, H/4, W/4).
        """
        b, t, h, w, _ = tube.shape
        x = normalize_images(tube.reshape(b * t, h, w, 3))  # (B·T, 3, H, W)
        feats = self.backbone(x)  # (B·T, C, H/4, W/4)
        size = (int(feats.shape[-2]), int(feats.shape[-1]))  # plain ints: fixed by the crop size in an exported graph
        if self.use_motion:
            if flow is None:
                raise KeyError("EPE with use_motion needs each frame's flow (B, T, H, W, 2)")
            if flow.shape[:2] != (b, t):
                raise ValueError(f"EPE's flow must be (B, T, H, W, 2) = ({b}, {t}, ...), got {tuple(flow.shape)}")
            weights = motion_weights(flow.flatten(0, 1), size, self.gamma, self.lam, self.saliency_floor)
            feats = feats * weights  # (B·T, C, H/4, W/4)
        else:
            weights = feats.new_ones(b * t, 1, *size)
        heatmaps = self.head(feats)  # (B·T, J, H/4, W/4)
        coords = heatmap_to_crop(soft_argmax(heatmaps, self.beta, self.window), self.stride)  # (B·T, J, 2) crop px
        return {
            "heatmaps": heatmaps.reshape(b, t, *heatmaps.shape[1:]),  # (B, T, J, H/4, W/4)
            "keypoints_2d": coords.reshape(b, t, -1, 2),  # (B, T, J, 2)
            "features": feats,  # (B·T, C, H/4, W/4)
            "motion_weights": weights.reshape(b, t, 1, *size),  # (B, T, 1, H/4, W/4)
        }


# ----------------------------------------------------------------------------------------------------------
# GSR
# ----------------------------------------------------------------------------------------------------------

class GraphAttention(nn.Module):
    """One dense masked graph-attention layer (Veličković et al. 2018; paper eqs. 11-12).

    ``e_ij = LeakyReLU(aᵀ[W h_i ‖ W h_j])`` for j a neighbour of i (or i itself), ``α = softmax_j(e)``,
    exactly 0 for non-neighbours; ``h'_i = ELU(Σ_j α_ij W h_j)``. Heads are concatenated.

    Args:
        in_dim, out_dim: node feature widths; ``out_dim`` is split over the heads.
        heads: attention heads.
        adjacency: (J, J) bool array, True where j is a neighbour of i, self-loops included.
        negative_slope: LeakyReLU slope (0.2, as GAT).
    """

    def __init__(self, in_dim: int, out_dim: int, heads: int, adjacency: np.ndarray, negative_slope: float = 0.2):
        super().__init__()
        if out_dim % heads:
            raise ValueError(f"out_dim {out_dim} must be a multiple of heads {heads}")
        adjacency = np.asarray(adjacency, dtype=bool)
        if not adjacency.diagonal().all():
            raise ValueError("adjacency must include self-loops (every softmax row needs one entry)")
        self.heads, self.head_dim, self.negative_slope = heads, out_dim // heads, negative_slope
        self.proj = nn.Linear(in_dim, out_dim, bias=False)  # W
        self.att_src = nn.Parameter(torch.empty(heads, self.head_dim))  # the half of a that reads W h_i
        self.att_dst = nn.Parameter(torch.empty(heads, self.head_dim))  # the half of a that reads W h_j
        self.register_buffer("adjacency", torch.tensor(adjacency), persistent=False)  # (J, J) bool
        gain = nn.init.calculate_gain("relu")
        nn.init.xavier_uniform_(self.proj.weight, gain=gain)
        nn.init.xavier_uniform_(self.att_src, gain=gain)
        nn.init.xavier_uniform_(self.att_dst, gain=gain)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            h: (N, J, in_dim) node features.

        Returns:
            (N, J, out_dim) new node features and (N, heads, J, J) attention, rows summing to 1.
        """
        n, j, _ = h.shape
        wh = self.proj(h).reshape(n, j, self.heads, self.head_dim).transpose(1, 2)  # (N, heads, J, hd)
        e_src = (wh * self.att_src[:, None]).sum(-1)  # (N, heads, J)
        e_dst = (wh * self.att_dst[:, None]).sum(-1)  # (N, heads, J)
        e = F.leaky_relu(e_src[..., :, None] + e_dst[..., None, :], self.negative_slope)  # (N, heads, J, J)
        e = e.masked_fill(~self.adjacency, float("-inf"))
        alpha = torch.softmax(e, dim=-1)  # (N, heads, J, J), exp(-inf) = 0 off the graph
        out = (alpha @ wh).transpose(1, 2).reshape(n, j, self.heads * self.head_dim)  # (N, J, out_dim)
        return F.elu(out), alpha


class JointMLP(nn.Module):
    """The "EPE only" ablation's stand-in for the GAT (SPEC §5, the paper's Table 3): the same L layers on the same
    node features, each joint on its own: ``h'_i = ELU(W h_i + b)`` with W shared by the joints, where a GAT layer
    has ``h'_i = ELU(Σ_j α_ij W h_j)`` over the skeleton.

    Its size follows the GAT's by construction: L·(d² + d) parameters against the GAT's L·(d² + 2d) (its
    attention vectors a are 2d per layer, a bias is d), 0.99 of it at every width, so that the ablation row
    measures the graph attention and not a different head size (a flattened all-joint MLP of width 4d had 75x
    the GAT's parameters at paper scale: 9.97M against 0.13M).

    Args:
        dim: node feature width d (input and output).
        layers: L, the GAT's depth.
    """

    def __init__(self, dim: int, layers: int):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))
        gain = nn.init.calculate_gain("relu")
        for layer in self.layers:  # as the GAT's projections
            nn.init.xavier_uniform_(layer.weight, gain=gain)
            nn.init.zeros_(layer.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """(N, J, d) -> (N, J, d)."""
        for layer in self.layers:
            h = F.elu(layer(h))  # (N, J, d), joint by joint
        return h


class GSR(nn.Module):
    """Graph-based skeletal representation: node features -> L GAT layers -> ``Φ_3D`` -> root-relative 3D.

    Args:
        num_joints: J.
        feat_dim: channels C of the image feature sampled at each joint.
        hidden: d, node feature width in every layer.
        layers: L graph-attention layers (or hidden layers of the MLP ablation).
        heads: attention heads per layer.
        adjacency: (J, J) bool array, the skeleton with self-loops.
        root: index of the root joint.
        use_gat: False: :class:`JointMLP` in place of the GAT.
    """

    def __init__(self, num_joints: int, feat_dim: int, hidden: int, layers: int, heads: int,
                 adjacency: np.ndarray, root: int, use_gat: bool, position_dim: int = 2):
        super().__init__()
        self.root = root
        # Per-joint identity; with 2D-only input it stands in for the sampled image feature.
        self.joint_embed = nn.Parameter(torch.randn(num_joints, feat_dim) * 0.02)
        self.embed = nn.Linear(position_dim + feat_dim, hidden)
        if use_gat:
            self.gat = nn.ModuleList(GraphAttention(hidden, hidden, heads, adjacency) for _ in range(layers))
        else:
            self.mlp = JointMLP(hidden, layers)
        self.regress = nn.Sequential(  # Φ_3D over all joints' features
            nn.Linear(num_joints * hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_joints * 3)
        )
        # Sampled HRNet features are O(1)-O(10) in size: shrink the output layer so that the first poses are
        # centimetres, not metres, from the root (the skeleton and angle losses then start in range).
        with torch.no_grad():
            self.regress[-1].weight.mul_(0.05)
            self.regress[-1].bias.zero_()

    def forward(
        self, points: torch.Tensor, feats: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """
        Args:
            points: (N, J, P) keypoints in normalised crop coordinates [-1, 1] (P = 2), followed by their
                place in the frame (P = 4, :func:`frame_positions`).
            feats: (N, J, C) image features sampled at the keypoints, or None for 2D-only input.

        Returns:
            pose (N, J, 3) root-relative, in metres; node features h' (N, J, d); attention
            (N, L, heads, J, J), or None for the MLP ablation.
        """
        n, j, _ = points.shape
        feats = self.joint_embed.expand(n, -1, -1) if feats is None else feats + self.joint_embed  # (N, J, C)
        h = self.embed(torch.cat([points, feats], dim=-1))  # (N, J, d)
        attention = None
        if hasattr(self, "gat"):
            maps = []
            for layer in self.gat:
                h, alpha = layer(h)
                maps.append(alpha)
            attention = torch.stack(maps, dim=1)  # (N, L, heads, J, J)
        else:
            h = self.mlp(h)
        pose = self.regress(h.reshape(n, -1)).reshape(n, j, 3)  # (N, J, 3) m
        return pose - pose[:, self.root : self.root + 1], h, attention


# ----------------------------------------------------------------------------------------------------------
# TMP
# ----------------------------------------------------------------------------------------------------------

class TMP(nn.Module):
    """Temporal motion perception: cross-attention from the current frame's joints to the τ past poses.

    Args:
        num_joints: J.
        node_dim: d, width of the GSR node features that make the queries.
        dim: d', width of the encoded past poses and of the attention.
        heads: attention heads (d' split over them).
        tau: number of past poses.
        root: index of the root joint (the correction keeps the pose root-relative).
    """

    def __init__(self, num_joints: int, node_dim: int, dim: int, heads: int, tau: int, root: int):
        super().__init__()
        self.heads, self.head_dim, self.tau, self.root = heads, dim // heads, tau, root
        self.encode = nn.Linear(num_joints * 3, dim)  # Φ_enc: one past pose -> one token
        self.position = nn.Parameter(torch.randn(tau, dim) * 0.02)  # learned, index 0 = frame t − τ
        self.query = nn.Linear(node_dim, dim)  # W_Q
        self.key = nn.Linear(dim, dim)  # W_K
        self.value = nn.Linear(dim, dim)  # W_V
        self.out = nn.Linear(dim, dim)
        self.predict = nn.Sequential(nn.Linear(node_dim + dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, 3))
        # Small, not zero: TMP starts near the GSR pose and every layer still gets a gradient at step one.
        nn.init.normal_(self.predict[-1].weight, std=1e-3)
        nn.init.zeros_(self.predict[-1].bias)

    def forward(
        self, history: torch.Tensor, pose: torch.Tensor, nodes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            history: (N, τ, J, 3) the model's outputs at frames t − τ … t − 1, metres; encoded relative to
                ``pose`` (module doc, "TMP's tokens").
            pose: (N, J, 3) GSR pose of frame t, metres.
            nodes: (N, J, d) GSR node features h'_t of frame t.

        Returns:
            refined pose (N, J, 3) metres, root-relative; attention (N, heads, J, τ).
        """
        n, tau, j, _ = history.shape
        moved = history - pose[:, None]  # (N, τ, J, 3): each past pose relative to this frame's GSR pose
        z = self.encode(moved.reshape(n, tau, j * 3)) + self.position  # (N, τ, d')
        q = self.query(nodes).reshape(n, j, self.heads, self.head_dim).transpose(1, 2)  # (N, heads, J, dk)
        k = self.key(z).reshape(n, tau, self.heads, self.head_dim).transpose(1, 2)  # (N, heads, τ, dk)
        v = self.value(z).reshape(n, tau, self.heads, self.head_dim).transpose(1, 2)  # (N, heads, τ, dk)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.head_dim), dim=-1)  # (N, heads, J, τ)
        a = self.out((att @ v).transpose(1, 2).reshape(n, j, -1))  # (N, J, d')
        delta = self.predict(torch.cat([nodes, a], dim=-1))  # (N, J, 3) m
        return pose + delta - delta[:, self.root : self.root + 1], att


# ----------------------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------------------

class STSPNet(nn.Module):
    """STSP-Net over person tubes (or 2D keypoint sequences for lifting-only data).

    Tasks (the training stages of SPEC §5): ``"epe"`` pre-trains EPE on 2D heatmaps; ``"lift"`` trains GSR
    and TMP with EPE frozen; ``"full"`` fine-tunes everything. ``forward``, ``loss`` and ``input_names`` take
    the task; ``trainable_prefixes(task)`` names the parameters the stage trains, each of which gets a
    gradient in that task (DDP with ``find_unused_parameters=False``).
    """

    TASKS = TASKS
    # Tasks whose frozen prefix (EPE in "lift") gives the same outputs every epoch: precompute() caches them
    CACHEABLE_TASKS = ("lift",)
    # Config fields a task's stage does not read (a resumed run's changed field reruns only the stages that
    # read it): EPE pre-training builds GSR and TMP but trains and outputs EPE alone; "lift" keeps EPE frozen,
    # so EPE's own training settings do not reach it. "full" reads everything.
    UNREAD_FIELDS = {
        "epe": ("tau", "gat_layers", "gat_hidden", "gat_heads", "tmp_dim", "tmp_heads", "beta1_skel", "beta2_angle",
                "gamma1_vel", "gamma2_acc", "omega1", "omega2", "use_gsr", "use_tmp", "lift_input",
                "frame_position", "bone_lengths", "lift_noise"),
        "lift": ("alpha_smooth", "epe_frames"),
    }
    FREEZE_LAYERS = 0  # no backbone schedule: stages freeze EPE, GSR or TMP whole through trainable_prefixes
    # models.pretrained.initialise: an MMPose top-down HRNet (its COCO head copied by joint name) or pose_hrnet
    PRETRAINED = {"pretrained": ("epe.backbone", {"final_layer": "epe.head"})}

    def __init__(self, config: STSPConfig, num_joints: int = 17):
        super().__init__()
        if num_joints != H36M.num_joints:
            raise ValueError(f"STSP-Net works on the h36m joint set (17 joints), got num_joints={num_joints}")
        self.config = config
        kwargs = {} if config.width is None else {"width": config.width}
        backbone = build_backbone(config.backbone, **kwargs)
        self.epe = EPE(backbone, num_joints, config.gamma, config.lam, config.saliency_floor, config.beta,
                       config.use_motion, config.softargmax_window)
        self.gsr = GSR(num_joints, backbone.out_channels, config.gat_hidden, config.gat_layers, config.gat_heads,
                       H36M.adjacency(self_loops=True), H36M.root, use_gat=config.use_gsr,
                       position_dim=4 if config.frame_position else 2)
        if config.use_tmp:
            self.tmp = TMP(num_joints, config.gat_hidden, config.tmp_dim, config.tmp_heads, config.tau, H36M.root)
        self.edges = H36M.edges
        lengths = config.bone_lengths or ADULT_BONE_LENGTHS_MM
        self.register_buffer("bone_lengths", torch.tensor(lengths) / POSE_UNIT_MM, persistent=False)  # (E,) m
        limits = H36M.angle_limits
        self.register_buffer("angle_triples", torch.tensor([a.joints for a in limits]), persistent=False)  # (A, 3)
        self.register_buffer("angle_min_deg", torch.tensor([a.min_deg for a in limits]), persistent=False)  # (A,)
        self.register_buffer("angle_max_deg", torch.tensor([a.max_deg for a in limits]), persistent=False)  # (A,)

    # -- facts the data side and the stages need --------------------------------------------------------

    def input_names(self, task: str = "full") -> tuple[str, ...]:
        """The input columns ``forward`` reads in ``task``."""
        _check_task(task)
        if task == "lift" and self.config.lift_input == "keypoints_2d":
            return ("keypoints_2d",)
        names = ("tube", "flow") if self.config.use_motion else ("tube",)
        if self.config.frame_position and task != "epe":
            names += ("affine", "frame_size")  # where the crop sits in the frame (frame_positions)
        return names

    def target_names(self, task: str) -> tuple[str, ...]:
        """The batch columns ``loss`` reads in ``task`` (what a cache of :meth:`precompute` keeps beside it)."""
        _check_task(task)
        return {"epe": ("heatmaps", "target_weight"), "lift": ("joints_3d", "bone_lengths"),
                "full": ("heatmaps", "target_weight", "joints_3d", "bone_lengths")}[task]

    def trainable_prefixes(self, task: str) -> tuple[str, ...]:
        """Top-level module names whose parameters the stage of ``task`` trains."""
        _check_task(task)
        lifting = ("gsr", "tmp") if self.config.use_tmp else ("gsr",)
        return {"epe": ("epe",), "lift": lifting, "full": ("epe",) + lifting}[task]

    # -- forward --------------------------------------------------------------------------------------------

    def precompute(self, inputs: dict[str, torch.Tensor], task: str = "lift") -> dict[str, torch.Tensor]:
        """The frozen EPE's outputs that GSR reads in ``task`` ("lift"), to be cached and handed back to
        ``forward`` in place of ``tube`` + ``flow``.

        Args:
            inputs: ``tube`` (B, T, H, W, 3) uint8 and ``flow`` (B, T−1, H, W, 2) as ``forward`` takes them.
            task: one of ``CACHEABLE_TASKS``.

        Returns:
            ``keypoints_2d_norm`` (B, T, J, 2) in [-1, 1] and ``joint_features`` (B, T, J, C) the enhanced
            features sampled there; with ``frame_position`` also ``keypoints_frame`` (B, T, J, 2).

        Raises:
            ValueError: a task whose EPE is trained, or no ``tube`` (2D-only input has nothing to precompute).
        """
        _check_task(task)
        if task not in self.CACHEABLE_TASKS:
            raise ValueError(f"task {task!r} trains EPE: its outputs change every step and cannot be cached; "
                             f"cacheable: {', '.join(self.CACHEABLE_TASKS)}")
        if "tube" not in inputs:
            raise ValueError(f"precompute needs image tubes ('tube' + 'flow'); got {sorted(inputs)}")
        tube = inputs["tube"]
        with torch.no_grad():
            epe = self.epe(tube, self._incoming_flow(inputs))
        crop_size = tuple(tube.shape[2:4])
        return self._node_inputs(inputs, crop_to_normalized(epe["keypoints_2d"], crop_size), epe["features"], crop_size)

    def _node_inputs(self, inputs: dict[str, torch.Tensor], points: torch.Tensor, features: torch.Tensor,
                     crop_size: tuple[int, int]) -> dict[str, torch.Tensor]:
        """What GSR reads of EPE's output: :meth:`precompute`'s columns, from the keypoints ``points`` (B, T, J, 2)
        in [-1, 1] and the enhanced ``features`` (B·T, C, H/4, W/4) of the crops of ``crop_size`` (H, W)."""
        feats = sample_joint_features(features, points)  # (B·T, J, C)
        out = {"keypoints_2d_norm": points, "joint_features": feats.reshape(*points.shape[:3], -1)}  # (B, T, J, C)
        if self.config.frame_position:
            missing = [k for k in ("affine", "frame_size") if k not in inputs]
            if missing:
                raise KeyError(f"STSP-Net with frame_position needs {missing} beside 'tube' (where the crop sits "
                               f"in the frame); got {sorted(inputs)}")
            out["keypoints_frame"] = frame_positions(points, inputs["affine"], inputs["frame_size"],
                                                     crop_size)  # (B, T, J, 2)
        return out

    def _incoming_flow(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """Each frame's flow (B, T, H, W, 2) from the tube's ``flow`` (B, T−1, ...), or None without motion."""
        tube, flow = inputs["tube"], inputs.get("flow")
        if not self.config.use_motion:
            return flow
        if flow is None:
            raise KeyError("STSP-Net with use_motion needs 'flow' (B, T-1, H, W, 2) beside 'tube'")
        if flow.shape[:2] != (tube.shape[0], tube.shape[1] - 1):
            raise ValueError(f"flow must be (B, T-1, H, W, 2) = ({tube.shape[0]}, {tube.shape[1] - 1}, ...), "
                             f"got {tuple(flow.shape)}")
        return incoming_flow(flow)  # (B, T, H, W, 2)

    def forward(self, inputs: dict[str, torch.Tensor], task: str = "full",
                history_3d: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """
        Args:
            inputs: ``tube`` (B, T, H, W, 3) uint8 and ``flow`` (B, T−1, H, W, 2) float32 crop pixels (flow
                only with ``use_motion``); or, in task "lift" only, ``keypoints_2d`` (B, T, J, 2) normalised
                crop coordinates in [-1, 1], or :meth:`precompute`'s ``keypoints_2d_norm`` and
                ``joint_features``. The current frame is the last, T − 1; T >= τ + 1 outside "epe". With
                ``frame_position``, outside "epe": ``affine`` (B, 2, 3) image -> crop and ``frame_size`` (B, 2)
                (width, height) px beside the tube (or precompute's ``keypoints_frame``).
            task: "epe" (EPE only), "lift" or "full".
            history_3d: (B, τ + T, J, 3) mm, the model's own earlier outputs for each tube's person
                (:meth:`refine`); None: none (training, or a track's start).

        Returns:
            ``keypoints_2d_norm`` (B, T, J, 2) the 2D input of GSR, in [-1, 1]; with images also
            ``heatmaps`` (B, T, J, H/4, W/4), ``keypoints_2d`` (B, T, J, 2) soft-argmax in crop pixels and
            ``motion_weights`` (B, T, 1, H/4, W/4). Outside "epe": ``joints_3d_gsr`` (B, T, J, 3) mm,
            ``joints_3d`` (B, T, J, 3) mm (TMP run causally over the tube, :meth:`refine`; frame 0 keeps
            its GSR pose without ``history_3d``), with the GAT ``attention`` (B, T, L, heads, J, J), the TMP
            ``attention_tmp`` (B, T, heads, J, τ) and GSR's node features ``nodes_gsr`` (B, T, J, d) where
            those modules exist.

        Raises:
            KeyError: neither ``tube`` nor ``keypoints_2d`` (or ``flow`` missing with ``use_motion``).
            ValueError: an unknown task, 2D-only input outside "lift", or fewer than τ + 1 frames.
        """
        _check_task(task)
        out: dict[str, torch.Tensor] = {}
        nodes_in = None  # precompute()'s columns: GSR's input from images; None for 2D-only input
        if "joint_features" in inputs:  # precompute()'s outputs of the frozen EPE
            if task not in self.CACHEABLE_TASKS:
                raise ValueError(f"task {task!r} trains EPE and needs images ('tube'), not cached EPE outputs")
            nodes_in = inputs
            points = inputs["keypoints_2d_norm"].float()  # (B, T, J, 2)
            b, t = points.shape[:2]
            out["keypoints_2d_norm"] = points
        elif "tube" in inputs:
            tube, flow = inputs["tube"], self._incoming_flow(inputs)
            k = self.config.epe_frames
            if task == "epe" and self.training and k is not None and k < tube.shape[1]:
                index = _frame_runs(tube.shape[0], tube.shape[1], k, tube.device)  # (B, k)
                rows = torch.arange(tube.shape[0], device=tube.device)[:, None]  # (B, 1)
                tube = tube[rows, index]  # (B, k, H, W, 3)
                flow = None if flow is None else flow[rows, index]  # (B, k, H, W, 2)
                out["frame_index"] = index
            b, t, h, w, _ = tube.shape
            with torch.set_grad_enabled(torch.is_grad_enabled() and task != "lift"):  # EPE is frozen in "lift"
                epe = self.epe(tube, flow)
            points = crop_to_normalized(epe["keypoints_2d"], (h, w))  # (B, T, J, 2)
            out.update(heatmaps=epe["heatmaps"], keypoints_2d=epe["keypoints_2d"], keypoints_2d_norm=points,
                       motion_weights=epe["motion_weights"])
            if task != "epe":
                nodes_in = self._node_inputs(inputs, points, epe["features"], (h, w))
        elif "keypoints_2d" in inputs:
            if task != "lift":
                raise ValueError(f"task {task!r} needs images ('tube'); 2D keypoints alone only serve task 'lift'")
            points = inputs["keypoints_2d"].float()
            b, t = points.shape[:2]
            out["keypoints_2d_norm"] = points  # (B, T, J, 2)
        else:
            raise KeyError(f"STSP-Net needs 'tube' (+ 'flow') or 'keypoints_2d'; got {sorted(inputs)}")
        if task == "epe":
            return out

        tau = self.config.tau
        if t < tau + 1:
            raise ValueError(f"STSP-Net with tau={tau} needs at least {tau + 1} frames, got {t}")
        j = points.shape[2]
        if self.training and self.config.lift_noise > 0:  # the 2D input's error on held-out players (module doc)
            points = points + self.config.lift_noise * torch.randn_like(points)
        position, feats = points, None  # (B, T, J, 2); image features at the keypoints, None for 2D-only input
        if nodes_in is not None:
            feats = nodes_in["joint_features"].float().reshape(b * t, j, -1)  # (B·T, J, C)
            if self.config.frame_position:
                if "keypoints_frame" not in nodes_in:
                    raise KeyError("cached EPE outputs of a model with frame_position need 'keypoints_frame'")
                position = torch.cat([points, nodes_in["keypoints_frame"].float()], dim=-1)  # (B, T, J, 4)
        pose, nodes, attention = self.gsr(position.reshape(b * t, j, -1), feats)  # (B·T, J, 3) m, (B·T, J, d)
        pose = pose.reshape(b, t, j, 3)  # (B, T, J, 3) m
        out["joints_3d_gsr"] = pose * POSE_UNIT_MM  # (B, T, J, 3) mm
        if attention is not None:
            out["attention"] = attention.reshape(b, t, *attention.shape[1:])  # (B, T, L, heads, J, J)

        if not self.config.use_tmp:
            out["joints_3d"] = out["joints_3d_gsr"]
            return out
        nodes = nodes.reshape(b, t, j, -1)  # (B, T, J, d)
        history = None if history_3d is None else history_3d.to(pose) / POSE_UNIT_MM  # (B, τ + T, J, 3) m
        joints, att = self._refine(history, pose, nodes)  # (B, T, J, 3) m, (B, T, heads, J, τ)
        out["joints_3d"] = joints * POSE_UNIT_MM  # (B, T, J, 3) mm
        out["attention_tmp"] = att  # (B, T, heads, J, τ), zero where a frame kept its GSR pose
        out["nodes_gsr"] = nodes  # (B, T, J, d): what refine() reads beside the GSR poses
        return out

    def refine(self, history_3d: torch.Tensor | None, pose_3d: torch.Tensor, nodes: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """TMP run causally over T consecutive frames of one person, reading the model's own earlier outputs.

        What evaluation and the video inferencer call once they know which track each tube belongs to
        (:class:`TrackHistory` keeps the outputs); ``forward`` calls it too.

        Args:
            history_3d: (B, τ + T, J, 3) mm, the model's own outputs (``joints_3d``) for the person at the τ
                frames before the tube's first frame and at the tube's frames, NaN where it has none yet; or
                None (no output yet: a track's start, or training). Positions with an output keep it; the
                others are computed in time order. NaN may only lead (a track's start): a frame's history slots
                before the person's first output repeat that first output, as the data side clamps a tube at
                a clip's start. A frame with no earlier output at all keeps its GSR pose.
            pose_3d: (B, T, J, 3) mm, GSR's poses of the tube's frames (``joints_3d_gsr``).
            nodes: (B, T, J, d) GSR's node features of those frames (``nodes_gsr``).

        Returns:
            ``joints_3d`` (B, T, J, 3) mm and TMP's attention (B, T, heads, J, τ), zero for frames it did not
            compute.
        """
        history = None if history_3d is None else history_3d.to(pose_3d) / POSE_UNIT_MM
        joints, att = self._refine(history, pose_3d / POSE_UNIT_MM, nodes)
        return joints * POSE_UNIT_MM, att

    def _refine(self, history: torch.Tensor | None, pose: torch.Tensor, nodes: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`refine` in metres. The history TMP reads is detached: each frame's TMP sees the outputs of the
        frames before it as values, at training as at inference (teacher forcing with the model's own detached
        outputs; see the module doc)."""
        b, t, j, _ = pose.shape
        tau = self.config.tau
        if history is None:
            history = pose.new_full((b, tau + t, j, 3), float("nan"))
        if history.shape != (b, tau + t, j, 3):
            raise ValueError(f"history_3d must be (B, tau + T, J, 3) = ({b}, {tau + t}, {j}, 3), "
                             f"got {tuple(history.shape)}")
        given = torch.isfinite(history).all(dim=-1).all(dim=-1)  # (B, τ + T)
        seq = list(history.detach().unbind(1))  # τ + T tensors (B, J, 3); a computed frame replaces its slot
        valid = list(given.unbind(1))
        outputs, maps = [], []
        rows = torch.arange(b, device=pose.device)
        for k in range(t):
            q = tau + k
            window = torch.stack(seq[q - tau : q], dim=1)  # (B, τ, J, 3)
            ok = torch.stack(valid[q - tau : q], dim=1)  # (B, τ)
            first = ok.float().argmax(dim=1)  # the earliest output in the window: leading slots repeat it
            window = torch.where(ok[:, :, None, None], window, window[rows, first][:, None])
            window = torch.where(torch.isfinite(window), window, pose[:, k : k + 1].detach())  # no output yet
            refined, att = self.tmp(window, pose[:, k], nodes[:, k])  # (B, J, 3) m, (B, heads, J, τ)
            has_past = ok.any(dim=1)  # (B,): a frame with no earlier output keeps its GSR pose
            computed = torch.where(has_past[:, None, None], refined, pose[:, k])
            att = att * has_past[:, None, None, None]
            known = given[:, q]
            result = torch.where(known[:, None, None], history[:, q].nan_to_num(), computed)  # (B, J, 3)
            outputs.append(result)
            maps.append(torch.where(known[:, None, None, None], torch.zeros_like(att), att))
            seq[q], valid[q] = result.detach(), torch.ones_like(known)
        return torch.stack(outputs, dim=1), torch.stack(maps, dim=1)  # (B, T, J, 3) m, (B, T, heads, J, τ)

    # -- loss -----------------------------------------------------------------------------------------------

    def loss(
        self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], task: str = "full"
    ) -> dict[str, torch.Tensor]:
        """``L = L_EPE + ω₁ L_GSR + ω₂ L_TMP``, restricted to the task's modules.

        Args:
            outputs: ``forward(..., task)``.
            batch: ``heatmaps`` (B, T, J, H/4, W/4) and ``target_weight`` (B, T, J) for "epe"/"full";
                ``joints_3d`` (B, T, J, 3) root-relative mm for "lift"/"full"; optionally ``bone_lengths``
                (B, E) mm, per-sample reference lengths (e.g. of the sample's body-scale group) in place of
                the config's.
            task: "epe", "lift" or "full".

        Returns:
            ``loss`` (optimised) and its terms: ``loss_epe``, ``loss_heatmap``, ``loss_smooth`` (normalised
            crop units²), ``loss_gsr``, ``loss_mpjpe`` (m), ``loss_skel`` (m), ``loss_angle`` (rad),
            ``loss_tmp``, ``loss_seq`` (m), ``loss_vel`` (m²/frame²), ``loss_acc`` (m²/frame⁴), as the task has
            them; and the detached diagnostics ``mpjpe_gsr_mm`` / ``mpjpe_mm``.
        """
        _check_task(task)
        cfg = self.config
        terms: dict[str, torch.Tensor] = {}
        total = None
        if task in ("epe", "full"):
            heatmaps, weight = batch["heatmaps"], batch["target_weight"]  # (B, T, J, H/4, W/4), (B, T, J)
            if "frame_index" in outputs:  # EPE read a run of frames of each tube: the same frames' targets
                rows = torch.arange(heatmaps.shape[0], device=heatmaps.device)[:, None]
                index = outputs["frame_index"].to(heatmaps.device)
                heatmaps, weight = heatmaps[rows, index], weight[rows, index]
            pred = outputs["heatmaps"].flatten(0, 1)  # (B·T, J, H/4, W/4)
            target = heatmaps.flatten(0, 1).to(pred)  # (B·T, J, H/4, W/4)
            hm = heatmap_mse(pred, target, weight.flatten(0, 1).to(pred))
            smooth = losses.trajectory_smoothness_loss(outputs["keypoints_2d_norm"])  # normalised crop units²
            terms.update(loss_heatmap=hm, loss_smooth=smooth, loss_epe=hm + cfg.alpha_smooth * smooth)
            total = terms["loss_epe"]
        if task in ("lift", "full"):
            gt = batch["joints_3d"].to(outputs["joints_3d"]) / POSE_UNIT_MM  # (B, T, J, 3) m
            gsr = outputs["joints_3d_gsr"] / POSE_UNIT_MM
            reference = self.bone_lengths
            if "bone_lengths" in batch:  # a row's NaN lengths (not measured for that person): the template's
                rows = batch["bone_lengths"].to(gsr).reshape(gsr.shape[0], 1, -1) / POSE_UNIT_MM  # (B, 1, E)
                reference = torch.where(torch.isfinite(rows), rows, self.bone_lengths.to(gsr))
            mpjpe = losses.mpjpe_loss(gsr, gt)
            skel = losses.bone_length_loss(gsr, self.edges, reference)
            angle = losses.angle_limit_loss(gsr, self.angle_triples, self.angle_min_deg, self.angle_max_deg)
            if cfg.use_gsr:
                terms.update(loss_mpjpe=mpjpe, loss_skel=skel, loss_angle=angle,
                             loss_gsr=mpjpe + cfg.beta1_skel * skel + cfg.beta2_angle * angle)
            else:  # "EPE only" trains without GSR's constraints; they are reported, as diagnostics
                terms.update(loss_mpjpe=mpjpe, loss_skel=skel.detach(), loss_angle=angle.detach(), loss_gsr=mpjpe)
            lifting = cfg.omega1 * terms["loss_gsr"]
            terms["mpjpe_gsr_mm"] = (mpjpe * POSE_UNIT_MM).detach()
            if cfg.use_tmp:
                joints = outputs["joints_3d"] / POSE_UNIT_MM  # (B, T, J, 3) m
                seq = losses.mpjpe_loss(joints[:, 1:], gt[:, 1:])  # the TMP frames (frame 0 keeps its GSR pose)
                vel = losses.velocity_loss(joints, gt)
                acc = losses.acceleration_loss(joints)
                terms.update(loss_seq=seq, loss_vel=vel, loss_acc=acc,
                             loss_tmp=seq + cfg.gamma1_vel * vel + cfg.gamma2_acc * acc)
                lifting = lifting + cfg.omega2 * terms["loss_tmp"]
                terms["mpjpe_mm"] = (losses.mpjpe_loss(joints, gt) * POSE_UNIT_MM).detach()
            else:
                terms["mpjpe_mm"] = terms["mpjpe_gsr_mm"]
            total = lifting if total is None else total + lifting
        terms["loss"] = total
        return terms

    @classmethod
    def loss_names(cls, config: STSPConfig, task: str = "full") -> tuple[str, ...]:
        """The keys :meth:`loss` returns for ``task`` (a stage's ``metric`` may name them)."""
        _check_task(task)
        names = ("loss",)
        if task in ("epe", "full"):
            names += ("loss_heatmap", "loss_smooth", "loss_epe")
        if task in ("lift", "full"):
            names += ("loss_mpjpe", "loss_skel", "loss_angle", "loss_gsr", "mpjpe_gsr_mm", "mpjpe_mm")
            if config.use_tmp:
                names += ("loss_seq", "loss_vel", "loss_acc", "loss_tmp")
        return names

    @classmethod
    def task_metric(cls, task: str = "full") -> TaskMetric:
        """What picks a stage's best checkpoint (SPEC §6): PCKh@0.5 of EPE's heatmaps (``val_pckh``, %) in
        "epe", a 2D heatmap stage; MPJPE of the (TMP-refined) 3D joints (``val_mpjpe_mm``) in "lift" and "full"."""
        _check_task(task)
        return PCKH if task == "epe" else TaskMetric("val_mpjpe_mm", "min")

    def metric_counts(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], task: str = "full"
                      ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``{"pckh": (100 × correct, counted joints)}`` over every frame of the tubes in "epe"
        (:func:`heatmaps.pckh_counts`; one crop affine and head size per tube); {} in "lift" and "full", whose
        metric is a loss term."""
        if not self.task_metric(task).counted:
            return {}
        hits, total = pckh_counts(outputs["heatmaps"], batch["keypoints"], batch["head_size"], batch["affine"])
        return {"pckh": (100.0 * hits, total)}


class TrackHistory:
    """The model's own 3D outputs per track, by frame: the history :meth:`STSPNet.refine` reads (module doc, "TMP
    along a track"). Evaluation and the video inferencer keep one.

    Feed each track's tubes in time order; tubes of different tracks may come interleaved or batched together,
    each track's outputs being kept under its own key. A tube contributes its frames after the last one its track
    has an output for; its earlier frames, and the τ frames before it, read the outputs already kept. A track
    whose kept outputs do not reach the tube contiguously (it was lost for a while) starts again.

    Args:
        tau: the model's τ.
        interval: frames between a tube's crops (``data.interval``), the spacing of the history.
    """

    def __init__(self, tau: int, interval: int = 1):
        self.tau, self.interval = tau, interval
        self.outputs: dict[object, dict[int, np.ndarray]] = {}

    def history(self, key: object, tube_frames, num_joints: int) -> np.ndarray:
        """(τ + T, J, 3) mm for :meth:`STSPNet.refine`: the track's outputs at the τ frames before the tube and at
        its frames, NaN where there is none yet (or ``key`` is None: a person without a track)."""
        frames = [int(f) for f in tube_frames]
        slots = [frames[0] - (self.tau - i) * self.interval for i in range(self.tau)] + frames
        out = np.full((len(slots), num_joints, 3), np.nan, np.float32)
        known = self.outputs.get(key) if key is not None else None
        if not known:
            return out
        last = max(known)
        start = next((q for q in range(self.tau, len(slots)) if slots[q] > last), len(slots))
        for q in range(start - 1, -1, -1):  # contiguous outputs only, back from the first frame to compute
            if slots[q] not in known:
                break
            out[q] = known[slots[q]]
        return out

    def store(self, key: object, tube_frames, joints: np.ndarray) -> None:
        """Keep ``joints`` (T, J, 3) mm, :meth:`STSPNet.refine`'s outputs for the tube, at its frames not kept yet."""
        if key is None:
            return
        known = self.outputs.setdefault(key, {})
        last = max(known, default=None)
        for f, pose in zip(tube_frames, joints):
            if last is None or int(f) > last:
                known[int(f)] = np.asarray(pose, np.float32)
        horizon = max(known) - (self.tau + len(joints)) * self.interval
        for f in [f for f in known if f < horizon]:
            del known[f]

    def step(self, model: STSPNet, keys: list, tube_frames, pose_3d: torch.Tensor, nodes: torch.Tensor
             ) -> torch.Tensor:
        """TMP over B tubes of distinct tracks (``keys``, None for a person without a track) and keep the outputs.

        Args:
            tube_frames: (B, T) frame index of each crop.
            pose_3d, nodes: ``forward``'s ``joints_3d_gsr`` (B, T, J, 3) mm and ``nodes_gsr`` (B, T, J, d).

        Returns:
            ``joints_3d`` (B, T, J, 3) mm; the anchor's pose is the last frame's.
        """
        named = [k for k in keys if k is not None]
        if len(set(named)) != len(named):
            raise ValueError("one step takes one tube per track: a track's tubes must be fed in time order")
        given = np.stack([self.history(k, f, pose_3d.shape[2]) for k, f in zip(keys, tube_frames)])
        with torch.no_grad():
            joints, _ = model.refine(torch.from_numpy(given).to(pose_3d), pose_3d, nodes)
        for k, f, out in zip(keys, tube_frames, joints.cpu().numpy()):
            self.store(k, f, out)
        return joints


def _frame_runs(batch: int, frames: int, k: int, device: torch.device) -> torch.Tensor:
    """(B, k) indices of a random run of k consecutive frames (k = 1: one random frame) in each of B tubes of
    T = ``frames``."""
    start = torch.randint(0, frames - k + 1, (batch, 1), device=device)
    return start + torch.arange(k, device=device)


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown STSP-Net task {task!r}; expected one of {', '.join(TASKS)}")


def complexity_inputs(
    config: STSPConfig, batch: int = 1, size: tuple[int, int] = (256, 256)
) -> dict[str, torch.Tensor]:
    """A valid input dict for ``STSPNet(config)(inputs, task="full")``, for complexity and latency benches.

    Args:
        config: the model's config (its ``window`` sets T, ``use_motion`` whether flow is included).
        batch: B.
        size: crop (H, W).

    Returns:
        ``tube`` (B, T, H, W, 3) uint8 and, with ``use_motion``, ``flow`` (B, T−1, H, W, 2) float32 px;
        seeded random content.
    """
    g = torch.Generator().manual_seed(0)
    h, w = size
    t = config.window
    inputs = {"tube": torch.randint(0, 256, (batch, t, h, w, 3), generator=g, dtype=torch.uint8)}
    if config.use_motion:
        inputs["flow"] = 2.0 * torch.randn(batch, t - 1, h, w, 2, generator=g)  # (B, T−1, H, W, 2) px
    if config.frame_position:
        inputs.update(example_placement(batch, size))
    return inputs


def example_placement(batch: int, size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """``affine`` (B, 2, 3) and ``frame_size`` (B, 2) of a crop of ``size`` (H, W) cut at half scale from the
    middle of a frame four crops wide and high: valid placement inputs for examples and benches."""
    h, w = size
    affine = torch.tensor([[0.5, 0.0, -0.75 * w], [0.0, 0.5, -0.75 * h]]).expand(batch, 2, 3).clone()
    return {"affine": affine, "frame_size": torch.tensor([4.0 * w, 4.0 * h]).expand(batch, 2).clone()}


__all__ = [
    "ADULT_BONE_LENGTHS_MM",
    "EPE",
    "GSR",
    "TMP",
    "GraphAttention",
    "TrackHistory",
    "STSPConfig",
    "STSPNet",
    "complexity_inputs",
    "example_placement",
    "frame_positions",
    "incoming_flow",
    "motion_weights",
    "sample_joint_features",
    "soft_argmax",
]
