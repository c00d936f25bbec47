"""analogtrain: pure-PyTorch simulation and training on analog in-memory computing hardware
with general non-ideal response functions (arXiv 2502.06309, 2602.21321)."""

from . import algorithms, devices, nn, optim, pulses
from .arrays import AnalogArray, ReferenceOffset
from .config import AnalogConfig, TileSpec
from .nn import convert
from .periphery import IO

__version__ = "0.1.0"

__all__ = [
           "IO",
           "AnalogArray",
           "AnalogConfig",
           "ReferenceOffset",
           "TileSpec",
           "__version__",
           "algorithms",
           "convert",
           "devices",
           "nn",
           "optim",
           "pulses",
]
