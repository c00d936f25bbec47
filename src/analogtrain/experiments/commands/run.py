"""Run one experiment from a TOML config into an output directory.

Writes config.toml (resolved), metrics.jsonl, checkpoint.pt, summary.json and plot.png
(and TensorBoard event files into <out>/tensorboard/ with --tensorboard).
Example:  analogtrain run configs/quadratic.toml --out runs/quad --set train.lr=0.05
"""

from __future__ import annotations

import json
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("config", help="TOML config file (see docs/config_format.md)")
    parser.add_argument("--out", help="output directory (default: runs/<config name>)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.lr=0.05 --set algorithm.name=ERIDER "
                             "(values are TOML literals; bare words are strings)")
    parser.add_argument("--device", help="shortcut for --set train.device=... (cpu, cuda, auto)")
    parser.add_argument("--tensorboard", action="store_true",
                        help="shortcut for --set train.tensorboard=true: also write TensorBoard event files into "
                             "<out>/tensorboard/")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")


def main(args) -> int:
    from ..config import apply_overrides, load_config
    from ..runner import run_experiment

    config = apply_overrides(load_config(args.config), args.overrides)
    if args.device:
        config = apply_overrides(config, {"train.device": args.device})
    if args.tensorboard:
        config = apply_overrides(config, {"train.tensorboard": True})
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    summary = run_experiment(config, out, quiet=args.quiet, resume=args.resume, overwrite=args.overwrite)
    metrics = {k: v for k, v in summary["metrics"].items() if isinstance(v, (int, float))}
    print(json.dumps({"out": str(out), **metrics, "total_pulses": summary["total_pulses"],
                      "wall_time": round(summary["wall_time"], 3)}, indent=None))
    return 0
