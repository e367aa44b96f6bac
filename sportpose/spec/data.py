"""The data section of a spec, and the configs of the data sources it names (SPEC §3).

Every YAML schema lives in :mod:`sportpose.spec`, data configs included, so that the data and training floors
take these types instead of ``Any``: ``data.synth`` is :class:`SynthConfig` (the SynthCourt generator's
input), ``data.h36m`` is :class:`H36MConfig` (the VideoPose3D files and their subject splits), and the rest of
``data`` is :class:`DataSpec`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sportpose.errors import SpecError
from sportpose.models.skeleton import JOINT_SETS

SPLITS = ("train", "val", "test")
H36M_SPLIT = {"train": ("S1", "S5", "S6", "S7", "S8"), "test": ("S9", "S11")}  # Human3.6M's protocol

VIEWS = ("sideline", "baseline", "high_angle")
BLUR_SUBFRAMES = {"none": 1, "low": 3, "high": 5}  # sub-frames averaged per frame
MOTIONS = ("run", "jog", "dribble", "jump_shot", "pass", "defensive_slide", "idle")
BALL_MOTIONS = ("dribble", "jump_shot", "pass")
MAX_PLAYERS = 6
MAX_FRAMES = 9999  # the frame index has 4 digits in PoseTrack image ids


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. The spec loader fills it from YAML (``data.synth``); lists become tuples."""

    clips: int = 8  # number of clips
    frames: int = 48  # frames per clip (at most 9999: PoseTrack image ids keep 4 digits for the frame)
    width: int = 320  # frame size, pixels (even: the mp4v encoder needs even sizes)
    height: int = 240
    fps: float = 25.0
    min_players: int = 1
    max_players: int = 3  # at most 6
    views: tuple[str, ...] = ("sideline",)  # subset of sideline, baseline, high_angle; clip i uses views[i % n]
    blur: tuple[str, ...] = ("none",)  # subset of none, low, high; clip i uses blur[(i // len(views)) % n]
    child_fraction: float = 0.0  # fraction of clips whose players are children (spread evenly over indices)
    motions: tuple[str, ...] = MOTIONS  # primitives the players may perform
    seed: int = 0  # clip i draws from numpy.random.default_rng([seed, i])

    def __post_init__(self):
        for name in ("views", "blur", "motions"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        for name in ("clips", "frames", "width", "height", "min_players", "max_players", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise SpecError(name, f"expected an integer, got {value!r}")
        for name in ("fps", "child_fraction"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise SpecError(name, f"expected a number, got {value!r}")
        if self.clips < 1:
            raise SpecError("clips", f"expected at least 1 clip, got {self.clips}")
        if not 1 <= self.frames <= MAX_FRAMES:
            raise SpecError("frames", f"expected 1 to {MAX_FRAMES} frames per clip, got {self.frames}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value < 32 or value > 4096 or value % 2:
                raise SpecError(name, f"expected an even number of pixels between 32 and 4096, got {value}")
        if not 0 < self.fps <= 240:
            raise SpecError("fps", f"expected a frame rate in (0, 240], got {self.fps}")
        if not 1 <= self.min_players <= MAX_PLAYERS:
            raise SpecError("min_players", f"expected 1 to {MAX_PLAYERS} players, got {self.min_players}")
        if not 1 <= self.max_players <= MAX_PLAYERS:
            raise SpecError("max_players", f"expected 1 to {MAX_PLAYERS} players, got {self.max_players}")
        if self.min_players > self.max_players:
            raise SpecError("min_players", f"expected at most max_players={self.max_players}, got {self.min_players}")
        if not 0.0 <= self.child_fraction <= 1.0:
            raise SpecError("child_fraction", f"expected a fraction in [0, 1], got {self.child_fraction}")
        if self.seed < 0:
            raise SpecError("seed", f"expected a non-negative integer, got {self.seed}")
        for name, known in (("views", VIEWS), ("blur", tuple(BLUR_SUBFRAMES)), ("motions", MOTIONS)):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not value:
                raise SpecError(name, f"expected a non-empty list of names from {list(known)}, got {value!r}")
            unknown = [v for v in value if v not in known]
            if unknown:
                raise SpecError(name, f"expected names from {list(known)}, got unknown {unknown}")
            if len(set(value)) != len(value):
                raise SpecError(name, f"expected distinct names, got {list(value)}")



@dataclass(frozen=True)
class H36MConfig:
    """``data.h36m``: where the VideoPose3D files are and how they are split (used with ``source: h36m``)."""

    data_3d: str = ""  # data_3d_h36m.npz (world joints, metres); required with source h36m
    data_2d: str = ""  # data_2d_h36m_<detector>.npz (per-camera 2D pixels); required with source h36m
    train: tuple[str, ...] = H36M_SPLIT["train"][:-1]  # S1 S5 S6 S7
    val: tuple[str, ...] = H36M_SPLIT["train"][-1:]  # S8: the validation subject
    test: tuple[str, ...] = H36M_SPLIT["test"]  # S9 S11
    cameras: tuple[int, ...] = (0,)  # indices into each action's camera list; one camera: a well-posed target
    resolution: tuple[int, int] = (1000, 1000)  # width, height px, when the 2D file's metadata has none

    def __post_init__(self):
        for name in SPLITS:
            if not isinstance(getattr(self, name), tuple):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.train:
            raise SpecError("train", "needs at least one training subject")
        for a in SPLITS:
            for b in SPLITS[SPLITS.index(a) + 1 :]:
                common = sorted(set(getattr(self, a)) & set(getattr(self, b)))
                if common:
                    raise SpecError(b, f"subjects {common} are also in {a}: splits are by subject")
        if not self.cameras or any(c < 0 for c in self.cameras) or len(set(self.cameras)) != len(self.cameras):
            raise SpecError("cameras", f"expected distinct camera indices >= 0, got {list(self.cameras)}")
        if min(self.resolution) < 1:
            raise SpecError("resolution", f"expected a width and height in pixels, got {list(self.resolution)}")

    def split_of(self, subject: str) -> str | None:
        return next((s for s in SPLITS if subject in getattr(self, s)), None)


@dataclass(frozen=True)
class AugmentSpec:
    """Training-split augmentation; one transform per tube, the same for each of its frames."""

    flip: bool = True  # horizontal flip with left/right joint swap
    rotation: float = 30.0  # degrees, uniform in [-rotation, rotation]
    scale: tuple[float, float] = (0.75, 1.25)
    color_jitter: float = 0.2  # brightness/contrast/saturation factor range, 0 = off
    probability: float = 1.0  # chance that a training tube is augmented at all

    def __post_init__(self):
        if not 0.0 <= self.rotation <= 180.0:
            raise SpecError("rotation", f"must be in [0, 180] degrees, got {self.rotation}")
        if not 0.0 < self.scale[0] <= self.scale[1]:
            raise SpecError("scale", f"must be [low, high] with 0 < low <= high, got {list(self.scale)}")
        if not 0.0 <= self.color_jitter < 1.0:
            raise SpecError("color_jitter", f"must be in [0, 1), got {self.color_jitter}")
        if not 0.0 <= self.probability <= 1.0:
            raise SpecError("probability", f"must be in [0, 1], got {self.probability}")


@dataclass(frozen=True)
class DataSpec:
    """Where clips come from and how samples are cut from them (SPEC §3.3).

    The defaults cut MultiStream-style samples (tubes centred on the annotated frame, centre-frame targets,
    PoseTrack joints); STSP-Net takes ``tube_anchor: end``, ``targets: all``, ``joint_set: h36m``,
    ``points3d: true`` and ``flow: dis``.
    """

    # synthcourt: generated into `root` if missing; manifest: clips listed in root/manifest.json;
    # h36m: Human3.6M 2D keypoint windows and 3D joints from VideoPose3D's files (`h36m`), no images
    source: Literal["synthcourt", "manifest", "h36m"] = "synthcourt"
    root: str = "runs/data/synthcourt"  # folder holding manifest.json (relative paths: to the working dir)
    synth: SynthConfig = field(default_factory=SynthConfig)  # used when source is synthcourt
    h36m: H36MConfig = field(default_factory=H36MConfig)  # used when source is h36m
    splits: tuple[float, float, float] = (0.7, 0.15, 0.15)  # train/val/test fractions of videos (never frames)
    joint_set: str = "posetrack"  # posetrack: 2D from the PoseTrack JSON; h36m: 2D + visibility from the 3D npz
    input_size: tuple[int, int] = (128, 128)  # crop H, W; heatmaps are H/4 x W/4
    heatmap_sigma: float = 2.0  # Gaussian sigma in heatmap pixels
    box_scale: float = 1.25  # person box enlargement before cropping
    window: int = 1  # T: frames per person tube (odd with tube_anchor centre; 1 = single frame)
    interval: int = 1  # Δ: frame interval within a tube
    tube_anchor: Literal["centre", "end"] = "centre"  # centre: t-(T//2)Δ..t+(T//2)Δ (MultiStream); end: t-(T-1)Δ..t
    context_len: int = 0  # L: full frames ending at t for the context stream (column `context`); 0 = none
    context_size: tuple[int, int] = (128, 128)  # Hc, Wc of the context frames (multiples of 32)
    targets: Literal["centre", "all"] = "centre"  # centre: targets of the annotated frame; all: of every tube frame
    points3d: bool = False  # joints_3d: root-relative mm h36m joints from the clip's 3D file (joint_set h36m)
    flow: Literal["none", "dis", "farneback"] = "none"  # dense optical flow between consecutive crops (column `flow`)
    boxes: str = "gt"  # evaluation samples' boxes: gt, or a COCO-style detections file (training always uses gt)
    det_threshold: float = 0.5  # detections scoring below this are dropped
    frame_stride: int = 1  # use every n-th annotated frame as a tube anchor
    max_samples_per_clip: int | None = None  # cap on tubes per clip (evenly spread), None = all
    min_visible_joints: int = 4  # training tubes whose anchor person shows fewer labeled joints are not used
    # Training rows each Ray Train worker holds and draws its batches from at random (at least 4 batches;
    # stage.shard_batches). Samples are cut clip by clip, so a buffer of a few batches makes every batch a
    # handful of neighbouring clips' tubes.
    shuffle_buffer: int = 256
    augment: AugmentSpec = field(default_factory=AugmentSpec)
    prepared: bool = False  # true: stream samples from Parquet shards written once (`sportpose data prepare`)
    stream: bool = False  # true: re-cut the train split from video each epoch, fresh augmentation (needs a free CPU)
    # How training workers get a split whose rows exist (materialised or prepared): direct = each reads its equal
    # share itself (sportpose.data.feed); ray_data = Ray Data's streaming split. Lazy splits always use Ray Data.
    feed: Literal["direct", "ray_data"] = "direct"
    max_skip_fraction: float = 0.05  # fail when more clips than this are unreadable
    on_error: Literal["skip", "raise"] = "skip"  # raise: the first bad clip is fatal

    def __post_init__(self):
        cut_sets = [s for s in JOINT_SETS if s in ("posetrack", "h36m")]  # the sets the pipeline has sources for
        if self.joint_set not in cut_sets:
            raise SpecError("joint_set", f"expected one of {cut_sets}, got {self.joint_set!r}")
        if len(self.splits) != 3 or any(s < 0 for s in self.splits) or abs(sum(self.splits) - 1.0) > 1e-6:
            raise SpecError("splits", f"must be three non-negative fractions summing to 1, got {list(self.splits)}")
        for name in ("input_size", "context_size"):
            h, w = getattr(self, name)
            if h < 32 or w < 32 or h % 32 or w % 32:
                raise SpecError(name, f"must be multiples of 32 (stride of C5), at least 32, got {[h, w]}")
        if self.heatmap_sigma <= 0:
            raise SpecError("heatmap_sigma", f"must be positive, got {self.heatmap_sigma}")
        if self.box_scale < 1.0:
            raise SpecError("box_scale", f"must be at least 1, got {self.box_scale}")
        if self.window < 1:
            raise SpecError("window", f"must be at least 1, got {self.window}")
        if self.tube_anchor == "centre" and self.window % 2 == 0:
            raise SpecError("window", f"must be odd with tube_anchor centre (a centre frame), got {self.window}")
        if self.interval < 1:
            raise SpecError("interval", f"must be at least 1, got {self.interval}")
        if self.context_len < 0:
            raise SpecError("context_len", f"must be 0 (no context clip) or more, got {self.context_len}")
        if self.points3d and self.joint_set != "h36m":
            raise SpecError("points3d", f"3D joints are h36m joints: needs joint_set h36m, got {self.joint_set!r}")
        if self.flow != "none" and self.window < 2:
            raise SpecError("flow", f"flow between consecutive crops needs window >= 2, got {self.window}")
        if not self.boxes:
            raise SpecError("boxes", "expected gt or the path of a detections file, got an empty string")
        if not 0.0 <= self.det_threshold <= 1.0:
            raise SpecError("det_threshold", f"must be in [0, 1], got {self.det_threshold}")
        if self.frame_stride < 1:
            raise SpecError("frame_stride", f"must be at least 1, got {self.frame_stride}")
        if self.max_samples_per_clip is not None and self.max_samples_per_clip < 1:
            raise SpecError("max_samples_per_clip", f"must be at least 1, got {self.max_samples_per_clip}")
        if self.min_visible_joints < 0:
            raise SpecError("min_visible_joints", f"must be non-negative, got {self.min_visible_joints}")
        if self.shuffle_buffer < 0:
            raise SpecError("shuffle_buffer", f"must be non-negative, got {self.shuffle_buffer}")
        if self.prepared and self.stream:
            raise SpecError("stream", "cutting from video each epoch and reading prepared Parquet exclude each other")
        if not 0.0 <= self.max_skip_fraction <= 1.0:
            raise SpecError("max_skip_fraction", f"must be in [0, 1], got {self.max_skip_fraction}")
        if self.source == "h36m":  # 2D keypoint windows ending at the current frame, nothing to decode or prepare
            for name, value in (("joint_set", "h36m"), ("tube_anchor", "end"), ("flow", "none"), ("context_len", 0),
                                ("prepared", False), ("stream", False), ("boxes", "gt")):
                if getattr(self, name) != value:
                    raise SpecError(name, f"must be {value!r} with source h36m (2D keypoints, no images), "
                                          f"got {getattr(self, name)!r}")
            for name in ("data_3d", "data_2d"):
                if not getattr(self.h36m, name):
                    raise SpecError(f"h36m.{name}", "the VideoPose3D file is required with source h36m")

    @property
    def boxes_label(self) -> str:
        """Where evaluation boxes come from, as reports and metrics name it."""
        return "ground truth" if self.boxes == "gt" else f"detections ({Path(self.boxes).name})"


