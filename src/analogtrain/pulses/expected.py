"""Expected-update engine: the compact model of 2502.06309 eq. 5,

    W <- W + dW * F(W) - |dW| * G(W)   ==   W + dW * q_plus(W) (dW >= 0) / W + dW * q_minus(W),

with F, G at the pre-update state. Optional granularity noise: the number of pulses
|dW|/dw_min is stochastically rounded to an integer (zero-mean error of variance
Theta(dw_min |dW|), 2602.21321 Assumption 3.4). Pulse counts are |dW|/dw_min (expected).

Granularity: the periphery sizes pulse trains with the array's nominal (mean) dw_min, as
hardware and aihwkit do; an element whose own dw_min differs (device-to-device variation) moves
by its own steps, so a requested dW becomes dW * dw_min_ij / nominal in the state (the mean of
the stochastic engine's rank update), with |dW| / nominal pulses.

Families with affine responses (soft bounds, :meth:`Device.expected_plan`) take a short path:
the update is two interpolations towards the bounds with weights clamp(dW * rate, min=0), and
the pulse counts one batched dot product of those weights; about five passes over the array
instead of about ten. Other families evaluate q_plus and q_minus. On CPU with numba, affine
families run :func:`~analogtrain.pulses.numba_kernels.expected_update` (one pass) instead;
this torch code is its reference.
"""

from __future__ import annotations

import torch

from . import numba_kernels
from .base import PulseEngine, PulseStats, element_gain, nominal_dw_min

#: arrays with at least this many elements bound max |dW| from the inputs of a rank update
#: (skipping the clamp of steps at the bounds); smaller ones just clamp
BOUND_FROM_INPUTS_MIN = 1 << 15


class ExpectedEngine(PulseEngine):
    name = "expected"

    def __init__(self, granularity_noise: bool = False) -> None:
        self.granularity_noise = bool(granularity_noise)
        #: run the compiled CPU kernel where it applies (numba, CPU tensor, affine family);
        #: False: always the torch implementation below (the reference)
        self.use_kernel = True

    def apply(self, w, device, delta, generator=None, need_touched=False, max_step=None,
              delta_is_work=False) -> PulseStats:
        """``max_step``: an upper bound on max |dW| if the caller knows one (skips the clamp
        of steps that could cross a bound); ``delta_is_work``: delta is a work tensor of the
        engine (may be overwritten)."""
        gain = element_gain(device)
        if self.granularity_noise:
            max_step = None
            n = delta.abs() / nominal_dw_min(device)
            low = torch.floor(n)
            u = torch.rand(n.shape, generator=generator, device=n.device, dtype=n.dtype)
            n = low + (u < n - low).to(n.dtype)
            delta = torch.sign(delta) * n * device.dw_min
            delta_is_work = False
        elif gain is not None:
            delta = delta.mul_(gain) if delta_is_work else delta * gain
            delta_is_work = True
            if max_step is not None:
                max_step *= float(gain.max())
        packed = numba_kernels.kernel_coefficients(w, device) if self.use_kernel else None
        if packed is not None:
            up, down, touched = numba_kernels.expected_update(w, delta, packed, need_touched)
            return PulseStats(torch.tensor(up, dtype=torch.float64), torch.tensor(down, dtype=torch.float64), touched)
        touched = torch.sign(delta).abs_() if need_touched else None  # a 0/1 float mask (bool masks are slow here)
        plan = device.expected_plan(w)
        if plan is not None:
            up, down = self._interpolate(w, device, plan, delta, max_step)
        else:
            up, down = self._evaluate_responses(w, device, delta, max_step, delta_is_work)
        return PulseStats(up, down, touched)

    def apply_outer(self, w, device, x, d, lr, generator=None, need_touched=False) -> PulseStats:
        delta = self._work(w.shape, w)
        torch.addmm(delta, d.transpose(0, 1), x, beta=0.0, alpha=-lr, out=delta)
        max_step = None  # small arrays: the clamp costs less than the bound
        if w.numel() >= BOUND_FROM_INPUTS_MIN:  # |dW_ij| <= |lr| sum_b max|d_b| max|x_b|, from the small inputs
            max_step = abs(lr) * float((d.abs().amax(dim=1) * x.abs().amax(dim=1)).sum()) if x.shape[0] else 0.0
        return self.apply(w, device, delta, generator, need_touched, max_step, delta_is_work=True)

    # ------------------------------------------------------------------ the two paths
    def _interpolate(self, w, device, plan, delta, max_step):
        """Affine responses: w <- lerp(w, w_max, R_up) then lerp(w, w_min, R_down) with
        R = clamp(dW * rates, 0, 1) (weight 1 = the bound itself, where a longer step would be
        clamped); counts sum(R * count_weights) per direction, taken before the clamp at 1."""
        rates, count_weights, w_max, w_min = plan
        r = self._work((2,) + tuple(w.shape), w)
        torch.mul(delta.unsqueeze(0), rates, out=r)
        r.clamp_min_(0.0)
        flat_r, flat_c = r.view(2, -1), count_weights.view(2, -1)
        up, down = torch.dot(flat_r[0], flat_c[0]), torch.dot(flat_r[1], flat_c[1])
        if not self._inside_for_sure(device, max_step):
            r.clamp_max_(1.0)
        w.lerp_(w_max, r[0]).lerp_(w_min, r[1])
        return up, down

    def _evaluate_responses(self, w, device, delta, max_step, delta_is_work):
        """Any family: w + dW+ q_plus(w) + dW- q_minus(w), dW+ = max(dW, 0), dW- = dW - dW+
        (no masked select), then clamped to the bounds unless no step can reach them."""
        up_part = self._work(w.shape, w, 1)
        torch.clamp_min(delta, 0.0, out=up_part)
        down_part = delta.sub_(up_part) if delta_is_work else torch.sub(delta, up_part)
        inv = device.inverse_dw_min()
        if isinstance(inv, torch.Tensor) and inv.shape == delta.shape and inv.dtype == delta.dtype:
            up = torch.dot(up_part.reshape(-1), inv.reshape(-1))
            down = -torch.dot(down_part.reshape(-1), inv.reshape(-1))
        else:
            up = (up_part * inv).sum()
            down = -(down_part * inv).sum()
        if max_step is None:
            max_step = float(torch.maximum(up_part.amax(), -down_part.amin())) if up_part.numel() else 0.0
        inside = self._inside_for_sure(device, max_step)
        q_up = device.response_into(w, True, self._work(w.shape, w, 2))
        q_down = device.response_into(w, False, self._work(w.shape, w, 3))
        w.addcmul_(up_part, q_up).addcmul_(down_part, q_down)
        if not inside:
            device.clamp_(w)
        return up, down

    # ------------------------------------------------------------------ helpers
    def _work(self, shape, like, slot=0):
        """A work tensor of the given shape with ``like``'s dtype and torch device, kept between
        calls (large temporaries cost page faults on CPU); ``slot`` tells two apart."""
        key = (tuple(shape), like.dtype, like.device, slot)
        store = self.__dict__.setdefault("_work_store", {})
        buf = store.get(key)
        if buf is None:
            buf = store[key] = torch.empty(shape, dtype=like.dtype, device=like.device)
        return buf

    @staticmethod
    def _inside_for_sure(device, max_step) -> bool:
        """True when no element can leave the bounds: every |dW| is at most half the device's
        safe step (soft bounds: min(w_max / a_up, |w_min| / a_down))."""
        if max_step is None:
            return False
        safe = device.safe_step()
        return safe is not None and max_step <= 0.5 * safe

    def describe(self):
        return {"engine": self.name, "granularity_noise": self.granularity_noise}
