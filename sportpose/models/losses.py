"""Training losses on 3D (and 2D) joint trajectories: position, skeleton, joint-angle and temporal terms.

Plain torch functions, differentiable everywhere they are used (the angle uses ``atan2`` of a softened cross
product, so straight limbs at 180 degrees do not produce NaN gradients). They are the losses of STSP-Net
(SPEC §5) and are written so any lifting model can reuse them.

Conventions:
    * Joints are ``(..., J, D)``; sequences are ``(..., T, J, D)`` with time at dim -3.
    * Every loss is unit-preserving: it returns the unit of its input (or its square), whatever that is.
      STSP-Net feeds metres (its regression unit) so that the terms are O(1) and balance with weights of 1;
      the docstrings give the unit for input in mm, the project's unit for 3D joints.
    * Angles are radians inside; angle limits are given in degrees, as tabled in
      :mod:`sportpose.models.skeleton`.

The evaluation metrics (MPJPE, MPJVE, acceleration error, ...) in numpy live in
``sportpose.evaluation.metrics``; these are their training counterparts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def _weighted_mean(values: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``values`` (...), weighted by ``weight`` broadcastable to it; 0 when all weights are 0."""
    if weight is None:
        return values.mean()
    weight = weight.to(values.dtype).expand_as(values)
    return (values * weight).sum() / weight.sum().clamp_min(1e-8)


def mpjpe_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean per-joint position error: mean Euclidean distance between predicted and target joints.

    Human3.6M's Protocol #1 when both poses are root-relative. Also STSP-Net's ``L_seq`` ("temporal MPJPE"):
    the same mean taken over every frame of a window.

    Args:
        pred, target: (..., J, 3) joints, e.g. mm.
        weight: optional (..., J) per-joint weights (0 drops a joint, e.g. one without 3D ground truth).

    Returns:
        Scalar, in the input unit (mm for mm).
    """
    dist = torch.linalg.vector_norm(pred - target, dim=-1)  # (..., J)
    return _weighted_mean(dist, weight)


def bone_lengths(joints: torch.Tensor, edges: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Length of each skeleton edge.

    Args:
        joints: (..., J, D).
        edges: E pairs of joint indices.

    Returns:
        (..., E) lengths, in the input unit.
    """
    a = [i for i, _ in edges]
    b = [j for _, j in edges]
    return torch.linalg.vector_norm(joints[..., a, :] - joints[..., b, :], dim=-1)  # (..., E)


def bone_length_loss(
    joints: torch.Tensor, edges: Sequence[tuple[int, int]], reference: torch.Tensor
) -> torch.Tensor:
    """Skeletal consistency: ``mean |‖P_i − P_j‖ − l_ij|`` over the edges (STSP-Net's ``L_skel``, eq. 15).

    Args:
        joints: (..., J, 3) predicted joints, e.g. mm.
        edges: E pairs of joint indices.
        reference: reference lengths ``l_ij`` in the unit of ``joints``, broadcastable to (..., E): (E,) for
            one template, (B, 1, E) per sample of a (B, T, J, 3) batch (e.g. per body-scale group).

    Returns:
        Scalar, in the input unit (mm for mm).
    """
    return (bone_lengths(joints, edges) - reference).abs().mean()


def joint_angles(joints: torch.Tensor, triples: torch.Tensor) -> torch.Tensor:
    """Interior angles at the middle joint of each triple ``(a, b, c)``: the angle between b→a and b→c.

    ``atan2(‖u × v‖, u · v)`` is accurate near 0 and 180 degrees, where ``acos`` loses precision; the
    cross-product norm is softened by 1e-12 (in squared input units) so that a straight limb has a finite
    gradient. 2D joints are treated as 3D with z = 0.

    Args:
        joints: (..., J, D), D = 2 or 3.
        triples: (A, 3) long tensor of joint indices.

    Returns:
        (..., A) angles in radians, in [0, π].
    """
    if joints.shape[-1] == 2:
        joints = torch.nn.functional.pad(joints, (0, 1))  # (..., J, 3)
    u = joints[..., triples[:, 0], :] - joints[..., triples[:, 1], :]  # (..., A, 3)
    v = joints[..., triples[:, 2], :] - joints[..., triples[:, 1], :]
    cross = torch.linalg.cross(u, v, dim=-1).pow(2).sum(-1).add(1e-12).sqrt()  # (..., A)
    dot = (u * v).sum(-1)
    return torch.atan2(cross, dot)  # (..., A)


def angle_limit_loss(
    joints: torch.Tensor, triples: torch.Tensor, min_deg: torch.Tensor, max_deg: torch.Tensor
) -> torch.Tensor:
    """Joint-angle constraint: mean hinge ``max(0, θ − θ_max) + max(0, θ_min − θ)``.

    STSP-Net's ``L_angle`` (paper eq. 16).

    Args:
        joints: (..., J, 3) predicted joints (any length unit: angles do not depend on it).
        triples: (A, 3) long tensor ``(a, b, c)``, the angle sits at ``b``.
        min_deg, max_deg: (A,) physiological limits in degrees (``JointSet.angle_limits``).

    Returns:
        Scalar: mean over triples (and leading dims) of the violation in radians; 0 inside the limits.
    """
    theta = joint_angles(joints, triples)  # (..., A)
    lo = min_deg.to(theta) * (math.pi / 180.0)
    hi = max_deg.to(theta) * (math.pi / 180.0)
    return (torch.relu(theta - hi) + torch.relu(lo - theta)).mean()


def velocity_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Velocity error: ``mean ‖v̂_t − v_t‖²`` with ``v_t = P_t − P_{t−1}`` (SPEC §5's ``L_vel``).

    The squared counterpart of MPJVE. SPEC §5 replaces the paper's eq. 19 (which is the acceleration of the
    prediction again) by this velocity error against the ground truth.

    Args:
        pred, target: (..., T, J, D) trajectories, T >= 2, e.g. mm.

    Returns:
        Scalar in (input unit / frame)² (mm²/frame² for mm); 0 when T < 2.
    """
    if pred.shape[-3] < 2:
        return pred.new_zeros(())
    v_pred = pred.diff(dim=-3)  # (..., T-1, J, D)
    v_true = target.diff(dim=-3)
    return (v_pred - v_true).pow(2).sum(-1).mean()


def acceleration_loss(points: torch.Tensor) -> torch.Tensor:
    """Squared acceleration of a trajectory: ``mean ‖P_t − 2P_{t−1} + P_{t−2}‖²`` over frames and joints.

    STSP-Net uses it twice: as EPE's local trajectory constraint ``L_smooth`` on 2D keypoints (eq. 8) and as
    TMP's ``L_acc`` on the predicted 3D trajectory (eq. 20). It pulls towards constant velocity, not towards
    the ground truth's acceleration (that is the TS / acceleration-error metric).

    Args:
        points: (..., T, J, D) trajectories, e.g. 2D keypoints or 3D joints in mm.

    Returns:
        Scalar in (input unit / frame²)² (mm²/frame⁴ for mm); 0 when T < 3.
    """
    if points.shape[-3] < 3:
        return points.new_zeros(())
    acc = points.diff(n=2, dim=-3)  # (..., T-2, J, D)
    return acc.pow(2).sum(-1).mean()


# The local trajectory constraint of STSP-Net's EPE (eq. 8) is the acceleration penalty on 2D keypoints.
trajectory_smoothness_loss = acceleration_loss
