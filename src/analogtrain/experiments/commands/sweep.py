"""Run a config over a grid of values and seeds; write table.csv and table.md (mean ± std).

Example:  analogtrain sweep configs/least_squares.toml --grid device.asymmetry=0,0.1,0.2,0.3
              --grid algorithm.name=AnalogSGD,TikiTaka --seeds 0,1,2 --out runs/ls_sweep
Finished runs are skipped and interrupted ones resumed, so the same command continues a sweep.
--executor ray runs each (cell, seed) as a Ray task, on a local instance or on an existing
cluster (--address auto); the run directories must be on a filesystem every worker sees.
"""

from __future__ import annotations

from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("config", help="TOML config file")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                        help="a config key and its values (TOML literals, bare words are strings); repeatable")
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds (default: 0)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a value of the base config")
    parser.add_argument("--out", help="sweep directory (default: runs/<config name>_sweep)")
    parser.add_argument("--tensorboard", action="store_true",
                        help="shortcut for --set train.tensorboard=true (event files in each run directory)")
    parser.add_argument("--executor", choices=["local", "ray"], default="local",
                        help="local: one run after another in this process (default); ray: each run a Ray task")
    parser.add_argument("--address", help="with --executor ray: the cluster to join (ray.init address, e.g. auto); "
                                          "default: start a local Ray instance")
    parser.add_argument("--num-cpus", type=int, help="with --executor ray: CPUs of the local Ray instance "
                                                     "(default: all)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def parse_grid(items: list[str]) -> dict[str, list]:
    from ..config import parse_list

    grid = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--grid {item!r} must look like key=v1,v2,...")
        key, _, values = item.partition("=")
        grid[key.strip()] = parse_list(values)
    return grid


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError as exc:
        raise ValueError(f"--seeds must be comma-separated integers, got {text!r}") from exc
    if not seeds or any(s < 0 for s in seeds):
        raise ValueError(f"--seeds must be non-negative integers, got {text!r}")
    return seeds


def main(args) -> int:
    from ..config import apply_overrides, load_config
    from ..sweep import run_sweep

    config = apply_overrides(load_config(args.config), args.overrides)
    if args.tensorboard:
        config = apply_overrides(config, {"train.tensorboard": True})
    out = Path(args.out) if args.out else Path("runs") / f"{Path(args.config).stem}_sweep"
    rows = run_sweep(config, parse_grid(args.grid), parse_seeds(args.seeds), out, quiet=args.quiet,
                     executor=args.executor, address=args.address, num_cpus=args.num_cpus)
    print((out / "table.md").read_text(), end="")
    print(f"wrote {out / 'table.csv'} and {out / 'table.md'}")
    return 1 if any(r["n_failed"] for r in rows) else 0
