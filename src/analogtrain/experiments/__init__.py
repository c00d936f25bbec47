"""Experiments: tasks, the TOML config format, the run loop, sweeps and the demo.

From Python::

    from analogtrain.experiments import run_experiment, build_config, load_config
    summary = run_experiment(load_config("configs/quadratic.toml"), "runs/quad", quiet=True)
    cfg = build_config({"algorithm": {"name": "AnalogSGD"}, "device": {"preset": "offset_softbounds"}})

The format is described in docs/config_format.md.
"""

from .config import (
                     apply_overrides,
                     build_algorithm,
                     build_config,
                     build_device,
                     dumps_toml,
                     load_config,
                     resolve,
                     validate,
)
from .runner import read_metrics, run_experiment
from .sweep import run_sweep, write_report
from .tasks import TASK_MODULES, TASKS, Task, make_task, register_task, task_names

__all__ = ["TASKS", "TASK_MODULES", "Task", "apply_overrides", "build_algorithm", "build_config", "build_device",
           "dumps_toml", "load_config", "make_task", "read_metrics", "register_task", "resolve", "run_experiment",
           "run_sweep", "task_names", "validate", "write_report"]
