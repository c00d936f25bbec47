"""Side-by-side speed benchmark: analogtrain and aihwkit 1.1.0 in one sitting, alternating.

    python benchmarks/side_by_side.py                       # every suite, 2 alternations per case
    python benchmarks/side_by_side.py --quick               # short timed runs, one alternation
    python benchmarks/side_by_side.py --suites mlp --batches 8 --algos sgd,ttv2
    python benchmarks/side_by_side.py --suites scan --sizes 256,1024,4096 --json out.json

Every case runs in a fresh subprocess with one thread (ours: this interpreter; aihwkit: the peer
venv's, ``--aihwkit-python``, default ``~/.cache/aihwkit-peer/bin/python`` when it exists, else
ours alone), ours and aihwkit alternating ``--rounds`` times, so that both see the same machine
state. Suites:

- ``mlp``: MLP 784-256-128-10 (sigmoid, log-softmax + NLL, x ~ U(0, 1), random labels, lr
  0.05), batch 1 / 8 / 64, Analog SGD and TT-v1 / TT-v2 / c-TTv2 / AGAD with aihwkit's default
  SoftBounds device and IO (ours: preset ``aihwkit_softbounds``, ``IO()``, stochastic engine BL
  31; compounds mirror aihwkit field by field as in ``experiments/aihwkit_regression.py``:
  fast_lr 0.2 absolute, transfer every mini-batch, one column per transfer).
- ``fcn``: the same MLP at 2602.21321's FCN settings (HfO2 preset scaled, Table 6 IO, update BL
  5, batch 10, one column per transfer; ``experiments/offset_robustness.py``'s cell config,
  reference offset std 0.3) for TT-v2, c-TTv2 and AGAD. The aihwkit side approximates it: the
  same compounds on a SoftBoundsDevice given the HfO2 table's parameters, update BL 5, the
  Table 6 output noise / bound (see ``aihwkit_worker.py``; labelled in the table).
- ``scan``: one N x N layer (no bias, 0.5 x squared error, lr 1/N), N = 256 ... 4096, batch 8
  and 64, Analog SGD, default device and IO.
- ``kernel`` (ours only; aihwkit has no update-only entry point): the stochastic update alone on
  an N x N array with inputs that fire many pulses (``run_kernel``): pulses/s of the engine.

Printed per case: steps/s (median of the timed runs of all rounds) for both, their ratio,
update pulses per step (ours: counted on the gradient array; aihwkit: the expected count of its
rule recomputed from the observed x and d, see ``aihwkit_worker.py``), pulses/s and peak RSS of
each worker process; and once, the CPU model, the load average before every case and the
versions. Figures only: nothing here fails on time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEER_PYTHON = Path.home() / ".cache" / "aihwkit-peer" / "bin" / "python"
ALGOS = ("sgd", "ttv1", "ttv2", "cttv2", "agad")
#: analogtrain names of the mirrored aihwkit compounds (experiments.aihwkit_regression)
OURS_NAME = {"sgd": "analog_sgd", "ttv1": "ttv1", "ttv2": "ttv2", "cttv2": "cttv2", "agad": "agad"}
#: 2602.21321 FCN compounds (offset_robustness.ALGORITHMS for TT-v2 / AGAD; c-TTv2 library defaults)
#: (fast step lr * 1 on both sides: aihwkit_worker gives the chopped compounds fast_lr = lr absolute)
FCN_METHODS = {"ttv2": {"name": "TikiTakaV2"}, "cttv2": {"name": "ChoppedTikiTakaV2", "scale_fast_lr": True},
               "agad": {"name": "AGAD", "chop_prob": 0.1, "scale_fast_lr": True}}


# ---------------------------------------------------------------------------------- our worker
def _ours_model(case):
    import torch
    from torch import nn

    import analogtrain as at
    from analogtrain.experiments.aihwkit_regression import aihwkit_algorithm

    torch.manual_seed(0)
    if case.get("settings") == "fcn_2602":
        from analogtrain.experiments.config import resolve
        from analogtrain.experiments.offset_robustness import cell_config
        from analogtrain.experiments.runner import build_run

        algorithm = dict(FCN_METHODS[case["algo"]], columns_per_transfer=1)  # the paper: one column per step
        cfg = resolve(cell_config(algorithm, 0.0, 0.3, epochs=1, seed=0))
        _, model, opt, _, _ = build_run(cfg, torch.device("cpu"))
        return model, nn.NLLLoss(), opt, 784
    cfg = at.AnalogConfig(algorithm=aihwkit_algorithm(OURS_NAME[case["algo"]]),
                          device=at.devices.get_preset("aihwkit_softbounds"), io=at.IO(), transfer_io=at.IO(),
                          engine="stochastic", engine_kwargs={"bit_length": 31})
    if case["model"] == "mlp":
        net = nn.Sequential(nn.Linear(784, 256), nn.Sigmoid(), nn.Linear(256, 128), nn.Sigmoid(),
                            nn.Linear(128, 10), nn.LogSoftmax(dim=1))
        lossf, n_in = nn.NLLLoss(), 784
    else:
        net = nn.Sequential(nn.Linear(case["n"], case["n"], bias=False))
        lossf, n_in = (lambda out, y: 0.5 * ((out - y) ** 2).sum(1).mean()), case["n"]
    net = at.convert(net, cfg, seed=0)
    return net, lossf, at.optim.AnalogSGD(net.parameters(), lr=case["lr"]), n_in


def _update_pulses(net) -> float:
    """Pulses on the arrays that take the gradient update (W for Analog SGD, P for compounds)."""
    total = 0.0
    for m in net.modules():
        arrays = getattr(m, "arrays", None)
        if arrays:
            arr = arrays["P"] if "P" in arrays else arrays["W"]
            total += arr.pulse_count["total"]
    return total


def run_ours(case) -> dict:
    import torch

    torch.set_num_threads(1)
    net, lossf, opt, n_in = _ours_model(case)
    g = torch.Generator().manual_seed(0)
    bs = case["batch"]
    xs = [torch.rand(bs, n_in, generator=g) for _ in range(16)]
    if case["model"] == "mlp":
        ys = [torch.randint(0, 10, (bs,), generator=g) for _ in range(16)]
    else:
        ys = [torch.randn(bs, case["n"], generator=g) * 0.1 for _ in range(16)]
    counter = [0]

    def steps(n):
        for _ in range(n):
            k = counter[0] % len(xs)
            counter[0] += 1
            opt.zero_grad()
            lossf(net(xs[k]), ys[k]).backward()
            opt.step()

    steps(5)
    t0 = time.perf_counter()
    steps(3)
    n = max(3, int(case["min_time"] / max((time.perf_counter() - t0) / 3, 1e-6)))
    rates = []
    p0, s0 = _update_pulses(net), counter[0]
    for _ in range(case["repeats"]):
        t0 = time.perf_counter()
        steps(n)
        rates.append(n / (time.perf_counter() - t0))
    pulses = (_update_pulses(net) - p0) / (counter[0] - s0)
    return {"steps_per_s": statistics.median(rates), "runs": rates, "steps_per_run": n, "pulses_per_step": pulses,
            "pulses_kind": "counted on the gradient array",
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "torch": torch.__version__}


# ---------------------------------------------------------------------------------- the driver
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def worker(side: str, case: dict, peer: Path | None) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    if side == "ours":
        cmd = [sys.executable, str(HERE / "side_by_side.py"), "--worker", json.dumps(case)]
    else:
        cmd = [str(peer), str(HERE / "aihwkit_worker.py"), json.dumps(case)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail)}
    return json.loads(lines[-1])


def cases(args) -> list[dict]:
    out = []
    common = {"min_time": args.min_time, "repeats": args.repeats}
    if "mlp" in args.suites:
        for algo in args.algos:
            for bs in args.batches:
                out.append({"suite": "mlp", "model": "mlp", "algo": algo, "batch": bs, "lr": 0.05,
                            "settings": "defaults", **common})
    if "fcn" in args.suites:
        for algo in ("ttv2", "cttv2", "agad"):
            out.append({"suite": "fcn", "model": "mlp", "algo": algo, "batch": 10, "lr": 0.1,
                        "settings": "fcn_2602", **common})
    if "scan" in args.suites:
        for n in args.sizes:
            for bs in (8, 64):
                # lr 1/N keeps lr * lambda_max(x x^T) ~ N / (3N) below 2 for x ~ U(0, 1)^N (no divergence)
                out.append({"suite": "scan", "model": "linear", "n": n, "algo": "sgd", "batch": bs,
                            "lr": 1.0 / n, "settings": "defaults", **common})
    if "kernel" in args.suites:
        for n in args.sizes:
            for bs in (8, 64):
                out.append({"suite": "kernel", "n": n, "batch": bs, **common})
    return out


def run_kernel(case) -> dict:
    """Update-only throughput of the stochastic engine on one N x N array (aihwkit's default
    SoftBounds device incl. 30 % multiplicative cycle noise, BL 31), with inputs that fire many
    pulses: x ~ U(-1, 1), d ~ U(-0.1, 0.1), lr 0.05 / dw_min 1e-3."""
    import torch

    import analogtrain as at

    torch.set_num_threads(1)
    n, bs = case["n"], case["batch"]
    arr = at.AnalogArray((n, n), at.devices.get_preset("aihwkit_softbounds"), engine="stochastic",
                         engine_kwargs={"bit_length": 31}, seed=0)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(bs, n, generator=g) * 2 - 1
    d = (torch.rand(bs, n, generator=g) * 2 - 1) * 0.1
    arr.update_outer(x, d, 0.05)
    rates, pulses = [], []
    for _ in range(case["repeats"]):
        p0, t0, k = arr.pulse_count["total"], time.perf_counter(), 0
        while time.perf_counter() - t0 < case["min_time"] or k == 0:
            arr.update_outer(x, d, 0.05)
            k += 1
        dt = time.perf_counter() - t0
        rates.append(k / dt)
        pulses.append((arr.pulse_count["total"] - p0) / k)
    return {"steps_per_s": statistics.median(rates), "runs": rates, "steps_per_run": k,
            "pulses_per_step": statistics.mean(pulses), "pulses_kind": "counted",
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "torch": torch.__version__}


def summarise(runs: list[dict]) -> dict:
    good = [r for r in runs if "error" not in r]
    if not good:
        return {"error": runs[0].get("error", "no result") if runs else "not run"}
    rates = [x for r in good for x in r["runs"]]
    sps = statistics.median(rates)
    pulses = statistics.mean(r["pulses_per_step"] for r in good)
    return {"steps_per_s": sps, "min": min(rates), "max": max(rates), "pulses_per_step": pulses,
            "pulses_per_s": pulses * sps, "max_rss_mb": max(r["max_rss_mb"] for r in good)}


def fmt(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--suites", default="mlp,fcn,scan,kernel")
    p.add_argument("--algos", default=",".join(ALGOS))
    p.add_argument("--batches", default="1,8,64")
    p.add_argument("--sizes", default="256,512,1024,2048,4096")
    p.add_argument("--rounds", type=int, default=2, help="alternations ours / aihwkit per case")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per worker")
    p.add_argument("--min-time", type=float, default=1.0, help="seconds per timed run")
    p.add_argument("--quick", action="store_true", help="min-time 0.3, one round")
    p.add_argument("--aihwkit-python", default=str(PEER_PYTHON) if PEER_PYTHON.exists() else "")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.worker:
        case = json.loads(args.worker)
        print(json.dumps(run_kernel(case) if case.get("suite") == "kernel" else run_ours(case)))
        return 0
    for name in ("suites", "algos"):
        setattr(args, name, [s for s in getattr(args, name).split(",") if s])
    bad = [a for a in args.algos if a not in ALGOS]
    if bad:
        raise SystemExit(f"--algos: unknown {bad}; allowed {list(ALGOS)}")
    args.batches = [int(b) for b in args.batches.split(",")]
    args.sizes = [int(n) for n in args.sizes.split(",")]
    if args.quick:
        args.min_time, args.rounds = min(args.min_time, 0.3), 1
    peer = Path(args.aihwkit_python) if args.aihwkit_python else None
    if peer is not None and not peer.exists():
        raise SystemExit(f"--aihwkit-python: {peer} does not exist")
    import torch

    print(f"# cpu: {cpu_model()} ({os.cpu_count()} logical cores), python {platform.python_version()}, "
          f"torch {torch.__version__}, one thread per worker, load average before: {os.getloadavg()}")
    print("# aihwkit: " + (str(peer) if peer else "not found (ours only; pass --aihwkit-python)"))
    try:
        from analogtrain.pulses import numba_kernels
        print(f"# analogtrain kernels: {'numba ' + numba_kernels.numba.__version__ if numba_kernels.kernels_enabled() else 'torch reference'}")
    except Exception as exc:  # noqa: BLE001 - the line is informational
        print(f"# analogtrain kernels: unknown ({exc})")
    header = ("| suite | case | batch | ours steps/s (min-max) | aihwkit steps/s (min-max) | ours / aihwkit | "
              "pulses/step ours / aihwkit | M pulses/s ours / aihwkit | peak RSS MB ours / aihwkit | load |")
    print(header)
    print("|---|---|---:|---|---|---:|---|---|---|---:|")
    results = []
    for case in cases(args):
        load = os.getloadavg()[0]
        runs = {"ours": [], "aihwkit": []}
        for _ in range(args.rounds):
            runs["ours"].append(worker("ours", case, peer))
            if peer and case["suite"] != "kernel":  # aihwkit has no update-only entry point
                runs["aihwkit"].append(worker("aihwkit", case, peer))
        ours = summarise(runs["ours"])
        theirs = summarise(runs["aihwkit"]) if runs["aihwkit"] else {"error": "not run"}
        label = case["algo"] if case.get("model") == "mlp" else f"{case['n']}x{case['n']}"
        if case["suite"] == "kernel":
            label += " update only"
        if case["suite"] == "fcn":
            label += " (aihwkit: SB with HfO2 table)"

        def cell(s, key="steps_per_s"):
            if "error" in s:
                return "error" if s["error"] != "not run" else "-"
            return f"{s[key]:.1f} ({s['min']:.1f}-{s['max']:.1f})"

        ratio = (ours["steps_per_s"] / theirs["steps_per_s"]) if "error" not in ours and "error" not in theirs else None
        print(f"| {case['suite']} | {label} | {case['batch']} | {cell(ours)} | {cell(theirs)} | {fmt(ratio, '.2f')} | "
              f"{fmt(ours.get('pulses_per_step'), '.0f')} / {fmt(theirs.get('pulses_per_step'), '.0f')} | "
              f"{fmt(ours.get('pulses_per_s', 0) / 1e6 if 'pulses_per_s' in ours else None, '.2f')} / "
              f"{fmt(theirs.get('pulses_per_s', 0) / 1e6 if 'pulses_per_s' in theirs else None, '.2f')} | "
              f"{fmt(ours.get('max_rss_mb'), '.0f')} / {fmt(theirs.get('max_rss_mb'), '.0f')} | {load:.2f} |",
              flush=True)
        for side in ("ours", "aihwkit"):
            for r in runs[side]:
                if "error" in r:
                    print(f"#   {side} error: {r['error']}", flush=True)
        results.append({"case": case, "ours": ours, "aihwkit": theirs, "ratio": ratio, "load": load,
                        "raw": runs})
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_model(), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
