"""Pose metrics in plain numpy, as the benchmarks define them (SPEC §7).

3D (Human3.6M protocols, VideoPose3D's ``common/loss.py`` conventions): inputs are (T, J, 3) or (N, J, 3)
arrays in mm; root-relative coordinates are the caller's job unless a function says otherwise.

2D: PCKh (MPII / PoseTrack head-normalised) and PCK of the box size, in percent.

PoseTrack multi-person AP: exactly poseval's ``evaluateAP`` (see `posetrack_ap`), in percent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sportpose.errors import DataError
from sportpose.models.skeleton import CONVERSIONS, POSETRACK15

if TYPE_CHECKING:
    from sportpose.data.formats import FrameAnnotation, PersonAnnotation, VideoAnnotation


def _pair(pred: np.ndarray, gt: np.ndarray, name: str, min_ndim: int = 2) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"{name}: prediction shape {pred.shape} differs from ground truth shape {gt.shape}")
    if pred.ndim < min_ndim:
        raise ValueError(f"{name}: expected at least {min_ndim} dimensions (..., J, C), got shape {pred.shape}")
    return pred, gt


def _frames(x: np.ndarray) -> np.ndarray:
    """(..., J, 3) -> (N, J, 3)."""
    return x.reshape(-1, *x.shape[-2:])


# --------------------------------------------------------------------------------------------------------------
# 3D


def mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean per-joint position error, "Protocol #1": mean Euclidean distance over frames and joints.

    Args:
        pred, gt: (..., J, 3) joints in mm (root-relative for the Human3.6M protocol).

    Returns:
        MPJPE in mm.
    """
    pred, gt = _pair(pred, gt, "mpjpe")
    return float(np.linalg.norm(pred - gt, axis=-1).mean())


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Align each frame of ``pred`` to ``gt`` with the best similarity transform (scale, rotation, translation).

    Orthogonal Procrustes per frame (Umeyama): the rotation comes from the SVD of the cross-covariance, with the
    sign of the last singular vector flipped when det < 0, so the result is a proper rotation, never a
    reflection (a mirrored pose keeps its error).

    Args:
        pred, gt: (..., J, 3).

    Returns:
        (..., J, 3) aligned prediction.
    """
    pred, gt = _pair(pred, gt, "procrustes_align")
    p, g = _frames(pred), _frames(gt)  # (N, J, 3)
    mu_p, mu_g = p.mean(axis=1, keepdims=True), g.mean(axis=1, keepdims=True)  # (N, 1, 3)
    p0, g0 = p - mu_p, g - mu_g
    norm_p = np.sqrt((p0**2).sum(axis=(1, 2), keepdims=True))  # (N, 1, 1)
    norm_g = np.sqrt((g0**2).sum(axis=(1, 2), keepdims=True))
    norm_p = np.where(norm_p > 0, norm_p, 1.0)  # a collapsed prediction aligns to the GT centroid
    norm_g = np.where(norm_g > 0, norm_g, 1.0)
    p0, g0 = p0 / norm_p, g0 / norm_g
    h = np.einsum("nji,njk->nik", g0, p0)  # (N, 3, 3) cross-covariance g0ᵀ p0
    u, s, vt = np.linalg.svd(h)
    v = vt.transpose(0, 2, 1)
    rot = v @ u.transpose(0, 2, 1)  # (N, 3, 3), applied on the right: p0 @ rot ≈ g0
    # Reflection fix: a rotation with det = -1 is a mirror; flip the weakest axis instead.
    sign = np.where(np.linalg.det(rot) < 0, -1.0, 1.0)  # (N,)
    v[:, :, -1] *= sign[:, None]
    s[:, -1] *= sign
    rot = v @ u.transpose(0, 2, 1)
    scale = s.sum(axis=1)[:, None, None] * norm_g / norm_p  # (N, 1, 1)
    trans = mu_g - scale * (mu_p @ rot)  # (N, 1, 3)
    return (scale * (p @ rot) + trans).reshape(pred.shape)


def p_mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """MPJPE after per-frame rigid alignment with scale, "Protocol #2" (P-MPJPE, PA-MPJPE).

    Args:
        pred, gt: (..., J, 3) joints in mm.

    Returns:
        P-MPJPE in mm (see `procrustes_align`: rotation, scale, translation, never a reflection).
    """
    pred, gt = _pair(pred, gt, "p_mpjpe")
    return mpjpe(procrustes_align(pred, gt), gt)


def n_mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """MPJPE after the per-frame least-squares scale of the prediction, N-MPJPE (Rhodin et al. 2018).

    ``s = Σ pred·gt / Σ pred·pred`` over the joints of each frame, as VideoPose3D's ``n_mpjpe``. No
    translation: pass root-relative joints.

    Args:
        pred, gt: (..., J, 3) joints in mm.

    Returns:
        N-MPJPE in mm.
    """
    pred, gt = _pair(pred, gt, "n_mpjpe")
    p, g = _frames(pred), _frames(gt)  # (N, J, 3)
    den = (p * p).sum(axis=(1, 2), keepdims=True)
    scale = (p * g).sum(axis=(1, 2), keepdims=True) / np.where(den > 0, den, 1.0)  # (N, 1, 1)
    return mpjpe(scale * p, g)


def _time_diff(x: np.ndarray, order: int, name: str) -> np.ndarray:
    if x.ndim < 3 or x.shape[0] < order + 1:
        raise ValueError(f"{name}: expected (T, J, 3) with T >= {order + 1} frames, got shape {x.shape}")
    return np.diff(x, n=order, axis=0)


def mpjve(pred: np.ndarray, gt: np.ndarray, fps: float | None = None) -> float:
    """Mean per-joint velocity error (MPJVE, VideoPose3D's ``mean_velocity_error``).

    Mean over frames and joints of ``‖(pred[t+1] − pred[t]) − (gt[t+1] − gt[t])‖``.

    Args:
        pred, gt: (T, J, 3) one sequence in mm.
        fps: frames per second; when given the result is in mm/s instead of mm/frame.

    Returns:
        MPJVE in mm/frame (mm/s with ``fps``).
    """
    pred, gt = _pair(pred, gt, "mpjve")
    err = np.linalg.norm(_time_diff(pred, 1, "mpjve") - _time_diff(gt, 1, "mpjve"), axis=-1).mean()
    return float(err * (fps if fps is not None else 1.0))


def accel_error(pred: np.ndarray, gt: np.ndarray, fps: float | None = None) -> float:
    """Acceleration error, the temporal smoothness "TS" of SPEC §7.

    Mean over frames and joints of ``‖Δ²pred[t] − Δ²gt[t]‖`` with ``Δ²x[t] = x[t+1] − 2x[t] + x[t−1]``,
    per sequence.

    Args:
        pred, gt: (T, J, 3) one sequence in mm, T >= 3.
        fps: frames per second; when given the result is in mm/s² (multiplied by fps²).

    Returns:
        Acceleration error in mm/frame² (mm/s² with ``fps``).
    """
    pred, gt = _pair(pred, gt, "accel_error")
    err = np.linalg.norm(_time_diff(pred, 2, "accel_error") - _time_diff(gt, 2, "accel_error"), axis=-1).mean()
    return float(err * (fps**2 if fps is not None else 1.0))


def jitter(pred: np.ndarray, fps: float | None = None) -> float:
    """Jitter: mean norm of the prediction's second difference ``‖Δ²pred[t]‖`` over frames and joints.

    Args:
        pred: (T, J, 3) one sequence in mm, T >= 3.
        fps: frames per second; when given the result is in mm/s².

    Returns:
        Jitter in mm/frame² (mm/s² with ``fps``).
    """
    pred = np.asarray(pred, dtype=np.float64)
    err = np.linalg.norm(_time_diff(pred, 2, "jitter"), axis=-1).mean()
    return float(err * (fps**2 if fps is not None else 1.0))


def pck3d(pred: np.ndarray, gt: np.ndarray, threshold: float = 150.0) -> float:
    """3D PCK (MPI-INF-3DHP protocol): percentage of joints with error < ``threshold`` mm.

    Args:
        pred, gt: (..., J, 3) joints in mm (root-relative).
        threshold: distance in mm; strict inequality.

    Returns:
        PCK in percent.
    """
    pred, gt = _pair(pred, gt, "pck3d")
    return float(100.0 * (np.linalg.norm(pred - gt, axis=-1) < threshold).mean())


AUC3D_THRESHOLDS = np.linspace(0.0, 150.0, 31)  # mm, step 5


def auc3d(pred: np.ndarray, gt: np.ndarray) -> float:
    """Area under the 3D PCK curve: mean of `pck3d` over the 31 thresholds 0, 5, ..., 150 mm.

    Returns:
        AUC in percent.
    """
    pred, gt = _pair(pred, gt, "auc3d")
    err = np.linalg.norm(pred - gt, axis=-1)[..., None]  # (..., J, 1)
    return float(100.0 * (err < AUC3D_THRESHOLDS).mean())


# --------------------------------------------------------------------------------------------------------------
# 2D single-person PCK


def posetrack_head_size(bbox_head: np.ndarray) -> np.ndarray:
    """PoseTrack / MPII head size: 0.6 × the diagonal of the head box.

    Args:
        bbox_head: (..., 4) boxes ``[x, y, w, h]`` in pixels.

    Returns:
        (...,) head sizes in pixels.
    """
    box = np.asarray(bbox_head, dtype=np.float64)
    return 0.6 * np.hypot(box[..., 2], box[..., 3])


def _pck(pred, gt, visible, ref_size, alpha, name) -> dict:
    pred, gt = _pair(pred, gt, name, min_ndim=3)
    visible = np.asarray(visible, dtype=bool)
    ref = np.asarray(ref_size, dtype=np.float64)
    if visible.shape != pred.shape[:-1] or ref.shape != pred.shape[:1]:
        raise ValueError(
            f"{name}: expected visible {pred.shape[:-1]} and reference sizes {pred.shape[:1]}, "
            f"got {visible.shape} and {ref.shape}"
        )
    correct = (np.linalg.norm(pred - gt, axis=-1) <= alpha * ref[:, None]) & visible  # (N, J)
    n_vis = visible.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = np.where(n_vis > 0, 100.0 * correct.sum(axis=0) / n_vis, np.nan)
    mean = 100.0 * correct.sum() / visible.sum() if visible.any() else float("nan")
    return {"per_joint": per_joint, "mean": float(mean)}


def pckh(pred, gt, visible, head_size, alpha: float = 0.5) -> dict:
    """PCKh@alpha (MPII / PoseTrack): a joint is correct when its error ≤ alpha × head size.

    Args:
        pred, gt: (N, J, 2) keypoints in pixels.
        visible: (N, J) which GT joints are annotated; only they count.
        head_size: (N,) head sizes in pixels, 0.6 × head-box diagonal as PoseTrack (`posetrack_head_size`).
        alpha: threshold as a fraction of the head size (0.5: PCKh@0.5).

    Returns:
        ``{"per_joint": (J,) percent, NaN for a joint never annotated, "mean": percent over all annotated
        joints (pooled, as MPII's total)}``.
    """
    return _pck(pred, gt, visible, head_size, alpha, "pckh")


def pck_bbox(pred, gt, visible, box_size, alpha: float = 0.2) -> dict:
    """PCK@alpha of the box size: a joint is correct when its error ≤ alpha × box size.

    Args:
        pred, gt: (N, J, 2) keypoints in pixels.
        visible: (N, J) which GT joints are annotated.
        box_size: (N,) reference size of each person in pixels (the caller chooses, e.g. max(w, h) of the box).
        alpha: threshold as a fraction of the box size (0.2: PCK@0.2).

    Returns:
        ``{"per_joint": (J,) percent, NaN for a joint never annotated, "mean": percent over all annotated
        joints}``.
    """
    return _pck(pred, gt, visible, box_size, alpha, "pck_bbox")


# --------------------------------------------------------------------------------------------------------------
# PoseTrack multi-person AP (poseval)

# poseval's Joint(): ids 0..14 and names, the same order as skeleton.POSETRACK15.
POSEVAL_JOINTS = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    "neck", "nose", "head_top",
)
# poseval's getCum(): the columns of its table.
AP_GROUPS = {
    "Head": (14, 12, 13), "Shou": (8, 9), "Elb": (7, 10), "Wri": (6, 11), "Hip": (2, 3), "Knee": (1, 4),
    "Ankl": (0, 5),
}
POSEVAL_MIN_SCORE = -9999.0  # poseval's score for a predicted joint without one
POSEVAL_DIST_THRESHOLD = 0.5  # × head size
_TO_POSEVAL = np.array(CONVERSIONS[("posetrack", "posetrack15")])  # (15,) posetrack index per poseval id
assert len(POSETRACK15.joints) == len(POSEVAL_JOINTS)


@dataclass
class _Poses:
    """The persons of one frame in poseval's terms."""

    xy: np.ndarray  # (P, 15, 2) pixels
    has: np.ndarray  # (P, 15) joint present (poseval: not x == y == v == 0)
    scores: np.ndarray  # (P, 15)
    head: np.ndarray  # (P,) head size, NaN without a head box


def _poses(persons: list[PersonAnnotation]) -> _Poses:
    n = len(persons)
    kp = np.array([p.keypoints for p in persons], dtype=np.float64).reshape(n, 17, 3)[:, _TO_POSEVAL]  # (P, 15, 3)
    scores = np.full((n, 15), POSEVAL_MIN_SCORE)
    for k, p in enumerate(persons):
        if p.scores is not None:
            scores[k] = np.asarray(p.scores, dtype=np.float64)[_TO_POSEVAL]
    head = np.array([np.nan if p.bbox_head is None else posetrack_head_size(p.bbox_head) for p in persons])
    return _Poses(
        xy=kp[..., :2],
        has=~((kp[..., 0] == 0) & (kp[..., 1] == 0) & (kp[..., 2] == 0)),
        scores=scores,
        head=head.reshape(n),
    )


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Which points lie strictly inside a polygon (even-odd rule; boundary points are outside).

    Matches shapely's ``Polygon.contains`` used by poseval for simple polygons; a polygon of fewer than 3
    vertices contains nothing.

    Args:
        points: (M, 2).
        polygon: (N, 2) vertices, not repeated at the end.

    Returns:
        (M,) bool.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    if len(poly) < 3 or len(pts) == 0:
        return np.zeros(len(pts), dtype=bool)
    x, y = pts[:, :1], pts[:, 1:]  # (M, 1)
    x1, y1 = poly[:, 0], poly[:, 1]  # (N,)
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    crosses = (y1 > y) != (y2 > y)  # (M, N) edge spans the horizontal through the point
    dy = np.where(y2 != y1, y2 - y1, 1.0)
    x_at = x1 + (y - y1) * (x2 - x1) / dy
    inside = (crosses & (x < x_at)).sum(axis=1) % 2 == 1
    # On an edge: collinear with it and within its extent.
    cross = (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1)
    scale = np.hypot(x2 - x1, y2 - y1) * (np.abs(x - x1) + np.abs(y - y1) + 1.0)
    on_edge = (
        (np.abs(cross) <= 1e-12 * scale)
        & (np.minimum(x1, x2) <= x) & (x <= np.maximum(x1, x2))
        & (np.minimum(y1, y2) <= y) & (y <= np.maximum(y1, y2))
    ).any(axis=1)
    return inside & ~on_edge


def _drop_ignored(poses: _Poses, regions: list[np.ndarray]) -> None:
    for poly in regions:
        if poses.has.any():
            poses.has &= ~points_in_polygon(poses.xy.reshape(-1, 2), poly).reshape(poses.has.shape)


def _match_frame(gt: _Poses, pr: _Poses) -> np.ndarray:
    """poseval's ``assignGTmulti`` for one frame: the TP label of every predicted joint, (P_pr, 15) bool."""
    n_pr, n_gt = len(pr.has), len(gt.has)
    labels = np.zeros((n_pr, 15), dtype=bool)
    if n_pr == 0 or n_gt == 0:
        return labels  # no GT: every prediction is a false positive
    with np.errstate(invalid="ignore", divide="ignore"):
        dist = np.linalg.norm(pr.xy[:, None] - gt.xy[None], axis=-1) / gt.head[None, :, None]  # (Pr, G, 15)
    dist = np.where(pr.has[:, None, :] & gt.has[None, :, :], dist, np.inf)
    match = dist <= POSEVAL_DIST_THRESHOLD  # (Pr, G, 15)
    n_annotated = gt.has.sum(axis=1)  # (G,)
    pck = match.sum(axis=2) / np.maximum(n_annotated, 1)[None, :]  # (Pr, G)
    # Each prediction keeps only its best GT (first on ties), then each GT takes the prediction with the
    # highest PCKh (first on ties); a GT whose best is 0 stays unmatched.
    best = np.zeros_like(pck)
    rows = np.arange(n_pr)
    best_gt = pck.argmax(axis=1)
    best[rows, best_gt] = pck[rows, best_gt]
    pr_of_gt = best.argmax(axis=0)  # (G,)
    for g, p in enumerate(pr_of_gt):
        if best[p, g] > 0:
            labels[p] = match[p, g]
    return labels


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC all-point interpolated average precision (poseval's ``VOCap``), as a fraction."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # precision envelope
    i = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(((mrec[i] - mrec[i - 1]) * mpre[i]).sum())


def _joint_ap(scores: np.ndarray, labels: np.ndarray, n_gt: int) -> float:
    """poseval's ``computeRPC`` + ``VOCap`` for one joint, in percent."""
    if len(scores) == 0:
        return 0.0  # poseval leaves AP at its initial 0 when a joint has no predictions
    if n_gt == 0:
        return float("nan")  # recall = 0/0
    order = np.asarray(scores).argsort()[::-1]  # poseval's own sort, ties included
    tp = np.cumsum(np.asarray(labels)[order])
    recall = tp / n_gt
    precision = tp / np.arange(1, len(order) + 1)
    return 100.0 * voc_ap(recall, precision)


def _ap_result(per_joint: np.ndarray) -> dict:
    groups = {name: float(per_joint[list(idx)].mean()) for name, idx in AP_GROUPS.items()}
    valid = per_joint[~np.isnan(per_joint)]
    groups["Total"] = float(valid.mean()) if valid.size else float("nan")
    return {"per_joint": {name: float(ap) for name, ap in zip(POSEVAL_JOINTS, per_joint)}, "groups": groups}


def posetrack_ap_pairs(pairs: list[tuple[VideoAnnotation, VideoAnnotation]]) -> dict:
    """`posetrack_ap` over explicit (ground truth, prediction) video pairs, pooled in the given order."""
    scores: list[list[np.ndarray]] = [[] for _ in range(15)]
    labels: list[list[np.ndarray]] = [[] for _ in range(15)]
    n_gt = np.zeros(15, dtype=np.int64)
    for gt_video, pr_video in pairs:
        pr_frames: dict[int, FrameAnnotation] = {f.frame_index: f for f in pr_video.frames}
        for frame in gt_video.frames:
            if not frame.persons:
                continue  # poseval's cleanupData: frames without GT persons are dropped, predictions too
            pr_frame = pr_frames.get(frame.frame_index)
            if pr_frame is None:
                raise DataError(
                    pr_video.path, "images",
                    f"no frame {frame.frame_index} ({frame.file_name}) of video {gt_video.name}, which the "
                    "ground truth annotates",
                )
            gt, pr = _poses(frame.persons), _poses(pr_frame.persons)
            _drop_ignored(gt, frame.ignore_regions)
            _drop_ignored(pr, frame.ignore_regions)
            missing_head = gt.has.any(axis=1) & np.isnan(gt.head)
            if missing_head.any():
                k = int(np.flatnonzero(missing_head)[0])
                raise DataError(
                    gt_video.path, f"annotations (image_id {frame.image_id}, person {k}).bbox_head",
                    "missing; PoseTrack AP needs the head box of every annotated person",
                )
            frame_labels = _match_frame(gt, pr)  # (Pr, 15)
            n_gt += gt.has.sum(axis=0)
            for j in range(15):
                keep = pr.has[:, j]
                scores[j].append(pr.scores[keep, j])
                labels[j].append(frame_labels[keep, j])
    per_joint = np.array([
        _joint_ap(np.concatenate(scores[j]) if scores[j] else np.zeros(0),
                  np.concatenate(labels[j]) if labels[j] else np.zeros(0, dtype=bool), int(n_gt[j]))
        for j in range(15)
    ])
    return _ap_result(per_joint)


def posetrack_ap(gt: list[VideoAnnotation], pred: list[VideoAnnotation]) -> dict:
    """PoseTrack multi-person pose AP, exactly as poseval's ``evaluateAP`` (SPEC §7).

    Follows poseval's code (leonid-pishchulin/poseval, ``py/evaluateAP.py``, ``py/eval_helpers.py``:
    ``load_data_dir``, ``cleanupData``, ``removeIgnoredPoints``, ``assignGTmulti``, ``computeMetrics``,
    ``computeRPC``, ``VOCap``, ``getCum``; ``py/convert.py`` for how PoseTrack 2018 files enter it):

    - Joints: the 15 of poseval (`POSEVAL_JOINTS`); ears are not scored. A joint is present (GT or
      prediction) unless it is exactly ``x == y == v == 0``; a GT joint with v = 0 at a real position counts.
    - Frames: a GT frame without persons is dropped, with its predictions (``cleanupData``). Then GT and
      predicted joints strictly inside a GT ignore region are dropped (``removeIgnoredPoints``); a frame left
      with GT persons but no GT joints stays, so its predictions are false positives.
    - Pairing: videos by name; frames by ``frame_index`` (poseval pairs the i-th frame of the GT file with the
      i-th of the prediction file and requires equal counts, which gives the same pairs when both files list
      the same frames). A GT frame with persons but no prediction frame is an error.
    - Matching per frame: head size = 0.6 × head-box diagonal of the GT person; a joint matches when
      distance / head size ≤ 0.5; PCKh(pred, GT) = matched joints / annotated GT joints; each prediction keeps
      its best GT, each GT then takes the prediction with the highest PCKh (argmax, first on ties); PCKh 0
      is no match.
    - Labels: every predicted joint contributes (score, label); label = "matched" for a prediction assigned to
      a GT (a joint the GT lacks is a false positive), 0 for every joint of an unassigned prediction. A
      joint without score gets -9999.
    - Number of GT per joint: all annotated GT joints of the kept frames, after ignore regions.
    - AP per joint: scores pooled over all frames in video/frame/person order, sorted with
      ``argsort()[::-1]`` as poseval (so tied scores fall as numpy's sort puts them), precision/recall,
      VOC all-point interpolated AP, × 100. A joint with no prediction at all has AP 0; a joint with
      predictions but no GT has AP NaN (recall 0/0) — both as poseval.
    - Groups: Head = mean(head_top, neck, nose), Shou/Elb/Wri/Hip/Knee/Ankl = mean of left and right (NaN
      propagates); Total = mean of the 15 joint APs that are not NaN.

    Args:
        gt: ground-truth videos.
        pred: prediction videos (per-joint ``scores``), matched to ``gt`` by name; extra videos are ignored.

    Returns:
        ``{"per_joint": {poseval joint name: AP}, "groups": {"Head", "Shou", "Elb", "Wri", "Hip", "Knee",
        "Ankl", "Total"}}``, in percent.

    Raises:
        DataError: a GT video without predictions, a GT frame without a prediction frame, an annotated GT
            person without a head box.
    """
    by_name = {v.name: v for v in pred}
    pairs = []
    for video in gt:
        if video.name not in by_name:
            raise DataError(video.path, "", f"no prediction video named {video.name!r}")
        pairs.append((video, by_name[video.name]))
    return posetrack_ap_pairs(pairs)
