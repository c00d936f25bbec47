"""SP tracking on a strongly convex quadratic (2602.21321 Thm 3.7 setting; reference test 12).

f(W) = (L/2) ||W - W*||^2 with noisy gradients g = L (W-bar - W*) + sigma xi, xi ~ N(0, I),
W of shape (D, 1). Any algorithm state is driven through its public interface: the gradient
is taken at ``state.effective_weight()`` and handed to ``state.step(x, d, lr)`` with x = 1
and d = g^T, so the desired increment of one step is -lr g.

``run_quadratic`` returns the trajectory of |mean(W-bar) - w*|, mean(Q) and mean(P read).
``compare`` runs RL (Q = 0), RIDER and E-RIDER on the same problem; it is what the test, the
``rider_quadratic.toml`` config and the reproduction document use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..algorithms.rider import ERIDER, RIDER
from ..config import AnalogConfig, TileSpec
from ..devices import Ideal, SoftBounds
from ..periphery import IO


@dataclass
class QuadraticProblem:
    """Problem and devices. P's SP is ``p_asymmetry * p_tau`` (SoftBounds(tau, asymmetry))."""

    dim: int = 256
    curvature: float = 1.0
    w_star: float = 0.2
    noise: float = 1.0
    p_tau: float = 1.0
    p_asymmetry: float = 0.3
    w_tau: float = 1.0
    w_asymmetry: float = 0.0
    w_ideal: bool = False
    dw_min: float = 1e-3
    engine: str = "expected"
    seed: int = 0

    def config(self, algorithm) -> AnalogConfig:
        return AnalogConfig(
            algorithm=algorithm,
            device={
                "W": (Ideal(dw_min=self.dw_min) if self.w_ideal
                      else SoftBounds(tau=self.w_tau, asymmetry=self.w_asymmetry, dw_min=self.dw_min)),
                "P": SoftBounds(tau=self.p_tau, asymmetry=self.p_asymmetry, dw_min=self.dw_min),
            },
            io=IO.perfect(),
            engine=self.engine,
        )

    @property
    def p_symmetric_point(self) -> float:
        return self.p_asymmetry * self.p_tau


@dataclass
class QuadraticTrace:
    steps: list[int] = field(default_factory=list)
    weight_error: list[float] = field(default_factory=list)  # |mean(W-bar) - w*|
    q_mean: list[float] = field(default_factory=list)
    p_mean: list[float] = field(default_factory=list)
    w_mean: list[float] = field(default_factory=list)

    def final(self, last: int = 1) -> dict:
        """Averages of the last ``last`` records."""
        def avg(v):
            return sum(v[-last:]) / len(v[-last:])
        return {"weight_error": avg(self.weight_error), "q_mean": avg(self.q_mean),
                "p_mean": avg(self.p_mean), "w_mean": avg(self.w_mean)}


def run_quadratic(algorithm, problem: QuadraticProblem, steps: int, lr: float, record_every: int = 100,
                  state=None) -> tuple[object, QuadraticTrace]:
    """Run ``steps`` noisy-gradient steps; returns (state, trace)."""
    if state is None:
        spec = TileSpec((problem.dim, 1), problem.config(algorithm), seed=problem.seed,
                        init_weight=torch.zeros(problem.dim, 1))
        state = algorithm.init(spec)
    gen = torch.Generator().manual_seed(problem.seed + 12345)
    x = torch.ones(1, 1)
    w_star = torch.full((problem.dim, 1), problem.w_star)
    trace = QuadraticTrace()
    for k in range(steps):
        w_bar = state.effective_weight()
        g = problem.curvature * (w_bar - w_star) + problem.noise * torch.randn(w_bar.shape, generator=gen)
        state.step(x, g.transpose(0, 1), lr)
        if (k + 1) % record_every == 0 or k + 1 == steps:
            w_bar = state.effective_weight()
            trace.steps.append(k + 1)
            trace.weight_error.append(abs(float(w_bar.mean()) - problem.w_star))
            q = state.buffers.get("Q")
            trace.q_mean.append(float(q.mean()) if q is not None else 0.0)
            trace.p_mean.append(float(state.arrays["P"].read().mean()) if "P" in state.arrays else 0.0)
            trace.w_mean.append(float(state.arrays["W"].read().mean()))
    return state, trace


def compare(problem: QuadraticProblem | None = None, steps: int = 4000, lr: float = 0.05,
            algorithms: dict | None = None, record_every: int = 100) -> dict[str, QuadraticTrace]:
    """RL (RIDER with eta = 0, i.e. Q = 0), RIDER and E-RIDER with default step sizes."""
    problem = problem or QuadraticProblem()
    algorithms = algorithms or {"RL": RIDER(eta=0.0), "RIDER": RIDER(), "E-RIDER": ERIDER()}
    return {name: run_quadratic(alg, problem, steps, lr, record_every)[1] for name, alg in algorithms.items()}


def drift_study(steps: int = 200_000, dim: int = 32, lr: float = 0.05, record_every: int = 10_000) -> dict:
    """The issue-4 investigation: does plain RIDER let P and Q drift together?

    alpha = lr = 0.05 throughout; RIDER with eta ~ alpha, with Theorem 3.7's ordering
    (eta << beta << alpha), E-RIDER with a small chopper probability, and two controls that
    remove the suspected cause, the -beta |P - Q| G_w(W) term of the W update: an ideal W
    device (G_w = 0) and a W device whose SP sits at w* (G_w(w*) = 0).
    """
    base = QuadraticProblem(dim=dim)
    runs = {
        "RL (Q = 0)": (RIDER(eta=0.0), base),
        "RIDER eta=alpha": (RIDER(eta=lr), base),
        "RIDER eta=1e-2 alpha, beta=0.1 alpha": (RIDER(eta=5e-4, transfer_lr=0.1), base),
        "RIDER eta=2e-3 alpha, beta=0.02 alpha": (RIDER(eta=1e-4, transfer_lr=0.02), base),
        "E-RIDER p=0.01, eta=1e-2 alpha, beta=0.1 alpha": (ERIDER(eta=5e-4, transfer_lr=0.1, chop_prob=0.01), base),
        "E-RIDER defaults": (ERIDER(), base),
        "RIDER eta=alpha, ideal W": (RIDER(eta=lr), QuadraticProblem(dim=dim, w_ideal=True)),
        "RIDER eta=alpha, W's SP at w*": (RIDER(eta=lr), QuadraticProblem(dim=dim, w_asymmetry=base.w_star / base.w_tau)),
    }
    out = {}
    for name, (alg, problem) in runs.items():
        _, tr = run_quadratic(alg, problem, steps, lr, record_every)
        out[name] = {"steps": tr.steps, "weight_error": tr.weight_error, "q_mean": tr.q_mean,
                     "p_mean": tr.p_mean, "w_mean": tr.w_mean}
    return {"p_symmetric_point": base.p_symmetric_point, "w_star": base.w_star, "lr": lr, "runs": out}


def chopper_ablation(chop_probs=(0.0, 0.001, 0.01, 0.05, 0.2, 0.5), steps: int = 20_000, dim: int = 32,
                     lr: float = 0.05, seeds=(0, 1)) -> dict:
    """Fig. 5 on the quadratic: E-RIDER (defaults otherwise) vs the chopper probability p
    (p = 0 is RIDER). Returns, per p, the last-quarter means of |mean W-bar - w*| and |mean Q - SP|."""
    rows = []
    for p in chop_probs:
        errs, qerrs = [], []
        for seed in seeds:
            problem = QuadraticProblem(dim=dim, seed=seed)
            _, tr = run_quadratic(ERIDER(chop_prob=p), problem, steps, lr, record_every=max(steps // 40, 1))
            last = tr.final(10)
            errs.append(last["weight_error"])
            qerrs.append(abs(last["q_mean"] - problem.p_symmetric_point))
        rows.append({"chop_prob": p, "weight_error": sum(errs) / len(errs), "q_error": sum(qerrs) / len(qerrs)})
    return {"steps": steps, "lr": lr, "seeds": list(seeds), "rows": rows}


def main(argv=None) -> int:
    import argparse
    import json
    from pathlib import Path

    parser = argparse.ArgumentParser(description="RIDER / E-RIDER on a noisy quadratic with P's SP off zero")
    parser.add_argument("--out", default="runs/rider_quadratic")
    parser.add_argument("--steps", type=int, default=200_000, help="steps of the drift study")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    short = {k: tr.final(10) for k, tr in compare(steps=4000, record_every=100).items()}
    study = drift_study(steps=args.steps, record_every=max(args.steps // 20, 1))
    ablation = chopper_ablation()
    (out / "rider_quadratic.json").write_text(json.dumps({"compare_4000_steps": short, "drift_study": study,
                                                          "chopper_ablation": ablation}, indent=1))
    print("4000 steps, lr 0.05, P's SP 0.3, w* 0.2 (last 1000 steps averaged):")
    for k, v in short.items():
        print(f"  {k:8s} |mean W-bar - w*| {v['weight_error']:.4f}  mean Q {v['q_mean']:+.4f}  mean P {v['p_mean']:+.4f}")
    print(f"drift study, {args.steps} steps (values at 1/4, 1/2 and the end):")
    for k, v in study["runs"].items():
        idx = [len(v["steps"]) // 4 - 1, len(v["steps"]) // 2 - 1, -1]
        print(f"  {k:48s} err " + " ".join(f"{v['weight_error'][i]:.3f}" for i in idx)
              + "  Q " + " ".join(f"{v['q_mean'][i]:+.3f}" for i in idx) + f"  W {v['w_mean'][-1]:+.3f}")
    print(f"chopper ablation ({ablation['steps']} steps, seeds {ablation['seeds']}):")
    for r in ablation["rows"]:
        print(f"  p = {r['chop_prob']:<6g} |mean W-bar - w*| {r['weight_error']:.4f}  |mean Q - SP| {r['q_error']:.4f}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
