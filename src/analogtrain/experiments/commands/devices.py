"""Plot response functions (q+, q-, F, G) and symmetric points of device presets; print the table.

Example:  analogtrain devices --preset hfo2_rram --preset offset_softbounds --out devices.png
Without --preset every preset is shown.
"""

from __future__ import annotations

from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("--preset", action="append", default=[], help="preset name (repeatable; default: all)")
    parser.add_argument("--out", default="devices.png", help="PNG file for the plot (default: devices.png)")


def main(args) -> int:
    from ...devices import PRESETS
    from ..device_report import format_table, plot_presets, preset_table

    names = args.preset or list(PRESETS)
    unknown = [n for n in names if n not in PRESETS]
    if unknown:
        raise ValueError(f"--preset: unknown preset(s) {unknown}; available: {sorted(PRESETS)}")
    print(format_table(preset_table(names)))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_presets(names, out)
    print(f"wrote {out}")
    return 0
