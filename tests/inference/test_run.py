"""``sportpose infer`` end to end on tiny SynthCourt clips and the PoseTrack fixture video (untrained models:
formats, consistency with ``sportpose eval posetrack``, errors, nothing half-written), and its memory on a long
clip."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from sportpose.cli import main as cli
from sportpose.data.formats import read_posetrack18
from sportpose.errors import DataError
from sportpose.inference import estimator as infer_estimator
from sportpose.inference.run import InferArgs, run_infer
from sportpose.paths import REPO

FIXTURE_VIDEO = (REPO.parent / "shared" / "fixtures" / "posetrack18" / "videos"
                 / "000001_mpiinew_test" / "000001_mpiinew_test.mp4")
needs_fixture = pytest.mark.skipif(not FIXTURE_VIDEO.is_file(),
                                   reason=f"PoseTrack fixture video not found at {FIXTURE_VIDEO} (../shared/fixtures)")
CLIP = "synth_5_0001"


def sportpose(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "SPORTPOSE_RUNS": str(cwd / "runs"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "sportpose", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def frames_of(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, frame = cap.read()
        if not ok:
            return out
        out.append(frame)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name or ".old-" in p.name)


@pytest.mark.integration
def test_infer_writes_every_output_and_its_ap_is_what_eval_posetrack_computes(tiny_synth, tiny_checkpoint, tmp_path,
                                                                             gt_detections):
    gt = tiny_synth / "annotations" / f"{CLIP}.json"
    dets = gt_detections(gt, tmp_path / "dets.json")
    out = tmp_path / "out"
    proc = sportpose("infer", str(tiny_synth / "videos" / f"{CLIP}.mp4"), "--model", str(tiny_checkpoint), "--out",
                     str(out), "--detections", str(dets), "--gt", str(gt), "--threads", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "FPS end to end" in proc.stdout and "Total" in proc.stdout
    assert "PoseTrack tracking (poseval evaluateTracking, %)" in proc.stdout and "MOTA Total" in proc.stdout
    assert "infer synth_5_0001" in proc.stderr  # the progress bar
    assert sorted(p.name for p in out.iterdir()) == sorted(["overlay.mp4", f"{CLIP}.json", "summary.json"])
    assert leftovers(tmp_path) == []

    (video,) = read_posetrack18(out / f"{CLIP}.json")
    (truth,) = read_posetrack18(gt)
    assert video.name == CLIP and len(video.frames) == 16
    assert [f.image_id for f in video.frames] == [f.image_id for f in truth.frames]
    persons = [p for f in video.frames for p in f.persons]
    assert len(persons) == sum(len(f.persons) for f in truth.frames)  # one pose per detection
    assert all(p.scores is not None and p.scores.shape == (17,) and p.track_id >= 0 for p in persons)
    assert len({p.track_id for p in persons}) == len(truth.frames[0].persons)  # ground-truth boxes: one track each

    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 16 and summary["fps"] > 0 and summary["model_fps"] > 0
    assert summary["model"]["kind"] == "simplebaseline" and summary["boxes"].startswith("detections dets.json")

    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    shutil.copy(gt, gt_dir)
    proc = sportpose("eval", "posetrack", "--gt", str(gt_dir), "--pred", str(out), "--json", str(tmp_path / "ap.json"),
                     cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "ap.json").read_text()) == summary["ap"]

    overlay = frames_of(out / "overlay.mp4")
    assert len(overlay) == 16 and overlay[0].shape == (120, 160, 3)


def test_stsp_writes_3d_joints_and_skeleton_pngs(tiny_synth, stsp_checkpoint, tmp_path, gt_detections):
    gt = tiny_synth / "annotations" / f"{CLIP}.json"
    (result,) = run_infer(InferArgs(source=str(tiny_synth / "videos" / f"{CLIP}.mp4"), model=str(stsp_checkpoint),
                                 out=str(tmp_path / "out"), detections=str(gt_detections(gt, tmp_path / "d.json")),
                                 gt=str(gt), progress=False, threads=1), log=lambda _: None)
    out = tmp_path / "out"
    with np.load(out / "joints_3d.npz") as z:
        n = len(z["frames"])
        assert n == result.poses and z["joints_3d"].shape == (n, 17, 3) and z["keypoints_2d"].shape == (n, 17, 2)
        assert np.isfinite(z["joints_3d"]).all() and list(z["joint_names"])[0] == "root"
        assert np.allclose(z["joints_3d"][:, 0], 0.0, atol=1e-3)  # root-relative
    pngs = sorted(out.glob("skeleton3d_f*.png"))
    assert len(pngs) == 4 and cv2.imread(str(pngs[0])).shape[0] > 100
    # an animated 3D skeleton per track (ground-truth boxes: one track per player), H.264, a frame per pose
    videos = sorted(out.glob("skeleton3d_track*.mp4"))
    with np.load(out / "joints_3d.npz") as z:
        per_track = {int(t): int((z["track_ids"] == t).sum()) for t in set(z["track_ids"].tolist())}
    assert [v.name for v in videos] == [f"skeleton3d_track{t}.mp4" for t in sorted(per_track)]
    for v in videos:
        with av.open(str(v)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264" and (stream.width, stream.height) == (480, 480)
            assert sum(1 for _ in container.decode(stream)) == per_track[int(v.stem[len("skeleton3d_track"):])]
    (video,) = read_posetrack18(out / f"{CLIP}.json")
    person = next(p for f in video.frames for p in f.persons)
    assert person.keypoints_3d.shape == (17, 3)
    # h36m joints become PoseTrack's: nose and head_top (which h36m lacks) are written unlabeled, score 0
    assert np.all(person.keypoints[[0, 2]] == 0) and np.all(person.scores[[0, 2]] == 0)
    assert result.ap is not None and result.ap["per_joint"]["nose"] == 0.0


@needs_fixture
def test_the_builtin_proposal_on_the_posetrack_fixture_video(tiny_checkpoint, tmp_path):
    (result,) = run_infer(InferArgs(source=str(FIXTURE_VIDEO), model=str(tiny_checkpoint), out=str(tmp_path / "out"),
                                 progress=False, threads=1), log=lambda _: None)
    assert result.frames == 5 and result.poses > 0 and "built-in proposal" in result.boxes
    (video,) = read_posetrack18(tmp_path / "out" / "000001_mpiinew_test.json")
    assert [f.image_id for f in video.frames] == [30000010000 + i for i in range(5)]
    assert len(frames_of(tmp_path / "out" / "overlay.mp4")) == 5


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()  # what came before (e.g. MLflow creating its database) is not the command's
    code = cli.main(args)
    return code, capsys.readouterr().err


def assert_one_line(err: str, *words: str) -> None:
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("infer ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for word in words:
        assert word in lines[0], lines[0]


def test_errors_are_one_line_and_leave_nothing_behind(tiny_synth, tiny_checkpoint, tmp_path, capsys, monkeypatch):
    video = tiny_synth / "videos" / f"{CLIP}.mp4"
    out = tmp_path / "out"
    base = ["--model", str(tiny_checkpoint), "--out", str(out), "--no-progress"]

    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(video.read_bytes()[: video.stat().st_size // 2])  # truncated: the index is at the end
    code, err = run_cli(["infer", str(corrupt), *base], capsys)
    assert code == 2
    assert_one_line(err, "corrupt.mp4")

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    from sportpose.registry import tracking

    tracking.client().create_registered_model("sportpose-simplebaseline")
    code, err = run_cli(["infer", str(video), "--model", "models:/sportpose-simplebaseline@champion", "--out", str(out)], capsys)
    assert code == 2
    assert_one_line(err, "models:/sportpose-simplebaseline@champion", "no alias 'champion'")

    other = tmp_path / "other.json"  # detections of the PoseTrack fixture video, not of this clip
    other.write_text(json.dumps([{"image_id": 30000010000, "bbox": [1, 2, 30, 60], "score": 0.9}]))
    code, err = run_cli(["infer", str(video), *base, "--detections", str(other)], capsys)
    assert code == 2
    assert_one_line(err, "other.json", "no detection is of video synth_5_0001")

    assert not out.exists() and leftovers(tmp_path) == []

    # A failure mid-stream (here: the model, on the 5th frame) removes the partial output.
    calls = {"n": 0}
    real = infer_estimator.PoseEstimator.prepare

    def failing(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            raise DataError(str(video), "frames 4..4", "cannot be decoded (simulated)")
        return real(self, *a, **k)

    monkeypatch.setattr(infer_estimator.PoseEstimator, "prepare", failing)
    code, err = run_cli(["infer", str(video), *base], capsys)
    assert code == 2 and "simulated" in err
    assert not out.exists() and leftovers(tmp_path) == []

    out.mkdir()
    (out / "keep.txt").write_text("earlier results")
    monkeypatch.setattr(infer_estimator.PoseEstimator, "prepare", real)
    code, err = run_cli(["infer", str(video), *base], capsys)
    assert code == 2
    assert_one_line(err, "--out", "not empty")
    assert (out / "keep.txt").read_text() == "earlier results"


# -- memory -----------------------------------------------------------------------------------------------------

PEAK_RSS = """
import resource, sys
from sportpose.inference import estimator
from sportpose.cli import main as cli

def rss_mb():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS")) / 1024

seen, estimate = [], estimator.PoseEstimator.prepare
def counting(self, *args, **kwargs):  # RSS at frames 250 and the last, while streaming
    seen.append(rss_mb() if len(seen) in (250, int(sys.argv[1]) - 1) else None)
    return estimate(self, *args, **kwargs)
estimator.PoseEstimator.prepare = counting
code = cli.main(sys.argv[2:])
print("RSS_MB", [round(v) for v in seen if v is not None], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
sys.exit(code)
"""


def long_clip(path: Path, frames: int) -> Path:
    """A cheap long clip (OpenCV, 640x480, 920 KB a frame decoded): a court-coloured frame with one player-like
    figure walking back and forth, and its detections file."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (640, 480))
    dets = []
    base = 10000090000  # synth_0_0009: a SynthCourt-style name gives the image ids
    for f in range(frames):
        img = np.full((480, 640, 3), (60, 120, 190), np.uint8)
        x = 40 + (f * 5) % 520
        cv2.rectangle(img, (x, 140), (x + 48, 360), (40, 40, 200), -1)
        cv2.circle(img, (x + 24, 116), 22, (150, 170, 220), -1)
        writer.write(img)
        dets.append({"image_id": base + f, "bbox": [x - 12, 80, 72, 290], "score": 1.0})
    writer.release()
    path.with_suffix(".json").write_text(json.dumps(dets))
    return path


def rss_of_infer(video: Path, frames: int, model: Path, out: Path) -> tuple[list[int], int]:
    """(RSS in MB at frame 250 and at the last frame while streaming, peak RSS in MB) of ``sportpose infer``."""
    proc = subprocess.run([sys.executable, "-c", PEAK_RSS, str(frames), "infer", str(video), "--model", str(model),
                           "--out", str(out), "--detections", str(video.with_suffix(".json")), "--threads", "1",
                           "--no-progress"], capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RSS_MB"))
    during, peak = line[len("RSS_MB "):].rsplit(" ", 1)
    return json.loads(during), int(peak)


@pytest.mark.integration
def test_memory_stays_flat_with_video_length(tiny_checkpoint, tmp_path):
    rss = {}
    for n in (400, 1200):
        (tmp_path / str(n)).mkdir()
        video = long_clip(tmp_path / str(n) / "synth_0_0009.mp4", n)
        rss[n] = rss_of_infer(video, n, tiny_checkpoint, tmp_path / f"out{n}")
    (at_250, at_end), peak_long = rss[1200]
    print(f"peak RSS: 400 frames {rss[400][1]} MB, 1200 frames {peak_long} MB; "
          f"1200-frame run while streaming: {at_250} MB at frame 250, {at_end} MB at frame 1199")
    assert len(frames_of(tmp_path / "out1200" / "overlay.mp4")) == 1200
    # Holding the frames would add 950 x 920 KB = 870 MB between frames 250 and 1199; the predictions kept for
    # the JSON add about 1 KB a frame.
    assert at_end - at_250 < 40, rss[1200]
    # Peaks: the same, and the JSON built at the end (a few MB per 1,000 frames). (With decord decoding beside
    # OpenCV's writer, RSS would climb by about a frame per frame written, to 1 GB: infer decodes with OpenCV.)
    assert peak_long - rss[400][1] < 60, rss


def test_people_are_cut_and_decoded_as_evaluation_does(tiny_synth, tiny_checkpoint, stsp_checkpoint):
    """The same person in the same frame gives the same keypoints through infer's estimator and through the
    data pipeline's samples and the evaluation's prediction: crops, affines, tubes and decoding agree."""
    from sportpose.data.dataset import load_clips
    from sportpose.data.samples import invert_affine, transform_points
    from sportpose.data.tubes import cut_clip_columns
    from sportpose.data.video import open_video, read_frames
    from sportpose.evaluation import evaluate2d, evaluate3d
    from sportpose.registry.load import load_model

    (clip,) = [c for c in load_clips(tiny_synth, (0.0, 0.0, 1.0), seed=0) if c["name"] == CLIP]
    (truth,) = read_posetrack18(clip["annotations"])
    frames = read_frames(open_video(clip["video"]), range(16))
    for checkpoint in (tiny_checkpoint, stsp_checkpoint):
        loaded = load_model(str(checkpoint))
        cols = cut_clip_columns(clip, loaded.spec.data, loaded.spec.seed)
        names = tuple(loaded.model.input_names())
        estimator = infer_estimator.PoseEstimator(loaded)
        for i in (0, len(cols["frame"]) - 1):
            frame, track = int(cols["frame"][i]), int(cols["track_id"][i])
            person = next(p for p in truth.frames[frame].persons if p.track_id == track)
            (pose,) = estimator(frame, frames, [person.bbox.astype(np.float64)], known=16)
            row = {k: v[i : i + 1] for k, v in cols.items()}
            if loaded.kind == "stsp":
                out = loaded.model({k: torch.from_numpy(np.array(row[k])) for k in names})
                crop = out["keypoints_2d"][0, -1].detach().numpy()
                expected = transform_points(crop, invert_affine(row["affine"][0]))
                p3 = evaluate3d.predict(loaded.model, [row], names)
                assert np.allclose(pose.joints_3d, p3.pred[0], atol=1e-3)
            else:
                expected = evaluate2d.predict(loaded.model, [row], names).pred[0]
            assert np.allclose(pose.keypoints, expected, atol=1e-3), (loaded.kind, frame)
