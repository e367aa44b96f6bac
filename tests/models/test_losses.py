"""3D losses: MPJPE, bone lengths, joint-angle hinge, velocity and acceleration terms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sportpose.models import losses
from sportpose.models.skeleton import H36M, joint_angles


def test_mpjpe_is_the_mean_distance():
    pred = torch.zeros(2, 4, 3)
    target = torch.zeros(2, 4, 3)
    target[..., 0] = 3.0
    target[..., 1] = 4.0  # every joint 5 units off
    assert losses.mpjpe_loss(pred, target).item() == pytest.approx(5.0)
    weight = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    target[0, 0] = torch.tensor([1.0, 0.0, 0.0])
    assert losses.mpjpe_loss(pred, target, weight).item() == pytest.approx(1.0)
    assert losses.mpjpe_loss(pred, target, torch.zeros(2, 4)).item() == 0.0  # no labeled joint: no NaN


def _chain(lengths: list[float]) -> torch.Tensor:
    """Joints along a zig-zag whose consecutive segments have ``lengths``."""
    points = [torch.zeros(3)]
    for i, length in enumerate(lengths):
        direction = torch.tensor([1.0, 1.0 if i % 2 else -1.0, 0.5])
        points.append(points[-1] + length * direction / direction.norm())
    return torch.stack(points)  # (len + 1, 3)


def test_bone_length_loss_zero_at_reference_and_linear_in_error():
    ref = torch.tensor([300.0, 250.0, 120.0])
    edges = [(0, 1), (1, 2), (2, 3)]
    pose = _chain(ref.tolist())
    assert losses.bone_length_loss(pose, edges, ref).item() == pytest.approx(0.0, abs=1e-4)
    longer = _chain((ref + 10.0).tolist())
    assert losses.bone_length_loss(longer, edges, ref).item() == pytest.approx(10.0, abs=1e-3)
    # per-sample references broadcast over time: (B, T, J, 3) against (B, 1, E)
    batch = torch.stack([pose, longer])[:, None].expand(2, 5, 4, 3)
    per_sample = torch.stack([ref, ref + 10.0])[:, None]
    assert losses.bone_length_loss(batch, edges, per_sample).item() == pytest.approx(0.0, abs=1e-3)


def test_joint_angles_match_the_numpy_reference():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(4, 17, 3)) * 300.0
    triples = torch.tensor([a.joints for a in H36M.angle_limits])
    ours = torch.rad2deg(losses.joint_angles(torch.from_numpy(points), triples)).numpy()
    np.testing.assert_allclose(ours, joint_angles(points, H36M), atol=1e-5)


def _angle_pose(deg: float) -> torch.Tensor:
    """Three joints with the interior angle ``deg`` at the middle one."""
    rad = math.radians(deg)
    return torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [math.cos(rad), math.sin(rad), 0.0]]) * 250.0


def test_angle_loss_zero_inside_positive_outside():
    triples = torch.tensor([[0, 1, 2]])
    lo, hi = torch.tensor([25.0]), torch.tensor([170.0])
    for inside in (25.5, 90.0, 169.5):
        assert losses.angle_limit_loss(_angle_pose(inside), triples, lo, hi).item() == pytest.approx(0.0, abs=1e-6)
    too_closed = losses.angle_limit_loss(_angle_pose(10.0), triples, lo, hi)
    too_open = losses.angle_limit_loss(_angle_pose(179.0), triples, lo, hi)
    assert too_closed.item() == pytest.approx(math.radians(15), abs=1e-4)
    assert too_open.item() == pytest.approx(math.radians(9), abs=1e-3)


def test_angle_gradient_is_finite_for_straight_and_folded_limbs():
    triples = torch.tensor([[0, 1, 2]])
    for deg in (180.0, 0.0):
        pose = _angle_pose(deg).requires_grad_(True)
        losses.angle_limit_loss(pose, triples, torch.tensor([25.0]), torch.tensor([175.0])).backward()
        assert torch.isfinite(pose.grad).all()


def test_velocity_loss():
    t = torch.arange(6.0)[:, None, None]  # (T, 1, 1)
    target = t * torch.tensor([1.0, 0.0, 0.0])  # (T, 1, 3): 1 unit / frame along x
    assert losses.velocity_loss(target, target).item() == 0.0
    assert losses.velocity_loss(target + 100.0, target).item() == 0.0  # an offset has no velocity error
    faster = 3.0 * target  # 2 units / frame too fast
    assert losses.velocity_loss(faster, target).item() == pytest.approx(4.0)
    assert losses.velocity_loss(target[:1], target[:1]).item() == 0.0  # a single frame has no velocity


def test_acceleration_loss():
    t = torch.arange(7.0)[:, None, None]
    constant_velocity = t * torch.tensor([2.0, -1.0, 0.5])  # (T, 1, 3)
    assert losses.acceleration_loss(constant_velocity).item() == pytest.approx(0.0, abs=1e-6)
    parabola = (t**2) * torch.tensor([1.0, 0.0, 0.0])  # second difference 2 every frame
    assert losses.acceleration_loss(parabola).item() == pytest.approx(4.0)
    assert losses.acceleration_loss(parabola[:2]).item() == 0.0
    # L_smooth of EPE is the same penalty on 2D trajectories
    assert losses.trajectory_smoothness_loss(parabola[..., :2]).item() == pytest.approx(4.0)
