"""What a command prints: the platform's own lines, not Ray's and MLflow's internals (issue 23).

By default a command prints the platform's own lines (stages, epochs with the task metric, data counts, one
line per trial, results); Ray's and MLflow's internals appear only with ``--verbose``. The worker lines Ray
streams to the driver pass through :func:`without_noise` (:func:`sportpose.platform.runtime.init_ray` wraps
Ray's printer), which drops Ray Data's "Progress bars disabled" and "Dataset ... execution finished", Ray
Train's error-level ``PreemptionWatcher ... actor restart will fail`` (a note about Ray Train's own actor, not
a failure), the raylet's "N PYTHON worker processes" warning, MLflow's "Add type hints to the predict
method", Abseil's ``[mutex.cc] RAW:`` lock tracing and Ray Train's "Failed to send resource request ... safe
to ignore this error" with its traceback (both seen when the CPUs are overloaded); everything else a worker
prints, its errors and tracebacks included, still reaches the console.
MLflow logs at WARNING and up (``MLFLOW_LOGGING_LEVEL``, which the workers inherit); at that level its registration
prints ("Successfully registered model ...", "Created version ...") are dropped too (``sportpose.registry.register``).

Nothing here imports Ray or MLflow: the CLI calls :func:`quiet_console` before a command loads them.
"""

from __future__ import annotations

import logging
import os
import re
import warnings

# Lines of Ray's and MLflow's internals that say nothing a user of the platform can act on (module docstring).
NOISE = re.compile("|".join((
    r"Progress bars (for operators )?disabled\. To enable",
    r"Dataset \S+ execution finished in",
    r"'PreemptionWatcher' .*actor restart will fail",
    r"PYTHON worker processes have been started on node",
    r"Add type hints to the `predict` method",
    r"^\s*color_warning\($",  # the source line Python prints under that warning
    r"\[mutex\.cc : \d+\] RAW: ",  # Abseil's lock tracing in Ray's C++ on a machine short of CPU
)))
# Ray Train's own word for it: "it's safe to ignore this error" (a resource request timing out while the CPUs are
# busy); the line comes with a traceback, which goes with it.
WITH_TRACEBACK = re.compile(r"Failed to send resource request for .*safe to ignore this error")
TRACEBACK_BODY = re.compile(r"^(Traceback \(most recent call last\):|\s+\S.*|\s*)$")
TRACEBACK_END = re.compile(r"^[\w.]*(Error|Exception)\w*: ")
# MLflow warns at every definition and load of a PythonModel whose predict has no type hints; sportpose's
# pyfunc declares its signature explicitly instead (sportpose.registry.pyfunc).
MLFLOW_HINT_WARNING = "Add type hints to the `predict` method"


def console_noise(line: str) -> bool:
    """Whether a console line is one of the internals kept off a default console (module docstring)."""
    return NOISE.search(line) is not None


def without_noise(lines: list[str]) -> list[str]:
    """A batch of a worker's lines without its noise: the lines of :func:`console_noise`, and a warning Ray
    calls safe to ignore together with its traceback (the lines up to and including the exception's line)."""
    out, skipping = [], False
    for line in lines:
        if skipping:
            if TRACEBACK_BODY.match(line):
                continue
            skipping = False
            if TRACEBACK_END.match(line):
                continue
        if WITH_TRACEBACK.search(line):
            skipping = True
        elif not console_noise(line):
            out.append(line)
    return out


def _drop_warning(text: str) -> None:
    """Never show a warning whose message contains ``text``. A filter cannot do it: MLflow issues this one under
    its own ``simplefilter("once")`` (``filter_user_warnings_once``), which overrides the process's filters, so
    the showing itself is wrapped."""
    show = warnings.showwarning
    if getattr(show, "_sportpose_drops", None) == text:
        return

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if text not in str(message):
            show(message, category, filename, lineno, file, line)

    showwarning._sportpose_drops = text
    warnings.showwarning = showwarning


def quiet_console(verbose: bool = False) -> None:
    """The driver's own console: MLflow's INFO lines and its type-hint warning off unless ``verbose``.

    Called by the CLI before a command imports MLflow (the warning comes at the pyfunc's class definition).
    """
    if verbose:
        return
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when MLflow is imported, here and in workers
    _drop_warning(MLFLOW_HINT_WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    # Ray 2.60 announces at every ray.init that its token authentication is on (the default, nothing to do).
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    # Ray Data warns that progress bars are off, which the platform turned off itself (init_ray).
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
