"""Charts for evaluation reports and inference outputs, drawn with matplotlib (Agg, no display needed).

Colours of skeletons follow :mod:`sportpose.viz.draw` (the person's left green, right
orange, midline blue), so a 3D skeleton reads like the 2D overlays next to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sportpose.models.skeleton import JointSet
from sportpose.viz.draw import SIDE_COLOURS, edge_side, joint_side


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only).

    Imported here, not at the top: the backend must be chosen before pyplot loads, and pyplot is heavy for a
    CLI start-up that draws nothing.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _rgb(colour: tuple[int, int, int]) -> tuple[float, float, float]:
    return tuple(c / 255 for c in colour)


def bar_chart(values: dict[str, float], path: str | Path, title: str, ylabel: str, limit: float | None = 100.0
              ) -> Path:
    """One bar per entry (e.g. per-joint AP), the value written above it; NaN bars are left out."""
    plt = pyplot()
    names = list(values)
    data = np.array([values[n] for n in names], dtype=float)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(names) + 1.5), 3.8), dpi=110)
    colours = [_rgb(SIDE_COLOURS[joint_side(n)]) for n in names]
    shown = np.nan_to_num(data, nan=0.0)
    ax.bar(range(len(names)), shown, color=colours, edgecolor="black", linewidth=0.4)
    for i, v in enumerate(data):
        ax.text(i, (0 if np.isnan(v) else v), "-" if np.isnan(v) else f"{v:.1f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    if limit is not None:
        ax.set_ylim(0, limit * 1.08)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def grouped_bars(table: dict[str, dict[str, float]], columns: Sequence[str], path: str | Path, title: str,
                 ylabel: str, limit: float | None = 100.0) -> Path:
    """Groups of bars: one group per column (e.g. Head … Total), one bar per row of ``table`` (e.g. a view)."""
    plt = pyplot()
    rows = list(table)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(columns) * max(1, len(rows)) / 2 + 2), 3.8), dpi=110)
    width = 0.8 / max(1, len(rows))
    cmap = plt.get_cmap("tab10")
    for r, row in enumerate(rows):
        values = [np.nan_to_num(float(table[row].get(c, np.nan)), nan=0.0) for c in columns]
        ax.bar(np.arange(len(columns)) + (r - (len(rows) - 1) / 2) * width, values, width, label=row, color=cmap(r % 10))
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels(columns, fontsize=8)
    ax.set_ylabel(ylabel)
    if limit is not None:
        ax.set_ylim(0, limit * 1.08)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=min(4, len(rows)), loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def draw_skeleton_3d(ax, joints: np.ndarray, joint_set: JointSet, colour: tuple[int, int, int] | None = None,
                     alpha: float = 1.0) -> None:
    """Draw (J, 3) camera-frame joints (x right, y down, z away, mm) on a 3D axis with up drawn up: the plot's
    axes are (x, z, -y)."""
    p = np.asarray(joints, dtype=np.float64)
    xs, ys, zs = p[:, 0], p[:, 2], -p[:, 1]
    for a, b in joint_set.edges:
        if np.isfinite(p[[a, b]]).all():
            c = _rgb(colour or SIDE_COLOURS[edge_side(joint_set, a, b)])
            ax.plot([xs[a], xs[b]], [ys[a], ys[b]], [zs[a], zs[b]], color=c, lw=2, alpha=alpha)
    ok = np.isfinite(p).all(axis=1)
    ax.scatter(xs[ok], ys[ok], zs[ok], s=8, color=_rgb(colour) if colour else "black", alpha=alpha, depthshade=False)


def _equal_limits(ax, points: np.ndarray) -> None:
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    p = p[np.isfinite(p).all(axis=1)]
    if not len(p):
        return
    xs, ys, zs = p[:, 0], p[:, 2], -p[:, 1]
    centre = np.array([xs.mean(), ys.mean(), zs.mean()])
    half = max(np.ptp(xs), np.ptp(ys), np.ptp(zs), 200.0) / 2 * 1.1
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] - half, centre[1] + half)
    ax.set_zlim(centre[2] - half, centre[2] + half)


def skeletons_3d_figure(panels: Sequence[tuple[str, np.ndarray, np.ndarray | None]], joint_set: JointSet,
                        path: str | Path, image: np.ndarray | None = None, title: str = "") -> Path:
    """A row of 3D skeleton panels (each ``(caption, joints (J, 3) mm, ground truth (J, 3) mm or None)``, the
    ground truth drawn grey behind the prediction), optionally after the RGB frame they came from."""
    plt = pyplot()
    n = len(panels) + (image is not None)
    fig = plt.figure(figsize=(3.4 * n, 3.6), dpi=110)
    col = 1
    if image is not None:
        ax = fig.add_subplot(1, n, col)
        ax.imshow(image)
        ax.set_axis_off()
        col += 1
    for caption, joints, gt in panels:
        ax = fig.add_subplot(1, n, col, projection="3d")
        if gt is not None:
            draw_skeleton_3d(ax, gt, joint_set, colour=(120, 120, 120), alpha=0.7)
        draw_skeleton_3d(ax, joints, joint_set)
        _equal_limits(ax, np.concatenate([joints] + ([gt] if gt is not None else [])))
        ax.view_init(elev=12, azim=-70)
        ax.set_title(caption, fontsize=8)
        ax.set_xlabel("x (mm)", fontsize=6)
        ax.set_ylabel("depth (mm)", fontsize=6)
        ax.set_zlabel("up (mm)", fontsize=6)
        ax.tick_params(labelsize=5)
        col += 1
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def line_chart(curves: dict[str, dict[int, float]], path: str | Path, title: str, xlabel: str, ylabel: str,
               log2_x: bool = True) -> Path:
    """One line per curve (e.g. per stream), x the dict keys (e.g. the frame gap k)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 3.8), dpi=110)
    for name, curve in curves.items():
        ks = sorted(curve)
        ax.plot(ks, [curve[k] for k in ks], marker="o", label=name)
    if log2_x:
        ax.set_xscale("log", base=2)
    all_k = sorted({k for c in curves.values() for k in c})
    ax.set_xticks(all_k)
    ax.set_xticklabels([str(k) for k in all_k])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def learning_curves(histories: dict[str, list[dict[str, float]]], metrics: dict[str, tuple[str, str]],
                    path: str | Path, title: str) -> Path:
    """One panel per training stage: its training and validation losses per epoch (left axis, log scale) and its
    validation metric (right axis, dashed; the same axis when the metric is a loss), the best epoch starred.

    Args:
        histories: stage -> its epochs' metrics (``StageResult.history``: ``epoch``, ``loss``, ``val_loss``,
            the metric, ...).
        metrics: stage -> (metric name, mode) that picked its best checkpoint.
    """
    plt = pyplot()
    stages = [s for s in histories if histories[s]]
    cols = min(3, max(1, len(stages)))
    rows = -(-max(1, len(stages)) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), dpi=110, squeeze=False)
    for ax in axes.flat[len(stages):]:
        ax.axis("off")
    for ax, stage in zip(axes.flat, stages):
        history = sorted(histories[stage], key=lambda h: h["epoch"])
        epochs = [int(h["epoch"]) + 1 for h in history]
        metric, mode = metrics.get(stage, ("val_loss", "min"))
        for key, colour in (("loss", "tab:blue"), ("val_loss", "tab:orange")):
            values = [h.get(key, float("nan")) for h in history]
            if any(np.isfinite(values)):
                ax.plot(epochs, values, marker="o", ms=3, color=colour, label=key)
        positive = [v for h in history for k, v in h.items() if k in ("loss", "val_loss") and np.isfinite(v) and v > 0]
        if positive and max(positive) / min(positive) > 10:
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        values = np.array([h.get(metric, float("nan")) for h in history], dtype=float)
        on = ax if metric in ("loss", "val_loss") else ax.twinx()
        if metric not in ("loss", "val_loss"):
            on.plot(epochs, values, "--", marker="s", ms=3, color="tab:green", label=metric)
            on.set_ylabel(metric, color="tab:green")
        if np.isfinite(values).any():
            best = int(np.nanargmax(values) if mode == "max" else np.nanargmin(values))
            on.plot([epochs[best]], [values[best]], "*", ms=12, color="tab:red", label=f"best ({metric})")
        handles = [h for a in ([ax] if on is ax else [ax, on]) for h in a.get_legend_handles_labels()[0]]
        ax.legend(handles, [h.get_label() for h in handles], fontsize=7, loc="best")
        ax.set_title(stage, fontsize=9)
        ax.set_xticks(epochs if len(epochs) <= 12 else epochs[:: max(1, len(epochs) // 10)])
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
