"""Plot response functions (q+, q-, F, G) and symmetric points of device presets; print the table.

Example:  analogtrain devices --preset hfo2_rram --preset offset_softbounds --out devices.png
Without --preset every preset is shown.

``analogtrain devices --list [--out device_responses.png]`` prints every preset once (aihwkit's
``<Name>PresetDevice`` with its alias ``<Name>``): family, number of states (range / dw_min),
dw_min and the SP mean and std over a 64 x 64 draw of the device-to-device variation, and writes
the response plot (q+ / q- and the pulse-response trace, mean +- std over 64 x 64 devices, per
preset) to --out (default: device_responses.png in the current directory).
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_OUT = "devices.png"
DEFAULT_LIST_OUT = "device_responses.png"


def add_arguments(parser) -> None:
    parser.add_argument("--preset", action="append", default=[], help="preset name (repeatable; default: all)")
    parser.add_argument("--list", action="store_true",
                        help="list every preset once (family, states, SP mean/std over a 64x64 draw) and plot q+/q- "
                             f"and pulse-response traces (default --out: {DEFAULT_LIST_OUT})")
    parser.add_argument("--out", default=None,
                        help=f"PNG file for the plot (default: {DEFAULT_OUT}; with --list {DEFAULT_LIST_OUT}; "
                             "in the current directory)")


def main(args) -> int:
    from ...devices import PRESETS

    names = args.preset or list(PRESETS)
    unknown = [n for n in names if n not in PRESETS]
    if unknown:
        raise ValueError(f"--preset: unknown preset(s) {unknown}; available: {sorted(PRESETS)}")
    if getattr(args, "list", False):
        from ..device_report import format_list, plot_preset_responses, preset_list_table

        rows = preset_list_table(args.preset or None)
        print(format_list(rows))
        out = Path(args.out or DEFAULT_LIST_OUT)
        out.parent.mkdir(parents=True, exist_ok=True)
        plot_preset_responses([r["preset"] for r in rows], out)
        print(f"wrote {out.resolve()}")
        return 0
    from ..device_report import format_table, plot_presets, preset_table

    print(format_table(preset_table(names)))
    out = Path(args.out or DEFAULT_OUT)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_presets(names, out)
    print(f"wrote {out}")
    return 0
