"""Training algorithms: each owns the arrays and buffers of one layer (see base.py)."""

from .base import Algorithm, AlgorithmState
from .sgd import AnalogSGD, DigitalSGD

__all__ = ["Algorithm", "AlgorithmState", "DigitalSGD", "AnalogSGD"]
