"""convert(model, config, layers=None): replace chosen Linear / Conv2d layers by analog ones."""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

from ..config import AnalogConfig
from .layers import AnalogConv2d, AnalogLinear


def _config_for(module: nn.Module, config: AnalogConfig, name: str) -> AnalogConfig:
    """Analog layers follow the module's float dtype: float32 and float64 are simulated as
    such (``config.dtype`` replaced); half precisions are refused (pulse increments of
    dw_min ~ 1e-3 relative to the range are below their resolution)."""
    dtype = module.weight.dtype
    if dtype in (torch.float16, torch.bfloat16):
        raise ValueError(f"layer {name!r} has dtype {dtype}: analog layers simulate in float32 or float64 "
                         f"(convert model.float() or model.double() first)")
    if dtype != config.dtype:
        return dataclasses.replace(config, dtype=dtype)
    return config


def _analog_from(module: nn.Module, config: AnalogConfig, seed: int) -> nn.Module:
    if isinstance(module, nn.Linear):
        return AnalogLinear(module.in_features, module.out_features, bias=module.bias is not None, config=config,
                            seed=seed, init_weight=module.weight.data, init_bias=None if module.bias is None
                            else module.bias.data)
    if isinstance(module, nn.Conv2d):
        if module.groups != 1 or module.padding_mode != "zeros" or isinstance(module.padding, str):
            raise ValueError("AnalogConv2d supports groups=1, numeric padding and padding_mode='zeros' only")
        return AnalogConv2d(module.in_channels, module.out_channels, module.kernel_size, module.stride,
                            module.padding, module.dilation, bias=module.bias is not None, config=config, seed=seed,
                            init_weight=module.weight.data,
                            init_bias=None if module.bias is None else module.bias.data)
    raise ValueError(f"cannot convert {type(module).__name__}; only nn.Linear and nn.Conv2d")


def convert(model: nn.Module, config: AnalogConfig, layers: list[str] | None = None, seed: int = 0,
            inplace: bool = False) -> nn.Module:
    """Return a copy of ``model`` with Linear/Conv2d layers replaced by analog layers.

    ``layers=None`` converts every Linear and Conv2d; otherwise a list of module names as in
    ``model.named_modules()`` (e.g. ``["fc"]`` for the last layer of a ResNet, or a block
    name such as ``"layer4"`` to convert every Linear/Conv2d inside it). Weights and biases
    are programmed from the digital layer. Each layer gets its own seed (seed + index). An
    analog layer has its digital layer's dtype (float32 or float64; half precisions are
    refused).
    """
    if not isinstance(config, AnalogConfig):
        raise ValueError(f"config must be an AnalogConfig, got {type(config).__name__}")
    if isinstance(layers, str) or (layers is not None and not all(isinstance(n, str) for n in layers)):
        raise ValueError(f"layers must be a list of module names (e.g. [{layers!r}]), got {layers!r}")
    model = model if inplace else copy.deepcopy(model)
    names = dict(model.named_modules())
    if layers is not None:
        missing = [n for n in layers if n not in names]
        if missing:
            raise ValueError(f"layers not found in the model: {missing}")
        targets = []
        for n in layers:
            mod = names[n]
            if isinstance(mod, (nn.Linear, nn.Conv2d)):
                targets.append(n)
            else:
                inner = [f"{n}.{c}" if n else c for c, m in mod.named_modules()
                         if c and isinstance(m, (nn.Linear, nn.Conv2d))]
                if not inner:
                    raise ValueError(f"layer {n!r} is neither Linear/Conv2d nor contains one")
                targets.extend(inner)
    else:
        targets = [n for n, m in names.items() if isinstance(m, (nn.Linear, nn.Conv2d))]
    for index, name in enumerate(targets):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        module = getattr(parent, child)
        setattr(parent, child, _analog_from(module, _config_for(module, config, name), seed + index))
    return model
