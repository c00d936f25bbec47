"""Expected-update engine: the compact model of 2502.06309 eq. 5,

    W <- W + dW * F(W) - |dW| * G(W)   ==   W + dW * q_plus(W) (dW >= 0) / W + dW * q_minus(W),

with F, G at the pre-update state. Optional granularity noise: the number of pulses
|dW|/dw_min is stochastically rounded to an integer (zero-mean error of variance
Theta(dw_min |dW|), 2602.21321 Assumption 3.4). Pulse counts are |dW|/dw_min (expected).
"""

from __future__ import annotations

import torch

from .base import PulseEngine, PulseStats, clamp_to_bounds


class ExpectedEngine(PulseEngine):
    name = "expected"

    def __init__(self, granularity_noise: bool = False) -> None:
        self.granularity_noise = bool(granularity_noise)

    def apply(self, w, device, delta, generator=None, need_touched=False) -> PulseStats:
        dw_min = device.dw_min
        if self.granularity_noise:
            n = delta.abs() / dw_min
            low = torch.floor(n)
            frac = n - low
            u = torch.rand(n.shape, generator=generator, device=n.device, dtype=n.dtype)
            n = low + (u < frac).to(n.dtype)
            delta = torch.sign(delta) * n * dw_min
        q = torch.where(delta >= 0, device.q_plus(w), device.q_minus(w))
        w.copy_(clamp_to_bounds(w + delta * q, device))
        pulses = delta / dw_min
        up = pulses.clamp_min(0).sum()
        down = (-pulses).clamp_min(0).sum()
        touched = (delta != 0) if need_touched else None
        return PulseStats(up, down, touched)

    def describe(self):
        return {"engine": self.name, "granularity_noise": self.granularity_noise}
