"""aihwkit 1.1.0: the small regression of tests/test_defaults_learn.py with c-TTv2 / TT-v2 / AGAD at
aihwkit's defaults (perfect IO, default pulsed update) on its three devices; prints the final /
initial loss per seed (3 seeds; aihwkit's pulse RNG is not seeded by torch).

    ~/.cache/aihwkit-peer/bin/python benchmarks/aihwkit_defaults_learn.py cttv2,ttv2,agad [fast_lr]

Devices: SoftBoundsDevice() (= preset aihwkit_softbounds); offset_softbounds as aihwkit
parameters (bounds +-0.6, up step 1.2e-3, down step 0.8e-3: dw_min 1.2e-3 and up_down -1/3 in
aihwkit's convention, rpu_pulsed_device.cpp: down bias -up_down for up_down > 0), i.e. slopes 1.2 / 0.8, SP 0.12), without
and with additive cycle noise 0.3. An optional second argument sets the compounds' fast_lr.
"""
import json
import sys

import torch
from aihwkit.nn import AnalogLinear
from aihwkit.optim import AnalogSGD
from aihwkit.simulator.configs import UnitCellRPUConfig
from aihwkit.simulator.configs.compounds import (
    BufferedTransferCompound,
    ChoppedTransferCompound,
    DynamicTransferCompound,
)
from aihwkit.simulator.configs.devices import SoftBoundsDevice

torch.set_num_threads(1)

def device(name):
    if name == "aihwkit_softbounds":
        return SoftBoundsDevice()
    # aihwkit: up_down > 0 scales the down step by (1 - up_down): dw_min 1.2e-3, up_down 1/3 -> 1.2e-3 / 0.8e-3
    kw = {"w_max": 0.6, "w_min": -0.6, "dw_min": 1.2e-3, "up_down": 1.0 / 3.0, "dw_min_dtod": 0.0, "w_max_dtod": 0.0, "w_min_dtod": 0.0,
              "up_down_dtod": 0.0, "dw_min_std": 0.0}
    if name == "offset_softbounds_additive":
        kw.update(dw_min_std=0.3, mult_noise=False)
    return SoftBoundsDevice(**kw)

def compound(alg, dev):
    cls = {"cttv2": ChoppedTransferCompound, "ttv2": BufferedTransferCompound, "agad": DynamicTransferCompound}[alg]
    extra = {"fast_lr": float(sys.argv[2])} if len(sys.argv) > 2 else {}
    return cls(unit_cell_devices=[device(dev), device(dev)], **extra)

def ratio(alg, dev, seed, epochs=20, lr=0.1):
    _lo, _hi = -0.6, 0.6
    scale = 0.5 * 0.6
    g = torch.Generator().manual_seed(seed)
    w_star = (torch.rand(4, 8, generator=g) * 2 - 1) * scale
    x = torch.rand(512, 8, generator=g) * 2 - 1
    y = x @ w_star.T
    cfg = UnitCellRPUConfig(device=compound(alg, dev))
    cfg.forward.is_perfect = True
    cfg.backward.is_perfect = True
    layer = AnalogLinear(8, 4, bias=False, rpu_config=cfg)
    layer.set_weights(torch.zeros(4, 8))
    opt = AnalogSGD(layer.parameters(), lr=lr)
    opt.regroup_param_groups(layer)
    def loss():
        with torch.no_grad():
            return float(torch.nn.functional.mse_loss(layer(x), y))
    initial = loss()
    order = torch.Generator().manual_seed(seed + 1)
    for _ in range(epochs):
        perm = torch.randperm(512, generator=order)
        for b in range(0, 512, 8):
            i = perm[b:b + 8]
            opt.zero_grad()
            torch.nn.functional.mse_loss(layer(x[i]), y[i]).backward()
            opt.step()
    return loss() / initial

out = {}
for alg in sys.argv[1].split(","):
    for dev in ("aihwkit_softbounds", "offset_softbounds_additive", "offset_softbounds"):
        vals = [ratio(alg, dev, s) for s in range(3)]
        out[f"{alg}/{dev}"] = vals
        print(alg, dev, [round(v, 3) for v in vals], flush=True)
print(json.dumps(out))
