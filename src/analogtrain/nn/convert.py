"""convert(model, config, layers=None): replace chosen torch layers by analog ones, with a
report of what was converted and of every parameter-holding module left digital, and why.

Converted: Linear, Conv1d/2d/3d (any padding, padding_mode, dilation, groups), RNN / LSTM / GRU
(no ``proj_size``) and their cells. Left digital, each with its reason: normalisation and other
elementwise layers, embeddings (a lookup, no MVM), and the weight layers that have no analog
counterpart here (ConvTranspose, Bilinear, MultiheadAttention: its projections are applied by
``F.multi_head_attention_forward`` from raw parameters, so even its ``out_proj`` Linear is never
called as a module and is not converted). With ``layers=None`` a warning names any weight layer
left digital that way; the full report is logged (logger ``analogtrain.nn.convert``) and
returned with ``return_report=True``.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import warnings

import torch
from torch import nn

from ..config import AnalogConfig
from .conv import AnalogConv1d, AnalogConv2d, AnalogConv3d
from .layers import AnalogLinear
from .recurrent import AnalogGRU, AnalogGRUCell, AnalogLSTM, AnalogLSTMCell, AnalogRNN, AnalogRNNCell

LOG = logging.getLogger(__name__)

CONVERTIBLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.RNN, nn.LSTM, nn.GRU, nn.RNNCell, nn.LSTMCell,
               nn.GRUCell)
#: weight layers whose MVMs would be analog in hardware but have no analog counterpart here
UNSUPPORTED = {
    nn.ConvTranspose1d: "no analog ConvTranspose layer",
    nn.ConvTranspose2d: "no analog ConvTranspose layer",
    nn.ConvTranspose3d: "no analog ConvTranspose layer",
    nn.Bilinear: "no analog Bilinear layer",
    nn.MultiheadAttention: "MultiheadAttention applies its projections from raw parameters "
                           "(F.multi_head_attention_forward); no analog counterpart",
}
DIGITAL_BY_DESIGN = (
    (nn.modules.batchnorm._NormBase, "normalisation: digital by design"),
    (nn.LayerNorm, "normalisation: digital by design"),
    (nn.GroupNorm, "normalisation: digital by design"),
    (nn.Embedding, "an embedding is a lookup, not an MVM"),
    (nn.EmbeddingBag, "an embedding is a lookup, not an MVM"),
)


@dataclasses.dataclass
class ConversionReport:
    """What ``convert`` did: ``converted`` [(name, torch type, analog type)], ``left_digital``
    [(name, type, reason)] for every module holding parameters that stayed digital."""

    converted: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    left_digital: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"converted {len(self.converted)} module(s):"]
        lines += [f"  {n or '(model)'}: {t} -> {a}" for n, t, a in self.converted]
        lines.append(f"left digital {len(self.left_digital)} module(s) holding parameters:")
        lines += [f"  {n or '(model)'}: {t} ({why})" for n, t, why in self.left_digital]
        return "\n".join(lines)


def _config_for(module: nn.Module, config: AnalogConfig, name: str) -> AnalogConfig:
    """Analog layers follow the module's float dtype: float32 and float64 are simulated as
    such (``config.dtype`` replaced); half precisions are refused (pulse increments of
    dw_min ~ 1e-3 relative to the range are below their resolution)."""
    dtype = next(module.parameters()).dtype
    if dtype in (torch.float16, torch.bfloat16):
        raise ValueError(f"layer {name!r} has dtype {dtype}: analog layers simulate in float32 or float64 "
                         f"(convert model.float() or model.double() first)")
    if dtype != config.dtype:
        return dataclasses.replace(config, dtype=dtype)
    return config


def _why_not(module: nn.Module, parent: nn.Module | None) -> str | None:
    """None if ``module`` can be converted, else the reason it stays digital."""
    if isinstance(parent, nn.MultiheadAttention):
        return "inside MultiheadAttention (applied from raw parameters, never called as a module)"
    if isinstance(module, (nn.RNN, nn.LSTM, nn.GRU)) and getattr(module, "proj_size", 0):
        return "LSTM with proj_size > 0 has no analog counterpart"
    if isinstance(module, CONVERTIBLE):
        return None
    for cls, reason in UNSUPPORTED.items():
        if isinstance(module, cls):
            return reason
    for cls, reason in DIGITAL_BY_DESIGN:
        if isinstance(module, cls):
            return reason
    return f"no analog counterpart of {type(module).__name__}"


#: torch class -> analog class (isinstance order: subclasses of a torch layer convert like it)
ANALOG_CLASSES = {nn.Conv1d: AnalogConv1d, nn.Conv2d: AnalogConv2d, nn.Conv3d: AnalogConv3d,
                  nn.RNNCell: AnalogRNNCell, nn.LSTMCell: AnalogLSTMCell, nn.GRUCell: AnalogGRUCell,
                  nn.RNN: AnalogRNN, nn.LSTM: AnalogLSTM, nn.GRU: AnalogGRU}


def _analog_class(module):
    return next(analog for cls, analog in ANALOG_CLASSES.items() if isinstance(module, cls))


def _cell_init(module, suffix: str = ""):
    def get(name):
        p = getattr(module, name + suffix, None)
        return None if p is None else p.data

    return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")


def _analog_from(module: nn.Module, config: AnalogConfig, seed: int) -> nn.Module:
    bias = getattr(module, "bias", None)
    if isinstance(module, nn.Linear):
        return AnalogLinear(module.in_features, module.out_features, bias=bias is not None, config=config,
                            seed=seed, init_weight=module.weight.data, init_bias=None if bias is None else bias.data)
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return _analog_class(module)(
            module.in_channels, module.out_channels, module.kernel_size, module.stride, module.padding,
            module.dilation, module.groups, bias=bias is not None, padding_mode=module.padding_mode, config=config,
            seed=seed, init_weight=module.weight.data, init_bias=None if bias is None else bias.data)
    if isinstance(module, (nn.RNNCell, nn.LSTMCell, nn.GRUCell)):
        kwargs = {"nonlinearity": module.nonlinearity} if isinstance(module, nn.RNNCell) else {}
        return _analog_class(module)(module.input_size, module.hidden_size, bias=module.bias, config=config,
                                     seed=seed, init=_cell_init(module), **kwargs)
    if isinstance(module, (nn.RNN, nn.LSTM, nn.GRU)):
        directions = ["", "_reverse"] if module.bidirectional else [""]
        init = {f"l{k}{s}": _cell_init(module, f"_l{k}{s}") for k in range(module.num_layers) for s in directions}
        kwargs = {"nonlinearity": module.nonlinearity} if isinstance(module, nn.RNN) else {}
        return _analog_class(module)(module.input_size, module.hidden_size, num_layers=module.num_layers,
                                     bias=module.bias, batch_first=module.batch_first, dropout=module.dropout,
                                     bidirectional=module.bidirectional, config=config, seed=seed, init=init,
                                     **kwargs)
    raise ValueError(f"cannot convert {type(module).__name__}")


def convert(model: nn.Module, config: AnalogConfig, layers: list[str] | None = None, seed: int = 0,
            inplace: bool = False, return_report: bool = False):
    """Return a copy of ``model`` with its weight layers replaced by analog layers (module
    docstring for which), or ``(model, ConversionReport)`` with ``return_report=True``.

    ``layers=None`` converts every convertible layer; otherwise a list of module names as in
    ``model.named_modules()`` (e.g. ``["fc"]`` for the last layer of a ResNet, or a block
    name such as ``"layer4"`` to convert every convertible layer inside it). Weights and biases
    are programmed from the digital layer. Each layer gets its own seed (seed + index). An
    analog layer has its digital layer's dtype (float32 or float64; half precisions are
    refused).
    """
    if not isinstance(config, AnalogConfig):
        raise ValueError(f"config must be an AnalogConfig, got {type(config).__name__}")  # noqa: TRY004
    if isinstance(layers, str) or (layers is not None and not all(isinstance(n, str) for n in layers)):
        raise ValueError(f"layers must be a list of module names (e.g. [{layers!r}]), got {layers!r}")
    model = model if inplace else copy.deepcopy(model)
    names = dict(model.named_modules())

    def parent_of(name):
        return names[name.rpartition(".")[0]] if "." in name else (model if name else None)

    def convertible_inside(n):
        return [c for c, m in names.items() if (c == n or c.startswith(f"{n}.") or not n)
                and _why_not(m, parent_of(c)) is None]

    if layers is not None:
        missing = [n for n in layers if n not in names]
        if missing:
            raise ValueError(f"layers not found in the model: {missing}")
        targets = []
        for n in layers:
            reason = _why_not(names[n], parent_of(n))
            if reason is None:
                targets.append(n)
                continue
            inner = convertible_inside(n)
            if not inner:
                raise ValueError(f"layer {n!r} ({type(names[n]).__name__}) cannot be converted and contains no "
                                 f"convertible layer: {reason}")
            targets.extend(inner)
        targets = list(dict.fromkeys(targets))
    else:
        targets = convertible_inside("")

    report = ConversionReport()
    for index, name in enumerate(targets):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        module = getattr(parent, child) if name else model
        analog = _analog_from(module, _config_for(module, config, name), seed + index)
        if name:
            setattr(parent, child, analog)
        else:  # the model is itself one convertible layer
            model = analog
        report.converted.append((name, type(module).__name__, type(analog).__name__))

    converted = set(targets)
    for name, module in names.items():
        if name in converted or any(name.startswith(f"{t}.") for t in converted):
            continue
        if not any(True for _ in module.parameters(recurse=False)):
            continue
        reason = _why_not(module, parent_of(name))
        if reason is None:
            reason = f"not selected (layers={layers})"
        report.left_digital.append((name, type(module).__name__, reason))
    LOG.info("%s", report)
    if layers is None:
        skipped = [f"{n} ({t}: {why})" for n, t, why in report.left_digital
                   if type(names[n]) in UNSUPPORTED or why.startswith(("inside MultiheadAttention", "LSTM with"))]
        if skipped:
            warnings.warn("convert left these weight layers digital: " + "; ".join(skipped), stacklevel=2)
    return (model, report) if return_report else model
