"""Cutting samples: person crops through an affine transform, Gaussian heatmap targets, augmentation.

Conventions (SPEC §3.3): a person box is enlarged ``box_scale`` times and widened or heightened to the
crop's aspect ratio; the crop affine maps image pixels to crop pixels (pixel centres at integer
coordinates); heatmaps live at stride 4 with a joint at crop position p drawn at ``(p + 0.5) / 4 - 0.5``
(the inverse of :func:`sportpose.models.heatmaps.heatmap_to_crop`).

Augmentation keeps every target exact: keypoints are mapped through the one affine the pixels were warped
with; a flip swaps left and right joints (``JointSet.flip_permutation``) and mirrors the flow (x component
negated); 3D joints follow the crop as a camera roll (the in-plane rotation) and a mirror (X negated, joints
swapped), so that the 2D and 3D targets of a sample describe the same picture.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sportpose.models.heatmaps import HEATMAP_STRIDE


@dataclass(frozen=True)
class CropTransform:
    """One person crop: the box it came from and the augmentation applied to it."""

    center: tuple[float, float]  # box centre, image pixels
    size: tuple[float, float]  # enlarged box (w, h) at the crop's aspect ratio, image pixels
    rotation: float = 0.0  # degrees, counter-clockwise
    flip: bool = False  # horizontal flip (joints must be swapped with the joint set's flip pairs)


def box_to_crop(bbox: np.ndarray, out_size: tuple[int, int], box_scale: float = 1.25) -> CropTransform:
    """Person box ``[x, y, w, h]`` to a crop of the output aspect ratio, enlarged ``box_scale`` times.

    Args:
        out_size: crop (H, W).
    """
    x, y, w, h = (float(v) for v in bbox)
    aspect = out_size[1] / out_size[0]  # W / H
    if w > aspect * h:
        h = w / aspect
    else:
        w = h * aspect
    return CropTransform(center=(x + bbox[2] / 2.0, y + bbox[3] / 2.0), size=(w * box_scale, h * box_scale))


def crop_affine(crop: CropTransform, out_size: tuple[int, int], scale: float = 1.0) -> np.ndarray:
    """The (2, 3) affine matrix mapping image pixels to crop pixels.

    Args:
        crop: the crop; ``scale`` > 1 zooms out (a larger image region), as scale augmentation does.
        out_size: crop (H, W).
    """
    out_h, out_w = out_size
    cx, cy = crop.center
    s = out_w / (crop.size[0] * scale)  # crop pixels per image pixel
    theta = np.deg2rad(crop.rotation)
    cos, sin = np.cos(theta) * s, np.sin(theta) * s
    # x' = s R (x - c) + o, with R rotating counter-clockwise in image coordinates (y down).
    ox, oy = (out_w - 1) / 2.0, (out_h - 1) / 2.0
    m = np.array([[cos, sin, 0.0], [-sin, cos, 0.0]])
    m[:, 2] = np.array([ox, oy]) - m[:, :2] @ np.array([cx, cy])
    if crop.flip:
        m = np.array([[-1.0, 0.0, out_w - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([m, [0.0, 0.0, 1.0]])
    return m.astype(np.float64)


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine matrix."""
    return cv2.invertAffineTransform(np.asarray(m, dtype=np.float64))


def transform_points(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine to (..., 2) points."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The (2, 3) affine applying ``inner`` first, then ``outer``."""
    return outer[:, :2] @ np.vstack([inner, [0.0, 0.0, 1.0]])[:2] + np.hstack([np.zeros((2, 2)), outer[:, 2:]])


def warp(image: np.ndarray, m: np.ndarray, out_size: tuple[int, int], out: np.ndarray | None = None) -> np.ndarray:
    """Crop ``image`` (H, W, 3) uint8 through the affine ``m`` to out_size (H, W); outside is black.

    Args:
        out: a C-contiguous (H, W, 3) uint8 array to write into (saves a copy), or None.
    """
    return cv2.warpAffine(image, m, (out_size[1], out_size[0]), dst=out, flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def flip_images(images: np.ndarray) -> np.ndarray:
    """Mirror (..., H, W, C) images left-right; exactly the crop flip ``x' = W - 1 - x``."""
    return np.ascontiguousarray(images[..., ::-1, :])


def flip_flow(flow: np.ndarray) -> np.ndarray:
    """Mirror a (..., H, W, 2) flow field left-right: positions mirrored, x component negated."""
    out = np.ascontiguousarray(flow[..., ::-1, :])
    out[..., 0] *= -1.0
    return out


def joints_3d_to_crop(joints: np.ndarray, rotation: float, flip: bool, flip_permutation: np.ndarray) -> np.ndarray:
    """Root-relative camera-frame 3D joints as the augmented crop shows them.

    The crop's in-plane rotation is a roll of the camera about its optical axis, applied to (X, Y) with the
    crop affine's own rotation matrix (camera x right, y down, like image pixels); a flip mirrors X and swaps
    left and right joints. Depth and millimetres are unchanged (scale augmentation only zooms the picture).

    Args:
        joints: (..., J, 3) mm.
        rotation: degrees, counter-clockwise on screen (``CropTransform.rotation``).

    Returns:
        (..., J, 3) mm.
    """
    theta = np.deg2rad(rotation)
    rot = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    out = np.array(joints, dtype=np.float64)
    out[..., :2] = out[..., :2] @ rot.T
    if flip:
        out[..., 0] *= -1.0
        out = out[..., flip_permutation, :]
    return out


def gaussian_heatmaps(
    keypoints: np.ndarray, visible: np.ndarray, out_size: tuple[int, int], sigma: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian targets at stride 4 and per-joint target weights.

    Args:
        keypoints: (..., K, 2) crop pixel coordinates.
        visible: (..., K) bool: the joint is labeled (and should be learned).
        out_size: crop (H, W).
        sigma: Gaussian sigma in heatmap pixels.

    Returns:
        heatmaps (..., K, H/4, W/4) float32 with peak 1, and weights (..., K) float32: 1 for labeled joints
        whose peak lies inside the heatmap, else 0.
    """
    h, w = out_size[0] // HEATMAP_STRIDE, out_size[1] // HEATMAP_STRIDE
    lead = np.shape(keypoints)[:-1]  # (..., K)
    mu = (np.asarray(keypoints, dtype=np.float64).reshape(-1, 2) + 0.5) / HEATMAP_STRIDE - 0.5  # (N, 2) heatmap px
    inside = (mu[:, 0] >= -0.5) & (mu[:, 0] <= w - 0.5) & (mu[:, 1] >= -0.5) & (mu[:, 1] <= h - 0.5)
    visible = np.asarray(visible, dtype=bool).reshape(-1)
    weight = (visible & inside & np.isfinite(mu).all(axis=1)).astype(np.float32)  # (N,)
    xs = np.arange(w, dtype=np.float64)
    ys = np.arange(h, dtype=np.float64)
    mu = np.nan_to_num(mu)
    gx = np.exp(-((xs[None, :] - mu[:, :1]) ** 2) / (2 * sigma**2))  # (N, w)
    gy = np.exp(-((ys[None, :] - mu[:, 1:]) ** 2) / (2 * sigma**2))  # (N, h)
    heatmaps = (gy[:, :, None] * gx[:, None, :]).astype(np.float32)  # (N, h, w)
    heatmaps *= weight[:, None, None]
    return heatmaps.reshape(*lead, h, w), weight.reshape(lead)  # (..., K, h, w), (..., K)


@dataclass(frozen=True)
class Augmentation:
    """One draw of the training augmentation, applied identically to every frame of a tube."""

    flip: bool = False
    rotation: float = 0.0
    scale: float = 1.0
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0

    @staticmethod
    def draw(rng: np.random.Generator, flip: bool, rotation: float, scale: tuple[float, float], jitter: float,
             probability: float = 1.0) -> "Augmentation":
        if rng.random() >= probability:
            return Augmentation()
        return Augmentation(
            flip=bool(flip and rng.random() < 0.5),
            rotation=float(rng.uniform(-rotation, rotation)) if rng.random() < 0.6 else 0.0,
            scale=float(rng.uniform(*scale)),
            brightness=float(rng.uniform(1 - jitter, 1 + jitter)),
            contrast=float(rng.uniform(1 - jitter, 1 + jitter)),
            saturation=float(rng.uniform(1 - jitter, 1 + jitter)),
        )

    @property
    def geometric(self) -> bool:
        return self.flip or self.rotation != 0.0 or self.scale != 1.0

    def apply_colour(self, images: np.ndarray) -> np.ndarray:
        """Colour jitter on (..., H, W, 3) uint8 images, in place where possible; returns the images.

        Brightness b scales the values, contrast c pivots on each image's mean, saturation s pulls each
        pixel towards its grey value: ``x' = c b (s x + (1 - s) grey(x)) + (1 - c) b mean(x)``, one 3x4
        colour matrix per image (``cv2.transform``, rounded and saturated to uint8).
        """
        if self.brightness == self.contrast == self.saturation == 1.0:
            return images
        b, c, s = self.brightness, self.contrast, self.saturation
        linear = c * b * (s * np.eye(3) + (1.0 - s) / 3.0 * np.ones((3, 3)))  # (3, 3)
        if not (images.flags.c_contiguous and images.flags.writeable):
            images = images.copy()
        flat = images.reshape(-1, *images.shape[-3:])  # (N, H, W, 3)
        for image in flat:
            mean = float(np.mean(cv2.mean(image)[:3]))
            m = np.hstack([linear, np.full((3, 1), (1.0 - c) * b * mean)])  # (3, 4)
            cv2.transform(image, m, dst=image)
        return images
