"""Analog layers: torch modules whose weight lives on analog arrays.

Forward and backward MVMs go through the periphery (``config.io``) with the algorithm's
effective weight. Backward records the layer input x and output error d; the optimizer
(:class:`analogtrain.optim.AnalogSGD`) hands them to the algorithm's ``step``. The module
parameter ``weight`` mirrors the effective weight of the arrays for inspection; it receives no
gradient. ``config.mapping`` (:mod:`analogtrain.mapping`) adds aihwkit's weight scaling
(``mapping_scales`` alpha: y = alpha periphery(W x)), learned output scales
(``out_scaling_alpha``) and the split of large layers into a :class:`TileGrid` of tiles.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from ..arrays import record_versions, unchanged
from ..config import AnalogConfig, TileSpec
from ..mapping import split_sizes


class _AnalogMVM(torch.autograd.Function):
    """y = alpha * periphery(W x) (+ b): one autograd node per tile; the weight gets no gradient
    (the optimizer hands the recorded x, d to the algorithm), the digital bias gets sum_b d_b.
    With mapping scales alpha the input gradient is W^T (alpha d) and the recorded error
    d / (alpha lr_scale) (aihwkit ``pre_backward`` / ``pre_update``)."""

    @staticmethod
    def forward(ctx, x, weight_param, bias, layer, weight):
        ctx.layer = layer
        ctx.save_for_backward(x, weight)
        y = layer.config.io.mvm(x, weight, layer.io_generator)
        scales = layer._buffers.get("mapping_scales")
        if scales is not None:
            y.mul_(scales)
        return y.add_(bias) if bias is not None else y

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        layer = ctx.layer
        scales = layer._buffers.get("mapping_scales")
        grad_in = grad_bias = None
        if scales is None:
            layer._pending.append((x.detach(), grad_out.detach()))
            d_in = grad_out
        else:
            layer._pending.append((x.detach(), grad_out.detach() / (scales * layer._mapping_lr_scale())))
            d_in = grad_out * scales
        if ctx.needs_input_grad[0]:
            grad_in = layer._backward_io.mvm(d_in, weight.transpose(0, 1), layer.io_generator)
        if ctx.needs_input_grad[2]:
            grad_bias = grad_out.sum(0)
        return grad_in, None, grad_bias, None, None


class _AnalogLayerMixin:
    """Shared machinery of the analog layers: one algorithm tile, its weight mirror, the
    recorded (x, d) pairs and the mapping scales; or, for a layer larger than the mapping's
    tile size, a :class:`TileGrid` of such tiles (``self.grid``) that everything delegates to.
    Convolutions with groups > 1 delegate to their group layers the same way (conv.py)."""

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
        init_weight = init_weight.detach().reshape(out_features, in_features)
        mapping = config.mapping
        if mapping.needs_tiles(out_features, in_features):
            self.__dict__["_tiled"] = True
            self.register_parameter("weight", None)
            self.grid = TileGrid(out_features, in_features, config, self.seed, init_weight)
        else:
            if mapping.scales_weights:
                scales = mapping.weight_scales(init_weight.to(config.dtype))
                self.register_buffer("mapping_scales", scales)
                init_weight = init_weight / scales.view(-1, 1)
            if mapping.learn_out_scaling:
                n = out_features if mapping.out_scaling_columnwise else 1
                self.out_scaling_alpha = nn.Parameter(torch.ones(n, dtype=config.dtype))
            spec = TileSpec((out_features, in_features), config, seed=self.seed, init_weight=init_weight.clone())
            self.tile = config.algorithm.init(spec)
            config.check_device_names(self.tile.arrays)
            self.weight = nn.Parameter(self.tile.effective_weight().detach().clone())
            self.weight.analog_layer = self
            self.io_generator = torch.Generator().manual_seed(self.seed + 11)
            self._backward_io = config.io.backward_io()
            self._pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        if bias:
            if init_bias is None:
                gen = torch.Generator().manual_seed(self.seed + 7)
                init_bias = (torch.rand(out_features, generator=gen) * 2 - 1) / math.sqrt(in_features)
            self.bias = nn.Parameter(init_bias.detach().clone().to(config.dtype))
        else:
            self.register_parameter("bias", None)

    @property
    def tiled(self) -> bool:
        """True when the layer is split into a grid of tiles (``self.grid``)."""
        return self.__dict__.get("_tiled", False)

    @property
    def arrays(self):
        """The analog arrays of this layer by name (e.g. ``layer.arrays["P"].read()``); a tiled
        layer prefixes each tile's arrays with its grid position (``"t0_1.W"``)."""
        if self.tiled:
            return self.grid.arrays
        return self.tile.arrays

    def _compute_dtype(self) -> torch.dtype:
        return self.grid.dtype if self.tiled else self.weight.dtype

    def _mapping_lr_scale(self) -> float:
        """1 / mean(alpha) with ``weight_scaling_lr_compensation`` (aihwkit mapping_lr_scale), else 1."""
        scales = self._buffers.get("mapping_scales")
        if scales is None or not self.config.mapping.weight_scaling_lr_compensation:
            return 1.0
        return 1.0 / float(scales.mean())

    def _mvm(self, x2d: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """Periphery MVM of a batch (B, in) with the effective weight, plus ``bias`` (out,)."""
        if self.tiled:
            y = self.grid(x2d)
            return y + bias if bias is not None else y
        out_scale = self.__dict__["_parameters"].get("out_scaling_alpha")
        if out_scale is None:
            return _AnalogMVM.apply(x2d, self.weight, bias, self, self._forward_weight())
        y = _AnalogMVM.apply(x2d, self.weight, None, self, self._forward_weight()) * out_scale
        return y + bias if bias is not None else y

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
        if self.tiled:
            return
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
        if self.tiled:
            self.grid.analog_step(lr)
            return
        if not self._pending:
            return
        if len(self._pending) == 1:
            x, d = self._pending[0]
        else:
            x = torch.cat([p[0] for p in self._pending])
            d = torch.cat([p[1] for p in self._pending])
        self._pending.clear()
        self.tile.step(x, d, lr * self._mapping_lr_scale())
        self.tile.post_update_step()
        self._refresh_mirror()

    def clear_pending(self) -> None:
        if self.tiled:
            self.grid.clear_pending()
        else:
            self._pending.clear()

    def _output_scales(self) -> torch.Tensor | None:
        """alpha * s per output (mapping scales times learned output scales), or None."""
        scales = self._buffers.get("mapping_scales")
        learned = self.__dict__["_parameters"].get("out_scaling_alpha")
        if learned is not None:
            scales = learned.detach() if scales is None else scales * learned.detach()
        return scales

    def get_weights(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logical weight, bias) as copies: the arrays' effective weight times the mapping and
        learned output scales (aihwkit ``get_weights``); shape (out, in) (for a convolution,
        in = in_channels / groups * prod(kernel_size))."""
        bias = None if self.bias is None else self.bias.detach().clone()
        with torch.no_grad():
            if self.tiled:
                return self.grid.get_weights(), bias
            weight = self.tile.effective_weight().detach().clone()
            scales = self._output_scales()
            if scales is not None:
                weight = weight * scales.view(-1, 1)
        return weight, bias

    def set_weights(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """Program the logical weight (:meth:`AlgorithmState.program_weight`: counted as
        programming writes, clamped to the device bounds) and set the digital bias. With weight
        scaling the scales alpha are recomputed from ``weight`` and the learned output scales
        reset to 1 (aihwkit ``set_weights`` with ``apply_weight_scaling``). ``weight`` may also
        have the torch layer's shape (e.g. (out, in, kh, kw)). Returns the logical weight
        achieved."""
        weight = torch.as_tensor(weight)
        shape = self.grid.shape if self.tiled else tuple(self.weight.shape)
        if weight.numel() != shape[0] * shape[1]:
            raise ValueError(f"weight must have the layer's shape {shape} (or the same number "
                             f"of elements), got {tuple(weight.shape)}")
        if not bool(torch.isfinite(weight).all()):
            raise ValueError("weight must be finite")
        weight = weight.reshape(shape)
        with torch.no_grad():
            if bias is not None:
                if self.bias is None:
                    raise ValueError("this layer has no bias (bias=False)")
                self.bias.copy_(torch.as_tensor(bias).reshape(self.bias.shape))
            if self.tiled:
                return self.grid.set_weights(weight)
            target = weight.to(self.weight.dtype)
            scales = self._buffers.get("mapping_scales")
            if scales is not None:
                scales.copy_(self.config.mapping.weight_scales(target))
                target = target / scales.view(-1, 1)
            learned = self.__dict__["_parameters"].get("out_scaling_alpha")
            if learned is not None:
                learned.fill_(1.0)
            self.tile.program_weight(target)
        self._refresh_mirror()
        self.clear_pending()
        return self.get_weights()[0]

    def get_hidden_parameters(self) -> dict[str, dict[str, torch.Tensor]]:
        """{array name: its per-element device parameters and reference} (aihwkit
        ``get_hidden_parameters``; see :meth:`AnalogArray.get_hidden_parameters`)."""
        return {name: arr.get_hidden_parameters() for name, arr in self.arrays.items()}

    def set_hidden_parameters(self, params: dict[str, dict]) -> None:
        """Write per-element device parameters: {array name: {parameter: value}}."""
        arrays = self.arrays
        unknown = sorted(set(params) - set(arrays))
        if unknown:
            raise ValueError(f"unknown array name(s) {unknown}; arrays: {sorted(arrays)}")
        for name, values in params.items():
            arrays[name].set_hidden_parameters(values)
        self._refresh_mirror()

    def summary(self) -> dict:
        if self.tiled:
            return self.grid.summary()
        return self.tile.summary()

    def get_extra_state(self):
        if self.tiled:
            return {}
        return {"tile": self.tile.state_dict(), "io_rng": self.io_generator.get_state()}

    def set_extra_state(self, state):
        if self.tiled:
            return
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
        if self.tiled:
            return nn.Module._apply(self, fn, recurse)
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
        y = self._mvm(x.reshape(-1, self.in_features).to(self._compute_dtype()), self.bias)
        return y.reshape(*lead, self.out_features)

    def extra_repr(self):
        text = f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
        if self.tiled:
            text += f", tiles={len(self.grid.out_sizes)}x{len(self.grid.in_sizes)}"
        return text + f", algorithm={self.config.algorithm.name}"


class TileGrid(nn.Module):
    """A logical (out, in) weight on a grid of tiles (aihwkit TileModuleArray): rows split by
    ``mapping.max_output_size``, columns by ``max_input_size`` (balanced sizes), each tile an
    AnalogLinear without bias (own arrays, periphery, scales and pulse counters). Output of the
    grid: concatenation over row splits of the sum over column splits. Tile (i, j) is
    ``blocks[f"{i}_{j}"]``."""

    def __init__(self, out_features: int, in_features: int, config: AnalogConfig, seed: int,
                 init_weight: torch.Tensor):
        super().__init__()
        self.shape = (out_features, in_features)
        self.out_sizes = split_sizes(out_features, config.mapping.max_output_size)
        self.in_sizes = split_sizes(in_features, config.mapping.max_input_size)
        seeds = torch.randint(0, 2**31 - 1, (len(self.out_sizes) * len(self.in_sizes),),
                              generator=torch.Generator().manual_seed(seed + 15485863)).tolist()
        blocks = {}
        for (i, rows), (j, cols) in ((r, c) for r in enumerate(self._slices(self.out_sizes))
                                     for c in enumerate(self._slices(self.in_sizes))):
            blocks[f"{i}_{j}"] = AnalogLinear(cols.stop - cols.start, rows.stop - rows.start, bias=False,
                                              config=config, seed=seeds[i * len(self.in_sizes) + j],
                                              init_weight=init_weight[rows, cols])
        self.blocks = nn.ModuleDict(blocks)

    @staticmethod
    def _slices(sizes):
        start = 0
        for n in sizes:
            yield slice(start, start + n)
            start += n

    @property
    def dtype(self) -> torch.dtype:
        return self.blocks["0_0"].weight.dtype

    def forward(self, x2d: torch.Tensor) -> torch.Tensor:
        parts = x2d.split(self.in_sizes, dim=-1)
        rows = []
        for i in range(len(self.out_sizes)):
            y = None
            for j, part in enumerate(parts):
                out = self.blocks[f"{i}_{j}"](part)
                y = out if y is None else y + out
            rows.append(y)
        return rows[0] if len(rows) == 1 else torch.cat(rows, dim=-1)

    @property
    def arrays(self):
        return {f"t{key}.{name}": arr for key, block in self.blocks.items() for name, arr in block.arrays.items()}

    def analog_step(self, lr: float) -> None:
        for block in self.blocks.values():
            block.analog_step(lr)

    def clear_pending(self) -> None:
        for block in self.blocks.values():
            block.clear_pending()

    def get_weights(self) -> torch.Tensor:
        rows = [torch.cat([self.blocks[f"{i}_{j}"].get_weights()[0] for j in range(len(self.in_sizes))], dim=1)
                for i in range(len(self.out_sizes))]
        return torch.cat(rows, dim=0)

    def set_weights(self, weight: torch.Tensor) -> torch.Tensor:
        for (i, rows), (j, cols) in ((r, c) for r in enumerate(self._slices(self.out_sizes))
                                     for c in enumerate(self._slices(self.in_sizes))):
            self.blocks[f"{i}_{j}"].set_weights(weight[rows, cols])
        return self.get_weights()

    def summary(self) -> dict:
        return {"tiles": {key: block.summary() for key, block in self.blocks.items()}}
