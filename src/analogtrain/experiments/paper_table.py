"""What the paper-table commands (``table2``, ``table8``) share: the grid record of an output
directory, running the unfinished cells (resuming interrupted ones), one row per cell directory,
the CSV and the machine line.

A cell is one run directory run with ``run_experiment(..., resume=True)`` (through
``sweep.run_cell``): finished cells are skipped, interrupted ones continue from the checkpoint of
their last finished epoch, a failed one keeps its traceback in ``error.txt``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
from pathlib import Path


def machine() -> str:
    """CPU model (from /proc/cpuinfo where there is one), logical CPUs, threads per cell."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
                 platform.processor() or "unknown CPU")
    return f"{model}, {os.cpu_count()} logical CPUs, torch threads 1 per cell"


def mean_std_text(vals: list[float]) -> str:
    """"mu" for one value, "mu±sd" (sample std) for more, "-" for none."""
    from .sweep import _mean_std

    if not vals:
        return "-"
    mu, sd = _mean_std(vals)
    return f"{mu:.2f}" if len(vals) == 1 else f"{mu:.2f}±{sd:.2f}"


def array_pulses(summary: dict) -> dict:
    """Pulses per array name ("W", "P", ...) summed over layers (and tiles) of a summary's pulse table."""
    totals: dict = {}

    def walk(node):
        for key, val in node.items():
            if isinstance(val, dict) and "total" in val and not isinstance(val["total"], dict):
                totals[key] = totals.get(key, 0) + int(val["total"])
            elif isinstance(val, dict):
                walk(val)

    walk(summary.get("pulses", {}))
    return totals


def programming_writes(summary: dict) -> int:
    """Programming writes summed over layers and arrays."""
    total = 0
    for layer in summary.get("layers", {}).values():
        for v in (layer.get("programming_writes") or {}).values() if isinstance(layer, dict) else ():
            total += int(v) if isinstance(v, (int, float)) else 0
    return total


def budget(data: str, train_size: int, batch: int, paper_steps: int, lr_step_fraction: float,
           steps: int | None = None, epochs: int | None = None) -> dict:
    """Epochs / steps_per_epoch / total steps of a cell: ``steps`` optimizer steps (spread over
    whole epochs of at most one pass over the data), or ``epochs`` full epochs, or (neither) the
    paper's ``paper_steps``. ``lr_step_epochs`` is the StepLR period (x0.5) at
    ``lr_step_fraction`` of the budget, 0 (no decay) for budgets below two epochs."""
    if steps is not None and epochs is not None:
        raise ValueError("give --steps or --epochs, not both")
    full = train_size // batch
    if epochs is None:
        steps = paper_steps if steps is None else int(steps)
        if steps < 1:
            raise ValueError(f"--steps must be >= 1, got {steps}")
        epochs = math.ceil(steps / full)
        per_epoch = math.ceil(steps / epochs)
    else:
        if epochs < 1:
            raise ValueError(f"--epochs must be >= 1, got {epochs}")
        per_epoch = full
    cap = None if per_epoch >= full else per_epoch
    return {"data": data, "epochs": int(epochs), "steps_per_epoch": cap, "steps": int(epochs * per_epoch),
            "epoch_steps_full": full, "lr_step_epochs": round(lr_step_fraction * epochs) if epochs >= 2 else 0,
            "fraction_of_paper": epochs * per_epoch / paper_steps}


def cell_result(d: Path) -> dict | None:
    """The outcome of one cell directory: test accuracy (%), steps, pulses per array, programming
    writes, wall time and status ("finished", "partial": interrupted or running, "failed"), or None
    when the cell has not started."""
    from .runner import SUMMARY, read_metrics

    summary_path = d / SUMMARY
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        if summary.get("status") == "finished":
            return {"test_accuracy": 100.0 * summary["metrics"]["test_accuracy"], "steps": summary["steps"],
                    "pulses": array_pulses(summary), "programming_writes": programming_writes(summary),
                    "wall_time_s": summary["wall_time"], "status": "finished"}
    metrics = read_metrics(d)
    failed = (d / "error.txt").exists()
    if not metrics and not failed:
        return None
    last = metrics[-1] if metrics else {}
    return {"test_accuracy": 100.0 * last.get("test_accuracy", float("nan")), "steps": last.get("step", 0),
            "pulses": None, "programming_writes": None, "wall_time_s": last.get("wall_time", 0.0),
            "status": "failed" if failed else "partial"}


def record_grid(path: Path, grid: dict, fixed: tuple[str, ...] = ("budget",)) -> dict:
    """Write ``grid`` (lists of cell coordinates plus the ``fixed`` entries) to ``path``, merged
    with the grid already recorded there: lists are united (first-seen order), entries only the
    old record has are kept, a ``fixed`` entry that differs is refused (a rerun with another
    budget into the same directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    grid = dict(grid)
    if path.exists():
        old = json.loads(path.read_text())
        for key in fixed:
            if old.get(key) != grid.get(key):
                raise ValueError(f"{path.parent} holds cells of another {key} ({old.get(key)}); use another --out")
        for key, val in grid.items():
            if isinstance(val, list) and isinstance(old.get(key), list):
                merged = list(dict.fromkeys(old[key] + val))
                grid[key] = sorted(merged) if all(isinstance(v, (int, float)) for v in merged) else merged
        grid = {**old, **grid}  # entries recorded only before (e.g. ``include``) are kept
    path.write_text(json.dumps(grid, indent=1) + "\n")
    return grid


def run_cells(jobs: list[tuple[dict, Path]], write_outputs, describe, *, executor: str = "local",
              num_cpus: int | None = None, address: str | None = None, quiet: bool = False, desc: str = "cells"):
    """Run ``jobs`` (config, run directory) locally or on Ray; after every cell ``write_outputs()``
    rewrites the tables and ``describe(row)`` gives the line printed for a finished cell (rows are
    matched on their "dir" field)."""
    from .executors import run_jobs
    from .sweep import run_cell

    def done(job, result):
        if result is not True and not quiet:
            print(f"cell {job[1]} failed (see its error.txt)", flush=True)
        rows = write_outputs()
        if not quiet and result is True:
            row = next((r for r in rows if r["dir"] == job[1].name), None)
            if row:
                print(describe(row), flush=True)

    run_jobs(jobs, run_cell, executor=executor, on_done=done, address=address, num_cpus=num_cpus, quiet=quiet,
             desc=desc)
    return write_outputs()


def _parse(value: str):
    """A CSV field back to int / float / None ('') / str."""
    if value == "":
        return None
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def add_includes(grid_path: Path, paths) -> None:
    """Record CSV files of earlier sittings in the grid (``include``), checked to exist."""
    for p in paths:
        if not Path(p).is_file():
            raise ValueError(f"--include: no such CSV file {p}")
    grid = json.loads(grid_path.read_text())
    grid["include"] = list(dict.fromkeys(grid.get("include", []) + [str(p) for p in paths]))
    grid_path.write_text(json.dumps(grid, indent=1) + "\n")


def included_rows(grid: dict, coords: tuple[str, ...], present: set) -> list[dict]:
    """The finished rows of the CSV files in ``grid["include"]`` (tables of earlier sittings whose
    run directories are not here) whose coordinates (``coords`` fields) no finished cell of this
    directory has; the first file that has a cell wins. ``present`` is updated."""
    rows = []
    for path in grid.get("include", []):
        with open(path, newline="") as f:
            for raw in csv.DictReader(f):
                if raw.get("status") != "finished":
                    continue
                row = {k: _parse(v) for k, v in raw.items()}
                for k in ("method", "family", "paper", "dir", "status"):
                    if k in row and row[k] is not None:
                        row[k] = str(row[k])
                key = tuple(row.get(c) for c in coords)
                if key in present:
                    continue
                present.add(key)
                row["included_from"] = str(path)
                rows.append(row)
    return rows


def write_curves(path: Path, cell_dirs: dict[str, Path], title: str) -> None:
    """The learning curves (test accuracy and pulses on W vs step) of the cells that have
    metrics, one PNG (``plots.plot_cells``); nothing when no cell has started."""
    from .plots import plot_cells
    from .runner import read_metrics

    curves = {label: read_metrics(d) for label, d in cell_dirs.items()}
    curves = {label: rows for label, rows in curves.items() if rows}
    if curves:
        plot_cells(curves, path, title=title)


def write_csv(path: Path, rows: list[dict], fields: tuple[str, ...]) -> None:
    """One line per row; floats with 4 decimals, None as empty."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (f"{r[k]:.4f}" if isinstance(r.get(k), float) else r.get(k)) for k in fields})
