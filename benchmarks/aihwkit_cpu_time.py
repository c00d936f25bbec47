"""Steps per CPU-second (and wall-clock steps/s) of aihwkit 1.1.0 on the benchmark MLP.

Same model, data, lr and defaults as ../shared/peer/peer_aihwkit_bench.py (config ``sgd_sb``:
SingleRPUConfig(SoftBoundsDevice()), AnalogSGD lr 0.05, 784-256-128-10 sigmoid MLP, NLL on
random labels), one thread, timed with time.process_time so that it can be compared with
bench_mlp.py's CPU-second column on a machine shared with other work. Needs the peer venv
(../shared/peer/peer_aihwkit_setup.sh):

    ~/.cache/aihwkit-peer/bin/python benchmarks/aihwkit_cpu_time.py 1,8,64
"""
import os
import sys
import time

for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[v] = "1"
import torch
from aihwkit.nn import AnalogLinear, AnalogSequential
from aihwkit.optim import AnalogSGD
from aihwkit.simulator.configs import SingleRPUConfig
from aihwkit.simulator.configs.devices import SoftBoundsDevice
from torch import nn

torch.set_num_threads(1)
res = {}
for bs in [int(b) for b in (sys.argv[1] if len(sys.argv) > 1 else "1,8,64").split(",")]:
    torch.manual_seed(0)
    lin = lambda i, o: AnalogLinear(i, o, bias=True, rpu_config=SingleRPUConfig(device=SoftBoundsDevice()))
    net = AnalogSequential(lin(784, 256), nn.Sigmoid(), lin(256, 128), nn.Sigmoid(), lin(128, 10), nn.LogSoftmax(dim=1))
    opt = AnalogSGD(net.parameters(), lr=0.05); opt.regroup_param_groups(net)
    lossf = nn.NLLLoss(); g = torch.Generator().manual_seed(0)
    xs = [torch.rand(bs, 784, generator=g) for _ in range(32)]; ys = [torch.randint(0, 10, (bs,), generator=g) for _ in range(32)]
    def steps(n):
        for k in range(n):
            opt.zero_grad(); lossf(net(xs[k % 32]), ys[k % 32]).backward(); opt.step()
    steps(10)
    rates = []
    for _ in range(3):
        n = max(20, int(1.5 * 300 / bs))
        t = time.process_time(); w = time.perf_counter(); steps(n)
        rates.append((n / (time.process_time() - t), n / (time.perf_counter() - w)))
    rates.sort()
    res[bs] = rates[1]
    print(f"aihwkit sgd_sb bs {bs}: {rates[1][0]:.1f} steps per CPU-second, {rates[1][1]:.1f} steps/s wall", flush=True)
