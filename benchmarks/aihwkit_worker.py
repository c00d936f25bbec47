"""aihwkit side of ``benchmarks/side_by_side.py``: times one case and prints one JSON line.

Runs in the peer venv of ../shared/peer (aihwkit 1.1.0); it never imports analogtrain:

    ~/.cache/aihwkit-peer/bin/python benchmarks/aihwkit_worker.py '{"model": "mlp", "algo": "sgd", "batch": 8}'

Case fields: model ("mlp": 784-256-128-10 sigmoid, log-softmax + NLL, x ~ U(0, 1), random labels;
"linear": one N x N layer, 0.5 x squared error on random targets), n (linear only), algo ("sgd",
"ttv1", "ttv2", "cttv2", "agad"), batch, lr, min_time, repeats, settings ("defaults": aihwkit's
SoftBoundsDevice and IOParameters defaults; compounds with fast_lr 0.2 absolute, transfer every
mini-batch, one column per transfer; "fcn_2602": the update BL 5 and the output noise 0.06 /
bound 12 of 2602.21321's Table 6 on the same default device, an approximation of that paper's
FCN setting).

Reported pulses/step: aihwkit does not count pulses, so this is the expected number of
coincidences of the gradient update under its STOCHASTIC_COMPRESSED rule (update BL management
and update management), recomputed from the observed x and d of every layer:
sum over samples of BL * sum_i p_i * sum_j q_j with BL = min(ceil(lr |x|max |d|max / dw_min),
desired_bl), p_i = min(1, |x_i| s_x), q_j = min(1, |d_j| s_d), s_x s_d = lr / (dw_min BL),
s_x / s_d = sqrt(|d|max / |x|max) (clipped as aihwkit clips). Transfer pulses are not included.
"""

import json
import os
import resource
import statistics
import sys
import time

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import torch
from aihwkit.nn import AnalogLinear, AnalogSequential
from aihwkit.optim import AnalogSGD
from aihwkit.simulator.configs import SingleRPUConfig, UnitCellRPUConfig
from aihwkit.simulator.configs.compounds import (
    BufferedTransferCompound,
    ChoppedTransferCompound,
    DynamicTransferCompound,
    TransferCompound,
)
from aihwkit.simulator.configs.devices import SoftBoundsDevice
from torch import nn

COMPOUNDS = {"ttv1": TransferCompound, "ttv2": BufferedTransferCompound, "cttv2": ChoppedTransferCompound,
             "agad": DynamicTransferCompound}
FAST_LR = 0.2
DW_MIN = 0.001  # SoftBoundsDevice() nominal dw_min


def device(case):
    """SoftBoundsDevice(); for "fcn_2602" with the parameters of analogtrain's scaled HfO2 table
    (offset_robustness.hfo2_scaled: range +-0.2, dw_min 0.0924 with spreads 0.71 / 0.43 / 0.60,
    cycle noise 0.2174 (aihwkit's dw_min_std), write noise 0.5841)."""
    if case.get("settings") != "fcn_2602":
        return SoftBoundsDevice()
    return SoftBoundsDevice(dw_min=0.4622 * 0.2, w_max=0.2, w_min=-0.2, dw_min_dtod=0.7125, w_max_dtod=0.4295,
                            w_min_dtod=0.5990, up_down_dtod=0.01, dw_min_std=0.2174, write_noise_std=0.5841)


def rpu_config(case):
    if case["algo"] == "sgd":
        cfg = SingleRPUConfig(device=device(case))
    else:
        comp = COMPOUNDS[case["algo"]](unit_cell_devices=[device(case), device(case)], transfer_every=1.0,
                                       units_in_mbatch=True, n_reads_per_transfer=1, fast_lr=fast_lr(case),
                                       transfer_lr=1.0, scale_transfer_lr=True)
        cfg = UnitCellRPUConfig(device=comp)
    if case.get("settings") == "fcn_2602":  # Table 6: update BL 5, output noise 0.06 and bound 12 (x 0.2)
        cfg.update.desired_bl = 5
        cfg.forward.out_noise = 0.06 * 0.2
        cfg.forward.out_bound = 12.0 * 0.2
    return cfg


def fast_lr(case):
    """aihwkit 1.1.0's absolute fast_lr: 0.2 (the golden mapping), lr x 1 for fcn_2602 (ours:
    fast_lr 1 x lr)."""
    return case["lr"] if case.get("settings") == "fcn_2602" else FAST_LR


def build(case):
    torch.manual_seed(0)
    lin = lambda i, o, bias=True: AnalogLinear(i, o, bias=bias, rpu_config=rpu_config(case))
    if case["model"] == "mlp":
        net = AnalogSequential(lin(784, 256), nn.Sigmoid(), lin(256, 128), nn.Sigmoid(), lin(128, 10),
                               nn.LogSoftmax(dim=1))
        lossf = nn.NLLLoss()
        n_in = 784
    else:
        n = case["n"]
        net = AnalogSequential(lin(n, n, bias=False))
        lossf = lambda out, y: 0.5 * ((out - y) ** 2).sum(1).mean()
        n_in = n
    g = torch.Generator().manual_seed(0)
    bs = case["batch"]
    xs = [torch.rand(bs, n_in, generator=g) for _ in range(16)]
    if case["model"] == "mlp":
        ys = [torch.randint(0, 10, (bs,), generator=g) for _ in range(16)]
    else:
        ys = [torch.randn(bs, case["n"], generator=g) * 0.1 for _ in range(16)]
    opt = AnalogSGD(net.parameters(), lr=case["lr"])
    opt.regroup_param_groups(net)
    return net, lossf, opt, xs, ys


def expected_pulses(x, d, lr, desired_bl=31):
    """Expected coincidences of one layer's update (the rule in the module docstring)."""
    x_max = x.abs().amax(1)
    d_max = d.abs().amax(1)
    ok = (x_max > 0) & (d_max > 0)
    k = lr * x_max * d_max / DW_MIN
    bl = torch.clamp(torch.ceil(k), 1, desired_bl)
    c = lr / (DW_MIN * bl)
    d_val = d_max * torch.clamp(bl / k.clamp_min(1e-30), max=1.0)
    s_x = torch.sqrt(c * d_val / x_max.clamp_min(1e-30))
    s_d = c / s_x.clamp_min(1e-30)
    px = torch.clamp(x.abs() * s_x[:, None], max=1.0).sum(1)
    pd = torch.clamp(d.abs() * s_d[:, None], max=1.0).sum(1)
    return float(torch.where(ok, bl * px * pd, torch.zeros_like(bl)).sum())


def main():
    case = json.loads(sys.argv[1])
    torch.set_num_threads(1)
    net, lossf, opt, xs, ys = build(case)
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
    per_step = (time.perf_counter() - t0) / 3
    n = max(3, int(case["min_time"] / max(per_step, 1e-6)))
    rates = []
    for _ in range(case["repeats"]):
        t0 = time.perf_counter()
        steps(n)
        rates.append(n / (time.perf_counter() - t0))
    # workload: expected update pulses per step from hooks on every analog layer (8 steps)
    layers = [m for m in net.modules() if isinstance(m, AnalogLinear)]
    seen = {}
    hooks = []
    for m in layers:
        hooks.append(m.register_forward_pre_hook(lambda mod, inp: seen.__setitem__(("x", id(mod)), inp[0].detach())))
        hooks.append(m.register_full_backward_hook(
            lambda mod, gin, gout: seen.__setitem__(("d", id(mod)), gout[0].detach())))
    lr_update = case["lr"] if case["algo"] == "sgd" else fast_lr(case)
    bl = 5 if case.get("settings") == "fcn_2602" else 31
    global DW_MIN
    if case.get("settings") == "fcn_2602":
        DW_MIN = 0.4622 * 0.2
    total = 0.0
    for _ in range(8):
        steps(1)
        total += sum(expected_pulses(seen[("x", id(m))], seen[("d", id(m))], lr_update, bl) for m in layers)
    for h in hooks:
        h.remove()
    print(json.dumps({
        "steps_per_s": statistics.median(rates), "runs": rates, "steps_per_run": n,
        "pulses_per_step": total / 8, "pulses_kind": "expected update coincidences (aihwkit rule, hooks)",
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
