"""Forward / backward MVM periphery: DAC, ADC, bounds, noise, noise and bound management.

Model of one analog MVM y = W x of a batch x (B, in) (aihwkit ``IOParameters`` with
``mv_type=ONE_PASS``; aihwkit_peer.md 5.6), per sample b:

1. noise management ``"abs_max"``: alpha_b = max_i |x_bi|; the array sees x_b / alpha_b and
   the result is multiplied back by alpha_b (a zero input vector gives an exact zero output);
2. DAC: round to steps of ``inp_step = 2 inp_bound / (2^inp_bits - 2)`` and clip to
   [-inp_bound, inp_bound]; then input noise N(0, inp_noise^2) per input line;
3. analog MVM W x, plus output-referred weight noise N(0, (w_noise ||x||_2)^2) (aihwkit
   ``w_noise`` with ``w_noise_type=ADDITIVE_CONSTANT``: fresh per MVM, equivalent to adding
   N(0, w_noise^2) to every weight) and output noise N(0, out_noise^2) per output line;
4. ADC: round to steps of ``out_step = 2 out_bound / (2^out_bits - 2)`` and clip to
   [-out_bound, out_bound];
5. bound management ``"iterative"`` (forward only; ``backward_io()`` switches it off as
   aihwkit does): while an output of sample b exceeds out_bound, repeat the MVM of that
   sample with its input divided by a reduction factor r = 2, 4, 8, ... (output multiplied by
   r). The pass with reduction r is final once r > max_bm_factor or r > max_bm_res / inp_step
   (aihwkit's two stopping rules; with the defaults r <= 16).

Defaults next to aihwkit 1.1.0's ``IOParameters`` (the same values, 2502.06309 Table 4 and
2602.21321 Table 6):

| here                            | aihwkit                          | value                 |
|---------------------------------|----------------------------------|-----------------------|
| inp_bits = 7                    | inp_res = 1/(2^7 - 2) = 1/126    | DAC step 2/126        |
| inp_bound = 1                   | inp_bound = 1                    |                       |
| inp_noise = 0                   | inp_noise = 0                    |                       |
| out_bits = 9                    | out_res = 1/(2^9 - 2) = 1/510    | ADC step 24/510       |
| out_bound = 12                  | out_bound = 12                   |                       |
| out_noise = 0.06                | out_noise = 0.06                 |                       |
| w_noise = 0                     | w_noise = 0 (ADDITIVE_CONSTANT)  |                       |
| noise_management = "abs_max"    | NoiseManagementType.ABS_MAX      |                       |
| bound_management = "iterative"  | BoundManagementType.ITERATIVE    | forward only          |
| max_bm_factor = 1000            | max_bm_factor = 1000             |                       |
| max_bm_res = 0.25               | max_bm_res = 0.25                |                       |

aihwkit's resolutions are fractions of the full range 2*bound (``res * 2 * bound`` in its
C++ ``checkAndSetRes``), so a k-bit converter has 2^k - 2 steps across [-bound, bound]
(2^k - 1 levels, symmetric around 0). ``IO.perfect()`` is an exact floating-point MVM
(aihwkit ``is_perfect=True``). Not modelled: stochastic rounding of DAC/ADC, IR drop,
output non-linearity, out_noise_std, PCM read noise, the SHIFT and WORST_CASE bound
management, the other noise-management types.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch


def _converter_step(bound: float, bits: int | None) -> float:
    """Step of a converter with 2^bits - 2 steps across [-bound, bound]; 0 = no quantisation."""
    if bits is None:
        return 0.0
    return 2.0 * bound / (2**bits - 2)


@dataclass(frozen=True)
class IO:
    """Periphery of one direction of the MVM (forward, backward or transfer read)."""

    is_perfect: bool = False
    inp_bits: int | None = 7
    inp_bound: float = 1.0
    inp_noise: float = 0.0
    out_bits: int | None = 9
    out_bound: float = 12.0
    out_noise: float = 0.06
    w_noise: float = 0.0
    noise_management: str = "abs_max"
    bound_management: str = "iterative"
    max_bm_factor: float = 1000.0
    max_bm_res: float = 0.25

    def __post_init__(self):
        for name in ("inp_bits", "out_bits"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and v >= 2):
                raise ValueError(f"IO.{name} must be an int >= 2 or None (no quantisation), got {v!r}")
        for name, bits in (("inp_bound", self.inp_bits), ("out_bound", self.out_bits)):
            v = getattr(self, name)
            if not v > 0:
                raise ValueError(f"IO.{name} must be > 0 (allowed range: (0, inf]), got {v!r}")
            if math.isinf(v) and bits is not None:
                raise ValueError(f"IO.{name} = inf needs the matching *_bits = None (no quantisation)")
        for name in ("inp_noise", "out_noise", "w_noise"):
            v = getattr(self, name)
            if not v >= 0:
                raise ValueError(f"IO.{name} must be >= 0 (allowed range: [0, inf)), got {v!r}")
        if self.noise_management not in ("abs_max", "none"):
            raise ValueError(f"IO.noise_management must be 'abs_max' or 'none', got {self.noise_management!r}")
        if self.bound_management not in ("iterative", "none"):
            raise ValueError(f"IO.bound_management must be 'iterative' or 'none', got {self.bound_management!r}")
        if not self.max_bm_factor >= 1:
            raise ValueError(f"IO.max_bm_factor must be >= 1 (allowed range: [1, inf)), got {self.max_bm_factor!r}")
        if not self.max_bm_res > 0:
            raise ValueError(f"IO.max_bm_res must be > 0 (allowed range: (0, inf)), got {self.max_bm_res!r}")

    # ------------------------------------------------------------------ presets
    @classmethod
    def perfect(cls) -> IO:
        """Exact floating-point MVM (no DAC/ADC, no noise, no bounds)."""
        return cls(is_perfect=True)

    @classmethod
    def paper(cls) -> IO:
        """Forward/backward periphery of 2502.06309 Table 4 and 2602.21321 Table 6 (= aihwkit
        defaults): 7-bit DAC, inp_bound 1, 9-bit ADC, out_bound 12, out_noise 0.06, abs-max
        noise management, iterative bound management."""
        return cls()

    @classmethod
    def paper_transfer(cls) -> IO:
        """Transfer-read periphery of 2602.21321 Table 6: as :meth:`paper` but with noise and
        bound management off ("Transfer-forward: noise and bound management NONE")."""
        return cls(noise_management="none", bound_management="none")

    @classmethod
    def aihwkit_preset(cls) -> IO:
        """IO of aihwkit's device presets (``ReRamSBPreset`` etc.): out_noise 0.1, out_bound 20,
        otherwise the defaults (aihwkit_peer.md 5.2)."""
        return cls(out_noise=0.1, out_bound=20.0)

    def backward_io(self) -> IO:
        """Same periphery without bound management (aihwkit applies it to the forward only)."""
        return replace(self, bound_management="none")

    def describe(self) -> dict:
        return asdict(self)

    # ------------------------------------------------------------------ converters
    @property
    def inp_step(self) -> float:
        """DAC step 2 inp_bound / (2^inp_bits - 2) (0: no quantisation)."""
        return _converter_step(self.inp_bound, self.inp_bits)

    @property
    def out_step(self) -> float:
        """ADC step 2 out_bound / (2^out_bits - 2) (0: no quantisation)."""
        return _converter_step(self.out_bound, self.out_bits)

    @property
    def max_bound_reduction(self) -> float:
        """Largest input reduction of iterative bound management: the first power of two that
        exceeds min(max_bm_factor, max_bm_res / inp_step) (16 with the defaults)."""
        limit = self.max_bm_factor
        if self.inp_step > 0:
            limit = min(limit, self.max_bm_res / self.inp_step)
        r = 1.0
        while r <= limit:
            r *= 2.0
        return r

    # ------------------------------------------------------------------ the MVM
    def _plan(self) -> tuple:
        """Constants of the hot path, computed once per IO object (the dataclass is frozen):
        (DAC step, ADC step, DAC clip in DAC units or None, ADC clip in ADC units or None)."""
        plan = self.__dict__.get("_plan_cache")
        if plan is None:
            inp_step, out_step = self.inp_step, self.out_step
            # with abs-max noise management |x / max|x|| <= 1: a bound >= 1 never clips
            in_clip = None
            if math.isfinite(self.inp_bound) and not (self.noise_management == "abs_max" and self.inp_bound >= 1.0):
                in_clip = self.inp_bound / inp_step if inp_step > 0 else self.inp_bound
            out_clip = None
            if math.isfinite(self.out_bound):
                out_clip = self.out_bound / out_step if out_step > 0 else self.out_bound
            plan = (inp_step, out_step, in_clip, out_clip)
            object.__setattr__(self, "_plan_cache", plan)
        return plan

    def mvm(self, x: torch.Tensor, weight: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """y = weight @ x for a batch x of shape (B, in); weight (out, in); returns (B, out).

        Noise is drawn from ``generator`` (on the tensors' device), so a seeded generator
        reproduces the MVM bit for bit.
        """
        if x.dim() == 1:
            return self.mvm(x[None], weight, generator)[0]
        if self.is_perfect:
            return x @ weight.transpose(0, 1)
        iterative = self.bound_management == "iterative"
        out_step = self._plan()[1]
        if self.noise_management == "abs_max":
            alpha = x.abs().amax(dim=1, keepdim=True)
            # a zero row is divided by a tiny number instead of 0 (0 / tiny = 0: exact zeros
            # through the DAC) and its output is multiplied by alpha = 0: an exact zero output
            denom = alpha.clamp_min(torch.finfo(x.dtype).tiny)
            y, exceeded = self._one_pass(x, denom, weight, generator, iterative)
            y.mul_(alpha.mul_(out_step) if out_step > 0 else alpha)
        else:
            denom = None
            y, exceeded = self._one_pass(x, None, weight, generator, iterative)
            if out_step > 0:
                y.mul_(out_step)
        if exceeded is not None:  # some sample saturated (rare): aihwkit's loop over those samples
            if denom is None:
                denom = torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)
            reduction, final = 1.0, self.max_bound_reduction
            while reduction < final:
                rows = torch.nonzero(exceeded, as_tuple=True)[0]
                if rows.numel() == 0:
                    break
                reduction *= 2.0
                scale = denom[rows] * reduction
                y_rows, exceeded_rows = self._one_pass(x[rows], scale, weight, generator, True, always=True)
                y = y.index_copy(0, rows, y_rows.mul_(scale * out_step if out_step > 0 else scale))
                exceeded = torch.zeros_like(exceeded).index_copy(0, rows, exceeded_rows)
        return y

    def _one_pass(self, x: torch.Tensor, denom: torch.Tensor | None, weight: torch.Tensor, generator,
                  check: bool = True, always: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One analog pass of the inputs x / denom (denom: (B, 1) or None): DAC, MVM, noise, ADC.

        Returns the ADC outputs (B, out) in ADC steps (multiply by ``out_step`` for the value;
        in plain units without an ADC), clipped to the output bound, and, when ``check``, per
        sample whether an output exceeded it; None instead when no output did (unless
        ``always``), found with one min/max reduction. The DAC works in its own steps: x /
        (denom inp_step) is rounded and clipped there, and the step goes into the matmul's
        scale, so quantisation costs one extra operation per direction.
        """
        inp_step, out_step, in_clip, out_clip = self._plan()
        if inp_step > 0:
            xq = x.div(denom.mul(inp_step) if denom is not None else inp_step).round_()
            in_scale = inp_step
        else:
            xq = x.div(denom) if denom is not None else x.clone()
            in_scale = 1.0
        if in_clip is not None:
            xq.clamp_(-in_clip, in_clip)
        if self.inp_noise > 0:
            xq = xq.mul_(in_scale).add_(torch.randn(xq.shape, generator=generator, device=xq.device,
                                                    dtype=xq.dtype).mul_(self.inp_noise))
            in_scale = 1.0
        to_adc = 1.0 / out_step if out_step > 0 else 1.0
        y_shape = (x.shape[0], weight.shape[0])
        if self.out_noise > 0:  # y = (in_scale xq W^T + out_noise xi) / out_step in one addmm
            noise = torch.randn(y_shape, generator=generator, device=x.device, dtype=x.dtype)
            y = torch.addmm(noise, xq, weight.transpose(0, 1), beta=self.out_noise * to_adc,
                            alpha=in_scale * to_adc)
        else:
            y = xq @ weight.transpose(0, 1)
            if in_scale != 1.0:
                y.mul_(in_scale)
            if out_step > 0:
                y.div_(out_step)
        if self.w_noise > 0:
            norm = xq.norm(dim=1, keepdim=True).mul_(self.w_noise * in_scale * to_adc)
            y.addcmul_(norm, torch.randn(y_shape, generator=generator, device=y.device, dtype=y.dtype))
        if out_step > 0:
            y.round_()
        exceeded = None
        if check and y.numel() and out_clip is not None:
            if not always:
                lo, hi = torch.aminmax(y)
                always = hi.item() > out_clip or lo.item() < -out_clip
            if always:
                exceeded = (y.abs() > out_clip).any(dim=1)
        if out_clip is not None:
            y.clamp_(-out_clip, out_clip)
        return y, exceeded

    def read_columns(self, weight: torch.Tensor, columns: torch.Tensor, generator=None) -> torch.Tensor:
        """Read the given columns of ``weight`` by MVMs with one-hot inputs (a transfer read).

        Returns (out, len(columns)): column c plus output noise, ADC quantisation and clipping.
        """
        columns = torch.as_tensor(columns, device=weight.device, dtype=torch.long).reshape(-1)
        eye = torch.zeros(columns.numel(), weight.shape[1], dtype=weight.dtype, device=weight.device)
        eye[torch.arange(columns.numel(), device=weight.device), columns] = 1.0
        return self.mvm(eye, weight, generator).transpose(0, 1)
