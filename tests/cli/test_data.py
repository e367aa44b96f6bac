"""``sportpose data synth|inspect`` and ``sportpose eval posetrack``, run as a user runs them (a subprocess
each; importing torch costs seconds, so a few), plus in-process checks of the parser and the error path."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import cv2
import pytest

from sportpose.paths import REPO
from sportpose.cli import main as cli
from sportpose.spec.data import SynthConfig

FIXTURES = REPO.parent / "shared" / "fixtures" / "posetrack18"
needs_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason=f"PoseTrack 2018 fixtures not found at {FIXTURES} (../shared/fixtures/posetrack18)"
)
VAL = FIXTURES / "annotations" / "val"
GROUPS = ("Head", "Shou", "Elb", "Wri", "Hip", "Knee", "Ankl", "Total")


def sportpose(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SPORTPOSE_RUNS": str(cwd / "runs")}
    return subprocess.run([sys.executable, "-m", "sportpose", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def assert_one_line_error(proc: subprocess.CompletedProcess, *names: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for name in names:
        assert name in lines[0]


@pytest.mark.integration
def test_synth_then_inspect(tmp_path):
    decord = pytest.importorskip("decord")
    from sportpose.data.formats import read_posetrack18

    out = tmp_path / "sc"
    proc = sportpose("data", "synth", "--out", str(out), "--clips", "3", "--frames", "5", "--width", "160",
                     "--height", "120", "--views", "sideline", "baseline", "high_angle", "--blur", "none", "low",
                     "--max-players", "3", "--child-fraction", "0.5", "--seed", "11", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"manifest: {out / 'manifest.json'}" in proc.stdout
    assert "3 clips x 5 frames (160x120, 25 fps, seed 11)" in proc.stdout and "videos 3" in proc.stdout
    assert "SynthCourt" in proc.stderr  # the progress bar
    manifest = json.loads((out / "manifest.json").read_text())
    assert [c["meta"]["view"] for c in manifest["clips"]] == ["sideline", "baseline", "high_angle"]
    for clip in manifest["clips"]:
        reader = decord.VideoReader(str(out / clip["video"]), num_threads=1)
        assert len(reader) == 5 and reader[2].asnumpy().shape == (120, 160, 3)
        (video,) = read_posetrack18(out / clip["annotations"])
        assert len(video.frames) == 5 and all(f.persons for f in video.frames)

    proc = sportpose("data", "inspect", str(out), "--frames", "3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    sheet_path = out / "inspect" / "contact_sheet.png"
    m = re.search(r"contact sheet: (.+) \((\d+)x(\d+) px\)", proc.stdout)
    assert m and Path(m.group(1)) == sheet_path
    sheet = cv2.imread(str(sheet_path))
    assert sheet is not None and (sheet.shape[1], sheet.shape[0]) == (int(m.group(2)), int(m.group(3)))
    assert sheet.shape[1] == 4 + 3 * (640 + 4) and sheet.std() > 10
    persons = sum(len(json.loads((out / c["annotations"]).read_text())["annotations"]) for c in manifest["clips"])
    assert "videos 3" in proc.stdout and f"persons {persons}" in proc.stdout and "view:" in proc.stdout


@pytest.mark.integration
@needs_fixtures
def test_inspect_fixtures_and_eval_posetrack(tmp_path):
    proc = sportpose("data", "inspect", str(FIXTURES), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    sheet = cv2.imread(str(tmp_path / "runs" / "inspect" / "posetrack18" / "contact_sheet.png"))  # not in fixtures
    assert sheet is not None and sheet.shape[1] == 4 + 3 * (640 + 4) and not (FIXTURES / "inspect").exists()
    assert "videos 3" in proc.stdout and "persons 14" in proc.stdout and "ignore regions 15" in proc.stdout

    out = tmp_path / "eval" / "ap.json"
    proc = sportpose("eval", "posetrack", "--gt", str(VAL), "--pred", str(VAL), "--json", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    header, values = proc.stdout.splitlines()[1:3]
    assert header.split() == list(GROUPS) and values.split() == ["100.0"] * 8
    result = json.loads(out.read_text())
    assert set(result) == {"per_joint", "groups"} and list(result["groups"]) == list(GROUPS)
    assert len(result["per_joint"]) == 15 and set(result["per_joint"].values()) == {100.0}
    assert set(result["groups"].values()) == {100.0}


@pytest.mark.integration
def test_bad_input_is_one_line_naming_the_file(tmp_path):
    bad = tmp_path / "gt"
    bad.mkdir()
    (bad / "video.json").write_text('{"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [')
    proc = sportpose("data", "inspect", str(bad), cwd=tmp_path)
    assert_one_line_error(proc, str(bad / "video.json"), "not valid JSON")


def test_error_paths_in_process(tmp_path, capsys):
    assert cli.main(["eval", "posetrack", "--gt", str(tmp_path / "missing"), "--pred", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'missing'}: not a directory"
    assert cli.main(["data", "inspect", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'missing'}: no such file or folder"
    assert cli.main(["data", "synth", "--out", str(tmp_path / "sc"), "--clips", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --clips: expected at least 1 clip, got 0"
    assert cli.main(["data", "synth", "--out", str(tmp_path / "sc"), "--min-players", "4", "--max-players", "2"]) == 2
    assert "error: --min-players:" in capsys.readouterr().err
    assert not (tmp_path / "sc").exists()


def test_synth_flags_cover_the_config_and_state_its_defaults():
    parser = cli.build_parser()
    args = parser.parse_args(["data", "synth", "--out", "x"])
    assert args.action == "synth" and all(getattr(args, k) is None for k in cli.SYNTH_FLAGS)
    assert set(cli.SYNTH_FLAGS) == {f.name for f in fields(SynthConfig)}
    synth = parser._subparsers._group_actions[0].choices["data"]._subparsers._group_actions[0].choices["synth"]
    helps = {a.dest: a.help for a in synth._actions}
    for name in cli.SYNTH_FLAGS:
        default = getattr(SynthConfig(), name)
        text = " ".join(default) if isinstance(default, tuple) else f"{default:g}" if isinstance(default, float) else str(default)
        assert helps[name].endswith(f"(default {text})"), name
    assert set(cli.DATA_COMMANDS) >= {"synth", "inspect"} and set(cli.EVAL_COMMANDS) == {"posetrack"}
