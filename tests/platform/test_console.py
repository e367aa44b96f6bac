"""The default console: Ray's and MLflow's internals kept off, the platform's own lines and real errors kept."""

from __future__ import annotations

import sys
import time

import pytest

from sportpose.platform.console import console_noise, without_noise

# Lines seen on `sportpose demo`'s console before issue 23 (Ray 2.60, MLflow 3.17).
NOISE = [
    "Progress bars disabled. To enable, set `ray.data.DataContext.get_current().enable_progress_bars = True`.",
    "✔️  Dataset train_035ASJrN8jO0jxQzbDEyYL_0 execution finished in 16.27 seconds",
    "[2026-12-07 08:27:00,721 E 31611 31667] core_worker.cc:2465: Actor with class name: 'PreemptionWatcher' and ID: "
    "'8aaaf200a67dbb425d5e047001000000' has constructor arguments in the object store and max_restarts > 0. If the "
    "arguments are spilled to disk or lost, the actor restart will fail.",
    "WARNING: 10 PYTHON worker processes have been started on node: 866b0c with address: 192.0.2.2, which is 5x the "
    "maximum expected startup concurrency (2).",
    "/venv/mlflow/pyfunc/utils/data_validation.py:187: UserWarning: \x1b[33mAdd type hints to the `predict` method to "
    "enable data validation",
    "  color_warning(",
]
KEPT = [
    "[spatial] epoch 1/3 loss=0.003211 samples_per_s=299.5 val_loss=0.002582 val_pckh=42.06",
    "stage lift: done in 61s, best val_mpjpe_mm=203.8",
    "Traceback (most recent call last):",
    "RuntimeError: CUDA out of memory",
    "[2026-12-07 08:27:00,721 E 31611 31667] core_worker.cc:100: Failed to connect to the GCS",
]


def test_noise_lines_are_recognised_and_nothing_else():
    assert all(console_noise(line) for line in NOISE)
    assert not any(console_noise(line) for line in KEPT)


def test_a_warning_ray_calls_safe_to_ignore_goes_with_its_traceback_and_nothing_after_it():
    batch = ["Failed to send resource request for train-2671. If this only happens transiently during network "
             "partition or CPU being overloaded, it's safe to ignore this error. If this keeps happening, check.",
             "Traceback (most recent call last):",
             '  File "ray/train/v2/_internal/execution/scaling_policy/autoscaling_coordinator_client.py", line 58',
             "    ray.get(",
             "           ^^^^^^^^",
             "ray.exceptions.GetTimeoutError: Get timed out: some object(s) not ready.",
             KEPT[0], "[mutex.cc : 452] RAW: Lock blocking 0x55a666376b90   @ 0x7ff2e682b1a2", KEPT[2], KEPT[3]]
    assert without_noise(batch) == [KEPT[0], KEPT[2], KEPT[3]]  # a real traceback elsewhere stays


def _print_lines(lines: list[str]) -> None:
    for line in lines:
        print(line, flush=True)
    print(NOISE[2], file=sys.stderr, flush=True)


@pytest.mark.integration
def test_worker_noise_does_not_reach_the_driver_console(ray_local, capfd):
    """A Ray task prints noise and the platform's lines; the driver's console shows only the latter."""
    import ray

    ray.get(ray.remote(_print_lines).remote([NOISE[0], NOISE[1], KEPT[0], KEPT[2]]))
    seen = ""
    for _ in range(40):  # Ray streams worker output to the driver asynchronously
        time.sleep(0.25)
        out, err = capfd.readouterr()
        seen += out + err
        if KEPT[2] in seen:
            break
    time.sleep(0.5)  # the stderr batch of the same task
    seen += "".join(capfd.readouterr())
    assert KEPT[0] in seen and KEPT[2] in seen
    assert "Progress bars disabled" not in seen and "execution finished" not in seen and "PreemptionWatcher" not in seen


def test_mlflows_type_hint_warning_is_dropped_and_other_warnings_shown():
    """MLflow shows it under its own simplefilter("once"), past any filter: the showing is what is wrapped."""
    import warnings

    import mlflow.pyfunc

    from sportpose.platform.console import quiet_console

    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        quiet_console()

        class Untyped(mlflow.pyfunc.PythonModel):  # MLflow warns when such a class is defined
            def predict(self, context, model_input):
                return model_input

        warnings.warn("a warning of the platform's own", UserWarning)
    messages = [str(w.message) for w in shown]
    assert "a warning of the platform's own" in messages
    assert not any("Add type hints" in m for m in messages), messages


@pytest.mark.integration
def test_raylet_warnings_pass_the_same_filter(ray_local, capfd):
    """The raylet's warnings reach the console through ray._private.worker.print_to_stdstream, not the
    dispatcher: noise is dropped there too, other raylet messages are printed."""
    from ray._private import worker as ray_worker

    ray_worker.print_to_stdstream({"lines": [NOISE[3]], "pid": "raylet", "is_err": False}, ignore_prefix=False)
    ray_worker.print_to_stdstream({"lines": ["the object store is full"], "pid": "raylet", "is_err": False},
                                  ignore_prefix=False)
    out = capfd.readouterr().out
    assert "the object store is full" in out and "PYTHON worker processes" not in out
