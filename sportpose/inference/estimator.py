"""A loaded model applied to the people of video frames, cutting tubes exactly as the data pipeline does.

The model's own spec says how a person is cut (its ``data`` section: window T, interval Δ, centred or
end-anchored tubes, context length L and size, crop size, box enlargement, optical flow), and the crops,
tube and context indices, affines and flow are the data pipeline's own functions, so a person is cut as in
training and evaluation (every tube frame cropped with the anchor frame's box). Heatmaps are decoded as
evaluation decodes them; STSP-Net's 2D keypoints (soft-argmax) are mapped back through the same inverse
affine and its per-joint scores are its heatmaps' maxima.

Cutting and the forward pass are two steps (:meth:`PoseEstimator.prepare`, :meth:`PoseEstimator.forward`) so
that the people of several frames go through the model in one batch: on a CPU a forward pass of 16 tubes
costs far less than 16 passes of one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from sportpose.data import samples as S
from sportpose.data.flow import FlowEstimator
from sportpose.data.tubes import context_indices, tube_indices
from sportpose.evaluation.evaluate2d import decode_to_image
from sportpose.models.stsp import TrackHistory
from sportpose.registry.load import LoadedModel
from sportpose.spec.data import DataSpec


@dataclass(frozen=True)
class TubeGeometry:
    """How a model's samples are cut, from its spec's data section (what training and evaluation cut)."""

    window: int
    interval: int
    anchor: str  # centre | end
    context_len: int
    context_size: tuple[int, int]  # Hc, Wc
    input_size: tuple[int, int]  # H, W
    box_scale: float
    flow: str

    @staticmethod
    def of(data: DataSpec) -> "TubeGeometry":
        return TubeGeometry(data.window, data.interval, data.tube_anchor, data.context_len, tuple(data.context_size),
                            tuple(data.input_size), data.box_scale, data.flow)

    @property
    def back(self) -> int:
        """Frames before the anchor that a tube or context clip reads."""
        tube = (self.window // 2 if self.anchor == "centre" else self.window - 1) * self.interval
        return max(tube, self.context_len - 1)

    @property
    def ahead(self) -> int:
        """Frames after the anchor that a tube reads (a centred tube's second half)."""
        return (self.window // 2) * self.interval if self.anchor == "centre" else 0


@dataclass
class Pose:
    """One person in one frame, in the model's joint set."""

    box: np.ndarray  # (4,) x, y, w, h: the box it was estimated in, frame pixels
    keypoints: np.ndarray  # (K, 2) frame pixels
    scores: np.ndarray  # (K,)
    joints_3d: np.ndarray | None = None  # (J, 3) mm, root-relative camera frame (STSP-Net)
    track_id: int = -1
    # STSP-Net with TMP: GSR's poses (T, J, 3) mm and node features (T, J, d) of the tube and its frame indices,
    # which PoseEstimator.refine turns into joints_3d along the pose's track once the tracker has named it
    lifted: tuple[torch.Tensor, torch.Tensor, list[int]] | None = None


@dataclass
class Prepared:
    """The model inputs of the people of one frame, cut and ready for a forward pass."""

    anchor: int
    boxes: list[np.ndarray]  # (4,) each
    affines: np.ndarray  # (B, 2, 3) frame -> crop
    tube_idx: list[int]  # frame indices of the tube
    inputs: dict[str, np.ndarray]  # per person (B, ...) except "context": (L, Hc, Wc, 3), one per frame
    image: np.ndarray | None = None  # (H, W, 3) uint8 RGB: the anchor frame (the caller's, for its results)


class PoseEstimator:
    """A loaded model applied to the people of one or more frames.

    Args:
        loaded: the model and its spec.
        batch_size: tubes per forward pass.
    """

    def __init__(self, loaded: LoadedModel, batch_size: int = 16):
        self.model = loaded.model
        self.kind = loaded.kind
        self.geometry = TubeGeometry.of(loaded.spec.data)
        self.names = tuple(self.model.input_names())
        self.batch_size = batch_size
        self.flow = FlowEstimator(self.geometry.flow) if "flow" in self.names else None
        self.seconds = 0.0  # time spent in the model: forward passes and TMP steps
        self.refine_seconds = 0.0  # of which TMP steps along tracks
        self.record: list[dict[str, torch.Tensor]] | None = None  # a list: every batch's inputs are kept (bench)
        config = getattr(self.model, "config", None)
        # STSP-Net's TMP reads the model's own outputs at the track's previous frames (stsp.TrackHistory)
        self.history = (TrackHistory(config.tau, self.geometry.interval)
                        if getattr(config, "use_tmp", False) and hasattr(self.model, "refine") else None)

    def __call__(self, anchor: int, frames: dict[int, np.ndarray], boxes: list[np.ndarray], known: int) -> list[Pose]:
        """Poses of the people in ``boxes`` at frame ``anchor`` (:meth:`prepare` then :meth:`forward`)."""
        return self.forward([self.prepare(anchor, frames, boxes, known)])[0]

    def prepare(self, anchor: int, frames: dict[int, np.ndarray], boxes: list[np.ndarray], known: int) -> Prepared:
        """Cut the tubes (and context clip, flow) of the people in ``boxes`` at frame ``anchor``.

        Args:
            anchor: the frame estimated.
            frames: decoded frames (H, W, 3) uint8 RGB by index; every index the tubes need must be present.
            boxes: (4,) ``[x, y, w, h]`` frame pixels, one per person.
            known: frames known to exist (indices are clamped below it, as at a clip's end).
        """
        g = self.geometry
        tube_idx = tube_indices(anchor, g.window, g.interval, known, g.anchor)
        if not boxes:
            return Prepared(anchor, [], np.zeros((0, 2, 3)), tube_idx, {})
        inputs: dict[str, np.ndarray] = {}
        if "context" in self.names:
            size = (g.context_size[1], g.context_size[0])
            inputs["context"] = np.stack([cv2.resize(frames[i], size, interpolation=cv2.INTER_AREA)
                                          for i in context_indices(anchor, g.context_len, known)])  # (L, Hc, Wc, 3)
        affines = np.stack([S.crop_affine(S.box_to_crop(b, g.input_size, g.box_scale), g.input_size)
                            for b in boxes])  # (B, 2, 3) frame -> crop
        tubes = np.stack([np.stack([S.warp(frames[i], a, g.input_size) for i in tube_idx])
                          for a in affines])  # (B, T, H, W, 3)
        inputs["tube"] = tubes
        if "affine" in self.names:  # where each crop sits in the frame (STSP-Net's frame_position)
            height, width = frames[tube_idx[-1]].shape[:2]
            inputs["affine"] = affines.astype(np.float32)  # (B, 2, 3)
            inputs["frame_size"] = np.tile(np.array([[float(width), float(height)]], np.float32), (len(boxes), 1))
        if self.flow is not None:
            inputs["flow"] = np.stack([self.flow.tube(t) for t in tubes])  # (B, T-1, H, W, 2)
        return Prepared(anchor, [np.asarray(b, np.float64) for b in boxes], affines, tube_idx, inputs)

    def forward(self, prepared: list[Prepared]) -> list[list[Pose]]:
        """The poses of each prepared frame, its people batched with those of the other frames."""
        people = [(k, i) for k, p in enumerate(prepared) for i in range(len(p.boxes))]
        out: list[list[Pose]] = [[] for _ in prepared]
        for start in range(0, len(people), self.batch_size):
            chunk = people[start : start + self.batch_size]
            inputs = {}
            for name in self.names:
                if name == "context":  # one clip per frame, repeated for each of its people
                    inputs[name] = torch.from_numpy(np.stack([prepared[k].inputs[name] for k, _ in chunk]))
                else:
                    inputs[name] = torch.from_numpy(np.stack([prepared[k].inputs[name][i] for k, i in chunk]))
            if self.record is not None:
                self.record.append(inputs)
            started = time.perf_counter()
            with torch.no_grad():
                result = self.model(inputs)
            self.seconds += time.perf_counter() - started
            affines = np.stack([prepared[k].affines[i] for k, i in chunk])  # (B, 2, 3)
            if "joints_3d" in result:  # STSP-Net: the anchor is the tube's last frame
                crop = result["keypoints_2d"][:, -1].numpy()  # (B, J, 2) crop pixels
                keypoints = np.stack([S.transform_points(c, S.invert_affine(a)) for c, a in zip(crop, affines)])
                scores = result["heatmaps"][:, -1].amax(dim=(-2, -1)).numpy()  # (B, J)
                joints = result["joints_3d"][:, -1].numpy()  # (B, J, 3) mm, this tube alone until refine()
                lifted = ([(p, n, prepared[k].tube_idx)
                           for p, n, (k, _) in zip(result["joints_3d_gsr"], result["nodes_gsr"], chunk)]
                          if self.history is not None else [None] * len(chunk))
            else:
                keypoints, scores = decode_to_image(result["heatmaps"], affines)  # (B, K, 2), (B, K)
                joints, lifted = [None] * len(chunk), [None] * len(chunk)
            for (k, i), kp, s, j, f in zip(chunk, keypoints, scores, joints, lifted):
                out[k].append(Pose(prepared[k].boxes[i], kp, s, j, lifted=f))
        return out

    def refine(self, poses: list[Pose]) -> None:
        """STSP-Net's TMP along each pose's track: ``joints_3d`` from the model's own outputs for that track at
        the frames before (a pose without a track, ``track_id`` < 0, has none). Call once per frame, in frame
        order, after the tracker has given the poses their ids; other models are left as they are."""
        todo = [p for p in poses if p.lifted is not None]
        if self.history is None or not todo:
            return
        started = time.perf_counter()
        keys = [p.track_id if p.track_id >= 0 else None for p in todo]
        joints = self.history.step(self.model, keys, [p.lifted[2] for p in todo],
                                   torch.stack([p.lifted[0] for p in todo]), torch.stack([p.lifted[1] for p in todo]))
        self.seconds += time.perf_counter() - started
        self.refine_seconds += time.perf_counter() - started
        for p, j in zip(todo, joints.numpy()):
            p.joints_3d, p.lifted = j[-1], None
