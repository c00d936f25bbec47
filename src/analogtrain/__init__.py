"""analogtrain: pure-PyTorch simulation and training on analog in-memory computing hardware
with general non-ideal response functions (arXiv 2502.06309, 2602.21321).

The names below are imported on first access (``at.nn``, ``at.AnalogConfig``, ...), so that
``import analogtrain`` and the ``analogtrain`` command start without importing torch.
"""

import importlib
import importlib.util

__version__ = "0.1.0"

#: public name -> (module, attribute or None for the module itself)
_LAZY = {
    "algorithms": (".algorithms", None),
    "devices": (".devices", None),
    "nn": (".nn", None),
    "optim": (".optim", None),
    "pulses": (".pulses", None),
    "AnalogArray": (".arrays", "AnalogArray"),
    "ReferenceOffset": (".arrays", "ReferenceOffset"),
    "AnalogConfig": (".config", "AnalogConfig"),
    "TileSpec": (".config", "TileSpec"),
    "convert": (".nn", "convert"),
    "IO": (".periphery", "IO"),
    "Mapping": (".mapping", "Mapping"),
    "presets": (".presets", None),
    "ALGORITHM_PRESETS": (".presets", "ALGORITHM_PRESETS"),
    "get_config_preset": (".presets", "get_config_preset"),
    "build_preset_config": (".presets", "build_config"),
}

__all__ = [
           "ALGORITHM_PRESETS",
           "IO",
           "AnalogArray",
           "AnalogConfig",
           "Mapping",
           "ReferenceOffset",
           "TileSpec",
           "__version__",
           "algorithms",
           "build_preset_config",
           "convert",
           "devices",
           "get_config_preset",
           "nn",
           "optim",
           "presets",
           "pulses",
]


def __getattr__(name: str):
    if name in _LAZY:
        module_name, attr = _LAZY[name]
    elif not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        module_name, attr = f".{name}", None  # any other submodule: at.calibration, at.theory, ...
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(module_name, __name__)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value  # later accesses skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
