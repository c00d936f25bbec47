"""Digital SGD (floating-point baseline) and Analog SGD (2502.06309 eq. 2).

Analog SGD: one array W receives the gradient step as pulses,

    W_{k+1} = W_k - lr * grad ⊙ F(W_k) - lr * |grad| ⊙ G(W_k)

(expected engine; the stochastic engine fires the pulse trains whose mean this is).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Algorithm, AlgorithmState


@dataclass
class DigitalSGD(Algorithm):
    """Floating-point SGD on a digital weight: W <- W - lr * d^T x. No pulses."""

    name = "digital_sgd"

    def init(self, spec):
        return DigitalSGDState(spec)


class DigitalSGDState(AlgorithmState):
    def __init__(self, spec):
        super().__init__(spec)
        init = spec.init_weight if spec.init_weight is not None else torch.zeros(spec.shape)
        self.buffers["W"] = init.detach().to(device=spec.torch_device, dtype=spec.config.dtype).clone()

    def effective_weight(self):
        return self.buffers["W"]

    def weight_dependencies(self):
        return (self.buffers["W"],)

    def program_weight(self, target):
        """A digital weight: set exactly."""
        self.buffers["W"].copy_(torch.as_tensor(target, dtype=self.buffers["W"].dtype))
        return self.buffers["W"]

    def step(self, x, d, lr):
        self.buffers["W"].add_(d.transpose(0, 1) @ x, alpha=-lr)
        self.counters["steps"] += 1


@dataclass
class AnalogSGD(Algorithm):
    """Analog SGD: gradient pulses straight onto the single array W (2502.06309 eq. 2)."""

    name = "analog_sgd"

    def init(self, spec):
        return AnalogSGDState(spec)


class AnalogSGDState(AlgorithmState):
    def __init__(self, spec):
        super().__init__(spec)
        init = spec.init_weight if spec.init_weight is not None else 0.0
        self.arrays["W"] = spec.make_array("W", init=init)

    def effective_weight(self):
        return self.arrays["W"].read()

    def weight_dependencies(self):
        return self.arrays["W"].read_dependencies()

    def effective_weight_into(self, out):
        return self.arrays["W"].read_into(out)

    def step(self, x, d, lr):
        self.arrays["W"].update_outer(x, d, lr)
        self.counters["steps"] += 1
