"""Experiments: tasks, the TOML config format, the run loop, sweeps and the demo.

From Python::

    from analogtrain.experiments import run_experiment, build_config, load_config
    summary = run_experiment(load_config("configs/quadratic.toml"), "runs/quad", quiet=True)
    cfg = build_config({"algorithm": {"name": "AnalogSGD"}, "device": {"preset": "offset_softbounds"}})

The format is described in docs/config_format.md. The names below are imported on first
access, so that the subcommand modules (experiments/commands) load without torch.
"""

import importlib
import importlib.util

#: public name -> the submodule defining it
_LAZY = {
    "apply_overrides": ".config",
    "build_algorithm": ".config",
    "build_config": ".config",
    "build_device": ".config",
    "dumps_toml": ".config",
    "load_config": ".config",
    "resolve": ".config",
    "validate": ".config",
    "read_metrics": ".runner",
    "run_experiment": ".runner",
    "run_sweep": ".sweep",
    "write_report": ".sweep",
    "TASKS": ".tasks",
    "TASK_MODULES": ".tasks",
    "Task": ".tasks",
    "make_task": ".tasks",
    "register_task": ".tasks",
    "task_names": ".tasks",
}

__all__ = ["TASKS", "TASK_MODULES", "Task", "apply_overrides", "build_algorithm", "build_config", "build_device",
           "dumps_toml", "load_config", "make_task", "read_metrics", "register_task", "resolve", "run_experiment",
           "run_sweep", "task_names", "validate", "write_report"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f".{name}", __name__)  # a submodule: .runner, .sweep, ...
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later accesses skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
