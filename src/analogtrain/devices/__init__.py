"""Devices: response functions q_plus / q_minus and pulse physics (2502.06309 Sec. 1)."""

from .base import Device
from .families import Custom, Exponential, Ideal, Piecewise, Power, SoftBounds
from .presets import PRESETS, get_preset

__all__ = ["PRESETS", "Custom", "Device", "Exponential", "Ideal", "Piecewise", "Power", "SoftBounds",
           "get_preset"]
