"""Tables and plots of device presets: q+, q-, F = (q- + q+)/2, G = (q- - q+)/2 and the SP."""

from __future__ import annotations

import math

import torch

from .plots import plt, save_figure


def preset_range(device) -> tuple[float, float]:
    """The weight range to show: the bounds, or [-1, 1] for unbounded devices."""
    lo, hi = (float(torch.as_tensor(b).min()) for b in device.bounds())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return -1.0, 1.0
    return lo, hi


def preset_table(names: list[str] | None = None) -> list[dict]:
    """One row per preset: family, bounds, dw_min, number of states, SP, description."""
    from ..devices import PRESETS, get_preset

    rows = []
    for name in names or list(PRESETS):
        dev = get_preset(name)
        lo, hi = preset_range(dev)
        doc = (PRESETS[name].__doc__ or "").strip().split("\n")[0]
        rows.append({"preset": name, "family": dev.family, "bounds": (lo, hi), "dw_min": float(dev.dw_min),
                     "states": (hi - lo) / float(dev.dw_min), "sp": float(dev.symmetric_point()),
                     "description": doc})
    return rows


def format_table(rows: list[dict]) -> str:
    lines = [f"{'preset':<20} {'family':<12} {'bounds':>16} {'dw_min':>9} {'states':>8} {'SP':>8}  description"]
    for r in rows:
        bounds = f"[{r['bounds'][0]:.3g}, {r['bounds'][1]:.3g}]"
        lines.append(f"{r['preset']:<20} {r['family']:<12} {bounds:>16} {r['dw_min']:>9.3g} {r['states']:>8.4g} "
                     f"{r['sp']:>8.4g}  {r['description']}")
    return "\n".join(lines)


def plot_presets(names: list[str], path, points: int = 401) -> None:
    """One panel per preset: q+, q-, F, G over the weight range and a marker at the SP."""
    from ..devices import get_preset

    cols = min(len(names), 3)
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        dev = get_preset(name)
        lo, hi = preset_range(dev)
        pad = 1e-3 * (hi - lo)
        w = torch.linspace(lo + pad, hi - pad, points, dtype=torch.float64)
        for label, fn, style in (("q+", dev.q_plus, "-"), ("q-", dev.q_minus, "-"), ("F", dev.F, "--"),
                                 ("G", dev.G, ":")):
            ax.plot(w.numpy(), fn(w).numpy(), style, label=label)
        sp = float(dev.symmetric_point())
        ax.axvline(sp, color="k", lw=0.8, alpha=0.6)
        ax.axhline(0.0, color="grey", lw=0.5)
        ax.plot([sp], [0.0], "ko", ms=4, label=f"SP = {sp:.3g}")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("w")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    save_figure(fig, path)
