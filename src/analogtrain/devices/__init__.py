"""Devices: response functions q_plus / q_minus and pulse physics (2502.06309 Sec. 1)."""

from .aihwkit_families import (
    AihwkitPulsedDevice,
    ConstantStep,
    ExpStep,
    LinearStep,
    PiecewiseStep,
    PowStep,
    PowStepReference,
    SoftBoundsPmax,
    SoftBoundsReference,
)
from .base import Device
from .families import Custom, Exponential, Ideal, Piecewise, Power, SoftBounds
from .presets import PRESETS, get_preset

__all__ = ["PRESETS", "AihwkitPulsedDevice", "ConstantStep", "Custom", "Device", "ExpStep", "Exponential", "Ideal",
           "LinearStep", "Piecewise", "PiecewiseStep", "PowStep", "PowStepReference", "Power", "SoftBounds",
           "SoftBoundsPmax", "SoftBoundsReference", "get_preset"]
