"""A person detector in ONNX, run with onnxruntime: ``sportpose infer --detector FILE.onnx``.

No detector ships with the project and nothing is downloaded: the user brings an exported detector, as
rtmlib, MMDeploy, Megvii's YOLOX and Ultralytics write them. The file's own input and output shapes say
which of the four accepted layouts it is in (``layout="auto"``; one can also be named):

=========  =====================================  ======================================================
layout     output (the first one; batch 1)        meaning
=========  =====================================  ======================================================
end2end    ``dets (1, N, 5)`` [+ ``labels (1, N)``] boxes ``x1, y1, x2, y2`` (input pixels) and score, NMS
                                                  already done: MMDeploy's / rtmlib's RTMDet and YOLOX
                                                  "end2end" exports. With labels, only ``person_class``.
yolox      ``(1, A, 5 + C)``                      Megvii YOLOX (``tools/export_onnx.py``, not decoded):
                                                  per grid cell ``dx, dy, log w, log h`` in stride units,
                                                  objectness and C class scores (sigmoid applied);
                                                  A = Σ (H/s)·(W/s) over strides 8, 16, 32 (and 64 for
                                                  P6 models); box centre = (cell + d) · s, size = e^log · s.
yolov5     ``(1, 3A, 5 + C)``                     Ultralytics YOLOv5: ``cx, cy, w, h`` (input pixels),
                                                  objectness, C class scores; 3 anchors per cell.
yolov8     ``(1, 4 + C, A)``                      Ultralytics YOLOv8 / YOLO11: ``cx, cy, w, h`` (input
                                                  pixels) and C class scores, channels first, no
                                                  objectness.
=========  =====================================  ======================================================

A person's score is objectness × the person class's score (class ``person_class``, 0 in COCO), or the
class score alone (yolov8), or the end2end score.

The input is one ``(1, 3, H, W)`` float32 image; H and W come from the file (640 x 640 when they are
dynamic). The frame is letterboxed into it, keeping its aspect, the rest filled with grey 114, as each
family's own tools do:

- end2end and yolox (rtmlib, MMDeploy, Megvii): the frame at the top left, BGR channel order, values 0..255
  (no mean or std: those exports hold their normalisation in the graph, as rtmlib feeds them);
- yolov5 and yolov8 (Ultralytics): the frame centred, RGB, values 0..1.

Boxes are mapped back through the letterbox to frame pixels, clipped to the frame, thresholded at
``score_threshold`` and suppressed at ``nms_iou`` (greedy NMS, highest score first; it also runs on an
end2end file's output, where it changes nothing unless the file's own NMS was looser). A file in none of
the layouts is refused at load, naming the file, the tensor, its shape and the shapes expected.

onnxruntime runs on the CPU, or on CUDA when its CUDA provider is installed (``onnxruntime-gpu``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sportpose.errors import DataError

LAYOUTS = ("end2end", "yolox", "yolov5", "yolov8")
ULTRALYTICS = ("yolov5", "yolov8")  # centred letterbox, RGB, values 0..1
DEFAULT_INPUT = (640, 640)  # (H, W) when the file's input size is dynamic
PAD_VALUE = 114
STRIDE_SETS = ((8, 16, 32), (8, 16, 32, 64))


@dataclass(frozen=True)
class Letterbox:
    """Where a frame sits in the detector's input: input pixel = frame pixel · ratio + (pad_x, pad_y)."""

    ratio: float
    pad_x: float
    pad_y: float

    def to_frame(self, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) ``x1, y1, x2, y2`` input pixels -> frame pixels."""
        out = np.asarray(boxes, np.float64).copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.ratio
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.ratio
        return out


def letterbox(image: np.ndarray, size: tuple[int, int], centred: bool) -> tuple[np.ndarray, Letterbox]:
    """The frame resized to fit ``size`` (H, W) with its aspect kept, on a grey canvas.

    Args:
        image: (h, w, 3) uint8.
        size: (H, W) of the detector's input.
        centred: centred with the padding split on both sides (Ultralytics), else at the top left (rtmlib).

    Returns:
        (H, W, 3) uint8 canvas and where the frame sits in it.
    """
    (H, W), (h, w) = size, image.shape[:2]
    ratio = min(H / h, W / w)
    if centred:  # Ultralytics' LetterBox: rounded size, padding split with its -0.1/+0.1 rounding
        nw, nh = round(w * ratio), round(h * ratio)
        left, top = round((W - nw) / 2 - 0.1), round((H - nh) / 2 - 0.1)
    else:  # rtmlib: truncated size, at the origin
        nw, nh = int(w * ratio), int(h * ratio)
        left = top = 0
    canvas = np.full((H, W, 3), PAD_VALUE, np.uint8)
    canvas[top:top + nh, left:left + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return canvas, Letterbox(ratio, float(left), float(top))


def box_nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy NMS of ``x1, y1, x2, y2`` boxes (N, 4), highest score first."""
    order = np.argsort(-scores, kind="stable")
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(int(i))
        w = np.clip(np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]), 0, None)
        h = np.clip(np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]), 0, None)
        inter = w * h
        union = areas[i] + areas[rest] - inter
        order = rest[inter <= iou * np.where(union > 0, union, 1.0)]
    return np.array(keep, np.int64)


def _shape(shape) -> tuple:
    return tuple(d if isinstance(d, int) else "?" for d in shape)


class OnnxDetector:
    """A person detector in ONNX (see the module doc for the accepted layouts).

    Args:
        path: the ``.onnx`` file.
        score_threshold: people scoring below it are dropped.
        nms_iou: of two boxes overlapping more than this (IoU), the lower-scoring one is dropped.
        providers: onnxruntime execution providers; None: CUDA when available, then the CPU.
        layout: ``auto`` (from the file's shapes) or one of `LAYOUTS`.
        person_class: the person's class index (COCO: 0).

    Raises:
        DataError: the file is missing, not an ONNX model, or in none of the layouts (naming the tensor, its
            shape and the shapes expected).
    """

    def __init__(self, path: str | Path, score_threshold: float = 0.3, nms_iou: float = 0.45,
                 providers: list[str] | None = None, layout: str = "auto", person_class: int = 0):
        import onnxruntime as ort

        self.path = str(path)
        if not Path(path).is_file():
            raise DataError(self.path, "--detector", "file not found")
        if layout != "auto" and layout not in LAYOUTS:
            raise DataError(self.path, "layout", f"expected auto or one of {', '.join(LAYOUTS)}, got {layout!r}")
        if not 0.0 <= score_threshold <= 1.0 or not 0.0 <= nms_iou <= 1.0:
            raise DataError(self.path, "thresholds", f"score threshold and NMS IoU must be in [0, 1], got "
                                                     f"{score_threshold} and {nms_iou}")
        self.score_threshold, self.nms_iou, self.person_class = score_threshold, nms_iou, person_class
        if providers is None:
            available = ort.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        options = ort.SessionOptions()
        options.log_severity_level = 3  # onnxruntime's own warnings (unused initialisers...) are not the user's
        try:
            self.session = ort.InferenceSession(self.path, options, providers=providers)
        except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise DataError(self.path, "--detector", f"not an ONNX model onnxruntime can load ({first})") from None
        self.providers = self.session.get_providers()
        self.input = self.session.get_inputs()[0]
        self.input_size = self._input_size()
        self.outputs = [o.name for o in self.session.get_outputs()]
        # One run on a grey image gives the real output shapes, dynamic dimensions included.
        probe = self.session.run(self.outputs, {self.input.name: np.full((1, 3, *self.input_size), 0.5, np.float32)})
        self.layout = self._layout(probe, layout)
        self.grid = self._grid(probe[0].shape[1]) if self.layout == "yolox" else None

    def _input_size(self) -> tuple[int, int]:
        shape = self.input.shape
        channels = shape[1] if len(shape) == 4 else None
        if len(shape) != 4 or (isinstance(channels, int) and channels != 3) or self.input.type != "tensor(float)":
            raise DataError(self.path, f"input {self.input.name!r}",
                            f"{self.input.type} of shape {_shape(shape)}: expected one float32 image (1, 3, H, W)")
        h, w = shape[2], shape[3]
        return (h, w) if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0 else DEFAULT_INPUT

    def _cells(self) -> dict[int, tuple[int, ...]]:
        """Grid cells A at this input size -> the strides giving them."""
        H, W = self.input_size
        return {sum((H // s) * (W // s) for s in strides): strides for strides in STRIDE_SETS}

    def _layout(self, probe: list[np.ndarray], asked: str) -> str:
        out = probe[0]
        cells = self._cells()
        found = None
        if out.ndim == 3 and out.shape[0] == 1:
            _, a, k = out.shape
            if k == 5 and (len(probe) == 1 or probe[1].shape == (1, a)):
                found = "end2end"
            elif k >= 6 and a in cells:
                found = "yolox"
            elif k >= 6 and a % 3 == 0 and a // 3 in cells:
                found = "yolov5"
            elif a >= 5 and k in cells:
                found = "yolov8"
        if found is None or (asked != "auto" and asked != found):
            H, W = self.input_size
            a = min(cells)
            raise DataError(
                self.path, f"output {self.outputs[0]!r}",
                f"shape {tuple(out.shape)} is {'not ' + asked if asked != 'auto' else 'in no detector layout'}; "
                f"at this {H}x{W} input expected (1, N, 5) boxes+score [with labels (1, N)] (end2end), "
                f"(1, {a}, 5+C) (yolox), (1, {3 * a}, 5+C) (yolov5) or (1, 4+C, {a}) (yolov8); "
                f"A = {a} grid cells at strides 8/16/32")
        if found in ("yolox", "yolov5") and out.shape[2] - 5 <= self.person_class or \
                found == "yolov8" and out.shape[1] - 4 <= self.person_class:
            raise DataError(self.path, f"output {self.outputs[0]!r}",
                            f"shape {tuple(out.shape)} holds no class {self.person_class} (the person class)")
        return found

    def preprocess(self, frame: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """(H, W, 3) uint8 RGB frame -> the (1, 3, H, W) float32 input of this layout and its letterbox."""
        ultralytics = self.layout in ULTRALYTICS
        canvas, box = letterbox(frame, self.input_size, centred=ultralytics)
        if ultralytics:
            x = canvas.astype(np.float32) / 255.0  # RGB, 0..1
        else:
            x = canvas[..., ::-1].astype(np.float32)  # BGR, 0..255
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None]), box  # (1, 3, H, W)

    def decode(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The file's outputs -> person boxes ``x1, y1, x2, y2`` (N, 4) in input pixels and scores (N,)."""
        out = np.asarray(outputs[0], np.float64)[0]
        c = self.person_class
        if self.layout == "end2end":
            keep = np.ones(len(out), bool) if len(outputs) == 1 else np.asarray(outputs[1])[0] == c
            return out[keep, :4], out[keep, 4]
        if self.layout == "yolov8":
            out = out.T  # (A, 4 + C)
            centre, size, score = out[:, :2], out[:, 2:4], out[:, 4 + c]
        else:
            centre, size, score = out[:, :2], out[:, 2:4], out[:, 4] * out[:, 5 + c]
            if self.layout == "yolox":  # grid offsets and log sizes in stride units
                grid, stride = self.grid
                centre, size = (centre + grid) * stride, np.exp(np.minimum(size, 20.0)) * stride
        return np.concatenate([centre - size / 2, centre + size / 2], axis=1), score

    def _grid(self, cells: int) -> tuple[np.ndarray, np.ndarray]:
        """YOLOX's cell positions (A, 2) ``x, y`` and strides (A, 1), strides in turn, cells row by row."""
        H, W = self.input_size
        grids, strides = [], []
        for s in self._cells()[cells]:
            ys, xs = np.mgrid[0:H // s, 0:W // s]
            grids.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
            strides.append(np.full((xs.size, 1), s))
        return np.concatenate(grids).astype(np.float64), np.concatenate(strides).astype(np.float64)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """People in one frame.

        Args:
            frame: (H, W, 3) uint8 RGB.

        Returns:
            (N, 5) float32 ``x1, y1, x2, y2, score``, frame pixels, highest score first.
        """
        x, box = self.preprocess(frame)
        outputs = self.session.run(self.outputs, {self.input.name: x})
        boxes, scores = self.decode(outputs)
        ok = np.isfinite(scores) & (scores >= self.score_threshold) & np.isfinite(boxes).all(axis=1)
        boxes, scores = box.to_frame(boxes[ok]), scores[ok]
        h, w = frame.shape[:2]
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        real = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
        boxes, scores = boxes[real], scores[real]
        keep = box_nms(boxes, scores, self.nms_iou)
        return np.concatenate([boxes[keep], scores[keep, None]], axis=1).astype(np.float32).reshape(-1, 5)

    def describe(self) -> str:
        H, W = self.input_size
        return (f"ONNX detector {Path(self.path).name} ({self.layout}, {W}x{H} input, score >= {self.score_threshold}, "
                f"NMS IoU {self.nms_iou}, {self.providers[0]})")

