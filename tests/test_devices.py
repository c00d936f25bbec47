"""Device physics: response functions, F/G bookkeeping, symmetric points, spreads, validation.

Closed forms from reference/residual_learning.md sections 1.5, 1.7 and 6 (tests 2-3).
"""

import math

import pytest
import torch

from analogtrain.devices import PRESETS, Custom, Exponential, Ideal, Piecewise, Power, SoftBounds, get_preset

W = torch.linspace(-0.95, 0.95, 39, dtype=torch.float64)


# ---------------------------------------------------------------- symmetric points
@pytest.mark.parametrize("c", [0.0, 0.1, 0.2, 0.3])
def test_softbounds_paper_sp_is_c_tau(c):
    dev = SoftBounds(tau=3.5, asymmetry=c)
    sp = dev.symmetric_point()
    assert float(sp) == pytest.approx(c * 3.5, abs=1e-12)
    # G vanishes there, and the numeric (bisection) SP of the base class agrees
    assert float(dev.G(torch.as_tensor(sp))) == pytest.approx(0.0, abs=1e-12)
    numeric = super(SoftBounds, dev).symmetric_point()
    assert float(numeric) == pytest.approx(c * 3.5, abs=1e-9)


def test_softbounds_slopes_form_sp():
    dev = SoftBounds(up_slope=1.2, down_slope=0.8, w_max=1.0, w_min=-1.0)
    sp = torch.as_tensor(dev.symmetric_point())
    assert float(sp) == pytest.approx(0.2, abs=1e-12)  # (1.2 - 0.8) / (1.2 + 0.8)
    assert float(dev.G(sp)) == pytest.approx(0.0, abs=1e-12)
    # q+ = 1.2 (1 - w), q- = 0.8 (1 + w): both 0.96 at the SP
    assert float(dev.q_plus(sp)) == pytest.approx(0.96, abs=1e-12)
    assert float(dev.q_minus(sp)) == pytest.approx(0.96, abs=1e-12)


def test_softbounds_asymmetric_bounds_sp():
    # a_up=1, a_down=1, w_max=0.5, w_min=-1: SP = 0 / ... = 0; a_up=1.5: SP = 0.5/(3 + 1) = 0.125
    dev = SoftBounds(up_slope=1.5, down_slope=1.0, w_max=0.5, w_min=-1.0)
    assert float(dev.symmetric_point()) == pytest.approx(0.125, abs=1e-12)
    assert float(dev.G(torch.tensor(0.125, dtype=torch.float64))) == pytest.approx(0.0, abs=1e-12)


def test_fg_bookkeeping_paper_linear():
    """Test 2 of reference section 6: c = 0.2, tau = 3.5: SP 0.7, F(0) = 1, G(0) = -0.2."""
    dev = SoftBounds(tau=3.5, asymmetry=0.2)
    zero = torch.zeros((), dtype=torch.float64)
    assert float(dev.symmetric_point()) == pytest.approx(0.7, abs=1e-12)
    assert float(dev.F(zero)) == pytest.approx(1.0, abs=1e-12)
    assert float(dev.G(zero)) == pytest.approx(-0.2, abs=1e-12)
    w = W * 3.5
    # F = 1 - c w / tau, G = -c + w / tau  (expand q+/- of the generic linear device)
    torch.testing.assert_close(dev.F(w), 1 - 0.2 * w / 3.5, rtol=0, atol=1e-12)
    torch.testing.assert_close(dev.G(w), -0.2 + w / 3.5, rtol=0, atol=1e-12)
    torch.testing.assert_close(dev.q_plus(w), dev.F(w) - dev.G(w), rtol=0, atol=1e-12)
    torch.testing.assert_close(dev.q_minus(w), dev.F(w) + dev.G(w), rtol=0, atol=1e-12)
    torch.testing.assert_close(dev.ratio(w), dev.G(w) / dev.F(w), rtol=0, atol=1e-12)
    torch.testing.assert_close(dev.saturation(w), dev.F(w) ** 2 - dev.G(w) ** 2, rtol=0, atol=1e-12)


@pytest.mark.parametrize("family", [Power, Exponential])
@pytest.mark.parametrize("gamma", [0.5, 1.0, 3.0])
def test_power_exponential_sp_zero_and_g_odd(family, gamma):
    dev = family(gamma=gamma, tau=0.6)
    assert float(dev.symmetric_point()) == 0.0
    assert float(dev.G(torch.zeros((), dtype=torch.float64))) == pytest.approx(0.0, abs=1e-15)
    w = W * 0.6
    torch.testing.assert_close(dev.G(-w), -dev.G(w), rtol=0, atol=1e-12)
    torch.testing.assert_close(dev.F(-w), dev.F(w), rtol=0, atol=1e-12)
    # the numeric SP of the base class agrees with the analytic 0
    assert float(super(family, dev).symmetric_point()) == pytest.approx(0.0, abs=1e-9)


def test_power_and_exponential_closed_forms():
    w = W * 0.1
    p = Power(gamma=3.0, tau=0.1)
    torch.testing.assert_close(p.q_plus(w), (1 - w / 0.1) ** 3, rtol=1e-12, atol=0)
    torch.testing.assert_close(p.q_minus(w), (1 + w / 0.1) ** 3, rtol=1e-12, atol=0)
    e = Exponential(gamma=4.0, tau=0.1)
    torch.testing.assert_close(e.q_plus(w), (torch.exp(4 * (1 - w / 0.1)) - 1) / (math.exp(4) - 1), rtol=1e-12, atol=0)
    torch.testing.assert_close(e.q_minus(w), (torch.exp(4 * (1 + w / 0.1)) - 1) / (math.exp(4) - 1), rtol=1e-12, atol=0)
    # both responses equal 1 at w = 0 (dw_min is the step at the centre) and vanish at the bounds
    for dev in (p, e):
        assert float(dev.q_plus(torch.tensor(0.0, dtype=torch.float64))) == pytest.approx(1.0, abs=1e-12)
        assert float(dev.q_plus(torch.tensor(0.1, dtype=torch.float64))) == pytest.approx(0.0, abs=1e-12)
        assert float(dev.q_minus(torch.tensor(-0.1, dtype=torch.float64))) == pytest.approx(0.0, abs=1e-12)


def test_custom_matches_hand_solved_root():
    # q+ = 1.5 - w, q- = 1 + w^2: G = 0 at w^2 + w - 0.5 = 0, w = (sqrt(3) - 1) / 2
    dev = Custom(q_plus=lambda w: 1.5 - w, q_minus=lambda w: 1 + w**2, bounds=(-1.0, 1.0))
    assert float(dev.symmetric_point()) == pytest.approx((math.sqrt(3) - 1) / 2, abs=1e-10)


def test_piecewise_interpolation_and_sp():
    dev = Piecewise([-1.0, 0.0, 1.0], [2.0, 1.2, 0.0], [0.0, 0.8, 1.5])
    w = torch.tensor([-1.0, -0.5, 0.0, 0.25, 0.5, 1.0], dtype=torch.float64)
    torch.testing.assert_close(dev.q_plus(w), torch.tensor([2.0, 1.6, 1.2, 0.9, 0.6, 0.0], dtype=torch.float64))
    torch.testing.assert_close(dev.q_minus(w), torch.tensor([0.0, 0.4, 0.8, 0.975, 1.15, 1.5], dtype=torch.float64))
    # on [0, 1]: q+ = 1.2 - 1.2 w, q- = 0.8 + 0.7 w  ->  SP = 0.4 / 1.9
    assert float(dev.symmetric_point()) == pytest.approx(0.4 / 1.9, abs=1e-10)
    assert dev.bounds() == (-1.0, 1.0)
    # outside the nodes the response is held at the end values (clamped)
    assert float(dev.q_plus(torch.tensor([1.5], dtype=torch.float64))) == 0.0


def test_ideal_device():
    dev = Ideal(bounds=(-1.0, 1.0))
    torch.testing.assert_close(dev.q_plus(W), torch.ones_like(W))
    torch.testing.assert_close(dev.G(W), torch.zeros_like(W))
    assert float(dev.symmetric_point()) == 0.0


def test_accumulated_asymmetry_closed_form():
    # c = 0: R = (w/tau) / 1 -> R_c(w) = w^2 / (2 tau)
    dev = SoftBounds(tau=1.0, asymmetry=0.0)
    w = torch.tensor([-0.5, 0.3, 0.8], dtype=torch.float64)
    torch.testing.assert_close(dev.accumulated_asymmetry(w), w**2 / 2, rtol=0, atol=1e-5)


def test_n_states_sets_dw_min():
    dev = SoftBounds(tau=1.0, n_states=2000)
    assert dev.dw_min == pytest.approx(1e-3, rel=1e-12)
    assert get_preset("softbounds_2000").dw_min == pytest.approx(1e-3, rel=1e-12)


def test_every_preset_builds_and_has_a_symmetric_point():
    for name in PRESETS:
        dev = get_preset(name)
        sp = torch.as_tensor(dev.symmetric_point(), dtype=torch.float64)
        assert torch.isfinite(sp).all(), name
        lo, hi = dev.bounds()
        assert float(lo) < float(sp) < float(hi), name


# ---------------------------------------------------------------- device-to-device spreads
def test_sample_same_seed_same_params_different_seed_different():
    dev = get_preset("aihwkit_softbounds")
    a = dev.sample((16, 32), torch.Generator().manual_seed(3))
    b = dev.sample((16, 32), torch.Generator().manual_seed(3))
    c = dev.sample((16, 32), torch.Generator().manual_seed(4))
    for name in ("dw_min", "up_slope", "down_slope", "w_max", "w_min"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
        assert not torch.equal(getattr(a, name), getattr(c, name)), name
    # the template keeps scalar parameters; the sample carries no further spreads
    assert isinstance(dev.dw_min, float)
    assert a.device_to_device == {}


def test_lognormal_spread_statistics():
    """dw_min * exp(0.3 xi): log-ratio has std 0.3 (n = 40000: std of the estimate ~0.001, tol 0.01)."""
    dev = SoftBounds(tau=1.0, dw_min=1e-3, device_to_device={"dw_min": 0.3, "w_max": 0.2})
    s = dev.sample((200, 200), torch.Generator().manual_seed(0), dtype=torch.float64)
    log_ratio = torch.log(s.dw_min / 1e-3)
    assert float(log_ratio.mean()) == pytest.approx(0.0, abs=0.01)
    assert float(log_ratio.std()) == pytest.approx(0.3, abs=0.01)
    assert float(torch.log(s.w_max).std()) == pytest.approx(0.2, abs=0.01)
    assert torch.all(s.w_min == -1.0)  # no spread asked for
    assert bool((s.dw_min > 0).all())


def test_slope_and_up_down_spreads():
    """2602.21321 eq. 103-104: a_up = gamma_d + rho, a_down = gamma_d - rho."""
    dev = SoftBounds(tau=1.0, device_to_device={"slope": 0.2, "up_down": 0.05})
    s = dev.sample((200, 200), torch.Generator().manual_seed(1), dtype=torch.float64)
    gamma_d = 0.5 * (s.up_slope + s.down_slope)
    rho = 0.5 * (s.up_slope - s.down_slope)
    assert float(torch.log(gamma_d).std()) == pytest.approx(0.2, abs=0.01)
    assert float(rho.std()) == pytest.approx(0.05, abs=0.003)
    assert float(rho.mean()) == pytest.approx(0.0, abs=0.003)


def test_sampled_device_sp_is_per_element():
    dev = SoftBounds(tau=1.0, device_to_device={"up_down": 0.1})
    s = dev.sample((50,), torch.Generator().manual_seed(2), dtype=torch.float64)
    sp = s.symmetric_point()
    assert sp.shape == (50,)
    torch.testing.assert_close(s.G(sp), torch.zeros_like(sp), rtol=0, atol=1e-12)


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: SoftBounds(tau=0.0), "tau"),
        (lambda: SoftBounds(tau=-1.0), "tau"),
        (lambda: SoftBounds(tau=1.0, asymmetry=1.0), "asymmetry"),
        (lambda: SoftBounds(tau=1.0, dw_min=0.0), "dw_min"),
        (lambda: SoftBounds(tau=1.0, dw_min=-1e-3), "dw_min"),
        (lambda: SoftBounds(tau=1.0, n_states=0), "n_states"),
        (lambda: SoftBounds(tau=1.0, dw_min=1e-3, n_states=10), "n_states"),
        (lambda: SoftBounds(w_max=-0.5, w_min=0.5), "w_min"),
        (lambda: SoftBounds(up_slope=0.0), "up_slope"),
        (lambda: SoftBounds(down_slope=-1.0), "down_slope"),
        (lambda: SoftBounds(tau=1.0, cycle_noise=-0.1), "cycle_noise"),
        (lambda: SoftBounds(tau=1.0, cycle_noise=0.1, cycle_noise_type="gaussian"), "cycle_noise_type"),
        (lambda: SoftBounds(tau=1.0, write_noise=-1.0), "write_noise"),
        (lambda: SoftBounds(tau=1.0, device_to_device={"gamma": 0.1}), "device_to_device"),
        (lambda: SoftBounds(tau=1.0, device_to_device={"dw_min": -0.1}), "device_to_device"),
        (lambda: SoftBounds(tau=1.0, device_to_device={"slope": -0.1}), "slope"),
        (lambda: Power(gamma=0.0), "gamma"),
        (lambda: Power(gamma=1.0, tau=-0.1), "tau"),
        (lambda: Exponential(gamma=-1.0), "gamma"),
        (lambda: Exponential(gamma=1.0, tau=0.0), "tau"),
        (lambda: Ideal(bounds=(1.0, -1.0)), "bounds"),
        (lambda: Ideal(bounds=(1.0, 1.0)), "bounds"),
        (lambda: Ideal(dw_min=0.0), "dw_min"),
        (lambda: Custom(q_plus=lambda w: 1 - w, q_minus=lambda w: 1 + w, bounds=(1.0, -1.0)), "bounds"),
        (lambda: Custom(q_plus=lambda w: (1 - w)[:3], q_minus=lambda w: 1 + w), "q_plus"),
        (lambda: Custom(q_plus=lambda w: 1 - w, q_minus=lambda w: 1.0), "q_minus"),
        (lambda: Custom(q_plus=lambda w: w, q_minus=lambda w: 1 + w), "q_plus"),  # <= 0 for w < 0
        (lambda: Custom(q_plus=lambda w: 1 - w, q_minus=lambda w: -(1 + w)), "q_minus"),
        (lambda: Custom(q_plus=1.0, q_minus=lambda w: 1 + w), "q_plus"),
        (lambda: Custom(q_plus=lambda w: 1 - w, q_minus=lambda w: 1 + w, dw_min=0.0), "dw_min"),
        (lambda: Piecewise([1.0, 0.0], [1.0, 1.0], [1.0, 1.0]), "w_nodes"),
        (lambda: Piecewise([0.0], [1.0], [1.0]), "w_nodes"),
        (lambda: Piecewise([0.0, 1.0], [1.0], [1.0, 1.0]), "q_plus_nodes"),
        (lambda: Piecewise([0.0, 0.5, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 1.0]), "q_plus_nodes"),
        (lambda: Piecewise([0.0, 0.5, 1.0], [1.0, 1.0, 0.0], [0.0, -1.0, 1.0]), "q_minus_nodes"),
        (lambda: get_preset("no_such_device"), "preset"),
    ],
)
def test_invalid_arguments_raise_value_error_naming_the_field(make, field):
    with pytest.raises(ValueError, match=field):
        make()


def test_softbounds_safe_step_never_clamps():
    """|dW| <= min(w_max / a_up, |w_min| / a_down) keeps the compact update inside the bounds."""
    dev = SoftBounds(up_slope=1.2, down_slope=0.8, w_max=1.0, w_min=-0.5)
    assert dev.safe_step() == pytest.approx(min(1.0 / 1.2, 0.5 / 0.8))
    w = torch.linspace(-0.5, 1.0, 301, dtype=torch.float64)
    step = dev.safe_step()
    assert float((w + step * dev.q_plus(w)).max()) <= 1.0 + 1e-12
    assert float((w - step * dev.q_minus(w)).min()) >= -0.5 - 1e-12
    assert float((w + 1.5 * step * dev.q_plus(w)).max()) > 1.0  # beyond it the clamp is needed
    assert Power(gamma=2.0).safe_step() is None
