"""Zero-shifting (ZS) calibration of the symmetric point by pulses (2602.21321 Sec. 2).

Stochastic ZS (Algorithm 1, eq. 7): every element receives N single pulses of random
polarity s_n in {+1, -1} (equal probability),

    W_{n+1} = W_n + dw_min * (s_n F(W_n) - G(W_n))      (+ cycle-to-cycle noise),

and the final state W_N is the SP estimate. Cyclic ZS (App. C.3, the hardware practice)
alternates up and down pulses deterministically (up first). Both run on the array's own
device physics through :func:`analogtrain.pulses.pulse_step`, vectorised over elements,
and the pulses are added to the array's pulse counters.

The estimate is what a read of the calibrated device returns: the hidden state plus the
write noise of its last write. ``set_reference=True`` makes it the array's reference, so
the array reads (approximately) zero at its SP afterwards (Sec. 1.6, eq. 105).

Errors are measured against the true per-element SP in hidden-state units:

- ``mean_error``: array-mean offset, mean(estimate) - mean(SP) (the "mean offset" of Fig. 1a);
- ``std_error``: std(estimate) - std(SP) (the "std offset" of Fig. 1a);
- ``rms_error``: per-element RMS, sqrt(mean((estimate - SP)^2));
- ``relative_error``: |mean_error| / |mean(W_0 - SP)|, the array-mean error relative to the
  initial array-mean offset. For a fresh array at W_0 = 0 this is |mean error| / |mean SP|,
  the "relative error of the SP mean" of Fig. 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from .arrays import AnalogArray
from .pulses import pulse_step

ZS_MODES = ("stochastic", "cyclic")


@dataclass
class ZeroShiftResult:
    """Outcome of :func:`zero_shift` (floats are array statistics; tensors per element)."""

    mode: str
    #: pulses per element (N)
    pulses: int
    #: pulses fired on the whole array (N * number of elements)
    total_pulses: int
    #: SP estimate per element (hidden-state units, what the reference is set to)
    estimate: torch.Tensor
    #: true SP per element
    true_sp: torch.Tensor
    mean_error: float
    std_error: float
    rms_error: float
    relative_error: float
    #: mean(W_0 - SP), the initial array-mean offset
    initial_mean_offset: float
    #: pulse counts at which the trajectory below was recorded
    checkpoints: list[int] = field(default_factory=list)
    mean_errors: list[float] = field(default_factory=list)
    rms_errors: list[float] = field(default_factory=list)
    #: (1/n) sum_{m<n} mean_d G(W_m)^2 at each checkpoint (the Theorem 2.2 quantity), if tracked
    average_asymmetry: list[float] = field(default_factory=list)

    def table_row(self) -> dict:
        return {
            "N": self.pulses,
            "mode": self.mode,
            "mean_error": self.mean_error,
            "std_error": self.std_error,
            "rms_error": self.rms_error,
            "relative_error": self.relative_error,
        }


def _errors(estimate: torch.Tensor, sp: torch.Tensor) -> tuple[float, float, float]:
    diff = (estimate - sp).double()
    mean_err = float(diff.mean())
    rms = float(diff.pow(2).mean().sqrt())
    std_err = float(estimate.double().std() - sp.double().std()) if estimate.numel() > 1 else 0.0
    return mean_err, std_err, rms


def zero_shift(
    array: AnalogArray,
    pulses: int,
    mode: str = "stochastic",
    generator: torch.Generator | None = None,
    seed: int | None = None,
    set_reference: bool = False,
    checkpoints: Sequence[int] | None = None,
    track_asymmetry: bool = False,
) -> ZeroShiftResult:
    """Run ZS with ``pulses`` pulses per element on ``array`` (in place) and measure the estimate.

    - ``mode``: ``"stochastic"`` (Algorithm 1: random +-1 pulses) or ``"cyclic"``
      (alternating up/down, App. C.3).
    - ``generator`` / ``seed``: randomness of the pulse signs and cycle noise; default is the
      array's own generator (so a run continues the array's random stream).
    - ``set_reference``: set the array's reference to the estimate afterwards.
    - ``checkpoints``: pulse counts n (1..N) at which the mean and RMS error of W_n are recorded.
    - ``track_asymmetry``: also record the running average (1/n) sum_{m<n} mean_d G(W_m)^2
      of Theorem 2.2 at the checkpoints (costs one extra G evaluation per pulse).
    """
    if mode not in ZS_MODES:
        raise ValueError(f"mode must be one of {ZS_MODES}, got {mode!r}")
    pulses = int(pulses)
    if pulses < 0:
        raise ValueError(f"pulses must be >= 0 (allowed range: [0, inf)), got {pulses!r}")
    if generator is not None and seed is not None:
        raise ValueError("give either generator or seed, not both")
    tdev = array.torch_device
    if seed is not None:
        generator = torch.Generator(device=tdev)
        generator.manual_seed(int(seed))
    gen = generator if generator is not None else array.generator
    marks = sorted({int(c) for c in (checkpoints or [])})
    if any(c < 1 or c > pulses for c in marks):
        raise ValueError(f"checkpoints must lie in [1, pulses={pulses}], got {list(checkpoints)}")
    if track_asymmetry and not marks:
        marks = [pulses] if pulses > 0 else []

    device = array.device
    sp = array.symmetric_point()
    w = array.state
    initial_offset = float((w - sp).double().mean())
    result = ZeroShiftResult(mode=mode, pulses=pulses, total_pulses=pulses * w.numel(), estimate=w,
                             true_sp=sp, mean_error=0.0, std_error=0.0, rms_error=0.0,
                             relative_error=0.0, initial_mean_offset=initial_offset)
    asym_sum = torch.zeros((), dtype=torch.float64, device=tdev)
    ups = torch.zeros((), dtype=torch.float64, device=tdev)
    up = torch.ones_like(w)
    down = -up
    next_mark = 0
    for n in range(pulses):
        if track_asymmetry:
            asym_sum += device.G(w).double().pow(2).mean()
        if mode == "stochastic":
            bits = torch.randint(0, 2, w.shape, generator=gen, device=tdev)
            sign = (2 * bits - 1).to(w.dtype)
            ups += bits.sum()
        else:
            sign = up if n % 2 == 0 else down
        w = pulse_step(w, device, sign, gen)
        if next_mark < len(marks) and n + 1 == marks[next_mark]:
            m_err, _, rms = _errors(w, sp)
            result.checkpoints.append(n + 1)
            result.mean_errors.append(m_err)
            result.rms_errors.append(rms)
            if track_asymmetry:
                result.average_asymmetry.append(float(asym_sum) / (n + 1))
            next_mark += 1
    if mode == "cyclic":
        ups = torch.tensor(float((pulses + 1) // 2 * w.numel()), dtype=torch.float64, device=tdev)
    array.state = w
    array.pulses_up += ups
    array.pulses_down += float(pulses * w.numel()) - ups
    if pulses > 0 and device.write_noise > 0:
        noise = torch.randn(w.shape, generator=gen, device=tdev, dtype=w.dtype)
        array.write_offset = noise * (device.dw_min * device.write_noise)
    estimate = (array.state + array.write_offset) if device.write_noise > 0 else array.state.clone()
    result.estimate = estimate
    result.mean_error, result.std_error, result.rms_error = _errors(estimate, sp)
    result.relative_error = abs(result.mean_error) / abs(initial_offset) if initial_offset != 0 else float("inf")
    if set_reference:
        array.set_reference(estimate)
    return result


def calibration_table(results: Sequence[ZeroShiftResult]) -> list[dict]:
    """Rows (N, mode, mean/std/RMS/relative error) for printing or JSON."""
    return [r.table_row() for r in results]
