"""The ONNX person detector: each accepted layout exported from PyTorch and run with onnxruntime on a SynthCourt
frame, the letterbox and channel order of each family, and one clear error for a file in no layout.

No trained detector ships with the project, so the networks here hold their answer in their head: a
convolution stem reads the image and the head adds the encoded boxes of the frame's ground-truth players (and
decoys: a lower-scoring duplicate, a weak box, a box of another class), each in the layout's own encoding at
the detector's input. What is tested is everything between the file and the boxes: layout detection,
decoding, the letterbox back to frame pixels, the score threshold and NMS."""

import json

import numpy as np
import pytest
import torch

from sportpose.cli import main as cli
from sportpose.data.formats import read_posetrack18
from sportpose.data.video import iter_frames, open_video
from sportpose.errors import DataError
from sportpose.inference.detector import OnnxDetector, letterbox

CLIP = "synth_5_0001"
INPUT = (128, 128)  # (H, W): a 160x120 frame fits at ratio 0.8 as 128x96, 32 rows of padding
CELLS = 16 * 16 + 8 * 8 + 4 * 4  # grid cells at strides 8, 16, 32


class HeldAnswer(torch.nn.Module):
    """A detector network whose head outputs fixed tensors (plus the image stem's contribution, times 0)."""

    def __init__(self, *outputs: np.ndarray, channels: int = 3):
        super().__init__()
        self.stem = torch.nn.Conv2d(channels, 4, 3, stride=2, padding=1)
        for i, o in enumerate(outputs):
            self.register_buffer(f"out{i}", torch.from_numpy(o))
        self.n = len(outputs)

    def forward(self, images):
        zero = self.stem(images).mean() * 0.0
        outs = [getattr(self, f"out{i}") for i in range(self.n)]
        return tuple(o + zero if o.is_floating_point() else o + zero.long() for o in outs)


def export(path, outputs, names, input_shape=(1, 3, *INPUT)):
    torch.onnx.export(HeldAnswer(*outputs, channels=input_shape[1]).eval(), (torch.zeros(input_shape),), str(path), dynamo=False,
                      input_names=["images"], output_names=names, opset_version=17)
    return path


def frame_and_players(tiny_synth):
    """Frame 0 of the clip (120, 160, 3) RGB and its players' boxes x1, y1, x2, y2 (frame pixels, in the frame)."""
    reader = open_video(tiny_synth / "videos" / f"{CLIP}.mp4")
    _, (frame, *_) = next(iter(iter_frames(reader, range(1), 1)))
    data = json.loads((tiny_synth / "annotations" / f"{CLIP}.json").read_text())
    first = min(i["id"] for i in data["images"])
    boxes = np.array([a["bbox"] for a in data["annotations"] if a["image_id"] == first and a.get("bbox")], np.float64)
    boxes[:, 2:] += boxes[:, :2]
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, frame.shape[1])
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, frame.shape[0])
    assert len(boxes) >= 1
    return frame, boxes


def held_boxes(players: np.ndarray, centred: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes at the detector's input (x1, y1, x2, y2), their person scores and other-class scores: the players
    (0.9), a shifted duplicate of the first (0.6, suppressed by NMS), a weak box (0.1) and a ball (class 1)."""
    pad_y = 16.0 if centred else 0.0
    at_input = players * 0.8 + np.array([0.0, pad_y, 0.0, pad_y])
    decoys = np.array([at_input[0] + 2.0, [10, 40, 30, 90], [80, 50, 90, 60]], np.float64)
    boxes = np.concatenate([at_input, decoys])
    person = np.array([0.9] * len(players) + [0.6, 0.1, 0.0])
    other = np.array([0.0] * len(players) + [0.0, 0.0, 0.95])
    return boxes, person, other


def encode(layout: str, boxes, person, other) -> list[np.ndarray]:
    """The boxes as a file of ``layout`` outputs them."""
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    n = len(boxes)
    if layout == "end2end":
        dets = np.concatenate([boxes, person[:, None] + other[:, None]], axis=1)[None].astype(np.float32)  # (1, N, 5)
        labels = np.array([[0] * n], np.int64)
        labels[0, other > 0] = 1
        return [dets, labels]
    rows = np.zeros((3 * CELLS if layout == "yolov5" else CELLS, 7), np.float32)  # cx, cy, w, h, obj, person, ball
    k = np.arange(n) * 5 + 3  # the cells the boxes sit in (any cell decodes; stride-8 cells, grid x = k, y = 0)
    if layout == "yolox":  # offsets from the cell and log sizes, in stride units
        rows[k, :4] = np.stack([cx / 8 - k, cy / 8, np.log(w / 8), np.log(h / 8)], axis=1)
    else:
        rows[k, :4] = np.stack([cx, cy, w, h], axis=1)
    rows[k, 4], rows[k, 5], rows[k, 6] = 1.0, person, other
    if layout == "yolov8":
        return [np.delete(rows, 4, axis=1).T[None].copy()]  # (1, 4 + C, A): no objectness
    return [rows[None]]


@pytest.mark.parametrize("layout", ["end2end", "yolox", "yolov5", "yolov8"])
def test_each_layout_finds_the_players_in_frame_pixels(layout, tiny_synth, tmp_path):
    frame, players = frame_and_players(tiny_synth)
    outputs = encode(layout, *held_boxes(players, centred=layout in ("yolov5", "yolov8")))
    names = ["dets", "labels"] if layout == "end2end" else ["output0"]
    detector = OnnxDetector(export(tmp_path / f"{layout}.onnx", outputs, names), score_threshold=0.3, nms_iou=0.45)
    assert detector.layout == layout and detector.input_size == INPUT
    found = detector(frame)
    assert found.dtype == np.float32 and found.shape == (len(players), 5)
    order = np.lexsort((players[:, 1], players[:, 0]))
    got = found[np.lexsort((found[:, 1], found[:, 0]))]
    assert np.allclose(got[:, :4], players[order], atol=0.05), (got, players[order])
    assert np.allclose(got[:, 4], 0.9, atol=1e-6)
    assert layout in detector.describe()


def test_letterbox_and_channels_follow_each_family():
    frame = np.zeros((120, 160, 3), np.uint8)
    frame[...] = (10, 20, 30)  # RGB
    canvas, box = letterbox(frame, INPUT, centred=False)
    assert (box.ratio, box.pad_x, box.pad_y) == (0.8, 0.0, 0.0)
    assert (canvas[:96] == (10, 20, 30)).all() and (canvas[96:] == 114).all()
    canvas, box = letterbox(frame, INPUT, centred=True)
    assert (box.pad_x, box.pad_y) == (0.0, 16.0)
    assert (canvas[16:112] == (10, 20, 30)).all() and (canvas[:16] == 114).all() and (canvas[112:] == 114).all()
    assert np.allclose(box.to_frame(np.array([[8.0, 24.0, 16.0, 32.0]])), [[10, 10, 20, 20]])


def test_preprocessing_of_each_family(tiny_synth, tmp_path):
    frame = np.zeros((120, 160, 3), np.uint8)
    frame[...] = (10, 20, 30)
    rtmlib = OnnxDetector(export(tmp_path / "e.onnx", encode("end2end", *held_boxes(np.array([[1., 2, 30, 40]]),
                                                                                        False)), ["dets", "labels"]))
    x, _ = rtmlib.preprocess(frame)  # BGR 0..255 at the top left
    assert x.shape == (1, 3, 128, 128) and x.dtype == np.float32
    assert x[0, :, 0, 0].tolist() == [30.0, 20.0, 10.0] and x[0, 0, 127, 0] == 114.0
    ultra = OnnxDetector(export(tmp_path / "v8.onnx", encode("yolov8", *held_boxes(np.array([[1., 2, 30, 40]]),
                                                                                      True)), ["output0"]))
    x, _ = ultra.preprocess(frame)  # RGB 0..1, centred
    assert np.allclose(x[0, :, 64, 0], [10 / 255, 20 / 255, 30 / 255]) and np.isclose(x[0, 0, 0, 0], 114 / 255)


def test_a_file_in_no_layout_is_refused_with_the_tensor_and_the_shapes_expected(tmp_path):
    bad = export(tmp_path / "bad.onnx", [np.zeros((1, 7, 3), np.float32)], ["scores"])
    with pytest.raises(DataError) as e:
        OnnxDetector(bad)
    message = str(e.value)
    assert message.startswith(f"{bad}: output 'scores': shape (1, 7, 3) is in no detector layout")
    assert "(1, 336, 5+C) (yolox)" in message and "(1, 4+C, 336) (yolov8)" in message and "\n" not in message
    grey = export(tmp_path / "grey.onnx", [np.zeros((1, 3, 5), np.float32)], ["dets"], input_shape=(1, 1, 64, 64))
    with pytest.raises(DataError, match=r"grey.onnx: input 'images': tensor\(float\) of shape \(1, 1, 64, 64\): "
                                        r"expected one float32 image \(1, 3, H, W\)"):
        OnnxDetector(grey)
    with pytest.raises(DataError, match="missing.onnx: --detector: file not found"):
        OnnxDetector(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(DataError, match="junk.onnx: --detector: not an ONNX model onnxruntime can load"):
        OnnxDetector(tmp_path / "junk.onnx")


@pytest.mark.integration
def test_sportpose_infer_with_an_onnx_detector(tiny_synth, tiny_checkpoint, tmp_path, capsys):
    """The whole ``sportpose infer --detector`` path: every frame's people are the detector's boxes."""
    frame, players = frame_and_players(tiny_synth)
    detector = export(tmp_path / "yolox.onnx", encode("yolox", *held_boxes(players, centred=False)), ["output"])
    out = tmp_path / "out"
    code = cli.main(["infer", str(tiny_synth / "videos" / f"{CLIP}.mp4"), "--model", str(tiny_checkpoint),
                     "--detector", str(detector), "--out", str(out), "--threads", "1", "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0 and "ONNX detector yolox.onnx" in printed
    (video,) = read_posetrack18(out / f"{CLIP}.json")
    assert len(video.frames) == 16
    expected = players[np.lexsort((players[:, 1], players[:, 0]))]
    for f in video.frames:  # the held answer is the same in every frame: frame 0's players
        boxes = np.array([p.bbox for p in f.persons], np.float64)
        boxes[:, 2:] += boxes[:, :2]
        assert np.allclose(boxes[np.lexsort((boxes[:, 1], boxes[:, 0]))], expected, atol=0.05)
        assert len({p.track_id for p in f.persons}) == len(players)
    summary = json.loads((out / "summary.json").read_text())
    assert "ONNX detector yolox.onnx" in summary["boxes"] and summary["poses"] == 16 * len(players)
