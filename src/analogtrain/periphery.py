"""Forward / backward MVM periphery: DAC, ADC, bounds, output noise, noise and bound management.

Model (aihwkit IOParameters, ONE_PASS; defaults of 2502.06309 Table 4 and 2602.21321 Table 6):

1. noise management ``"abs_max"``: each input vector is divided by alpha = max|x| (undone at the end);
2. DAC: clip to [-inp_bound, inp_bound] and round to steps of inp_res = inp_bound / (2^inp_bits - 2);
3. analog MVM y = W x plus additive Gaussian output noise N(0, out_noise^2);
4. ADC: clip to [-out_bound, out_bound] and round to steps of out_bound / (2^out_bits - 2);
5. bound management ``"iterative"`` (forward only): while an output of a sample saturated,
   repeat that sample with its input halved (output doubled), up to ``max_bound_iterations``.

Defaults next to aihwkit's: 7-bit DAC (aihwkit inp_res = 1/126), 9-bit ADC (aihwkit
out_res = 1/510), out_noise 0.06, inp_bound 1, out_bound 12, ABS_MAX noise management,
ITERATIVE bound management. ``IO.perfect()`` is an exact floating-point MVM.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class IO:
    """Periphery of one direction of the MVM (forward, backward or transfer read)."""

    is_perfect: bool = False
    inp_bits: int | None = 7
    inp_bound: float = 1.0
    out_bits: int | None = 9
    out_bound: float = 12.0
    out_noise: float = 0.06
    noise_management: str = "abs_max"
    bound_management: str = "iterative"
    max_bound_iterations: int = 10

    def __post_init__(self):
        for name in ("inp_bits", "out_bits"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int) and v >= 2):
                raise ValueError(f"IO.{name} must be an int >= 2 or None (no quantisation), got {v!r}")
        for name in ("inp_bound", "out_bound"):
            v = getattr(self, name)
            if not v > 0:
                raise ValueError(f"IO.{name} must be > 0 (allowed range: (0, inf)), got {v!r}")
        if self.out_noise < 0:
            raise ValueError(f"IO.out_noise must be >= 0, got {self.out_noise!r}")
        if self.noise_management not in ("abs_max", "none"):
            raise ValueError(f"IO.noise_management must be 'abs_max' or 'none', got {self.noise_management!r}")
        if self.bound_management not in ("iterative", "none"):
            raise ValueError(f"IO.bound_management must be 'iterative' or 'none', got {self.bound_management!r}")
        if self.max_bound_iterations < 0:
            raise ValueError("IO.max_bound_iterations must be >= 0")

    @classmethod
    def perfect(cls) -> "IO":
        """Exact floating-point MVM (no DAC/ADC, no noise, no bounds)."""
        return cls(is_perfect=True)

    @classmethod
    def paper(cls) -> "IO":
        """2502.06309 Table 4 / 2602.21321 Table 6: 7-bit in, 9-bit out, out_noise 0.06, out_bound 12."""
        return cls()

    def backward_io(self) -> "IO":
        """Same periphery without bound management (aihwkit applies it to the forward only)."""
        d = asdict(self)
        d["bound_management"] = "none"
        return IO(**d)

    def describe(self) -> dict:
        return asdict(self)

    # ------------------------------------------------------------------ the MVM
    @staticmethod
    def _quantize(v: torch.Tensor, bound: float, bits: int | None) -> torch.Tensor:
        v = v.clamp(-bound, bound)
        if bits is None:
            return v
        step = bound / (2**bits - 2)
        return torch.round(v / step) * step

    def mvm(self, x: torch.Tensor, weight: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """y = weight @ x for a batch x of shape (B, in); weight (out, in); returns (B, out)."""
        if self.is_perfect:
            return x @ weight.transpose(0, 1)
        if self.noise_management == "abs_max":
            alpha = x.abs().amax(dim=1, keepdim=True)
            alpha = torch.where(alpha > 0, alpha, torch.ones_like(alpha))
        else:
            alpha = torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)
        scale = torch.ones_like(alpha)
        y = self._one_pass(x / alpha, weight, generator)
        if self.bound_management == "iterative":
            for _ in range(self.max_bound_iterations):
                saturated = (y.abs() >= self.out_bound).any(dim=1, keepdim=True)
                if not bool(saturated.any()):
                    break
                scale = torch.where(saturated, scale * 2.0, scale)
                y_new = self._one_pass(x / (alpha * scale), weight, generator)
                y = torch.where(saturated, y_new, y)
        return y * alpha * scale

    def _one_pass(self, x: torch.Tensor, weight: torch.Tensor, generator) -> torch.Tensor:
        xq = self._quantize(x, self.inp_bound, self.inp_bits)
        y = xq @ weight.transpose(0, 1)
        if self.out_noise > 0:
            y = y + self.out_noise * torch.randn(y.shape, generator=generator, device=y.device, dtype=y.dtype)
        return self._quantize(y, self.out_bound, self.out_bits)

    def read_columns(self, weight: torch.Tensor, columns: torch.Tensor, generator=None) -> torch.Tensor:
        """Read the given columns of ``weight`` by MVMs with one-hot inputs (a transfer read).

        Returns (out, len(columns)): column c plus output noise and ADC quantisation.
        """
        eye = torch.zeros(len(columns), weight.shape[1], dtype=weight.dtype, device=weight.device)
        eye[torch.arange(len(columns), device=weight.device), columns] = 1.0
        return self.mvm(eye, weight, generator).transpose(0, 1)
