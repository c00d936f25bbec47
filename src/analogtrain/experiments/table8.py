"""Table 8 of 2502.06309 (response-shape ablation: FCN 784-256-128-10 on MNIST, batch 10) at the
paper's settings and budget.

One command, resumable and parallel::

    python -m analogtrain.experiments.table8 --out runs/table8                  # MNIST subset, 180,000 steps
    python -m analogtrain.experiments.table8 --out runs/t8f --data fashion_mnist --data-dir DIR   # 30 epochs
    python -m analogtrain.experiments.table8 --out runs/t8 --taus 0.6 0.7 0.8 --seeds 0 1 2 --executor ray
    python -m analogtrain.experiments.table8 --out runs/t8 --table          # only rebuild the outputs

Each (method, family, gamma_res, tau, seed) cell is one run directory
``OUT/<method>_<family>_g<gamma_res>_tau<tau>_seed<k>`` (Digital SGD: ``OUT/Digital_SGD_seed<k>``,
it has no device) run with ``run_experiment(..., resume=True)``: finished cells are skipped,
interrupted ones continue from their last checkpoint. ``OUT/table8.csv``, ``OUT/table8.md``
(measured beside the paper's value) and ``OUT/table8.png`` (test accuracy and pulses on W vs
step) are rewritten after every cell.

Settings (the source of every choice in :data:`METHODS` and :func:`cell_config`; [K] paper App. K
and Table 4, [FCN] the paper's script NeurIPS-2025/S2-mnist-FCN.py of
github Zhaoxian-Wu/analog-training, [aihwkit] aihwkit 1.x class defaults the script leaves):

- device: the paper's power / exponential responses with SP 0 on [-tau, tau] ([K] eqs. 148-149;
  analogtrain ``Power`` / ``Exponential``), dw_min 1e-3 ([K] Table 4; the script's 2 tau / 1200 is
  the same at tau 0.6), cycle-to-cycle noise 30 % of the step, multiplicative ([aihwkit]
  dw_min_std 0.3, Table 7's 30 % row), device-to-device spread of dw_min 30 % ([aihwkit]
  dw_min_dtod 0.3; the script sets the bound and gamma spreads to 0).
- IO: Table 4 (``io = {preset = "paper"}``: 7-bit DAC, 9-bit ADC, out_noise 0.06, out_bound 12,
  noise and bound management on); TT/RL transfer reads without noise / bound management.
- mapping: aihwkit 512 x 512 tiles, ``learn_out_scaling`` and ``weight_scaling_columnwise`` on
  ([FCN]), weight_scaling_omega 1 ([aihwkit]).
- update: stochastic pulse trains, desired_bl 31 with BL and update management ([aihwkit]
  UpdateParameters; the paper: "at most BL = 32").
- algorithms: Analog SGD, lr 0.05 ([K], [FCN]: 0.1 halved); TT/RL = TT-v1 (= RL with gamma 0,
  [FCN] ``build_config("ttv1")``): fast_lr 0.01 absolute, one column read per mini-batch,
  transfer_lr 1 scaled by the lr, pulse-train transfer writes; Digital SGD, lr 0.1 ([K]).
- training: batch 10, NLL on log-softmax, sigmoid, raw [0, 1] pixels ([FCN] ``ToTensor()``),
  StepLR x0.5 every 15 of 30 epochs, i.e. every half of the budget ([FCN]).

Budget: the paper trains 30 epochs of 6,000 mini-batches (180,000 steps). On the bundled MNIST
subset (4,000 / 1,000, 400 steps per epoch) that is 450 epochs; on Fashion-MNIST (60,000 /
10,000) 30 epochs (the paper's column is MNIST: not comparable, but the orderings are).
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

from .paper_table import (
    add_includes,
    cell_result,
    included_rows,
    machine,
    mean_std_text,
    record_grid,
    run_cells,
    write_csv,
    write_curves,
)
from .paper_table import budget as paper_budget

PAPER = "2502.06309"
PAPER_STEPS = 180_000  # 30 epochs x 6,000 mini-batches of 10
LR_STEP_FRACTION = 0.5  # StepLR(step_size=15, gamma=0.5) over 30 epochs
TRAIN_SIZES = {"mnist_subset": 4000, "fashion_mnist": 60000, "mnist": 60000}
BATCH = 10
FAMILIES = ("Power", "Exponential")
DW_MIN = 1e-3

_ANALOG = {"mapping": {"preset": "aihwkit", "learn_out_scaling": True, "weight_scaling_columnwise": True},
           "engine": {"name": "stochastic", "bit_length": 31}}
METHODS: dict[str, dict] = {
    "Analog SGD": {"algorithm": {"name": "AnalogSGD"}, "lr": 0.05, **_ANALOG},
    "TT/RL": {
        "algorithm": {
            "name": "TikiTaka",           # [FCN] build_config("ttv1"): TransferCompound, gamma 0
            "fast_lr": 0.01,              # [FCN] rpu_config.device.fast_lr = 0.01 (absolute in aihwkit 1.x)
            "scale_fast_lr": False,
            "transfer_lr": 1.0,           # [aihwkit] transfer_lr 1, scale_transfer_lr True
            "scale_transfer_lr": True,
            "transfer_every": 1,          # [aihwkit] every mini-batch (units_in_mbatch)
            "units_in_mbatch": True,
            "columns_per_transfer": 1,    # [FCN] n_reads_per_transfer = 1
            "transfer_write": "pulse_train",  # [aihwkit] transfer_update: a pulse-train rank update
        },
        "lr": 0.05, **_ANALOG,
    },
    "Digital SGD": {"algorithm": {"name": "DigitalSGD"}, "lr": 0.1},
}
DEFAULT_METHODS = ("Analog SGD", "TT/RL")

# ----------------------------------------------------------------------------- paper values
_TAUS = (0.6, 0.7, 0.8)
_TABLE8 = {  # (family, gamma_res) -> method -> values per tau in _TAUS (digest residual_learning.md 4.8)
    ("Power", 0.5): {"Analog SGD": "96.01±0.26 97.40±0.15 97.38±0.10", "TT/RL": "96.92±0.19 97.05±0.05 96.82±0.17"},
    ("Power", 1.0): {"Analog SGD": "<15 <15 <15", "TT/RL": "97.39±0.05 97.33±0.05 97.34±0.09"},
    ("Power", 2.0): {"Analog SGD": "<15 <15 <15", "TT/RL": "96.93±0.15 97.27±0.02 97.18±0.04"},
    ("Exponential", 0.5): {"Analog SGD": "<15 <15 94.00±0.63", "TT/RL": "97.27±0.07 97.39±0.15 97.16±0.16"},
    ("Exponential", 1.0): {"Analog SGD": "<15 <15 <15", "TT/RL": "97.46±0.08 97.49±0.04 97.25±0.16"},
    ("Exponential", 2.0): {"Analog SGD": "<15 <15 <15", "TT/RL": "97.19±0.16 97.72±0.07 97.06±0.10"},
}
PAPER_DIGITAL = "98.17±0.05"


def paper_value(method: str, family: str | None = None, gamma_res: float | None = None,
                tau: float | None = None) -> str:
    """The paper's Table 8 entry ("97.39±0.05", "<15") for the cell, or "" (not in the table)."""
    if method == "Digital SGD":
        return PAPER_DIGITAL
    row = _TABLE8.get((family, round(float(gamma_res), 6))) if gamma_res is not None else None
    taus = [round(t, 6) for t in _TAUS]
    if row is None or method not in row or tau is None or round(float(tau), 6) not in taus:
        return ""
    return row[method].split()[taus.index(round(float(tau), 6))]


def budget(data: str, steps: int | None = None, epochs: int | None = None, train_samples: int | None = None) -> dict:
    """The paper's 180,000 steps (or ``steps`` / ``epochs``) on ``data``; lr halved at half of it."""
    return paper_budget(data, train_samples or TRAIN_SIZES[data], BATCH, PAPER_STEPS, LR_STEP_FRACTION,
                        steps=steps, epochs=epochs)


def response_device(family: str, gamma_res: float, tau: float) -> dict:
    """The paper's power / exponential response (SP 0, range [-tau, tau]) with Table 4's dw_min
    and aihwkit's default cycle-to-cycle (30 %, multiplicative) and dw_min device-to-device (30 %)
    spreads."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    return {"family": family, "gamma": float(gamma_res), "tau": float(tau), "dw_min": DW_MIN,
            "cycle_noise": 0.3, "cycle_noise_type": "multiplicative",
            "device_to_device": {"dw_min": 0.3}, "device_to_device_distribution": "aihwkit"}


def cell_config(method: str, family: str, gamma_res: float, tau: float, seed: int = 0, bud: dict | None = None,
                data_dir: str | None = None, threads: int | None = 1) -> dict:
    """The run config of one Table-8 cell at the paper's settings (module docstring)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; available: {list(METHODS)}")
    spec = METHODS[method]
    bud = bud or budget("mnist_subset")
    task = {"name": "mnist_fcn", "dataset": bud["data"], "normalize": False}
    if bud["data"] != "mnist_subset":
        task["data_dir"] = data_dir
    cfg = {
        "task": task,
        "algorithm": copy.deepcopy(spec["algorithm"]),
        "train": {"epochs": bud["epochs"], "steps_per_epoch": bud["steps_per_epoch"], "lr": spec["lr"],
                  "batch_size": BATCH, "seed": int(seed), "lr_step_epochs": bud["lr_step_epochs"],
                  "lr_step_factor": 0.5, "eval_at_start": False, "checkpoint": True, "threads": threads},
        "meta": {"paper": f"{PAPER} Table 8", "method": method},
    }
    if method != "Digital SGD":
        cfg.update({"device": response_device(family, gamma_res, tau), "io": {"preset": "paper"},
                    "mapping": copy.deepcopy(spec["mapping"]), "engine": copy.deepcopy(spec["engine"])})
        if spec["algorithm"]["name"] != "AnalogSGD":
            cfg["transfer_io"] = {"noise_management": "none", "bound_management": "none"}
        cfg["meta"].update({"family": family, "gamma_res": float(gamma_res), "tau": float(tau)})
    return cfg


def cell_dir(out, method: str, family: str, gamma_res: float, tau: float, seed: int) -> Path:
    tag = method.replace(" ", "_").replace("/", "-")
    if method == "Digital SGD":
        return Path(out) / f"{tag}_seed{seed}"
    return Path(out) / f"{tag}_{family}_g{gamma_res:g}_tau{tau:g}_seed{seed}"


def _cells(grid: dict):
    """(method, family, gamma_res, tau, seed) of every cell of a grid; Digital SGD once per seed."""
    for seed in grid["seeds"]:
        if "Digital SGD" in grid["methods"]:
            yield "Digital SGD", None, None, None, seed
        for family in grid["families"]:
            for g in grid["gammas"]:
                for tau in grid["taus"]:
                    for method in grid["methods"]:
                        if method != "Digital SGD":
                            yield method, family, g, tau, seed


# ----------------------------------------------------------------------------- running
def _grid_file(out: Path) -> Path:
    return Path(out) / "table8.json"


def make_grid(bud: dict, data_dir, methods, families, gammas, taus, seeds) -> dict:
    """The grid record of a command: the budget, data directory and the lists of cell coordinates."""
    return {"budget": bud, "data_dir": data_dir, "methods": list(methods), "families": list(families),
            "gammas": [float(g) for g in gammas], "taus": [float(t) for t in taus], "seeds": list(seeds)}


def run_table(out, methods, families, gammas, taus, seeds, bud: dict, data_dir=None, executor: str = "local",
              num_cpus: int | None = None, address: str | None = None, quiet: bool = False) -> list[dict]:
    """Run the unfinished cells (resuming interrupted ones) and write the outputs; returns the rows."""
    from .config import validate
    from .runner import is_finished

    out = Path(out)
    grid = make_grid(bud, data_dir, methods, families, gammas, taus, seeds)
    jobs = []
    for method, family, g, tau, seed in _cells(grid):
        cfg = cell_config(method, family, g, tau, seed, bud, data_dir)
        validate(cfg)  # every cell's config is checked before the first run
        d = cell_dir(out, method, family, g, tau, seed)
        if not is_finished(d):
            jobs.append((cfg, d))
    record_grid(_grid_file(out), grid)

    def describe(row):
        where = "" if row["method"] == "Digital SGD" else f" {row['family']} gamma_res {row['gamma_res']:g} tau {row['tau']:g}"
        return f"{row['method']}{where} seed {row['seed']}: {row['test_accuracy']:.2f} % in {row['wall_time_s']:.0f} s"

    return run_cells(jobs, lambda: write_outputs(out), describe, executor=executor, num_cpus=num_cpus,
                     address=address, quiet=quiet, desc="table8")


# ----------------------------------------------------------------------------- outputs
CSV_FIELDS = ("method", "family", "gamma_res", "tau", "seed", "test_accuracy", "paper", "steps", "pulses_W",
              "pulses_P", "wall_time_s", "status", "dir")


def collect(out) -> list[dict]:
    """One row per cell of the grid that has a finished, partial or failed run."""
    out = Path(out)
    grid = json.loads(_grid_file(out).read_text())
    rows = []
    for method, family, g, tau, seed in _cells(grid):
        d = cell_dir(out, method, family, g, tau, seed)
        res = cell_result(d)
        if res is None:
            continue
        pulses = res.pop("pulses")
        res.pop("programming_writes")
        rows.append({"method": method, "family": family, "gamma_res": g, "tau": tau, "seed": seed,
                     "paper": paper_value(method, family, g, tau), "dir": d.name, **res,
                     "pulses_W": None if pulses is None else pulses.get("W", 0),
                     "pulses_P": None if pulses is None else pulses.get("P", 0)})
    return rows


def _measured(rows, method, family, g, tau) -> str:
    cell = [r for r in rows if r["method"] == method and r["family"] == family and r["gamma_res"] == g
            and r["tau"] == tau]
    done = [r for r in cell if r["status"] == "finished"]
    if done:
        return mean_std_text([r["test_accuracy"] for r in done])
    return f"({cell[0]['status']} at {cell[0]['steps']:,} steps)" if cell else "(not run)"


def format_markdown(rows: list[dict], grid: dict) -> str:
    bud = grid["budget"]
    data = {"mnist_subset": "bundled MNIST subset (4,000 train / 1,000 test)",
            "fashion_mnist": "Fashion-MNIST (60,000 / 10,000; the paper's column is MNIST, not comparable)",
            "mnist": "MNIST (60,000 / 10,000)"}[bud["data"]]
    per_epoch = bud["steps_per_epoch"] or bud["epoch_steps_full"]
    methods = [m for m in METHODS if m in grid["methods"] and m != "Digital SGD"]  # Table 8's column order
    lines = [
        f"Table 8 of {PAPER} (FCN 784-256-128-10, batch 10), measured by `python -m analogtrain.experiments.table8`.",
        "",
        f"- data: {data}",
        (f"- budget: {bud['steps']:,} steps per cell ({bud['epochs']} epochs x {per_epoch} steps) = "
         f"{100 * bud['fraction_of_paper']:.2f} % of the paper's {PAPER_STEPS:,} (30 epochs x 6,000); "
         f"lr halved every {bud['lr_step_epochs'] or '-'} epochs"),
        f"- seeds: {grid['seeds']}; machine: {machine()}",
        ("- measured / paper: test accuracy (%) after the last epoch (mean±std over seeds when > 1) / "
         "Table 8 (mean±std of 3 runs; '<15': Analog SGD failed in all trials)"),
        "",
        "| family | gamma_res | tau | " + " | ".join(f"{m} measured / paper" for m in methods) + " |",
        "|---|---|---|" + "---|" * len(methods),
    ]
    for family in grid["families"]:
        for g in grid["gammas"]:
            for tau in grid["taus"]:
                cells = [f"{_measured(rows, m, family, g, tau)} / {paper_value(m, family, g, tau) or '-'}"
                         for m in methods]
                lines.append(f"| {family} | {g:g} | {tau:g} | " + " | ".join(cells) + " |")
    if "Digital SGD" in grid["methods"]:
        lines += ["", f"Digital SGD: {_measured(rows, 'Digital SGD', None, None, None)} / paper {PAPER_DIGITAL}"]
    finished = [r for r in rows if r["status"] == "finished" and r["method"] != "Digital SGD"]
    if finished:
        lines += ["", "| method | family | gamma_res | tau | seed | steps | pulses W | pulses P | wall (s) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in finished:
            lines.append(f"| {r['method']} | {r['family']} | {r['gamma_res']:g} | {r['tau']:g} | {r['seed']} | "
                         f"{r['steps']:,} | {r['pulses_W']:,} | {r['pulses_P']:,} | {r['wall_time_s']:.0f} |")
    return "\n".join(lines) + "\n"


COORDS = ("method", "family", "gamma_res", "tau", "seed")


def write_outputs(out) -> list[dict]:
    """Rewrite OUT/table8.csv and OUT/table8.md from the run directories and the included CSVs of
    earlier sittings (``--include``); returns the rows."""
    out = Path(out)
    grid = json.loads(_grid_file(out).read_text())
    rows = collect(out)
    present = {tuple(r[c] for c in COORDS) for r in rows if r["status"] == "finished"}
    extra = included_rows(grid, COORDS, present)
    rows += extra
    view = dict(grid, methods=list(dict.fromkeys(grid["methods"] + [r["method"] for r in extra])),
                families=list(dict.fromkeys(grid["families"] + [r["family"] for r in extra if r["family"]])))
    for key, field in (("gammas", "gamma_res"), ("taus", "tau"), ("seeds", "seed")):
        view[key] = sorted(set(grid[key]) | {r[field] for r in extra if r[field] is not None})
    write_csv(out / "table8.csv", rows, CSV_FIELDS)
    (out / "table8.md").write_text(format_markdown(rows, view))
    write_curves(out / "table8.png",
                 {(r["method"] if r["method"] == "Digital SGD" else
                   f"{r['method']} {r['family']} g{r['gamma_res']:g} tau{r['tau']:g}") + f" s{r['seed']}": out / r["dir"]
                  for r in rows}, f"Table 8 of {PAPER}: test accuracy and pulses on W")
    return rows


# ----------------------------------------------------------------------------- command line
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=f"Table 8 of {PAPER} at the paper's settings (resumable)")
    parser.add_argument("--out", default="runs/table8")
    parser.add_argument("--data", choices=["mnist_subset", "fashion_mnist"], default="mnist_subset")
    parser.add_argument("--data-dir", default=None, help="directory of the Fashion-MNIST IDX files")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--steps", type=int, default=None, help="optimizer steps per cell (default: the paper's)")
    group.add_argument("--epochs", type=int, default=None, help="full epochs per cell")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--gammas", type=float, nargs="+", default=[0.5, 1.0, 2.0], help="gamma_res values")
    parser.add_argument("--taus", type=float, nargs="+", default=[0.6])
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), choices=list(METHODS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--executor", choices=["local", "ray"], default="local")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray instance (ray only)")
    parser.add_argument("--address", default=None, help="Ray cluster address (ray only)")
    parser.add_argument("--table", action="store_true", help="only rebuild table8.csv / table8.md from the cells")
    parser.add_argument("--include", nargs="+", default=[], metavar="CSV",
                        help="CSV tables of earlier sittings: their finished cells join the outputs "
                             "(cells finished here take precedence)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.table:
        if not _grid_file(out).exists():
            parser.error(f"{out} holds no Table-8 run ({_grid_file(out).name} missing)")
        add_includes(_grid_file(out), args.include)
        rows = write_outputs(out)
    else:
        if args.data != "mnist_subset" and not args.data_dir:
            parser.error("--data fashion_mnist needs --data-dir (the directory of the IDX files)")
        for name, vals in (("--gammas", args.gammas), ("--taus", args.taus)):
            if any(v <= 0 for v in vals):
                parser.error(f"{name} must be > 0, got {vals}")
        bud = budget(args.data, args.steps, args.epochs)
        if args.include:
            record_grid(_grid_file(out), make_grid(bud, args.data_dir, args.methods, args.families, args.gammas,
                                                   args.taus, args.seeds))
            add_includes(_grid_file(out), args.include)
        rows = run_table(out, args.methods, args.families, args.gammas, args.taus, args.seeds, bud, args.data_dir,
                         executor=args.executor, num_cpus=args.num_cpus, address=args.address, quiet=args.quiet)
    print((out / "table8.md").read_text())
    failed = [r["dir"] for r in rows if r["status"] == "failed"]
    if failed:
        print(f"failed cells (see its error.txt): {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
