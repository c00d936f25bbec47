"""Start-up: the ``analogtrain`` parser and ``import analogtrain`` do not import torch; the lazy
package attributes resolve to the same objects as the submodules'."""

import importlib
import re
import subprocess
import sys

import analogtrain
import analogtrain.experiments
from analogtrain import cli


def python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_the_parser_and_light_help_pages_do_not_import_torch():
    assert python("import analogtrain.cli, sys; analogtrain.cli.build_parser(); print('torch' in sys.modules)") \
        == "False"
    for command in ("", "run", "sweep", "devices", "report", "demo", "calibrate"):
        argv = [command, "--help"] if command else ["--help"]
        code = (f"import contextlib, io, sys, analogtrain.cli\n"
                f"with contextlib.redirect_stdout(io.StringIO()):\n"
                f"    try:\n        analogtrain.cli.main({argv!r})\n    except SystemExit:\n        pass\n"
                f"print('torch' in sys.modules)")
        assert python(code) == "False", command
    assert python("import analogtrain, analogtrain.experiments, sys; print(analogtrain.__version__, "
                  "'torch' in sys.modules)") == f"{analogtrain.__version__} False"


def test_help_lists_every_subcommand():
    text = subprocess.run([sys.executable, "-m", "analogtrain.cli", "--help"], capture_output=True, text=True,
                          check=True).stdout
    names = [cli._command_name(importlib.import_module(p), p) for p in cli.SUBCOMMANDS]
    assert names == ["demo", "run", "sweep", "report", "devices", "calibrate"]
    listed = text.split("COMMAND", 1)[1]
    for name in names:
        assert re.search(rf"^ {{4}}{name}(\s|$)", listed, re.MULTILINE), name
    sweep_help = subprocess.run([sys.executable, "-m", "analogtrain.cli", "sweep", "--help"], capture_output=True,
                                text=True, check=True).stdout
    for option in ("--executor {local,ray}", "--address", "--num-cpus", "--tensorboard"):
        assert option in sweep_help, option


def test_lazy_package_attributes_resolve():
    for package in (analogtrain, analogtrain.experiments):
        for name in package.__all__:
            assert getattr(package, name) is not None, name
        assert set(package.__all__) <= set(dir(package))
    from analogtrain.experiments import run_experiment, runner, sweep

    assert run_experiment is runner.run_experiment and analogtrain.experiments.run_sweep is sweep.run_sweep
    assert analogtrain.convert is analogtrain.nn.convert
    assert analogtrain.AnalogConfig is importlib.import_module("analogtrain.config").AnalogConfig
    assert analogtrain.IO is importlib.import_module("analogtrain.periphery").IO
    # any other submodule resolves as an attribute, as when the package imported them eagerly
    assert python("import analogtrain as at, analogtrain.experiments as ex; "
                  "print(at.calibration.__name__, at.theory.__name__, ex.runner.__name__)") \
        == "analogtrain.calibration analogtrain.theory analogtrain.experiments.runner"
    assert analogtrain.calibration.zero_shift is importlib.import_module("analogtrain.calibration").zero_shift
    assert analogtrain.experiments.runner.run_experiment is run_experiment
    for package in (analogtrain, analogtrain.experiments):
        try:
            package.not_a_name  # noqa: B018
        except AttributeError as exc:
            assert "not_a_name" in str(exc)
        else:
            raise AssertionError("an unknown attribute must raise AttributeError")
