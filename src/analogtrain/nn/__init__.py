"""Torch glue: analog layers and model conversion."""

from .convert import convert
from .layers import AnalogConv2d, AnalogLinear

__all__ = ["AnalogConv2d", "AnalogLinear", "convert"]
