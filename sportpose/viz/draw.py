"""Drawing poses on images with OpenCV: skeletons, boxes, labels, polygons, and contact sheets.

Shared by ``sportpose data inspect``, inference overlays and evaluation reports. Every function works on an
RGB uint8 image of shape (H, W, 3), draws in place and returns the image, so calls chain; every size
(line thickness, joint radius, font) defaults to one that scales with the image, so an overlay reads the
same on a 320 px SynthCourt frame and a 1920 px PoseTrack frame.

Colours follow the body side of each joint, from its name (``left_*`` / ``l_*`` and ``right_*`` / ``r_*``,
the naming of every joint set in `sportpose.models.skeleton`): the person's left in green, the person's
right in orange, the midline in blue (MMPose's palette). An edge takes the side of its joints; an edge
across the body (shoulder to shoulder) or along the midline is blue. A person seen from the front therefore
has green limbs on the image's right.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from sportpose.models.skeleton import JointSet

# RGB
LEFT = (0, 220, 0)
RIGHT = (255, 140, 0)
CENTRE = (50, 150, 255)
SIDE_COLOURS = {"left": LEFT, "right": RIGHT, "centre": CENTRE}
IGNORE = (255, 0, 255)  # PoseTrack ignore regions
TEXT = (255, 255, 255)
SHEET_BACKGROUND = (24, 24, 24)


def joint_side(name: str) -> str:
    """``left``, ``right`` or ``centre`` from a joint name (``left_knee``, ``l_knee``, ``r_hip``, ``nose``)."""
    lower = name.lower()
    if lower.startswith(("left_", "l_")):
        return "left"
    if lower.startswith(("right_", "r_")):
        return "right"
    return "centre"


def edge_side(joint_set: JointSet, a: int, b: int) -> str:
    """The side an edge is drawn in: a side both ends share or one end has while the other is on the midline."""
    sides = {joint_side(joint_set.joints[a]), joint_side(joint_set.joints[b])} - {"centre"}
    return sides.pop() if len(sides) == 1 else "centre"


def default_thickness(image: np.ndarray) -> int:
    """Line thickness in pixels for an image: short side / 180 (1 px at 240 px, 3 px at 480, 6 px at 1080)."""
    return max(1, int(round(min(image.shape[:2]) / 180)))


def track_colour(track_id: int) -> tuple[int, int, int]:
    """A saturated RGB colour per track id, far apart for consecutive ids (golden-ratio hue steps)."""
    hue = int(((int(track_id) * 0.6180339887498949) % 1.0) * 180)  # OpenCV hue range 0..179
    hsv = np.array([[[hue, 200, 255]]], dtype=np.uint8)
    r, g, b = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    return int(r), int(g), int(b)


def _point(xy) -> tuple[int, int]:
    return int(round(float(xy[0]))), int(round(float(xy[1])))


def visible_joints(keypoints: np.ndarray, scores: np.ndarray | None = None, threshold: float = 0.0) -> np.ndarray:
    """Which joints to draw: finite, not PoseTrack's ``0, 0, 0`` "unlabeled", visibility > 0 where given,
    and score >= threshold where scores are given.

    Args:
        keypoints: (K, 2) x, y or (K, 3) x, y, v pixels.
        scores: (K,) per-joint scores, or None.
        threshold: minimum score.

    Returns:
        (K,) bool.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    show = np.isfinite(kp[:, :2]).all(axis=1) & ~(kp[:, :2] == 0).all(axis=1)
    if kp.shape[1] > 2:
        show &= np.nan_to_num(kp[:, 2]) > 0
    if scores is not None:
        show &= np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf) >= threshold
    return show


def draw_skeleton(
    image: np.ndarray,
    keypoints: np.ndarray,
    joint_set: JointSet,
    scores: np.ndarray | None = None,
    threshold: float = 0.0,
    thickness: int | None = None,
    colours: dict[str, tuple[int, int, int]] = SIDE_COLOURS,
) -> np.ndarray:
    """Draw one person's skeleton: edges between shown joints, then the joints on top.

    Args:
        image: (H, W, 3) uint8 RGB, drawn on in place.
        keypoints: (K, 2) or (K, 3) pixels (x, y[, v]), K = ``joint_set.num_joints``.
        joint_set: names (for the side colours) and edges.
        scores: (K,) per-joint scores (predictions), or None.
        threshold: joints scored below it are not drawn.
        thickness: line thickness in pixels (default: `default_thickness`); joints get radius thickness + 1.
        colours: RGB per side (``left``, ``right``, ``centre``).

    Returns:
        ``image``.

    Raises:
        ValueError: ``keypoints`` has another number of joints than the joint set.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 2 or kp.shape[0] != joint_set.num_joints or kp.shape[1] not in (2, 3):
        raise ValueError(f"expected ({joint_set.num_joints}, 2|3) keypoints for joint set {joint_set.name!r}, got {kp.shape}")
    t = thickness or default_thickness(image)
    show = visible_joints(kp, scores, threshold)
    for a, b in joint_set.edges:
        if show[a] and show[b]:
            cv2.line(image, _point(kp[a]), _point(kp[b]), colours[edge_side(joint_set, a, b)], t, cv2.LINE_AA)
    for j in np.flatnonzero(show):
        centre = _point(kp[j])
        cv2.circle(image, centre, t + 1, colours[joint_side(joint_set.joints[j])], -1, cv2.LINE_AA)
        cv2.circle(image, centre, t + 1, (0, 0, 0), 1, cv2.LINE_AA)  # dark rim: joints stand out on any limb
    return image


def draw_box(
    image: np.ndarray,
    box: Sequence[float],
    colour: tuple[int, int, int],
    thickness: int | None = None,
    label: str | None = None,
) -> np.ndarray:
    """Draw a box ``[x, y, w, h]`` (pixels), with an optional label on a filled tab at its top-left corner.

    Args:
        image: (H, W, 3) uint8 RGB, drawn on in place.
        box: x, y, width, height in pixels.
        colour: RGB.
        thickness: line thickness (default: half of `default_thickness`, at least 1).
        label: text, e.g. a track id.

    Returns:
        ``image``.
    """
    x, y, w, h = (float(v) for v in box)
    t = thickness or max(1, default_thickness(image) // 2)
    cv2.rectangle(image, _point((x, y)), _point((x + w, y + h)), colour, t)  # axis-aligned: crisp without AA
    if label:
        draw_label(image, label, (x, y), background=colour)
    return image


def font_scale(image: np.ndarray) -> float:
    """OpenCV font scale for labels: short side / 720, at least 0.35 (0.67 at 480 px, 1.5 at 1080)."""
    return max(0.35, min(image.shape[:2]) / 720)


def draw_label(
    image: np.ndarray,
    text: str,
    origin: Sequence[float],
    colour: tuple[int, int, int] = TEXT,
    background: tuple[int, int, int] | None = (0, 0, 0),
    scale: float | None = None,
) -> np.ndarray:
    """Draw ``text`` with its top-left corner at ``origin`` (kept inside the image), on a filled tab.

    The text is black on light tabs and white on dark ones; ``colour`` applies when there is no tab.

    Returns:
        ``image``.
    """
    scale = scale or font_scale(image)
    weight = max(1, int(round(scale * 1.5)))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, weight)
    pad = max(1, int(round(2 * scale)))
    H, W = image.shape[:2]
    x = int(np.clip(round(float(origin[0])), 0, max(W - tw - 2 * pad, 0)))
    y = int(np.clip(round(float(origin[1])), 0, max(H - th - base - 2 * pad, 0)))
    if background is not None:
        cv2.rectangle(image, (x, y), (x + tw + 2 * pad, y + th + base + 2 * pad), background, -1)
        luminance = 0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2]
        colour = (0, 0, 0) if luminance > 140 else TEXT
    cv2.putText(image, text, (x + pad, y + pad + th), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, weight, cv2.LINE_AA)
    return image


def shade_polygons(
    image: np.ndarray, polygons: Sequence[np.ndarray], colour: tuple[int, int, int] = IGNORE, alpha: float = 0.35
) -> np.ndarray:
    """Shade polygons (each (N, 2) pixels) with a translucent fill and an outline, e.g. PoseTrack ignore regions.

    Returns:
        ``image``.
    """
    polys = [np.round(np.asarray(p, dtype=np.float64)).astype(np.int32).reshape(-1, 1, 2) for p in polygons if len(p) >= 3]
    if not polys:
        return image
    overlay = image.copy()
    cv2.fillPoly(overlay, polys, colour, cv2.LINE_AA)
    cv2.addWeighted(overlay, alpha, image, 1.0 - alpha, 0.0, dst=image)
    cv2.polylines(image, polys, True, colour, max(1, default_thickness(image) // 3), cv2.LINE_AA)
    return image


def draw_legend(image: np.ndarray, colours: dict[str, tuple[int, int, int]] = SIDE_COLOURS) -> np.ndarray:
    """The side colours as labelled tabs in the image's bottom-left corner ("left", "right", "centre").

    Returns:
        ``image``.
    """
    scale = font_scale(image) * 0.9
    x, H = 4, image.shape[0]
    for name, colour in colours.items():
        (tw, th), base = cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, int(round(scale * 1.5))))
        draw_label(image, name, (x, H - th - base - 8), background=colour, scale=scale)
        x += tw + 12
    return image


def contact_sheet(
    images: Sequence[np.ndarray],
    cols: int = 4,
    captions: Sequence[str] | None = None,
    tile_width: int | None = None,
    pad: int = 4,
) -> np.ndarray:
    """Lay images out on a grid, each scaled to ``tile_width`` (aspect kept, top-aligned), with a caption strip
    under each row.

    Args:
        images: RGB uint8 images, any sizes.
        cols: tiles per row (fewer when there are fewer images).
        captions: one line per image, or None.
        tile_width: width of every tile in pixels (default: the first image's width).
        pad: pixels between tiles and around the sheet.

    Returns:
        (H, W, 3) uint8 RGB sheet: W = cols * (tile_width + pad) + pad; rows as tall as their tallest tile.

    Raises:
        ValueError: no images, or captions of another length.
    """
    if not images:
        raise ValueError("contact_sheet needs at least one image")
    if captions is not None and len(captions) != len(images):
        raise ValueError(f"{len(captions)} captions for {len(images)} images")
    cols = max(1, min(cols, len(images)))
    tw = int(tile_width or images[0].shape[1])
    tiles = []
    for img in images:
        h = max(1, int(round(img.shape[0] * tw / img.shape[1])))
        interp = cv2.INTER_AREA if tw < img.shape[1] else cv2.INTER_LINEAR
        tiles.append(img if (img.shape[1], img.shape[0]) == (tw, h) else cv2.resize(img, (tw, h), interpolation=interp))
    scale = max(0.4, tw / 1100)
    weight = max(1, int(round(scale * 1.5)))
    cap_h = (cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, scale, weight)[0][1] + 12) if captions else 0
    rows = math.ceil(len(tiles) / cols)
    row_h = [max(t.shape[0] for t in tiles[r * cols : (r + 1) * cols]) + cap_h for r in range(rows)]
    sheet = np.full((pad + sum(h + pad for h in row_h), pad + cols * (tw + pad), 3), SHEET_BACKGROUND, np.uint8)
    y = pad
    for r in range(rows):
        for c, tile in enumerate(tiles[r * cols : (r + 1) * cols]):
            x = pad + c * (tw + pad)
            sheet[y : y + tile.shape[0], x : x + tw] = tile
            if captions:
                text = _fit(captions[r * cols + c], tw - 8, scale, weight)
                cv2.putText(sheet, text, (x + 4, y + row_h[r] - 6), cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT, weight,
                            cv2.LINE_AA)  # captions of a row on one line, under its tallest tile
        y += row_h[r] + pad
    return sheet


def _fit(text: str, width: int, scale: float, weight: int) -> str:
    """``text`` shortened with an ellipsis to fit ``width`` pixels."""
    if cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, weight)[0][0] <= width:
        return text
    while text and cv2.getTextSize(text + "...", cv2.FONT_HERSHEY_SIMPLEX, scale, weight)[0][0] > width:
        text = text[:-1]
    return text + "..."


def write_png(path, image: np.ndarray) -> None:
    """Write an RGB uint8 image as PNG (OpenCV writes BGR, so the channels are swapped here, once).

    Raises:
        OSError: the file cannot be written.
    """
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{path}: OpenCV could not write the PNG")
