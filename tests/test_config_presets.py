"""aihwkit 1.1.0's algorithm presets and build_config (analogtrain.presets).

The table of aihwkit's values is tests/data/aihwkit_config_presets.json: every field of the RPU
configs of aihwkit 1.1.0's ``<Device>Preset``, ``TikiTaka*``, ``TTv2*``, ``ChoppedTTv2*``,
``AGAD*`` and ``MixedPrecision*`` presets and of ``build_config(algorithm, SoftBoundsDevice())``,
introspected from the installed wheel by benchmarks/aihwkit_config_presets.py (aihwkit is not
imported here). The tables below say which analogtrain value each aihwkit field is, or the
only aihwkit value accepted for a field analogtrain does not model; every field of the JSON must
be in one of them.
"""

from __future__ import annotations

import json
import math
import operator
from pathlib import Path

import pytest
import torch

import analogtrain as at
from analogtrain import presets
from analogtrain.algorithms import AGAD, AnalogSGD, ChoppedTikiTakaV2, MixedPrecision, TikiTaka
from analogtrain.devices import SoftBoundsReference
from analogtrain.experiments.config import build_config as build_run_config
from analogtrain.experiments.config import resolve
from analogtrain.nn import AnalogLinear

DATA = Path(__file__).parent / "data"
TABLE = json.loads((DATA / "aihwkit_config_presets.json").read_text())
DEVICE_TABLE = json.loads((DATA / "aihwkit_preset_values.json").read_text())
NAMES = sorted(presets.ALGORITHM_PRESETS)
ANY = object()  # any aihwkit value accepted (a field without effect here)

# ----------------------------------------------------------------------------- IO
NM = {"abs_max": "ABS_MAX", "none": "NONE"}
BM = {"iterative": "ITERATIVE", "none": "NONE"}
#: aihwkit IOParameters field -> its value computed from analogtrain's IO
IO_FIELDS = {
    "is_perfect": lambda io: io.is_perfect,
    "inp_res": lambda io: 1.0 / (2**io.inp_bits - 2),
    "inp_bound": lambda io: io.inp_bound,
    "inp_noise": lambda io: io.inp_noise,
    "out_res": lambda io: 1.0 / (2**io.out_bits - 2),
    "out_bound": lambda io: io.out_bound,
    "out_noise": lambda io: io.out_noise,
    "w_noise": lambda io: io.w_noise,
    "noise_management": lambda io: NM[io.noise_management],
    "bound_management": lambda io: BM[io.bound_management],
    "max_bm_factor": lambda io: io.max_bm_factor,
    "max_bm_res": lambda io: io.max_bm_res,
}
#: IOParameters fields not modelled: the only value accepted (ANY: no effect with the others)
IO_ACCEPTED = {"mv_type": "ONE_PASS", "inp_sto_round": False, "inp_asymmetry": 0.0, "out_noise_std": 0.0,
               "out_sto_round": False, "out_scale": 1.0, "out_asymmetry": 0.0, "w_noise_type": ANY, "ir_drop": 0.0,
               "ir_drop_g_ratio": ANY, "out_nonlinearity": 0.0, "out_nonlinearity_std": 0.0, "slope_calibration": 0.0,
               "v_offset_std": 0.0, "v_offset_w_min": ANY, "r_series": 0.0, "w_read_asymmetry_dtod": 0.0,
               "bm_test_negative_bound": True, "nm_thres": 0.0}

# ----------------------------------------------------------------------------- update
UPDATE_FIELDS = {"desired_bl": lambda e: e.bit_length, "update_bl_management": lambda e: e.bl_management,
                 "update_management": lambda e: e.update_management}
UPDATE_ACCEPTED = {"pulse_type": "STOCHASTIC_COMPRESSED", "fixed_bl": True, "res": 0, "x_res_implicit": 0,
                   "d_res_implicit": 0, "d_sparsity": False, "sto_round": False, "um_grad_scale": 1.0}

# ----------------------------------------------------------------------------- compounds
TRANSFER_FIELDS = {
    "fast_lr": lambda a: a.fast_lr,
    "transfer_lr": lambda a: a.transfer_lr,
    "scale_transfer_lr": lambda a: a.scale_transfer_lr,
    "transfer_every": lambda a: a.transfer_every,
    "units_in_mbatch": lambda a: a.units_in_mbatch,
    "n_reads_per_transfer": lambda a: a.columns_per_transfer,
    "transfer_columns": lambda a: a.transfer_columns,
    "with_reset_prob": lambda a: a.with_reset_prob,
    "random_selection": lambda a: a.random_selection,
    "gamma": lambda a: getattr(a, "gamma", 0.0),
}
CHOPPED_FIELDS = {
    **TRANSFER_FIELDS,
    "in_chop_prob": lambda a: a.chop_prob,
    "in_chop_random": lambda a: a.chop_random,
    "out_chop_prob": lambda a: a.out_chop_prob,
    "buffer_granularity": lambda a: a.thres,
    "auto_granularity": lambda a: a.auto_granularity,
    "momentum": lambda a: a.momentum,
    "forget_buffer": lambda a: a.forget_buffer,
    "auto_scale": lambda a: a.auto_scale,
    "auto_momentum": lambda a: a.auto_momentum,
}
DYNAMIC_FIELDS = {**CHOPPED_FIELDS, "tail_weightening": lambda a: a.tail_weightening}
MP_FIELDS = {name: operator.attrgetter(name) for name in (
    "transfer_every", "n_rows_per_transfer", "random_row", "granularity", "transfer_lr", "n_x_bins", "n_d_bins",
    "stoc_round_x", "stoc_round_d")}
#: compound fields not modelled: the accepted value (ANY: listed in presets.NOT_MODELLED)
COMPOUND_ACCEPTED = {"construction_seed": ANY, "gamma_vec": [], "no_self_transfer": True, "transfer_every_vec": [],
                     "transfer_lr_vec": [], "step": 1.0, "no_buffer": False,
                     "correct_gradient_magnitudes": False, "experimental_correct_accumulation": False,
                     "buffer_cap": 0.0}
COMPOUNDS = {  # aihwkit compound -> (analogtrain algorithm class, field table)
    None: (AnalogSGD, {}),
    "TransferCompound": (TikiTaka, TRANSFER_FIELDS),
    "ChoppedTransferCompound": (ChoppedTikiTakaV2, CHOPPED_FIELDS),
    "DynamicTransferCompound": (AGAD, DYNAMIC_FIELDS),
    "MixedPrecisionCompound": (MixedPrecision, MP_FIELDS),
}
MAPPING_FIELDS = ("digital_bias", "weight_scaling_omega", "weight_scaling_columnwise", "weight_scaling_lr_compensation",
                  "learn_out_scaling", "out_scaling_columnwise", "max_input_size", "max_output_size")
DEVICE_UNSUPPORTED = {"reverse_up": False, "reverse_down": False, "reverse_offset": 0.01}


def same(ours, theirs) -> bool:
    if isinstance(theirs, bool) or isinstance(ours, bool):
        return ours is theirs or (isinstance(ours, bool) and isinstance(theirs, bool) and ours == theirs)
    if isinstance(theirs, (int, float)) and isinstance(ours, (int, float)):
        return ours == pytest.approx(theirs, rel=1e-12, abs=0.0)
    return ours == theirs


def check_fields(where: str, aihwkit: dict, table: dict, accepted: dict, obj) -> None:
    for field, value in aihwkit.items():
        if field in table:
            assert same(table[field](obj), value), f"{where}.{field}: ours {table[field](obj)!r}, aihwkit {value!r}"
        elif field in accepted:
            want = accepted[field]
            if want is ANY:
                continue
            assert same(value, want), f"{where}.{field} = {value!r} is not modelled (only {want!r})"
        else:
            raise AssertionError(f"{where}: aihwkit field {field!r} is in neither table")


def check_config(where: str, entry: dict, cfg: at.AnalogConfig) -> None:
    """Every aihwkit field of one RPU config against the AnalogConfig."""
    cls, compound_table = COMPOUNDS[entry["compound"]]
    assert type(cfg.algorithm) is cls, where
    check_fields(f"{where}.forward", entry["forward"], IO_FIELDS, IO_ACCEPTED, cfg.io)
    # aihwkit applies bound management to the forward only; analogtrain's backward is io.backward_io()
    backward = {k: v for k, v in entry["backward"].items() if k != "bound_management"}
    check_fields(f"{where}.backward", backward, IO_FIELDS, IO_ACCEPTED, cfg.io)
    engine = cfg.make_engine()
    assert engine.name == "stochastic", where
    check_fields(f"{where}.update", entry["update"], UPDATE_FIELDS, UPDATE_ACCEPTED, engine)
    for field in MAPPING_FIELDS:
        assert same(getattr(cfg.mapping, field), entry["mapping"][field]), f"{where}.mapping.{field}"
    check_fields(f"{where}.device", entry["compound_fields"], compound_table, COMPOUND_ACCEPTED, cfg.algorithm)
    if entry["compound"] in ("TransferCompound", "ChoppedTransferCompound", "DynamicTransferCompound"):
        assert cfg.algorithm.scale_fast_lr is False, f"{where}: aihwkit 1.1.0's fast_lr is absolute"
        check_fields(f"{where}.transfer_forward", entry["transfer_forward"], IO_FIELDS, IO_ACCEPTED, cfg.transfer_io)
        transfer = cfg.make_transfer_engine()
        check_fields(f"{where}.transfer_update", entry["transfer_update"], UPDATE_FIELDS, UPDATE_ACCEPTED, transfer)
        if entry["compound"] != "TransferCompound":
            assert cfg.algorithm.max_transfer_pulses == entry["transfer_update"]["desired_bl"], where
            assert cfg.algorithm.pulse_write == "exact", where
        else:
            assert cfg.algorithm.transfer_write == "pulse_train", where
    if entry["compound"] == "MixedPrecisionCompound":
        assert cfg.algorithm.pulse_write == "pulse_train" and cfg.algorithm.transfer_timing == "aihwkit", where
    if "auto_scale" in entry["compound_fields"]:  # aihwkit's fast-array pulse-count lr
        assert cfg.algorithm.auto_scale == entry["compound_fields"]["auto_scale"], where
        assert cfg.algorithm.auto_momentum == entry["compound_fields"]["auto_momentum"], where


def check_devices(where: str, entry: dict, cfg: at.AnalogConfig) -> None:
    """aihwkit's unit_cell_devices [fast, slow] = arrays P, W (W alone for one device)."""
    devices = entry["devices"]
    arrays = ["W"] if len(devices) == 1 else ["P", "W"]
    for name, spec in zip(arrays, devices):
        dev = cfg.device_for(name)
        preset = DEVICE_TABLE["presets"][spec["class"]]
        assert dev.aihwkit_class == spec["base"] == preset["aihwkit_base"], f"{where}.{name}"
        ours = dev.aihwkit_fields()
        for field, value in {**preset["fields"], **spec["overrides"]}.items():
            if field in DEVICE_UNSUPPORTED:
                assert value == DEVICE_UNSUPPORTED[field]
                continue
            assert same(ours[field], value), f"{where}.{name}.{field}: ours {ours[field]!r}, aihwkit {value!r}"


# ----------------------------------------------------------------------------- the presets
def test_table_is_aihwkit_1_1_0_and_every_preset_is_provided_or_explained():
    assert TABLE["aihwkit_version"] == presets.AIHWKIT_VERSION == "1.1.0"
    assert set(TABLE["presets"]) == set(presets.ALGORITHM_PRESETS) | set(presets.NOT_PROVIDED)
    assert not set(presets.ALGORITHM_PRESETS) & set(presets.NOT_PROVIDED)
    groups = {e["algorithm"] for e in TABLE["presets"].values()}
    assert groups == {"sgd", "tiki-taka", "ttv2", "c-ttv2", "agad", "mp"}
    assert len(NAMES) == 38


@pytest.mark.parametrize("name", NAMES)
def test_preset_carries_aihwkit_values(name):
    entry = TABLE["presets"][name]
    cfg = presets.get_config_preset(name)
    assert isinstance(cfg, at.AnalogConfig)
    check_config(name, entry, cfg)
    check_devices(name, entry, cfg)
    factory = presets.ALGORITHM_PRESETS[name]
    assert (factory.algorithm, factory.device) == (entry["algorithm"], entry["device_name"])
    assert presets.preset_parts(name) == (entry["algorithm"], entry["device_name"])
    assert factory.__doc__.startswith(f"aihwkit 1.1.0 {name}")


@pytest.mark.parametrize("algorithm", sorted(TABLE["build_config"]))
def test_build_config_carries_aihwkit_settings(algorithm):
    entry = TABLE["build_config"][algorithm]
    cfg = presets.build_config(algorithm, at.devices.get_preset("aihwkit_softbounds"))
    check_config(f"build_config({algorithm!r})", entry, cfg)
    if entry["compound"] == "DynamicTransferCompound":  # transfer reads with NM / BM as given
        assert cfg.transfer_io == cfg.io


def test_build_config_names_devices_and_overrides():
    for alias, canonical in presets.ALGORITHM_ALIASES.items():
        assert type(presets.build_config(alias.upper(), "ReRamSB").algorithm) is \
            type(presets.build_config(canonical, "ReRamSB").algorithm)
    cfg = presets.build_config("ttv2", "ReRamSBPresetDevice", fast_lr=0.3, mapping=at.Mapping())
    assert cfg.algorithm.fast_lr == 0.3 and cfg.algorithm.chop_prob == 0.0 and cfg.mapping == at.Mapping()
    assert cfg.device["P"] is not cfg.device["W"] and isinstance(cfg.device["W"], SoftBoundsReference)
    cfg = presets.build_config("sgd", "hfo2_rram", io_parameters=at.IO.perfect(), update_parameters={"desired_bl": 8})
    assert cfg.io.is_perfect and cfg.make_engine().bit_length == 8
    with pytest.raises(ValueError, match="algorithm must be one of"):
        presets.build_config("ttv9", "ReRamSB")
    with pytest.raises(ValueError, match="unknown device preset"):
        presets.build_config("sgd", "nope")
    with pytest.raises(ValueError, match=r"unknown override\(s\) \['nope'\]"):
        presets.build_config("agad", "ReRamSB", nope=1)
    with pytest.raises(ValueError, match="update_parameters: unknown"):
        presets.build_config("sgd", "ReRamSB", update_parameters={"bl": 3})
    with pytest.raises(ValueError, match="chop_prob"):
        presets.build_config("agad", "ReRamSB", chop_prob=0.0)  # the algorithm validates


def test_lazy_exports_and_names():
    assert at.build_preset_config is presets.build_config
    assert at.get_config_preset is presets.get_config_preset and at.ALGORITHM_PRESETS is presets.ALGORITHM_PRESETS
    assert "build_preset_config" in at.__all__ and "presets" in at.__all__
    with pytest.raises(ValueError, match="OneSidedUnitCell"):
        presets.get_config_preset("PCMPreset")
    with pytest.raises(ValueError, match="unknown algorithm preset"):
        presets.get_config_preset("TTv2NopePreset")
    # ReRamSB in the transfer presets subtracts the SP (aihwkit ReRamSBPresetDevice(subtract_symmetry_point=True))
    assert presets.get_config_preset("TTv2ReRamSBPreset").device["P"].subtract_symmetry_point
    assert not presets.get_config_preset("MixedPrecisionReRamSBPreset").device.subtract_symmetry_point


@pytest.mark.parametrize("name", NAMES)
def test_preset_trains_a_tiny_layer(name):
    """A few steps of the preset's algorithm on a 4 x 8 layer: finite weights, counted pulses."""
    layer = AnalogLinear(8, 4, bias=False, config=presets.get_config_preset(name), seed=0)
    opt = at.optim.AnalogSGD(layer.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(0)
    target = torch.randn(4, 8, generator=gen) * 0.3
    for _ in range(4):
        x = torch.randn(6, 8, generator=gen)
        opt.zero_grad()
        torch.nn.functional.mse_loss(layer(x), x @ target.T).backward()
        opt.step()
    assert bool(torch.isfinite(layer.get_weights()[0]).all())
    pulses = layer.summary()["pulses"]
    assert sum(p["total"] for p in pulses.values()) > 0, pulses
    assert set(pulses) == ({"W"} if len(TABLE["presets"][name]["devices"]) == 1 else {"W", "P"})


# ----------------------------------------------------------------------------- reference devices
def test_reference_device_gives_arrays_its_reference_unless_one_is_explicit():
    dev = presets.preset_device("ReRamArrayOM")  # subtract_symmetry_point, reference_std 0.05
    layer = AnalogLinear(16, 8, bias=False, config=at.AnalogConfig(device=dev), seed=3)
    w = layer.arrays["W"]
    offset = w.reference - w.symmetric_point()
    assert float(offset.std()) == pytest.approx(0.05, rel=0.3) and abs(float(offset.mean())) < 0.03
    assert torch.allclose(w.read(), w.state - w.reference)
    # a perfect SP reference: ReRamSB with subtract_symmetry_point and reference_std 0
    exact = at.AnalogConfig(device=presets.preset_device("ReRamSB", subtract_symmetry_point=True))
    w = AnalogLinear(16, 8, bias=False, config=exact, seed=3).arrays["W"]
    assert torch.allclose(w.reference, w.symmetric_point())
    # no reference without subtract_symmetry_point (aihwkit's ReRamSBPresetDevice default)
    plain = AnalogLinear(16, 8, bias=False, config=at.AnalogConfig(device=presets.preset_device("ReRamSB")), seed=3)
    assert float(plain.arrays["W"].reference.abs().max()) == 0.0
    # the algorithm's p_reference is explicit: it wins over the device's
    cfg = at.AnalogConfig(algorithm=TikiTaka(p_reference=0.25), device=dev)
    layer = AnalogLinear(16, 8, bias=False, config=cfg, seed=3)
    assert torch.all(layer.arrays["P"].reference == 0.25)
    w_offset = layer.arrays["W"].reference - layer.arrays["W"].symmetric_point()
    assert float(w_offset.std()) == pytest.approx(0.05, rel=0.3)


def test_toml_reference_overrides_the_device_reference():
    from analogtrain.experiments.runner import analog_layers, build_run

    cfg = {"task": {"name": "quadratic", "dim": 4, "steps": 3}, "device": {"preset": "ReRamArrayHfO2"}}
    for reference, check in ((None, lambda w: float((w.reference - w.symmetric_point()).abs().max()) > 0),
                             (0.1, lambda w: bool(torch.all(w.reference == 0.1)))):
        run = {**cfg, "reference": {"W": reference}} if reference is not None else cfg
        _, model, *_ = build_run(resolve(run), torch.device("cpu"))
        for layer in analog_layers(model).values():
            w = layer.arrays["W"]
            assert check(w), reference
            assert float((w.reference - w.symmetric_point()).abs().max()) < 0.5


# ----------------------------------------------------------------------------- TOML [preset]
def test_toml_preset_by_name_and_by_parts():
    cfg = build_run_config({"preset": {"name": "TTv2ReRamSBPreset"}})
    ref = presets.get_config_preset("TTv2ReRamSBPreset")
    assert cfg.algorithm == ref.algorithm and cfg.io == ref.io and cfg.engine_kwargs == ref.engine_kwargs
    assert cfg.mapping == ref.mapping and cfg.transfer_io == ref.transfer_io
    parts = build_run_config({"preset": {"algorithm": "agad", "device": "ReRamES"}})
    assert parts.algorithm == presets.build_config("agad", "ReRamES").algorithm
    table = build_run_config({"preset": {"algorithm": "sgd", "device": {"family": "SoftBounds", "tau": 0.6}}})
    assert table.device.family == "softbounds"


def test_toml_sections_override_the_preset_parts():
    resolved = resolve({"task": {"name": "quadratic"}, "preset": {"name": "AGADReRamSBPreset"},
                        "algorithm": {"fast_lr": 0.2}, "io": {"perfect": True}, "engine": {"bit_length": 7},
                        "mapping": {"max_input_size": 0, "max_output_size": 0}})
    assert resolved["algorithm"] == {"name": "AGAD", "fast_lr": 0.2}
    cfg = build_run_config(resolved)
    base = presets.get_config_preset("AGADReRamSBPreset")
    assert cfg.algorithm.fast_lr == 0.2 and cfg.algorithm.tail_weightening == base.algorithm.tail_weightening
    assert cfg.io.is_perfect and cfg.transfer_io == base.transfer_io
    assert cfg.engine == "stochastic" and cfg.engine_kwargs == {**base.engine_kwargs, "bit_length": 7}
    assert cfg.mapping == at.Mapping()
    # another algorithm name replaces it; a [device] replaces the preset's devices
    other = build_run_config({"preset": {"name": "AGADReRamSBPreset"}, "algorithm": {"name": "AnalogSGD"},
                              "device": {"preset": "hfo2_rram"}})
    assert type(other.algorithm) is AnalogSGD and other.device.family == "softbounds"
    assert resolve({"task": {"name": "quadratic"}, "preset": {"name": "MixedPrecisionEcRamPreset"}})["algorithm"] \
        == {"name": "MixedPrecision"}


@pytest.mark.parametrize(("preset", "match"), [
    ({"name": "PCMPreset"}, r"preset\.name: unknown algorithm preset 'PCMPreset' \(PCMPresetUnitCell"),
    ({"name": "TTv2ReRamSBPreset", "device": "ReRamSB"}, "preset: name takes no other keys"),
    ({"algorithm": "ttv2"}, r"preset: give name .*\(missing \['device'\]\)"),
    ({"algorithm": "ttv9", "device": "ReRamSB"}, "preset.algorithm must be one of"),
    ({"algorithm": "ttv2", "device": "nope"}, "preset.device: unknown device preset 'nope'"),
    ({"nmae": "TTv2ReRamSBPreset"}, r"preset: unknown key\(s\) \['nmae'\]"),
])
def test_toml_preset_errors_name_the_field(preset, match):
    with pytest.raises(ValueError, match=match):
        resolve({"task": {"name": "quadratic"}, "preset": preset})


def test_toml_preset_algorithm_field_errors():
    with pytest.raises(ValueError, match=r"algorithm: ChoppedTikiTakaV2 has no keyword\(s\) \['nope'\]"):
        build_run_config({"preset": {"name": "TTv2ReRamSBPreset"}, "algorithm": {"nope": 1}})
    with pytest.raises(ValueError, match="algorithm: .*chop_prob"):
        build_run_config({"preset": {"name": "AGADReRamSBPreset"}, "algorithm": {"chop_prob": 0.0}})


def test_toml_preset_runs(tmp_path):
    from analogtrain.experiments import run_experiment

    cfg = {"task": {"name": "least_squares", "rows": 20, "cols": 6, "steps": 3},
           "preset": {"name": "ChoppedTTv2ReRamSBPreset"}, "train": {"epochs": 1, "lr": 0.05, "checkpoint": False}}
    summary = run_experiment(cfg, tmp_path / "run", quiet=True)
    assert summary["algorithm"] == "ChoppedTikiTakaV2" and math.isfinite(summary["metrics"]["loss"])
    assert (tmp_path / "run" / "config.toml").read_text().count("[preset]") == 1
