"""The ``analogtrain`` command: ``run``, ``sweep``, ``report``, ``devices``, ``demo``, ...

Subcommands are plugged in by module path: add ``"package.module"`` to ``SUBCOMMANDS``; the
module defines ``add_arguments(parser)`` and ``main(args) -> int`` (exit code), optionally
``NAME`` (default: the last part of the module path) and its docstring's first line is the help.
Building the parser imports every subcommand module, so these import nothing heavy at module
level (torch, the run loop, ...: import those inside ``main``); ``analogtrain --help`` then
answers without importing torch (tests/test_startup.py).
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: module paths of the subcommands, in the order ``analogtrain --help`` lists them
SUBCOMMANDS: list[str] = [
    "analogtrain.experiments.commands.demo",
    "analogtrain.experiments.commands.run",
    "analogtrain.experiments.commands.sweep",
    "analogtrain.experiments.commands.report",
    "analogtrain.experiments.commands.devices",
    "analogtrain.experiments.calibrate",
]


def _command_name(module, path: str) -> str:
    return getattr(module, "NAME", path.rsplit(".", 1)[-1].replace("_", "-"))


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="analogtrain",
        description="Train and measure neural networks on simulated analog in-memory hardware.")
    parser.add_argument("--version", action="version", version=f"analogtrain {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for path in SUBCOMMANDS:
        module = importlib.import_module(path)
        doc = (module.__doc__ or "").strip().splitlines()
        help_line = doc[0] if doc else ""
        p = sub.add_parser(_command_name(module, path), help=help_line,
                           description=(module.__doc__ or "").strip(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_main=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_main", None) is None:
        parser.print_help()
        return 2
    from .experiments.runner import RunDiverged, RunLocked

    try:
        return int(args._main(args) or 0)
    except RunDiverged as exc:
        print(f"analogtrain {args.command}: diverged: {exc} (rerun with --resume after changing the config, "
              f"or inspect metrics.jsonl)", file=sys.stderr)
        return 3
    except RunLocked as exc:
        print(f"analogtrain {args.command}: error: {exc}", file=sys.stderr)
        return 4
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"analogtrain {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (metrics and the last checkpoint are on disk; rerun with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
