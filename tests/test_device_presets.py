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
