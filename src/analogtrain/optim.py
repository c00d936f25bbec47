"""AnalogSGD: steps analog layers through their algorithm, digital parameters by SGD.

Behaves like ``torch.optim.SGD`` (param groups, ``state_dict``, LR schedulers): for a
parameter that mirrors an analog layer's weight the group's ``lr`` goes to the layer's
algorithm ``step(x, d, lr)``; every other parameter gets p <- p - lr (grad + wd p) with
optional momentum.
"""

from __future__ import annotations

import torch


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
