"""Golden loss curves from IBM aihwkit 1.1.0 for a small linear-regression task.

Run with the peer venv (../shared/peer/peer_aihwkit_setup.sh), never with analogtrain's venv;
this script does not import analogtrain and analogtrain never imports aihwkit:

    ~/.cache/aihwkit-peer/bin/python benchmarks/aihwkit_golden.py [--seeds 8] [--out PATH]
    ~/.cache/aihwkit-peer/bin/python benchmarks/aihwkit_golden.py --mixed-precision [--seeds 8] [--out PATH]

It writes tests/data/aihwkit_golden_regression.json (one file, all algorithms); with
--mixed-precision it runs only the mixed-precision entries (MIXED_PRECISION below) and writes
tests/data/aihwkit_golden_mixed_precision.json instead.

Task (reproducible with numpy only):
    rng = numpy.random.RandomState(1234)
    X = rng.uniform(-1, 1, size=(1024, 32)).astype(float32)
    W_target = rng.uniform(-0.3, 0.3, size=(8, 32))
    Y = (X @ W_target.T).astype(float32)
    one AnalogLinear(32, 8, bias=False), weights set to 0 with layer.set_weights(zeros(8, 32)),
    MSE loss (mean reduction), batch 8, 128 mini-batches per epoch; epoch e (1-based) uses the order
    numpy.random.RandomState(100 + e).permutation(1024) (same for every seed);
    perfect forward/backward IO (and perfect transfer_forward for compounds), AnalogSGD lr 0.1.
    Recorded: MSE over all 1024 samples (analog forward, perfect IO) after epochs
    0, 1, 2, 3, 5, 8, 10, 15, 20, 25, 30 (epoch 0 = before training).

Device: aihwkit's default SoftBoundsDevice() for every device.
Algorithms: Analog SGD (SingleRPUConfig), TT-v1 (TransferCompound), TT-v2
(BufferedTransferCompound), c-TTv2 (ChoppedTransferCompound), AGAD (DynamicTransferCompound);
mixed precision (--mixed-precision: DigitalRankUpdateRPUConfig with MixedPrecisionCompound(
device=SoftBoundsDevice()), default UpdateParameters(), each entry of MIXED_PRECISION overriding
some class defaults);
compounds with two SoftBoundsDevice, gamma 0, transfer_every 1 with units_in_mbatch=True (one
transfer per mini-batch, after its last sample), n_reads_per_transfer 1, fast_lr 0.2 (absolute in
1.1.0), transfer_lr 1.0, scale_transfer_lr True, everything else the class defaults.

Seeding: aihwkit 1.1.0 has no runtime seed binding. `construction_seed` (on the device for SGD,
on the compound for the unit cells) fixes the device-to-device parameters; we use
construction_seed = 1000 + seed. The cycle-to-cycle / bit-stream RNG uses glibc rand() and a
32768-entry Gaussian table drawn from a clock-seeded engine at tile construction; we call
libc srand(seed + 1) after construction, which fixes the uniform draws but not the Gaussian table,
so repeated runs are statistically but not bit-wise reproducible. Random chopper flips (c-TTv2)
use a clock-seeded std::default_random_engine (not seedable).
"""
import argparse
import ctypes
import dataclasses
import datetime
import json
import os
import platform
import sys
import time

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np
import torch
import torch.nn.functional as F

import aihwkit
from aihwkit.nn import AnalogLinear
from aihwkit.optim import AnalogSGD
from aihwkit.simulator.configs import DigitalRankUpdateRPUConfig, SingleRPUConfig, UnitCellRPUConfig
from aihwkit.simulator.configs.compounds import (
    BufferedTransferCompound,
    ChoppedTransferCompound,
    DynamicTransferCompound,
    MixedPrecisionCompound,
    TransferCompound,
)
from aihwkit.simulator.configs.devices import SoftBoundsDevice
from aihwkit.simulator.parameters import IOParameters

N_SAMPLES, N_IN, N_OUT = 1024, 32, 8
BATCH = 8
EPOCHS = 30
RECORD_EPOCHS = [0, 1, 2, 3, 5, 8, 10, 15, 20, 25, 30]
LR = 0.1
DATA_SEED = 1234
EPOCH_SEED_BASE = 100
CONSTRUCTION_SEED_BASE = 1000
COMPOUND_COMMON = dict(
    gamma=0.0,
    transfer_every=1.0,
    units_in_mbatch=True,
    n_reads_per_transfer=1,
    fast_lr=0.2,
    transfer_lr=1.0,
    scale_transfer_lr=True,
)
ALGORITHMS = ["analog_sgd", "ttv1", "ttv2", "cttv2", "agad"]
COMPOUND_CLASS = {
    "ttv1": TransferCompound,
    "ttv2": BufferedTransferCompound,
    "cttv2": ChoppedTransferCompound,
    "agad": DynamicTransferCompound,
}
# mixed precision (--mixed-precision): MixedPrecisionCompound fields over its class defaults
# (transfer_every 1, n_rows_per_transfer -1, granularity 0 = the device's dw_min, transfer_lr 1,
# n_x_bins = n_d_bins = 0, stoc_round_x = stoc_round_d = True)
MIXED_PRECISION = {
    "mixed_precision": {},
    "mixed_precision_rows": {"n_rows_per_transfer": 1},
    "mixed_precision_bins": {"n_x_bins": 3, "n_d_bins": 3},
    "mixed_precision_clean": {},
}
# SoftBoundsDevice fields over its defaults, per mixed-precision entry ("clean": no device-to-device
# or cycle-to-cycle variation, so the curve tests the algorithm alone, to ~3 digits)
MIXED_PRECISION_DEVICE = {
    "mixed_precision_clean": {"dw_min_dtod": 0.0, "w_max_dtod": 0.0, "w_min_dtod": 0.0, "up_down_dtod": 0.0,
                              "dw_min_std": 0.0},
}


def make_data():
    rng = np.random.RandomState(DATA_SEED)
    x = rng.uniform(-1, 1, size=(N_SAMPLES, N_IN)).astype(np.float32)
    w_target = rng.uniform(-0.3, 0.3, size=(N_OUT, N_IN))
    y = (x @ w_target.T).astype(np.float32)
    return x, w_target, y


def perfect_io():
    return IOParameters(is_perfect=True)


def make_rpu_config(algo, seed):
    cseed = CONSTRUCTION_SEED_BASE + seed
    if algo == "analog_sgd":
        cfg = SingleRPUConfig(device=SoftBoundsDevice(construction_seed=cseed))
    elif algo in MIXED_PRECISION:
        comp = MixedPrecisionCompound(device=SoftBoundsDevice(**MIXED_PRECISION_DEVICE.get(algo, {})),
                                      construction_seed=cseed, **MIXED_PRECISION[algo])
        cfg = DigitalRankUpdateRPUConfig(device=comp)
    else:
        comp = COMPOUND_CLASS[algo](
            unit_cell_devices=[SoftBoundsDevice(), SoftBoundsDevice()],
            transfer_forward=perfect_io(),
            construction_seed=cseed,
            **COMPOUND_COMMON,
        )
        cfg = UnitCellRPUConfig(device=comp)
    cfg.forward = perfect_io()
    cfg.backward = perfect_io()
    return cfg


def _plain(obj):
    """JSON-able view of a (nested) aihwkit config dataclass."""
    if dataclasses.is_dataclass(obj):
        return {"__class__": type(obj).__name__,
                **{f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}}
    if isinstance(obj, (list, tuple)):
        return [_plain(o) for o in obj]
    if isinstance(obj, (bool, int, float, str)) or obj is None:
        return obj
    if hasattr(obj, "value"):  # enums
        return str(obj.value)
    return repr(obj)


def full_mse(layer, xt, yt):
    with torch.no_grad():
        return float(F.mse_loss(layer(xt), yt).item())


def run_one(algo, seed, x, y, libc):
    torch.manual_seed(seed)  # only affects the (overwritten) kaiming init; harmless
    cfg = make_rpu_config(algo, seed)
    layer = AnalogLinear(N_IN, N_OUT, bias=False, rpu_config=cfg)
    layer.set_weights(torch.zeros(N_OUT, N_IN))  # compounds: A and C set to 0, counters reset
    if libc is not None:
        libc.srand(ctypes.c_uint(seed + 1))
    w0 = layer.get_weights()[0]
    assert float(w0.abs().max()) == 0.0, "initial weights not zero"
    opt = AnalogSGD(layer.parameters(), lr=LR)
    opt.regroup_param_groups(layer)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    curve = {0: full_mse(layer, xt, yt)}
    t0 = time.perf_counter()
    for epoch in range(1, EPOCHS + 1):
        perm = np.random.RandomState(EPOCH_SEED_BASE + epoch).permutation(N_SAMPLES)
        for b in range(N_SAMPLES // BATCH):
            idx = torch.from_numpy(perm[b * BATCH:(b + 1) * BATCH])
            opt.zero_grad()
            loss = F.mse_loss(layer(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        if epoch in RECORD_EPOCHS:
            curve[epoch] = full_mse(layer, xt, yt)
    wall = time.perf_counter() - t0
    w_final = layer.get_weights()[0].numpy()
    return [curve[e] for e in RECORD_EPOCHS], wall, w_final, cfg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--algos", default=None, help="comma-separated (default: all of ALGORITHMS, or of "
                                                   "MIXED_PRECISION with --mixed-precision)")
    ap.add_argument("--mixed-precision", action="store_true",
                    help="run only the mixed-precision entries, into tests/data/aihwkit_golden_mixed_precision.json")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.algos is None:
        args.algos = ",".join(MIXED_PRECISION if args.mixed_precision else ALGORITHMS)
    if args.out is None:
        args.out = os.path.join(here, "..", "tests", "data", "aihwkit_golden_mixed_precision.json"
                                if args.mixed_precision else "aihwkit_golden_regression.json")
    torch.set_num_threads(1)
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        libc = None
    x, w_target, y = make_data()
    t_start = time.perf_counter()
    results = {}
    for algo in args.algos.split(","):
        per_seed, walls, cfg_repr, wdist = [], [], None, []
        for seed in range(args.seeds):
            curve, wall, w_final, cfg = run_one(algo, seed, x, y, libc)
            per_seed.append(curve)
            walls.append(wall)
            wdist.append(float(np.sqrt(np.mean((w_final - w_target) ** 2))))
            if cfg_repr is None:
                cfg_repr = {"repr": repr(cfg), "fields": _plain(cfg)}
            print(f"{algo:10s} seed {seed}: " + " ".join(f"{v:.4g}" for v in curve)
                  + f"  ({wall:.1f} s)", flush=True)
        arr = np.array(per_seed)
        results[algo] = {
            "rpu_config": cfg_repr,
            "construction_seeds": [CONSTRUCTION_SEED_BASE + s for s in range(args.seeds)],
            "mse_per_seed": per_seed,
            "mse_mean": arr.mean(axis=0).tolist(),
            "mse_std": arr.std(axis=0, ddof=1).tolist() if len(per_seed) > 1 else [0.0] * arr.shape[1],
            "final_weight_rmse_to_target_per_seed": wdist,
            "wall_s_per_seed": walls,
        }
        m, s = results[algo]["mse_mean"][-1], results[algo]["mse_std"][-1]
        print(f"== {algo}: final MSE {m:.4g} +- {s:.2g} (mean wall {np.mean(walls):.1f} s/seed)", flush=True)
    total_wall = time.perf_counter() - t_start
    out = {
        "description": "aihwkit 1.1.0 golden MSE curves, linear regression 32->8, see benchmarks/aihwkit_golden.py",
        "aihwkit_version": aihwkit.__version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "total_wall_s": total_wall,
        "data_recipe": {
            "code": ("rng = numpy.random.RandomState(1234); "
                     "X = rng.uniform(-1, 1, size=(1024, 32)).astype(float32); "
                     "W_target = rng.uniform(-0.3, 0.3, size=(8, 32)); "
                     "Y = (X @ W_target.T).astype(float32)"),
            "epoch_order": "numpy.random.RandomState(epoch_seed_base + epoch).permutation(1024), epoch = 1..30",
            "epoch_seed_base": EPOCH_SEED_BASE,
            "n_samples": N_SAMPLES, "n_in": N_IN, "n_out": N_OUT,
        },
        "training": {
            "model": "AnalogLinear(32, 8, bias=False)",
            "initial_weights": "0, via layer.set_weights(torch.zeros(8, 32)) right after construction "
                               "(compounds: all sub-devices set to 0, counters reset)",
            "loss": "torch.nn.functional.mse_loss, reduction='mean' (over batch and the 8 outputs)",
            "optimizer": "aihwkit.optim.AnalogSGD, lr 0.1 constant",
            "batch_size": BATCH, "batches_per_epoch": N_SAMPLES // BATCH, "epochs": EPOCHS,
            "io": "forward.is_perfect = backward.is_perfect = True; compounds also transfer_forward.is_perfect = True",
            "device": "SoftBoundsDevice() defaults for every device (dtod/ctoc as in aihwkit 1.1.0)",
            "compound_common": COMPOUND_COMMON,
            "compound_notes": ("units_in_mbatch=True for all compounds: one transfer (one column read) "
                               "per mini-batch, after the update of its last sample; fast_lr is absolute in 1.1.0; "
                               "everything not listed is the class default (see rpu_config.fields)"),
            "metric": "MSE over all 1024 samples through the analog forward (perfect IO)",
            "record_epochs": RECORD_EPOCHS,
        },
        "seeding": ("seed s = 0..n-1: construction_seed = 1000 + s (device for SGD, compound for unit cells; "
                    "fixes device-to-device variation); libc srand(s + 1) after construction; "
                    "aihwkit's Gaussian table and chopper RNG are clock-seeded, so runs are not bit-reproducible"),
        "notes": ("TT-v2 / c-TTv2 / AGAD write at most one C pulse per element per transfer (transfer_update "
                  "desired_bl=1) and read one of 32 columns per mini-batch, i.e. <= 1 pulse (~dw_min = 0.001) per "
                  "element per 32 mini-batches = 120 sweeps in 30 epochs; with |W_target| up to 0.3 this pulse-rate "
                  "ceiling alone leaves an MSE of ~0.07 (32/3 * E[(|w|-0.12)_+^2], w ~ U(-0.3, 0.3)), so these "
                  "curves are rate-limited, not diverging. AGAD writes nothing during its warm-up "
                  "(transfer_counter <= n_samples = 10 sweeps, i.e. ~2.75 epochs), hence the flat start."),
        "n_seeds": args.seeds,
        "algorithms": results,
    }
    if args.mixed_precision:
        out["description"] = ("aihwkit 1.1.0 golden MSE curves of mixed precision (MixedPrecisionCompound), "
                              "linear regression 32->8, see benchmarks/aihwkit_golden.py --mixed-precision")
        out["training"]["mixed_precision"] = {
            "rpu_config": "DigitalRankUpdateRPUConfig(device=MixedPrecisionCompound(device=SoftBoundsDevice(**device_overrides), "
                          "construction_seed=1000 + seed, **overrides)), update=UpdateParameters() (defaults)",
            "overrides": MIXED_PRECISION,
            "device_overrides": MIXED_PRECISION_DEVICE,
            "notes": ("chi accumulates lr * d x^T per sample; every transfer_every * batch vector updates (after the "
                      "first sample of the next mini-batch) n = trunc(chi / dw_min) of n_rows_per_transfer rows "
                      "is written as a pulsed update (x = n, d = one-hot row, lr = dw_min * transfer_lr, update "
                      "and BL management forced on) and chi -= n * dw_min; compound_common above does not apply"),
        }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(out, fh, indent=1)
    print(f"wrote {os.path.abspath(args.out)} ({os.path.getsize(args.out)} bytes), total wall {total_wall:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
