"""Sweeps on Ray Tune (SPEC §8): the Optuna search space, the report from a book of trials and the dashboards
(unit); a fusion-weight sweep on a tiny stream cache that is interrupted and resumed, and a tiny trained sweep
with ASHA whose trials are MLflow child runs (integration, on the session's local Ray)."""

import json
import math
import os
import re
import signal
from pathlib import Path

import numpy as np
import pytest

from sportpose.data import synthcourt
from sportpose.paths import runs_dir
from sportpose.pipelines.sweep import report as sweep_report
from sportpose.pipelines.sweep.book import TrialBook
from sportpose.pipelines.sweep.run import run_sweep, sweep_dir
from sportpose.pipelines.sweep.trials import SimplexTPE, search_space
from sportpose.spec.experiment import load_spec
from sportpose.spec.sweep import FUSION_KEY, load_sweep, simplex_point, trial_columns, trial_overrides


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


@pytest.fixture
def bases(tmp_path, tiny_yaml) -> Path:
    write(tmp_path, "ms.yaml", tiny_yaml("ms", f"data.root={tmp_path / 'ms'}"))
    return tmp_path


# -- search space --------------------------------------------------------------------------------------------


def test_search_space_conversion(bases):
    import optuna.distributions as d

    path = write(bases, "sweep.yaml", """
name: s
base: ms.yaml
space:
  model.dropout: {kind: uniform, low: 0.0, high: 0.5}
  train.stages.fused.optimizer.lr: {kind: loguniform, low: 1.0e-5, high: 1.0e-2}
  train.stages.fused.freeze_layers: {kind: int, low: 0, high: 4, step: 2}
  model.context_model: {kind: choice, values: [mlp, lstm, transformer]}
  model.fusion_weights: {kind: simplex}
  window: {kind: choice, values: [3, 5], keys: [data.window, model.window]}
""")
    sweep = load_sweep(path)
    space = search_space(sweep.spec)
    assert space["model.dropout"] == d.FloatDistribution(0.0, 0.5)
    assert space["train.stages.fused.optimizer.lr"] == d.FloatDistribution(1e-5, 1e-2, log=True)
    assert space["train.stages.fused.freeze_layers"] == d.IntDistribution(0, 4, step=2)
    assert space["model.context_model"] == d.CategoricalDistribution(["mlp", "lstm", "transformer"])
    assert [space[c] for c in ("w_s", "w_t", "w_c")] == [d.FloatDistribution(0.0, 1.0)] * 3  # under their names
    assert FUSION_KEY not in space
    params = {"model.dropout": 0.1, "train.stages.fused.optimizer.lr": 1e-3, "train.stages.fused.freeze_layers": 2,
              "model.context_model": "lstm", "w_s": 0.5, "w_t": 0.25, "w_c": 0.25, "window": 5}
    overrides = trial_overrides(sweep.spec, params)
    assert overrides["data.window"] == overrides["model.window"] == 5
    assert math.isclose(sum(overrides[FUSION_KEY]), 1.0)
    columns = trial_columns(sweep.spec, params)
    assert set(columns) >= {"w_s", "w_t", "w_c", "window", "model.context_model"} and "data.window" not in columns


def test_simplex_sampler_keeps_every_trial_on_the_simplex_and_finds_the_planted_optimum():
    """Start-up and TPE trials alike: w_s + w_t + w_c = 1, each >= 0, stored under their names; TPE's phase
    moves towards the optimum planted at (0.6, 0.1, 0.3)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = ("w_s", "w_t", "w_c")
    target = np.array([0.6, 0.1, 0.3])
    study = optuna.create_study(direction="minimize", sampler=SimplexTPE([names], seed=0, n_startup_trials=10))

    def objective(trial):
        w = np.array([trial.suggest_float(n, 0.0, 1.0) for n in names])
        return float(np.abs(w - target).sum())

    study.optimize(objective, n_trials=40)
    weights = np.array([[t.params[n] for n in names] for t in study.trials])  # (40, 3)
    assert np.allclose(weights.sum(axis=1), 1.0) and (weights >= 0).all()
    values = np.array([t.value for t in study.trials])
    assert values[20:].mean() < 0.6 * values[:10].mean()  # TPE beats its random start
    assert study.best_value < 0.15


# -- report and dashboards -----------------------------------------------------------------------------------


def _fake_book(sweep, tmp_path, n=12, seed=0):
    """A book of finished fusion trials whose AP peaks at w_s = 0.6, without Ray or MLflow."""
    rng = np.random.default_rng(seed)
    book = TrialBook(sweep, tmp_path, "parent", "prefix", lambda _: None)
    for i in range(n):
        params = dict(zip(("w_s", "w_t", "w_c"), simplex_point(rng.random(2).tolist())))
        cols = trial_columns(sweep.spec, params)
        value = 60 - 50 * (cols["w_s"] - 0.6) ** 2 - 20 * cols["w_c"]
        book.records[f"t{i}"] = {"trial_id": f"t{i}", "number": i, "params": params, "columns": cols,
                                 "overrides": trial_overrides(sweep.spec, params), "status": "completed",
                                 "value": value, "best": value, "epochs": 1, "history": [], "run_id": f"r{i}",
                                 "seconds": 0.1}
    return book


def test_report_writes_table_best_spec_plots_and_self_contained_html(bases, tmp_path):
    sweep = load_sweep(write(bases, "sweep.yaml", "name: s\nbase: ms.yaml\nkind: fusion_weights\n"
                                                  "space: {model.fusion_weights: {kind: simplex}}\n"))
    book = _fake_book(sweep, tmp_path)
    state = {"study": "s", "storage": "sqlite:///x.db", "parent_run_id": "parent"}
    out = sweep_report.write_outputs(sweep, book, tmp_path, state, interrupted=False, log=lambda _: None)
    for name in ("results_csv", "results_parquet", "best_spec", "html", "plot_history", "plot_parallel",
                 "plot_importance", "plot_weights_surfaces"):
        assert out[name].exists() and out[name].stat().st_size > 0, name
    import pandas as pd

    table = pd.read_parquet(out["results_parquet"])
    assert len(table) == 12 and {"w_s", "w_t", "w_c", "map", "status"} <= set(table.columns)
    best = table.loc[table["map"].idxmax()]
    assert np.allclose(load_spec(out["best_spec"]).model.fusion_weights, best[["w_s", "w_t", "w_c"]].to_numpy(float))
    html = out["html"].read_text()
    assert html.count("data:image/png;base64,") == 4
    assert not re.search(r"""(src|href)=["'](?!data:)""", html)  # nothing outside the file
    importance, method = sweep_report.param_importance(table, sweep_report._param_meta(sweep.spec), "map", "max", 0)
    assert method in ("fANOVA", "PED-ANOVA") and math.isclose(sum(importance.values()), 1.0)


def test_dashboard_binds_localhost_and_says_how_to_get_optuna_dashboard(monkeypatch, tmp_path):
    from sportpose.platform import dashboard

    monkeypatch.setenv("SPORTPOSE_RUNS", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(dashboard, "optuna_dashboard_command", lambda storage, port: None)
    services, notes = dashboard.plan(dashboard.DashboardArgs(mlflow_port=5123))
    [(name, command, url)] = services
    assert url == "http://127.0.0.1:5123" and command[command.index("--host") + 1] == "127.0.0.1"
    assert any("pip install optuna-dashboard" in n for n in notes)
    monkeypatch.setattr(dashboard, "optuna_dashboard_command", lambda storage, port: ["optuna-dashboard", storage])
    services, _ = dashboard.plan(dashboard.DashboardArgs())
    assert [s[0] for s in services] == ["MLflow UI", "optuna-dashboard"]
    assert services[1][1][1] == f"sqlite:///{tmp_path / 'optuna.db'}"


# -- integration: on the session's local Ray ---------------------------------------------------------------------


def _tiny_stream_cache(folder: Path, base_path: Path) -> Path:
    """Per-stream validation heatmaps of a tiny untrained MultiStream over a few SynthCourt samples, with the
    spatial stream replaced by the targets (plus noise) and the temporal one by shifted targets, so that the
    weights matter: the best fusion leans on w_s."""
    import torch

    from sportpose.data.dataset import load_clips
    from sportpose.data.tubes import cut_clip
    from sportpose.evaluation.evaluate2d import predict, save_stream_cache
    from sportpose.models import build_model

    spec = load_spec(base_path)
    synthcourt.generate(Path(spec.data.root), spec.data.synth, progress=False)
    clips = load_clips(spec.data.root, spec.data.splits, spec.seed)
    rows = [r for c in clips for r in cut_clip(c, spec.data, seed=0)][:24]
    batches = [{k: np.stack([r[k] for r in rows[i:i + 12]]) for k in rows[0]} for i in range(0, len(rows), 12)]
    torch.manual_seed(0)
    model = build_model(spec.model, 17)
    p = predict(model, batches, tuple(model.input_names()), keep_streams=True)
    targets = np.stack([r["heatmaps"] for r in rows]).astype(np.float32)  # (N, K, h, w)
    noise = np.random.default_rng(0).normal(0, 0.05, targets.shape).astype(np.float32)
    p.streams["heatmaps_spatial"] = targets + noise
    p.streams["heatmaps_temporal"] = np.roll(targets, 3, axis=-1) + noise
    return save_stream_cache(p, clips, folder / "val_streams.npz")


@pytest.fixture(scope="module")
def fusion_sweep(ray_local, runs_home, tmp_path_factory, tiny_yaml):
    """A 12-trial fusion-weight sweep, interrupted (SIGINT, as Ctrl-C) after 4 trials, then resumed by the CLI."""
    from sportpose.cli.main import main

    folder = tmp_path_factory.mktemp("fusion")
    base = write(folder, "ms.yaml", tiny_yaml("ms", f"data.root={runs_home / 'data' / 'sweep-ms'}"))
    cache = _tiny_stream_cache(folder, base)
    path = write(folder, "fw.yaml", f"""
name: fw-test
base: ms.yaml
kind: fusion_weights
cache: {cache}
overrides: [model.fusion=late]
space: {{model.fusion_weights: {{kind: simplex}}}}
trials: 12
concurrency: 2
""")
    done = []

    def interrupting_log(line: str) -> None:
        if " done:" in line:
            done.append(line)
            if len(done) == 4:
                os.kill(os.getpid(), signal.SIGINT)

    first = run_sweep(load_sweep(path), log=interrupting_log)
    first_records = {r["trial_id"]: dict(r) for r in first.records}
    assert main(["sweep", str(path), "--resume"]) == 0
    return path, first, first_records


@pytest.mark.integration
def test_interrupted_fusion_sweep_resumes_without_rerunning_finished_trials(fusion_sweep):
    path, first, before = fusion_sweep
    assert first.interrupted
    finished_first = {t: r for t, r in before.items() if r["status"] == "completed"}
    assert 4 <= len(finished_first) < 12
    records = json.loads((sweep_dir("fw-test") / "trials.json").read_text())
    done = [r for r in records.values() if r["status"] == "completed"]
    assert len(done) == 12 and len({r["number"] for r in done}) == 12
    for trial_id, rec in finished_first.items():  # the same record, untouched: not run again
        assert records[trial_id]["started"] == rec["started"] and records[trial_id]["run_id"] == rec["run_id"]
    state = json.loads((sweep_dir("fw-test") / "state.json").read_text())
    assert state["finished"] and state["rounds"] == 2


@pytest.mark.integration
def test_fusion_sweep_writes_table_best_spec_plots_and_html(fusion_sweep):
    import pandas as pd

    out = sweep_dir("fw-test")
    table = pd.read_csv(out / "results.csv")
    assert len(table) >= 12 and (table["status"] == "completed").sum() == 12
    assert np.allclose(table[["w_s", "w_t", "w_c"]].sum(axis=1), 1.0)
    best = table.loc[table["map"].idxmax()]
    assert best["w_s"] > best["w_c"]  # the planted structure: the spatial stream is the good one
    spec = load_spec(out / "best_spec.yaml")
    assert spec.model.fusion == "late" and np.allclose(spec.model.fusion_weights, best[["w_s", "w_t", "w_c"]].to_numpy(float))
    for plot in ("history", "parallel", "importance", "weights_surfaces"):
        assert (out / "plots" / f"{plot}.png").stat().st_size > 10_000
    assert (out / "sweep.html").read_text().count("data:image/png;base64,") == 4


@pytest.mark.integration
def test_optuna_study_holds_every_finished_trial(fusion_sweep):
    import optuna

    records = json.loads((sweep_dir("fw-test") / "trials.json").read_text())
    study = optuna.load_study(study_name="fw-test", storage=f"sqlite:///{runs_dir() / 'optuna.db'}")
    complete = {t.number: t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE}
    finished = {r["number"]: r for r in records.values() if r["status"] == "completed"}
    assert set(complete) == set(finished)
    for number, rec in finished.items():
        assert math.isclose(complete[number].value, rec["value"])
        assert set(complete[number].params) == {"w_s", "w_t", "w_c"}  # the dashboard's names are the sweep's
        assert math.isclose(complete[number].params["w_s"], rec["columns"]["w_s"])
        assert math.isclose(sum(complete[number].params.values()), 1.0)
    assert study.metric_names == ["map"]


@pytest.mark.integration
def test_fusion_trials_are_mlflow_child_runs_with_the_best_tagged(fusion_sweep):
    from sportpose.registry import tracking

    path, first, _ = fusion_sweep
    client = tracking.client()
    parent = client.get_run(first.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["sportpose.kind"] == "sweep"
    children = client.search_runs([parent.info.experiment_id], f"tags.`{tracking.PARENT_TAG}` = '{first.parent_run_id}'")
    finished = [c for c in children if c.data.tags.get("sportpose.trial_status") == "completed"]
    assert len(finished) == 12
    assert all(c.info.status == "FINISHED" and "map" in c.data.metrics and "w_s" in c.data.params for c in finished)
    best = [c for c in finished if c.data.tags.get("sportpose.best") == "true"]
    assert len(best) == 1 and best[0].data.metrics["map"] == max(c.data.metrics["map"] for c in finished)
    assert parent.data.metrics["best_map"] == best[0].data.metrics["map"]


@pytest.fixture(scope="module")
def trained_sweep(ray_local, runs_home, tmp_path_factory, tiny_yaml):
    """Three SimpleBaseline trials (64x64, 1 worker, 2 epochs) with ASHA, two at a time."""
    folder = tmp_path_factory.mktemp("trained")
    write(folder, "sb.yaml", tiny_yaml("sb", f"data.root={runs_home / 'data' / 'sweep-sb'}"))
    path = write(folder, "sw.yaml", """
name: sb-test
base: sb.yaml
space: {train.stages.main.optimizer.lr: {kind: loguniform, low: 1.0e-4, high: 3.0e-2}}
trials: 3
concurrency: 2
resources: {cpu: 0.01}
asha: {grace_period: 1, reduction_factor: 2}
""")
    lines = []
    return run_sweep(load_sweep(path), log=lines.append), lines


@pytest.mark.integration
def test_trained_sweep_trials_are_child_runs_with_epoch_metrics(trained_sweep):
    from sportpose.registry import tracking

    result, lines = trained_sweep
    assert not result.interrupted and len(result.records) == 3
    assert all(r["status"] in ("completed", "stopped") for r in result.records), lines
    for r in result.records:
        assert r["epochs"] == (2 if r["status"] == "completed" else 1)
        assert [h["trial_epoch"] for h in r["history"]][: r["epochs"]] == list(range(1, r["epochs"] + 1))
    client = tracking.client()
    exp = client.get_run(result.parent_run_id).info.experiment_id
    children = client.search_runs([exp], f"tags.`{tracking.PARENT_TAG}` = '{result.parent_run_id}'")
    assert len(children) == 3 and all(c.data.tags["sportpose.kind"] == "trial" for c in children)
    for child in children:
        assert "train.stages.main.optimizer.lr" in child.data.params
        steps = sorted(m.step for m in client.get_metric_history(child.info.run_id, "val_loss"))
        assert steps[:1] == [0] and child.data.tags["sportpose.trial_status"] in ("completed", "stopped")
    assert sum(c.data.tags.get("sportpose.best") == "true" for c in children) == 1


@pytest.mark.integration
def test_trained_sweep_best_spec_trains_as_is_and_study_is_stored(trained_sweep):
    import optuna

    result, _ = trained_sweep
    spec = load_spec(result.outputs["best_spec"])
    assert spec.name == "sb-test-best"
    assert math.isclose(spec.train.stages["main"].optimizer.lr, result.best["columns"]["train.stages.main.optimizer.lr"])
    study = optuna.load_study(study_name="sb-test", storage=result.storage)
    assert sorted(t.number for t in study.trials if t.state.is_finished()) == sorted(r["number"] for r in result.records)
    for plot in ("history", "parallel", "importance"):
        assert result.outputs[f"plot_{plot}"].exists()


@pytest.mark.integration
def test_no_placement_group_is_left_behind(trained_sweep):
    import time

    import ray
    from ray.util.state import list_placement_groups

    address = ray.get_runtime_context().gcs_address  # several Rays may run on this machine: name ours
    deadline = time.monotonic() + 60
    while True:
        live = [p for p in list_placement_groups(address=address) if p.state != "REMOVED"]
        if not live or time.monotonic() > deadline:
            break
