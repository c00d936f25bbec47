"""Pulse-engine interface and the single-pulse physics shared by all engines.

An engine turns a desired increment into pulses on an array's hidden state ``w`` (in
place) and returns how many up and down pulses it fired. Two entry points:

- ``apply(w, device, delta, generator)``: a desired increment per element;
- ``apply_outer(w, device, x, d, lr, generator)``: the rank update of one SGD step,
  desired increment  dW = -lr * sum_b d_b x_b^T  (x: (B, in), d: (B, out), W: (out, in)).

``device`` is a sampled device (per-element parameter tensors of w's shape, or scalars).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..devices.base import Device


@dataclass
class PulseStats:
    """Pulses fired by one engine call (0-dim tensors, no host sync)."""

    up: torch.Tensor
    down: torch.Tensor
    #: flat indices (may repeat), a bool mask or a 0/1 float mask of the elements that received
    #: pulses (only when asked for)
    touched: torch.Tensor | None = None


def clamp_to_bounds(w: torch.Tensor, device: Device) -> torch.Tensor:
    """Clamp w into the device's [lo, hi] (per-element tensors or scalars)."""
    return device.clamp(w)


def pulse_step(
    w: torch.Tensor, device: Device, sign: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """One pulse of polarity ``sign`` (+1/-1, elementwise) on every element of ``w``:

    w <- w + sign * dw_min * (q_sign(w) + sigma_c * xi)   (2502.06309 App. C eq. 26),
    or q_sign(w) * (1 + sigma_c * xi) for multiplicative cycle noise; then clamped to bounds.
    See :meth:`Device.apply_pulse`.
    """
    return device.apply_pulse(w, sign, generator)


def apply_pulse_counts(
    w: torch.Tensor, device: Device, counts: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """Apply |counts| pulses of polarity sign(counts) to each element, in sequence.

    Returns the new state (w is not modified). Elements with count 0 are left unchanged.
    See :meth:`Device.apply_pulses` (exact closed forms where a family has one).
    """
    return device.apply_pulses(w, counts, generator)


def index_device(device: Device, index: torch.Tensor) -> Device:
    """Device restricted to flat element indices ``index`` (scalar parameters stay scalars)."""
    picked = {}
    for name, v in device.params().items():
        if isinstance(v, torch.Tensor) and v.dim() > 0:
            picked[name] = v.reshape(-1)[index]
    return device.with_params(**picked) if picked else device


def nominal_dw_min(device: Device) -> float:
    """Mean dw_min of the array (what the periphery assumes when it sizes pulse trains)."""
    v = device.dw_min
    if isinstance(v, torch.Tensor):
        return device.derived("nominal_dw_min", lambda: float(v.mean()))
    return float(v)


def element_gain(device: Device) -> torch.Tensor | None:
    """dw_min_ij / nominal dw_min per element (device-to-device variation of the step), or None
    when dw_min is one number: what a pulse train sized with the nominal granularity does to
    each element relative to the request."""
    v = device.dw_min
    if not isinstance(v, torch.Tensor) or v.dim() == 0:
        return None
    def make():
        if bool(v.min() == v.max()):  # no variation: nothing to scale
            return None
        return v / v.mean()

    return device.derived("element_gain", make)


def check_bit_length(value) -> int:
    """Validate a pulse-train bit length: an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 1:
        raise ValueError(f"bit_length must be an integer >= 1 (allowed range: [1, inf)), got {value!r}")
    return int(value)


def outer_delta(x: torch.Tensor, d: torch.Tensor, lr: float) -> torch.Tensor:
    """Desired increment of an SGD step: -lr * d^T x (sum over the batch)."""
    return -lr * (d.transpose(0, 1) @ x)


class PulseEngine:
    """Interface of all engines."""

    name = "engine"
    #: whether apply_outer(x, d, lr) equals apply(-lr d^T x) (one element-wise rule); the
    #: stochastic engine's pulse trains do not
    outer_is_elementwise = True

    def apply(self, w, device, delta, generator=None, need_touched=False) -> PulseStats:
        raise NotImplementedError(f"{type(self).__name__} must implement apply")

    def apply_outer(self, w, device, x, d, lr, generator=None, need_touched=False) -> PulseStats:
        return self.apply(w, device, outer_delta(x, d, lr), generator, need_touched)

    def describe(self) -> dict:
        return {"engine": self.name}
