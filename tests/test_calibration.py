"""Zero-shifting calibration (2602.21321 Sec. 2) against the closed forms in analogtrain.theory."""

import itertools
import math

import pytest
import torch

import analogtrain as at
import analogtrain.theory as th
from analogtrain.calibration import zero_shift

C = 0.3  # asymmetry: SP = C * tau
DW = 1e-2  # coarse device so that the time constant 1/(dw g') is 100 pulses
SHAPE = (64, 64)
D = SHAPE[0] * SHAPE[1]


def softbounds(dw=DW, **kw):
    return at.devices.SoftBounds(tau=1.0, asymmetry=C, dw_min=dw, **kw)


@pytest.fixture(scope="module")
def stochastic_run():
    dev = softbounds()
    arr = at.AnalogArray(SHAPE, dev, seed=3)
    marks = [25, 50, 100, 150, 200, 300, 1500]
    res = zero_shift(arr, 1500, checkpoints=marks, track_asymmetry=True)
    return dev, arr, res


def test_closed_forms_of_softbounds():
    dev = softbounds()
    # g' = (a_+/w_max - a_-/w_min)/2 = ((1+c) + (1-c))/2 = 1; F(SP) = 1 - c^2
    assert float(th.zs_slope_at_sp(dev)) == pytest.approx(1.0, rel=1e-6)
    assert float(th.zs_time_constant(dev)) == pytest.approx(1.0 / DW, rel=1e-6)
    assert float(th.zs_stationary_mse(dev)) == pytest.approx(DW * (1 - C**2) ** 2 / 2, rel=1e-6)
    assert th.ema_attenuation(0.25) == pytest.approx(0.25 / 1.75)


def test_mean_error_follows_time_constant(stochastic_run):
    dev, _, res = stochastic_run
    e0 = res.initial_mean_offset
    assert e0 == pytest.approx(-C, abs=1e-6)  # fresh array at W_0 = 0, SP = 0.3
    # the array mean of D cells has std sqrt(MSE/D) ~ 1e-3; 6e-3 is > 5 sigma
    for n, m in zip(res.checkpoints, res.mean_errors):
        assert m == pytest.approx(float(th.zs_mean_error(dev, e0, n)), abs=6e-3), n
    # fitted time constant from the decay over the first 3 time constants
    ns = torch.tensor(res.checkpoints[:6], dtype=torch.float64)
    logs = torch.log(torch.tensor(res.mean_errors[:6], dtype=torch.float64).abs())
    slope = ((ns - ns.mean()) * (logs - logs.mean())).sum() / ((ns - ns.mean()) ** 2).sum()
    tau_fit = -1.0 / float(slope)
    assert tau_fit == pytest.approx(float(th.zs_time_constant(dev)), rel=0.10)


def test_stationary_mse(stochastic_run):
    dev, _, res = stochastic_run
    # after 15 time constants the bias is e^-15 of the start; the MSE of D i.i.d. cells has
    # relative std sqrt(2/D) ~ 2.2%, and the O(dw) correction of the closed form is ~0.5%
    mse = res.rms_errors[-1] ** 2
    assert mse == pytest.approx(float(th.zs_stationary_mse(dev)), rel=0.10)
    assert abs(res.mean_errors[-1]) < 4 * math.sqrt(mse / D)


def test_theorem_2_2_average_iterate_bound_holds(stochastic_run):
    dev, _, res = stochastic_run
    margin = 4 * math.sqrt(float(th.zs_stationary_mse(dev)))
    for n, avg in zip(res.checkpoints, res.average_asymmetry):
        bound = float(th.zs_average_iterate_bound(dev, 0.0, n, margin=margin))
        assert avg <= bound, (n, avg, bound)
    # and it is not vacuous: the bound is within a factor 5 of the measured average at the end
    assert res.average_asymmetry[-1] * 5 > float(th.zs_average_iterate_bound(dev, 0.0, 1500, margin=margin))


def test_theorem_c2_last_iterate_bound_holds(stochastic_run):
    dev, _, res = stochastic_run
    margin = 4 * math.sqrt(float(th.zs_stationary_mse(dev)))
    for n, rms in zip(res.checkpoints, res.rms_errors):
        assert rms**2 <= float(th.zs_last_iterate_bound(dev, 0.0, n, margin=margin)), n
    n_needed = float(th.zs_last_iterate_pulses(dev, 0.0, target_mse=0.02, margin=margin))
    assert 0 < n_needed < 1500


def test_pulses_counted_and_reference(stochastic_run):
    _, arr, res = stochastic_run
    assert res.total_pulses == 1500 * D
    assert arr.pulse_count["total"] == pytest.approx(1500 * D)
    # random signs: up and down pulses balance within 5 sigma of a fair coin
    assert abs(arr.pulse_count["up"] - 750 * D) < 5 * math.sqrt(1500 * D) / 2
    dev = softbounds()
    fresh = at.AnalogArray(SHAPE, dev, seed=3)
    r = zero_shift(fresh, 600, set_reference=True)
    torch.testing.assert_close(fresh.reference, r.estimate)
    assert float(fresh.read().abs().max()) == 0.0
    assert float(fresh.read_symmetric_point().mean()) == pytest.approx(-r.mean_error, abs=1e-6)


def test_same_seed_same_estimate_and_generator_choice():
    dev = softbounds(cycle_noise=0.2)
    a = zero_shift(at.AnalogArray((8, 8), dev, seed=1), 200, seed=5).estimate
    b = zero_shift(at.AnalogArray((8, 8), dev, seed=1), 200, seed=5).estimate
    c = zero_shift(at.AnalogArray((8, 8), dev, seed=1), 200, seed=6).estimate
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_device_to_device_errors_shrink_with_pulses():
    dev = at.devices.SoftBounds(tau=1.0, asymmetry=0.2, dw_min=DW, device_to_device={"slope": 0.2, "up_down": 0.1})
    arr = at.AnalogArray((32, 32), dev, seed=0)
    sp = arr.symmetric_point()
    assert float(sp.std()) > 0.05  # per-element SPs really differ
    res = zero_shift(arr, 800, checkpoints=[50, 100, 200, 400, 800])
    rms = res.rms_errors
    assert all(b < a for a, b in itertools.pairwise(rms[:4]))
    # per-element prediction of the floor: mean of the per-element stationary MSE
    floor = float(th.zs_stationary_mse(arr.device).mean())
    assert rms[-1] ** 2 == pytest.approx(floor, rel=0.2)


def test_cyclic_offset_is_order_dw_min_and_linear():
    offsets = []
    for dw in (2e-2, 1e-2, 5e-3):
        dev = softbounds(dw=dw)
        n = int(12 / dw)  # 12 time constants, even
        res = zero_shift(at.AnalogArray((4, 4), dev, seed=0), n, mode="cyclic")
        assert res.rms_error < 1.5 * dw
        offsets.append(abs(res.mean_error))
    assert offsets[0] / offsets[1] == pytest.approx(2.0, rel=0.2)
    assert offsets[1] / offsets[2] == pytest.approx(2.0, rel=0.2)


def test_pulses_for_one_percent_scale_as_inverse_dw_min():
    needed = []
    dws = (4e-2, 2e-2, 1e-2)
    for dw in dws:
        dev = softbounds(dw=dw)
        arr = at.AnalogArray((32, 32), dev, seed=2)
        n_max = int(2 * float(th.zs_pulses_for_mean_error(dev, 0.01)))
        marks = list(range(10, n_max + 1, 10))
        res = zero_shift(arr, n_max, checkpoints=marks)
        rel = [abs(m) / abs(res.initial_mean_offset) for m in res.mean_errors]
        needed.append(next(n for n, r in zip(marks, rel) if r <= 0.01))
    slope = math.log(needed[-1] / needed[0]) / math.log(dws[-1] / dws[0])
    assert slope == pytest.approx(-1.0, abs=0.25)


def test_write_noise_enters_the_estimate():
    dev = softbounds(write_noise=2.0)
    arr = at.AnalogArray((32, 32), dev, seed=0)
    res = zero_shift(arr, 300, seed=1)
    noise = res.estimate - arr.state
    assert float(noise.std()) == pytest.approx(2.0 * DW, rel=0.15)


def test_validation():
    arr = at.AnalogArray((2, 2), softbounds(), seed=0)
    with pytest.raises(ValueError, match="mode"):
        zero_shift(arr, 10, mode="random")
    with pytest.raises(ValueError, match="pulses"):
        zero_shift(arr, -1)
    with pytest.raises(ValueError, match="checkpoints"):
        zero_shift(arr, 10, checkpoints=[11])
    with pytest.raises(ValueError, match="relative_error"):
        th.zs_pulses_for_mean_error(softbounds(), 1.5)


def test_calibrate_command(tmp_path, capsys):
    import json

    from analogtrain.cli import main

    out = tmp_path / "cal.png"
    code = main(["calibrate", "--device", "offset_softbounds", "--pulses", "300", "600", "--shape", "16x16",
                 "--out", str(out)])
    assert code == 0
    assert out.exists()
    result = json.loads(out.with_suffix(".json").read_text())
    rows = [r for r in result["rows"] if r["in_table"]]
    assert [r["N"] for r in rows] == [300, 600]
    for r in rows:  # 256 cells: the array mean is within a few floor/16 of the closed form
        assert r["mean_error"] == pytest.approx(r["theory_mean_error"], abs=0.01)
    printed = capsys.readouterr().out
    assert "relative" in printed and "600" in printed


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_zero_shift_on_cuda():
    arr = at.AnalogArray((16, 16), softbounds(), seed=0, torch_device="cuda")
    res = zero_shift(arr, 300, seed=1, set_reference=True, checkpoints=[100, 300], track_asymmetry=True)
    assert res.estimate.device.type == "cuda" and arr.reference.device.type == "cuda"
    assert abs(res.mean_error) < 0.05
    assert float(th.zs_average_iterate_bound(arr.device, 0.0, 300).mean()) > 0
