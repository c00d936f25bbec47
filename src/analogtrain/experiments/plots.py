"""Plots of run metrics (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

LOSS_KEYS = ("train_loss", "test_loss", "loss")


def save_figure(fig, path, dpi: int = 110) -> None:
    """Lay out, write (PNG by the path's suffix) and close a figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def _series(rows: list[dict], key: str):
    pts = [(r["epoch"], r[key]) for r in rows if r.get(key) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_run(rows: list[dict], path, title: str = "") -> None:
    """Loss curves (train/test/objective, log scale when positive) and accuracy vs epoch."""
    has_acc = any(r.get("test_accuracy") is not None for r in rows)
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(10 if has_acc else 5.5, 4), squeeze=False)
    ax = axes[0][0]
    values = []
    for key in LOSS_KEYS:
        x, y = _series(rows, key)
        if x:
            ax.plot(x, y, marker="o", markersize=3, label=key)
            values += y
    # log scale when the losses are positive and span more than a decade
    if values and min(values) > 0 and max(values) > 10 * min(values):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    if has_acc:
        ax = axes[0][1]
        x, y = _series(rows, "test_accuracy")
        ax.plot(x, [100 * v for v in y], marker="o", markersize=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


def plot_curves(curves: dict[str, list[dict]], key: str, path, title: str = "", percent: bool = False,
                log: bool = False) -> None:
    """One line per label: ``key`` vs epoch (e.g. test accuracy of each demo row)."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for label, rows in curves.items():
        x, y = _series(rows, key)
        if x:
            ax.plot(x, [100 * v for v in y] if percent else y, marker="o", markersize=3, label=label)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{key} (%)" if percent else key)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    save_figure(fig, path)


def plot_cells(curves: dict[str, list[dict]], path, title: str = "", array: str = "W") -> None:
    """The learning curves of paper-table cells (one line per label): test accuracy (%) vs
    optimizer step, and the pulses on ``array`` (summed over layers and tiles, log scale) vs step:
    where a transfer algorithm starts writing its slow array shows on the right."""
    fig, (ax_acc, ax_w) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, rows in curves.items():
        pts = [(r["step"], r) for r in rows if r.get("step") is not None]
        steps = [s for s, _ in pts]
        acc = [100 * r["test_accuracy"] if r.get("test_accuracy") is not None else float("nan") for _, r in pts]
        (line,) = ax_acc.plot(steps, acc, label=label)
        on_w = [sum(v.get(array, 0.0) for v in (r.get("pulses") or {}).values() if isinstance(v, dict))
                for _, r in pts]
        if any(v > 0 for v in on_w):
            ax_w.plot(steps, [v if v > 0 else float("nan") for v in on_w], color=line.get_color(), label=label)
    ax_acc.set_xlabel("step")
    ax_acc.set_ylabel("test accuracy (%)")
    ax_acc.grid(alpha=0.3)
    ax_acc.legend(fontsize=7)
    ax_w.set_xlabel("step")
    ax_w.set_ylabel(f"pulses on {array} (cumulative)")
    ax_w.set_yscale("log")
    ax_w.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
