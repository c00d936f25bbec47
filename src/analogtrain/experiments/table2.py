"""Table 2 of 2602.21321 (FCN 784-256-128-10 on MNIST, batch 10) at the paper's settings.

One command, resumable and parallel::

    python -m analogtrain.experiments.table2 --out runs/table2                 # paper budget, MNIST subset
    python -m analogtrain.experiments.table2 --out runs/t2 --steps 8000        # a reduced budget
    python -m analogtrain.experiments.table2 --out runs/t2f --data fashion_mnist --data-dir DIR  # 40 epochs
    python -m analogtrain.experiments.table2 --out runs/t2 --executor ray --num-cpus 16
    python -m analogtrain.experiments.table2 --out runs/t2 --table             # only rebuild the outputs

Each (method, Ref Mean, Ref Std, seed) cell is one run directory ``OUT/<method>_mean<m>_std<s>_seed<k>``
run with ``run_experiment(..., resume=True)``: finished cells are skipped, interrupted ones continue
from the checkpoint of their last finished epoch. ``OUT/table2.json`` records the budget and data
(a rerun with another budget into the same OUT is refused). After every finished cell
``OUT/table2.csv`` (one row per cell), ``OUT/table2.md`` (measured beside the paper's value) and
``OUT/table2.png`` (test accuracy and pulses on W vs step) are rewritten; ``--table`` only
rewrites them.

Settings (sources per choice in :data:`METHODS`, :func:`cell_config` and :data:`NOT_FOUND`):

- device: aihwkit ``ReRamArrayHfO2PresetDevice`` values (SoftBoundsReferenceDevice, ~4.3 states),
  which the artifact's FCN script hard-codes, with the cell's Ref Mean / Ref Std as the device's
  ``reference_mean`` / ``reference_std`` (``subtract_symmetry_point=True``: r = SP + mean + std xi).
  One device for every array, so W and P (and Analog SGD's single W) all carry the offsets, as the
  artifact's compound, which uses the same reference device for both tiles. The device's own
  reference is used (``SoftBoundsReference.array_reference()``); no ``[reference]`` section, which
  would *replace* (not add to) the device's reference of the arrays it names.
- IO: Table 6 (= aihwkit IOParameters defaults, ``io = {preset = "paper"}``); transfer reads with noise
  and bound management NONE (``IO.paper_transfer()``).
- mapping: aihwkit 512 x 512 tiles (the 784-input layer is two tiles of 392 inputs),
  ``weight_scaling_omega`` 0.3 for the compounds (artifact), ``weight_scaling_columnwise`` and
  ``learn_out_scaling`` True (artifact).
- gradient update: stochastic pulse trains, desired_bl 5 for the compounds (artifact
  ``UpdateParameters(desired_bl=5)``), 31 for Analog SGD (aihwkit default of SingleRPUConfig);
  BL and update management on (aihwkit defaults).
- training: batch 10, global lr of the artifact's FCN script (0.1 halved to 0.05 for the analog
  settings; TT-v2 takes ``--LR``, default 0.1), StepLR x0.5 every 15 of the artifact's epochs of
  6,000 steps, i.e. every 37.5 % of the budget, raw [0, 1] pixels (artifact: ``ToTensor()`` only).

Budget: the paper trains 40 epochs of 6,000 mini-batches (240,000 steps). On the bundled MNIST
subset (4,000 train / 1,000 test, 400 steps per epoch) that is 600 epochs; on Fashion-MNIST
(60,000 / 10,000) 40 epochs. The default is the paper's budget for the chosen data.
"""

from __future__ import annotations

import argparse
import copy
import json
from dataclasses import dataclass
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

PAPER = "2602.21321"
PAPER_STEPS = 240_000  # 40 epochs x 6,000 mini-batches of 10
PAPER_EPOCHS = 40
#: the artifact halves the lr every 15 of its epochs (StepLR(step_size=15, gamma=0.5), S2-mnist-FCN.py)
LR_STEP_FRACTION = 15 * 6000 / PAPER_STEPS
TRAIN_SIZES = {"mnist_subset": 4000, "fashion_mnist": 60000, "mnist": 60000}
BATCH = 10

HFO2 = "ReRamArrayHfO2"  # aihwkit preset name (analogtrain.devices.aihwkit_presets)
#: the layer width (inputs) at which the theory form's per-step chopper period and eta match the
#: artifact's per-read ones (fc2; fc1's tiles have 392 inputs, fc3 128)
THEORY_N_IN = 256

# ----------------------------------------------------------------------------- methods
# One dict per method: the algorithm table plus the parts of the run config that differ by method
# ("lr", "mapping", "bit_length"). Every value names its source:
#   [T5] paper Table 5 (FCN), [T3] paper Table 3 (LeNet; Table 5 lists only the fields that differ),
#   [FCN] artifact NeurIPS-2025/S2-mnist-FCN.py (github Jindanli898/E-RIDER),
#   [aihwkit] aihwkit 1.0/1.1 class default (the artifact runs aihwkit 1.0.0), [ours] a mapping
#   choice of this module (explained where it is made).
METHODS: dict[str, dict] = {
    "TT-v2": {
        "algorithm": {
            "name": "TikiTakaV2",                # [FCN] BufferedTransferCompound
            "fast_lr": 0.03,                     # [T5] (artifact CLI default 0.01)
            "scale_fast_lr": False,              # [aihwkit] 1.0/1.1 fast_lr is absolute (no scale_fast_lr field)
            "transfer_lr": 0.01,                 # [T5] (artifact CLI default 0.5)
            "scale_transfer_lr": True,           # [T5]
            "thres": 0.8,                        # [T5] thres_scale (artifact CLI default 1.0)
            "momentum": 0.1,                     # [T3] (= aihwkit default)
            "forget_buffer": True,               # [T3] (= aihwkit default)
            "transfer_every": 1,                 # [T3]
            "units_in_mbatch": True,             # [FCN] (Table 3: not applicable)
            "columns_per_transfer": 1,           # [T3] n_reads_per_transfer
            "transfer_columns": True,            # [T3]
            "max_transfer_pulses": 1,            # [FCN] transfer_update desired_bl=1, no BL management
            "auto_granularity": 0.0,             # [T3] "\" (BufferedTransferCompound has none)
            "granularity": "nominal",            # [aihwkit] threshold from the device config's dw_min
        },
        "lr": 0.1,            # [FCN] TT-v2 uses --LR (default 0.1), not the halved lr of the other settings
        "omega": 0.3,         # [FCN] --omega default 0.3
        "bit_length": 5,      # [FCN] update desired_bl=5
    },
    "AGAD": {
        "algorithm": {
            "name": "AGAD",                      # [FCN] "TT-v4" = DynamicTransferCompound
            "chop_prob": 0.1,                    # [T5] in_chop_prob (= artifact)
            "chop_random": False,                # [T5] in_chop_random
            "out_chop_prob": 0.0,                # [T5]
            "fast_lr": 0.05,                     # [T5] (= artifact)
            "scale_fast_lr": False,              # [T5]
            "transfer_lr": 0.3,                  # [T5] (= artifact)
            "scale_transfer_lr": True,           # [T5]
            "auto_granularity": 1000.0,          # [T3] (= artifact)
            "tail_weightening": 5.0,             # [T3] (= aihwkit 1.1.0 default)
            "momentum": 0.0,                     # [T3]
            "forget_buffer": True,               # [T3]
            "thres": 1.0,                        # [aihwkit] buffer_granularity default
            "transfer_every": 1,                 # [T3]
            "units_in_mbatch": True,             # [T3] (= artifact)
            "columns_per_transfer": 1,           # [T3]
            "max_transfer_pulses": 1,            # [FCN] transfer_update desired_bl=1
            "gamma": 0.0,                        # [aihwkit] the forward uses W only
        },
        "lr": 0.05,           # [FCN] lr = 0.1 / 2 for the analog settings
        "omega": 0.3,         # [FCN]
        "bit_length": 5,      # [FCN]
    },
    "E-RIDER": {
        "algorithm": {
            "name": "ERIDERArtifact",            # [FCN] "RL-v2": DynamicTransferCompound + pref term
            "chop_prob": 0.05,                   # [T5] (artifact FCN script: 0.1)
            "chop_random": False,                # [T5]
            "out_chop_prob": 0.0,                # [T5]
            "fast_lr": 0.5,                      # [T5] (= artifact)
            "scale_fast_lr": False,              # [T5]
            "transfer_lr": 0.05,                 # [T5] (= artifact)
            "scale_transfer_lr": False,          # [T5]
            "auto_granularity": 1000.0,          # [T3] (= artifact)
            "tail_weightening": 5.0,             # [T3]
            "momentum": 0.0,                     # [T3]
            "forget_buffer": True,               # [T3]
            "thres": 1.0,                        # [aihwkit] buffer_granularity default
            "transfer_every": 1,                 # [T3]
            "units_in_mbatch": True,             # [T3]
            "columns_per_transfer": 1,           # [T3]
            "max_transfer_pulses": 1,            # [FCN]
            "gamma": 0.1,                        # [T5] (artifact FCN script: AIHWKIT_PREF_GAMMA = 0.01)
        },
        "lr": 0.05,           # [FCN]
        "omega": 0.3,         # [FCN]
        "bit_length": 5,      # [FCN]
    },
    # The theory form (Algorithm 3) has alpha = lr * fast_lr and beta = lr * transfer_lr and reads
    # the whole of P every step; the Table-5 values are mapped per optimizer step [ours]:
    #   alpha = 0.5 (E-RIDER fast_lr, absolute)                 -> fast_lr = 0.5 / lr
    #   artifact: one column per step, a W pulse when transfer_lr * sum c (read - Q~) reaches
    #   theta = dw_min * auto_granularity / n_in, i.e. on average transfer_lr / auto_granularity
    #   W-pulse units per element and step, whatever n_in      -> beta = 0.05 / 1000, threshold dw_min
    #   artifact time scales are per read of a column, one read every n_in steps: running-mean
    #   weight tail_weightening / n_samples = 5 / 20 per read, a chopper half period of
    #   n_samples = 20 reads. In steps they depend on the layer (n_in = 392, 256, 128); the theory
    #   form has one global chopper and eta, so they are matched in steps at n_in = 256 (fc2):
    #   eta = 0.25 / 256 per step, a regular flip every 20 * 256 = 5,120 steps.
    #   (Matching per read instead, eta 0.25 and a flip every 20 steps, leaves only ~20 steps of
    #   gradient in P - Q~: that form stayed at 10 % in 8,000 steps, first sitting cell.)
    # With the StepLR schedule alpha and beta halve with the lr here; in the artifact they are
    # absolute (scale_*_lr False) and do not.
    "E-RIDER (theory)": {
        "algorithm": {
            "name": "ERIDER",
            "gamma": 0.1,                        # [T5]
            "chop_prob": 1.0 / (20 * THEORY_N_IN),  # [T5] in_chop_prob 0.05 per read -> per step
            "chopper": "regular",                # [T5] in_chop_random False
            "reference_sync": "flips",           # Algorithm 3: Q~ <- Q at chopper flips
            "eta": 5.0 / 20.0 / THEORY_N_IN,     # [T3] tail_weightening / n_samples per read -> per step
            "fast_lr": 0.5 / 0.05,               # [T5] alpha 0.5 absolute, / lr
            "transfer_lr": 0.05 / 1000.0 / 0.05,  # [T5]+[T3] transfer_lr / auto_granularity, / lr
            "transfer": "buffered",              # [FCN] thresholded pulses, threshold = W's dw_min
            "transfer_bl": 1,                    # [FCN] transfer desired_bl 1
            "forget_buffer": True,               # [T3]
            "columns_per_transfer": None,        # theory: all of P every step
        },
        "lr": 0.05,           # [FCN]
        "omega": 0.3,         # [FCN]
        "bit_length": 5,      # [FCN]
    },
    "Analog SGD": {
        "algorithm": {"name": "AnalogSGD"},      # [FCN] SingleRPUConfig(device=HfO2), control (not in Table 2)
        "lr": 0.05,           # [FCN]
        "omega": 1.0,         # [aihwkit] MappingParameter default weight_scaling_omega (the script sets none)
        "bit_length": 31,     # [aihwkit] UpdateParameters default desired_bl (the script sets none)
    },
}

#: what could not be matched to the paper or its artifact, and what is used instead
NOT_FOUND = (
    "FCN global lr: not in the paper; the artifact's FCN script (lr 0.1 halved to 0.05, TT-v2 --LR 0.1) is used",
    ("LR schedule and epoch count: not in the paper beyond '40 epochs'; the artifact's StepLR(15 epochs, x0.5) "
    "is scaled to the budget (every 37.5 % of it)"),
    "TT-v2 momentum / forget_buffer / columns: Table 5 is silent; Table 3 (LeNet) values are used",
    ("E-RIDER in_chop_prob 0.05 and gamma 0.1 (Table 5) differ from the artifact's FCN script (0.1, 0.01); the "
    "paper is used"),
    ("whether the artifact's AIHWKIT_PREF term also acts on its AGAD ('TT-v4') runs: the fork's kernel source in "
    "the snapshot does not read the variable; AGAD here has no pref term (gamma 0)"),
    ("aihwkit's analog-tile internals not modelled: auto_momentum 0.99 (only used with auto_scale, off), "
    "stochastic rounding (off in Table 6), the pref term as a second noisy MVM (folded into the one "
    "effective weight)"),
    "Analog SGD is not in Table 2 (control only); its omega and desired_bl are aihwkit defaults",
)

# ----------------------------------------------------------------------------- paper values
_STDS = (0.05, 0.2, 0.3, 0.4, 0.7, 1.0)
_TABLE2 = {  # Ref Mean -> method -> (mean, std) per Ref Std in _STDS (digest sp_tracking.md Table 2)
    0.0: {"TT-v2": "90.26±0.4 88.75±0.6 87.40±0.7 85.98±0.2 82.85±2.4 79.20±3.2",
          "AGAD": "92.59±0.2 91.96±0.8 92.11±0.9 92.48±0.1 92.19±0.4 91.37±0.4",
          "E-RIDER": "95.45±0.2 95.48±0.1 95.39±0.1 95.34±0.4 95.42±0.3 93.86±0.2"},
    0.2: {"TT-v2": "73.37±0.3 73.99±0.7 71.88±0.4 70.40±0.8 68.63±1.1 62.35±0.6",
          "AGAD": "92.86±1.3 91.95±0.4 92.63±0.7 92.80±0.2 92.22±0.3 90.77±0.3",
          "E-RIDER": "95.78±0.1 95.63±0.1 95.84±0.3 95.82±0.3 95.82±0.3 95.18±0.3"},
    0.3: {"TT-v2": "72.86±1.3 72.65±0.5 69.70±1.6 69.96±1.5 66.44±2.0 61.45±1.0",
          "AGAD": "92.31±0.4 92.52±0.4 92.47±0.5 92.88±0.3 91.68±0.5 91.35±0.4",
          "E-RIDER": "95.76±0.1 95.81±0.5 95.91±0.6 95.88±0.1 95.79±0.2 94.84±0.2"},
    0.4: {"TT-v2": "72.00±2.8 68.08±2.1 68.80±1.9 67.85±1.4 66.15±0.9 57.79±0.8",
          "AGAD": "92.55±0.2 92.42±0.6 92.42±0.8 92.06±0.4 90.62±0.3 90.43±0.3",
          "E-RIDER": "96.07±0.2 96.21±0.1 96.20±0.1 96.23±0.3 95.87±0.3 95.14±0.3"},
}
#: the paper row a method is compared with (the theory form against the paper's E-RIDER)
PAPER_ROW = {"TT-v2": "TT-v2", "AGAD": "AGAD", "E-RIDER": "E-RIDER", "E-RIDER (theory)": "E-RIDER"}


@dataclass(frozen=True)
class SPTable:
    """One accuracy table of 2602.21321 (Table 2: FCN; Table 1: LeNet-5, experiments/table1.py):
    the network and its batch, the paper's budget and the artifact's lr schedule, the methods'
    settings and the paper's values. ``key`` names the command and its output files."""

    key: str
    label: str
    net: str
    task: str
    batch: int
    paper_epoch_steps: int     # mini-batches per epoch of full MNIST
    lr_step_fraction: float    # StepLR period as a fraction of the budget
    lr_step_factor: float
    methods: dict
    paper: dict                # Ref Mean -> method -> "mean±std" per Ref Std in _STDS

    @property
    def paper_steps(self) -> int:
        return PAPER_EPOCHS * self.paper_epoch_steps


#: Table 2: 40 epochs of 6,000 mini-batches of 10; the FCN script's StepLR(15 epochs, x0.5)
TABLE2 = SPTable(key="table2", label="Table 2", net="FCN 784-256-128-10, batch 10", task="mnist_fcn", batch=BATCH,
                 paper_epoch_steps=6000, lr_step_fraction=LR_STEP_FRACTION, lr_step_factor=0.5, methods=METHODS,
                 paper=_TABLE2)


def paper_value(method: str, ref_mean: float, ref_std: float, table: SPTable = TABLE2) -> str:
    """The paper's entry ("95.45±0.2") of the table for the cell, or "" (not in the paper)."""
    row = PAPER_ROW.get(method)
    means = {round(k, 6): v for k, v in table.paper.items()}
    stds = [round(s, 6) for s in _STDS]
    if row is None or round(ref_mean, 6) not in means or round(ref_std, 6) not in stds:
        return ""
    return means[round(ref_mean, 6)][row].split()[stds.index(round(ref_std, 6))]


# ----------------------------------------------------------------------------- budget and config
def budget(data: str, steps: int | None = None, epochs: int | None = None, train_samples: int | None = None,
           table: SPTable = TABLE2) -> dict:
    """The budget of a cell (:func:`paper_table.budget`): ``steps`` optimizer steps, or ``epochs``
    full epochs, or (neither) the paper's 40 epochs of full MNIST (Table 2: 240,000 steps); the lr
    steps at the artifact's fraction of it (Table 2: halved every 37.5 %)."""
    return paper_budget(data, train_samples or TRAIN_SIZES[data], table.batch, table.paper_steps,
                        table.lr_step_fraction, steps=steps, epochs=epochs)


def hfo2_device(ref_mean: float, ref_std: float) -> dict:
    """aihwkit's ReRamArrayHfO2PresetDevice (= the artifact's hard-coded HfO2 SoftBoundsReference)
    with reference_mean / reference_std of the cell (r = SP + mean + std xi)."""
    from analogtrain.devices.aihwkit_presets import AIHWKIT_PRESETS

    cls, _, values, _ = AIHWKIT_PRESETS[HFO2]
    return {"family": cls.__name__, **values, "subtract_symmetry_point": True,
            "reference_mean": float(ref_mean), "reference_std": float(ref_std)}


def cell_config(method: str, ref_mean: float, ref_std: float, seed: int = 0, bud: dict | None = None,
                data_dir: str | None = None, threads: int | None = 1, table: SPTable = TABLE2) -> dict:
    """The run config of one cell of ``table`` at the paper's settings (module docstring)."""
    if method not in table.methods:
        raise ValueError(f"unknown method {method!r}; available: {list(table.methods)}")
    spec = table.methods[method]
    bud = bud or budget("mnist_subset", table=table)
    task = {"name": table.task, "dataset": bud["data"], "normalize": False,  # [FCN] ToTensor() only
            **spec.get("task", {})}
    if bud["data"] != "mnist_subset":
        task["data_dir"] = data_dir
    return {
        "task": task,
        "algorithm": copy.deepcopy(spec["algorithm"]),
        "device": hfo2_device(ref_mean, ref_std),
        "io": {"preset": "paper"},                                            # Table 6
        "transfer_io": {"noise_management": "none", "bound_management": "none"},  # Table 6 transfer forward
        "engine": {"name": "stochastic", "bit_length": spec["bit_length"]},
        "mapping": {"preset": "aihwkit", "weight_scaling_omega": spec["omega"], "weight_scaling_columnwise": True,
                    "learn_out_scaling": True},
        "train": {"epochs": bud["epochs"], "steps_per_epoch": bud["steps_per_epoch"], "lr": spec["lr"],
                  "batch_size": table.batch, "seed": int(seed), "lr_step_epochs": bud["lr_step_epochs"],
                  "lr_step_factor": table.lr_step_factor, "eval_at_start": False, "checkpoint": True,
                  "threads": threads},
        "meta": {"paper": f"{PAPER} {table.label}", "method": method, "ref_mean": float(ref_mean),
                 "ref_std": float(ref_std)},
    }


def cell_dir(out, method: str, ref_mean: float, ref_std: float, seed: int) -> Path:
    tag = method.replace(" ", "_").replace("(", "").replace(")", "")
    return Path(out) / f"{tag}_mean{ref_mean:g}_std{ref_std:g}_seed{seed}"


# ----------------------------------------------------------------------------- running
def _grid_file(out: Path, table: SPTable = TABLE2) -> Path:
    return Path(out) / f"{table.key}.json"


def write_grid(out: Path, bud: dict, methods, means, stds, seeds, data_dir, table: SPTable = TABLE2) -> dict:
    """Record the grid (merged with an earlier one into the same OUT) and the budget."""
    grid = {"budget": bud, "data_dir": data_dir, "methods": list(methods), "means": list(means),
            "stds": list(stds), "seeds": list(seeds)}
    return record_grid(_grid_file(out, table), grid)


def run_table(out, methods, means, stds, seeds, bud: dict, data_dir=None, executor: str = "local",
              num_cpus: int | None = None, address: str | None = None, quiet: bool = False,
              table: SPTable = TABLE2) -> list[dict]:
    """Run the unfinished cells (resuming interrupted ones) and write the outputs; returns the rows."""
    from .config import validate
    from .runner import is_finished

    out = Path(out)
    jobs = []
    for seed in seeds:
        for m in means:
            for s in stds:
                for method in methods:
                    cfg = cell_config(method, m, s, seed, bud, data_dir, table=table)
                    validate(cfg)  # every cell's config is checked before the first run
                    d = cell_dir(out, method, m, s, seed)
                    if not is_finished(d):
                        jobs.append((cfg, d))
    write_grid(out, bud, methods, means, stds, seeds, data_dir, table)

    def describe(row):
        return (f"{row['method']} mean {row['ref_mean']:g} std {row['ref_std']:g} seed {row['seed']}: "
                f"{row['test_accuracy']:.2f} % in {row['wall_time_s']:.0f} s")

    return run_cells(jobs, lambda: write_outputs(out, table), describe, executor=executor, num_cpus=num_cpus,
                     address=address, quiet=quiet, desc=table.key)


# ----------------------------------------------------------------------------- outputs
CSV_FIELDS = ("method", "ref_mean", "ref_std", "seed", "test_accuracy", "paper", "steps", "pulses_W", "pulses_P",
              "programming_writes", "wall_time_s", "status", "dir")


def collect(out, table: SPTable = TABLE2) -> list[dict]:
    """One row per cell of the grid that has a finished, partial or failed run."""
    out = Path(out)
    grid = json.loads(_grid_file(out, table).read_text())
    rows = []
    for seed in grid["seeds"]:
        for m in grid["means"]:
            for s in grid["stds"]:
                for method in grid["methods"]:
                    d = cell_dir(out, method, m, s, seed)
                    res = cell_result(d)
                    if res is None:
                        continue
                    pulses = res.pop("pulses")
                    rows.append({"method": method, "ref_mean": m, "ref_std": s, "seed": seed,
                                 "paper": paper_value(method, m, s, table), "dir": d.name, **res,
                                 "pulses_W": None if pulses is None else pulses.get("W", 0),
                                 "pulses_P": None if pulses is None else pulses.get("P", 0)})
    return rows


def format_markdown(rows: list[dict], grid: dict, table: SPTable = TABLE2) -> str:
    bud = grid["budget"]
    data = {"mnist_subset": "bundled MNIST subset (4,000 train / 1,000 test)",
            "fashion_mnist": "Fashion-MNIST (60,000 / 10,000; the paper's column is MNIST, not comparable)",
            "mnist": "MNIST (60,000 / 10,000)"}[bud["data"]]
    per_epoch = bud["steps_per_epoch"] or bud["epoch_steps_full"]
    lines = [
        f"{table.label} of {PAPER} ({table.net}), measured by `python -m analogtrain.experiments.{table.key}`.",
        "",
        f"- data: {data}",
        (f"- budget: {bud['steps']:,} steps per cell ({bud['epochs']} epochs x {per_epoch} steps) = "
        f"{100 * bud['fraction_of_paper']:.2f} % of the paper's {table.paper_steps:,} "
        f"({PAPER_EPOCHS} epochs x {table.paper_epoch_steps:,}); "
        f"lr x{table.lr_step_factor:g} every {bud['lr_step_epochs'] or '-'} epochs"),
        f"- seeds: {grid['seeds']}; machine: {machine()}",
        (f"- measured: test accuracy (%) after the last epoch (mean±std over seeds when > 1); paper: {table.label}, "
        "mean±std of 3 runs after 40 epochs; pulses: device pulses summed over layers and seeds' mean, "
        "W = slow / weight array, P = fast array"),
        "",
        "| Ref Mean | Ref Std | method | measured | paper | steps | pulses W | pulses P | wall (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    methods = [m for m in table.methods if m in grid["methods"]]  # the paper's row order
    for m in grid["means"]:
        for s in grid["stds"]:
            for method in methods:
                cell = [r for r in rows if r["method"] == method and r["ref_mean"] == m and r["ref_std"] == s
                        and r["status"] == "finished"]
                if not cell:
                    other = [r for r in rows if r["method"] == method and r["ref_mean"] == m and r["ref_std"] == s]
                    status = other[0]["status"] if other else "not run"
                    lines.append(f"| {m:g} | {s:g} | {method} | ({status}) | {paper_value(method, m, s, table) or '-'} "
                                 f"| | | | |")
                    continue
                n = len(cell)
                pw = sum(r["pulses_W"] for r in cell) / n
                pp = sum(r["pulses_P"] for r in cell) / n
                wall = sum(r["wall_time_s"] for r in cell) / n
                lines.append(
                    f"| {m:g} | {s:g} | {method} | {mean_std_text([r['test_accuracy'] for r in cell])} | "
                    f"{paper_value(method, m, s, table) or '-'} | {cell[0]['steps']:,} | {pw:,.0f} | {pp:,.0f} | {wall:.0f} |")
    return "\n".join(lines) + "\n"


COORDS = ("method", "ref_mean", "ref_std", "seed")


def write_outputs(out, table: SPTable = TABLE2) -> list[dict]:
    """Rewrite OUT/<key>.csv and OUT/<key>.md from the run directories and the included CSVs of
    earlier sittings (``--include``); returns the rows."""
    out = Path(out)
    grid = json.loads(_grid_file(out, table).read_text())
    rows = collect(out, table)
    present = {tuple(r[c] for c in COORDS) for r in rows if r["status"] == "finished"}
    extra = included_rows(grid, COORDS, present)
    rows += extra
    view = dict(grid, methods=list(dict.fromkeys(grid["methods"] + [r["method"] for r in extra])))
    for key, field in (("means", "ref_mean"), ("stds", "ref_std"), ("seeds", "seed")):
        view[key] = sorted(set(grid[key]) | {r[field] for r in extra})
    write_csv(out / f"{table.key}.csv", rows, CSV_FIELDS)
    (out / f"{table.key}.md").write_text(format_markdown(rows, view, table))
    write_curves(out / f"{table.key}.png", {f"{r['method']} ({r['ref_mean']:g}, {r['ref_std']:g}) s{r['seed']}":
                                            out / r["dir"] for r in rows},
                 f"{table.label} of {PAPER}: test accuracy and pulses on W (label: Ref Mean, Ref Std, seed)")
    return rows


# ----------------------------------------------------------------------------- command line
def main(argv=None, table: SPTable = TABLE2) -> int:
    parser = argparse.ArgumentParser(description=f"{table.label} of {PAPER} at the paper's settings (resumable)")
    parser.add_argument("--out", default=f"runs/{table.key}")
    parser.add_argument("--data", choices=["mnist_subset", "fashion_mnist"], default="mnist_subset")
    parser.add_argument("--data-dir", default=None, help="directory of the Fashion-MNIST IDX files")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--steps", type=int, default=None, help="optimizer steps per cell (default: the paper's)")
    group.add_argument("--epochs", type=int, default=None, help="full epochs per cell")
    parser.add_argument("--means", type=float, nargs="+", default=[0.0, 0.3])
    parser.add_argument("--stds", type=float, nargs="+", default=[0.05, 0.3])
    parser.add_argument("--methods", nargs="+", default=list(table.methods), choices=list(table.methods))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--executor", choices=["local", "ray"], default="local")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray instance (ray only)")
    parser.add_argument("--address", default=None, help="Ray cluster address (ray only)")
    parser.add_argument("--table", action="store_true",
                        help=f"only rebuild {table.key}.csv / {table.key}.md from finished cells")
    parser.add_argument("--include", nargs="+", default=[], metavar="CSV",
                        help="CSV tables of earlier sittings: their finished cells join the outputs "
                             "(cells finished here take precedence)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.table:
        if not _grid_file(out, table).exists():
            parser.error(f"{out} holds no {table.label} run ({_grid_file(out, table).name} missing)")
        add_includes(_grid_file(out, table), args.include)
        rows = write_outputs(out, table)
    else:
        if args.data != "mnist_subset" and not args.data_dir:
            parser.error("--data fashion_mnist needs --data-dir (the directory of the IDX files)")
        bud = budget(args.data, args.steps, args.epochs, table=table)
        if args.include:
            write_grid(out, bud, args.methods, args.means, args.stds, args.seeds, args.data_dir, table)
            add_includes(_grid_file(out, table), args.include)
        rows = run_table(out, args.methods, args.means, args.stds, args.seeds, bud, args.data_dir,
                         executor=args.executor, num_cpus=args.num_cpus, address=args.address, quiet=args.quiet,
                         table=table)
    print((out / f"{table.key}.md").read_text())
    failed = [r["dir"] for r in rows if r["status"] == "failed"]
    if failed:
        print(f"failed cells (see error.txt): {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
