"""Golden pulse-response traces of aihwkit 1.1.0's pulsed device families.

Run with the peer venv (../shared/peer/peer_aihwkit_setup.sh), never with analogtrain's venv;
this script does not import analogtrain and analogtrain never imports aihwkit:

    ~/.cache/aihwkit-peer/bin/python benchmarks/aihwkit_device_traces.py [--only ExpStep] [--out DIR]

It writes tests/data/aihwkit_traces_<family>.json, read by tests/test_device_families.py.
With ``--presets`` it writes tests/data/aihwkit_preset_values.json instead: the dataclass fields
of every ``aihwkit.simulator.presets.devices.*PresetDevice()`` (read by tests/test_device_presets.py).

Protocol (as aihwkit.utils.visualization.get_tile_for_plotting / compute_pulse_response):
an AnalogTile(64, 64) per construction seed, perfect forward IO, update with
desired_bl = 1, update_bl_management = update_management = False, learning rate 1; every
update is ``tile.update(x = -ones(1, 64), d = ones(1, 64) * s)``, which fires exactly one
pulse of direction s (+1 up, -1 down) on every device (A = B = sqrt(lr / dw_min) >= 1, so
every bit is set). Weights set to 0 first (``set_weights``), then 600 up pulses, 1,200 down
pulses, then 2,000 alternating pulses (up first). The mean and std (population, ddof 0) over
all devices of all tiles are recorded at pulse 0 (the start) and after every ``every``-th pulse
(``tile.get_weights()``, exact hidden weights: no write noise).

Cases per family:
- ``ideal``: every *_dtod and dw_min_std set to 0 (one tile);
- ``ctoc``: dtod 0, the family's class default cycle-to-cycle noise (dw_min_std);
- ``dtod``: aihwkit's class default device-to-device variation and cycle noise.
Noise cases pool ``--tiles`` tiles (construction_seed 1..tiles) to shrink the sampling error.

Seeding: construction_seed fixes the device-to-device draws; the cycle-to-cycle RNG is not
seedable in 1.1.0 (libc srand(seed) after construction fixes only the uniform draws), so the
noise traces are statistically, not bit-wise, reproducible.
"""
import argparse
import ctypes
import dataclasses
import datetime
import json
import os
import platform
import sys
import warnings

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")
warnings.filterwarnings("ignore")

import aihwkit
import numpy as np
import torch
from aihwkit.simulator.configs import SingleRPUConfig
from aihwkit.simulator.configs import devices as D
from aihwkit.simulator.tiles import AnalogTile

N_UP, N_DOWN, N_ALT = 600, 1200, 2000
ROWS = COLS = 64

# family name -> (aihwkit class, parameters); dw_min 0.002 so that 600 pulses reach the bounds
FAMILIES = {
    "SoftBounds": (D.SoftBoundsDevice, {"dw_min": 0.002}),
    "ConstantStep": (D.ConstantStepDevice, {"dw_min": 0.002, "up_down": 0.05}),
    "LinearStep": (D.LinearStepDevice, {"dw_min": 0.002, "gamma_up": 0.6, "gamma_down": 0.3, "up_down": -0.05,
                                            "mult_noise": False}),
    "LinearStepMult": (D.LinearStepDevice, {"dw_min": 0.002, "gamma_up": 0.4, "gamma_down": 0.7,
                                                "mean_bound_reference": False, "mult_noise": True}),
    "ExpStep": (D.ExpStepDevice, {"dw_min": 0.002}),
    "ExpStepComplexNoise": (D.ExpStepDevice, {"dw_min": 0.002, "dw_min_std_add": 0.002, "dw_min_std_slope": 0.01}),
    "PowStep": (D.PowStepDevice, {"dw_min": 0.002, "w_max": 0.8, "w_min": -0.5, "pow_gamma": 1.5, "pow_up_down": 0.2}),
    "PiecewiseStep": (D.PiecewiseStepDevice, {"dw_min": 0.002,
                                                  "piecewise_up": [1.6, 1.4, 1.2, 1.0, 0.8, 0.5, 0.2],
                                                  "piecewise_down": [0.3, 0.6, 0.9, 1.0, 1.1, 1.2, 1.3]}),
    "SoftBoundsPmax": (D.SoftBoundsPmaxDevice, {"p_max": 800, "alpha": 0.0025, "range_min": -0.8, "range_max": 0.8}),
}
DTOD_FIELDS = ("dw_min_dtod", "up_down_dtod", "w_max_dtod", "w_min_dtod", "gamma_up_dtod", "gamma_down_dtod",
               "pow_gamma_dtod", "pow_up_down_dtod")


def directions():
    alt = np.tile([1.0, -1.0], N_ALT // 2)
    return np.concatenate([np.ones(N_UP), -np.ones(N_DOWN), alt])


def make_device(cls, params, case, seed):
    dev = cls(**params)
    names = {f.name for f in dataclasses.fields(dev)}
    if case in ("ideal", "ctoc"):
        for name in DTOD_FIELDS:
            if name in names:
                setattr(dev, name, 0.0)
    if case == "ideal":
        dev.dw_min_std = 0.0
    dev.construction_seed = seed
    return dev


def run_case(cls, params, case, tiles, every, libc):
    dirs = directions()
    n_tiles = 1 if case == "ideal" else tiles
    traces = []
    for t in range(n_tiles):
        seed = 1 + t
        cfg = SingleRPUConfig(device=make_device(cls, params, case, seed))
        cfg.forward.is_perfect = True
        cfg.update.update_bl_management = False
        cfg.update.update_management = False
        cfg.update.desired_bl = 1
        tile = AnalogTile(ROWS, COLS, cfg)
        tile.set_learning_rate(1.0)
        tile.set_weights(torch.zeros(ROWS, COLS))
        if libc is not None:
            libc.srand(ctypes.c_uint(seed))
        x = -torch.ones(1, COLS)
        d = torch.ones(1, ROWS)
        rec = [tile.get_weights()[0].numpy().astype(np.float64).ravel()]
        for k, s in enumerate(dirs, start=1):
            tile.update(x, d * float(s))
            if k % every == 0:
                rec.append(tile.get_weights()[0].numpy().astype(np.float64).ravel())
        traces.append(np.stack(rec))
    w = np.concatenate(traces, axis=1)  # (points, devices)
    return {
        "n_devices": int(w.shape[1]),
        "n_tiles": n_tiles,
        "construction_seeds": list(range(1, n_tiles + 1)),
        "device_fields": {f.name: getattr(make_device(cls, params, case, 1), f.name)
                          for f in dataclasses.fields(cls) if f.name != "drift"},
        "mean": [float(np.float32(v)) for v in w.mean(axis=1)],
        "std": [float(np.float32(v)) for v in w.std(axis=1)],
    }


def dump_presets(out_dir):
    """Fields of every aihwkit device preset (plain values only) -> aihwkit_preset_values.json."""
    from aihwkit.simulator.presets import devices as P

    skip = ("drift", "count_pulses", "construction_seed", "apply_write_noise_on_set", "perfect_bias", "flicker")
    presets = {}
    for name in sorted(n for n in dir(P) if n.endswith("PresetDevice")):
        cls = getattr(P, name)
        inst = cls()
        fields = {f.name: getattr(inst, f.name) for f in dataclasses.fields(inst)
                  if f.name not in skip and isinstance(getattr(inst, f.name), (int, float, bool, list))}
        presets[name] = {"aihwkit_base": cls.__mro__[1].__name__, "fields": fields}
    out = {"aihwkit_version": aihwkit.__version__,
           "source": "introspected from the installed aihwkit 1.1.0 PyPI wheel (aihwkit.simulator.presets.devices, "
                     "dataclass fields of <Name>() with defaults); identical to tag v1.1.0 (commit "
                     "809114e582f56e55fa697472fbdaf32708049870)",
           "script": "benchmarks/aihwkit_device_traces.py --presets", "presets": presets}
    path = os.path.join(out_dir, "aihwkit_preset_values.json")
    with open(path, "w") as fh:
        json.dump(out, fh, indent=1, sort_keys=True)
    print(f"wrote {path}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data"))
    ap.add_argument("--only", nargs="*", default=None, help="family names (default: all)")
    ap.add_argument("--tiles", type=int, default=8, help="64x64 tiles pooled in the noise cases")
    ap.add_argument("--every", type=int, default=5, help="record every k-th pulse")
    ap.add_argument("--presets", action="store_true", help="dump the device presets' fields instead")
    args = ap.parse_args(argv)
    if args.presets:
        dump_presets(args.out)
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        libc = None
    for name in args.only or FAMILIES:
        cls, params = FAMILIES[name]
        out = {
            "family": name,
            "aihwkit_class": cls.__name__,
            "parameters": params,
            "aihwkit_version": aihwkit.__version__,
            "aihwkit_source": "PyPI wheel 1.1.0 (tag v1.1.0 = 809114e582f56e55fa697472fbdaf32708049870)",
            "torch_version": torch.__version__,
            "python": platform.python_version(),
            "generated": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "script": "benchmarks/aihwkit_device_traces.py " + " ".join(sys.argv[1:]),
            "protocol": {"rows": ROWS, "cols": COLS, "start": 0.0, "n_up": N_UP, "n_down": N_DOWN,
                         "n_alternating": N_ALT, "alternating_first": "up", "every": args.every,
                         "pulse_index": "0, every, 2*every, ... (0 = before the first pulse)",
                         "std": "population std (ddof 0) over all devices of all tiles"},
            "cases": {},
        }
        for case in ("ideal", "ctoc", "dtod"):
            out["cases"][case] = run_case(cls, params, case, args.tiles, args.every, libc)
        path = os.path.join(args.out, f"aihwkit_traces_{name}.json")
        with open(path, "w") as fh:
            json.dump(out, fh, separators=(",", ":"))
        print(f"{name}: wrote {path} ({os.path.getsize(path) / 1e3:.0f} kB)", flush=True)


if __name__ == "__main__":
    main()
