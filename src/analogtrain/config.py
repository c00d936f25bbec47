"""AnalogConfig: what an analog layer is made of (algorithm, device, periphery, engine)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import torch

from .arrays import AnalogArray
from .devices.base import Device
from .mapping import Mapping
from .periphery import IO
from .pulses import PulseEngine, make_engine


@dataclass
class AnalogConfig:
    """Configuration shared by the analog layers that ``convert`` creates.

    - ``algorithm``: an instance from :mod:`analogtrain.algorithms` (hyper-parameters).
    - ``device``: one Device for every array, or ``{"W": dev_w, "P": dev_p, ...}`` per array
      name; names the algorithm does not have are an error, and an array the dict does not
      name takes the ``"default"`` entry (an error without one).
    - ``io``: forward periphery (backward uses the same without bound management).
    - ``transfer_io``: periphery of transfer reads (default: perfect reads).
    - ``engine``: pulse engine name or instance for gradient updates; ``engine_kwargs`` are
      passed to the engine constructor when a name is given (e.g. ``{"bit_length": 8}``).
    - ``transfer_engine``: engine for transfers (default: the same as ``engine``).
    - ``mapping``: weight scaling, learned output scales and the split of large layers into
      tiles, as aihwkit's MappingParameter (:mod:`analogtrain.mapping`; default: none of them).
    """

    algorithm: object = None
    device: Device | dict = None
    io: IO = field(default_factory=IO.perfect)
    transfer_io: IO = field(default_factory=IO.perfect)
    engine: str | PulseEngine = "expected"
    engine_kwargs: dict = field(default_factory=dict)
    transfer_engine: str | PulseEngine | None = None
    dtype: torch.dtype = torch.float32
    mapping: Mapping = field(default_factory=Mapping)

    def __post_init__(self):
        from .algorithms import AnalogSGD  # local import: algorithms import config

        if self.algorithm is None:
            self.algorithm = AnalogSGD()
        if not hasattr(self.algorithm, "init"):
            raise ValueError(f"algorithm must be an analogtrain algorithm, got {type(self.algorithm).__name__}")
        if self.device is None:
            from .devices import SoftBounds

            self.device = SoftBounds(tau=1.0, asymmetry=0.0, dw_min=1e-3)
        devices = self.device.values() if isinstance(self.device, dict) else [self.device]
        for dev in devices:
            if not isinstance(dev, Device):
                raise ValueError(f"device must be a Device or a dict of Devices, got {type(dev).__name__}")  # noqa: TRY004
        if not isinstance(self.io, IO) or not isinstance(self.transfer_io, IO):
            raise ValueError("io and transfer_io must be analogtrain.IO instances")  # noqa: TRY004
        if not isinstance(self.mapping, Mapping):
            raise ValueError(f"mapping must be an analogtrain.Mapping, got {type(self.mapping).__name__}")  # noqa: TRY004
        make_engine(self.engine, **(self.engine_kwargs if isinstance(self.engine, str) else {}))

    def device_for(self, name: str) -> Device:
        if isinstance(self.device, dict):
            if name in self.device:
                return self.device[name]
            if "default" in self.device:
                return self.device["default"]
            hint = [k for k in self.device if k.lower() == name.lower()]
            hint = f" (did you mean {name!r} for {hint[0]!r}? names are case-sensitive)" if hint else ""
            raise ValueError(f"device: no entry for array {name!r} (entries: {sorted(self.device)}); name every "
                             f"array of {type(self.algorithm).__name__} or add a 'default' entry{hint}")
        return self.device

    def check_device_names(self, array_names) -> None:
        """A per-array device dict may only name arrays the algorithm has (or 'default')."""
        if not isinstance(self.device, dict):
            return
        unknown = sorted(k for k in self.device if k != "default" and k not in array_names)
        if unknown:
            raise ValueError(f"device: unknown array name(s) {unknown}; the arrays of "
                             f"{type(self.algorithm).__name__} are {sorted(array_names)} (or 'default')")

    def make_engine(self) -> PulseEngine:
        return make_engine(self.engine, **(self.engine_kwargs if isinstance(self.engine, str) else {}))

    def make_transfer_engine(self) -> PulseEngine:
        if self.transfer_engine is None:
            return self.make_engine()
        return make_engine(self.transfer_engine)

    def describe(self) -> dict:
        dev = ({k: v.describe() for k, v in self.device.items()} if isinstance(self.device, dict)
               else self.device.describe())
        return {
            "algorithm": self.algorithm.describe() if hasattr(self.algorithm, "describe") else repr(self.algorithm),
            "device": dev,
            "io": self.io.describe(),
            "transfer_io": self.transfer_io.describe(),
            "engine": self.make_engine().describe(),
            "mapping": self.mapping.describe(),
        }


@dataclass
class TileSpec:
    """Everything an algorithm needs to build the arrays of one layer."""

    shape: tuple[int, int]
    config: AnalogConfig
    seed: int = 0
    torch_device: torch.device | str | None = None
    init_weight: torch.Tensor | None = None

    def array_seed(self, name: str) -> int:
        return (self.seed * 1_000_003 + zlib.crc32(name.encode())) % (2**62)

    def make_array(self, name: str, init=0.0, reference=None, engine=None) -> AnalogArray:
        """An array named ``name`` with its own seed, the configured device and engine.

        ``reference`` None takes the device's own reference when it has one (aihwkit's reference
        devices, e.g. ``SoftBoundsReference.array_reference()``: the SP-subtracting reference of
        ``subtract_symmetry_point``); an explicit reference (an algorithm's ``p_reference``, or a
        run config's [reference] applied after construction) takes precedence."""
        device = self.config.device_for(name)
        if reference is None and callable(getattr(device, "array_reference", None)):
            reference = device.array_reference()
        array = AnalogArray(
            self.shape,
            device,
            engine=engine if engine is not None else self.config.make_engine(),
            transfer_engine=self.config.make_transfer_engine(),
            seed=self.array_seed(name),
            reference=reference,
            init=init,
            torch_device=self.torch_device,
            dtype=self.config.dtype,
        )
        array.name = name
        return array

    def generator(self, name: str) -> torch.Generator:
        """A generator for digital randomness of the algorithm (choppers, column choice)."""
        gen = torch.Generator(device=torch.device(self.torch_device or "cpu"))
        gen.manual_seed(self.array_seed(name))
        return gen
