"""aihwkit 1.1.0's device presets (``aihwkit.simulator.presets.devices``) under their names.

Values: the dataclass fields of aihwkit 1.1.0's ``<Name>PresetDevice()`` (read from the
installed PyPI wheel, identical to tag v1.1.0 = commit 809114e5); only fields that differ from
the aihwkit base class defaults are listed, as in aihwkit. Each preset is registered as
``"<Name>PresetDevice"`` and the short alias ``"<Name>"`` (e.g. ``"ReRamESPresetDevice"`` and
``"ReRamES"``). Notes: Capacitor's lifetime (1e6, dtod 0.3) and PCM's reset (0.01, dtod 0.02) act
between updates (:meth:`AnalogArray.post_update_step`, :meth:`AnalogArray.reset_where`); the
SoftBoundsReference presets carry their reference settings (``subtract_symmetry_point``,
``reference_std``), applied by the arrays (:meth:`SoftBoundsReference.array_reference`).
:func:`aihwkit_preset` builds one with fields overridden (e.g. ``reference_mean``), as an aihwkit
user writes ``ReRamArrayHfO2PresetDevice(reference_mean=0.3)``.
"""

from __future__ import annotations

from collections.abc import Callable

from .aihwkit_families import AihwkitPulsedDevice, ConstantStep, ExpStep, LinearStep, SoftBoundsReference

#: name -> (family, aihwkit base class, non-default fields, one-line description)
AIHWKIT_PRESETS: dict[str, tuple[type, str, dict, str]] = {
    "ReRamES": (ExpStep, "ExpStepDevice", {
        "dw_min": 0.00135, "up_down": 0.259359, "w_max": 1.0, "w_min": -1.0, "a": -0.5, "b": -0.5, "gamma_up": 5.0, "gamma_down": 5.0,
        "A_up": -1.18445, "A_down": -0.081404, "dw_min_dtod": 0.2, "up_down_dtod": 0.05, "w_max_dtod": 0.3, "w_min_dtod": 0.3,
        "dw_min_std": 5.0, "write_noise_std": 75.0},
        "ReRAM, exponential step (ExpStep), fitted to measurements"),
    "ReRamSB": (SoftBoundsReference, "SoftBoundsReferenceDevice", {
        "dw_min": 0.002, "up_down": 0.0, "w_max": 1.25, "w_min": -0.75, "mult_noise": False, "dw_min_dtod": 0.3, "up_down_dtod": 0.01,
        "w_max_dtod": 0.3 / 1.25, "w_min_dtod": 0.3 / 0.75, "dw_min_std": 3.75, "write_noise_std": 56},
        "ReRAM, soft bounds (SoftBoundsReference), SP assumed corrected"),
    "Capacitor": (LinearStep, "LinearStepDevice", {
        "dw_min": 0.005, "up_down": 0.0, "w_max": 1.0, "w_min": -1.0, "mult_noise": False, "gamma_up": 0.05, "gamma_down": 0.05,
        "dw_min_dtod": 0.1, "up_down_dtod": 0.06, "w_max_dtod": 0.07, "w_min_dtod": 0.07, "gamma_up_dtod": 0.01,
        "gamma_down_dtod": 0.01, "dw_min_std": 0.3, "write_noise_std": 0.0, "mean_bound_reference": True, "lifetime": 1.0e6,
        "lifetime_dtod": 0.3},
        "capacitor cell, nearly linear step (LinearStep), leak = lifetime (not simulated)"),
    "EcRam": (LinearStep, "LinearStepDevice", {
        "dw_min": 0.002, "up_down": 0.0, "w_max": 1.1724, "w_min": -0.8276, "mult_noise": True, "gamma_up": 0.1153,
        "gamma_down": 0.5085, "dw_min_dtod": 0.1, "up_down_dtod": 0.01, "w_max_dtod": 0.05, "w_min_dtod": 0.05,
        "gamma_up_dtod": 0.05, "gamma_down_dtod": 0.05, "dw_min_std": 0.3, "write_noise_std": 0.0, "mean_bound_reference": True},
        "ECRAM (Li-ion), linear step"),
    "EcRamMO": (LinearStep, "LinearStepDevice", {
        "dw_min": 2.8214e-4, "up_down": 0.0, "w_max": 1.1714, "w_min": -0.8286, "mult_noise": True, "gamma_up": 0.4152,
        "gamma_down": 0.7342, "dw_min_dtod": 0.1, "up_down_dtod": 0.01, "w_max_dtod": 0.05, "w_min_dtod": 0.05,
        "gamma_up_dtod": 0.05, "gamma_down_dtod": 0.05, "dw_min_std": 2.0, "write_noise_std": 0.0, "mean_bound_reference": True},
        "metal-oxide ECRAM, linear step"),
    "Idealized": (ConstantStep, "ConstantStepDevice", {
        "dw_min": 0.0002, "dw_min_dtod": 0.3, "dw_min_std": 0.3, "up_down": 0.0, "up_down_dtod": 0.0, "w_max": 1.0, "w_min": -1.0,
        "w_max_dtod": 0.3, "w_min_dtod": 0.3},
        "idealized constant step, 10,000 states"),
    "GokmenVlasov": (ConstantStep, "ConstantStepDevice", {
        "dw_min": 0.0016, "dw_min_dtod": 0.3, "dw_min_std": 0.3, "up_down": 0.0, "up_down_dtod": 0.01, "w_max": 1.0, "w_min": -1.0,
        "w_max_dtod": 0.3, "w_min_dtod": 0.3},
        "Gokmen & Vlasov (2016) constant step, 1,200 states"),
    "PCM": (ExpStep, "ExpStepDevice", {
        "dw_min": 0.01, "up_down": 0.0, "w_max": 2.0, "w_min": 0.0, "a": -1.0, "b": 0.0, "gamma_up": 2.5, "gamma_down": 2.5, "A_up": -27.235,
        "A_down": -2.235, "dw_min_dtod": 0.2, "up_down_dtod": 0.05, "w_max_dtod": 0.1, "w_min_dtod": 0.0, "dw_min_std": 0.6,
        "dw_min_std_add": 0.042, "dw_min_std_slope": 0.108, "write_noise_std": 0.0, "reset": 0.01, "reset_dtod": 0.02},
        "PCM, one-sided [0, 2] exponential step with complex noise"),
    "ReRamArrayOM": (SoftBoundsReference, "SoftBoundsReferenceDevice", {
        "enforce_consistency": True, "dw_min_dtod_log_normal": True, "dw_min": 0.0949, "up_down": 0.0, "w_max": 1.0, "w_min": -1.0,
        "mult_noise": False, "dw_min_dtod": 0.7829, "up_down_dtod": 0.01, "w_max_dtod": 0.3499, "w_min_dtod": 0.5695,
        "dw_min_std": 0.4158, "write_noise_std": 1.4113, "corrupt_devices_range": 0.0100, "corrupt_devices_prob": 0.0,
        "subtract_symmetry_point": True, "reference_std": 0.05},
        "ReRAM array (OM), soft bounds with SP-subtracting reference"),
    "ReRamArrayHfO2": (SoftBoundsReference, "SoftBoundsReferenceDevice", {
        "enforce_consistency": True, "dw_min_dtod_log_normal": True, "dw_min": 0.4622, "up_down": 0.0, "w_max": 1.0, "w_min": -1.0,
        "mult_noise": False, "dw_min_dtod": 0.7125, "up_down_dtod": 0.01, "w_max_dtod": 0.4295, "w_min_dtod": 0.5990,
        "dw_min_std": 0.2174, "write_noise_std": 0.5841, "corrupt_devices_range": 0.0100, "corrupt_devices_prob": 0.0,
        "subtract_symmetry_point": True, "reference_std": 0.05},
        "HfO2 ReRAM array (Gong et al. 2022), soft bounds with SP-subtracting reference"),
}


def _factory(short: str) -> Callable[[], AihwkitPulsedDevice]:
    cls, base, values, desc = AIHWKIT_PRESETS[short]

    def make() -> AihwkitPulsedDevice:
        return cls(**values)

    make.__name__ = f"{short}PresetDevice"
    make.__doc__ = f"aihwkit 1.1.0 {short}PresetDevice ({base}): {desc}."
    return make


#: preset name -> factory, under aihwkit's name and the short alias
AIHWKIT_PRESET_FACTORIES: dict[str, Callable[[], AihwkitPulsedDevice]] = {}
for _short in AIHWKIT_PRESETS:
    _f = _factory(_short)
    AIHWKIT_PRESET_FACTORIES[f"{_short}PresetDevice"] = _f
    AIHWKIT_PRESET_FACTORIES[_short] = _f


def aihwkit_preset(name: str, **overrides) -> AihwkitPulsedDevice:
    """The aihwkit preset ``name`` ("ReRamSB" or "ReRamSBPresetDevice") with fields overridden
    (aihwkit names; unknown fields are an error of the family's constructor)."""
    short = name.removesuffix("PresetDevice")
    if short not in AIHWKIT_PRESETS:
        raise ValueError(f"unknown aihwkit device preset {name!r}; available: {sorted(AIHWKIT_PRESETS)}")
    cls, _, values, _ = AIHWKIT_PRESETS[short]
    return cls(**{**values, **overrides})

