"""Expected-update engine: the compact model of 2502.06309 eq. 5,

    W <- W + dW * F(W) - |dW| * G(W)   ==   W + dW * q_plus(W) (dW >= 0) / W + dW * q_minus(W),

with F, G at the pre-update state. Optional granularity noise: the number of pulses
|dW|/dw_min is stochastically rounded to an integer (zero-mean error of variance
Theta(dw_min |dW|), 2602.21321 Assumption 3.4). Pulse counts are |dW|/dw_min (expected).
"""

from __future__ import annotations

import torch

from .base import PulseEngine, PulseStats


class ExpectedEngine(PulseEngine):
    name = "expected"

    def __init__(self, granularity_noise: bool = False) -> None:
        self.granularity_noise = bool(granularity_noise)

    def apply(self, w, device, delta, generator=None, need_touched=False) -> PulseStats:
        if self.granularity_noise:
            n = delta.abs() * device.inverse_dw_min()
            low = torch.floor(n)
            u = torch.rand(n.shape, generator=generator, device=n.device, dtype=n.dtype)
            n = low + (u < n - low).to(n.dtype)
            delta = torch.sign(delta) * n * device.dw_min
        # w + dW q+(w) where dW >= 0, w + dW q-(w) where dW < 0, without a masked select:
        # the up part dW+ = max(dW, 0) and the down part dW- = dW - dW+ each meet their response
        up_part = delta.clamp_min(0.0)
        down_part = delta - up_part
        q_up, q_down = device.q_plus(w), device.q_minus(w)
        w.addcmul_(up_part, q_up).addcmul_(down_part, q_down)
        device.clamp_(w)
        inv = device.inverse_dw_min()
        if isinstance(inv, torch.Tensor) and inv.shape == delta.shape and inv.dtype == delta.dtype:
            up = torch.dot(up_part.reshape(-1), inv.reshape(-1))
            down = -torch.dot(down_part.reshape(-1), inv.reshape(-1))
        else:
            up = (up_part * inv).sum()
            down = -(down_part * inv).sum()
        touched = (delta != 0) if need_touched else None
        return PulseStats(up, down, touched)

    def apply_outer(self, w, device, x, d, lr, generator=None, need_touched=False) -> PulseStats:
        delta = torch.mm(d.transpose(0, 1), x)
        return self.apply(w, device, delta.mul_(-lr), generator, need_touched)

    def describe(self):
        return {"engine": self.name, "granularity_noise": self.granularity_noise}
