"""Deterministic engine: ceil(|dW| / dw_min) pulses of polarity sign(dW), capped at the
bit length (2502.06309 Sec. 1 and App. C: BL = ceil(|dw|/dw_min), "if more than BL pulses
are desired, only BL pulses are fired"). Each pulse sees the response at the current
state plus cycle-to-cycle noise. ``rounding`` may be "ceil" (the papers), "round" or
"stochastic" (unbiased).
"""

from __future__ import annotations

import torch

from .base import PulseEngine, PulseStats, apply_pulse_counts, check_bit_length


class DeterministicEngine(PulseEngine):
    name = "deterministic"

    def __init__(self, bit_length: int = 31, rounding: str = "ceil") -> None:
        self.bit_length = check_bit_length(bit_length)
        if rounding not in ("ceil", "round", "stochastic"):
            raise ValueError(f"rounding must be 'ceil', 'round' or 'stochastic', got {rounding!r}")
        self.rounding = rounding

    def pulse_counts(self, delta, device, generator=None) -> torch.Tensor:
        """Signed integer pulse counts for the desired increments."""
        n = delta.abs() / device.dw_min
        if self.rounding == "ceil":
            n = torch.ceil(n - 1e-6)
        elif self.rounding == "round":
            n = torch.round(n)
        else:
            low = torch.floor(n)
            u = torch.rand(n.shape, generator=generator, device=n.device, dtype=n.dtype)
            n = low + (u < n - low).to(n.dtype)
        return torch.sign(delta) * n.clamp(max=self.bit_length)

    def apply(self, w, device, delta, generator=None, need_touched=False) -> PulseStats:
        counts = self.pulse_counts(delta, device, generator)
        w.copy_(apply_pulse_counts(w, device, counts, generator))
        up = counts.clamp_min(0).sum()
        down = (-counts).clamp_min(0).sum()
        return PulseStats(up, down, torch.sign(counts).abs_() if need_touched else None)

    def describe(self):
        return {"engine": self.name, "bit_length": self.bit_length, "rounding": self.rounding}
