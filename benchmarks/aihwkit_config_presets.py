"""aihwkit 1.1.0's algorithm presets (``<Algorithm><Device>Preset``) and ``build_config`` settings.

Run with the peer venv, never with analogtrain's venv; this script does not import analogtrain
and analogtrain never imports aihwkit:

    ~/.cache/aihwkit-peer/bin/python benchmarks/aihwkit_config_presets.py [--out tests/data]

It writes tests/data/aihwkit_config_presets.json, read by tests/test_config_presets.py: for every
RPU-config preset of ``aihwkit.simulator.presets.configs`` in the groups single device
(``<Device>Preset``, analog SGD), ``TikiTaka*``, ``TTv2*``, ``ChoppedTTv2*``, ``AGAD*`` and
``MixedPrecision*``, and for ``aihwkit.simulator.configs.build_config(algorithm, device)`` with
each algorithm name (default IOParameters / UpdateParameters, device SoftBoundsDevice()):

- ``rpu_config``: the RPU-config class; ``forward``, ``backward``, ``update``, ``mapping``: every
  dataclass field (enums by name);
- ``compound``: the compound class (TransferCompound, ChoppedTransferCompound,
  DynamicTransferCompound, MixedPrecisionCompound; None for a single device) and
  ``compound_fields``: its scalar fields; ``transfer_forward`` / ``transfer_update``: every field;
- ``devices``: per unit-cell device (aihwkit order: the fast device first, the slow one last)
  the class, its aihwkit base family and the fields that differ from that class's defaults
  (e.g. ``subtract_symmetry_point: true``).

Sources (tag v1.1.0 = the PyPI wheel): src/aihwkit/simulator/presets/configs.py, compounds.py,
utils.py (PresetIOParameters, PresetUpdateParameters), devices.py and
src/aihwkit/simulator/configs/helpers.py (build_config).
"""
import argparse
import dataclasses
import datetime
import enum
import json
import os
import platform
import sys
import warnings

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")
warnings.filterwarnings("ignore")

import aihwkit
from aihwkit.simulator.configs import build_config
from aihwkit.simulator.configs.devices import PulsedDevice, SoftBoundsDevice
from aihwkit.simulator.presets import configs as C

GROUPS = {
    "sgd": ("ReRamES", "ReRamSB", "Capacitor", "EcRam", "EcRamMO", "Idealized", "GokmenVlasov", "PCM"),
    "tiki-taka": "TikiTaka",
    "ttv2": "TTv2",
    "c-ttv2": "ChoppedTTv2",
    "agad": "AGAD",
    "mp": "MixedPrecision",
}
BUILD_CONFIG_ALGORITHMS = ("sgd", "tiki-taka", "ttv2", "c-ttv2", "agad", "mp")
SKIP = {"device", "unit_cell_devices", "transfer_forward", "transfer_update", "refresh_forward", "refresh_update"}


def plain(value):
    """JSON-able copy: enums by name, dataclasses as dicts, tuples as lists."""
    if isinstance(value, enum.Enum):
        return value.name
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def scalar_fields(obj) -> dict:
    return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.name not in SKIP}


def aihwkit_base(cls) -> str:
    """The first class of the MRO that is not a preset (the family: SoftBoundsReferenceDevice...)."""
    for klass in cls.__mro__:
        if "Preset" not in klass.__name__:
            return klass.__name__
    return cls.__name__


def describe_device(dev) -> dict:
    cls = type(dev)
    out = {"class": cls.__name__, "base": aihwkit_base(cls)}
    if isinstance(dev, PulsedDevice):
        default = plain(cls())
        now = plain(dev)
        out["overrides"] = {k: v for k, v in now.items() if default.get(k) != v}
    else:  # a unit cell (PCMPresetUnitCell): its own fields and devices
        out["fields"] = scalar_fields(dev)
        out["devices"] = [describe_device(d) for d in dev.unit_cell_devices]
    return out


def describe_config(cfg) -> dict:
    out = {"rpu_config": type(cfg).__name__}
    for name in ("forward", "backward", "update", "mapping"):
        out[name] = plain(getattr(cfg, name))
    dev = cfg.device
    if isinstance(dev, PulsedDevice):
        out.update(compound=None, compound_fields={}, transfer_forward=None, transfer_update=None,
                   devices=[describe_device(dev)])
        return out
    out["compound"] = type(dev).__name__
    out["compound_fields"] = scalar_fields(dev)
    out["transfer_forward"] = plain(getattr(dev, "transfer_forward", None))
    out["transfer_update"] = plain(getattr(dev, "transfer_update", None))
    if hasattr(dev, "unit_cell_devices"):
        out["devices"] = [describe_device(d) for d in dev.unit_cell_devices]
    else:  # MixedPrecisionCompound(device=...)
        out["devices"] = [describe_device(dev.device)]
    return out


def preset_names() -> dict:
    names = {}
    for algorithm, spec in GROUPS.items():
        if isinstance(spec, tuple):
            found = [f"{d}Preset" for d in spec]
        else:
            found = sorted(n for n in dir(C) if n.startswith(spec) and n.endswith("Preset")
                           and not (spec == "TTv2" and n.startswith("ChoppedTTv2")))
        for n in found:
            names[n] = algorithm
    return names


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data"))
    args = ap.parse_args(argv)
    presets = {}
    for name, algorithm in preset_names().items():
        entry = describe_config(getattr(C, name)())
        entry["algorithm"] = algorithm
        entry["device_name"] = name.removeprefix({"sgd": "", "tiki-taka": "TikiTaka", "ttv2": "TTv2",
                                                  "c-ttv2": "ChoppedTTv2", "agad": "AGAD",
                                                  "mp": "MixedPrecision"}[algorithm]).removesuffix("Preset")
        presets[name] = entry
    built = {alg: describe_config(build_config(alg, SoftBoundsDevice())) for alg in BUILD_CONFIG_ALGORITHMS}
    out = {
        "aihwkit_version": aihwkit.__version__,
        "generated": datetime.date.today().isoformat(),
        "python": platform.python_version(),
        "script": "benchmarks/aihwkit_config_presets.py",
        "sources": ["src/aihwkit/simulator/presets/configs.py", "src/aihwkit/simulator/presets/compounds.py",
                    "src/aihwkit/simulator/presets/utils.py", "src/aihwkit/simulator/presets/devices.py",
                    "src/aihwkit/simulator/configs/helpers.py"],
        "build_config_device": "SoftBoundsDevice()",
        "presets": presets,
        "build_config": built,
    }
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "aihwkit_config_presets.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {path}: {len(presets)} presets, build_config {list(built)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
