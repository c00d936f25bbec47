"""aihwkit-named device families (analogtrain.devices.aihwkit_families) against aihwkit 1.1.0.

Golden traces: tests/data/aihwkit_traces_<family>.json, written by
benchmarks/aihwkit_device_traces.py with the aihwkit peer venv (aihwkit is never imported here).
Protocol: start at w = 0, 600 up, 1,200 down, then 2,000 alternating single pulses on every
device; mean and std over the devices recorded every 5th pulse. Cases:

- ``ideal`` (device-to-device variation and cycle noise off, 64x64): every device is the same,
  so mean and std must agree within 0.5 % of the weight range (w_max - w_min) at every point.
- ``ctoc`` (cycle noise only) and ``dtod`` (aihwkit's default device-to-device variation and
  cycle noise): the draws differ between the simulators, so the comparison is statistical.
  aihwkit pools 8 tiles of 64x64 (N_a = 32,768 devices); we draw 64x64 (ctoc) or 128x128 (dtod,
  N_b = 16,384). Pointwise tolerance = max(0.5 % of the range, 4 standard errors of the
  difference): for the mean SE = s sqrt(1/N_a + 1/N_b), for the std
  SE = sqrt((m4 - s^4) / (4 s^2)) sqrt(1/N_a + 1/N_b) (s, m4: std and fourth central moment over
  the devices, from our draw). With cycle noise only (s < 0.03) the 0.5 % bound binds; with
  device-to-device variation s reaches ~0.25, i.e. 4 SE ~ 0.8 % of a 1.2 range, which then
  binds. Measured maxima with aihwkit 1.1.0 are below 0.4 % of the range for every family and
  case (``test_dtod_within_half_percent`` pins that for the mean and std traces with our seeds).
"""

from __future__ import annotations

import functools
import inspect
import json
import math
from pathlib import Path

import pytest
import torch

from analogtrain.devices import (
    ConstantStep,
    ExpStep,
    LinearStep,
    PiecewiseStep,
    PowStep,
    SoftBounds,
    SoftBoundsPmax,
    SoftBoundsReference,
)

DATA = Path(__file__).parent / "data"
GOLDEN = sorted(DATA.glob("aihwkit_traces_*.json"))
CLASSES = {"ConstantStepDevice": ConstantStep, "LinearStepDevice": LinearStep, "ExpStepDevice": ExpStep,
           "PowStepDevice": PowStep, "PiecewiseStepDevice": PiecewiseStep, "SoftBoundsPmaxDevice": SoftBoundsPmax}
N_SE = 4.0


def _init_names(cls):
    names = set()
    for k in cls.__mro__:
        if "__init__" in k.__dict__:
            names |= set(inspect.signature(k.__init__).parameters)
    return names


def build(gold: dict, case: str):
    """Our device from the aihwkit dataclass fields recorded in the golden file."""
    f = gold["cases"][case]["device_fields"]
    if gold["aihwkit_class"] == "SoftBoundsDevice":  # the existing family, aihwkit form
        d2d = {"dw_min": f["dw_min_dtod"], "w_max": f["w_max_dtod"], "w_min": f["w_min_dtod"],
               "up_down": f["up_down_dtod"]}
        return SoftBounds(up_slope=1.0, down_slope=1.0, w_max=f["w_max"], w_min=f["w_min"], dw_min=f["dw_min"],
                          cycle_noise=f["dw_min_std"],
                          cycle_noise_type="multiplicative" if f["mult_noise"] else "additive",
                          device_to_device={k: v for k, v in d2d.items() if v > 0},
                          device_to_device_distribution="aihwkit")
    cls = CLASSES[gold["aihwkit_class"]]
    names = _init_names(cls)
    kw = {k: v for k, v in f.items() if k in names and v is not None}
    if cls is SoftBoundsPmax:
        kw = {k: v for k, v in kw.items() if k not in ("w_min", "w_max", "dw_min", "up_down")}
    return cls(**kw)


def weight_range(dev) -> float:
    lo, hi = dev.bounds()
    return float(hi) - float(lo)


def run_protocol(dev, protocol: dict, shape, seed=0, dtype=torch.float32):
    """States (points, devices; float64) at pulse 0 and every ``every``-th pulse of the protocol
    (float32 state as aihwkit's CPU tile)."""
    s = dev.sample(shape, torch.Generator().manual_seed(seed), dtype=dtype)
    gen = torch.Generator().manual_seed(seed + 1)
    seq = [1.0] * protocol["n_up"] + [-1.0] * protocol["n_down"] + [1.0, -1.0] * (protocol["n_alternating"] // 2)
    w = torch.zeros(shape, dtype=dtype)
    up, down = torch.ones(shape, dtype=dtype), -torch.ones(shape, dtype=dtype)
    recs = [w.clone()]
    for k, sign in enumerate(seq, start=1):
        w = s.apply_pulse(w, up if sign > 0 else down, gen)
        if k % protocol["every"] == 0:
            recs.append(w.clone())
    return torch.stack(recs).reshape(len(recs), -1).to(torch.float64)


@functools.cache
def compare_cached(path, case):
    return compare(json.loads(Path(path).read_text()), case, (128, 128) if case == "dtod" else (64, 64))


def compare(gold: dict, case: str, shape):
    c = gold["cases"][case]
    dev = build(gold, case)
    rng = weight_range(dev)
    W = run_protocol(dev, gold["protocol"], shape)
    mean, std = W.mean(1), W.std(1, unbiased=False)
    g_mean = torch.tensor(c["mean"], dtype=torch.float64)
    g_std = torch.tensor(c["std"], dtype=torch.float64)
    assert mean.shape == g_mean.shape
    if case == "ideal":
        tol_m = tol_s = torch.full_like(mean, 0.005 * rng)
    else:
        k = math.sqrt(1.0 / c["n_devices"] + 1.0 / W.shape[1])
        m4 = ((W - mean[:, None]) ** 4).mean(1)
        se_s = torch.sqrt((m4 - std**4).clamp_min(0) / (4 * std.clamp_min(1e-12) ** 2)) * k
        tol_m = torch.clamp(N_SE * std * k, min=0.005 * rng)
        tol_s = torch.clamp(N_SE * se_s, min=0.005 * rng)
    dm, ds = (mean - g_mean).abs(), (std - g_std).abs()
    return dm, ds, tol_m, tol_s, rng


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem.removeprefix("aihwkit_traces_") for p in GOLDEN])
@pytest.mark.parametrize("case", ["ideal", "ctoc", "dtod"])
def test_pulse_response_matches_aihwkit(path, case):
    gold = json.loads(path.read_text())
    assert gold["aihwkit_version"] == "1.1.0"
    dm, ds, tol_m, tol_s, rng = compare_cached(str(path), case)
    worst_m, worst_s = int(torch.argmax(dm - tol_m)), int(torch.argmax(ds - tol_s))
    assert bool((dm <= tol_m).all()), (f"{gold['family']} {case}: mean off by {float(dm[worst_m]) / rng:.2%} of the "
                                       f"range at point {worst_m} (tol {float(tol_m[worst_m]) / rng:.2%})")
    assert bool((ds <= tol_s).all()), (f"{gold['family']} {case}: std off by {float(ds[worst_s]) / rng:.2%} of the "
                                       f"range at point {worst_s} (tol {float(tol_s[worst_s]) / rng:.2%})")


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem.removeprefix("aihwkit_traces_") for p in GOLDEN])
def test_dtod_within_half_percent(path):
    """With our fixed seeds the dtod traces are within the issue's 0.5 % bound as well."""
    dm, ds, _, _, rng = compare_cached(str(path), "dtod")
    assert float(dm.max()) <= 0.005 * rng and float(ds.max()) <= 0.005 * rng


def test_golden_files_present():
    fams = {p.stem.removeprefix("aihwkit_traces_") for p in GOLDEN}
    assert {"SoftBounds", "ConstantStep", "LinearStep", "ExpStep", "PowStep", "PiecewiseStep",
            "SoftBoundsPmax"} <= fams


# ---------------------------------------------------------------------- closed forms
W = torch.tensor([-0.4, 0.0, 0.3], dtype=torch.float64)


def test_linear_step_closed_form():
    d = LinearStep(gamma_up=0.6, gamma_down=0.3, up_down=-0.05, w_max=0.6, w_min=-0.6)
    su, sd = 0.95, 1.0  # up_down < 0 shrinks the up step
    assert torch.allclose(d.q_plus(W), su * (1 - 0.6 * W / 0.6))
    assert torch.allclose(d.q_minus(W), sd * (1 - 0.3 * W / -0.6))
    sp = (su - sd) / (su * 0.6 / 0.6 - sd * 0.3 / -0.6)
    assert float(d.symmetric_point()) == pytest.approx(sp)
    assert float(d.G(torch.tensor(sp, dtype=torch.float64))) == pytest.approx(0.0, abs=1e-12)


def test_exp_step_closed_form():
    d = ExpStep(w_max=0.6, w_min=-0.6)
    z = 2 * 0.244 * W / 1.2 + 0.2425
    assert torch.allclose(d.q_plus(W), (1 - 0.00081 * torch.exp(12.44625 * z)).clamp_min(0))
    assert torch.allclose(d.q_minus(W), (1 - 0.36833 * torch.exp(-12.78785 * z)).clamp_min(0))
    sp = d.symmetric_point()
    assert float(d.G(sp)) == pytest.approx(0.0, abs=1e-9)


def test_pow_step_closed_form_and_step_scale():
    d = PowStep(pow_gamma=2.0, pow_up_down=0.25, w_max=0.8, w_min=-0.4)
    gu, gd = 2.0, 2.0 * 0.75  # pow_up_down > 0 lowers the down exponent
    assert torch.allclose(d.q_plus(W), ((0.8 - W) / 1.2) ** gu)
    assert torch.allclose(d.q_minus(W), ((W + 0.4) / 1.2) ** gd)
    # aihwkit's step scale: 0.5 ** gamma in the middle of symmetric bounds
    s = PowStep(pow_gamma=3.0)
    assert float(s.q_plus(torch.zeros((), dtype=torch.float64))) == pytest.approx(0.125)
    assert float(d.G(d.symmetric_point())) == pytest.approx(0.0, abs=1e-9)


def test_piecewise_step_interpolation():
    d = PiecewiseStep(piecewise_up=[2.0, 1.0, 0.0], piecewise_down=[0.0, 1.0, 3.0], w_max=1.0, w_min=-1.0)
    w = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0], dtype=torch.float64)
    assert d.q_plus(w).tolist() == pytest.approx([2.0, 1.5, 1.0, 0.5, 0.0])
    assert d.q_minus(w).tolist() == pytest.approx([0.0, 0.5, 1.0, 2.0, 3.0])
    assert PiecewiseStep(piecewise_up=[0.7], piecewise_down=[0.7]).q_plus(w).tolist() == pytest.approx([0.7] * 5)


def test_softbounds_pmax_conversion():
    d = SoftBoundsPmax(p_max=1000, alpha=0.0005, range_min=-1.0, range_max=1.0)
    b = 2.0 / (1 - math.exp(-0.5))
    assert d.bounds() == (pytest.approx(-1.0), pytest.approx(-1.0 + b))
    assert d.dw_min == pytest.approx(b * 0.0005)
    assert d.up_down == pytest.approx(1 - 2.0 / b)
    assert torch.allclose(d.q_plus(W), 1 - W / (-1 + b))
    assert torch.allclose(d.q_minus(W), (1 - d.up_down) * (1 + W))


def test_constant_step_sp_is_drift_bound():
    assert float(ConstantStep(up_down=0.1).symmetric_point()) == pytest.approx(0.6)  # down step smaller
    assert float(ConstantStep(up_down=-0.1).symmetric_point()) == pytest.approx(-0.6)
    assert float(ConstantStep(up_down=0.0).symmetric_point()) == 0.0


# ---------------------------------------------------------------------- per-element draws
def test_populate_statistics_and_consistency():
    d = LinearStep(gamma_up=0.5, gamma_down=0.5, up_down=0.1, dw_min_dtod=0.3, up_down_dtod=0.05,
                   w_max_dtod=0.3, w_min_dtod=0.3, gamma_up_dtod=0.1, gamma_down_dtod=0.1)
    s = d.sample((200, 200), torch.Generator().manual_seed(3), dtype=torch.float64)
    assert float(s.scale_up.mean()) == pytest.approx(1.0, abs=0.01)   # up_bias 0
    assert float(s.scale_down.mean()) == pytest.approx(0.9, abs=0.01)  # down_bias -0.1
    assert float((s.scale_up - s.scale_down).std()) == pytest.approx(0.1, rel=0.05)  # 2 r: std 2 * 0.05
    assert bool((s.w_max >= 0).all() and (s.w_min <= 0).all() and (s.scale_up >= 0).all())
    assert float(s.w_max.mean()) == pytest.approx(0.6, rel=0.02)
    assert float(s.gamma_up.std()) == pytest.approx(0.1, rel=0.05)
    assert isinstance(s.dw_min, float)  # the nominal granularity stays a scalar


def test_pow_gamma_spread_and_lognormal_option():
    d = PowStep(pow_gamma=2.0, pow_gamma_dtod=0.1, pow_up_down_dtod=0.02, device_to_device_distribution="lognormal")
    s = d.sample((100, 100), torch.Generator().manual_seed(0), dtype=torch.float64)
    assert bool((s.gamma_up > 0).all())
    assert float(torch.log(s.w_max / 0.6).std()) == pytest.approx(0.3, rel=0.05)


def test_corrupt_devices_are_stuck():
    d = ConstantStep(corrupt_devices_prob=0.25, corrupt_devices_range=0.05, dw_min_std=0.0)
    s = d.sample((64, 64), torch.Generator().manual_seed(1), dtype=torch.float64)
    stuck = s.scale_up == 0
    assert 0.2 < float(stuck.double().mean()) < 0.3
    w0 = torch.zeros(64, 64, dtype=torch.float64)
    w = s.apply_pulses(w0, torch.full((64, 64), 10.0, dtype=torch.float64))
    assert bool((w[stuck].abs() <= 0.05).all())
    assert bool((w[stuck] == s.w_max[stuck]).all())


def test_exp_step_complex_noise_rule():
    d = ExpStep(dw_min=0.01, dw_min_std=0.5, dw_min_std_add=0.02, dw_min_std_slope=0.1, w_max=0.6, w_min=-0.6)
    assert d.has_complex_noise()
    w = torch.full((200_000,), 0.2, dtype=torch.float64)
    out = d.apply_pulse(w, torch.ones_like(w), torch.Generator().manual_seed(0))
    dw = 0.01 * float(d.q_plus(torch.tensor(0.2, dtype=torch.float64)))
    assert float(out.mean() - 0.2) == pytest.approx(dw, rel=0.05)
    assert float(out.std()) == pytest.approx(0.5 * (dw + 0.02 + 0.1 * 0.2), rel=0.02)


def test_linear_step_additive_noise_scales_with_step():
    d = LinearStep(dw_min=0.01, dw_min_std=0.4, mult_noise=False, gamma_up=0.5, w_max=0.6, w_min=-0.6)
    assert d.cycle_noise_type == "additive"
    w = torch.full((200_000,), 0.3, dtype=torch.float64)
    out = d.apply_pulse(w, torch.ones_like(w), torch.Generator().manual_seed(0))
    assert float(out.std()) == pytest.approx(0.01 * 0.4 * 1.0, rel=0.02)  # scale_up sigma dw_min, not q


def test_linear_step_kernel_matches_torch_path():
    from analogtrain.arrays import AnalogArray

    dev = LinearStep(gamma_up=0.4, gamma_down=0.7, dw_min=0.01, dw_min_std=0.0)
    arr = AnalogArray((8, 8), dev, seed=0)
    counts = torch.randint(-20, 21, (8, 8)).to(torch.float32)
    ref = arr.device.apply_pulses(arr.state.clone(), counts)
    arr.fire(counts)
    assert torch.allclose(arr.state, ref, atol=1e-6)


def test_softbounds_reference_slope_spread_and_reference():
    from analogtrain.arrays import ReferenceOffset

    d = SoftBoundsReference(slope_up_dtod=0.2, dw_min_dtod=0.0, w_max_dtod=0.0, w_min_dtod=0.0,
                            subtract_symmetry_point=True, reference_std=0.05)
    assert d.cycle_noise_type == "additive"
    s = d.sample((100, 100), torch.Generator().manual_seed(0), dtype=torch.float64)
    assert float((0.6 / s.w_max).std()) == pytest.approx(0.2, rel=0.05)
    assert bool((s.w_min == -0.6).all())
    assert isinstance(d.array_reference(), ReferenceOffset)


@pytest.mark.parametrize("cls", [ConstantStep, LinearStep, ExpStep, PowStep, PiecewiseStep, SoftBoundsPmax,
                                 SoftBoundsReference])
def test_every_family_through_array_and_expected_engine(cls):
    from analogtrain.arrays import AnalogArray

    for engine in ("stochastic", "expected"):
        arr = AnalogArray((6, 5), cls(), engine=engine, seed=1)
        arr.update(torch.full((6, 5), 0.01))
        assert bool(torch.isfinite(arr.state).all())
        assert bool(torch.isfinite(arr.symmetric_point()).all())
        assert float(arr.state.mean()) > 0


# ---------------------------------------------------------------------- validation
@pytest.mark.parametrize(("cls", "kwargs", "field"), [
    (ExpStep, {"A_up": float("nan")}, "A_up"),
    (ExpStep, {"dw_min": 0.0}, "dw_min"),
    (ExpStep, {"dw_min_std": -0.1}, "dw_min_std"),
    (LinearStep, {"gamma_up_dtod": -1.0}, "gamma_up_dtod"),
    (LinearStep, {"w_min": 0.2}, "w_min"),
    (LinearStep, {"up_down": 1.0}, "up_down"),
    (PowStep, {"pow_gamma": 0.0}, "pow_gamma"),
    (PowStep, {"pow_up_down": -1.5}, "pow_up_down"),
    (PowStep, {"w_max_dtod": -0.3}, "w_max_dtod"),
    (PiecewiseStep, {"piecewise_up": [1.0, 2.0], "piecewise_down": [1.0]}, "piecewise_down"),
    (PiecewiseStep, {"piecewise_up": [1.0, -2.0], "piecewise_down": [1.0, 1.0]}, "piecewise_up"),
    (SoftBoundsPmax, {"p_max": 0}, "p_max"),
    (SoftBoundsPmax, {"range_min": 0.5}, "range_min"),
    (SoftBoundsPmax, {"w_max": 1.0}, "w_max"),
    (ConstantStep, {"corrupt_devices_prob": 2.0}, "corrupt_devices_prob"),
    (SoftBoundsReference, {"reference_std": -0.1}, "reference_std"),
    (ConstantStep, {"device_to_device_distribution": "uniform"}, "device_to_device_distribution"),
])
def test_validation_names_field(cls, kwargs, field):
    with pytest.raises(ValueError, match=field):
        cls(**kwargs)
