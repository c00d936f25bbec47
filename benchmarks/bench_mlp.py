"""Speed benchmark: forward + backward + update steps/s of the MLP 784-256-128-10.

    python benchmarks/bench_mlp.py [--quick] [--json out.json] [--device cpu|cuda] [--threads N]

Model, data and optimiser follow aihwkit's peer benchmark (reference/aihwkit_peer.md section 4):
sigmoid MLP 784-256-128-10 with log-softmax + NLL, inputs x ~ U(0, 1), random labels, lr 0.05,
every layer analog, Analog SGD, device preset ``aihwkit_softbounds`` (aihwkit SoftBoundsDevice
defaults), default periphery IO() (7-bit DAC, 9-bit ADC, out_noise 0.06, abs-max noise
management, iterative bound management; ``--io perfect`` for exact MVMs). Configurations:

- ``torch``: plain PyTorch (nn.Linear + torch.optim.SGD);
- ``expected``: Analog SGD with the expected (compact-model) engine;
- ``stochastic``: Analog SGD with the stochastic pulse-train engine (BL 31, BL and update
  management), the fidelity level of aihwkit's default.

Per configuration and batch size: 5 warm-up steps, then ``repeats`` timed runs of at least
``min_time`` seconds each; the median steps/s is reported with the min-max range. Also the mean
number of update pulses fired per step (all layers), steps per CPU-second of this process
(time.process_time; with --threads 1 it is insensitive to other processes competing for
the cores, unlike wall-clock steps/s) and peak memory (process max RSS, and
torch.cuda.max_memory_allocated on CUDA). Prints a table next to aihwkit's published figures;
never fails on time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time

import torch
from torch import nn

import analogtrain as at

#: aihwkit 1.1.0 (torch 2.10, 2 threads, 2-core AMD EPYC VM), reference/aihwkit_peer.md section 4
AIHWKIT = {
    "torch": {1: 1524, 8: 1228, 64: 551},
    "aihwkit_fp": {1: 845, 8: 454, 64: 325},
    "stochastic": {1: 490, 8: 276, 64: 106},
}
#: aihwkit's expected update pulses per step (bs 1 / 8 / 64), same reference
AIHWKIT_PULSES = {1: 6e3, 8: 14e3, 64: 18e3}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short runs (0.3 s x 3) for a smoke check")
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: leave as is)")
    p.add_argument("--batches", default="1,8,64")
    p.add_argument("--configs", default="torch,expected,stochastic")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--min-time", type=float, default=2.0, help="seconds per timed run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--io", choices=["default", "perfect"], default="default",
                   help="periphery of the analog configs: IO() (aihwkit's defaults) or IO.perfect() (exact MVMs)")
    p.add_argument("--match-pulses", action="store_true",
                   help="scale the stochastic engine's lr per batch size so that its update pulses per step "
                        "equal aihwkit's reported figures (same pulse statistics)")
    args = p.parse_args(argv)
    if args.quick:
        args.min_time = min(args.min_time, 0.3)
    return args


def make_model(config: str, device: str, seed: int, io: str = "default"):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(784, 256), nn.Sigmoid(), nn.Linear(256, 128), nn.Sigmoid(), nn.Linear(128, 10),
                        nn.LogSoftmax(dim=1))
    if config == "torch":
        return net.to(device)
    cfg = at.AnalogConfig(algorithm=at.algorithms.AnalogSGD(), device=at.devices.get_preset("aihwkit_softbounds"),
                          io=at.IO.perfect() if io == "perfect" else at.IO(), engine=config)
    return at.convert(net, cfg, seed=seed).to(device)


def make_optimizer(config: str, net, lr: float):
    if config == "torch":
        return torch.optim.SGD(net.parameters(), lr=lr)
    return at.optim.AnalogSGD(net.parameters(), lr=lr)


def total_pulses(net) -> float:
    total = 0.0
    for m in net.modules():
        if hasattr(m, "arrays"):
            for arr in m.arrays.values():
                total += arr.pulse_count["total"]
    return total


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def pulses_per_step(config: str, bs: int, lr: float, args, n: int = 15) -> float:
    """Mean update pulses per step over n steps of a fresh model (after 5 warm-up steps)."""
    net = make_model(config, args.device, args.seed, args.io)
    opt = make_optimizer(config, net, lr)
    gen = torch.Generator().manual_seed(args.seed + 1)
    lossf = nn.NLLLoss()
    for k in range(5 + n):
        if k == 5:
            start = total_pulses(net)
        x = torch.rand(bs, 784, generator=gen).to(args.device)
        y = torch.randint(0, 10, (bs,), generator=gen).to(args.device)
        opt.zero_grad()
        lossf(net(x), y).backward()
        opt.step()
    return (total_pulses(net) - start) / n


def time_config(config: str, bs: int, args) -> dict:
    dev = args.device
    lr = args.lr
    if args.match_pulses and config == "stochastic" and bs in AIHWKIT_PULSES:
        lr = args.lr * AIHWKIT_PULSES[bs] / pulses_per_step(config, bs, args.lr, args)
    net = make_model(config, dev, args.seed, args.io)
    opt = make_optimizer(config, net, lr)
    lossf = nn.NLLLoss()
    gen = torch.Generator().manual_seed(args.seed)
    xs = [torch.rand(bs, 784, generator=gen).to(dev) for _ in range(32)]
    ys = [torch.randint(0, 10, (bs,), generator=gen).to(dev) for _ in range(32)]
    step_no = [0]

    def steps(n):
        for _ in range(n):
            k = step_no[0] % 32
            step_no[0] += 1
            opt.zero_grad()
            loss = lossf(net(xs[k]), ys[k])
            loss.backward()
            opt.step()
        sync(dev)

    if dev.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    steps(5)
    t0 = time.perf_counter()
    steps(5)
    per_step = (time.perf_counter() - t0) / 5
    n = max(5, int(args.min_time / max(per_step, 1e-6)))
    rates, cpu_rates = [], []
    pulses0 = total_pulses(net)
    timed = 0
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        steps(n)
        rates.append(n / (time.perf_counter() - t0))
        cpu_rates.append(n / max(time.process_time() - c0, 1e-9))
        timed += n
    pulses = (total_pulses(net) - pulses0) / timed if config != "torch" else None
    out = {
        "config": config, "batch": bs, "lr": lr, "steps_per_run": n,
        "steps_per_s": statistics.median(rates), "min": min(rates), "max": max(rates),
        "cpu_steps_per_s": statistics.median(cpu_rates),
        "update_pulses_per_step": pulses,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if dev.startswith("cuda"):
        out["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def env_info(args) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "nproc": os.cpu_count(), "cpu": cpu, "device": args.device, "lr": args.lr,
            "min_time": args.min_time, "repeats": args.repeats, "io": args.io}
    if args.device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
    return info


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    info = env_info(args)
    print("# " + ", ".join(f"{k}={v}" for k, v in info.items()), flush=True)
    batches = [int(b) for b in args.batches.split(",")]
    configs = args.configs.split(",")
    results = []
    for config in configs:
        for bs in batches:
            r = time_config(config, bs, args)
            results.append(r)
            print(f"  {config:10s} bs {bs:3d}: {r['steps_per_s']:8.1f} steps/s "
                  f"({r['min']:.1f}-{r['max']:.1f}), {r['cpu_steps_per_s']:.1f} per CPU-second" +
                  (f", {r['update_pulses_per_step']:.0f} pulses/step" if r["update_pulses_per_step"] else "") +
                  (f" (lr {r['lr']:.4f})" if r["lr"] != args.lr else ""),
                  flush=True)
    print()
    print("| config | batch | steps/s (min-max) | steps per CPU-second | aihwkit 1.1.0 steps/s | update pulses/step "
          "| aihwkit pulses/step | peak RSS MB |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for r in results:
        ref = AIHWKIT.get(r["config"], {}).get(r["batch"])
        pulses = r["update_pulses_per_step"]
        ref_p = AIHWKIT_PULSES[r["batch"]] if r["config"] == "stochastic" and r["batch"] in AIHWKIT_PULSES else None
        print(f"| {r['config']} | {r['batch']} | {r['steps_per_s']:.0f} ({r['min']:.0f}-{r['max']:.0f}) | "
              f"{r['cpu_steps_per_s']:.0f} | "
              f"{ref if ref else '-'} | {f'{pulses:.0f}' if pulses else '-'} | "
              f"{f'{ref_p:.0f}' if ref_p else '-'} | {r['max_rss_mb']:.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": info, "results": results, "aihwkit": AIHWKIT, "aihwkit_pulses": AIHWKIT_PULSES}, f,
                      indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
