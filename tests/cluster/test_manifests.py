"""cluster/: the KubeRay manifests, the cluster launcher YAML and the image they run, checked without kubectl.

Each manifest parses with yaml.safe_load and matches the structure of the fields it uses (a small expected-
structure check written from the KubeRay ray.io/v1 API reference: unknown keys in ray.io objects are errors,
since the CRD would drop them silently); the launcher YAML passes Ray's own launcher schema. All of them run
the image built from cluster/Dockerfile at the project's version, which pins the Ray and torch the project
pins, and they run a spec that exists in experiments/.
"""

import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

from sportpose.spec.experiment import load_spec

from sportpose.paths import REPO
CLUSTER = REPO / "cluster"
KUBERAY = sorted((CLUSTER / "kuberay").glob("*.yaml"))
LAUNCHER = CLUSTER / "aws-gpu.yaml"
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
IMAGE = "ghcr.io/sportpose/sportpose"
IMAGES = {f"{IMAGE}:{PROJECT['version']}", f"{IMAGE}:{PROJECT['version']}-gpu"}

# -- the expected structure of the fields used: "?key" is optional; a list holds the schema of its items ---

STR_MAP = "str->str"  # a mapping of strings to strings (rayStartParams: KubeRay wants string values)
ANY_MAP = "map"  # a Kubernetes object we do not look into (tolerations, quantities)
CONTAINER = {
    "name": str, "image": str,
    "?env": [{"name": str, "?value": str, "?valueFrom": ANY_MAP}],
    "?ports": [{"containerPort": int, "?name": str}],
    "?resources": {"?requests": ANY_MAP, "?limits": ANY_MAP},
    "?volumeMounts": [{"name": str, "mountPath": str}],
}
POD_TEMPLATE = {"?metadata": ANY_MAP, "spec": {
    "containers": [CONTAINER],
    "?volumes": [{"name": str, "?persistentVolumeClaim": {"claimName": str}}],
    "?tolerations": [ANY_MAP], "?nodeSelector": STR_MAP, "?restartPolicy": str,
}}
HEAD_GROUP = {"?serviceType": str, "rayStartParams": STR_MAP, "template": POD_TEMPLATE}
WORKER_GROUP = {"groupName": str, "replicas": int, "minReplicas": int, "maxReplicas": int,
                "rayStartParams": STR_MAP, "template": POD_TEMPLATE}
RAY_CLUSTER_SPEC = {
    "rayVersion": str, "?enableInTreeAutoscaling": bool,
    "?autoscalerOptions": {"?upscalingMode": str, "?idleTimeoutSeconds": int},
    "?authOptions": {"mode": str, "?secretName": str},
    "headGroupSpec": HEAD_GROUP, "workerGroupSpecs": [WORKER_GROUP],
}
METADATA = {"name": str, "?namespace": str, "?labels": STR_MAP}
SCHEMAS = {
    "RayCluster": {"apiVersion": str, "kind": str, "metadata": METADATA, "spec": RAY_CLUSTER_SPEC},
    "RayJob": {"apiVersion": str, "kind": str, "metadata": METADATA, "spec": {
        "entrypoint": str, "?runtimeEnvYAML": str, "?shutdownAfterJobFinishes": bool,
        "?ttlSecondsAfterFinished": int, "?activeDeadlineSeconds": int, "?backoffLimit": int,
        "?submissionMode": str, "rayClusterSpec": RAY_CLUSTER_SPEC}},
    "PersistentVolumeClaim": {"apiVersion": str, "kind": str, "metadata": METADATA, "spec": {
        "accessModes": [str], "?storageClassName": str, "resources": {"requests": {"storage": str}}}},
}


def check(node, schema, path="") -> list[str]:
    """Where ``node`` departs from ``schema``: missing or unknown keys, wrong types."""
    if schema is STR_MAP:
        if not isinstance(node, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in node.items()):
            return [f"{path}: expected a mapping of strings to strings, got {node!r}"]
        return []
    if schema is ANY_MAP:
        return [] if isinstance(node, dict) else [f"{path}: expected a mapping"]
    if isinstance(schema, type):
        ok = isinstance(node, schema) and not (schema is int and isinstance(node, bool))
        return [] if ok else [f"{path}: expected {schema.__name__}, got {node!r}"]
    if isinstance(schema, list):
        if not isinstance(node, list) or not node:
            return [f"{path}: expected a non-empty list"]
        return [e for i, item in enumerate(node) for e in check(item, schema[0], f"{path}[{i}]")]
    if not isinstance(node, dict):
        return [f"{path}: expected a mapping"]
    errors = []
    keys = {k.lstrip("?"): k.startswith("?") for k in schema}
    for key, optional in keys.items():
        if key in node:
            errors += check(node[key], schema[("?" if optional else "") + key], f"{path}.{key}")
        elif not optional:
            errors.append(f"{path}.{key}: missing")
    errors += [f"{path}.{k}: unknown key" for k in node if k not in keys]
    return errors


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def cluster_specs(doc: dict) -> list[dict]:
    if doc["kind"] == "RayCluster":
        return [doc["spec"]]
    if doc["kind"] == "RayJob":
        return [doc["spec"]["rayClusterSpec"]]
    return []


def containers(cluster_spec: dict) -> list[dict]:
    groups = [cluster_spec["headGroupSpec"], *cluster_spec["workerGroupSpecs"]]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


# -- the tests ----------------------------------------------------------------------------------------------


def test_every_cluster_file_is_here():
    names = {p.name for p in KUBERAY}
    assert {"raycluster.yaml", "rayjob.yaml"} <= names
    assert LAUNCHER.is_file() and (CLUSTER / "Dockerfile").is_file()
    assert (CLUSTER / "local" / "start.sh").is_file() and (CLUSTER / "local" / "stop.sh").is_file()


@pytest.mark.parametrize("path", KUBERAY, ids=lambda p: p.name)
def test_kuberay_manifest_matches_the_structure_it_uses(path):
    docs = documents(path)
    assert docs, f"{path} is empty"
    for doc in docs:
        assert doc["kind"] in SCHEMAS, f"{path}: unexpected kind {doc['kind']}"
        assert check(doc, SCHEMAS[doc["kind"]], doc["kind"]) == []
        if doc["kind"] in ("RayCluster", "RayJob"):
            assert doc["apiVersion"] == "ray.io/v1"


def test_the_check_catches_typos():
    doc = documents(CLUSTER / "kuberay" / "raycluster.yaml")[0]
    doc["spec"]["workerGroupSpec"] = doc["spec"].pop("workerGroupSpecs")
    doc["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] = 0
    errors = check(doc, SCHEMAS["RayCluster"], "RayCluster")
    assert "RayCluster.spec.workerGroupSpecs: missing" in errors
    assert "RayCluster.spec.workerGroupSpec: unknown key" in errors
    assert any("rayStartParams" in e and "strings" in e for e in errors)


@pytest.mark.parametrize("path", KUBERAY, ids=lambda p: p.name)
def test_kuberay_cluster_shape_auth_and_private_dashboard(path):
    for doc in documents(path):
        for spec in cluster_specs(doc):
            head = spec["headGroupSpec"]
            # the dashboard and job API stay inside the cluster
            assert head.get("serviceType", "ClusterIP") == "ClusterIP"
            assert head["rayStartParams"]["num-cpus"] == "0"  # a CPU head for drivers only
            assert spec["authOptions"]["mode"] == "token"
            assert spec["enableInTreeAutoscaling"] is True
            gpu = [g for g in spec["workerGroupSpecs"] if any(
                "nvidia.com/gpu" in c.get("resources", {}).get("limits", {}) for c in g["template"]["spec"]["containers"])]
            assert gpu, "no GPU worker group"
            assert all(g["minReplicas"] < g["maxReplicas"] for g in gpu), "the GPU group does not autoscale"
            for c in containers(spec):
                for p in c.get("ports", []):
                    assert "hostPort" not in p
    # no Service, Ingress or Route of our own that could publish the head: only the kinds checked above
    assert {d["kind"] for d in documents(path)} <= {"RayCluster", "RayJob", "PersistentVolumeClaim"}
    assert "kubectl port-forward" in path.read_text()  # the header says how to reach the dashboard


@pytest.mark.parametrize("path", [*KUBERAY, LAUNCHER, CLUSTER / "Dockerfile", CLUSTER / "local" / "start.sh",
                                  CLUSTER / "local" / "stop.sh"], ids=lambda p: p.name)
def test_every_file_has_its_launch_command_in_its_header(path):
    header = []
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            header.append(line)
        elif header:
            break
    assert any(re.match(r"#\s*Launch", line) for line in header), f"{path}: no '# Launch:' line in its header"


def test_launcher_yaml_passes_rays_own_schema():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load(LAUNCHER.read_text())
    validate_config(prepare_config(config))
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"] == {"CPU": 0}
    workers = [t for n, t in config["available_node_types"].items() if n != config["head_node_type"]]
    assert workers and all(t["min_workers"] < t["max_workers"] for t in workers)
    assert "--env RAY_AUTH_MODE=token" in config["docker"]["run_options"]
    start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in start  # reached through `ray dashboard`'s SSH tunnel only
    commands = " ".join(config.get("initialization_commands", []) + config.get("setup_commands", []))
    assert "777" not in commands and "chmod 775 /mnt/shared" in commands  # shared storage is not world-writable


def test_every_image_is_the_projects_image_at_its_version():
    used = set()
    for path in KUBERAY:
        for doc in documents(path):
            for spec in cluster_specs(doc):
                used |= {c["image"] for c in containers(spec)}
                assert spec["rayVersion"] == ray_version()
    launcher = yaml.safe_load(LAUNCHER.read_text())["docker"]
    used |= {launcher["image"], launcher["head_image"]}
    assert used == IMAGES
    dockerfile = (CLUSTER / "Dockerfile").read_text()
    for image in IMAGES:
        assert f"-t {image}" in dockerfile  # the build command that makes it


def ray_version() -> str:
    """The Ray release the project pins (ray[...]>=2.60,<2.61 -> 2.60.0)."""
    pin = next(d for d in PROJECT["dependencies"] if d.startswith("ray["))
    low = re.search(r">=\s*([\d.]+)", pin).group(1)
    return low if low.count(".") == 2 else f"{low}.0"


def test_the_image_pins_what_the_project_pins():
    dockerfile = (CLUSTER / "Dockerfile").read_text()
    makefile = (REPO / "Makefile").read_text()
    torch = re.search(r"torch==([\d.]+)", makefile).group(1)
    assert f"ARG TORCH_VERSION={torch}" in dockerfile
    assert f"ARG BASE=rayproject/ray:{ray_version()}-py311-cpu" in dockerfile
    assert f"rayproject/ray:{ray_version()}-py311-gpu" in dockerfile
    # the requirements are the project's own: pyproject.toml installed with the package, no second list
    assert "COPY --chown=ray:users pyproject.toml" in dockerfile and "pip install --no-cache-dir ." in dockerfile
    assert "COPY --chown=ray:users experiments ./experiments" in dockerfile


def _spec_paths(command: str) -> list[tuple[str, list[str]]]:
    """(spec path, overrides) of every `sportpose train SPEC -o ...` in a command string."""
    args = shlex.split(command)
    found = []
    for i, a in enumerate(args):
        if a == "train" and i >= 1 and args[i - 1] == "sportpose":
            rest = args[i + 2:]
            overrides = [rest[j + 1] for j in range(len(rest) - 1) if rest[j] == "-o"]
            found.append((args[i + 1], overrides))
    return found


def test_the_rayjob_runs_a_spec_that_exists_and_validates():
    entrypoints = [d["spec"]["entrypoint"] for p in KUBERAY for d in documents(p) if d["kind"] == "RayJob"]
    assert entrypoints
    for entrypoint in entrypoints:
        runs = _spec_paths(entrypoint)
        assert runs, f"no `sportpose train SPEC` in {entrypoint!r}"
        for spec, overrides in runs:
            # baked into the image at /home/ray/sportpose (the Dockerfile's WORKDIR) from experiments/
            assert spec.startswith("/home/ray/sportpose/experiments/")
            local = REPO / spec.removeprefix("/home/ray/sportpose/")
            assert local.is_file(), f"{spec}: no {local}"
            loaded = load_spec(local, overrides)  # the spec with the manifest's overrides is valid
            assert loaded.train.storage_path.startswith("/mnt/shared/") and loaded.data.root.startswith("/mnt/shared/")
    assert "WORKDIR /home/ray/sportpose" in (CLUSTER / "Dockerfile").read_text()


@pytest.mark.parametrize("path", [CLUSTER / "kuberay" / "raycluster.yaml", LAUNCHER], ids=lambda p: p.name)
def test_the_documented_submit_commands_use_specs_that_exist(path):
    text = " ".join(line.lstrip("#").strip().rstrip("\\") for line in path.read_text().splitlines() if line.startswith("#"))
    specs = re.findall(r"sportpose submit (\S+\.yaml)", text)
    assert specs, f"{path}: the header shows no `sportpose submit`"
    for spec in specs:
        assert (REPO / spec).is_file(), spec
