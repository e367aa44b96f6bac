"""Cluster jobs: the storage/tracking checks, the runtime_env, auth, and (integration) a real 2-node Ray cluster.

The integration tests start a head and a worker node on this machine with cluster/local/start.sh (their own
ports, temp dir and token) and an MLflow server with `sportpose mlflow-server`, submit specs with
`sportpose submit`, and stop exactly what they started (stop.sh, and the server's process group).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from sportpose.errors import SpecError
from sportpose.paths import EXPERIMENTS, REPO
from sportpose.platform import jobs
from sportpose.platform.jobs import ClusterError, ClusterInfo
from sportpose.spec.experiment import load_spec, spec_yaml

HEAD = {"node_id": "a" * 56, "node_ip": "10.0.0.1", "is_head_node": True, "resources_total": {"CPU": 8.0}}
WORKER = {"node_id": "b" * 56, "node_ip": "10.0.0.2", "is_head_node": False, "resources_total": {"CPU": 8.0}}
ONE_NODE = ClusterInfo("http://head:8265", [HEAD])
TWO_NODES = ClusterInfo("http://head:8265", [HEAD, WORKER])
GOOD_STORAGE = {"train.storage_path": "s3://bucket/ray", "data.root": "/mnt/nfs/data"}


# -- unit: what counts as shared, and what is refused ------------------------------------------------------


@pytest.mark.parametrize("value, shared, expected", [
    ("s3://bucket/runs", [], True),
    ("gs://bucket/runs", [], True),
    ("runs/ray", [], False),  # relative: resolves in the job's working_dir on one node
    ("runs/ray", ["/mnt/nfs"], False),
    ("/data/ray", [], False),
    ("/mnt/nfs/ray", ["/mnt/nfs"], True),
    ("/mnt/nfs", ["/mnt/nfs/"], True),
    ("/mnt/nfs2/ray", ["/mnt/nfs"], False),  # a sibling with a common prefix is not under it
    ("file:///mnt/nfs/ray", ["/mnt/nfs"], True),
])
def test_is_shared_path(value, shared, expected):
    assert jobs.is_shared_path(value, shared) is expected


def test_single_node_cluster_accepts_local_storage_and_sqlite():
    local = {"train.storage_path": "runs/ray", "data.root": "runs/data/x"}
    assert jobs.storage_problems(local, "sqlite:///runs/mlflow.db", ONE_NODE) == []


def test_multi_node_cluster_refuses_local_storage_and_sqlite_saying_what_to_use():
    local = {"train.storage_path": "runs/ray", "data.root": "/home/me/data"}
    problems = jobs.storage_problems(local, "sqlite:///runs/mlflow.db", TWO_NODES)
    assert len(problems) == 3
    storage, data, tracking = problems
    assert storage.startswith("train.storage_path 'runs/ray' is a relative path")
    assert data.startswith("data.root '/home/me/data' is a local path")
    for p in (storage, data):
        assert "s3://" in p and "gs://" in p and "NFS" in p and "--shared-storage" in p
    assert "SQLite" in tracking and "MLflow server" in tracking and "--tracking-uri" in tracking


def test_head_without_cpus_counts_as_multi_node():
    cpu_less_head = ClusterInfo("http://head:8265", [{**HEAD, "resources_total": {"CPU": 0.0}}])
    assert cpu_less_head.multi_node
    assert jobs.storage_problems({"train.storage_path": "runs/ray"}, "http://mlflow:5000", cpu_less_head)
    assert not ONE_NODE.multi_node


def test_declared_shared_storage_is_accepted(monkeypatch):
    monkeypatch.setenv(jobs.SHARED_ENV, "/srv/shared")
    values = {"train.storage_path": "/mnt/nfs/ray", "data.root": "/srv/shared/data"}
    assert jobs.storage_problems(values, "http://mlflow:5000", TWO_NODES, jobs.shared_prefixes(["/mnt/nfs"])) == []


@pytest.mark.parametrize("uri, cluster, refused", [
    (None, TWO_NODES, True),
    ("sqlite:////mnt/nfs/mlflow.db", TWO_NODES, True),  # SQLite on NFS is still a file lock away from corruption
    ("/home/me/mlruns", TWO_NODES, True),
    ("http://mlflow.internal:5000", TWO_NODES, False),
    ("postgresql://u@db/mlflow", TWO_NODES, False),
    ("http://127.0.0.1:5000", TWO_NODES, True),  # each node would talk to itself
    ("http://127.0.0.1:5000", ClusterInfo("x", [HEAD, {**WORKER, "node_ip": "10.0.0.1"}]), False),  # one machine
])
def test_tracking_uri_checks(uri, cluster, refused):
    assert (jobs.tracking_problem(uri, cluster) is not None) is refused


def test_storage_values_validated_or_raw(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("name: t\nmodel: {kind: simplebaseline}\ntrain: {storage_path: s3://b/r}\n")
    assert jobs.storage_values(spec) == {"train.storage_path": "s3://b/r", "data.root": "runs/data/synthcourt"}
    unset = tmp_path / "unset.yaml"
    unset.write_text("name: t\nmodel: {kind: simplebaseline}\n")
    assert jobs.storage_values(unset)["train.storage_path"] == "runs/ray"  # unset: <runs>/ray in the job
    assert jobs.storage_values(unset, job_env={"SPORTPOSE_RUNS": "/mnt/nfs/runs"})["train.storage_path"] == "/mnt/nfs/runs/ray"
    assert jobs.storage_values(unset, validate=False)["train.storage_path"] == "runs/ray"
    assert jobs.storage_values(spec, ["data.root=/mnt/nfs/d"], validate=False)["data.root"] == "/mnt/nfs/d"
    with pytest.raises(SpecError, match=r"train\.stages\.main\.epohcs: unknown key"):
        jobs.storage_values(spec, ["train.stages.main.epohcs=3"])
    assert jobs.storage_values(spec, ["train.stages.main.epohcs=3"], validate=False)["train.storage_path"] == "s3://b/r"


def test_submit_is_refused_before_anything_is_sent(tmp_path, monkeypatch):
    """Acceptance 4 without a cluster: a local storage_path against a 2-node cluster never reaches submit_job."""
    spec = tmp_path / "s.yaml"
    spec.write_text("name: t\nmodel: {kind: simplebaseline}\n")

    class NoSubmit:
        def submit_job(self, **kwargs):
            raise AssertionError("submitted despite the refusal")

    monkeypatch.setattr(jobs, "connect", lambda address=None: NoSubmit())
    monkeypatch.setattr(jobs, "cluster_info", lambda address=None: TWO_NODES)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(ClusterError) as e:
        jobs.submit(spec, "http://head:8265", tracking_uri="http://mlflow.internal:5000")
    assert "it has 2 nodes" in str(e.value) and "train.storage_path 'runs/ray'" in str(e.value)
    assert "MLFLOW_TRACKING_URI" not in str(e.value)


# -- unit: the job that is submitted -----------------------------------------------------------------------


def _package(root: Path, target: Path) -> set[str]:
    """The files Ray's own packaging would upload from ``root`` with our excludes (gitignore files ignored)."""
    from ray._private.runtime_env.packaging import create_package

    create_package(str(root), target, include_gitignore=False, excludes=jobs.EXCLUDES)
    with zipfile.ZipFile(target) as z:
        return {n for n in z.namelist() if not n.endswith("/")}


def test_runtime_env_excludes_what_never_belongs_in_an_upload(tmp_path):
    root = tmp_path / "proj"
    for f in ["sportpose/a.py", "sportpose/__pycache__/a.cpython-311.pyc", "experiments/demo.yaml", ".venv/bin/python",
              ".git/HEAD", "runs/mlflow.db", "runs/ray/ckpt.pt", "reports/r.md", "data/clip.mp4", "x/model.pt",
              "mlruns/0/meta.yaml", "sportpose.egg-info/PKG-INFO", "cluster/local/start.sh"]:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_text("x")
    assert _package(root, tmp_path / "p.zip") == {"sportpose/a.py", "experiments/demo.yaml", "cluster/local/start.sh"}


def test_the_project_uploads_its_code_and_specs_only(tmp_path):
    files = _package(REPO, tmp_path / "repo.zip")
    assert "sportpose/platform/jobs.py" in files and "experiments/demo.yaml" in files and "pyproject.toml" in files
    assert not [f for f in files if f.startswith((".venv/", "runs/", ".git/")) or "__pycache__" in f]
    assert (tmp_path / "repo.zip").stat().st_size < 20 * 2**20


def test_plan_for_a_spec_inside_the_project(monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN", "s3cr3t-token")
    plan = jobs.plan_job(REPO / "experiments" / "demo.yaml", ["train.stages.main.epochs=2", "name=a b"],
                         tracking_uri="http://mlflow:5000", env={"SPORTPOSE_RUNS": "/mnt/nfs/runs"}, root=REPO)
    assert plan.entrypoint == ("python -m sportpose train experiments/demo.yaml "
                               "-o train.stages.main.epochs=2 -o 'name=a b'")
    env = plan.runtime_env["env_vars"]
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000" and env["SPORTPOSE_RUNS"] == "/mnt/nfs/runs"
    assert env["RAY_OVERRIDE_JOB_RUNTIME_ENV"] == "1"  # the driver's own ray.init env_vars would conflict
    assert plan.runtime_env["working_dir"] == str(REPO) and ".venv/" in plan.runtime_env["excludes"]
    assert "pip" not in plan.runtime_env  # the cluster image has the project installed
    assert "s3cr3t" not in json.dumps(plan.__dict__)  # the token never travels with the job
    assert plan.metadata["sportpose.name"] == "demo" and plan.submission_id.startswith("sportpose-demo-")


def test_plan_for_a_spec_outside_the_project_carries_it_in_the_environment(tmp_path):
    spec = tmp_path / "mine.yaml"
    spec.write_text("name: mine\nmodel: {kind: simplebaseline}\n")
    plan = jobs.plan_job(spec, command="sweep", root=REPO, pip=True)
    assert plan.runtime_env["env_vars"][jobs.SPEC_ENV] == spec.read_text()
    first, _, second = plan.entrypoint.partition(" && ")
    assert first.startswith("python -c ") and jobs.SPEC_ENV in first
    assert second.startswith("python -m sportpose sweep .sportpose-submitted/") and second.endswith("/mine.yaml")
    assert any(r.startswith("ray[") for r in plan.runtime_env["pip"]["packages"])


def test_a_spec_the_upload_leaves_out_travels_in_the_environment(tmp_path):
    spec = tmp_path / "runs" / "x.yaml"  # runs/ is never uploaded
    spec.parent.mkdir()
    spec.write_text("name: x\nmodel: {kind: simplebaseline}\n")
    plan = jobs.plan_job(spec, root=tmp_path)
    assert jobs.SPEC_ENV in plan.runtime_env["env_vars"] and "runs/x.yaml" not in plan.entrypoint
    kept = tmp_path / "experiments" / "x.yaml"
    kept.parent.mkdir()
    kept.write_text(spec.read_text())
    assert jobs.plan_job(kept, root=tmp_path).entrypoint == "python -m sportpose train experiments/x.yaml"


def test_auth_headers_follow_rays_token_order(tmp_path, monkeypatch):
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ray/auth_token
    assert jobs.auth_headers() == {}
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token_file))
    assert jobs.auth_headers() == {"Authorization": "Bearer from-file"}
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-env")
    assert jobs.auth_headers() == {"Authorization": "Bearer from-env"}
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert jobs.auth_headers() == {}
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing"))
    with pytest.raises(ClusterError, match="RAY_AUTH_TOKEN_PATH"):
        jobs.auth_headers()
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH")
    with pytest.raises(ClusterError, match="no token"):
        jobs.auth_headers()


def test_api_address(monkeypatch):
    for name in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ClusterError, match="--address"):
        jobs.api_address(None)
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")  # a GCS address, for ray.init: not the job API
    with pytest.raises(ClusterError, match="--address"):
        jobs.api_address(None)
    monkeypatch.setenv("RAY_ADDRESS", "http://a:8265/")
    assert jobs.api_address(None) == "http://a:8265"
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", "b:8265")
    assert jobs.api_address(None) == "http://b:8265"
    assert jobs.api_address("https://c") == "https://c"
    with pytest.raises(ClusterError, match="http"):
        jobs.api_address("ray://c:10001")


def test_bad_key_is_refused_before_any_cluster_is_contacted(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: t\nmodel: {kind: simplebaseline}\ntrain: {stages: {main: {epohcs: 2}}}\n")
    out = subprocess.run([sys.executable, "-m", "sportpose", "submit", str(spec), "--address", "http://127.0.0.1:9"],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith(f"error: {spec}: train.stages.main.epohcs: unknown key") and "Traceback" not in out.stderr


def test_unreachable_cluster_is_one_line_and_exit_2():
    out = subprocess.run([sys.executable, "-m", "sportpose", "jobs", "list", "--address", "http://127.0.0.1:9"],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 2 and out.stderr.startswith("error: cannot use the Ray job API at http://127.0.0.1:9")
    assert "Traceback" not in out.stderr


# -- integration: a real 2-node cluster on this machine and a real MLflow server ---------------------------

# 2 CPUs per worker on nodes of 3 CPUs: one worker fits per node, so the two land on different nodes, and each
# node keeps a CPU for Ray Data.
TINY = ["name=tiny-cluster", "train.stages.main.scaling={num_workers: 2, cpus_per_worker: 2}",
        "register.name=sportpose-cluster-test"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not come up in {timeout:.0f}s")
        time.sleep(1)


def _processes_naming(text: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if text in Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(name))
            except OSError:
                pass
    return found


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.fixture(scope="module")
def cluster():
    """A head and one worker node (3 CPUs each, own ports, temp dir and token) and an MLflow server."""
    base = Path(tempfile.mkdtemp(prefix="sp-jobs-", dir="/tmp"))  # short: Ray's socket paths live under it
    shared = base / "shared"  # both "nodes" are this machine, so a local folder is shared storage here
    cdir = base / "cluster"
    port = _free_port()
    mlflow_log = open(base / "mlflow.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "sportpose", "mlflow-server", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{shared / 'mlflow.db'}", "--artifacts-destination", str(shared / "artifacts")],
        cwd=REPO, stdout=mlflow_log, stderr=subprocess.STDOUT, start_new_session=True)
    ok = False
    try:
        start = subprocess.run([str(REPO / "cluster/local/start.sh"), "-n", "1", "-c", "3", "-d", str(cdir)],
                               capture_output=True, text=True, timeout=240)
        assert start.returncode == 0, start.stdout + start.stderr
        _wait_http(f"http://127.0.0.1:{port}/health", timeout=180)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MLFLOW_"))}
        for line in (cdir / "env.sh").read_text().splitlines():
            if line.startswith("export "):
                key, _, value = line.removeprefix("export ").split("#")[0].strip().partition("=")
                env[key] = value
        yield {"env": env, "shared": shared, "dir": cdir, "tracking": f"http://127.0.0.1:{port}",
               "address": env["RAY_API_SERVER_ADDRESS"]}
        ok = True
    finally:
        if (cdir / "pids").exists():  # whatever start.sh got to start, even if it failed or timed out
            subprocess.run([str(REPO / "cluster/local/stop.sh"), str(cdir)], timeout=120)
        if _group_alive(server.pid):
            os.killpg(server.pid, signal.SIGTERM)  # `sportpose mlflow-server` stops its server's process group
            try:
                server.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
        mlflow_log.close()
        # exactly what was started is gone: every process of the cluster, and the server's process group
        leftover = _processes_naming(str(cdir) + "/")
        server_left = _group_alive(server.pid)
        if ok and not leftover and not server_left:
            shutil.rmtree(base, ignore_errors=True)
        assert not leftover, f"cluster processes left: {leftover}"
        assert not server_left, "MLflow server processes left"


@pytest.fixture
def api(cluster, monkeypatch):
    """This process's job client pointed at the test cluster (address and token), for direct API checks."""
    for key in ("RAY_API_SERVER_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.setenv(key, cluster["env"][key])
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    return cluster["address"]


def sportpose(cluster, *args, timeout=600):
    return subprocess.run([sys.executable, "-m", "sportpose", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=cluster["env"])


def _spec(cluster, name: str, epochs: int = 2, extra: str = "", overrides: tuple[str, ...] = ()) -> Path:
    path = cluster["shared"].parent / f"{name}.yaml"
    shared = cluster["shared"]
    spec = load_spec(EXPERIMENTS / "paper" / "base" / "simplebaseline_tiny.yaml",
                     [*TINY, f"data.root={shared}/data/tiny", f"train.storage_path={shared}/ray",
                      f"train.stages.main.epochs={epochs}", *overrides])
    path.write_text(spec_yaml(spec) + extra)
    return path


def _shared_args(cluster) -> list[str]:
    shared = str(cluster["shared"])
    return ["--shared-storage", shared, "--tracking-uri", cluster["tracking"], "--env", f"SPORTPOSE_RUNS={shared}/runs"]


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_local_storage_is_refused_on_a_multi_node_cluster(cluster):
    """Acceptance 4: without --shared-storage the same spec is refused, naming what to use instead."""
    out = sportpose(cluster, "submit", str(_spec(cluster, "tiny")), "--tracking-uri", cluster["tracking"], timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stdout == ""  # no job id: nothing was submitted
    assert f"refused to submit {_spec(cluster, 'tiny')} to {cluster['address']}: it has 2 nodes" in out.stderr
    assert f"train.storage_path '{cluster['shared']}/ray' is a local path" in out.stderr
    assert "s3://" in out.stderr and "NFS" in out.stderr and "--shared-storage" in out.stderr
    assert "data.root" in out.stderr
    listing = sportpose(cluster, "jobs", "list", timeout=120)
    assert listing.returncode == 0 and listing.stdout.strip() == "no jobs"


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_a_bad_key_fails_fast_with_the_key_named(cluster, api):
    """Acceptance 2a: refused locally by default; submitted unvalidated, the job fails within seconds."""
    bad = _spec(cluster, "bad", extra="seed_typo: 3\n")
    local = sportpose(cluster, "submit", str(bad), *_shared_args(cluster), timeout=120)
    assert local.returncode == 2 and f"error: {bad}: seed_typo: unknown key" in local.stderr

    start = time.monotonic()
    out = sportpose(cluster, "submit", str(bad), "--no-validate", "--follow", *_shared_args(cluster), timeout=300)
    took = time.monotonic() - start
    assert out.returncode == jobs.EXIT_CODES["FAILED"], out.stdout + out.stderr
    job_id = out.stdout.splitlines()[0]
    assert "seed_typo: unknown key" in out.stdout  # the streamed logs
    assert f"job {job_id}: FAILED: error: " in out.stderr and "seed_typo: unknown key" in out.stderr
    assert took < 120, f"the bad spec took {took:.0f}s to fail"
    info = jobs.job_info(job_id, api)
    assert info.status.value == "FAILED" and "seed_typo: unknown key" in info.message
    status = sportpose(cluster, "jobs", "status", job_id, timeout=120)
    assert "status:     FAILED (exit code 2)" in status.stdout and "seed_typo: unknown key" in status.stdout


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_a_stage_bigger_than_the_cluster_fails_the_job_at_once(cluster, api):
    """Issue 22 item 9: the cluster has no autoscaler (started by hand), so 4 workers of 2 CPUs on two nodes of
    3 CPUs can never be placed: the job fails before any data is made, in one line, instead of waiting forever."""
    wide = _spec(cluster, "wide", overrides=("name=wide-cluster", "data.root=" + str(cluster["shared"] / "data/wide"),
                                             "train.stages.main.scaling.num_workers=4"))
    out = sportpose(cluster, "submit", str(wide), "--follow", *_shared_args(cluster), timeout=300)
    assert out.returncode == jobs.EXIT_CODES["FAILED"], out.stdout + out.stderr
    line = ("train.stages.main.scaling.num_workers: stage main asks for 4 workers x 2 CPU = 8 CPU; the cluster has "
            "6 CPU, 0 GPU on 2 nodes, room for 2 such workers (no autoscaler: no node will join")
    assert f": FAILED: error: {line}" in out.stderr, out.stderr[-2000:]
    assert not (cluster["shared"] / "data" / "wide").exists()


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_demo_spec_trains_on_both_nodes_and_registers_in_the_mlflow_server(cluster, api):
    """Acceptance 1, and issue 22 item 11: the README's flow - experiments/demo.yaml submitted with -o overrides
    (tiny data, a narrow model, two epochs) - succeeds through evaluation and registration after its Ray Train
    workers on the two nodes exit; MLflow's server holds the runs and the registered model."""
    from mlflow.tracking import MlflowClient

    shared = cluster["shared"]
    demo = [*TINY, f"data.root={shared}/data/demo", f"train.storage_path={shared}/ray",
            "data.synth={clips: 6, frames: 12, width: 192, height: 144, max_players: 2, views: [sideline], seed: 3}",
            "data.splits=[0.5, 0.25, 0.25]", "data.input_size=[64, 64]", "model.width=16", "model.deconv_channels=32",
            "train.stages.main.epochs=2", "train.stages.main.batch_size=16"]
    out = sportpose(cluster, "submit", "experiments/demo.yaml", "--follow", *_shared_args(cluster),
                    *[a for o in demo for a in ("-o", o)], timeout=840)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    job_id = out.stdout.splitlines()[0]
    assert job_id.startswith("sportpose-demo-") and f"job {job_id}: SUCCEEDED" in out.stderr
    assert "stage main: done" in out.stdout and "registry: sportpose-cluster-test v1" in out.stdout

    info = jobs.job_info(job_id, api)
    assert info.status.value == "SUCCEEDED"
    nodes = {n["node_id"] for n in jobs.cluster_info(api).nodes}
    workers = jobs.train_workers(info, api)
    assert len(workers) == 2 and {w["node_id"] for w in workers} == nodes, (workers, nodes)
    status = sportpose(cluster, "jobs", "status", job_id, timeout=120)
    assert "Ray Train workers: 2 on 2 node(s)" in status.stdout
    # the driver held its working_dir (the folder it runs in) on its node until it ended (runtime._hold_working_dir)
    holders = jobs._state_list(api, "actors", [("class_name", "=", "_WorkingDirHolder"), ("job_id", "=", info.job_id)])
    assert len(holders) == 1, holders

    client = MlflowClient(cluster["tracking"], registry_uri=cluster["tracking"])
    exp = client.get_experiment_by_name("tiny-cluster")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    parent, stage = runs["tiny-cluster-pipeline"], runs["main"]
    assert parent.info.status == "FINISHED" and stage.info.status == "FINISHED"
    assert stage.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert "pckh" in parent.data.metrics and "loss" in stage.data.metrics
    assert [m.step for m in client.get_metric_history(stage.info.run_id, "loss")] == [0, 1]
    version = client.get_model_version_by_alias("sportpose-cluster-test", "champion")
    assert version.version == "1" and version.run_id == parent.info.run_id
    # the artifacts went through the server into its artifact store
    assert list((cluster["shared"] / "artifacts").rglob("MLmodel"))
    assert Path(cluster["shared"], "ray").is_dir() and list(Path(cluster["shared"], "ray").rglob("checkpoint.pt"))


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_jobs_stop_stops_a_running_job(cluster, api):
    """Acceptance 2b."""
    out = sportpose(cluster, "submit", str(_spec(cluster, "long", epochs=200)), *_shared_args(cluster), timeout=120)
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip()
    deadline = time.monotonic() + 180
    while jobs.connect(api).get_job_status(job_id).value != "RUNNING":
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(1)
    stop = sportpose(cluster, "jobs", "stop", job_id, timeout=120)
    assert stop.returncode == 0 and stop.stdout.strip() == f"job {job_id}: STOPPED", stop.stdout + stop.stderr
    listing = sportpose(cluster, "jobs", "list", timeout=120)
    assert any(line.startswith(job_id) and "STOPPED" in line for line in listing.stdout.splitlines())


