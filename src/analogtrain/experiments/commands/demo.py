"""Compare training algorithms on the bundled MNIST subset with a device whose SP is off zero.

Rows (experiments/demo.py ROWS): Digital SGD, Analog SGD, TT-v1, Residual Learning, E-RIDER
on the 784-256-128-10 sigmoid MLP, soft-bounds device tau = 0.6 with SP = 0.12 (preset
offset_softbounds, no calibration), expected-update engine. A few minutes on 2 CPU cores.
Prints a table and writes results.md, results.json and accuracy.png into --out.
"""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="demo_out", help="output directory (default: demo_out)")
    parser.add_argument("--epochs", type=int, help="epochs per row (default: 10)")
    parser.add_argument("--train-samples", type=int, help="cap on training images (default: all 4,000)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a value of every row's config, e.g. --set engine.name=stochastic")
    parser.add_argument("--resume", action="store_true", help="keep finished rows, continue interrupted ones")
    parser.add_argument("--quiet", action="store_true", help="print only the final table")


def main(args) -> int:
    from ..demo import format_table, run_demo

    if args.epochs is not None and args.epochs < 1:
        raise ValueError(f"--epochs must be >= 1, got {args.epochs}")
    results = run_demo(args.out, epochs=args.epochs, train_samples=args.train_samples, overrides=args.overrides,
                       quiet=args.quiet, resume=args.resume)
    print()
    print(format_table(results))
    print(f"\nwrote {args.out}/results.md, results.json and accuracy.png")
    return 0
