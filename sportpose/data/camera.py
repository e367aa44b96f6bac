"""Pinhole camera: intrinsics, world->camera extrinsics, projection, near-plane clipping.

Conventions (the same as OpenCV and as VideoPose3D's ``camera.py``):

- world and camera coordinates are in mm; the camera frame has x to the right, y down, z forward (depth);
- ``X_cam = R @ X_world + t`` (world->camera), so the camera centre in the world is ``-R.T @ t``;
- pixels: ``u = fx * x / z + cx``, ``v = fy * y / z + cy``, the origin at the top-left corner of the top-left
  pixel's centre as OpenCV draws it; no lens distortion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def intrinsics(focal_px: float, cx: float, cy: float) -> np.ndarray:
    """(3, 3) intrinsic matrix K of a pinhole camera with square pixels and no skew; focal length in px."""
    return np.array([[focal_px, 0.0, cx], [0.0, focal_px, cy], [0.0, 0.0, 1.0]])


def look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0), roll_deg: float = 0.0):
    """World->camera rotation and translation of a camera at ``eye`` looking at ``target`` (mm).

    Args:
        eye: (3,) camera centre in world mm.
        target: (3,) point on the optical axis in world mm.
        up: world up direction; the image's "up" (-y) is its projection.
        roll_deg: rotation of the image about the optical axis, degrees (positive = clockwise on screen).

    Returns:
        R (3, 3) and t (3,), with ``X_cam = R @ X_world + t``.
    """
    eye, target, up = (np.asarray(a, dtype=np.float64) for a in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)  # right = forward x up  (camera y points down)
    if np.linalg.norm(x) < 1e-9:
        raise ValueError("look_at: the viewing direction is parallel to the up vector")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])  # rows: camera axes in world coordinates
    if roll_deg:
        a = np.radians(roll_deg)
        c, s = np.cos(a), np.sin(a)
        R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ R
    return R, -R @ eye


def project(K: np.ndarray, points_cam: np.ndarray) -> np.ndarray:
    """Pixel coordinates of camera-frame points.

    Args:
        K: (3, 3) intrinsics.
        points_cam: (..., 3) points in camera coordinates, mm, z > 0.

    Returns:
        (..., 2) pixel coordinates (u, v).
    """
    p = np.asarray(points_cam, dtype=np.float64)
    z = p[..., 2:3]
    return np.concatenate([K[0, 0] * p[..., 0:1] / z + K[0, 2], K[1, 1] * p[..., 1:2] / z + K[1, 2]], axis=-1)


def clip_polygon_near(poly_cam: np.ndarray, near: float) -> np.ndarray:
    """Sutherland-Hodgman clip of a planar polygon against the plane z = near (camera frame, mm).

    Ground-plane shapes (court lines, floor, stands) extend behind the camera; projecting them unclipped
    would fold them through infinity.

    Args:
        poly_cam: (N, 3) polygon vertices in camera coordinates.
        near: near-plane depth, mm.

    Returns:
        (M, 3) the part with z >= near (M = 0 when nothing is in front).
    """
    out = []
    n = len(poly_cam)
    for i in range(n):
        a, b = poly_cam[i], poly_cam[(i + 1) % n]
        a_in, b_in = a[2] >= near, b[2] >= near
        if a_in:
            out.append(a)
        if a_in != b_in:
            s = (near - a[2]) / (b[2] - a[2])
            out.append(a + s * (b - a))
    return np.array(out).reshape(-1, 3)


def clip_polyline_near(line_cam: np.ndarray, near: float) -> list[np.ndarray]:
    """Split an open polyline (N, 3) in camera coordinates into the pieces with z >= near."""
    pieces, cur = [], []
    for i in range(len(line_cam)):
        p = line_cam[i]
        if i > 0:
            q = line_cam[i - 1]
            if (q[2] >= near) != (p[2] >= near):
                s = (near - q[2]) / (p[2] - q[2])
                x = q + s * (p - q)
                cur.append(x)
                if p[2] < near:
                    pieces.append(np.array(cur))
                    cur = []
        if p[2] >= near:
            cur.append(p)
    if len(cur) > 1:
        pieces.append(np.array(cur))
    return [c for c in pieces if len(c) > 1]


@dataclass(frozen=True, eq=False)
class Camera:
    """A fixed pinhole camera: intrinsics K (px), world->camera R, t (mm), image size (px)."""

    K: np.ndarray  # (3, 3)
    R: np.ndarray  # (3, 3)
    t: np.ndarray  # (3,) mm
    width: int
    height: int

    @property
    def center(self) -> np.ndarray:
        """(3,) camera centre in world mm."""
        return -self.R.T @ self.t

    @property
    def focal(self) -> float:
        return float(self.K[0, 0])

    def to_camera(self, points_world: np.ndarray) -> np.ndarray:
        """(..., 3) world mm -> (..., 3) camera mm."""
        return np.asarray(points_world, dtype=np.float64) @ self.R.T + self.t

    def project_world(self, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(..., 3) world mm -> pixels (..., 2) and depths (...,) in mm."""
        cam = self.to_camera(points_world)
        return project(self.K, cam), cam[..., 2]

    def inside(self, uv: np.ndarray, margin_x: float = 0.0, margin_y: float = 0.0) -> np.ndarray:
        """(...,) bool: pixel coordinates inside the frame shrunk by the margins (px)."""
        u, v = uv[..., 0], uv[..., 1]
        return (
            (u >= margin_x) & (u <= self.width - 1 - margin_x) & (v >= margin_y) & (v <= self.height - 1 - margin_y)
        )
