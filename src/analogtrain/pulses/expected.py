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

    def apply(self, w, device, delta, generator=None, need_touched=False, max_step=None,
              delta_is_work=False) -> PulseStats:
        """``max_step``: an upper bound on max |dW| if the caller knows one (skips a reduction);
        ``delta_is_work``: delta is a work tensor of the engine (overwritten)."""
        if self.granularity_noise:
            max_step = None
            n = delta.abs() * device.inverse_dw_min()
            low = torch.floor(n)
            u = torch.rand(n.shape, generator=generator, device=n.device, dtype=n.dtype)
            n = low + (u < n - low).to(n.dtype)
            delta = torch.sign(delta) * n * device.dw_min
            delta_is_work = False
        # w + dW q+(w) where dW >= 0, w + dW q-(w) where dW < 0, without a masked select:
        # the up part dW+ = max(dW, 0) and the down part dW- = dW - dW+ each meet their response.
        # Work tensors are reused between calls (large temporaries cost page faults on CPU).
        up_part, down_part, q_up, q_down = self._buffers(w)[:4]
        torch.clamp_min(delta, 0.0, out=up_part)
        touched = (delta != 0) if need_touched else None
        if delta_is_work:  # a work tensor of apply_outer: the down part in place
            down_part = delta.sub_(up_part)
        else:
            torch.sub(delta, up_part, out=down_part)
        # pulse counts and the bounds test first: a device's fast update may overwrite the parts
        inv = device.inverse_dw_min()
        if isinstance(inv, torch.Tensor) and inv.shape == delta.shape and inv.dtype == delta.dtype:
            up = torch.dot(up_part.reshape(-1), inv.reshape(-1))
            down = -torch.dot(down_part.reshape(-1), inv.reshape(-1))
        else:
            up = (up_part * inv).sum()
            down = -(down_part * inv).sum()
        inside = self._inside_for_sure(device, up_part, down_part, max_step)
        if not device.expected_update_(w, up_part, down_part):
            device.response_into(w, True, q_up)
            device.response_into(w, False, q_down)
            w.addcmul_(up_part, q_up).addcmul_(down_part, q_down)
        if not inside:
            device.clamp_(w)
        return PulseStats(up, down, touched)

    def apply_outer(self, w, device, x, d, lr, generator=None, need_touched=False) -> PulseStats:
        delta = self._buffers(w, 5)[4]
        torch.addmm(delta, d.transpose(0, 1), x, beta=0.0, alpha=-lr, out=delta)
        # |dW_ij| <= |lr| sum_b max|d_b| max|x_b|: a bound from the (small) inputs
        max_step = abs(lr) * float((d.abs().amax(dim=1) * x.abs().amax(dim=1)).sum()) if x.shape[0] else 0.0
        return self.apply(w, device, delta, generator, need_touched, max_step, delta_is_work=True)

    def _buffers(self, w, n=4):
        """Work tensors of w's shape, dtype and torch device, kept between calls."""
        key = (tuple(w.shape), w.dtype, w.device)
        store = self.__dict__.setdefault("_work", {})
        bufs = store.get(key)
        if bufs is None or len(bufs) < n:
            bufs = store[key] = [torch.empty_like(w) for _ in range(max(n, 5 if bufs is None else len(bufs)))]
        return bufs

    @staticmethod
    def _inside_for_sure(device, up_part, down_part, max_step=None) -> bool:
        """True when no element can leave the bounds (the clamp is skipped): every |dW| is at
        most half the device's safe step (soft bounds: min(w_max / a_up, |w_min| / a_down))."""
        safe = device.safe_step()
        if safe is None or up_part.numel() == 0:
            return False
        if max_step is not None and max_step <= 0.5 * safe:
            return True
        return bool(torch.maximum(up_part.amax(), -down_part.amin()) <= 0.5 * safe)

    def describe(self):
        return {"engine": self.name, "granularity_noise": self.granularity_noise}
