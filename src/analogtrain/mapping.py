"""Mapping of a logical weight onto analog tiles, as aihwkit's ``MappingParameter`` (1.1.0).

- Weight scaling (``weight_scaling_omega`` = omega > 0): the arrays hold W / alpha with
  alpha = max |W| / omega (per output row with ``weight_scaling_columnwise``, else one scalar),
  computed whenever weights are programmed (construction, ``set_weights``). The analog output is
  multiplied by alpha (y = alpha * periphery(W_a x)), the input gradient is W_a^T (alpha d), and
  the update receives d / alpha, so that the logical weight alpha W_a moves by -lr d^T x (aihwkit
  ``pre_update``). ``weight_scaling_lr_compensation``: the update gets lr / mean(alpha) and
  d / (alpha / mean(alpha)) instead (aihwkit's ``mapping_lr_scale``).
- Learned output scaling (``learn_out_scaling``): a digital parameter s (ones, shape (1,) or
  (out,) with ``out_scaling_columnwise``) with y = s * (alpha * periphery(W_a x)) + b in the
  autograd graph, trained by the digital optimizer; the analog update then receives d s.
  ``set_weights`` resets s to 1 (aihwkit ``set_scales``).
- Tiles (``max_input_size``, ``max_output_size``; 0 = no limit): a layer of (out, in) larger
  than that is split into a grid of tiles with balanced sizes (aihwkit ``get_split_sizes``:
  1,000 -> 500 + 500), each with its own arrays, periphery, noise, scales and pulse counters;
  outputs of the input splits are summed, output splits concatenated, the bias is digital and
  shared. aihwkit's default limit is 512 x 512; analogtrain's default is no limit (one tile per
  layer, as before this option existed): use ``Mapping.aihwkit()`` for aihwkit's defaults.
- ``digital_bias``: biases are always digital here (True only).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def split_sizes(size: int, max_size: int) -> list[int]:
    """Balanced split of ``size`` into chunks of at most ``max_size`` (0: one chunk), as
    aihwkit's TileModuleArray.get_split_sizes: n = ceil(size / max), sizes differ by <= 1."""
    if max_size <= 0 or size <= max_size:
        return [size]
    n = (size + max_size - 1) // max_size
    base, extra = divmod(size, n)
    return [base + (i < extra) for i in range(n)]


@dataclass(frozen=True)
class Mapping:
    """aihwkit MappingParameter fields (module docstring)."""

    weight_scaling_omega: float = 0.0
    weight_scaling_columnwise: bool = False
    weight_scaling_lr_compensation: bool = False
    learn_out_scaling: bool = False
    out_scaling_columnwise: bool = False
    max_input_size: int = 0
    max_output_size: int = 0
    digital_bias: bool = True

    def __post_init__(self):
        omega = self.weight_scaling_omega
        if not (isinstance(omega, (int, float)) and not isinstance(omega, bool) and omega >= 0):
            raise ValueError(f"mapping.weight_scaling_omega must be a number >= 0 (0: no scaling), got {omega!r}")
        for name in ("weight_scaling_columnwise", "weight_scaling_lr_compensation", "learn_out_scaling",
                     "out_scaling_columnwise", "digital_bias"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"mapping.{name} must be true or false, got {getattr(self, name)!r}")  # noqa: TRY004
        for name in ("max_input_size", "max_output_size"):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
                raise ValueError(f"mapping.{name} must be an integer >= 0 (0: no limit), got {v!r}")
        if not self.digital_bias:
            raise ValueError("mapping.digital_bias must be true: analog biases (an extra array column) are not "
                             "simulated; biases are digital")

    @classmethod
    def aihwkit(cls, **overrides) -> Mapping:
        """aihwkit 1.1.0's MappingParameter defaults: tiles of at most 512 x 512, no scaling."""
        return cls(**{"max_input_size": 512, "max_output_size": 512, **overrides})

    @property
    def scales_weights(self) -> bool:
        return self.weight_scaling_omega > 0

    def needs_tiles(self, out_features: int, in_features: int) -> bool:
        return len(split_sizes(in_features, self.max_input_size)) > 1 or \
            len(split_sizes(out_features, self.max_output_size)) > 1

    def weight_scales(self, weight: torch.Tensor) -> torch.Tensor:
        """alpha = max |W| / omega, shape (out,) (columnwise) or (1,); 1 where max |W| = 0."""
        if self.weight_scaling_columnwise:
            peak = weight.abs().amax(dim=1)
        else:
            peak = weight.abs().max().reshape(1)
        alpha = peak / self.weight_scaling_omega
        return torch.where(alpha == 0, torch.ones_like(alpha), alpha)

    def describe(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}
