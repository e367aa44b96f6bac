"""Human3.6M in VideoPose3D's layout as a lifting data source: 2D keypoint windows in, root-relative 3D out.

STSP-Net's lifting stage ("lift", SPEC §5) can train where images are absent: with ``model.lift_input:
keypoints_2d`` it reads 2D keypoints instead of person tubes. This module serves those samples from the two
files of VideoPose3D's ``prepare_data_h36m.py`` (SPEC §3.2), through the same sample interface as the video
pipeline (``data.source: h36m``):

- ``data_3d_h36m.npz``: ``positions_3d[subject][action]`` = (F, 32, 3) metres in the **world** frame, reduced
  to the 17 ``h36m`` joints and converted to mm by :func:`~sportpose.data.formats.read_h36m_3d`.
- ``data_2d_h36m_<detector>.npz``: ``positions_2d[subject][action]`` = a list of per-camera (F, J, 2) pixel
  arrays (17 joints in the ``h36m`` layout, e.g. ground truth or CPN detections; 32 mocap joints are reduced
  like the 3D ones), and ``metadata``.

A sample is a window of T frames of one (subject, action, camera) sequence ending at an anchor frame t
(``data.window`` T, ``data.interval`` Δ, anchors every ``data.frame_stride`` frames, indices clamped at the
sequence start as for video tubes; ``data.max_samples_per_clip`` caps the anchors per sequence). Columns:

- ``keypoints_2d`` (T, 17, 2) float32: VideoPose3D's normalised screen coordinates,
  ``x_n = 2x/w − 1``, ``y_n = 2y/w − h/w`` (both divided by the width, so the aspect ratio is kept; [-1, 1]
  for the square Human3.6M frames).
- ``joints_3d`` (T, 17, 3) float32: root-relative mm (pelvis at the origin).
- ``bone_lengths`` (16,) float32: the reference ``l_ij`` of ``L_skel`` (SPEC §5: the training set's mean bone
  lengths per body-scale group, which for Human3.6M is the subject; mm, in the order of
  ``skeleton.H36M.edges``): a training subject's mean over all its frames; for a validation or test subject,
  whose skeleton the training split never saw, the mean of the training subjects' means (the overall training
  mean, as :mod:`~sportpose.data.bones` does for manifests); NaN (the model's template) without training
  subjects. The loss reads it in place of the model config's adult template. Only a loss reads it.
- ``tube_frames`` (T,) int64 and the information the 3D evaluation reads: ``video`` ("S9/Walking 1/cam0"),
  ``frame`` (the anchor), ``track_id`` (the camera index: one track per sequence and camera), ``image_id``
  (sequence number · 10⁶ + frame), ``view`` ("cam0" …), ``body`` ("adult") and ``action`` (the action
  without its take number, "Walking 1" -> "Walking": Human3.6M's protocol averages per action).

Decisions, where the files are silent:

- **World-frame targets.** VideoPose3D's 3D file holds world coordinates and neither file carries camera
  extrinsics, so the target is the root-relative pose in *world* axes (z up), not in the camera's frame as
  in VideoPose3D's own training (which takes the extrinsics from its source code). No calibration constants
  are copied here. A world-frame target is well posed for one camera (a fixed rotation away from the camera
  frame), but the same 2D view seen by two cameras maps to world poses turned against each other; hence the
  default is one camera (``cameras: [0]``); several cameras add data at the price of that ambiguity.
- **Resolution.** VideoPose3D's Human3.6M 2D files carry no image size (``metadata`` holds the layout and
  the keypoint symmetry). The size comes from ``metadata["video_metadata"][subject]`` (``{"w", "h"}``, the
  layout of VideoPose3D's custom-video files) when present, else from ``h36m.resolution``, by default
  1000 x 1000 px: the Human3.6M videos are 1000 px wide (a camera whose frames are 2 px taller shifts
  ``y_n`` by 0.002, far below anything measured here).
- **Lengths.** A 2D sequence longer or shorter than its 3D sequence is cut to the shorter (VideoPose3D trims
  the 2D arrays to the mocap length).
- **Frame rate.** 50 Hz (:data:`FPS`), for TS in mm/s².
- **Splits** are by subject: train S1, S5, S6, S7; val S8; test S9, S11 by default (SPEC's split
  ``spec.data.H36M_SPLIT`` with its last training subject as the validation subject).
- **Bad input.** An unreadable file, an unknown subject, a camera index a sequence does not have, or a 2D
  file in another joint layout is a :class:`~sportpose.errors.DataError` naming the file and the field. An
  action of the 3D file without 2D keypoints is skipped and listed in the split's data report (the job fails
  beyond ``data.max_skip_fraction``).
- **Memory.** The two files are read once per process (cached) and each sequence is put in Ray's object
  store once; samples are cut from it by one task per sequence, lazily. The train split is shuffled once
  (Ray Data ``random_shuffle``, seeded): a task yields one sequence's windows, and batches of one sequence
  would train badly.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import ray

from sportpose.data.bones import file_stamp
from sportpose.data.dataset import DataReport
from sportpose.data.formats import H36M_KEPT_JOINTS, read_h36m_2d, read_h36m_3d
from sportpose.data.tubes import tube_indices
from sportpose.errors import DataError, SpecError
from sportpose.models.skeleton import H36M
from sportpose.spec.data import SPLITS, DataSpec, H36MConfig

FPS = 50.0  # Hz of VideoPose3D's Human3.6M files
GROUPS = ("action",)  # the evaluation averages per action, then over actions (Human3.6M's protocol)
IMAGE_ID_BASE = 1_000_000  # image_id = sequence number * IMAGE_ID_BASE + frame


@dataclass
class Sequence:
    """One (subject, action, camera) sequence, ready to cut windows from."""

    number: int  # position in the file order (image ids)
    subject: str
    action: str
    camera: int
    split: str
    keypoints_2d: np.ndarray  # (F, 17, 2) normalised screen coordinates
    joints_3d: np.ndarray  # (F, 17, 3) root-relative mm, world axes
    bone_lengths: np.ndarray  # (16,) mm, the subject's mean

    @property
    def name(self) -> str:
        return f"{self.subject}/{self.action}/cam{self.camera}"


def normalize_screen_coordinates(points: np.ndarray, width: float, height: float) -> np.ndarray:
    """VideoPose3D's normalisation: ``x_n = 2x/w − 1``, ``y_n = 2y/w − h/w`` (aspect ratio kept).

    Args:
        points: (..., 2) pixels.

    Returns:
        (..., 2) with x in [-1, 1] and y in [-h/w, h/w].
    """
    return points / width * 2.0 - np.array([1.0, height / width], dtype=points.dtype)



def load_sequences(config: H36MConfig) -> tuple[list[Sequence], list[dict[str, str]]]:
    """Every sequence of the configured subjects and cameras, and the actions skipped (no 2D keypoints).

    Raises:
        SpecError: no file given.
        DataError: an unreadable file, an unknown subject, a missing camera, a 2D file in another layout.
    """
    for name in ("data_3d", "data_2d"):
        if not getattr(config, name):
            raise SpecError(f"data.h36m.{name}", "the VideoPose3D file is required with data.source h36m")
    return _load(config, file_stamp(config.data_3d), file_stamp(config.data_2d))


@functools.lru_cache(maxsize=1)
def _load(config: H36MConfig, stamp_3d: tuple, stamp_2d: tuple) -> tuple[list[Sequence], list[dict[str, str]]]:
    positions_3d = read_h36m_3d(config.data_3d)  # subject -> action -> (F, 17, 3) mm
    positions_2d, metadata = read_h36m_2d(config.data_2d)  # subject -> action -> [(F, J, 2) px per camera]
    layout = metadata.get("layout_name", "h36m")
    if layout != "h36m":
        raise DataError(config.data_2d, "metadata.layout_name", f"expected 2D keypoints in the h36m layout, got {layout!r}")
    video_metadata = metadata.get("video_metadata", {}) or {}
    sequences: list[Sequence] = []
    skipped: list[dict[str, str]] = []
    number = 0
    wanted = [s for split in SPLITS for s in getattr(config, split)]
    # L_skel's reference: a training subject's own mean, any other subject the training subjects' mean
    means = {s: np.concatenate([_bones(j) for j in positions_3d[s].values()]).mean(0)  # (E,) mm
             for s in config.train if s in positions_3d}
    overall = np.mean(list(means.values()), axis=0) if means else np.full(len(H36M.edges), np.nan)
    for subject in wanted:
        if subject not in positions_3d:
            raise DataError(config.data_3d, f"positions_3d[{subject}]",
                            f"subject {subject} (data.h36m.{config.split_of(subject)}) is not in the file; it has "
                            f"{sorted(positions_3d)}")
        actions = positions_3d[subject]
        lengths = means.get(subject, overall)  # (E,) mm
        size = video_metadata.get(subject) or {}
        width, height = float(size.get("w", config.resolution[0])), float(size.get("h", config.resolution[1]))
        for action in sorted(actions):
            cameras = positions_2d.get(subject, {}).get(action)
            if cameras is None:
                skipped.append({"clip": f"{subject}/{action}", "path": config.data_2d,
                                "reason": f"positions_2d[{subject}][{action}]: missing (no 2D keypoints)"})
                continue
            world = actions[action]  # (F, 17, 3) mm
            for camera in config.cameras:
                field = f"positions_2d[{subject}][{action}]"
                if camera >= len(cameras):
                    raise DataError(config.data_2d, field, f"has {len(cameras)} cameras, data.h36m.cameras asks "
                                                           f"for index {camera}")
                pixels = cameras[camera]
                if pixels.shape[1] == 32:
                    pixels = pixels[:, H36M_KEPT_JOINTS]
                if pixels.shape[1] != H36M.num_joints:
                    raise DataError(config.data_2d, f"{field}[{camera}]",
                                    f"expected 17 (h36m) or 32 joints, got {pixels.shape[1]}")
                frames = min(len(pixels), len(world))
                joints = world[:frames] - world[:frames, H36M.root : H36M.root + 1]  # (F, 17, 3) root-relative
                sequences.append(Sequence(
                    number=number, subject=subject, action=action, camera=camera, split=config.split_of(subject),
                    keypoints_2d=normalize_screen_coordinates(pixels[:frames], width, height).astype(np.float32),
                    joints_3d=joints.astype(np.float32), bone_lengths=lengths.astype(np.float32),
                ))
                number += 1
    return sequences, skipped


def _bones(joints: np.ndarray) -> np.ndarray:
    a = [i for i, _ in H36M.edges]
    b = [j for _, j in H36M.edges]
    return np.linalg.norm(joints[:, a] - joints[:, b], axis=-1)  # (F, E)


def anchors(frames: int, data: DataSpec) -> np.ndarray:
    """Anchor frames of a sequence of ``frames`` frames: every ``frame_stride``-th, capped (evenly spread) at
    ``max_samples_per_clip``."""
    out = np.arange(0, frames, data.frame_stride)
    if data.max_samples_per_clip and len(out) > data.max_samples_per_clip:
        out = out[np.linspace(0, len(out) - 1, data.max_samples_per_clip).round().astype(int)]
    return out


def cut_windows(seq: Sequence, data: DataSpec) -> dict[str, np.ndarray]:
    """Every window of one sequence as columns (one row per anchor).

    Returns:
        ``keypoints_2d`` (N, T, 17, 2), ``joints_3d`` (N, T, 17, 3) mm, ``bone_lengths`` (N, 16) mm,
        ``tube_frames`` (N, T), and the information columns (module doc).
    """
    frames = len(seq.joints_3d)
    starts = anchors(frames, data)
    index = np.array([tube_indices(int(t), data.window, data.interval, frames, "end") for t in starts])  # (N, T)
    n = len(starts)
    return {
        "keypoints_2d": seq.keypoints_2d[index],  # (N, T, 17, 2)
        "joints_3d": seq.joints_3d[index],  # (N, T, 17, 3)
        "bone_lengths": np.broadcast_to(seq.bone_lengths, (n, len(seq.bone_lengths))).copy(),  # (N, E)
        "tube_frames": index.astype(np.int64),
        "frame": starts.astype(np.int64),
        "track_id": np.full(n, seq.camera, np.int64),
        "image_id": (seq.number * IMAGE_ID_BASE + starts).astype(np.int64),
        "video": np.full(n, f"{seq.subject}/{seq.action}/cam{seq.camera}"),
        "view": np.full(n, f"cam{seq.camera}"),
        "body": np.full(n, "adult"),
        "action": np.full(n, seq.action.split(" ")[0]),
    }


def clip_list(data: DataSpec) -> list[dict[str, str]]:
    """The sequences as the pipeline lists clips: ``name`` and ``split``."""
    sequences, _ = load_sequences(data.h36m)
    return [{"name": s.name, "split": s.split} for s in sequences]


def fingerprint(data: DataSpec) -> str:
    """Identifies the evaluation data: the files (size, modification time), the split and the windows."""
    c = data.h36m
    h = hashlib.sha256(json.dumps([file_stamp(c.data_3d)[1:], file_stamp(c.data_2d)[1:], c.train, c.val, c.test,
                                   c.cameras, c.resolution, data.window, data.interval, data.frame_stride,
                                   data.max_samples_per_clip]).encode())
    return h.hexdigest()[:16]


def open_split(data: DataSpec, split: str, seed: int) -> tuple[ray.data.Dataset, DataReport]:
    """A lazy Ray Dataset of one split's windows (one task per sequence) and the split's data report.

    Args:
        data: the spec's ``DataSpec`` (``source: h36m``).
        split: train, val or test; the train split comes shuffled (seeded by ``seed``).

    Returns:
        the dataset and the split's ``DataReport`` (``clips`` counts actions, ``samples`` windows).

    Raises:
        DataError: bad files (:func:`load_sequences`), or more actions without 2D than ``max_skip_fraction``.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    sequences, skipped = load_sequences(data.h36m)
    chosen = [s for s in sequences if s.split == split]
    subjects = set(getattr(data.h36m, split))
    missing = [s for s in skipped if s["clip"].split("/")[0] in subjects]
    actions = {(s.subject, s.action) for s in chosen}
    # The report counts actions (a skipped action has no camera to count), its samples are windows.
    report = DataReport(split=split, clips=len(actions) + len(missing),
                        samples=int(sum(len(anchors(len(s.joints_3d), data)) for s in chosen)), skipped=missing)
    report.check(data.max_skip_fraction)
    if not chosen:
        return ray.data.from_items([]), report
    refs = [ray.put(s) for s in chosen]

    def cut(batch: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
        seq = ray.get(refs[int(batch["index"][0])])
        cols = cut_windows(seq, data)
        if split == "train":  # rows of one block in a random order too, so the shuffle mixes windows finely
            order = np.random.default_rng([seed, seq.number]).permutation(len(cols["frame"]))
            cols = {k: v[order] for k, v in cols.items()}
        yield cols

    ds = ray.data.from_items([{"index": i} for i in range(len(chosen))], override_num_blocks=len(chosen))
    ds = ds.map_batches(cut, batch_size=1, batch_format="numpy")
    if split == "train":
        ds = ds.random_shuffle(seed=seed)
    return ds, report


__all__ = ["FPS", "GROUPS", "H36MConfig", "Sequence", "clip_list", "cut_windows", "fingerprint", "load_sequences",
           "normalize_screen_coordinates", "open_split"]
