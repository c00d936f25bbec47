"""Analog layers: torch modules whose weight lives on analog arrays.

Forward and backward MVMs go through the periphery (``config.io``) with the algorithm's
effective weight. Backward records the layer input x and output error d; the optimizer
(:class:`analogtrain.optim.AnalogSGD`) hands them to the algorithm's ``step``. The module
parameter ``weight`` mirrors the effective weight for inspection; it receives no gradient.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from ..arrays import record_versions, unchanged
from ..config import AnalogConfig, TileSpec


class _AnalogMVM(torch.autograd.Function):
    """y = periphery(W x) (+ b): one autograd node per layer; the weight gets no gradient (the
    optimizer hands the recorded x, d to the algorithm), the digital bias gets sum_b d_b."""

    @staticmethod
    def forward(ctx, x, weight_param, bias, layer, weight):
        ctx.layer = layer
        ctx.save_for_backward(x, weight)
        y = layer.config.io.mvm(x, weight, layer.io_generator)
        return y.add_(bias) if bias is not None else y

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        layer = ctx.layer
        layer._pending.append((x.detach(), grad_out.detach()))
        grad_in = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_in = layer._backward_io.mvm(grad_out, weight.transpose(0, 1), layer.io_generator)
        if ctx.needs_input_grad[2]:
            grad_bias = grad_out.sum(0)
        return grad_in, None, grad_bias, None, None


class _AnalogLayerMixin:
    """Shared machinery of the analog layers (one algorithm tile, its weight mirror, the recorded
    (x, d) pairs): AnalogLinear and the convolutions with groups=1."""

    def _build(self, out_features: int, in_features: int, config: AnalogConfig, seed: int,
               init_weight: torch.Tensor | None, bias: bool, init_bias: torch.Tensor | None):
        if config is None:
            config = AnalogConfig()
        if not isinstance(config, AnalogConfig):
            raise ValueError(f"config must be an AnalogConfig, got {type(config).__name__}")  # noqa: TRY004
        self.config = config
        self.seed = int(seed)
        if init_weight is None:
            gen = torch.Generator().manual_seed(self.seed)
            bound = 1.0 / math.sqrt(in_features)
            init_weight = (torch.rand((out_features, in_features), generator=gen) * 2 - 1) * bound
        spec = TileSpec((out_features, in_features), config, seed=self.seed, init_weight=init_weight.detach().clone())
        self.tile = config.algorithm.init(spec)
        config.check_device_names(self.tile.arrays)
        self.weight = nn.Parameter(self.tile.effective_weight().detach().clone())
        self.weight.analog_layer = self
        if bias:
            if init_bias is None:
                gen = torch.Generator().manual_seed(self.seed + 7)
                init_bias = (torch.rand(out_features, generator=gen) * 2 - 1) / math.sqrt(in_features)
            self.bias = nn.Parameter(init_bias.detach().clone().to(config.dtype))
        else:
            self.register_parameter("bias", None)
        self.io_generator = torch.Generator().manual_seed(self.seed + 11)
        self._backward_io = config.io.backward_io()
        self._pending: list[tuple[torch.Tensor, torch.Tensor]] = []

    @property
    def arrays(self):
        """The analog arrays of this layer by name (e.g. ``layer.arrays["P"].read()``)."""
        return self.tile.arrays

    def _mvm(self, x2d: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """Periphery MVM of a batch (B, in) with the effective weight, plus ``bias`` (out,)."""
        return _AnalogMVM.apply(x2d, self.weight, bias, self, self._forward_weight())

    def _forward_weight(self) -> torch.Tensor:
        """The effective weight the MVMs use. When the algorithm names what its effective
        weight depends on (:meth:`AlgorithmState.weight_dependencies`), that is the ``weight``
        mirror itself, rewritten in place only when a dependency changed or the mirror was
        edited (so no new array-sized tensor per step); otherwise a fresh read."""
        deps = self.tile.weight_dependencies()
        if deps is None:
            return self.tile.effective_weight()
        mirror = self.weight
        token = self.__dict__.get("_mirror_token")
        if token is not None and token[0] != mirror._version and not self.__dict__.get("_warned_edit"):
            self.__dict__["_warned_edit"] = True
            warnings.warn(f"{type(self).__name__}.weight was modified in place: the weight of an analog layer "
                          f"changes only through pulses, so the edit is discarded (rewritten from the arrays). "
                          f"Use set_weights() to program weights.", stacklevel=4)
        if token is None or token[0] != mirror._version or not unchanged(token[1], deps):
            self._refresh_mirror(deps)
        return mirror

    def _refresh_mirror(self, deps=None) -> None:
        """Write the effective weight into the ``weight`` mirror (in place)."""
        with torch.no_grad():
            if deps is None:
                deps = self.tile.weight_dependencies()
            if deps is None:
                self.weight.copy_(self.tile.effective_weight())
                return
            self.tile.effective_weight_into(self.weight)
        # straight into __dict__: nn.Module.__setattr__ costs more than the rest of the refresh
        self.__dict__["_mirror_token"] = (self.weight._version, record_versions(deps))

    def analog_step(self, lr: float) -> None:
        """Apply the recorded (x, d) pairs through the algorithm and clear them."""
        if not self._pending:
            return
        if len(self._pending) == 1:
            x, d = self._pending[0]
        else:
            x = torch.cat([p[0] for p in self._pending])
            d = torch.cat([p[1] for p in self._pending])
        self._pending.clear()
        self.tile.step(x, d, lr)
        self._refresh_mirror()

    def clear_pending(self) -> None:
        self._pending.clear()

    def get_weights(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(effective weight, bias) as copies; the weight has the array's (out, in) shape
        (for a convolution, in = in_channels * kh * kw)."""
        with torch.no_grad():
            weight = self.tile.effective_weight().detach().clone()
        return weight, None if self.bias is None else self.bias.detach().clone()

    def set_weights(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """Program the effective weight (:meth:`AlgorithmState.program_weight`: counted as
        programming writes, clamped to the device bounds) and set the digital bias. ``weight``
        may also have the torch layer's shape (e.g. (out, in, kh, kw)). Returns the effective
        weight achieved."""
        weight = torch.as_tensor(weight)
        if weight.numel() != self.weight.numel():
            raise ValueError(f"weight must have the layer's shape {tuple(self.weight.shape)} (or the same number "
                             f"of elements), got {tuple(weight.shape)}")
        if not bool(torch.isfinite(weight).all()):
            raise ValueError("weight must be finite")
        with torch.no_grad():
            achieved = self.tile.program_weight(weight.reshape(self.weight.shape))
            if bias is not None:
                if self.bias is None:
                    raise ValueError("this layer has no bias (bias=False)")
                self.bias.copy_(torch.as_tensor(bias).reshape(self.bias.shape))
        self._refresh_mirror()
        self.clear_pending()
        return achieved.detach().clone()

    def summary(self) -> dict:
        return self.tile.summary()

    def get_extra_state(self):
        return {"tile": self.tile.state_dict(), "io_rng": self.io_generator.get_state()}

    def set_extra_state(self, state):
        self.tile.load_state_dict(state["tile"])
        self.io_generator.set_state(state["io_rng"])
        self._refresh_mirror()

    def __setstate__(self, state):
        # copy.deepcopy rebuilds Parameters without their attributes: re-link the weight to
        # this layer, or the optimizer would treat the copy's weight as a digital parameter.
        super().__setstate__(state)
        # the copied mirror is a new tensor (its own version counter): refresh it at the next
        # forward instead of reading the version change as an edit
        self.__dict__.pop("_mirror_token", None)
        if self._parameters.get("weight") is not None:
            self.weight.analog_layer = self

    def _apply(self, fn, recurse=True):
        probe = fn(torch.zeros(1, dtype=self.weight.dtype, device=self.weight.device))
        out = super()._apply(fn, recurse)
        self.tile.to(probe.device, probe.dtype)
        if probe.device != self.io_generator.device:
            seed = int(torch.randint(0, 2**62, (1,), generator=self.io_generator, device=self.io_generator.device).item())
            self.io_generator = torch.Generator(device=probe.device).manual_seed(seed)
        self.weight.analog_layer = self
        return out


class AnalogLinear(_AnalogLayerMixin, nn.Module):
    """Linear layer y = W_eff x + b with W_eff from the algorithm's arrays; bias digital."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, config: AnalogConfig | None = None,
                 seed: int = 0, init_weight: torch.Tensor | None = None, init_bias: torch.Tensor | None = None):
        super().__init__()
        if in_features <= 0 or out_features <= 0:
            raise ValueError(f"in_features and out_features must be > 0, got {in_features}, {out_features}")
        self.in_features, self.out_features = in_features, out_features
        self._build(out_features, in_features, config, seed, init_weight, bias, init_bias)

    def forward(self, x):
        lead = x.shape[:-1]
        y = self._mvm(x.reshape(-1, self.in_features).to(self.weight.dtype), self.bias)
        return y.reshape(*lead, self.out_features)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"algorithm={self.config.algorithm.name}")
