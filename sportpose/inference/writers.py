"""What ``sportpose infer`` writes, frame by frame as results arrive: H.264 videos, PoseTrack18 files in parts,
and STSP-Net's 3D skeleton animations.

- :class:`H264Writer`: RGB frames to an H.264 mp4 (libx264 through PyAV, ``yuv420p``, ``+faststart``), the
  profile browsers play (Chromium, and MLflow's artifact viewer, refuse OpenCV's ``mp4v``). libx264 needs
  even sizes: an odd last column or row is repeated, not cropped, so no drawn pixel is lost.
- :class:`PoseTrackParts`: PoseTrack18 predictions. An image id ``TSSSSSSFFFF`` holds four digits of frame
  index, so a video holds at most :data:`~sportpose.data.formats.FRAMES_PER_VIDEO` (10,000) frames per file:
  a longer video (or a live stream) is written in parts of that many frames, ``<name>_part001.json`` ...,
  part ``p`` being the PoseTrack video ``<name>_part<p+1>`` whose image ids start at the video's base id
  ``+ p * 10,000`` (frame ``f`` of the source is frame ``f mod 10,000`` of part ``f // 10,000``). A video
  that fits one file is written as ``<name>.json``. Each part is written when it is complete, so a stream's
  predictions are not all held in memory.
- :class:`TrackAnimations`: one H.264 video per track of STSP-Net's 3D joints (matplotlib 3D axes, rendered
  off screen frame by frame and encoded as the overlay is), ``skeleton3d_track<ID>.mp4``, the same axes for
  every frame of a track so that motion reads as motion.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from sportpose.data.formats import (
    FRAMES_PER_VIDEO,
    FrameAnnotation,
    PersonAnnotation,
    VideoAnnotation,
    read_posetrack18,
    write_posetrack18,
)
from sportpose.errors import DataError
from sportpose.inference.estimator import Pose
from sportpose.inference.people import VideoIds
from sportpose.models.skeleton import POSETRACK, JointSet, convert
from sportpose.viz.draw import SIDE_COLOURS, edge_side
from sportpose.viz.plots import pyplot

CRF = 23  # libx264's default quality: overlays are for looking at


class H264Writer:
    """RGB frames (H, W, 3) uint8 written to an H.264 mp4; the file is opened at the first frame.

    Args:
        path: the mp4 to write.
        fps: frames per second (a rational close to it is used: 29.97 stays 30000/1001).
        threads: libx264's encoding threads (1: the model's threads get the cores).
    """

    def __init__(self, path: str | Path, fps: float, threads: int = 1):
        self.path = Path(path)
        self.fps = Fraction(float(fps) if fps and fps > 0 else 25.0).limit_denominator(1001)
        self.threads = threads
        self.frames = 0
        self._container = None
        self._stream = None

    def write(self, rgb: np.ndarray) -> None:
        if self._container is None:
            self._open(rgb.shape[1], rgb.shape[0])
        h, w = self._stream.height, self._stream.width
        if rgb.shape[:2] != (h, w):
            rgb = np.pad(rgb[:h, :w], ((0, max(0, h - rgb.shape[0])), (0, max(0, w - rgb.shape[1])), (0, 0)),
                         mode="edge")
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
            self._container.mux(packet)
        self.frames += 1

    def _open(self, width: int, height: int) -> None:
        try:
            self._container = av.open(str(self.path), mode="w", format="mp4", options={"movflags": "+faststart"})
            stream = self._container.add_stream("libx264", rate=self.fps)
        except (av.error.FFmpegError, ValueError) as e:
            raise DataError(str(self.path), "overlay", f"cannot write an H.264 video here: {e}") from None
        stream.width, stream.height = width + width % 2, height + height % 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(CRF), "preset": "veryfast", "threads": str(self.threads)}
        self._stream = stream

    def close(self) -> None:
        if self._container is None:
            return
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None


def to_posetrack(pose: Pose, joint_set: JointSet) -> PersonAnnotation:
    """A pose as a PoseTrack18 person: 17 PoseTrack joints (converted from another set; joints it lacks are
    ``0, 0, 0`` with score 0, i.e. unlabeled), per-joint scores, box and track id, and 3D joints if any."""
    xys = np.concatenate([pose.keypoints, pose.scores[:, None]], axis=1)  # (K, 3): x, y, score
    if joint_set.name != POSETRACK.name:
        xys = convert(xys, joint_set.name, POSETRACK.name)  # (17, 3), NaN where the set has no such joint
    present = np.isfinite(xys).all(axis=1)
    keypoints = np.where(present[:, None], np.concatenate([xys[:, :2], np.ones((17, 1))], axis=1), 0.0)
    scores = np.where(present, xys[:, 2], 0.0).astype(np.float64)
    return PersonAnnotation(track_id=int(pose.track_id), keypoints=keypoints.astype(np.float32),
                            bbox=np.asarray(pose.box, np.float32), bbox_head=None, scores=scores,
                            score=float(scores[present].mean()) if present.any() else 0.0,
                            keypoints_3d=None if pose.joints_3d is None else pose.joints_3d.astype(np.float32))


class PoseTrackParts:
    """PoseTrack18 predictions of one video, written one part of ``part_frames`` frames at a time.

    Args:
        folder: where the files go.
        ids: the video's image ids (:func:`~sportpose.inference.people.video_ids`).
        joint_set: the model's joint set (converted to PoseTrack's joints on writing).
        part_frames: frames per file (PoseTrack's limit; smaller only to test the parts).
    """

    def __init__(self, folder: Path, ids: VideoIds, joint_set: JointSet, part_frames: int = FRAMES_PER_VIDEO):
        self.folder, self.ids, self.joint_set, self.part_frames = Path(folder), ids, joint_set, part_frames
        self.files: list[str] = []
        self.videos: list[VideoAnnotation] = []  # each part as read back from its file (for AP and tracking)
        self._frames: list[tuple[int, list[PersonAnnotation]]] = []  # (frame index in the part, persons)
        self._part = 0

    def part_ids(self, part: int) -> VideoIds:
        """The ids of part ``part`` of a video written in parts (see the module doc)."""
        return VideoIds(f"{self.ids.name}_part{part + 1:03d}", self.ids.base + part * FRAMES_PER_VIDEO, self.ids.known,
                        self.ids.file_names if part == 0 else {})

    def add(self, frame: int, poses: list[Pose]) -> None:
        """The poses of ``frame`` (frames come in order, each once)."""
        part, local = divmod(frame, self.part_frames)
        if part != self._part:
            self._write(self.part_ids(self._part))
            self._part = part
        self._frames.append((local, [to_posetrack(p, self.joint_set) for p in poses]))

    def close(self) -> list[str]:
        """Write the last part (as ``<name>.json`` when it is the only one); returns the files' names."""
        self._write(self.part_ids(self._part) if self.files or self._part else self.ids)
        return self.files

    def _write(self, ids: VideoIds) -> None:
        frames = [FrameAnnotation(image_id=ids.image_id(f), file_name=ids.file_name(f), frame_index=f,
                                  is_labeled=True, persons=persons, ignore_regions=[]) for f, persons in self._frames]
        path = self.folder / f"{ids.name}.json"
        write_posetrack18(VideoAnnotation(ids.name, str(path), len(frames), frames, categories=[]), path)
        (written,) = read_posetrack18(path)  # the project's reader accepts it, or this raises
        self.videos.append(written)
        self.files.append(path.name)
        self._frames = []


class TrackAnimations:
    """STSP-Net's 3D joints of each track over time, rendered as one H.264 video per track.

    Args:
        joint_set: the joints' set (h36m).
        max_tracks: tracks animated, longest first (a crowd would make hundreds of videos).
        min_frames: a track seen in fewer frames is not animated.
    """

    def __init__(self, joint_set: JointSet, max_tracks: int = 8, min_frames: int = 2):
        self.joint_set, self.max_tracks, self.min_frames = joint_set, max_tracks, min_frames
        self.tracks: dict[int, list[tuple[int, np.ndarray]]] = {}  # track id -> [(frame, (J, 3) mm)]

    def add(self, frame: int, poses: list[Pose]) -> None:
        for p in poses:
            if p.joints_3d is not None and p.track_id >= 0:
                self.tracks.setdefault(p.track_id, []).append((frame, np.asarray(p.joints_3d, np.float32)))

    def write(self, folder: Path, fps: float, size: tuple[int, int] = (480, 480)) -> list[str]:
        """One ``skeleton3d_track<ID>.mp4`` per animated track; returns the files' names."""
        chosen = sorted((t for t, v in self.tracks.items() if len(v) >= self.min_frames),
                        key=lambda t: (-len(self.tracks[t]), t))[: self.max_tracks]
        return [self._render(folder / f"skeleton3d_track{t}.mp4", t, fps, size) for t in sorted(chosen)]

    def _render(self, path: Path, track: int, fps: float, size: tuple[int, int]) -> str:
        """The track's frames drawn on one set of 3D axes: the skeleton's lines are made once and moved each frame
        (clearing and redrawing the axes would cost several times more per frame)."""
        plt = pyplot()
        frames = self.tracks[track]
        joints = np.stack([j for _, j in frames]).astype(np.float64)  # (T, J, 3) mm, camera frame
        plotted = np.stack([joints[..., 0], joints[..., 2], -joints[..., 1]], axis=-1)  # (T, J, 3): x, depth, up
        finite = plotted[np.isfinite(plotted).all(axis=-1)]
        centre = finite.mean(axis=0) if len(finite) else np.zeros(3)
        half = max(float(np.ptp(finite, axis=0).max()) if len(finite) else 0.0, 200.0) / 2 * 1.1
        dpi = 100
        fig = plt.figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
        ax = fig.add_subplot(1, 1, 1, projection="3d")
        for axis, c in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), centre):
            axis(c - half, c + half)
        ax.view_init(elev=12, azim=-70)
        ax.set_xlabel("x (mm)", fontsize=7)
        ax.set_ylabel("depth (mm)", fontsize=7)
        ax.set_zlabel("up (mm)", fontsize=7)
        ax.tick_params(labelsize=6)
        edges = list(self.joint_set.edges)
        lines = [ax.plot([], [], [], lw=2, color=tuple(c / 255 for c in SIDE_COLOURS[edge_side(self.joint_set, a, b)]))[0]
                 for a, b in edges]
        dots = ax.plot([], [], [], "o", ms=3, color="black")[0]
        title = ax.set_title("", fontsize=8)
        writer = H264Writer(path, fps)
        try:
            for (frame, _), p in zip(frames, plotted):
                for line, (a, b) in zip(lines, edges):
                    seg = p[[a, b]] if np.isfinite(p[[a, b]]).all() else np.full((2, 3), np.nan)
                    line.set_data_3d(seg[:, 0], seg[:, 1], seg[:, 2])
                ok = np.isfinite(p).all(axis=1)
                dots.set_data_3d(p[ok, 0], p[ok, 1], p[ok, 2])
                title.set_text(f"track {track}  frame {frame}  (3D joints, mm, root-relative)")
                fig.canvas.draw()
                writer.write(np.asarray(fig.canvas.buffer_rgba())[..., :3])
        finally:
            writer.close()
            plt.close(fig)
        return path.name
