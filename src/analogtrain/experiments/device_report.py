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


# ----------------------------------------------------------------------------- devices --list
#: shape of the device-to-device draw of ``devices --list`` (SP statistics and pulse traces)
LIST_SHAPE = (64, 64)


def unique_presets(names: list[str] | None = None) -> list[tuple[str, list[str]]]:
    """(name, aliases) of each preset once: aihwkit's presets are registered under
    ``"<Name>PresetDevice"`` and the alias ``"<Name>"`` (the same factory)."""
    from ..devices import PRESETS

    wanted = names or list(PRESETS)
    by_factory: dict[int, tuple[str, list[str]]] = {}
    for name in PRESETS:
        key = id(PRESETS[name])
        if key in by_factory:
            by_factory[key][1].append(name)
        else:
            by_factory[key] = (name, [])
    out = []
    for main, aliases in by_factory.values():
        if main in wanted or any(a in wanted for a in aliases):
            out.append((main, aliases))
    return out


def preset_list_table(names: list[str] | None = None, shape=LIST_SHAPE, seed: int = 0) -> list[dict]:
    """One row per preset (aliases folded): family, weight range, dw_min, number of states
    (range / dw_min, nominal device) and the SP mean and std over a ``shape`` draw of the
    device-to-device variation (seed ``seed``)."""
    from ..devices import get_preset

    rows = []
    for name, aliases in unique_presets(names):
        dev = get_preset(name)
        lo, hi = preset_range(dev)
        sampled = dev.sample(tuple(shape), torch.Generator().manual_seed(seed), dtype=torch.float64)
        sp = torch.as_tensor(sampled.symmetric_point(), dtype=torch.float64).expand(tuple(shape))
        finite = sp[torch.isfinite(sp)]
        rows.append({"preset": name, "aliases": aliases, "family": dev.family, "bounds": (lo, hi),
                     "dw_min": float(dev.dw_min), "states": (hi - lo) / float(dev.dw_min),
                     "sp_mean": float(finite.mean()) if finite.numel() else math.nan,
                     "sp_std": float(finite.std(unbiased=False)) if finite.numel() else math.nan})
    return rows


def format_list(rows: list[dict], shape=LIST_SHAPE) -> str:
    draw = "x".join(str(s) for s in shape)
    header = (f"{'preset':<28} {'alias':<16} {'family':<20} {'states':>8} {'dw_min':>9} "
              f"{'SP mean':>9} {'SP std':>9}   (SP over a {draw} draw)")
    lines = [header]
    for r in rows:
        alias = ", ".join(r["aliases"]) or "-"
        lines.append(f"{r['preset']:<28} {alias:<16} {r['family']:<20} {r['states']:>8.4g} {r['dw_min']:>9.3g} "
                     f"{r['sp_mean']:>9.4g} {r['sp_std']:>9.4g}")
    return "\n".join(lines)


def pulse_response_trace(device, shape=LIST_SHAPE, seed: int = 0, max_pulses: int = 1000, points: int = 200):
    """Mean and std over a ``shape`` draw of the weight under n up pulses, 2 n down pulses and
    n alternating pulses from w = 0 (n = the number of states, at most ``max_pulses``; cycle
    noise included). Returns (pulse numbers, mean, std), float64 lists of about ``points``."""
    gen = torch.Generator().manual_seed(seed)
    sampled = device.sample(tuple(shape), gen, dtype=torch.float64)
    lo, hi = preset_range(device)
    n = int(min(max(math.ceil((hi - lo) / float(device.dw_min)), 20), max_pulses))
    signs = [1.0] * n + [-1.0] * (2 * n) + [1.0 if k % 2 == 0 else -1.0 for k in range(n)]
    every = max(1, len(signs) // points)
    w = torch.zeros(tuple(shape), dtype=torch.float64)
    lo_t, hi_t = (torch.as_tensor(b, dtype=torch.float64) for b in sampled.bounds())
    w = torch.minimum(torch.maximum(w, lo_t), hi_t)
    steps, mean, std = [0], [float(w.mean())], [float(w.std(unbiased=False))]
    up = torch.ones(tuple(shape), dtype=torch.float64)
    for k, s in enumerate(signs, start=1):
        w = sampled.apply_pulse(w, up if s > 0 else -up, gen)
        if k % every == 0 or k == len(signs):
            steps.append(k)
            mean.append(float(w.mean()))
            std.append(float(w.std(unbiased=False)))
    return steps, mean, std


def plot_preset_responses(names: list[str], path, shape=LIST_SHAPE, seed: int = 0, max_pulses: int = 1000,
                          points: int = 401) -> None:
    """Two panels per preset: q+ and q- over the weight range (nominal device, SP marked) and
    the pulse-response trace (mean +- std over a ``shape`` draw, :func:`pulse_response_trace`)."""
    from ..devices import get_preset

    pairs = 2 if len(names) > 1 else 1
    rows = math.ceil(len(names) / pairs)
    fig, axes = plt.subplots(rows, 2 * pairs, figsize=(4.2 * 2 * pairs, 3.0 * rows), squeeze=False)
    for i, name in enumerate(names):
        ax_q, ax_t = axes[i // pairs][2 * (i % pairs)], axes[i // pairs][2 * (i % pairs) + 1]
        dev = get_preset(name)
        lo, hi = preset_range(dev)
        pad = 1e-3 * (hi - lo)
        w = torch.linspace(lo + pad, hi - pad, points, dtype=torch.float64)
        ax_q.plot(w.numpy(), dev.q_plus(w).numpy(), label="q+")
        ax_q.plot(w.numpy(), dev.q_minus(w).numpy(), label="q-")
        sp = float(dev.symmetric_point())
        ax_q.axvline(sp, color="k", lw=0.8, alpha=0.6, label=f"SP = {sp:.3g}")
        ax_q.set_title(f"{name}: response", fontsize=9)
        ax_q.set_xlabel("w")
        ax_q.grid(alpha=0.3)
        ax_q.legend(fontsize=7)
        steps, mean, std = pulse_response_trace(dev, shape, seed, max_pulses)
        m, s = torch.tensor(mean), torch.tensor(std)
        ax_t.plot(steps, mean, lw=1.0, label="mean")
        ax_t.fill_between(steps, (m - s).numpy(), (m + s).numpy(), alpha=0.3, label="+- std")
        ax_t.set_title(f"{name}: pulses ({'x'.join(map(str, shape))} devices)", fontsize=9)
        ax_t.set_xlabel("pulse")
        ax_t.set_ylabel("w")
        ax_t.grid(alpha=0.3)
        ax_t.legend(fontsize=7)
    for ax in list(axes.flat)[2 * len(names):]:
        ax.axis("off")
    save_figure(fig, path)
