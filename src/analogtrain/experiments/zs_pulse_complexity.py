"""Fig. 1 of 2602.21321: pulse complexity of zero-shifting (ZS) calibration.

- ``fig1a``: a 512x512 soft-bounds array with 2000 states (dw_min = 1e-3) and device-to-device
  variation of its slopes, so every element has its own SP (mean 0.2, std ~0.05). Stochastic
  ZS from W_0 = 0 with N in {500, ..., 8000}: offsets (ground truth - estimate) of the array
  mean and std of the SP estimates, the per-element RMS error and the relative error of the
  mean. Paper: both offsets shrink with N and 1% relative error needs more than 2000 pulses.
- ``fig1b``: the same device family with dw_min from 5e-3 down to 1e-5; the smallest N of a
  doubling grid {200, 500, 1000, 2000, ...} giving <= 1% relative error of the array-mean SP.
  Paper: N is "nearly inversely linear" in dw_min (log-log slope about -1).

The device parameters behind the paper's figure (slope spreads, SP mean) are not published;
those used here are stated in ``fig1_device``. The prediction of reference/sp_tracking.md
Sec. 2.5 (time constant 1/(dw_min g')) is printed next to every measurement.

Run: ``python -m analogtrain.experiments.zs_pulse_complexity --out runs/zs_pulse_complexity``
(``--quick`` shrinks the arrays for a smoke run). Writes ``fig1.json`` and ``fig1.png``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from .. import theory
from ..arrays import AnalogArray
from ..calibration import zero_shift
from ..devices import SoftBounds


def fig1_device(dw_min: float = 1e-3) -> SoftBounds:
    """Soft bounds on [-1, 1], asymmetry 0.2 (SP 0.2), log-normal slope spread 0.1 and an
    up/down spread 0.05 per element (2602.21321 eq. 103-104 with gamma_d, rho)."""
    return SoftBounds(tau=1.0, asymmetry=0.2, dw_min=dw_min, device_to_device={"slope": 0.1, "up_down": 0.05})


def fig1a(shape=(512, 512), pulses=(500, 1000, 2000, 4000, 8000), seed: int = 0) -> dict:
    array = AnalogArray(shape, fig1_device(1e-3), seed=seed)
    res = zero_shift(array, max(pulses), checkpoints=list(pulses), seed=seed + 1)
    sp = res.true_sp.double()
    tau = float(theory.zs_time_constant(array.device).mean())
    rows = []
    # the std offset at a checkpoint needs the estimate there: rerun per N (same seeds) only for it
    for n, m_err, rms in zip(res.checkpoints, res.mean_errors, res.rms_errors):
        rows.append({"N": n, "mean_offset": -m_err, "rms_error": rms,
                     "relative_error": abs(m_err) / abs(res.initial_mean_offset),
                     "theory_relative_error": math.exp(-n / tau)})
    stds = {}
    for n in pulses:
        fresh = AnalogArray(shape, fig1_device(1e-3), seed=seed)
        r = zero_shift(fresh, n, seed=seed + 1)
        stds[n] = float(sp.std() - r.estimate.double().std())
    for row in rows:
        row["std_offset"] = stds[row["N"]]
    first = next((r["N"] for r in rows if r["relative_error"] <= 0.01), None)
    return {"shape": list(shape), "mean_sp": float(sp.mean()), "std_sp": float(sp.std()),
            "time_constant": tau, "rows": rows, "first_N_at_1_percent": first}


def fig1b(dw_mins=(5e-3, 2e-3, 1e-3, 5e-4, 2e-4, 1e-4, 5e-5, 2e-5, 1e-5), shape=(64, 64), seed: int = 0) -> dict:
    grid = sorted({round(200 * 2 ** (k / 4)) for k in range(4 * 12)})  # quarter-octave grid
    doubling = [200, 500] + [1000 * 2**k for k in range(14)]  # the paper's schedule
    rows = []
    for dw in dw_mins:
        array = AnalogArray(shape, fig1_device(dw), seed=seed)
        predicted = float(theory.zs_pulses_for_mean_error(array.device, 0.01).mean())
        marks = [n for n in grid if n <= 3 * predicted] or grid[:1]
        res = zero_shift(array, marks[-1], checkpoints=marks, seed=seed + 1)
        rel = [abs(m) / abs(res.initial_mean_offset) for m in res.mean_errors]
        needed = next((n for n, r in zip(marks, rel) if r <= 0.01), None)
        needed_doubling = next((n for n in doubling if needed is not None and n >= needed), None)
        rows.append({"dw_min": dw, "N_for_1_percent": needed, "N_doubling_grid": needed_doubling,
                     "theory_N": predicted, "relative_errors": dict(zip(marks, rel))})
    pts = [(math.log(r["dw_min"]), math.log(r["N_for_1_percent"])) for r in rows if r["N_for_1_percent"]]
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    slope = sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)
    return {"shape": list(shape), "grid": grid, "rows": rows, "loglog_slope": slope}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from .plots import plt, save_figure

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    a = result["fig1a"]
    n = [r["N"] for r in a["rows"]]
    ax1.semilogx(n, [r["mean_offset"] for r in a["rows"]], "o-", label="mean offset (true - est.)")
    ax1.semilogx(n, [r["std_offset"] for r in a["rows"]], "s-", label="std offset")
    ax1.semilogx(n, [r["rms_error"] for r in a["rows"]], "^-", label="per-element RMS error")
    ax1.axhline(0, color="gray", lw=0.5)
    ax1.set_xlabel("ZS pulses N")
    ax1.set_title("Fig. 1(a): 512x512, 2000 states")
    ax1.legend(fontsize=8)
    b = result["fig1b"]
    dw = [r["dw_min"] for r in b["rows"] if r["N_for_1_percent"]]
    ax2.loglog(dw, [r["N_for_1_percent"] for r in b["rows"] if r["N_for_1_percent"]], "o-", label="measured")
    ax2.loglog([r["dw_min"] for r in b["rows"]], [r["theory_N"] for r in b["rows"]], "k--",
               label="log(100) / (dw_min g')")
    ax2.set_xlabel("dw_min")
    ax2.set_ylabel("N for 1% relative error")
    ax2.set_title(f"Fig. 1(b): slope {b['loglog_slope']:.2f}")
    ax2.legend(fontsize=8)
    save_figure(fig, path, dpi=120)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/zs_pulse_complexity")
    parser.add_argument("--quick", action="store_true", help="small arrays (smoke run)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.quick:
        result = {"fig1a": fig1a(shape=(32, 32)), "fig1b": fig1b(dw_mins=(5e-3, 2e-3, 1e-3), shape=(32, 32))}
    else:
        result = {"fig1a": fig1a(), "fig1b": fig1b()}
    (out / "fig1.json").write_text(json.dumps(result, indent=1))
    plot(result, out / "fig1.png")
    a = result["fig1a"]
    print(f"Fig. 1(a): mean SP {a['mean_sp']:.4f}, std SP {a['std_sp']:.4f}, tau {a['time_constant']:.0f} pulses")
    print(f"{'N':>6} {'mean offset':>12} {'std offset':>11} {'RMS':>8} {'relative':>9} {'theory rel.':>11}")
    for r in a["rows"]:
        print(f"{r['N']:>6} {r['mean_offset']:>+12.5f} {r['std_offset']:>+11.5f} {r['rms_error']:>8.5f} "
              f"{r['relative_error']:>9.4f} {r['theory_relative_error']:>11.4f}")
    print(f"first N with <= 1% relative error: {a['first_N_at_1_percent']}")
    b = result["fig1b"]
    print(f"Fig. 1(b): log-log slope of N(1%) vs dw_min = {b['loglog_slope']:.3f}")
    for r in b["rows"]:
        print(f"  dw_min {r['dw_min']:.1e}: N = {r['N_for_1_percent']} (doubling grid {r['N_doubling_grid']}), "
              f"theory {r['theory_N']:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
