"""aihwkit 1.1.0's RPU-config presets ``<Algorithm><Device>Preset`` and ``build_config``.

Each preset is a function returning an :class:`analogtrain.AnalogConfig` that carries aihwkit's
values in every field with an analogtrain counterpart; ``ALGORITHM_PRESETS`` maps aihwkit's names
to them, ``get_config_preset(name)`` builds one, and ``build_config(algorithm, device, ...)`` is
aihwkit's ``build_config`` (its recommended settings for an algorithm on any device).

Source: aihwkit 1.1.0 (the PyPI wheel = tag v1.1.0): ``src/aihwkit/simulator/presets/configs.py``
(the presets), ``compounds.py`` (PCMPresetUnitCell), ``utils.py`` (PresetIOParameters,
PresetUpdateParameters), ``devices.py`` (the devices: :mod:`analogtrain.devices.aihwkit_presets`)
and ``src/aihwkit/simulator/configs/helpers.py`` (build_config); the auto-scale rule from the
C++ ``src/rpucuda/rpu_chopped_transfer_device.cpp``. Every value is checked against the
introspected presets (tests/data/aihwkit_config_presets.json, written by
benchmarks/aihwkit_config_presets.py with the aihwkit venv; tests/test_config_presets.py).

Presets (aihwkit groups; device ``ReRamES``, ``ReRamSB``, ``Capacitor``, ``EcRam``, ``EcRamMO``,
``Idealized``, plus ``GokmenVlasov`` for SGD and mixed precision):

| aihwkit | RPU config / compound | analogtrain algorithm |
|---|---|---|
| ``<Device>Preset`` | SingleRPUConfig | :class:`~analogtrain.algorithms.AnalogSGD` |
| ``TikiTaka<Device>Preset`` | TransferCompound | :class:`~analogtrain.algorithms.TikiTaka` |
| ``TTv2<Device>Preset`` | ChoppedTransferCompound, in_chop_prob 0 | :class:`~analogtrain.algorithms.ChoppedTikiTakaV2` with chop_prob 0 |
| ``ChoppedTTv2<Device>Preset`` | ChoppedTransferCompound | :class:`~analogtrain.algorithms.ChoppedTikiTakaV2` |
| ``AGAD<Device>Preset`` | DynamicTransferCompound | :class:`~analogtrain.algorithms.AGAD` |
| ``MixedPrecision<Device>Preset`` | DigitalRankUpdateRPUConfig + MixedPrecisionCompound | :class:`~analogtrain.algorithms.MixedPrecision` |

aihwkit's TTv2 presets are ChoppedTransferCompounds without choppers (not the
BufferedTransferCompound of :class:`~analogtrain.algorithms.TikiTakaV2`): the threshold is in
units of the fast device's granularity, momentum 0. Not provided: ``PCMPreset`` and
``MixedPrecisionPCMPreset`` (a PCMPresetUnitCell, a OneSidedUnitCell of two PCM devices with
refresh, which analogtrain does not simulate) and the 2- / 4-device VectorUnitCell presets.

Field mapping (aihwkit -> analogtrain):

| aihwkit | analogtrain |
|---|---|
| ``forward`` / ``backward`` = PresetIOParameters (inp_res 1/126, out_res 1/510, out_bound 20, out_noise 0.1, ABS_MAX, ITERATIVE) | ``io`` = :func:`preset_io` = IO(inp_bits 7, out_bits 9, out_bound 20, out_noise 0.1, "abs_max", "iterative"); backward: the same without bound management (as aihwkit) |
| ``transfer_forward`` = PresetIOParameters(NM NONE, BM NONE) | ``transfer_io`` = :func:`preset_transfer_io` |
| ``update`` = PresetUpdateParameters (desired_bl 31 or 100, STOCHASTIC_COMPRESSED, update_bl_management, update_management) | ``engine = "stochastic"``, ``engine_kwargs = {bit_length, bl_management, update_management}`` |
| ``transfer_update`` (TT-v1: PresetUpdateParameters) | ``transfer_engine`` None (the gradient engine, BL 31) |
| ``transfer_update`` (chopped: desired_bl 1, no UM / UBLM) | ``max_transfer_pulses = 1``, ``pulse_write = "exact"``; ``transfer_engine`` StochasticEngine(1, False, False) |
| ``mapping`` = MappingParameter() | ``mapping`` = ``Mapping.aihwkit()`` (512 x 512 tiles, digital bias) |
| unit_cell_devices [fast, slow] | ``device = {"P": fast, "W": slow}``; ``ReRamSBPresetDevice(subtract_symmetry_point=True)``: ``SoftBoundsReference(..., subtract_symmetry_point=True)``, whose ``array_reference()`` the arrays use |
| ``fast_lr`` (absolute in 1.1.0) | ``fast_lr``, ``scale_fast_lr = False`` |
| ``transfer_lr``, ``scale_transfer_lr``, ``transfer_every``, ``units_in_mbatch``, ``n_reads_per_transfer``, ``transfer_columns``, ``random_selection``, ``with_reset_prob`` | same names (``columns_per_transfer``) |
| ``in_chop_prob``, ``in_chop_random``, ``out_chop_prob`` | ``chop_prob``, ``chop_random``, ``out_chop_prob`` |
| ``buffer_granularity``, ``auto_granularity``, ``momentum``, ``forget_buffer``, ``tail_weightening`` | ``thres``, ``auto_granularity``, ``momentum``, ``forget_buffer``, ``tail_weightening`` |
| MixedPrecisionCompound fields | MixedPrecision fields of the same names |

Not modelled: the fields of :data:`NOT_MODELLED` (each at the value every preset uses).
aihwkit's ``auto_scale`` of the TTv2 / ChoppedTTv2 / AGAD presets (fast-array pulse-count lr
fast_lr * desired_bl * dw_min(P) / (m_x m_d)) is the algorithms' ``auto_scale`` option.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

from .algorithms import AGAD, AnalogSGD, ChoppedTikiTakaV2, MixedPrecision, TikiTaka
from .config import AnalogConfig
from .devices import PRESETS as DEVICE_PRESETS
from .devices import get_preset
from .devices.aihwkit_presets import AIHWKIT_PRESETS
from .devices.base import Device
from .mapping import Mapping
from .periphery import IO
from .pulses import StochasticEngine

AIHWKIT_VERSION = "1.1.0"
SOURCES = ("src/aihwkit/simulator/presets/configs.py", "src/aihwkit/simulator/presets/compounds.py",
           "src/aihwkit/simulator/presets/utils.py", "src/aihwkit/simulator/presets/devices.py",
           "src/aihwkit/simulator/configs/helpers.py", "src/rpucuda/rpu_chopped_transfer_device.cpp")

#: aihwkit fields without an analogtrain counterpart: field -> what aihwkit does / why it is left out
NOT_MODELLED = {
    "step": "value of d in the transfer write (1: one granularity per pulse, as here)",
    "no_buffer": "False in every preset (the buffered transfer)",
    "correct_gradient_magnitudes": "False in every preset",
    "buffer_cap": "0 in every preset (no cap)",
    "experimental_correct_accumulation": "False in every preset",
    "no_self_transfer": "True (no transfer of a device onto itself)",
    "gamma_vec": "empty (gamma 0: forward on the slow array)",
    "transfer_every_vec": "empty (transfer_every applies)",
    "transfer_lr_vec": "empty (transfer_lr applies)",
    "construction_seed": "analogtrain seeds arrays from the layer seed",
    "fixed_bl": "True; with update_bl_management the BL is ceil(lr max|x| max|d| / dw_min) <= desired_bl here",
    "inp_sto_round": "False (deterministic DAC rounding, as here)",
    "out_sto_round": "False (deterministic ADC rounding, as here)",
}

#: the preset devices of each aihwkit algorithm group
TRANSFER_DEVICES = ("ReRamES", "ReRamSB", "Capacitor", "EcRam", "EcRamMO", "Idealized")
SGD_DEVICES = (*TRANSFER_DEVICES, "GokmenVlasov")
MP_DEVICES = SGD_DEVICES

#: aihwkit's per-preset compound values (configs.py), by algorithm and device; every preset of a
#: group shares the rest (below). bl: PresetUpdateParameters(desired_bl) of the gradient update
TTV2_VALUES = {
    "ReRamES": {"fast_lr": 0.5, "auto_granularity": 1000, "bl": 31},
    "ReRamSB": {"fast_lr": 0.5, "auto_granularity": 1000, "bl": 31},
    "Capacitor": {"fast_lr": 0.1, "auto_granularity": 1000, "bl": 31},
    "EcRam": {"fast_lr": 0.1, "auto_granularity": 500, "bl": 100},
    "EcRamMO": {"fast_lr": 0.1, "auto_granularity": 500, "bl": 100},
    "Idealized": {"fast_lr": 0.1, "auto_granularity": 500, "bl": 100},
}
CTTV2_VALUES = {
    "ReRamES": {"in_chop_prob": 0.01, "fast_lr": 0.5, "auto_granularity": 1000, "bl": 31},
    "ReRamSB": {"in_chop_prob": 0.01, "fast_lr": 0.5, "auto_granularity": 1000, "bl": 31},
    "Capacitor": {"in_chop_prob": 0.01, "fast_lr": 0.1, "auto_granularity": 1000, "bl": 31},
    "EcRam": {"in_chop_prob": 0.01, "fast_lr": 1.0, "auto_granularity": 500, "bl": 100},  # fast_lr not set: 1.0
    "EcRamMO": {"in_chop_prob": 0.001, "fast_lr": 0.1, "auto_granularity": 500, "bl": 100},
    "Idealized": {"in_chop_prob": 0.001, "fast_lr": 0.1, "auto_granularity": 500, "bl": 100},
}
AGAD_VALUES = {
    "ReRamES": {"in_chop_prob": 0.02, "fast_lr": 0.5, "auto_granularity": 1000, "tail_weightening": 5.0, "bl": 31},
    "ReRamSB": {"in_chop_prob": 0.02, "fast_lr": 0.5, "auto_granularity": 1000, "tail_weightening": 5.0, "bl": 31},
    "Capacitor": {"in_chop_prob": 0.01, "fast_lr": 0.1, "auto_granularity": 1000, "tail_weightening": 20.0,
                  "bl": 31},
    "EcRam": {"in_chop_prob": 0.005, "fast_lr": 0.1, "auto_granularity": 750, "tail_weightening": 50.0, "bl": 31},
    "EcRamMO": {"in_chop_prob": 0.005, "fast_lr": 0.1, "auto_granularity": 500, "tail_weightening": 50.0,
                "bl": 100},
    "Idealized": {"in_chop_prob": 0.005, "fast_lr": 0.1, "auto_granularity": 500, "tail_weightening": 50.0,
                  "bl": 100},
}

#: aihwkit's build_config algorithm names -> the canonical name used here
ALGORITHM_ALIASES = {
    "sgd": "sgd",
    "tiki-taka": "tiki-taka", "tt": "tiki-taka", "ttv1": "tiki-taka",
    "ttv2": "ttv2",
    "c-ttv2": "c-ttv2", "chopped-ttv2": "c-ttv2", "ttv3": "c-ttv2",
    "agad": "agad", "ttv4": "agad",
    "mp": "mp", "mixed-precision": "mp",
}


# ----------------------------------------------------------------------------- periphery, engines
def preset_io() -> IO:
    """aihwkit ``PresetIOParameters``: 7-bit DAC (inp_res 1/126), inp_bound 1, 9-bit ADC (out_res
    1/510), out_bound 20, out_noise 0.1, no weight noise, ABS_MAX noise management, ITERATIVE
    bound management (max_bm_factor 1000, max_bm_res 0.25)."""
    return IO(inp_bits=7, inp_bound=1.0, inp_noise=0.0, out_bits=9, out_bound=20.0, out_noise=0.1, w_noise=0.0,
              noise_management="abs_max", bound_management="iterative", max_bm_factor=1000.0, max_bm_res=0.25)


def preset_transfer_io(io: IO | None = None) -> IO:
    """The transfer read of aihwkit's presets: ``io`` (default PresetIOParameters) with noise and
    bound management NONE."""
    return dataclasses.replace(io if io is not None else preset_io(), noise_management="none",
                               bound_management="none")


def update_kwargs(desired_bl: int = 31, update_bl_management: bool = True, update_management: bool = True) -> dict:
    """Stochastic-engine keywords of aihwkit's UpdateParameters (STOCHASTIC_COMPRESSED)."""
    return {"bit_length": int(desired_bl), "bl_management": bool(update_bl_management),
            "update_management": bool(update_management)}


def _transfer_engine(**kwargs) -> StochasticEngine:
    return StochasticEngine(**update_kwargs(**kwargs))


# ----------------------------------------------------------------------------- devices
def preset_device(name: str, **overrides) -> Device:
    """A fresh aihwkit preset device (``"ReRamSB"`` or ``"ReRamSBPresetDevice"``) with aihwkit
    field overrides, e.g. ``preset_device("ReRamSB", subtract_symmetry_point=True)``."""
    short = name.removesuffix("PresetDevice")
    if short not in AIHWKIT_PRESETS:
        raise ValueError(f"unknown aihwkit device preset {name!r}; available: {sorted(AIHWKIT_PRESETS)}")
    cls, _, values, _ = AIHWKIT_PRESETS[short]
    return cls(**{**values, **overrides})


def _resolve_device(device) -> Device:
    if isinstance(device, Device):
        return device
    if isinstance(device, str):
        if device not in DEVICE_PRESETS:
            raise ValueError(f"device: unknown device preset {device!r}; available: {sorted(DEVICE_PRESETS)}")
        return get_preset(device)
    raise ValueError(f"device must be a device preset name or an analogtrain Device, got {type(device).__name__}")


def _pair(make: Callable[[], Device]) -> dict:
    """aihwkit's unit_cell_devices [fast, slow] as analogtrain's arrays P (fast) and W (slow)."""
    return {"P": make(), "W": make()}


# ----------------------------------------------------------------------------- algorithms
def _tiki_taka(**fields) -> TikiTaka:
    """TransferCompound(units_in_mbatch=True) defaults (fast_lr 1.0 absolute in 1.1.0)."""
    base = {"fast_lr": 1.0, "scale_fast_lr": False, "transfer_lr": 1.0, "scale_transfer_lr": True,
            "transfer_every": 1, "units_in_mbatch": True, "columns_per_transfer": 1, "transfer_columns": True,
            "random_selection": False, "with_reset_prob": 0.0, "transfer_write": "pulse_train"}
    return TikiTaka(**{**base, **fields})


def _chopped(cls, **fields):
    """ChoppedTransferCompound / DynamicTransferCompound defaults with a transfer BL of 1."""
    base = {"chop_random": cls is not AGAD, "out_chop_prob": 0.0, "thres": 1.0, "auto_granularity": 0.0,
            "momentum": 0.0, "forget_buffer": True, "max_transfer_pulses": 1, "pulse_write": "exact",
            "granularity": "nominal", "fast_lr": 1.0, "scale_fast_lr": False, "transfer_lr": 1.0,
            "scale_transfer_lr": True, "transfer_every": 1, "units_in_mbatch": False, "columns_per_transfer": 1,
            "transfer_columns": True, "random_selection": False, "with_reset_prob": 0.0, "gamma": 0.0,
            "auto_scale": False, "auto_momentum": 0.99}
    return cls(**{**base, **fields})


def _config(algorithm, device, *, bl: int = 31, io: IO | None = None, transfer_io: IO | None = None,
            transfer_engine=None, **overrides) -> AnalogConfig:
    io = io if io is not None else preset_io()
    return AnalogConfig(algorithm=algorithm, device=device, io=io,
                        transfer_io=transfer_io if transfer_io is not None else preset_transfer_io(io),
                        engine="stochastic", engine_kwargs=update_kwargs(bl), transfer_engine=transfer_engine,
                        mapping=Mapping.aihwkit(), **overrides)


def sgd_preset(device: str) -> AnalogConfig:
    """aihwkit ``<Device>Preset``: analog SGD on one preset device, PresetIOParameters,
    PresetUpdateParameters (BL 31)."""
    return _config(AnalogSGD(), preset_device(device))


def tiki_taka_preset(device: str) -> AnalogConfig:
    """aihwkit ``TikiTaka<Device>Preset``: TransferCompound of two preset devices (ReRamSB with
    subtract_symmetry_point), transfer_forward PresetIO without NM / BM, transfer_update and
    update PresetUpdateParameters (BL 31), units_in_mbatch True, fast_lr 1.0 (absolute)."""
    sp = {"subtract_symmetry_point": True} if device == "ReRamSB" else {}
    return _config(_tiki_taka(), _pair(lambda: preset_device(device, **sp)))


def ttv2_preset(device: str) -> AnalogConfig:
    """aihwkit ``TTv2<Device>Preset``: ChoppedTransferCompound with in_chop_prob 0,
    units_in_mbatch False, auto_scale True, fast_lr / auto_granularity / update BL
    per device (:data:`TTV2_VALUES`), transfer_update BL 1 without UM / UBLM."""
    v = TTV2_VALUES[device]
    sp = {"subtract_symmetry_point": True} if device == "ReRamSB" else {}
    algo = _chopped(ChoppedTikiTakaV2, chop_prob=0.0, fast_lr=v["fast_lr"], auto_granularity=float(v["auto_granularity"]),
                    auto_scale=True)
    return _config(algo, _pair(lambda: preset_device(device, **sp)), bl=v["bl"],
                   transfer_engine=_transfer_engine(desired_bl=1, update_bl_management=False, update_management=False))


def chopped_ttv2_preset(device: str) -> AnalogConfig:
    """aihwkit ``ChoppedTTv2<Device>Preset``: ChoppedTransferCompound (in_chop_random True),
    in_chop_prob / fast_lr / auto_granularity / update BL per device (:data:`CTTV2_VALUES`),
    units_in_mbatch False, auto_scale True, transfer_update BL 1 without UM / UBLM."""
    v = CTTV2_VALUES[device]
    sp = {"subtract_symmetry_point": True} if device == "ReRamSB" else {}
    algo = _chopped(ChoppedTikiTakaV2, chop_prob=v["in_chop_prob"], fast_lr=v["fast_lr"],
                    auto_granularity=float(v["auto_granularity"]), auto_scale=True)
    return _config(algo, _pair(lambda: preset_device(device, **sp)), bl=v["bl"],
                   transfer_engine=_transfer_engine(desired_bl=1, update_bl_management=False, update_management=False))


def agad_preset(device: str) -> AnalogConfig:
    """aihwkit ``AGAD<Device>Preset``: DynamicTransferCompound (in_chop_random False),
    in_chop_prob / fast_lr / auto_granularity / tail_weightening / update BL per device
    (:data:`AGAD_VALUES`), units_in_mbatch False, auto_scale True, transfer_update
    BL 1 without UM / UBLM."""
    v = AGAD_VALUES[device]
    sp = {"subtract_symmetry_point": True} if device == "ReRamSB" else {}
    algo = _chopped(AGAD, chop_prob=v["in_chop_prob"], fast_lr=v["fast_lr"],
                    auto_granularity=float(v["auto_granularity"]), tail_weightening=v["tail_weightening"],
                    auto_scale=True)
    return _config(algo, _pair(lambda: preset_device(device, **sp)), bl=v["bl"],
                   transfer_engine=_transfer_engine(desired_bl=1, update_bl_management=False, update_management=False))


def _mixed_precision(**fields) -> MixedPrecision:
    base = {"transfer_every": 1, "n_rows_per_transfer": -1, "random_row": False, "granularity": 0.0,
            "transfer_lr": 1.0, "n_x_bins": 0, "n_d_bins": 0, "stoc_round_x": True, "stoc_round_d": True,
            "pulse_write": "pulse_train", "transfer_timing": "aihwkit"}
    return MixedPrecision(**{**base, **fields})


def mixed_precision_preset(device: str) -> AnalogConfig:
    """aihwkit ``MixedPrecision<Device>Preset``: DigitalRankUpdateRPUConfig with
    MixedPrecisionCompound(device=<Device>PresetDevice()) (class defaults: every batch all rows,
    granularity = dw_min), PresetIOParameters, PresetUpdateParameters (BL 31) for the transfer
    pulses."""
    return _config(_mixed_precision(), preset_device(device))


#: aihwkit's name prefix of each group and the factory of its presets
GROUPS: dict[str, tuple[str, tuple[str, ...], Callable[[str], AnalogConfig]]] = {
    "sgd": ("", SGD_DEVICES, sgd_preset),
    "tiki-taka": ("TikiTaka", TRANSFER_DEVICES, tiki_taka_preset),
    "ttv2": ("TTv2", TRANSFER_DEVICES, ttv2_preset),
    "c-ttv2": ("ChoppedTTv2", TRANSFER_DEVICES, chopped_ttv2_preset),
    "agad": ("AGAD", TRANSFER_DEVICES, agad_preset),
    "mp": ("MixedPrecision", MP_DEVICES, mixed_precision_preset),
}

#: aihwkit presets not provided, with the reason
NOT_PROVIDED = {
    "PCMPreset": "PCMPresetUnitCell (OneSidedUnitCell of two PCM devices with refresh) is not simulated",
    "MixedPrecisionPCMPreset": "PCMPresetUnitCell (OneSidedUnitCell of two PCM devices with refresh) is not "
                               "simulated",
}


def _factory(group: str, device: str) -> Callable[[], AnalogConfig]:
    prefix, _, make = GROUPS[group]
    name = f"{prefix}{device}Preset"

    def preset() -> AnalogConfig:
        return make(device)

    preset.__name__ = name
    preset.__qualname__ = name
    preset.__doc__ = f"aihwkit {AIHWKIT_VERSION} {name}. " + (make.__doc__ or "").replace("<Device>", device)
    preset.algorithm = group
    preset.device = device
    return preset


#: aihwkit preset name -> factory of its AnalogConfig (e.g. ``"TTv2ReRamSBPreset"``); each factory
#: has ``.algorithm`` (build_config name) and ``.device`` (device preset name)
ALGORITHM_PRESETS: dict[str, Callable[[], AnalogConfig]] = {}
for _group, (_prefix, _devices, _) in GROUPS.items():
    for _dev in _devices:
        ALGORITHM_PRESETS[f"{_prefix}{_dev}Preset"] = _factory(_group, _dev)


def get_config_preset(name: str) -> AnalogConfig:
    """A fresh AnalogConfig of the aihwkit preset ``name`` (e.g. ``"TTv2ReRamSBPreset"``)."""
    if name not in ALGORITHM_PRESETS:
        hint = f" ({NOT_PROVIDED[name]})" if name in NOT_PROVIDED else ""
        raise ValueError(f"unknown algorithm preset {name!r}{hint}; available: {sorted(ALGORITHM_PRESETS)}")
    return ALGORITHM_PRESETS[name]()


# ----------------------------------------------------------------------------- build_config
def _apply_overrides(config: AnalogConfig, overrides: dict, where: str) -> AnalogConfig:
    """AnalogConfig fields by name replace the config's; fields of its algorithm replace the
    algorithm's (validated by the algorithm); anything else is an error."""
    config_fields = {f.name for f in dataclasses.fields(AnalogConfig)}
    algo = config.algorithm
    algo_fields = {f.name for f in dataclasses.fields(algo)} if dataclasses.is_dataclass(algo) else set()
    cfg_over = {k: v for k, v in overrides.items() if k in config_fields}
    algo_over = {k: v for k, v in overrides.items() if k not in config_fields and k in algo_fields}
    unknown = sorted(set(overrides) - set(cfg_over) - set(algo_over))
    if unknown:
        raise ValueError(f"{where}: unknown override(s) {unknown}; allowed: AnalogConfig fields {sorted(config_fields)} "
                         f"or fields of {type(algo).__name__} {sorted(algo_fields)}")
    if algo_over:
        if "algorithm" in cfg_over:
            raise ValueError(f"{where}: give either algorithm= or fields of the algorithm {sorted(algo_over)}, not both")
        cfg_over["algorithm"] = dataclasses.replace(algo, **algo_over)
    if not cfg_over:
        return config
    return dataclasses.replace(config, **cfg_over)


def build_config(algorithm: str, device, io_parameters: IO | None = None, update_parameters: dict | None = None,
                 **overrides) -> AnalogConfig:
    """aihwkit's ``build_config(algorithm, device, io_parameters, up_parameters, **kwargs)``.

    - ``algorithm``: "sgd", "tiki-taka" / "tt" / "ttv1", "ttv2", "c-ttv2" / "chopped-ttv2" /
      "ttv3", "agad" / "ttv4", "mp" / "mixed-precision" (case-insensitive).
    - ``device``: a device preset name (``analogtrain.devices.PRESETS``, e.g. "ReRamSB") or a
      Device; every array gets it (a copy per array: ``{"P": fast, "W": slow}``).
    - ``io_parameters``: forward / backward IO (default ``IO()`` = aihwkit IOParameters();
      out_bound 12, out_noise 0.06); transfer reads use it with NM / BM NONE (AGAD: as given).
    - ``update_parameters``: aihwkit UpdateParameters fields ``desired_bl``,
      ``update_bl_management``, ``update_management`` (default UpdateParameters(): 31, True, True);
      TT-v2 / c-TTv2 / AGAD use desired_bl 5 for the gradient update and 1 for the transfer, as
      aihwkit.
    - ``overrides``: AnalogConfig fields (``mapping``, ``io``, ``engine_kwargs``, ...) or fields of
      the algorithm (``fast_lr``, ``chop_prob``, ...).

    aihwkit's settings (helpers.py): sgd: SingleRPUConfig; tiki-taka: TransferCompound
    (units_in_mbatch True); ttv2: ChoppedTransferCompound(in_chop_prob 0, units_in_mbatch False,
    auto_scale False), update BL 5; c-ttv2: ChoppedTransferCompound(units_in_mbatch False,
    fast_lr 0.1, auto_scale True), update BL 5; agad: DynamicTransferCompound
    (transfer_forward with NM / BM, transfer_update BL 1 with UM / UBLM, auto_scale True,
    fast_lr 0.1, units_in_mbatch False), update BL 5; mp: MixedPrecisionCompound.
    aihwkit's MappingParameter() default (512 x 512 tiles) is the mapping.
    """
    if not isinstance(algorithm, str) or algorithm.lower() not in ALGORITHM_ALIASES:
        raise ValueError(f"algorithm must be one of {sorted(ALGORITHM_ALIASES)} (aihwkit's build_config names), "
                         f"got {algorithm!r}")
    alg = ALGORITHM_ALIASES[algorithm.lower()]
    dev = _resolve_device(device)
    io = io_parameters if io_parameters is not None else IO()
    if not isinstance(io, IO):
        raise ValueError(f"io_parameters must be an analogtrain.IO, got {type(io).__name__}")  # noqa: TRY004
    up = {"desired_bl": 31, "update_bl_management": True, "update_management": True}
    unknown = sorted(set(update_parameters or {}) - set(up))
    if unknown:
        raise ValueError(f"update_parameters: unknown field(s) {unknown}; allowed: {sorted(up)}")
    up.update(update_parameters or {})

    def pair() -> dict:
        return {"P": copy.deepcopy(dev), "W": copy.deepcopy(dev)}

    no_transfer_um = _transfer_engine(**{**up, "desired_bl": 1, "update_bl_management": False,
                                         "update_management": False})
    common = {"io": io, "transfer_io": preset_transfer_io(io), "mapping": Mapping.aihwkit()}
    if alg == "sgd":
        cfg = AnalogConfig(algorithm=AnalogSGD(), device=dev, engine="stochastic", engine_kwargs=update_kwargs(**up),
                           **common)
    elif alg == "tiki-taka":
        cfg = AnalogConfig(algorithm=_tiki_taka(), device=pair(), engine="stochastic",
                           engine_kwargs=update_kwargs(**up), **common)
    elif alg == "ttv2":
        cfg = AnalogConfig(algorithm=_chopped(ChoppedTikiTakaV2, chop_prob=0.0), device=pair(), engine="stochastic",
                           engine_kwargs=update_kwargs(**{**up, "desired_bl": 5}), transfer_engine=no_transfer_um,
                           **common)
    elif alg == "c-ttv2":
        cfg = AnalogConfig(algorithm=_chopped(ChoppedTikiTakaV2, chop_prob=0.1, fast_lr=0.1, auto_scale=True),
                           device=pair(),
                           engine="stochastic", engine_kwargs=update_kwargs(**{**up, "desired_bl": 5}),
                           transfer_engine=no_transfer_um, **common)
    elif alg == "agad":
        common["transfer_io"] = io
        cfg = AnalogConfig(algorithm=_chopped(AGAD, chop_prob=0.1, fast_lr=0.1, auto_scale=True), device=pair(),
                           engine="stochastic",
                           engine_kwargs=update_kwargs(**{**up, "desired_bl": 5}),
                           transfer_engine=_transfer_engine(**{**up, "desired_bl": 1, "update_bl_management": True,
                                                               "update_management": True}), **common)
    else:  # mp
        cfg = AnalogConfig(algorithm=_mixed_precision(), device=dev, engine="stochastic",
                           engine_kwargs=update_kwargs(**up), **common)
    return _apply_overrides(cfg, overrides, "build_config")


def preset_parts(name: str) -> tuple[str, str]:
    """(build_config algorithm name, device preset name) of an algorithm preset."""
    if name not in ALGORITHM_PRESETS:
        raise ValueError(f"unknown algorithm preset {name!r}; available: {sorted(ALGORITHM_PRESETS)}")
    f = ALGORITHM_PRESETS[name]
    return f.algorithm, f.device


__all__ = ["AIHWKIT_VERSION", "ALGORITHM_PRESETS", "NOT_MODELLED", "NOT_PROVIDED", "build_config",
           "get_config_preset", "preset_device", "preset_io", "preset_parts", "preset_transfer_io", "update_kwargs"]
