"""A sweep's outputs: results table, best spec, PNG plots and a self-contained ``sweep.html`` (SPEC §8).

Plots are drawn with matplotlib (Agg), so they need no browser:

- ``history.png`` — optimisation history: every trial's value in trial order (ASHA-stopped trials hollow,
  failed ones as crosses at the bottom) and the best value so far.
- ``parallel.png`` — parallel coordinates: one axis per parameter (ranges scaled to [0, 1], log ranges in
  log, choices spread evenly) and one for the metric; one line per scored trial, coloured by the metric.
- ``importance.png`` — parameter importance by fANOVA (optuna's ``FanovaImportanceEvaluator``: a random
  forest on the trials' values, then the share of the metric's variance each parameter explains alone),
  computed on the table's parameters (a simplex's weights, not Optuna's internal coordinates). Without
  scikit-learn it falls back to optuna's PED-ANOVA; the plot's title says which.
- ``grid.png`` (when the space has two or more discrete parameters) — the mean metric of every
  combination of the first two, as a labelled heat map (e.g. GAT depth x τ).
- ``weights_surfaces.png`` (fusion weights) — the paper's three surfaces: mAP over (w_s, w_t), (w_s, w_c)
  and (w_t, w_c), each a filled contour interpolated over the trials (Delaunay triangulation of the scored
  points inside the triangle w_a + w_b <= 1), with the trials as dots and the best as a star.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib.tri as mtri
import numpy as np
import optuna
import pandas as pd
from matplotlib.colors import LogNorm, Normalize
from matplotlib.ticker import MaxNLocator
from optuna.distributions import CategoricalDistribution, FloatDistribution

from sportpose.pipelines.sweep.book import TIME_ATTR, TrialBook, describe_values
from sportpose.spec.sweep import Sweep, SweepSpec, best_spec_yaml, grid_values, param_columns
from sportpose.viz.html import embed_png
from sportpose.viz.plots import pyplot


def results_table(book: TrialBook) -> pd.DataFrame:
    """One row per trial, by number: status, value, best value, epochs, seconds, the parameters, ids."""
    spec = book.sweep.spec
    rows = []
    for rec in sorted(book.records.values(), key=lambda r: r["number"]):
        rows.append({"trial": rec["number"], "status": rec["status"], spec.metric: rec["value"],
                     f"best_{spec.metric}": rec["best"], "epochs": rec["epochs"], "seconds": round(rec["seconds"], 2),
                     **rec["columns"], "trial_id": rec["trial_id"], "run_id": rec["run_id"]})
    return pd.DataFrame(rows)


def _param_meta(spec: SweepSpec) -> dict[str, dict[str, Any]]:
    """Table column -> how to draw it: kind (linear, log, discrete), range or categories."""
    meta = {}
    for name, p in spec.space.items():
        if p.kind == "simplex":
            for column in param_columns(name, p):
                meta[column] = {"kind": "linear", "low": 0.0, "high": 1.0}
        elif p.kind in ("choice", "int"):
            meta[name] = {"kind": "discrete", "values": grid_values(p)}
        else:
            meta[name] = {"kind": "log" if p.kind == "loguniform" else "linear", "low": p.low, "high": p.high}
    return meta


def _scored(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    if df.empty:
        return df
    return df[df["status"].isin(["completed", "stopped"]) & df[metric].notna()]


def _log_scale(values: np.ndarray) -> bool:
    """Metrics spanning orders of magnitude (a diverged trial's loss) are drawn on a log scale."""
    values = values[np.isfinite(values)]
    return len(values) > 1 and values.min() > 0 and values.max() / values.min() > 100


def plot_history(df: pd.DataFrame, metric: str, mode: str, path: Path, title: str) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9.0, 4.2), dpi=110)
    scored = _scored(df, metric)
    full = scored[scored["status"] == "completed"]
    stopped = scored[scored["status"] == "stopped"]
    ax.scatter(full["trial"], full[metric], s=28, color="#1f77b4", label="trial", zorder=3)
    if len(stopped):
        ax.scatter(stopped["trial"], stopped[metric], s=34, facecolors="none", edgecolors="#d62728",
                   label="stopped by ASHA (value at its last epoch)", zorder=3)
    failed = df[df["status"] == "error"]
    if len(failed) and len(scored):
        ax.scatter(failed["trial"], [scored[metric].min()] * len(failed), marker="x", color="gray", label="failed")
    if len(scored):
        order = scored.sort_values("trial")
        best = order[metric].cummin() if mode == "min" else order[metric].cummax()
        ax.step(order["trial"], best, where="post", color="#2ca02c", lw=2, label="best so far")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if _log_scale(scored[metric].astype(float).to_numpy()):
        ax.set_yscale("log")
    ax.set_xlabel("trial (Optuna number)")
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    # Outside the axes, on the right: inside, "best" still covers a point when the trials fill the plot.
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def _axis_position(series: pd.Series, meta: dict[str, Any]) -> np.ndarray:
    if meta["kind"] == "discrete":
        values = [str(v) for v in meta["values"]]
        index = {v: i for i, v in enumerate(values)}
        return np.array([index.get(str(v), np.nan) for v in series]) / max(len(values) - 1, 1)
    low, high = float(meta["low"]), float(meta["high"])
    x = series.astype(float).to_numpy()
    if meta["kind"] == "log":
        return (np.log(x) - math.log(low)) / (math.log(high) - math.log(low))
    return (x - low) / (high - low)


def plot_parallel(df: pd.DataFrame, meta: dict[str, dict[str, Any]], metric: str, mode: str, path: Path,
                  title: str) -> Path:
    plt = pyplot()
    scored = _scored(df, metric)
    columns = list(meta)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.9 * (len(columns) + 1)), 4.6), dpi=110)
    values = scored[metric].astype(float).to_numpy()
    lo, hi = (values.min(), values.max()) if len(values) else (0.0, 1.0)
    log = _log_scale(values)
    scaled = np.log(values) if log else values  # the metric's axis and colours
    slo, shi = (scaled.min(), scaled.max()) if len(values) else (0.0, 1.0)
    span = shi - slo if shi > slo else 1.0
    positions = [_axis_position(scored[c], meta[c]) for c in columns] + [(scaled - slo) / span]
    cmap = plt.get_cmap("viridis")
    order = np.argsort(values if mode == "max" else -values)  # the best drawn last, on top
    stopped = (scored["status"] == "stopped").to_numpy()
    for i in order:
        goodness = (scaled[i] - slo) / span if mode == "max" else (shi - scaled[i]) / span
        ax.plot(range(len(columns) + 1), [p[i] for p in positions], color=cmap(goodness), alpha=0.75, lw=1.4,
                ls="--" if stopped[i] else "-")
    if stopped.any():  # their value is from the epoch ASHA stopped them at, not from a full trial
        ax.plot([], [], color="gray", ls="--", label="stopped by ASHA (value at its last epoch)")
        ax.plot([], [], color="gray", ls="-", label="finished")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
    for x, column in enumerate(columns + [metric]):
        ax.axvline(x, color="black", lw=0.8)
        if column == metric:
            labels = [(0.0, f"{lo:.4g}"), (1.0, f"{hi:.4g}" + (" (log axis)" if log else ""))]
        elif meta[column]["kind"] == "discrete":
            vals = meta[column]["values"]
            labels = [(i / max(len(vals) - 1, 1), str(v)) for i, v in enumerate(vals)]
        else:
            labels = [(0.0, f"{meta[column]['low']:.3g}"), (1.0, f"{meta[column]['high']:.3g}")]
        for y, text in labels:
            ax.text(x + 0.04, y, text, fontsize=7, va="center")
    ax.set_xticks(range(len(columns) + 1), columns + [metric], fontsize=8, rotation=10)
    ax.set_yticks([])
    ax.set_ylim(-0.06, 1.06)
    ax.set_xlim(-0.2, len(columns) + 0.5)
    norm = LogNorm(lo, hi) if log else Normalize(lo, hi)
    sm = plt.cm.ScalarMappable(cmap=cmap if mode == "max" else cmap.reversed(), norm=norm)
    fig.colorbar(sm, ax=ax, label=metric, pad=0.01)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def param_importance(df: pd.DataFrame, meta: dict[str, dict[str, Any]], metric: str, mode: str,
                     seed: int) -> tuple[dict[str, float], str]:
    """Importance of each table parameter for the metric, and the method's name.

    Raises:
        ValueError: fewer than two scored trials, or an evaluator that cannot tell the parameters apart.
    """
    scored = _scored(df, metric)
    if len(scored) < 2:
        raise ValueError("needs at least two scored trials")
    dists = {}
    for column, m in meta.items():
        if m["kind"] == "discrete":
            dists[column] = CategoricalDistribution(m["values"])
        else:
            dists[column] = FloatDistribution(float(m["low"]), float(m["high"]), log=m["kind"] == "log")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize" if mode == "min" else "maximize")
    for _, row in scored.iterrows():
        params = {}
        for column, m in meta.items():
            value = row[column]
            if m["kind"] == "discrete":
                value = next(v for v in m["values"] if str(v) == str(value))
            else:
                value = min(max(float(value), dists[column].low), dists[column].high)
            params[column] = value
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=float(row[metric])))
    try:
        evaluator, name = optuna.importance.FanovaImportanceEvaluator(seed=seed), "fANOVA"
    except ImportError:  # fANOVA's random forest is scikit-learn's
        evaluator, name = optuna.importance.PedAnovaImportanceEvaluator(), "PED-ANOVA"
    return dict(optuna.importance.get_param_importances(study, evaluator=evaluator)), name


def plot_importance(importance: dict[str, float], method: str, metric: str, path: Path, title: str) -> Path:
    plt = pyplot()
    names = list(importance)[::-1]
    fig, ax = plt.subplots(figsize=(6.5, 0.55 * len(names) + 1.6), dpi=110)
    ax.barh(names, [importance[n] for n in names], color="#1f77b4")
    for i, n in enumerate(names):
        ax.text(importance[n] + 0.01, i, f"{importance[n]:.2f}", va="center", fontsize=8)
    ax.set_xlim(0, max(1.0, max(importance.values()) + 0.1))
    ax.set_xlabel(f"share of {metric} variance ({method}, normalised to sum 1)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_grid(df: pd.DataFrame, a: str, b: str, meta: dict[str, dict[str, Any]], metric: str, mode: str,
              path: Path, title: str) -> Path:
    """Mean metric of every (a, b) combination tried, as a heat map (blank: not tried).

    A cell whose trials ASHA stopped says at which epoch: its value is from that epoch, not from a full trial, so
    it is not comparable with a finished cell's (it only says the trial trailed the others at that rung)."""
    plt = pyplot()
    scored = _scored(df, metric)
    va, vb = meta[a]["values"], meta[b]["values"]
    grid = np.full((len(vb), len(va)), np.nan)
    labels: dict[tuple[int, int], str] = {}
    for i, y in enumerate(vb):
        for j, x in enumerate(va):
            cell = scored[(scored[a].astype(str) == str(x)) & (scored[b].astype(str) == str(y))]
            if len(cell):
                grid[i, j] = cell[metric].mean()
                stopped = cell[cell["status"] == "stopped"]
                text = f"{grid[i, j]:.4g}\n(n={len(cell)})"
                if len(stopped):
                    epochs = sorted({int(e) for e in stopped["epochs"]})
                    text += f"\nstopped @ epoch {'/'.join(map(str, epochs))}" if len(stopped) == len(cell) else \
                            f"\n{len(stopped)} stopped"
                labels[i, j] = text
    fig, ax = plt.subplots(figsize=(1.4 * len(va) + 3, 0.9 * len(vb) + 2), dpi=110)
    cmap = plt.get_cmap("viridis" if mode == "max" else "viridis_r")
    im = ax.imshow(grid, cmap=cmap, origin="lower", aspect="auto")
    for (i, j), text in labels.items():
        r, g, b_, _ = cmap(im.norm(grid[i, j]))
        light = 0.299 * r + 0.587 * g + 0.114 * b_ > 0.55  # dark text on the bright end of viridis
        ax.text(j, i, text, ha="center", va="center", fontsize=7, color="black" if light else "white")
    ax.set_xticks(range(len(va)), [str(v) for v in va])
    ax.set_yticks(range(len(vb)), [str(v) for v in vb])
    ax.set_xlabel(a)
    ax.set_ylabel(b)
    fig.colorbar(im, ax=ax, label=f"mean {metric}")
    ax.set_title(title, fontsize=10)
    if (scored["status"] == "stopped").any():
        fig.text(0.01, 0.005, "stopped cells: the value at the epoch ASHA stopped the trial (not a full trial)",
                 fontsize=7, color="#a33")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, bbox_inches="tight")  # a title wider than a small grid is not cut off
    plt.close(fig)
    return path


def plot_weight_surfaces(df: pd.DataFrame, columns: tuple[str, str, str], metric: str, path: Path,
                         title: str) -> Path:
    """The paper's three stream-weight surfaces: metric over each pair of weights (the third = 1 - both)."""
    plt = pyplot()
    scored = _scored(df, metric)
    values = scored[metric].astype(float).to_numpy()
    best = scored.loc[scored[metric].idxmax()] if len(scored) else None
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.6), dpi=110, layout="constrained")
    lo, hi = (values.min(), values.max()) if len(values) else (0.0, 1.0)
    levels = np.linspace(lo, hi if hi > lo else lo + 1e-6, 15)
    contour = None
    for ax, (a, b) in zip(axes, ((0, 1), (0, 2), (1, 2))):
        x = scored[columns[a]].astype(float).to_numpy()
        y = scored[columns[b]].astype(float).to_numpy()
        if len(x) >= 3 and np.linalg.matrix_rank(np.c_[x - x.mean(), y - y.mean()]) == 2:
            tri = mtri.Triangulation(x, y)
            contour = ax.tricontourf(tri, values, levels=levels, cmap="viridis")
        ax.scatter(x, y, c=values, cmap="viridis", vmin=lo, vmax=hi, s=14, edgecolors="white", linewidths=0.4)
        if best is not None:
            ax.scatter([best[columns[a]]], [best[columns[b]]], marker="*", s=220, color="#d62728", edgecolors="white",
                       label=f"best {best[metric]:.4g}", zorder=5)
            ax.legend(fontsize=8, loc="upper right")
        ax.plot([0, 1, 0, 0], [0, 0, 1, 0], color="black", lw=0.8)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_aspect("equal")
        ax.set_xlabel(columns[a])
        ax.set_ylabel(columns[b])
        third = columns[3 - a - b]
        ax.set_title(f"{metric} over {columns[a]}, {columns[b]} ({third} = 1 - both)", fontsize=9)
    if contour is not None:
        fig.colorbar(contour, ax=list(axes), label=metric, shrink=0.9)
    fig.suptitle(title)
    fig.savefig(path)
    plt.close(fig)
    return path


def _img(path: Path) -> str:
    return embed_png(path)


def write_html(path: Path, title: str, summary: list[tuple[str, str]], df: pd.DataFrame, best_yaml: str,
               plots: list[Path], notes: list[str]) -> Path:
    """A single HTML file: summary, plots (embedded PNGs), the best spec, and the results table."""
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in summary)
    table = df.to_html(index=False, float_format=lambda v: f"{v:.5g}", na_rep="", border=0, classes="results")
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f"<table class='summary'>{rows}</table>",
        *(f"<p class='note'>{html.escape(n)}</p>" for n in notes),
        "<h2>Plots</h2>", *(_img(p) for p in plots),
        "<h2>Best spec (ready to run)</h2>", f"<pre>{html.escape(best_yaml)}</pre>" if best_yaml else "<p>none yet</p>",
        "<h2>Trials</h2>", table,
    ]
    style = ("body{font-family:sans-serif;margin:2em;max-width:1400px} table{border-collapse:collapse;font-size:13px}"
             "td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left} img{max-width:100%}"
             "pre{background:#f6f6f6;padding:1em;font-size:12px} .note{color:#a33}")
    path.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                    f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")
    return path


def write_outputs(sweep: Sweep, book: TrialBook, out: Path, state: dict[str, Any],
                  interrupted: bool, log: Callable[[str], None] = print) -> dict[str, Path]:
    """Table (CSV, Parquet), best spec, plots and sweep.html in ``out``; returns their paths by name."""
    spec = sweep.spec
    metric, mode = spec.metric, spec.mode
    outputs: dict[str, Path] = {}
    df = results_table(book)
    df.to_csv(out / "results.csv", index=False)
    df.to_parquet(out / "results.parquet", index=False)
    outputs["results_csv"], outputs["results_parquet"] = out / "results.csv", out / "results.parquet"

    best = book.best()
    best_yaml = ""
    if best is not None:
        header = (f"Best trial of sweep {spec.name}: trial {best['number']} ({best['trial_id']}), {metric} = "
                  f"{best['value']:.6g} ({mode}).\nBase: {sweep.base_path}; the trial's values: "
                  f"{_values_text(best['overrides'])}\nLaunch: sportpose train {out / 'best_spec.yaml'}")
        best_yaml = best_spec_yaml(sweep, best["overrides"], header)
        (out / "best_spec.yaml").write_text(best_yaml)
        outputs["best_spec"] = out / "best_spec.yaml"

    plots_dir = out / "plots"
    plots_dir.mkdir(exist_ok=True)
    meta = _param_meta(spec)
    notes = [f"Interrupted: {len(book.finished())} of {spec.trials} trials finished "
             f"(continue with: sportpose sweep {sweep.path} --resume)."] if interrupted else []
    if len(df) and (df["status"] == "stopped").any():
        notes.append("Trials stopped by ASHA count with their value at the epoch they were stopped (as Optuna sees them): "
                     "the parallel coordinates, grid and importance compare them with finished trials' final values.")
    plots = [plot_history(df, metric, mode, plots_dir / "history.png", f"{spec.name}: optimisation history")]
    if len(_scored(df, metric)):
        plots.append(plot_parallel(df, meta, metric, mode, plots_dir / "parallel.png",
                                   f"{spec.name}: parallel coordinates"))
    try:
        importance, method = param_importance(df, meta, metric, mode, spec.seed)
        plots.append(plot_importance(importance, method, metric, plots_dir / "importance.png",
                                     f"{spec.name}: parameter importance ({method})"))
    except (ValueError, RuntimeError) as e:
        notes.append(f"No parameter importance: {e}.")
    discrete = [c for c, m in meta.items() if m["kind"] == "discrete"]
    if len(discrete) >= 2 and len(_scored(df, metric)):
        plots.append(plot_grid(df, discrete[0], discrete[1], meta, metric, mode, plots_dir / "grid.png",
                               f"{spec.name}: {metric} by {discrete[0]} x {discrete[1]}"))
    for name, p in spec.space.items():
        if p.kind == "simplex" and p.size == 3:
            plots.append(plot_weight_surfaces(df, param_columns(name, p), metric, plots_dir / "weights_surfaces.png",
                                              f"{spec.name}: late-fusion stream weights vs {metric}"))
    for p in plots:
        outputs[f"plot_{p.stem}"] = p

    finished = book.finished()
    summary = [
        ("sweep", f"{spec.name} ({spec.kind}) from {sweep.path}"),
        ("base spec", str(sweep.base_path) + (f" with {list(spec.overrides)}" if spec.overrides else "")),
        ("objective", f"{metric} ({mode})"),
        ("trials", f"{len(finished)} finished of {spec.trials} "
                   f"({sum(r['status'] == 'stopped' for r in finished)} stopped by ASHA, "
                   f"{sum(r['status'] == 'error' for r in finished)} failed); {spec.concurrency} at a time"),
        ("trial-epochs", str(sum(r["epochs"] for r in finished))),
        ("best", f"trial {best['number']}: {metric} = {best['value']:.6g}; {describe_values(best['columns'])}"
         if best else "none"),
        ("Optuna study", f"{state['study']} in {state['storage']}"),
        ("MLflow", f"experiment {sweep.base.name}, parent run {state['parent_run_id']}"),
    ]
    if spec.kind == "train" and spec.asha.enabled:
        summary.append(("ASHA", f"time = {TIME_ATTR}, grace {spec.asha.grace_period}, reduction factor "
                                f"{spec.asha.reduction_factor:g}, max {sweep.max_epochs} epochs"))
    outputs["html"] = write_html(out / "sweep.html", f"Sweep {spec.name}", summary, df, best_yaml, plots, notes)
    log(f"sweep {spec.name}: wrote {out / 'results.csv'}, best_spec.yaml, {len(plots)} plots and sweep.html")
    return outputs


def _values_text(overrides: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in overrides.items())
