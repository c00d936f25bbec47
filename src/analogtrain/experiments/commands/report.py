"""Re-render tables and plots of a finished run or sweep directory.

A sweep directory (with sweep.json) gets table.csv, table.md and curves.png again; a run
directory (with metrics.jsonl) gets plot.png again and its summary printed.
"""

from __future__ import annotations

import json
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("dir", help="a sweep or run directory")


def main(args) -> int:
    from ..plots import plot_run
    from ..runner import PLOT, SUMMARY, read_metrics
    from ..sweep import SWEEP, collect, run_dir, write_report

    out = Path(args.dir)
    if (out / SWEEP).exists():
        write_report(out)
        meta, _ = collect(out)
        from ..sweep import grid_cells

        for cell in grid_cells(meta["grid"]) if meta["grid"] else [{}]:
            for seed in meta["seeds"]:
                rdir = run_dir(out, cell, seed)
                rows = read_metrics(rdir)
                if rows:
                    plot_run(rows, rdir / PLOT)
        print((out / "table.md").read_text(), end="")
        return 0
    rows = read_metrics(out)
    if not rows:
        raise FileNotFoundError(f"{out}: neither a sweep (sweep.json) nor a run (metrics.jsonl)")
    plot_run(rows, out / PLOT)
    if (out / SUMMARY).exists():
        summary = json.loads((out / SUMMARY).read_text())
        print(json.dumps({"status": summary["status"], **summary["metrics"], "total_pulses": summary["total_pulses"],
                          "wall_time": summary["wall_time"]}))
    else:
        print(f"{out}: unfinished run, {len(rows)} evaluations so far: {rows[-1]}")
    return 0
