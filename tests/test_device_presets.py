"""aihwkit 1.1.0 device presets by name (analogtrain.devices.aihwkit_presets).

The table of aihwkit's values is tests/data/aihwkit_preset_values.json: every dataclass field of
aihwkit 1.1.0's ``<Name>PresetDevice()``, introspected from the installed wheel by
benchmarks/aihwkit_device_traces.py --presets (aihwkit is not imported here).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from analogtrain.devices import PRESETS, ConstantStep, ExpStep, LinearStep, SoftBoundsReference, get_preset

TABLE = json.loads((Path(__file__).parent / "data" / "aihwkit_preset_values.json").read_text())
NAMES = sorted(TABLE["presets"])
FAMILY = {"ExpStepDevice": ExpStep, "LinearStepDevice": LinearStep, "ConstantStepDevice": ConstantStep,
          "SoftBoundsReferenceDevice": SoftBoundsReference}
#: aihwkit fields without a counterpart here, with the only value accepted
UNSUPPORTED = {"reverse_up": False, "reverse_down": False, "reverse_offset": 0.01}


def test_table_is_aihwkit_1_1_0_and_complete():
    assert TABLE["aihwkit_version"] == "1.1.0"
    assert set(NAMES) == {f"{n}PresetDevice" for n in ("ReRamES", "ReRamSB", "Capacitor", "EcRam", "EcRamMO",
                                                       "Idealized", "GokmenVlasov", "PCM", "ReRamArrayOM",
                                                       "ReRamArrayHfO2")}


@pytest.mark.parametrize("name", NAMES)
def test_preset_carries_aihwkit_values(name):
    entry = TABLE["presets"][name]
    dev = get_preset(name)
    alias = get_preset(name.removesuffix("PresetDevice"))
    assert type(dev) is type(alias) is FAMILY[entry["aihwkit_base"]]
    assert dev.aihwkit_class == entry["aihwkit_base"]
    ours = dev.aihwkit_fields()
    for field, value in entry["fields"].items():
        if field in UNSUPPORTED:
            assert value == UNSUPPORTED[field], f"{name}.{field} = {value!r} is not modelled"
            continue
        assert field in ours, f"{name}: aihwkit field {field!r} missing"
        if isinstance(value, bool):
            assert ours[field] is value, f"{name}.{field}"
        else:
            assert ours[field] == pytest.approx(value, rel=1e-12, abs=0.0), f"{name}.{field}"


@pytest.mark.parametrize("name", NAMES)
def test_preset_samples_pulses_and_sp(name):
    dev = get_preset(name)
    s = dev.sample((16, 16), torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    counts = torch.cat([torch.full((16, 8), 50.0), torch.full((16, 8), -50.0)], dim=1)
    w = s.apply_pulses(torch.zeros(16, 16), counts, gen)
    w = s.apply_pulses(w, -counts, gen)
    assert bool(torch.isfinite(w).all())
    lo, hi = s.bounds()
    assert bool((w >= lo).all() and (w <= hi).all())
    for sp in (dev.symmetric_point(), s.symmetric_point()):
        assert bool(torch.isfinite(sp).all())
    assert math.isfinite(float(dev.G(dev.symmetric_point().to(torch.float64))))


def test_names_and_aliases_registered():
    for name in NAMES:
        assert name in PRESETS and name.removesuffix("PresetDevice") in PRESETS
        assert PRESETS[name].__doc__.startswith("aihwkit 1.1.0")


def test_reference_presets_give_array_reference():
    from analogtrain.arrays import ReferenceOffset

    ref = get_preset("ReRamArrayHfO2").array_reference()
    assert isinstance(ref, ReferenceOffset) and ref.std == pytest.approx(0.05)
    assert get_preset("ReRamSB").array_reference() is None


def test_device_report_lists_aihwkit_presets():
    from analogtrain.experiments.device_report import preset_table

    rows = preset_table(["ReRamES", "EcRam", "PCM"])
    assert [r["family"] for r in rows] == ["exp_step", "linear_step", "exp_step"]
    assert all(math.isfinite(r["sp"]) and r["states"] > 0 for r in rows)


# ----------------------------------------------------------------------------- MNIST runs (must-hold)
def mnist_sgd_config(name: str, **train) -> dict:
    """Analog SGD on the MNIST FCN (configs/mnist_fcn_analog_sgd.toml's task, lr and batch) with
    aihwkit's build_config("sgd", <preset>) settings: the preset device, IOParameters periphery,
    stochastic pulse trains (BL 31), 512 x 512 tiles."""
    return {"task": {"name": "mnist_fcn", "dataset": "mnist_subset"},
            "preset": {"algorithm": "sgd", "device": name},
            "train": {"epochs": 2, "lr": 0.05, "batch_size": 10, "seed": 0, "checkpoint": False, "threads": 1,
                      **train}}


def check_finite_run(summary: dict, name: str) -> None:
    assert summary["status"] == "finished" and not summary["diverged"], name
    for key in ("train_loss", "test_loss"):
        assert math.isfinite(summary["metrics"][key]), f"{name}: {key} = {summary['metrics'][key]}"
    assert summary["total_pulses"] > 0, name


@pytest.mark.parametrize("name", NAMES)
def test_preset_analog_sgd_mnist_slice_gives_finite_loss(name, tmp_path):
    """Fast version: 2 epochs of 10 steps on a 200-image slice of the MNIST subset."""
    from analogtrain.experiments import run_experiment

    cfg = mnist_sgd_config(name, steps_per_epoch=10, eval_at_start=False)
    cfg["task"].update(train_samples=200, test_samples=100)
    check_finite_run(run_experiment(cfg, tmp_path / name, quiet=True), name)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_preset_analog_sgd_mnist_two_epochs_gives_finite_loss(name, tmp_path):
    """The must-hold: 2 epochs of Analog SGD on the whole bundled MNIST subset (4,000 images)."""
    from analogtrain.experiments import run_experiment

    check_finite_run(run_experiment(mnist_sgd_config(name), tmp_path / name, quiet=True), name)


# ----------------------------------------------------------------------------- devices --list
def test_devices_list_prints_every_preset_once_and_plots(tmp_path, capsys):
    from analogtrain import cli
    from analogtrain.experiments.device_report import preset_list_table, pulse_response_trace

    rows = preset_list_table()
    names = [r["preset"] for r in rows]
    assert len(names) == len(set(names)) == len(set(map(id, PRESETS.values())))
    by_name = {r["preset"]: r for r in rows}
    for name in NAMES:  # aihwkit's name, its alias folded in
        assert by_name[name]["aliases"] == [name.removesuffix("PresetDevice")]
    for r in rows:
        assert r["states"] > 0 and math.isfinite(r["sp_mean"]) and r["sp_std"] >= 0, r
    assert by_name["IdealizedPresetDevice"]["states"] == pytest.approx(2.0 / 0.0002)
    assert by_name["ReRamArrayHfO2PresetDevice"]["sp_std"] > 0  # device-to-device spread of the SP
    assert by_name["paper_linear"]["sp_std"] == 0.0
    steps, mean, std = pulse_response_trace(get_preset("ReRamSB"), shape=(8, 8), max_pulses=1000)
    assert steps[0] == 0 and steps[-1] == 4000 and len(steps) == len(mean) == len(std)
    assert max(mean) > 0.3 and min(mean) < -0.3 and all(math.isfinite(v) for v in mean + std)

    png = tmp_path / "plots" / "responses.png"
    assert cli.main(["devices", "--list", "--preset", "ReRamSB", "--preset", "hfo2_rram", "--out", str(png)]) == 0
    out = capsys.readouterr().out
    assert "ReRamSBPresetDevice" in out and "ReRamSB" in out and "hfo2_rram" in out and "SP std" in out
    assert png.exists() and png.stat().st_size > 10_000 and str(png.resolve()) in out


def test_devices_list_default_out_is_in_the_current_directory(tmp_path, monkeypatch, capsys):
    from analogtrain import cli
    from analogtrain.experiments.commands import devices as command

    monkeypatch.chdir(tmp_path)
    assert cli.main(["devices", "--list", "--preset", "paper_linear"]) == 0
    assert (tmp_path / command.DEFAULT_LIST_OUT).exists()
    assert "paper_linear" in capsys.readouterr().out


def test_aihwkit_presets_take_field_overrides_in_configs():
    from analogtrain.experiments.config import build_device

    dev = build_device({"preset": "ReRamArrayHfO2", "reference_mean": 0.3, "reference_std": 0.2})
    assert dev.reference_mean == 0.3 and dev.reference_std == 0.2
    assert dev.dw_min == pytest.approx(0.4622, rel=1e-4)  # the rest is the preset's
    with pytest.raises(ValueError, match="reference_mea"):
        build_device({"preset": "ReRamArrayHfO2", "reference_mea": 0.3})
    with pytest.raises(ValueError, match="takes no other keys"):
        build_device({"preset": "hfo2_rram", "dw_min": 0.1})
    with pytest.raises(ValueError, match="dw_min"):
        build_device({"preset": "ReRamSB", "dw_min": -1.0})
