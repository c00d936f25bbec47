"""Sweeps: a config x a grid of overrides x seeds, one run directory each, and the result table.

Layout of a sweep directory::

    DIR/sweep.json                       the base config, the grid and the seeds
    DIR/<key=value__key=value>/seed_<s>/ one run directory (see runner.py)
    DIR/table.csv, DIR/table.md          mean and std over finished seeds, one row per grid cell
    DIR/curves.png                       the primary metric vs epoch, mean over seeds per cell

Finished runs are skipped and interrupted ones resumed, so rerunning a sweep continues it.
The std is the sample standard deviation over seeds (ddof = 1; 0 for a single seed).
The runs go one after another in this process (``executor="local"``) or as Ray tasks
(``executor="ray"``, executors.py); both give the same runs and the same table.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import re
import traceback
from pathlib import Path

from tqdm.auto import tqdm

from .config import apply_overrides, validate
from .executors import check_executor, run_jobs
from .plots import plot_curves
from .runner import SUMMARY, is_finished, read_metrics, run_experiment
from .tblog import require_tensorboard

SWEEP = "sweep.json"


def grid_cells(grid: dict[str, list]) -> list[dict]:
    """The product of the grid values, in order: [{key: value, ...}, ...] (one empty cell for no grid)."""
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"grid {key!r} needs a non-empty list of values, got {values!r}")
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def _fmt_value(v) -> str:
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"), sort_keys=True)
    return str(v)


def cell_name(cell: dict) -> str:
    """Directory name of a grid cell, e.g. ``device.asymmetry=0.1__algorithm.name=ERIDER``."""
    if not cell:
        return "base"
    text = "__".join(f"{k}={_fmt_value(v)}" for k, v in cell.items())
    return re.sub(r"[^A-Za-z0-9._=+,\-]", "_", text)[:200]


def run_dir(out_dir, cell: dict, seed: int) -> Path:
    return Path(out_dir) / cell_name(cell) / f"seed_{seed}"


def run_cell(config: dict, rdir: Path) -> bool:
    """One job of a sweep: run (or resume) ``config`` into ``rdir``; True when it finished.
    A failure is written to ``rdir/error.txt`` (removed again by a later success)."""
    try:
        # another sweep may be running this cell: wait for its lock, then it is finished
        run_experiment(config, rdir, quiet=True, resume=True, wait_for_lock=True)
        (rdir / "error.txt").unlink(missing_ok=True)
        return True
    except Exception:  # noqa: BLE001 -- one failed run must not stop the sweep; its error is kept on disk
        rdir.mkdir(parents=True, exist_ok=True)
        (rdir / "error.txt").write_text(traceback.format_exc())
        return False


def run_sweep(config: dict, grid: dict[str, list], seeds: list[int], out_dir, quiet: bool = False,
              executor: str = "local", address: str | None = None, num_cpus: int | None = None) -> list[dict]:
    """Run every grid cell for every seed (skipping finished runs); returns the table rows.

    ``executor`` is ``"local"`` (one run after another) or ``"ray"`` (each run a Ray task;
    ``address`` and ``num_cpus`` go to ``ray.init``, see executors.py)."""
    if not seeds:
        raise ValueError("seeds must be a non-empty list of integers")
    check_executor(executor, address, num_cpus)
    out = Path(out_dir)
    cells = grid_cells(grid)
    for cell in cells:  # check every cell's config before spending time on the first
        if validate(apply_overrides(config, cell))["train"]["tensorboard"]:
            require_tensorboard()
    out.mkdir(parents=True, exist_ok=True)
    meta = {"config": config, "grid": grid, "seeds": list(seeds)}
    path = out / SWEEP
    if path.exists():
        old = json.loads(path.read_text())
        if old.get("config") != json.loads(json.dumps(config)):
            raise ValueError(f"{out} holds a sweep of another config; use another --out")
        if set(old["grid"]) != set(grid):
            raise ValueError(f"{out} holds a sweep over keys {sorted(old['grid'])}, not {sorted(grid)}")
        # a rerun may add grid values or seeds: the table covers the union
        merged_grid = {k: list(dict.fromkeys(old["grid"][k] + grid[k])) for k in grid}
        meta = {"config": config, "grid": merged_grid, "seeds": sorted(set(old["seeds"]) | set(seeds))}
    path.write_text(json.dumps(meta, indent=2) + "\n")

    jobs = [(apply_overrides(config, {**cell, "train.seed": seed}), run_dir(out, cell, seed))
            for cell in cells for seed in seeds if not is_finished(run_dir(out, cell, seed))]

    def done(job, result) -> None:
        rdir = job[1]
        if result is not True:
            if isinstance(result, BaseException):  # the executor lost the job (e.g. a Ray worker died)
                rdir.mkdir(parents=True, exist_ok=True)
                (rdir / "error.txt").write_text("".join(traceback.format_exception(result)))
            if not quiet:
                tqdm.write(f"run {rdir} failed (see error.txt)")
        write_report(out, plots=False)

    run_jobs(jobs, run_cell, executor=executor, on_done=done, address=address, num_cpus=num_cpus, quiet=quiet)
    return write_report(out)


def _mean_std(values: list[float]) -> tuple[float, float]:
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def collect(out_dir) -> tuple[dict, list[dict]]:
    """Read sweep.json and the summaries of its runs; one row per grid cell."""
    out = Path(out_dir)
    meta = json.loads((out / SWEEP).read_text())
    cells = grid_cells(meta["grid"]) if meta["grid"] else [{}]
    rows = []
    for cell in cells:
        summaries, failed = [], 0
        for seed in meta["seeds"]:
            rdir = run_dir(out, cell, seed)
            if is_finished(rdir):
                summaries.append(json.loads((rdir / SUMMARY).read_text()))
            elif (rdir / "error.txt").exists():
                failed += 1
        row = {"cell": cell, "n_seeds": len(summaries), "n_failed": failed, "metrics": {}, "primary_metric": None}
        if summaries:
            row["primary_metric"] = summaries[0].get("primary_metric")
            keys = [k for k, v in summaries[0]["metrics"].items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "lr"]
            per_key = {k: [s["metrics"].get(k) for s in summaries] for k in keys}
            per_key["total_pulses"] = [s["total_pulses"] for s in summaries]
            per_key["wall_time"] = [s["wall_time"] for s in summaries]
            for k, vals in per_key.items():
                vals = [float(v) for v in vals if v is not None]
                row["metrics"][k] = _mean_std(vals)
        rows.append(row)
    return meta, rows


def _num(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "nan"
    return f"{v:.4g}"


def write_report(out_dir, plots: bool = True) -> list[dict]:
    """Write table.csv, table.md (and curves.png) of a sweep directory from its finished runs."""
    out = Path(out_dir)
    meta, rows = collect(out)
    keys = list(meta["grid"])
    metric_names = list(dict.fromkeys(k for r in rows for k in r["metrics"]))
    primary = next((r["primary_metric"] for r in rows if r["primary_metric"]), None)
    if primary in metric_names:
        metric_names.remove(primary)
        metric_names.insert(0, primary)

    with open(out / "table.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(keys + ["n_seeds", "n_failed"] + [f"{m}_{s}" for m in metric_names for s in ("mean", "std")])
        for r in rows:
            vals = []
            for m in metric_names:
                mean, std = r["metrics"].get(m, (math.nan, math.nan))
                vals += [repr(mean), repr(std)]
            writer.writerow([_fmt_value(r["cell"][k]) for k in keys] + [r["n_seeds"], r["n_failed"]] + vals)

    def cell_text(m, pair):
        mean, std = pair
        if m.endswith("accuracy"):
            return f"{100 * mean:.2f} ± {100 * std:.2f}"
        return f"{_num(mean)} ± {_num(std)}"

    headers = keys + ["seeds"] + [f"{m} (%)" if m.endswith("accuracy") else m for m in metric_names]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in rows:
        cells = [_fmt_value(r["cell"][k]) for k in keys]
        seeds = f"{r['n_seeds']}" + (f" ({r['n_failed']} failed)" if r["n_failed"] else "")
        vals = [cell_text(m, r["metrics"][m]) if m in r["metrics"] else "" for m in metric_names]
        lines.append("| " + " | ".join(cells + [seeds] + vals) + " |")
    (out / "table.md").write_text("\n".join(lines) + "\n")

    if primary and plots:
        curves = {}
        for cell in (grid_cells(meta["grid"]) if meta["grid"] else [{}]):
            per_seed = [read_metrics(run_dir(out, cell, s)) for s in meta["seeds"]]
            per_seed = [m for m in per_seed if m]
            if not per_seed:
                continue
            epochs = sorted({r["epoch"] for m in per_seed for r in m if r.get(primary) is not None})
            mean_rows = []
            for e in epochs:
                vals = [r[primary] for m in per_seed for r in m if r["epoch"] == e and r.get(primary) is not None]
                mean_rows.append({"epoch": e, primary: sum(vals) / len(vals)})
            curves[cell_name(cell)] = mean_rows
        if curves:
            plot_curves(curves, primary, out / "curves.png", title=f"{primary} (mean over seeds)",
                        percent=primary.endswith("accuracy"),
                        log=not primary.endswith("accuracy") and all(
                            r[primary] > 0 for rs in curves.values() for r in rs))
    return rows
