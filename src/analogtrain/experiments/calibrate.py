"""Zero-shift a simulated array and print the SP-estimate error table (2602.21321 Sec. 2, Fig. 1a).

Example:  analogtrain calibrate --device softbounds_2000 --pulses 8000 --shape 512x512 --init 0.2
Runs stochastic ZS (Algorithm 1; --cyclic: alternating pulses) on a fresh array of the preset,
records the error of the running estimate W_n against the true per-element SP at the table's
pulse counts (--pulses N1 N2 ...; a single N gives N/16, N/8, ..., N), prints N, the array-mean
error, the std offset, the per-element RMS error, the relative error (|mean error| / initial
mean offset) and the small-step theory of reference/sp_tracking.md Sec. 2.5 (mean error
e_0 (1 - dw_min g')^N per element, RMS floor sqrt(dw_min F^2 / (2 g'))), and writes a plot of
error vs N.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

NAME = "calibrate"


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--shape must look like 512x512, got {text!r}") from None
    if not shape or any(s <= 0 for s in shape):
        raise ValueError(f"--shape must have positive sizes, got {text!r}")
    return shape


def add_arguments(parser) -> None:
    parser.add_argument("--device", default="softbounds_2000", help="device preset (default: softbounds_2000)")
    parser.add_argument("--pulses", type=int, nargs="+", default=[8000], help="pulse budget(s) N per element")
    parser.add_argument("--cyclic", action="store_true", help="cyclic (alternating) ZS instead of stochastic")
    parser.add_argument("--shape", default="512x512", help="array shape (default 512x512)")
    parser.add_argument("--init", type=float, default=0.0, help="initial state of every element (default 0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the array and the pulses")
    parser.add_argument("--torch-device", default="cpu", help="cpu, cuda, ... (default cpu)")
    parser.add_argument("--out", default="calibrate.png", help="plot file (a .json with the table is written beside)")


def table_points(pulses: list[int]) -> list[int]:
    """The pulse counts of the table: the given ones, or N/16 ... N for a single N."""
    if any(n <= 0 for n in pulses):
        raise ValueError(f"--pulses must be > 0, got {pulses}")
    if len(pulses) > 1:
        return sorted(set(pulses))
    n = pulses[0]
    pts = sorted({max(1, n // 2**k) for k in range(5)})
    return pts


def run_calibration(preset: str, pulses: list[int], cyclic: bool, shape, init: float, seed: int,
                    torch_device: str = "cpu") -> dict:
    """Run ZS once up to max(pulses), recording the errors at the table points and a log grid."""
    import torch

    from .. import theory
    from ..arrays import AnalogArray
    from ..calibration import zero_shift
    from ..devices import get_preset

    device = get_preset(preset)
    array = AnalogArray(shape, device, seed=seed, init=init, torch_device=torch_device)
    points = table_points(pulses)
    n_max = points[-1]
    grid = sorted({round(v) for v in torch.logspace(0, math.log10(n_max), 40).tolist()} | set(points))
    initial_error = (array.state - array.symmetric_point()).double()
    res = zero_shift(array, n_max, mode="cyclic" if cyclic else "stochastic", checkpoints=grid)
    sampled = array.device
    floor = float(theory.zs_stationary_mse(sampled).mean()) ** 0.5
    rows = []
    for n, mean_err, rms in zip(res.checkpoints, res.mean_errors, res.rms_errors):
        pred = float(theory.zs_mean_error(sampled, initial_error, n).mean())
        rows.append({"N": n, "mean_error": mean_err, "rms_error": rms,
                     "relative_error": abs(mean_err) / abs(res.initial_mean_offset) if res.initial_mean_offset else math.inf,
                     "theory_mean_error": pred, "theory_rms_floor": floor, "in_table": n in points})
    return {
        "device": preset, "shape": list(shape), "mode": res.mode, "init": init, "seed": seed,
        "dw_min": float(torch.as_tensor(sampled.dw_min).double().mean()),
        "time_constant": float(theory.zs_time_constant(sampled).mean()),
        "mean_sp": float(res.true_sp.double().mean()), "std_sp": float(res.true_sp.double().std()),
        "final": res.table_row(), "rows": rows,
    }


def format_table(result: dict) -> str:
    lines = [(f"ZS ({result['mode']}) on {result['device']} {'x'.join(map(str, result['shape']))}: "
             f"mean SP {result['mean_sp']:+.4f}, std SP {result['std_sp']:.4f}, dw_min {result['dw_min']:.3g}, "
             f"time constant 1/(dw_min g') = {result['time_constant']:.0f} pulses"),
             f"{'N':>8} {'mean error':>12} {'RMS error':>11} {'relative':>10} {'theory mean':>12} {'theory RMS floor':>17}"]
    for r in result["rows"]:
        if r["in_table"]:
            lines.append(f"{r['N']:>8d} {r['mean_error']:>+12.5f} {r['rms_error']:>11.5f} {r['relative_error']:>10.4f} "
                         f"{r['theory_mean_error']:>+12.5f} {r['theory_rms_floor']:>17.5f}")
    lines.append(f"std offset at N = {result['final']['N']}: {result['final']['std_error']:+.5f}")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from .plots import plt, save_figure

    rows = result["rows"]
    n = [r["N"] for r in rows]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.loglog(n, [max(abs(r["mean_error"]), 1e-12) for r in rows], "o-", ms=3, label="|mean error| (measured)")
    ax.loglog(n, [r["rms_error"] for r in rows], "s-", ms=3, label="RMS error (measured)")
    if result["mode"] == "stochastic":
        ax.loglog(n, [max(abs(r["theory_mean_error"]), 1e-12) for r in rows], "k--", label="e0 (1 - dw g')^N")
        ax.axhline(rows[0]["theory_rms_floor"], color="gray", ls=":", label="RMS floor sqrt(dw F^2 / 2g')")
    ax.set_xlabel("pulses per element N")
    ax.set_ylabel("SP estimate error")
    ax.set_title(f"zero-shifting on {result['device']} ({result['mode']})")
    ax.legend(fontsize=8)
    save_figure(fig, path, dpi=120)


def main(args) -> int:
    result = run_calibration(args.device, args.pulses, args.cyclic, _shape(args.shape), args.init, args.seed,
                             args.torch_device)
    print(format_table(result))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot(result, out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0
