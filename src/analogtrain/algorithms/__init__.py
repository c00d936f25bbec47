"""Training algorithms: each owns the arrays and buffers of one layer (see base.py)."""

from .base import Algorithm, AlgorithmState
from .chopped import AGAD, ChoppedTikiTakaV2
from .multitile import MultiTileResidual
from .rider import ERIDER, RIDER
from .residual import ResidualLearning, ResidualLearningV2, TikiTaka, TikiTakaV2
from .sgd import AnalogSGD, DigitalSGD

__all__ = ["Algorithm", "AlgorithmState", "DigitalSGD", "AnalogSGD"]
__all__ += ["AGAD", "ChoppedTikiTakaV2", "MultiTileResidual", "ResidualLearning", "ResidualLearningV2", "TikiTaka",
            "TikiTakaV2"]
__all__ += ["RIDER", "ERIDER"]
