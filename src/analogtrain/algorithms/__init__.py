"""Training algorithms: each owns the arrays and buffers of one layer (see base.py)."""

from .base import Algorithm, AlgorithmState
from .chopped import AGAD, ChoppedTikiTakaV2, ERIDERArtifact
from .mixed_precision import MixedPrecision
from .multitile import MultiTileResidual
from .residual import ResidualLearning, ResidualLearningV2, TikiTaka, TikiTakaV2
from .rider import ERIDER, RIDER
from .sgd import AnalogSGD, DigitalSGD
from .twostage import TwoStage

__all__ = ["Algorithm", "AlgorithmState", "AnalogSGD", "DigitalSGD"]
__all__ += ["AGAD", "ChoppedTikiTakaV2", "MultiTileResidual", "ResidualLearning", "ResidualLearningV2", "TikiTaka",
            "TikiTakaV2"]
__all__ += ["ERIDER", "RIDER", "ERIDERArtifact", "TwoStage"]
__all__ += ["MixedPrecision"]
