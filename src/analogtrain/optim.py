"""Optimizers of converted models: analog layers step through their algorithm.

- :class:`AnalogSGD` behaves like ``torch.optim.SGD`` (param groups, ``state_dict``, LR
  schedulers): for a parameter that mirrors an analog layer's weight the group's ``lr`` goes
  to the layer's algorithm ``step(x, d, lr)``; every other parameter gets p <- p - lr (grad +
  wd p) with optional momentum.
- :class:`AnalogOptimizer` wraps any torch optimizer (``AnalogOptimizer(torch.optim.Adam,
  model.parameters(), lr=1e-3)``): the wrapped optimizer steps the digital parameters (biases,
  digital layers), each analog layer gets its algorithm's step with its param group's ``lr``.
  The analog update is the algorithm's (pulses of -lr d^T x), not Adam's: moment estimates
  apply to digital parameters only.

A plain torch optimizer holding an analog layer's weight raises at its first step (it would
never update the analog layer, and the layer's recorded activations would pile up). Gradient
clipping (``torch.nn.utils.clip_grad_norm_``) sees digital gradients only: analog weights
carry no ``.grad``; the analog update receives the raw error signal d of backward.
"""

from __future__ import annotations

import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook


class AnalogSGD(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0):
        if not lr > 0:
            raise ValueError(f"lr must be > 0 (allowed range: (0, inf)), got {lr!r}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    def analog_layers(self):
        for group in self.param_groups:
            for p in group["params"]:
                layer = getattr(p, "analog_layer", None)
                if layer is not None:
                    yield layer, group

    def zero_grad(self, set_to_none: bool = True):
        super().zero_grad(set_to_none)
        for layer, _ in self.analog_layers():
            layer.clear_pending()

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                layer = getattr(p, "analog_layer", None)
                if layer is not None:
                    layer.analog_step(lr)
                    continue
                if p.grad is None:
                    continue
                grad = p.grad
                if wd:
                    grad = grad.add(p, alpha=wd)
                if momentum:
                    buf = self.state[p].get("momentum_buffer")
                    if buf is None:
                        buf = self.state[p]["momentum_buffer"] = grad.clone()
                    else:
                        buf.mul_(momentum).add_(grad)
                    grad = buf
                p.add_(grad, alpha=-lr)
        return loss


def _analog_groups(optimizer):
    for group in optimizer.param_groups:
        for p in group["params"]:
            layer = getattr(p, "analog_layer", None)
            if layer is not None:
                yield layer, group


class AnalogOptimizer(torch.optim.Optimizer):
    """Any torch optimizer for the digital parameters, the algorithms' steps for the analog
    layers (module docstring). ``param_groups`` and ``state`` are the wrapped optimizer's, so
    LR schedulers, ``state_dict`` and ``add_param_group`` act on both."""

    def __init__(self, optimizer_class, params, **kwargs):
        if not (isinstance(optimizer_class, type) and issubclass(optimizer_class, torch.optim.Optimizer)):
            raise ValueError(f"optimizer_class must be a torch.optim.Optimizer subclass (e.g. torch.optim.Adam), "  # noqa: TRY004
                             f"got {optimizer_class!r}")
        if issubclass(optimizer_class, (AnalogSGD, AnalogOptimizer)):
            raise ValueError(f"optimizer_class must be a torch optimizer, not {optimizer_class.__name__}")  # noqa: TRY004
        inner = optimizer_class(params, **kwargs)
        inner._analogtrain_wrapped = True  # its analog parameters are stepped by this wrapper
        for group in inner.param_groups:
            if "lr" not in group or not group["lr"] > 0:
                raise ValueError(f"lr must be > 0 (allowed range: (0, inf)), got {group.get('lr')!r}")
        super().__init__(inner.param_groups, inner.defaults)
        self.inner = inner
        self.param_groups = inner.param_groups
        self.state = inner.state

    def analog_layers(self):
        return _analog_groups(self)

    def zero_grad(self, set_to_none: bool = True):
        self.inner.zero_grad(set_to_none)
        for layer, _ in self.analog_layers():
            layer.clear_pending()

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # analog weights carry no gradient, so the wrapped optimizer leaves them alone
        self.inner.step()
        for layer, group in self.analog_layers():
            layer.analog_step(float(group["lr"]))
        return loss

    def state_dict(self):
        return self.inner.state_dict()

    def load_state_dict(self, state_dict):
        self.inner.load_state_dict(state_dict)
        self.param_groups = self.inner.param_groups
        self.state = self.inner.state

    def add_param_group(self, param_group):
        if hasattr(self, "inner"):
            self.inner.add_param_group(param_group)
            self.param_groups = self.inner.param_groups
        else:  # during torch.optim.Optimizer.__init__
            super().add_param_group(param_group)

    def __repr__(self):
        return f"AnalogOptimizer({self.inner!r})"


def _refuse_plain_optimizers(optimizer, args, kwargs):
    """Global step pre-hook: a torch optimizer that holds an analog layer's weight would never
    update the layer; refuse at its first step (clearing the layers' recorded activations)."""
    if isinstance(optimizer, (AnalogSGD, AnalogOptimizer)) or getattr(optimizer, "_analogtrain_wrapped", False):
        return
    layers = list(_analog_groups(optimizer))
    if layers:
        cls = type(optimizer)
        name = f"torch.optim.{cls.__name__}" if cls.__module__.startswith("torch.optim") else cls.__qualname__
        for layer, _ in layers:
            layer.clear_pending()
        raise RuntimeError(
            f"{type(optimizer).__name__} holds the weights of {len(layers)} analog layer(s) "
            f"({type(layers[0][0]).__name__}, ...), which a torch optimizer never updates. Use "
            f"analogtrain.optim.AnalogOptimizer({name}, "
            f"model.parameters(), ...) or analogtrain.optim.AnalogSGD.")


_GUARD = register_optimizer_step_pre_hook(_refuse_plain_optimizers)
