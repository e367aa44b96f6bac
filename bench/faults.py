"""Fault injection: tiny two-stage runs killed and corrupted at random points, resumed until they finish.

Each of N runs is a real ``sportpose train`` process on its own local Ray. At a random epoch of a random stage
(both stages train on one Ray Train worker) one fault is injected:

- ``kill_worker``: SIGKILL of the Ray Train worker process; Ray Train restarts it from the latest checkpoint
  (``max_failures``) and the same driver finishes;
- ``kill_driver``: SIGKILL of the driver's whole process group (no chance to clean up), then
  ``sportpose train --resume`` until it finishes;
- ``corrupt_checkpoint``: the driver is killed as above and the newest ``checkpoint.pt`` is truncated to half
  its size before the resume (which must pass over it to the previous epoch).

After each run: did it finish (exit 0), is every stage that had finished before the fault still finished with
the same checkpoint, and does every checkpoint written before the fault still verify (the one corrupted on
purpose excepted)? Every process is bounded by a timeout.

Usage: python bench/faults.py [--runs N] [--seed S] [--epochs E]
Last line: runs_survived=K/N finished_stages_lost=L checkpoints_lost=C ... (name=value pairs).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sportpose.errors import DataError  # noqa: E402
from sportpose.training import checkpoints  # noqa: E402

FAULTS = ("kill_worker", "kill_driver", "corrupt_checkpoint")
RUN_TIMEOUT_S = 600


def spec_text(name: str, data_root: Path, epochs: int) -> str:
    base = (REPO / "experiments" / "paper" / "base" / "simplebaseline_tiny.yaml").read_text()
    base = base.replace("name: tiny", f"name: {name}").replace("root: runs/data/synthcourt-sb-tiny",
                                                               f"root: {data_root}")
    base = base.replace("    main: {epochs: 2, batch_size: 16, scaling: {num_workers: 2}}",
                        f"    main: {{epochs: {epochs}, batch_size: 8, scaling: {{num_workers: 1}}, max_failures: 3}}\n"
                        f"    tune: {{after: [main], epochs: {epochs}, batch_size: 8, scaling: {{num_workers: 1}}, "
                        f"max_failures: 3, optimizer: {{lr: 0.0005}}}}")
    return base + "register: {enabled: false}\n"


def train(spec: Path, env: dict[str, str], resume: bool = False) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "sportpose", "train", str(spec)] + (["--resume"] if resume else [])
    return subprocess.Popen(cmd, env=env, cwd=spec.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def epoch_files(runs: Path, name: str) -> dict[str, Path]:
    """Every epoch checkpoint of the spec's Ray runs: ``{"<run>/epoch_NNNN": folder}``."""
    return {f"{p.parent.name}/{p.name}": p for p in sorted(runs.glob(f"ray/{name}-*/epoch_*")) if (p / "checkpoint.pt").exists()}


def finished_stages(runs: Path, name: str) -> dict[str, str]:
    path = runs / "pipelines" / name / "state.json"
    try:
        state = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return {s: v["checkpoint"] for s, v in state.get("stages", {}).items() if v.get("status") == "finished"}


def ray_train_workers(run: int) -> list[int]:
    """PIDs of the RayTrainWorker processes of run ``run``'s local Ray: found by process title and by the
    SPORTPOSE_FAULTS_DRIVER marker its processes inherit from the driver's environment."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                title = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
                env = Path(f"/proc/{entry}/environ").read_bytes()
            except OSError:
                continue
            if title.startswith("ray::RayTrainWorker") and f"SPORTPOSE_FAULTS_DRIVER={run}\0".encode() in env:
                found.append(int(entry))
    return found


def wait_for(condition, proc: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.2)
    return False


def finish(proc: subprocess.Popen, timeout: float = RUN_TIMEOUT_S) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return -9, out
    return proc.returncode, out


def one_run(i: int, fault: str, rng: random.Random, work: Path, epochs: int, log) -> dict:
    name = f"faults{i}"
    runs = work / "runs"
    spec = work / f"{name}.yaml"
    spec.write_text(spec_text(name, work / "data", epochs))
    env = {**os.environ, "SPORTPOSE_RUNS": str(runs), "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    stage = rng.choice(["main", "tune"])
    epoch = rng.randrange(0, epochs - 1)  # a fault strictly before the stage's last epoch
    target = f"{name}-*-{stage}/epoch_{epoch:04d}"
    t0 = time.perf_counter()
    driver = train(spec, env)
    reached = wait_for(lambda: any(runs.glob(f"ray/{target}/checkpoint.pt.sha256")), driver, RUN_TIMEOUT_S)
    before_ckpts = epoch_files(runs, name)
    before_stages = finished_stages(runs, name)
    corrupted = None
    if not reached:
        code, out = finish(driver)
        log(f"run {i}: {fault} at {stage} epoch {epoch}: never reached (exit {code})\n{out[-2000:]}")
        return {"survived": code == 0, "stages_lost": 0, "ckpts_lost": 0, "fault": fault, "s": time.perf_counter() - t0}
    if fault == "kill_worker":
        workers = ray_train_workers(i)
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        code, out = finish(driver)
        injected = f"killed {len(workers)} Ray Train worker(s)"
    else:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
        injected = "killed the driver"
        if fault == "corrupt_checkpoint":
            newest = max(epoch_files(runs, name).values(), key=lambda p: p.stat().st_mtime)
            ckpt = newest / "checkpoint.pt"
            ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
            corrupted = f"{newest.parent.name}/{newest.name}"
            injected += f", truncated {corrupted}"
        time.sleep(2)  # the killed Ray's processes see their parent gone
        code, out = 1, ""
        for _ in range(3):  # a resume interrupted by nothing should need one attempt
            code, out = finish(train(spec, env, resume=True))
            if code == 0:
                break
    after_stages = finished_stages(runs, name)
    stages_lost = sum(after_stages.get(s) != c for s, c in before_stages.items())
    lost = 0
    for key, folder in before_ckpts.items():
        if key == corrupted:
            continue
        try:
            checkpoints.verify(folder)
        except DataError:
            lost += 1
    seconds = time.perf_counter() - t0
    log(f"run {i}: {fault} at stage {stage} epoch {epoch}: {injected}; exit {code}; finished stages before "
        f"{sorted(before_stages)}, lost {stages_lost}; checkpoints before {len(before_ckpts)}, lost {lost}; "
        f"{seconds:.0f}s")
    if code != 0:
        log(out[-3000:])
    return {"survived": code == 0 and set(after_stages) == {"main", "tune"}, "stages_lost": stages_lost,
            "ckpts_lost": lost, "fault": fault, "s": seconds}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3, help="runs, faults taken in turn (default 3: one of each)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=3, help="epochs per stage (default 3)")
    args = p.parse_args()
    rng = random.Random(args.seed)
    results = []
    with tempfile.TemporaryDirectory(prefix="sportpose-faults-") as d:
        for i in range(args.runs):
            fault = FAULTS[i % len(FAULTS)]
            os.environ["SPORTPOSE_FAULTS_DRIVER"] = str(i)
            results.append(one_run(i, fault, rng, Path(d), args.epochs, lambda line: print(line, flush=True)))
    n = len(results)
    survived = sum(r["survived"] for r in results)
    print(f"faults: {survived}/{n} runs finished; per fault: " + ", ".join(
        f"{f} {sum(r['survived'] for r in results if r['fault'] == f)}/{sum(r['fault'] == f for r in results)}"
        for f in FAULTS))
    print(f"runs_survived={survived}/{n} finished_stages_lost={sum(r['stages_lost'] for r in results)} "
          f"checkpoints_lost={sum(r['ckpts_lost'] for r in results)} runs={n} "
          f"seconds_per_run={sum(r['s'] for r in results) / max(n, 1):.0f}")


if __name__ == "__main__":
    main()
