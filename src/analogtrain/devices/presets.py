"""Named devices of the papers and of aihwkit.

``get_preset(name)`` returns a fresh device; ``PRESETS`` lists the names with a one-line
description each (``analogtrain devices`` prints them).
"""

from __future__ import annotations

from collections.abc import Callable

from .aihwkit_presets import AIHWKIT_PRESET_FACTORIES
from .base import Device
from .families import Exponential, Power, SoftBounds


def paper_linear(asymmetry: float = 0.0) -> Device:
    """2502.06309 Fig. 2 toy: generic linear device, tau = 3.5, dw_min = 1e-4 (SP = 3.5 c)."""
    return SoftBounds(tau=3.5, asymmetry=asymmetry, dw_min=1e-4)


def softbounds_2000() -> Device:
    """2602.21321 Fig. 1(a): soft bounds on [-1, 1] with 2000 states (dw_min = 1e-3)."""
    return SoftBounds(tau=1.0, asymmetry=0.0, n_states=2000)


def power_resnet() -> Device:
    """2502.06309 Table 1: power response gamma_res = 3, tau = 0.1, dw_min = 1e-3."""
    return Power(gamma=3.0, tau=0.1, dw_min=1e-3)


def exponential_resnet() -> Device:
    """2502.06309 Table 5: exponential response gamma_res = 4, tau = 0.1, dw_min = 1e-3."""
    return Exponential(gamma=4.0, tau=0.1, dw_min=1e-3)


def power_mnist() -> Device:
    """2502.06309 Fig. 4 / Table 8: power response gamma_res = 0.5, tau = 0.6, dw_min = 1e-3."""
    return Power(gamma=0.5, tau=0.6, dw_min=1e-3)


def aihwkit_softbounds() -> Device:
    """aihwkit 1.1.0 SoftBoundsDevice defaults: dw_min 1e-3, bounds +-0.6, dtod 0.3 on dw_min and
    bounds (Gaussian 1 + 0.3 xi with enforce_consistency, aihwkit's distribution), up_down_dtod
    0.01 (additive), multiplicative cycle noise 0.3 (dw_min_std, mult_noise)."""
    return SoftBounds(
        up_slope=1.0, down_slope=1.0, w_max=0.6, w_min=-0.6, dw_min=1e-3,
        cycle_noise=0.3, cycle_noise_type="multiplicative", device_to_device_distribution="aihwkit",
        device_to_device={"dw_min": 0.3, "w_max": 0.3, "w_min": 0.3, "up_down": 0.01},
    )


def offset_softbounds() -> Device:
    """Demo device: soft bounds tau = 0.6 with SP 0.12 off zero (asymmetry 0.2), dw_min 1e-3."""
    return SoftBounds(tau=0.6, asymmetry=0.2, dw_min=1e-3)


def offset_softbounds_additive() -> Device:
    """The demo device (soft bounds tau = 0.6, SP = 0.12, dw_min 1e-3) with the papers' additive
    cycle-to-cycle noise sigma_c = 0.3 per pulse (2502.06309 App. C eq. 26; the paper's typical
    sigma_c / q is 5 %-100 %)."""
    return SoftBounds(tau=0.6, asymmetry=0.2, dw_min=1e-3, cycle_noise=0.3, cycle_noise_type="additive")


def hfo2_rram() -> Device:
    """HfO2 RRAM array (Gong et al. 2022; aihwkit ReRamArrayHfO2PresetDevice, used by
    2602.21321 Tables 1-2): soft bounds on [-1, 1], dw_min 0.4622 (about 4.3 states),
    log-normal dtod 0.7125 on dw_min, 0.4295 / 0.5990 on the bounds, up/down spread 0.01,
    additive cycle noise 0.2174 and write noise 0.5841 (units of dw_min)."""
    return SoftBounds(
        up_slope=1.0, down_slope=1.0, w_max=1.0, w_min=-1.0, dw_min=0.4622,
        cycle_noise=0.2174, cycle_noise_type="additive", write_noise=0.5841,
        device_to_device={"dw_min": 0.7125, "w_max": 0.4295, "w_min": 0.5990, "up_down": 0.01},
    )


PRESETS: dict[str, Callable[[], Device]] = {
    "paper_linear": paper_linear,
    "softbounds_2000": softbounds_2000,
    "power_resnet": power_resnet,
    "exponential_resnet": exponential_resnet,
    "power_mnist": power_mnist,
    "aihwkit_softbounds": aihwkit_softbounds,
    "offset_softbounds": offset_softbounds,
    "offset_softbounds_additive": offset_softbounds_additive,
    "hfo2_rram": hfo2_rram,
    # aihwkit 1.1.0 device presets: "<Name>PresetDevice" and the alias "<Name>" (aihwkit_presets.py)
    **AIHWKIT_PRESET_FACTORIES,
}


def get_preset(name: str) -> Device:
    """Return a fresh device of the named preset."""
    if name not in PRESETS:
        raise ValueError(f"unknown device preset {name!r}; available: {sorted(PRESETS)}")
    return PRESETS[name]()
