"""Two-stage baseline (2602.21321 Algorithm 4, App. B.1): zero-shift P, then train.

1. Estimate the SP of the residual array P with N zero-shifting pulses per element
   (:func:`analogtrain.calibration.zero_shift`, stochastic Algorithm 1 or cyclic) and set
   P's reference to the estimate, so that P reads (about) zero at its SP.
2. Train with the wrapped algorithm (the paper: Residual Learning / TT-v1 in Fig. 2, TT-v2
   in Fig. 4), whose P is now read against the calibrated reference.

Works with any algorithm whose per-layer state has an analog array named ``array``
(default "P"). Calibration happens once, when the layer is built; its pulses are reported
apart from the training pulses: ``summary()["calibration"]`` holds the pulses spent and the
estimate's errors against the true SP, ``summary()["pulses"]`` only the training pulses.
Total pulse cost of the baseline = calibration + training (Corollary 3.9, Fig. 4).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..calibration import ZS_MODES, zero_shift
from .base import Algorithm, AlgorithmState
from .residual import ResidualLearning


@dataclass
class TwoStage(Algorithm):
    """ZS calibration of P with ``calibration_pulses`` pulses per element, then ``then``.

    - ``calibration_pulses`` N >= 0 (0: no calibration, P keeps its configured reference);
    - ``then``: the training algorithm (default ``ResidualLearning()``);
    - ``mode``: "stochastic" (Algorithm 1) or "cyclic" (alternating pulses);
    - ``array``: name of the array to calibrate (default "P").
    """

    calibration_pulses: int = 4000
    then: Algorithm = field(default_factory=ResidualLearning)
    mode: str = "stochastic"
    array: str = "P"

    name = "two_stage"

    def __post_init__(self):
        if not (isinstance(self.calibration_pulses, int) and self.calibration_pulses >= 0):
            raise ValueError(
                f"TwoStage.calibration_pulses must be an int in [0, inf), got {self.calibration_pulses!r}"
            )
        if not hasattr(self.then, "init"):
            raise ValueError(f"TwoStage.then must be an analogtrain algorithm, got {type(self.then).__name__}")
        if self.mode not in ZS_MODES:
            raise ValueError(f"TwoStage.mode must be one of {ZS_MODES}, got {self.mode!r}")

    def describe(self) -> dict:
        return {"name": self.name, "calibration_pulses": self.calibration_pulses, "mode": self.mode,
                "array": self.array, "then": self.then.describe()}

    def init(self, spec):
        return TwoStageState(spec, self)


class TwoStageState(AlgorithmState):
    """The wrapped algorithm's state with P calibrated; delegates training to it."""

    def __init__(self, spec, params: TwoStage) -> None:
        super().__init__(spec)
        self.params = params
        self.inner = params.then.init(spec)
        if params.array not in self.inner.arrays:
            raise ValueError(
                f"TwoStage: {type(params.then).__name__} has no analog array {params.array!r} to calibrate "
                f"(arrays: {sorted(self.inner.arrays)})"
            )
        self.arrays = self.inner.arrays
        self.buffers = self.inner.buffers
        self.generators = self.inner.generators
        target = self.arrays[params.array]
        self.calibration: dict = {"array": params.array, "mode": params.mode,
                                  "pulses_per_element": params.calibration_pulses, "pulses": 0.0}
        if params.calibration_pulses > 0:
            gen = torch.Generator(device=target.torch_device)
            gen.manual_seed(spec.array_seed("zero_shift"))
            before = target.pulse_count["total"]
            result = zero_shift(target, params.calibration_pulses, mode=params.mode, generator=gen,
                                set_reference=True)
            self.calibration.update(
                pulses=target.pulse_count["total"] - before,
                mean_error=result.mean_error,
                rms_error=result.rms_error,
                relative_error=result.relative_error,
            )
            target.reset_pulse_count()

    @property
    def counters(self):
        return self.inner.counters

    @counters.setter
    def counters(self, value):  # the base constructor assigns before ``inner`` exists
        if "inner" in self.__dict__:
            self.inner.counters = value

    def effective_weight(self) -> torch.Tensor:
        return self.inner.effective_weight()

    def step(self, x: torch.Tensor, d: torch.Tensor, lr: float) -> None:
        self.inner.step(x, d, lr)

    def summary(self) -> dict:
        out = self.inner.summary()
        training = sum(p["total"] for p in out["pulses"].values())
        out["calibration"] = dict(self.calibration)
        out["pulses_training_total"] = training
        out["pulses_calibration_total"] = self.calibration["pulses"]
        out["pulses_total"] = training + self.calibration["pulses"]
        return out

    def to(self, torch_device=None, dtype=None):
        self.inner.to(torch_device, dtype)
        self.generators = self.inner.generators
        return self

    def state_dict(self) -> dict:
        sd = self.inner.state_dict()
        sd["calibration"] = dict(self.calibration)
        return sd

    def load_state_dict(self, sd: dict) -> None:
        self.inner.load_state_dict(sd)
        self.buffers = self.inner.buffers
        self.calibration = dict(sd.get("calibration", self.calibration))
