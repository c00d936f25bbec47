"""The demo: algorithms side by side on the bundled MNIST subset with a device whose SP is off zero.

Every row is the same run (``BASE`` config: mnist_fcn, preset ``offset_softbounds``, soft
bounds tau = 0.6 with SP = 0.12, uncalibrated) with its own algorithm and learning rate.
Add a row with one line in ``ROWS``: ``DemoRow(label, {"algorithm": {...}, "train": {...}})``;
a row whose algorithm class is not in ``analogtrain.algorithms`` is skipped.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from .config import apply_overrides
from .plots import plot_curves
from .runner import read_metrics, run_experiment

BASE: dict = {
    "task": {"name": "mnist_fcn", "dataset": "mnist_subset"},
    "device": {"preset": "offset_softbounds"},
    "io": {"perfect": True},
    "engine": {"name": "expected"},
    "train": {"epochs": 10, "batch_size": 10, "seed": 0, "threads": 1},
}


@dataclass
class DemoRow:
    """One demo row: a label and the config tables merged over ``BASE``."""

    label: str
    config: dict = field(default_factory=dict)

    @property
    def algorithm(self) -> str:
        return self.config.get("algorithm", {}).get("name", "AnalogSGD")


ROWS: list[DemoRow] = [
    DemoRow("Digital SGD", {"algorithm": {"name": "DigitalSGD"}, "train": {"lr": 0.1}}),
    DemoRow("Analog SGD", {"algorithm": {"name": "AnalogSGD"}, "train": {"lr": 0.1}}),
    DemoRow("TT-v1", {"algorithm": {"name": "TikiTaka"}, "train": {"lr": 0.1}}),
    DemoRow("Residual Learning", {"algorithm": {"name": "ResidualLearning", "gamma": 0.2}, "train": {"lr": 0.1}}),
    DemoRow("E-RIDER", {"algorithm": {"name": "ERIDER"}, "train": {"lr": 0.1}}),
]


def _merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def available_rows(rows: list[DemoRow] | None = None) -> list[DemoRow]:
    """The rows whose algorithm exists in this installation."""
    from .. import algorithms

    return [r for r in (ROWS if rows is None else rows) if hasattr(algorithms, r.algorithm)]


def slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_")


def run_demo(out_dir="demo_out", epochs: int | None = None, train_samples: int | None = None,
             overrides: list[str] | None = None, rows: list[DemoRow] | None = None, quiet: bool = False,
             resume: bool = False) -> list[dict]:
    """Run every available row into ``out_dir/<row>``; write ``results.md``, ``results.json``
    and ``accuracy.png``; return one result dict per row."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results, curves = [], {}
    for row in available_rows(rows):
        cfg = _merge(BASE, row.config)
        if epochs is not None:
            cfg["train"]["epochs"] = epochs
        if train_samples is not None:
            cfg["task"]["train_samples"] = train_samples
        cfg = apply_overrides(cfg, overrides)
        rdir = out / slug(row.label)
        t0 = time.perf_counter()
        summary = run_experiment(cfg, rdir, quiet=quiet, resume=resume, overwrite=not resume)
        m = summary["metrics"]
        results.append({"label": row.label, "algorithm": row.algorithm, "test_accuracy": m.get("test_accuracy"),
                        "train_loss": m.get("train_loss"), "total_pulses": summary["total_pulses"],
                        "wall_time": summary["wall_time"], "elapsed": time.perf_counter() - t0})
        curves[row.label] = read_metrics(rdir)
        if not quiet:
            print(f"done: {format_table(results[-1:], header=False)}", flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(format_markdown(results))
    plot_curves(curves, "test_accuracy", out / "accuracy.png", percent=True,
                title="MNIST subset, soft bounds with SP = 0.12 (offset_softbounds)")
    return results


def format_table(results: list[dict], header: bool = True) -> str:
    lines = []
    if header:
        lines.append(f"{'algorithm':<22} {'test acc (%)':>12} {'train loss':>11} {'pulses':>10} {'wall (s)':>9}")
    for r in results:
        acc = f"{100 * r['test_accuracy']:.2f}" if r["test_accuracy"] is not None else "-"
        lines.append(f"{r['label']:<22} {acc:>12} {r['train_loss']:>11.4f} {r['total_pulses']:>10.3g} "
                     f"{r['wall_time']:>9.1f}")
    return "\n".join(lines)


def format_markdown(results: list[dict]) -> str:
    lines = ["| algorithm | test accuracy (%) | train loss | pulses | wall time (s) |", "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['label']} | {100 * r['test_accuracy']:.2f} | {r['train_loss']:.4f} | "
                     f"{r['total_pulses']:.3g} | {r['wall_time']:.1f} |")
    return "\n".join(lines) + "\n"
