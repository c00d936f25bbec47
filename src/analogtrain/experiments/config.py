"""Experiment configs: TOML tables -> defaults filled in -> AnalogConfig, task, training settings.

The format is documented in docs/config_format.md. In short::

    [task]        name = "mnist_fcn" + the task's keywords
    [algorithm]   name = a class of analogtrain.algorithms + its keywords
    [device]      preset = "..." | family = "SoftBounds" + keywords | [device.W], [device.P] tables
    [io]          perfect = true | preset = "paper" | IO keywords      ([transfer_io] alike)
    [engine]      name = "expected" | "stochastic" | "deterministic" + engine keywords
    [reference]   array name = "symmetric_point" | number | {mean = .., std = ..}
    [preset]      name = "TTv2ReRamSBPreset" | algorithm = "ttv2" + device = "ReRamSB" (aihwkit's
                  presets, analogtrain.presets; explicit sections override the preset's parts)
    [train]       epochs, lr, batch_size, seed, device, layers, ...

Inside [algorithm] a table with ``name`` of an algorithm class builds that algorithm (nested
algorithms such as ``then``), a table with ``type`` builds any public analogtrain object (e.g.
``{type = "ReferenceOffset", mean = 0.2, std = 0.1}``), a table with ``preset``/``family``
builds a device.
"""

from __future__ import annotations

import copy
import inspect
import math
import tomllib

import torch

TRAIN_DEFAULTS = {
    "epochs": 1,
    "lr": 0.1,
    "batch_size": None,  # None: the task's default
    "seed": 0,
    "device": "cpu",
    "layers": "all",
    "momentum": 0.0,
    "weight_decay": 0.0,
    "lr_step_epochs": 0,  # StepLR period in epochs; 0: constant lr
    "lr_step_factor": 0.5,
    "steps_per_epoch": None,  # cap on optimizer steps per epoch (None: the whole training set)
    "eval_at_start": True,
    "dtype": "float32",
    "checkpoint": True,
    "threads": None,  # torch.set_num_threads for the run (None: leave torch's setting)
    "tensorboard": False,  # also write TensorBoard event files into <run dir>/tensorboard/
}

SECTIONS = ("task", "algorithm", "device", "io", "transfer_io", "engine", "transfer_engine", "reference", "mapping",
            "preset", "train", "meta")

DTYPES = {"float32": torch.float32, "float64": torch.float64}


# --------------------------------------------------------------------------- dict helpers


def parse_value(text: str):
    """A command-line value as a TOML literal (``0.1``, ``true``, ``[1, 2]``, ``"x"``); bare words
    that are not TOML (``ERIDER``) are taken as strings."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_list(text: str) -> list:
    """``v1,v2,...`` as a list of TOML literals (bare words as strings)."""
    try:
        return tomllib.loads(f"v = [{text}]")["v"]
    except tomllib.TOMLDecodeError:
        return [parse_value(part.strip()) for part in text.split(",")]


def set_dotted(config: dict, key: str, value) -> dict:
    """Set ``config["a"]["b"]["c"] = value`` for ``key = "a.b.c"`` (creating tables); in place."""
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise ValueError(f"bad config key {key!r}: expected dotted names like train.lr")
    node = config
    for p in parts[:-1]:
        child = node.setdefault(p, {})
        if not isinstance(child, dict):
            raise ValueError(f"config key {key!r}: {p!r} is a value, not a table")  # noqa: TRY004
        node = child
    node[parts[-1]] = value
    return config


def get_dotted(config: dict, key: str, default=None):
    node = config
    for p in key.split("."):
        if not isinstance(node, dict) or p not in node:
            return default
        node = node[p]
    return node


def apply_overrides(config: dict, overrides: list[str] | dict | None) -> dict:
    """A deep copy of ``config`` with ``key=value`` strings (or a {key: value} dict) applied."""
    config = copy.deepcopy(config)
    if not overrides:
        return config
    if isinstance(overrides, dict):
        items = list(overrides.items())
    else:
        items = []
        for item in overrides:
            if "=" not in item:
                raise ValueError(f"override {item!r} must look like key=value (e.g. train.lr=0.05)")
            key, _, text = item.partition("=")
            items.append((key.strip(), parse_value(text.strip())))
    for key, value in items:
        set_dotted(config, key, value)
    return config


def load_config(path) -> dict:
    """Read a TOML config file into a dict (ValueError with the file name on a syntax error)."""
    with open(path, "rb") as f:
        try:
            return tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: invalid TOML: {exc}") from exc


def _toml_key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else _toml_scalar(k)


def _toml_scalar(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        escaped = v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_scalar(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_scalar(x)}" for k, x in v.items()) + "}"
    raise ValueError(f"cannot write {type(v).__name__} value {v!r} to TOML")


def dumps_toml(config: dict) -> str:
    """Write a config dict as TOML (tables for nested dicts, None values left out)."""
    lines: list[str] = []

    def emit(table: dict, prefix: str) -> None:
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict) and v is not None}
        tables = {k: v for k, v in table.items() if isinstance(v, dict)}
        if prefix and (scalars or not tables):
            lines.append(f"[{prefix}]")
        for k, v in scalars.items():
            lines.append(f"{_toml_key(k)} = {_toml_scalar(v)}")
        if scalars or (prefix and not tables):
            lines.append("")
        for k, v in tables.items():
            emit(v, f"{prefix}.{_toml_key(k)}" if prefix else _toml_key(k))

    emit(config, "")
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------- resolution


def resolve(config: dict) -> dict:
    """Check the sections and fill in defaults; returns a new dict (the "resolved config")."""
    if not isinstance(config, dict):
        raise ValueError(f"config must be a dict of tables, got {type(config).__name__}")  # noqa: TRY004
    unknown = [k for k in config if k not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown config section(s) {unknown}; allowed: {list(SECTIONS)}")
    cfg = copy.deepcopy(config)
    for name in SECTIONS:
        if name in cfg and not isinstance(cfg[name], dict):
            raise ValueError(f"[{name}] must be a table, got {cfg[name]!r}")
    if "task" not in cfg or "name" not in cfg["task"]:
        raise ValueError("task.name is required (e.g. [task] name = \"mnist_fcn\")")
    # with a [preset], the algorithm defaults to the preset's (its class name is recorded)
    default_algorithm = type(build_preset(cfg["preset"]).algorithm).__name__ if "preset" in cfg else "AnalogSGD"
    cfg.setdefault("algorithm", {"name": default_algorithm})
    cfg["algorithm"].setdefault("name", default_algorithm)
    train = dict(TRAIN_DEFAULTS)
    bad = [k for k in cfg.get("train", {}) if k not in TRAIN_DEFAULTS]
    if bad:
        raise ValueError(f"unknown train key(s) {bad}; allowed: {sorted(TRAIN_DEFAULTS)}")
    train.update(cfg.get("train", {}))
    cfg["train"] = train
    validate_train(train)
    return cfg


def validate_train(train: dict) -> None:
    def check_int(key, lo, allow_none=False):
        v = train[key]
        if v is None and allow_none:
            return
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            extra = " or none" if allow_none else ""
            raise ValueError(f"train.{key} must be an integer >= {lo}{extra}, got {v!r}")

    check_int("epochs", 0)
    check_int("seed", 0)
    check_int("lr_step_epochs", 0)
    check_int("batch_size", 1, allow_none=True)
    check_int("steps_per_epoch", 1, allow_none=True)
    check_int("threads", 1, allow_none=True)
    lr = train["lr"]
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"train.lr must be a number in (0, inf), got {lr!r}")
    if not (isinstance(train["momentum"], (int, float)) and 0 <= train["momentum"] < 1):
        raise ValueError(f"train.momentum must lie in [0, 1), got {train['momentum']!r}")
    if not (isinstance(train["weight_decay"], (int, float)) and train["weight_decay"] >= 0):
        raise ValueError(f"train.weight_decay must be >= 0, got {train['weight_decay']!r}")
    if not (isinstance(train["lr_step_factor"], (int, float)) and 0 < train["lr_step_factor"] <= 1):
        raise ValueError(f"train.lr_step_factor must lie in (0, 1], got {train['lr_step_factor']!r}")
    if train["device"] not in ("cpu", "cuda", "auto") and not str(train["device"]).startswith("cuda:"):
        raise ValueError(f"train.device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {train['device']!r}")
    layers = train["layers"]
    if not (layers in ("all", "none") or (isinstance(layers, list) and all(isinstance(n, str) for n in layers))):
        raise ValueError(f"train.layers must be 'all', 'none' or a list of module names, got {layers!r}")
    if train["dtype"] not in DTYPES:
        raise ValueError(f"train.dtype must be one of {list(DTYPES)}, got {train['dtype']!r}")
    if train["tensorboard"] is not True and train["tensorboard"] is not False:
        raise ValueError(f"train.tensorboard must be true or false, got {train['tensorboard']!r}")


def torch_device(name: str) -> torch.device:
    """``"auto"`` -> cuda when available else cpu; ``"cuda"`` without CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"train.device = {name!r} but CUDA is not available (use 'cpu' or 'auto')")
    return torch.device(name)


def _call(cls, kwargs: dict, where: str):
    """``cls(**kwargs)`` with TypeErrors (unknown keywords) and ValueErrors naming ``where``."""
    try:
        sig = inspect.signature(cls)
        has_var_kw = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
        if not has_var_kw:
            unknown = [k for k in kwargs if k not in sig.parameters]
            if unknown:
                raise ValueError(f"{where}: {cls.__name__} has no keyword(s) {unknown}; "
                                 f"allowed: {[p for p in sig.parameters if p != 'self']}")
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ValueError):
            raise
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"{where}: {cls.__name__}: {exc}") from exc
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc


def _namespaces():
    import analogtrain as at
    from analogtrain import calibration

    return [at, at.algorithms, at.devices, at.pulses, calibration]


def build_object(table: dict, where: str):
    """``{type = "ClassName", ...}``: a public analogtrain class called with the other keys."""
    kwargs = {k: v for k, v in table.items() if k != "type"}
    name = table["type"]
    for space in _namespaces():
        cls = getattr(space, str(name), None)
        if inspect.isclass(cls):
            return _call(cls, resolve_values(kwargs, where), where)
    raise ValueError(f"{where}.type: unknown class {name!r} (looked in analogtrain, .algorithms, .devices, .pulses)")


def resolve_values(kwargs: dict, where: str) -> dict:
    """Keyword values with nested tables turned into algorithms, devices or objects."""
    return {k: _resolve_value(v, f"{where}.{k}") for k, v in kwargs.items()}


def _resolve_value(value, where: str):
    from analogtrain import algorithms

    if isinstance(value, dict):
        if "type" in value:
            return build_object(value, where)
        if "name" in value and inspect.isclass(getattr(algorithms, str(value["name"]), None)):
            return build_algorithm(value, where)
        if "preset" in value or "family" in value:
            return build_device(value, where)
        return resolve_values(value, where)
    if isinstance(value, list):
        return [_resolve_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def algorithm_names() -> list[str]:
    from analogtrain import algorithms
    from analogtrain.algorithms.base import Algorithm

    return sorted(n for n in dir(algorithms)
                  if inspect.isclass(getattr(algorithms, n)) and issubclass(getattr(algorithms, n), Algorithm)
                  and getattr(algorithms, n) is not Algorithm)


def build_algorithm(table: dict, where: str = "algorithm"):
    """``{name = "ResidualLearning", gamma = 0.1, ...}`` -> ``analogtrain.algorithms.ResidualLearning(gamma=0.1)``."""
    from analogtrain import algorithms
    from analogtrain.algorithms.base import Algorithm

    name = table.get("name")
    cls = getattr(algorithms, str(name), None) if name is not None else None
    if not (inspect.isclass(cls) and issubclass(cls, Algorithm)):
        raise ValueError(f"{where}.name: unknown algorithm {name!r}; available: {algorithm_names()}")
    kwargs = resolve_values({k: v for k, v in table.items() if k != "name"}, where)
    return _call(cls, kwargs, where)


def build_device(table: dict, where: str = "device"):
    """``{preset = "hfo2_rram"}`` or ``{family = "SoftBounds", tau = 0.6, ...}`` -> a Device."""
    from analogtrain import devices

    if "preset" in table:
        from analogtrain.devices.aihwkit_presets import AIHWKIT_PRESET_FACTORIES, aihwkit_preset

        extra = {k: v for k, v in table.items() if k != "preset"}
        if table["preset"] not in devices.PRESETS:
            raise ValueError(f"{where}.preset: unknown preset {table['preset']!r}; available: {sorted(devices.PRESETS)}")
        if extra:  # aihwkit presets take field overrides, as aihwkit's preset dataclasses do
            if table["preset"] not in AIHWKIT_PRESET_FACTORIES:
                raise ValueError(f"{where}: preset {table['preset']!r} takes no other keys, got {sorted(extra)} "
                                 f"(aihwkit presets do; or use family = ...)")
            try:
                return aihwkit_preset(table["preset"], **extra)
            except TypeError as exc:
                raise ValueError(f"{where}: preset {table['preset']!r}: {exc}") from exc
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from exc
        return devices.get_preset(table["preset"])
    if "family" in table:
        name = table["family"]
        cls = getattr(devices, str(name), None)
        if not (inspect.isclass(cls) and issubclass(cls, devices.Device)) or cls is devices.Device:
            families = sorted(n for n in devices.__all__ if inspect.isclass(getattr(devices, n))
                              and issubclass(getattr(devices, n), devices.Device) and n != "Device")
            raise ValueError(f"{where}.family: unknown device family {name!r}; available: {families}")
        kwargs = {k: v for k, v in table.items() if k != "family"}
        return _call(cls, kwargs, where)
    raise ValueError(f"{where}: give preset = \"...\" or family = \"...\" (or per-array tables [device.W], ...)")


def build_devices(table: dict | None):
    """The [device] section: one device, or ``{array name: device}`` from sub-tables."""

    if not table:
        return None  # AnalogConfig's default device
    if "preset" in table or "family" in table:
        return build_device(table, "device")
    out = {}
    for name, sub in table.items():
        if not isinstance(sub, dict):
            raise ValueError(f"device.{name}: expected a table with preset or family (per-array device), got {sub!r}")  # noqa: TRY004
        out[name] = build_device(sub, f"device.{name}")
    return out


def build_io(table: dict | None, where: str = "io"):
    """[io]: ``perfect = true`` (exact MVM), ``preset = "paper"`` (Table 4 periphery) or IO keywords."""
    from analogtrain import IO

    if not table:
        return IO.perfect()
    table = dict(table)
    if table.pop("perfect", False):
        if table:
            raise ValueError(f"{where}: perfect = true takes no other keys, got {sorted(table)}")
        return IO.perfect()
    if "preset" in table:
        preset = table.pop("preset")
        if preset not in ("paper", "perfect", "default") or table:
            raise ValueError(f"{where}.preset must be 'paper', 'default' or 'perfect' with no other keys, got {preset!r}")
        return IO.perfect() if preset == "perfect" else IO.paper()
    return _call(IO, table, where)


def build_engine(table: dict | str | None, where: str = "engine"):
    """[engine]: ``name`` plus keyword arguments; returns (name, kwargs) after checking them."""
    from analogtrain.pulses import ENGINES, make_engine

    if table is None:
        return "expected", {}
    if isinstance(table, str):
        table = {"name": table}
    table = dict(table)
    name = table.pop("name", "expected")
    if name not in ENGINES:
        raise ValueError(f"{where}.name must be one of {sorted(ENGINES)}, got {name!r}")
    _call(ENGINES[name], table, where)
    make_engine(name, **table)
    return name, table


def build_reference(table: dict | None) -> dict:
    """[reference]: ``{array name: "symmetric_point" | number | {mean, std}}`` -> values for
    :meth:`AnalogArray.set_reference`."""
    from analogtrain import ReferenceOffset

    out = {}
    for name, value in (table or {}).items():
        where = f"reference.{name}"
        if isinstance(value, dict):
            if "type" in value:
                out[name] = build_object(value, where)
            else:
                out[name] = _call(ReferenceOffset, value, where)
        elif isinstance(value, str):
            if value not in ("symmetric_point", "sp", "none"):
                raise ValueError(f"{where} must be 'symmetric_point', 'none', a number or {{mean, std}}, got {value!r}")
            out[name] = None if value == "none" else "symmetric_point"
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
        else:
            raise ValueError(f"{where} must be 'symmetric_point', a number or {{mean, std}}, got {value!r}")  # noqa: TRY004
    return out


def build_mapping(table: dict | None):
    """``[mapping]``: aihwkit's MappingParameter fields (:class:`analogtrain.Mapping`), or
    ``preset = "aihwkit"`` for aihwkit's 512 x 512 tiles plus any field overrides."""
    from analogtrain import Mapping

    if table is None:
        return Mapping()
    if not isinstance(table, dict):
        raise ValueError(f"mapping must be a table of Mapping fields, got {table!r}")  # noqa: TRY004
    table = dict(table)
    preset = table.pop("preset", None)
    if preset not in (None, "aihwkit", "none"):
        raise ValueError(f"mapping.preset must be 'aihwkit' or 'none', got {preset!r}")
    if preset == "aihwkit":
        table = {"max_input_size": 512, "max_output_size": 512, **table}
    return _call(Mapping, table, "mapping")


PRESET_KEYS = ("name", "algorithm", "device")


def build_preset(table: dict):
    """``[preset]``: ``name = "TTv2ReRamSBPreset"`` (an aihwkit algorithm preset,
    ``analogtrain.presets.ALGORITHM_PRESETS``) or ``algorithm = "ttv2"`` and ``device = "ReRamSB"``
    (aihwkit's build_config: an algorithm name and a device preset name or a device table)."""
    from analogtrain import presets

    if not isinstance(table, dict):
        raise ValueError(f"[preset] must be a table, got {table!r}")  # noqa: TRY004
    unknown = [k for k in table if k not in PRESET_KEYS]
    if unknown:
        raise ValueError(f"preset: unknown key(s) {unknown}; allowed: name, or algorithm and device")
    if "name" in table:
        if len(table) > 1:
            raise ValueError(f"preset: name takes no other keys, got {sorted(k for k in table if k != 'name')} "
                             "(override parts with [algorithm], [device], [io], ... sections)")
        name = table["name"]
        if name not in presets.ALGORITHM_PRESETS:
            hint = f" ({presets.NOT_PROVIDED[name]})" if name in presets.NOT_PROVIDED else ""
            raise ValueError(f"preset.name: unknown algorithm preset {name!r}{hint}; available: "
                             f"{sorted(presets.ALGORITHM_PRESETS)}")
        return presets.get_config_preset(name)
    missing = [k for k in ("algorithm", "device") if k not in table]
    if missing:
        raise ValueError(f"preset: give name = \"<aihwkit preset>\" or both algorithm and device (missing {missing})")
    algorithm, device = table["algorithm"], table["device"]
    if not isinstance(algorithm, str) or algorithm.lower() not in presets.ALGORITHM_ALIASES:
        raise ValueError(f"preset.algorithm must be one of {sorted(presets.ALGORITHM_ALIASES)}, got {algorithm!r}")
    if isinstance(device, dict):
        device = build_device(device, "preset.device")
    else:
        from analogtrain import devices

        if device not in devices.PRESETS:
            raise ValueError(f"preset.device: unknown device preset {device!r}; available: {sorted(devices.PRESETS)}")
    try:
        return presets.build_config(algorithm, device)
    except ValueError as exc:
        raise ValueError(f"preset: {exc}") from exc


def _preset_algorithm(base, table: dict | None):
    """The algorithm of a preset run: the preset's; [algorithm] with the preset's class name (or
    none) changes its fields, with another name replaces it."""
    import dataclasses

    if not table:
        return base
    if table.get("name", type(base).__name__) != type(base).__name__:
        return build_algorithm(table)
    fields = resolve_values({k: v for k, v in table.items() if k != "name"}, "algorithm")
    if not fields:
        return base
    allowed = [f.name for f in dataclasses.fields(base)]
    unknown = [k for k in fields if k not in allowed]
    if unknown:
        raise ValueError(f"algorithm: {type(base).__name__} has no keyword(s) {unknown}; allowed: {allowed}")
    try:
        return dataclasses.replace(base, **fields)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"algorithm: {exc}") from exc


def _build_from_preset(cfg: dict, dtype):
    """AnalogConfig of a run with a [preset]: each of [algorithm], [device], [io], [transfer_io],
    [engine], [transfer_engine], [mapping] that the config has overrides that part of the preset
    ([engine] without name: keywords merged into the preset's engine)."""
    import dataclasses

    from analogtrain.pulses import make_engine

    base = build_preset(cfg["preset"])
    parts = {"algorithm": _preset_algorithm(base.algorithm, cfg.get("algorithm")), "dtype": dtype}
    if "device" in cfg:
        parts["device"] = build_devices(cfg["device"])
    for name in ("io", "transfer_io"):
        if name in cfg:
            parts[name] = build_io(cfg[name], name)
    if "engine" in cfg:
        table = cfg["engine"]
        if isinstance(table, dict) and "name" not in table and isinstance(base.engine, str):
            table = {"name": base.engine, **base.engine_kwargs, **table}
        parts["engine"], parts["engine_kwargs"] = build_engine(table, "engine")
    if cfg.get("transfer_engine") is not None:
        name, kwargs = build_engine(cfg["transfer_engine"], "transfer_engine")
        parts["transfer_engine"] = make_engine(name, **kwargs) if kwargs else name
    if "mapping" in cfg:
        parts["mapping"] = build_mapping(cfg["mapping"])
    try:
        return dataclasses.replace(base, **parts)
    except ValueError as exc:
        raise ValueError(f"config: {exc}") from exc


def validate(config: dict) -> dict:
    """Resolve a config and build its task, algorithm, devices, periphery, engines and references
    (no data is loaded); raises the first ValueError. Returns the resolved config."""
    from .tasks import make_task

    cfg = resolve(config)
    make_task(cfg["task"])
    build_config(cfg)
    build_reference(cfg.get("reference"))
    return cfg


def build_config(config: dict):
    """An :class:`analogtrain.AnalogConfig` from a config dict (sections algorithm, device, io,
    transfer_io, engine, transfer_engine, mapping; train.dtype), or from a [preset] with those
    sections overriding its parts."""
    from analogtrain import AnalogConfig
    from analogtrain.pulses import make_engine

    cfg = resolve(config) if "task" in config else config
    if cfg.get("preset") is not None:
        dtype_name = cfg.get("train", {}).get("dtype", "float32")
        if dtype_name not in DTYPES:
            raise ValueError(f"train.dtype must be one of {list(DTYPES)}, got {dtype_name!r}")
        return _build_from_preset(cfg, DTYPES[dtype_name])
    algorithm = build_algorithm(cfg.get("algorithm", {"name": "AnalogSGD"}))
    device = build_devices(cfg.get("device"))
    io = build_io(cfg.get("io"), "io")
    transfer_io = build_io(cfg.get("transfer_io"), "transfer_io")
    engine, engine_kwargs = build_engine(cfg.get("engine"), "engine")
    transfer_engine = None
    if cfg.get("transfer_engine") is not None:
        name, kwargs = build_engine(cfg["transfer_engine"], "transfer_engine")
        transfer_engine = make_engine(name, **kwargs) if kwargs else name
    dtype_name = cfg.get("train", {}).get("dtype", "float32")
    if dtype_name not in DTYPES:
        raise ValueError(f"train.dtype must be one of {list(DTYPES)}, got {dtype_name!r}")
    dtype = DTYPES[dtype_name]
    mapping = build_mapping(cfg.get("mapping"))
    try:
        return AnalogConfig(algorithm=algorithm, device=device, io=io, transfer_io=transfer_io, engine=engine,
                            engine_kwargs=engine_kwargs, transfer_engine=transfer_engine, dtype=dtype,
                            mapping=mapping)
    except ValueError as exc:
        raise ValueError(f"config: {exc}") from exc
