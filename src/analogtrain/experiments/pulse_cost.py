"""Fig. 4 (left) of 2602.21321 at small scale: total pulse cost to reach a target, two-stage vs E-RIDER.

Problem: the noisy quadratic of :mod:`.rider_quadratic` (D = 64, L = 1, w* = 0.2, gradient
noise 1, lr = 0.05) with P a soft-bounds device whose SP is at 0.3 and whose number of states
n varies (dw_min = 2 / n, so the ZS time constant 1/(dw_min g') is n/2 pulses). Target: the
running |mean(W-bar) - w*| (mean of 5 records, one every 100 steps) <= ``target``.

Cost accounting as in the paper (Sec. 5.2): training pulses = steps x BL with BL = 5 pulse
slots per element and step; the two-stage baseline adds its N zero-shifting pulses per
element (Algorithm 4 with Residual Learning as the second stage, Corollary 3.9: O(K + N)).
The measured pulses fired by the expected-update engine are reported too.
``None`` means the target was not reached within ``max_steps``.

Run: ``python -m analogtrain.experiments.pulse_cost --out runs/pulse_cost``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..algorithms import ERIDER, ResidualLearning, TwoStage
from .rider_quadratic import QuadraticProblem, run_quadratic

BL = 5


def steps_to_target(trace, target: float, window: int = 5):
    errs = trace.weight_error
    for i in range(window - 1, len(errs)):
        if sum(errs[i - window + 1: i + 1]) / window <= target:
            return trace.steps[i]
    return None


def measure(states=(200, 1000, 4000, 16000), zs_pulses=(1000, 4000, 16000), target: float = 0.05,
            max_steps: int = 8000, lr: float = 0.05, seed: int = 0) -> dict:
    rows = []
    for n in states:
        problem = QuadraticProblem(dim=64, dw_min=2.0 / n, seed=seed)
        methods = {"E-RIDER": (ERIDER(), 0)}
        for z in zs_pulses:
            methods[f"ZS({z}) + RL"] = (TwoStage(calibration_pulses=z, then=ResidualLearning(gamma=0.5)), z)
        for name, (alg, z) in methods.items():
            state, trace = run_quadratic(alg, problem, max_steps, lr, record_every=100)
            k = steps_to_target(trace, target)
            summary = state.summary()
            rows.append({
                "states": n, "method": name, "zs_pulses": z, "steps": k,
                "total_pulse_slots": (z + BL * k) if k is not None else None,
                "final_error": sum(trace.weight_error[-5:]) / 5,
                "fired_training_pulses_per_element": sum(v["total"] for v in summary["pulses"].values()) / problem.dim,
            })
    return {"target": target, "max_steps": max_steps, "lr": lr, "bl": BL, "rows": rows}


def format_table(result: dict) -> str:
    states = sorted({r["states"] for r in result["rows"]})
    methods = list(dict.fromkeys(r["method"] for r in result["rows"]))
    cell = {(r["states"], r["method"]): r for r in result["rows"]}
    lines = ["| method | " + " | ".join(f"{n} states" for n in states) + " |",
             "|---|" + "---|" * len(states)]
    for m in methods:
        vals = []
        for n in states:
            r = cell[(n, m)]
            vals.append(f"{r['total_pulse_slots']:,}" if r["total_pulse_slots"] is not None
                        else f"not reached ({r['final_error']:.3f})")
        lines.append(f"| {m} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    import torch

    parser = argparse.ArgumentParser(description="Fig. 4 left of 2602.21321 at small scale")
    parser.add_argument("--out", default="runs/pulse_cost")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = measure()
    (out / "pulse_cost.json").write_text(json.dumps(result, indent=1))
    table = format_table(result)
    (out / "table.md").write_text(table + "\n")
    print(f"pulse slots per element to reach |mean W-bar - w*| <= {result['target']} (N + {BL} x steps):")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
