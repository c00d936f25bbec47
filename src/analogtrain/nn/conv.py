"""Analog convolutions (1-D, 2-D, 3-D) as MVMs over unfolded patches.

A convolution with weight (out, C, k_1..k_N) is the MVM y_p = W x_p for every patch x_p
(C * k_1 ... k_N values, flattened in torch's weight order) of the padded input: one array of
shape (out, C k_1 ... k_N), and every patch of every sample is one rank-1 update (x_p, d_p) as
in aihwkit's AnalogConv layers. ``padding`` takes numbers, "same" or "valid" and
``padding_mode`` zeros / reflect / replicate / circular, with torch's semantics (for "same" and
an even kernel the extra row goes right, as in torch). ``groups = g > 1`` splits the channels
into g independent convolutions, each on its own tile of shape (out/g, C/g k_1 ... k_N)
(``layer.group_layers``): physically g crossbars, never one block-diagonal array whose zeros
would receive pulses.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import AnalogConfig
from .layers import _AnalogLayerMixin

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _tuple(value, n: int, name: str) -> tuple[int, ...]:
    values = (value,) * n if isinstance(value, int) else tuple(value)
    if len(values) != n or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must be an int or a tuple of {n} ints, got {value!r}")
    return values


def unfold_patches(x: torch.Tensor, kernel_size, stride, dilation) -> tuple[torch.Tensor, tuple[int, ...]]:
    """(B, C, S_1..S_N) -> ((B * P, C * k_1 ... k_N) patches, output spatial shape (O_1..O_N)),
    O_i = floor((S_i - dilation_i (k_i - 1) - 1) / stride_i) + 1; rows ordered (b, o_1, .., o_N),
    columns (c, j_1, .., j_N) like torch's conv weight and ``F.unfold``."""
    b, c = x.shape[:2]
    n = len(kernel_size)
    for i in range(n):
        span = dilation[i] * (kernel_size[i] - 1) + 1
        if x.shape[2 + i] < span:
            raise ValueError(f"input size {x.shape[2 + i]} in spatial dim {i} (after padding) is smaller than the "
                             f"dilated kernel ({span})")
        x = x.unfold(2 + i, span, stride[i])
        if dilation[i] > 1:
            x = x[..., :: dilation[i]]
    out_shape = tuple(x.shape[2:2 + n])
    x = x.permute(0, *range(2, 2 + n), 1, *range(2 + n, 2 + 2 * n))
    return x.reshape(b * math.prod(out_shape), c * math.prod(kernel_size)), out_shape


class _AnalogConvNd(_AnalogLayerMixin, nn.Module):
    """N-d analog convolution (module docstring); subclasses set ``N``."""

    N = 0

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", config: AnalogConfig | None = None,
                 seed: int = 0, init_weight: torch.Tensor | None = None, init_bias: torch.Tensor | None = None):
        super().__init__()
        n = self.N
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if not (isinstance(v, int) and v > 0):
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"in_channels ({in_channels}) and out_channels ({out_channels}) must be divisible by "
                             f"groups ({groups})")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _tuple(kernel_size, n, "kernel_size")
        self.stride = _tuple(stride, n, "stride")
        self.dilation = _tuple(dilation, n, "dilation")
        for name, vals in (("kernel_size", self.kernel_size), ("stride", self.stride), ("dilation", self.dilation)):
            if min(vals) < 1:
                raise ValueError(f"{name} must be >= 1, got {vals}")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"padding must be 'same', 'valid', an int or a tuple of {n} ints, got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError("padding='same' needs stride 1 (as in torch)")
        elif min(_tuple(padding, n, "padding")) < 0:
            raise ValueError(f"padding must be >= 0, got {padding!r}")
        self.padding = padding if isinstance(padding, str) else _tuple(padding, n, "padding")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        self.padding_mode = padding_mode
        self._pad = self._pad_amounts()
        fan_in = in_channels // groups * math.prod(self.kernel_size)
        if groups == 1:
            if init_weight is not None:
                init_weight = init_weight.reshape(out_channels, fan_in)
            self._build(out_channels, fan_in, config, seed, init_weight, bias, init_bias)
            return
        # one tile per group (module docstring)
        self.register_parameter("weight", None)
        self.register_parameter("bias", None)
        self.config = config if config is not None else AnalogConfig()
        self.seed = int(seed)
        seeds = torch.randint(0, 2**31 - 1, (groups,), generator=torch.Generator().manual_seed(self.seed + 104729))
        out_g, in_g = out_channels // groups, in_channels // groups
        layers = []
        for g in range(groups):
            rows = slice(g * out_g, (g + 1) * out_g)
            layers.append(type(self)(
                in_g, out_g, self.kernel_size, self.stride, self.padding, self.dilation, 1, bias, padding_mode,
                config, int(seeds[g]),
                None if init_weight is None else init_weight.reshape(out_channels, fan_in)[rows],
                None if init_bias is None else init_bias[rows]))
        self.group_layers = nn.ModuleList(layers)

    def _pad_amounts(self) -> list[int]:
        """F.pad amounts (last dim first); "same" puts the odd row right, as torch does."""
        pads = []
        for i in reversed(range(self.N)):
            if self.padding == "valid":
                left = right = 0
            elif self.padding == "same":
                total = self.dilation[i] * (self.kernel_size[i] - 1)
                left, right = total // 2, total - total // 2
            else:
                left = right = self.padding[i]
            pads += [left, right]
        return pads

    @property
    def grouped(self) -> bool:
        return self.groups > 1

    def forward(self, x):
        n = self.N
        if x.dim() not in (n + 1, n + 2):
            raise ValueError(f"{type(self).__name__} expects input (B, C, {n} spatial dims) or (C, {n} spatial dims), "
                             f"got shape {tuple(x.shape)}")
        batched = x.dim() == n + 2
        if not batched:
            x = x.unsqueeze(0)
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__} expects {self.in_channels} input channels, got {x.shape[1]}")
        if self.grouped:
            parts = x.chunk(self.groups, dim=1)
            y = torch.cat([layer(part) for layer, part in zip(self.group_layers, parts)], dim=1)
            return y if batched else y.squeeze(0)
        x = x.to(self._compute_dtype())
        if any(self._pad):
            if self.padding_mode == "zeros":
                x = F.pad(x, self._pad)
            else:
                x = F.pad(x, self._pad, mode=self.padding_mode)
        b = x.shape[0]
        cols, out_shape = unfold_patches(x, self.kernel_size, self.stride, self.dilation)
        y = self._mvm(cols, self.bias)
        y = y.reshape(b, *out_shape, self.out_channels).movedim(-1, 1)
        return y if batched else y.squeeze(0)

    # --- a grouped layer delegates to its group tiles --------------------------------------

    @property
    def arrays(self):
        if self.grouped:
            return {f"g{g}.{name}": arr for g, layer in enumerate(self.group_layers) for name, arr in layer.arrays.items()}
        return self.tile.arrays

    def analog_step(self, lr: float) -> None:
        if self.grouped:
            for layer in self.group_layers:
                layer.analog_step(lr)
            return
        super().analog_step(lr)

    def clear_pending(self) -> None:
        if self.grouped:
            for layer in self.group_layers:
                layer.clear_pending()
            return
        super().clear_pending()

    def get_weights(self):
        """(weight (out, C/groups * k_1 ... k_N), bias) as copies; a grouped layer stacks its groups."""
        if not self.grouped:
            return super().get_weights()
        parts = [layer.get_weights() for layer in self.group_layers]
        bias = None if parts[0][1] is None else torch.cat([p[1] for p in parts])
        return torch.cat([p[0] for p in parts]), bias

    def set_weights(self, weight, bias=None):
        if not self.grouped:
            return super().set_weights(weight, bias)
        weight = torch.as_tensor(weight)
        fan_in = self.in_channels // self.groups * math.prod(self.kernel_size)
        if weight.numel() != self.out_channels * fan_in:
            raise ValueError(f"weight must have {self.out_channels} x {fan_in} elements "
                             f"(e.g. shape {(self.out_channels, self.in_channels // self.groups, *self.kernel_size)}), "
                             f"got {tuple(weight.shape)}")
        weight = weight.reshape(self.groups, -1, fan_in)
        biases = [None] * self.groups if bias is None else torch.as_tensor(bias).reshape(self.groups, -1)
        return torch.cat([layer.set_weights(w, b) for layer, w, b in zip(self.group_layers, weight, biases)])

    def summary(self) -> dict:
        if self.grouped:
            return {"groups": [layer.summary() for layer in self.group_layers]}
        return super().summary()

    def get_extra_state(self):
        return {} if self.grouped else super().get_extra_state()

    def set_extra_state(self, state):
        if not self.grouped:
            super().set_extra_state(state)

    def _apply(self, fn, recurse=True):
        if self.grouped:
            return nn.Module._apply(self, fn, recurse)
        return super()._apply(fn, recurse)

    def extra_repr(self):
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}")
        if any(d != 1 for d in self.dilation):
            text += f", dilation={self.dilation}"
        if self.grouped:
            text += f", groups={self.groups}"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode!r}"
        return text + f", algorithm={self.config.algorithm.name}"


class AnalogConv1d(_AnalogConvNd):
    """Analog ``nn.Conv1d``: input (B, C, L); one rank-1 update per output position."""

    N = 1


class AnalogConv2d(_AnalogConvNd):
    """Analog ``nn.Conv2d``: input (B, C, H, W); one rank-1 update per output pixel."""

    N = 2


class AnalogConv3d(_AnalogConvNd):
    """Analog ``nn.Conv3d``: input (B, C, D, H, W); one rank-1 update per output voxel."""

    N = 3
