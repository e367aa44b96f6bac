"""A registered model served the way MLflow users serve one.

Both families are registered by the pipeline's own call (``register_model``: signature, input example, pinned
requirements). A fresh venv is built from the MultiStream version's logged ``requirements.txt`` alone (the
package registry is reachable; nothing of the project's venv, nothing on ``PYTHONPATH``): in it
``mlflow.pyfunc.load_model("models:/NAME@champion")`` predicts on the logged input example for both models, as
the project's venv does; and that venv's ``mlflow models serve -m models:/sportpose-multistream@champion``
answers ``/invocations`` with the logged serving example. That venv is what ``mlflow models serve``'s default
environment manager builds (a venv, then ``pip install -r requirements.txt``), made here once for both tests.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest

from sportpose.evaluation.complexity import example_inputs
from sportpose.registry import register, tracking
from tests.conftest import TINY_STSP, TINY_VARIANTS, seeded_model, tiny_spec

pytestmark = pytest.mark.integration

# frame -> crop affines of two tubes (crop = 0.5 x frame, shifted), as params.affine: 6 numbers per tube
AFFINE = [0.5, 0.0, -10.0, 0.0, 0.5, -4.0, 0.25, 0.0, 3.0, 0.0, 0.25, 7.0]

PREDICT = """
import json, sys
import mlflow, numpy as np
model = mlflow.pyfunc.load_model(sys.argv[1])
example = model.input_example
out = model.predict(example, params={"affine": json.loads(sys.argv[3])} if sys.argv[3] != "null" else None)
np.savez(sys.argv[2], **out)
import sportpose
print(json.dumps({"sportpose": sportpose.__file__, "example": {k: list(v.shape) for k, v in example.items()},
                  "training_side": sorted({m.split(".")[0] for m in sys.modules} & {"cv2", "ray", "decord", "av"})}))
"""


def _clean_env(tracking_uri: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    return env


def _register(spec, run_id: str) -> None:
    model = seeded_model(spec, 1.2).eval()  # wider than the default init, so that heatmaps peak somewhere
    example = {k: v.numpy() for k, v in example_inputs(model, spec.data, batch=2, seed=3).items()}
    register.register_model(spec, run_id, model.state_dict(), example, 1.0, "serving-test")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(tracking URI, the fresh venv, a work folder): both models registered, the venv built from the logged
    requirements."""
    home = tmp_path_factory.mktemp("serving")
    uri = f"sqlite:///{home / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("SPORTPOSE_RUNS", str(home))
        kind, base = TINY_VARIANTS["ms"]
        _register(tiny_spec(kind, [*base, "register={name: sportpose-multistream, metric: ap, mode: max}"]),
                  tracking.start_run("tiny-ms", "register"))
        _register(tiny_spec("stsp", [*TINY_STSP, "model.frame_position=true"]),
                  tracking.start_run("tiny-stsp", "register"))
        models = {name: Path(mlflow.artifacts.download_artifacts(f"models:/{name}@champion",
                                                                dst_path=str(home / name)))
                  for name in ("sportpose-multistream", "sportpose-stsp")}
    requirements = (models["sportpose-multistream"] / "requirements.txt").read_text()
    assert requirements == (models["sportpose-stsp"] / "requirements.txt").read_text()
    pins = sorted(line.split("==")[0] for line in requirements.split())
    assert pins == ["mlflow", "numpy", "pyyaml", "torch"], requirements  # pinned, nothing of the training side
    venv = home / "venv"
    subprocess.run([sys._base_executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-r",
                          str(models["sportpose-multistream"] / "requirements.txt")],
                         capture_output=True, text=True, timeout=1200, env=_clean_env(uri), cwd=home)
    assert pip.returncode == 0, pip.stderr[-3000:]
    return uri, venv, home, models


@pytest.mark.parametrize("name, affine", [("sportpose-multistream", AFFINE), ("sportpose-stsp", None)])
def test_a_fresh_venv_from_the_logged_requirements_loads_the_champion_and_predicts(served, name, affine):
    uri, venv, home, models = served
    out = home / f"{name}.npz"
    run = subprocess.run([str(venv / "bin" / "python"), "-c", PREDICT, f"models:/{name}@champion", str(out),
                          json.dumps(affine)], capture_output=True, text=True, timeout=600, env=_clean_env(uri),
                         cwd=home)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["training_side"] == []  # the loader imports no OpenCV, Ray, decord or PyAV
    assert not report["sportpose"].startswith(str(Path(__file__).parents[2]))  # the model's own code copy
    there = dict(np.load(out))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        here = mlflow.pyfunc.load_model(f"models:/{name}@champion")
        expected = here.predict(here.input_example, params={"affine": affine} if affine else None)
    assert set(there) == set(expected) and "keypoints_frame" in there  # frame pixels (STSP: its affine input)
    for key, value in expected.items():  # float32 sums may run in another order with another thread count
        scale = max(1.0, float(np.abs(value).max()))
        np.testing.assert_allclose(there[key], value, rtol=0, atol=1e-4 * scale, err_msg=key)
    if name == "sportpose-multistream":
        assert report["example"] == {"tube": [2, 3, 64, 64, 3], "context": [2, 4, 64, 64, 3]}
        # the first tube's crop is 0.5 x its frame, offset by (10, 4): frame = 2 x (crop + offset)
        np.testing.assert_allclose(there["keypoints_frame"][0], 2.0 * (there["keypoints"][0] + [10.0, 4.0]),
                                   rtol=1e-5)
        np.testing.assert_allclose(there["keypoints_frame"][1], 4.0 * (there["keypoints"][1] - [3.0, 7.0]),
                                   rtol=1e-5)
    else:
        assert there["joints_3d"].shape == (2, 3, 17, 3) and there["keypoints_frame"].shape == (2, 3, 17, 2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_mlflow_models_serve_answers_invocations(served):
    uri, venv, home, models = served
    port = _free_port()
    env = _clean_env(uri)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"  # the venv activated: its uvicorn serves
    log = open(home / "serve.log", "w")
    server = subprocess.Popen([str(venv / "bin" / "mlflow"), "models", "serve", "-m",
                               "models:/sportpose-multistream@champion", "--env-manager", "local", "--host",
                               "127.0.0.1", "--port", str(port), "--workers", "1"],
                              stdout=log, stderr=subprocess.STDOUT, env=env, cwd=home)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (home / "serve.log").read_text()[-3000:]
            time.sleep(1)
        body = json.loads((models["sportpose-multistream"] / "serving_input_example.json").read_text())
        body["params"] = {"affine": AFFINE}
        status, answer = _post(f"http://127.0.0.1:{port}/invocations", body)
        assert status == 200, answer
        predictions = {k: np.asarray(v) for k, v in answer["predictions"].items()}
        assert predictions["keypoints"].shape == (2, 17, 2) and predictions["heatmaps"].shape == (2, 17, 16, 16)
        np.testing.assert_allclose(predictions["keypoints_frame"][0], 2.0 * (predictions["keypoints"][0] + [10, 4]),
                                   rtol=1e-5)
        status, answer = _post(f"http://127.0.0.1:{port}/invocations", {**body, "params": {"affine": [1.0, 2.0]}})
        assert status == 400 and "params.affine: expected 6 numbers" in json.dumps(answer), answer
        status, answer = _post(f"http://127.0.0.1:{port}/invocations", {"inputs": {"image": [[0]]}})
        assert status == 400 and "missing inputs" in json.dumps(answer), answer
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()
