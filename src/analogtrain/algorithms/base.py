"""Interface shared by all training algorithms.

An algorithm object holds hyper-parameters only (a small dataclass, validated at
construction). ``algorithm.init(spec)`` builds the per-layer state: the analog arrays,
digital buffers and generators of one layer. The state exposes

- ``effective_weight()``: what forward and backward MVMs see (e.g. W + gamma * P);
- ``step(x, d, lr)``: one optimizer step from the layer inputs x (B, in) and output
  errors d (B, out): gradient pulses, reads, transfers, EMAs, choppers;
- ``arrays``: the analog arrays by name, ``buffers``: the digital tensors by name;
- ``summary()``: pulses per array, transfers and programming counts;
- ``state_dict()`` / ``load_state_dict()`` / ``to()``.
"""

from __future__ import annotations

import dataclasses

import torch

from ..arrays import AnalogArray


class Algorithm:
    """Base of algorithm hyper-parameter classes."""

    name = "algorithm"

    def init(self, spec) -> AlgorithmState:
        raise NotImplementedError(f"{type(self).__name__} must implement init")

    def describe(self) -> dict:
        d = {"name": self.name}
        if dataclasses.is_dataclass(self):
            d.update(dataclasses.asdict(self))
        return d


class StepSizes:
    """The fast and transfer step sizes of algorithms with fields fast_lr, transfer_lr,
    scale_fast_lr, scale_transfer_lr: multiples of the optimizer's lr, or absolute with
    scale_* False (aihwkit's switches of the same names)."""

    def fast_step(self, lr: float) -> float:
        return lr * self.fast_lr if self.scale_fast_lr else self.fast_lr

    def transfer_step(self, lr: float) -> float:
        return lr * self.transfer_lr if self.scale_transfer_lr else self.transfer_lr


def check_positive(owner: str, name: str, value, allow_zero: bool = False) -> None:
    ok = value >= 0 if allow_zero else value > 0
    if not ok:
        rng = "[0, inf)" if allow_zero else "(0, inf)"
        raise ValueError(f"{owner}.{name} must lie in {rng}, got {value!r}")


def check_bool(owner: str, name: str, value) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{owner}.{name} must be True or False, got {value!r}")  # noqa: TRY004


def check_unit(owner: str, name: str, value, lo_open: bool = False, hi_open: bool = False) -> None:
    ok = (value > 0 if lo_open else value >= 0) and (value < 1 if hi_open else value <= 1)
    if not ok:
        raise ValueError(
            f"{owner}.{name} must lie in {'(' if lo_open else '['}0, 1{')' if hi_open else ']'}, got {value!r}"
        )


class AlgorithmState:
    """Per-layer state of an algorithm. Subclasses fill ``arrays`` and ``buffers``."""

    def __init__(self, spec) -> None:
        self.spec = spec
        self.arrays: dict[str, AnalogArray] = {}
        self.buffers: dict[str, torch.Tensor] = {}
        self.generators: dict[str, torch.Generator] = {}
        self.counters: dict[str, int] = {"steps": 0}

    def effective_weight(self) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement effective_weight")

    def step(self, x: torch.Tensor, d: torch.Tensor, lr: float) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement step")

    def weight_dependencies(self) -> tuple[torch.Tensor, ...] | None:
        """The tensors ``effective_weight()`` is a function of, when that is all it depends on:
        a layer then keeps its weight mirror and refreshes it only when one of them was
        replaced or modified in place (tensor identity and version counter). None (the
        default): unknown, so the effective weight is read afresh for every MVM."""
        return None

    def program_weight(self, target: torch.Tensor) -> torch.Tensor:
        """Program the effective weight to ``target`` (closed-loop programming, e.g. to load
        pretrained weights): the main array W gets the read value target - (effective - W),
        so the other arrays and buffers keep their content; counted in W's
        ``programming_writes``, never as pulses. Values are clamped to W's bounds: returns
        the effective weight achieved."""
        name = "W" if "W" in self.arrays else next(iter(self.arrays), None)
        if name is None:
            raise NotImplementedError(f"{type(self).__name__} has no analog array to program")
        target = torch.as_tensor(target, dtype=self.spec.config.dtype).to(self.arrays[name].torch_device)
        main = self.arrays[name]
        rest = self.effective_weight() - main.read()
        main.program(target - rest)
        return self.effective_weight()

    def effective_weight_into(self, out: torch.Tensor) -> torch.Tensor:
        """Write the effective weight into ``out`` (no new large tensor where a state can)."""
        return out.copy_(self.effective_weight())

    def post_update_step(self) -> None:
        """Once per optimizer step, after ``step``: each array's between-update physics
        (lifetime decay, diffusion; :meth:`AnalogArray.post_update_step`)."""
        for arr in self.arrays.values():
            arr.post_update_step()

    def summary(self) -> dict:
        """Pulses per array (up/down/total), programming writes, drift steps and counters."""
        out = {"pulses": {}, "counters": dict(self.counters)}
        for name, arr in self.arrays.items():
            out["pulses"][name] = arr.pulse_count
            if arr.programming_writes:
                out.setdefault("programming_writes", {})[name] = arr.programming_writes
            if arr.drift_steps:
                out.setdefault("drift_steps", {})[name] = arr.drift_steps
        return out

    def to(self, torch_device=None, dtype=None):
        for arr in self.arrays.values():
            arr.to(torch_device, dtype)
        for k, v in self.buffers.items():
            self.buffers[k] = v.to(torch_device, dtype if v.is_floating_point() else None)
        for k, g in list(self.generators.items()):
            if torch_device is not None and torch.device(torch_device) != g.device:
                seed = int(torch.randint(0, 2**62, (1,), generator=g, device=g.device).item())
                ng = torch.Generator(device=torch.device(torch_device))
                ng.manual_seed(seed)
                self.generators[k] = ng
        if torch_device is not None:
            self.spec.torch_device = torch.device(torch_device)
        return self

    def state_dict(self) -> dict:
        return {
            "arrays": {k: a.state_dict() for k, a in self.arrays.items()},
            "buffers": {k: v.clone() for k, v in self.buffers.items()},
            "generators": {k: g.get_state() for k, g in self.generators.items()},
            "counters": dict(self.counters),
            "extra": self.extra_state(),
        }

    def load_state_dict(self, sd: dict) -> None:
        for k, a in self.arrays.items():
            a.load_state_dict(sd["arrays"][k])
        dev = next(iter(self.arrays.values())).torch_device if self.arrays else None
        for k, v in sd["buffers"].items():
            self.buffers[k] = v.to(dev if dev is not None else v.device).clone()
        for k, g in self.generators.items():
            g.set_state(sd["generators"][k])
        self.counters = dict(sd["counters"])
        self.load_extra_state(sd.get("extra", {}))

    def extra_state(self) -> dict:
        """Python-level state (e.g. chopper signs as ints) of subclasses."""
        return {}

    def load_extra_state(self, extra: dict) -> None:
        pass
