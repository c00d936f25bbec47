"""Compiled kernels (numba) against the torch reference engines (issue 10).

Statistical equivalence: per element, the mean increment over T independent trials of the
kernel and of the torch StochasticEngine (``use_kernel=False``) must agree within z-scores:
max |z| < 5.5 over all elements and the mean of z^2 within 4 standard errors of 1 (z^2 of
equal distributions has mean 1 and variance 2: 1 +- 4 sqrt(2 / n) over n elements), and the
summed per-element variances agree (log ratio within ``SPREAD_TOL``).
"""

import math

import numpy as np
import pytest
import torch

import analogtrain as at
from analogtrain.devices.aihwkit_presets import aihwkit_preset
from analogtrain.pulses import StochasticEngine
from analogtrain.pulses import numba_kernels as nk

pytestmark = pytest.mark.skipif(nk.numba is None, reason="numba is not installed: the compiled kernels are not tested")

DEVICES = {
    "softbounds": lambda: at.devices.SoftBounds(up_slope=1.2, down_slope=0.8, w_max=0.6, w_min=-0.5, dw_min=0.02),
    "softbounds_mult": lambda: at.devices.SoftBounds(w_max=0.6, w_min=-0.6, dw_min=0.02, cycle_noise=0.3,
                                                     cycle_noise_type="multiplicative",
                                                     device_to_device={"dw_min": 0.3, "w_max": 0.2}),
    "softbounds_add": lambda: at.devices.SoftBounds(tau=0.5, asymmetry=0.2, dw_min=0.02, cycle_noise=0.5),
    "ideal_bounded": lambda: at.devices.Ideal(dw_min=0.02, bounds=(-0.1, 0.1)),
    # the power / exponential maps (2502.06309 Table 8 responses), per-element tau and gamma
    "power_mult": lambda: at.devices.Power(gamma=2.0, tau=0.6, dw_min=0.02, cycle_noise=0.3,
                                           cycle_noise_type="multiplicative",
                                           device_to_device={"dw_min": 0.3, "gamma": 0.2, "tau": 0.1}),
    "power_sqrt": lambda: at.devices.Power(gamma=0.5, tau=0.3, dw_min=0.02),
    "exponential_add": lambda: at.devices.Exponential(gamma=1.5, tau=0.5, dw_min=0.02, cycle_noise=0.5,
                                                      device_to_device={"tau": 0.1, "gamma": 0.2}),
    # aihwkit LinearStep with additive noise scaled per polarity (update_once_add), and the
    # HfO2 preset of 2602.21321 (SoftBoundsReference: additive noise, write noise, 4.3 states)
    "linearstep_add": lambda: at.devices.LinearStep(gamma_up=0.5, gamma_down=0.3, mult_noise=False, dw_min=0.02,
                                                    dw_min_std=0.4, up_down=0.3, up_down_dtod=0.05, w_max=0.6,
                                                    w_min=-0.6),
    "hfo2": lambda: aihwkit_preset("ReRamArrayHfO2", dw_min=0.1),
    # aihwkit PowStep (per-element gamma_up / gamma_down, bounds and scales) and PowStepReference
    "powstep": lambda: at.devices.PowStep(pow_gamma=1.5, pow_gamma_dtod=0.1, pow_up_down=0.2, pow_up_down_dtod=0.05,
                                          dw_min=0.02, dw_min_std=0.3, w_max=0.5, w_min=-0.4),
    "powstepref_add": lambda: at.devices.PowStepReference(pow_gamma=0.7, dw_min=0.02, dw_min_std=0.3,
                                                          mult_noise=False, reference_mean=0.1),
    # aihwkit ExpStep (the ReRamES / PCM presets' family), without its complex noise
    "expstep": lambda: at.devices.ExpStep(dw_min=0.02, dw_min_std=0.3, A_up=0.05, A_down=0.2, gamma_up=3.0,
                                          gamma_down=4.0, a=0.3, b=0.1, w_max=0.5, w_min=-0.5, up_down_dtod=0.05),
}


#: bound on |log(sum of kernel variances / sum of reference variances)|; dropping the cycle noise
#: moves it by 0.1-0.2 on the noisy presets (checked by test_spread_check_detects_dropped_noise)
SPREAD_TOL = 0.05


@pytest.mark.parametrize("name", sorted(DEVICES))
def test_every_device_here_has_a_kernel_map(name):
    """Each device of these tests takes the compiled path (else kernel and reference would both
    be the torch engine and the comparisons below could not fail); the shape codes are the
    ones of its family."""
    shape = (4, 3)
    device = DEVICES[name]().sample(shape, torch.Generator().manual_seed(1))
    packed = nk.kernel_coefficients(torch.zeros(shape), device)
    assert packed is not None
    code = {"power": nk.SHAPE_POWER, "powstep": nk.SHAPE_POWER, "powstepref": nk.SHAPE_POWER,
            "exponential": nk.SHAPE_EXPONENTIAL, "expstep": nk.SHAPE_SATURATING_EXP}.get(name.split("_")[0],
                                                                                    nk.SHAPE_AFFINE)
    assert packed[3] == code
    coef, bounds, dw, _, gp, na = packed
    assert coef.shape == (12, 4) and bounds.shape == (12, 2) and dw.shape == (12,)
    if name in ("linearstep_add", "hfo2"):  # additive noise dw sigma scale_s xi (aihwkit update_once_add)
        np.testing.assert_allclose(na[:, 0], device.scale_up.reshape(-1).numpy(), rtol=1e-6)
        np.testing.assert_allclose(na[:, 1], device.scale_down.reshape(-1).numpy(), rtol=1e-6)
    else:
        assert na.shape == (1, 2) and (na == 1).all()
    if name.startswith("powstep"):  # b_up + c_up w = (w_max - w) / R, b_down + c_down w = (w - w_min) / R
        rng = bounds[:, 1] - bounds[:, 0]
        np.testing.assert_allclose(gp[:, 0] + coef[:, 1] * bounds[:, 1], 0.0, atol=1e-6)
        np.testing.assert_allclose(gp[:, 3] + coef[:, 3] * bounds[:, 0], 0.0, atol=1e-6)
        np.testing.assert_allclose(coef[:, 3] * rng, 1.0, rtol=1e-5)
        np.testing.assert_allclose(gp[:, 1], device.gamma_up.reshape(-1).numpy(), rtol=1e-6)
        np.testing.assert_allclose(gp[:, 4], device.gamma_down.reshape(-1).numpy(), rtol=1e-6)
    elif name == "expstep":  # z = b + 2 a w / R, exponents +gamma_up / -gamma_down, A_up / A_down
        np.testing.assert_allclose(gp[:, [0, 3]], 0.1, rtol=1e-6)
        np.testing.assert_allclose(coef[:, 1] * (bounds[:, 1] - bounds[:, 0]), 0.6, rtol=1e-5)
        np.testing.assert_allclose(gp[:, [1, 4]], np.array([[3.0, -4.0]]).repeat(12, 0), rtol=1e-6)
        np.testing.assert_allclose(gp[:, [2, 5]], np.array([[0.05, 0.2]]).repeat(12, 0), rtol=1e-6)
    elif code != nk.SHAPE_AFFINE:  # s_up = dw, c_up = -1 / tau, s_down = -dw, c_down = 1 / tau, bounds +-tau
        np.testing.assert_allclose(coef[:, 0], dw, rtol=1e-6)
        np.testing.assert_allclose(coef[:, 2], -dw, rtol=1e-6)
        np.testing.assert_allclose(coef[:, 1] * bounds[:, 1], -1.0, rtol=1e-6)
        np.testing.assert_allclose(coef[:, 3] * bounds[:, 1], 1.0, rtol=1e-6)
        np.testing.assert_allclose(gp[:, 1], device.gamma.reshape(-1).numpy(), rtol=1e-6)
        np.testing.assert_allclose(gp[:, 0], 1.0)


def test_ziggurat_normals_have_normal_moments_and_tails():
    n = 2_000_000
    z = nk._normals(12345, n)
    assert abs(z.mean()) < 5 / math.sqrt(n)
    assert abs(z.var() - 1) < 5 * math.sqrt(2 / n)
    assert abs((z ** 4).mean() - 3) < 5 * math.sqrt(96 / n)
    for t in (1.0, 2.0, 3.0, nk.ZIG_R, 4.0):  # two-sided tail probabilities (incl. the ziggurat's tail r)
        p = math.erfc(t / math.sqrt(2))
        assert abs((np.abs(z) > t).mean() - p) < 5 * math.sqrt(p * (1 - p) / n) + 1e-7, t


def _trials(device, kernel, trials, shape, batch, seed):
    g = torch.Generator().manual_seed(0)  # the same problem for both implementations
    sampled = device.sample(shape, torch.Generator().manual_seed(7))
    w0 = (torch.rand(shape, generator=g) - 0.5) * 0.2
    x = torch.rand(batch, shape[1], generator=g) * 2 - 1
    x[:, 0] = 0.0  # a column with no pulses
    d = (torch.rand(batch, shape[0], generator=g) * 2 - 1) * 0.5
    eng = StochasticEngine(bit_length=31)
    eng.use_kernel = kernel
    out, ups, downs = [], [], []
    gen = torch.Generator().manual_seed(seed + 100)
    for _ in range(trials):
        w = w0.clone()
        st = eng.apply_outer(w, sampled, x, d, 0.5, gen)
        out.append(w - w0)
        ups.append(float(st.up))
        downs.append(float(st.down))
    return torch.stack(out).double(), torch.tensor(ups).double(), torch.tensor(downs).double()


def _z(a, b):
    se = (a.var(0) / a.shape[0] + b.var(0) / b.shape[0]).sqrt()
    ok = se > 0
    # no spread on either side (deterministic elements): equal to float64 rounding (the kernel
    # evaluates the affine form w + c0 + c1 w, the reference q(w) itself)
    torch.testing.assert_close(a.mean(0)[~ok], b.mean(0)[~ok], rtol=0, atol=1e-12)
    return (a.mean(0) - b.mean(0))[ok] / se[ok]


@pytest.mark.parametrize("name", sorted(DEVICES))
@pytest.mark.parametrize("shape, batch", [((6, 5), 4), ((24, 40), 24)], ids=["dense", "sparse"])
def test_stochastic_kernel_matches_the_torch_engine_statistically(name, shape, batch):
    trials = 300
    dk, uk, nk_down = _trials(DEVICES[name](), True, trials, shape, batch, seed=1)
    dt, ut, nt_down = _trials(DEVICES[name](), False, trials, shape, batch, seed=2)
    z = _z(dk.reshape(trials, -1), dt.reshape(trials, -1))
    assert z.abs().max() < 5.5, float(z.abs().max())
    # z^2 of equal distributions has mean 1 and (Gaussian z) variance 2: 4 standard errors
    assert abs(float((z ** 2).mean()) - 1) < 4 * math.sqrt(2 / z.numel()), float((z ** 2).mean())
    # spread: the log ratio of the summed per-element variances (relative std of a variance over
    # 300 trials ~0.08, pooled over 30-960 elements 0.015-0.003)
    vk, vt = dk.reshape(trials, -1).var(0), dt.reshape(trials, -1).var(0)
    assert abs(math.log(float(vk.sum() / vt.sum()))) < SPREAD_TOL, float(vk.sum() / vt.sum())
    for a, b in ((uk, ut), (nk_down, nt_down)):
        zc = (a.mean() - b.mean()) / (a.var() / trials + b.var() / trials).sqrt()
        assert abs(float(zc)) < 4.5
    # elements of the zero input column never move, in either implementation
    assert torch.equal(dk[:, :, 0], torch.zeros_like(dk[:, :, 0]))


def test_kernel_counts_every_pulse_on_an_ideal_device():
    """Ideal unbounded device: each pulse moves an element by exactly +-dw_min, so
    (sum of dW) / dw_min equals up - down, and |dW| / dw_min summed equals up + down."""
    dev = at.devices.Ideal(dw_min=0.25)  # a power of two: every step is exact in float
    sampled = dev.sample((16, 12))
    g = torch.Generator().manual_seed(3)
    x, d = torch.randn(8, 12, generator=g), torch.randn(8, 16, generator=g)
    w = torch.zeros(16, 12)
    eng = StochasticEngine()
    st = eng.apply_outer(w, sampled, x, d, 1.0, torch.Generator().manual_seed(4))
    assert float(st.up + st.down) > 100
    assert float(w.sum() / 0.25) == float(st.up - st.down)


def test_kernel_is_deterministic_given_the_generator_and_advances_it():
    dev = DEVICES["softbounds_mult"]().sample((8, 8), torch.Generator().manual_seed(0))
    x, d = torch.rand(4, 8), torch.randn(4, 8) * 0.3
    eng = StochasticEngine()
    runs = []
    for _ in range(2):
        w = torch.zeros(8, 8)
        gen = torch.Generator().manual_seed(5)
        eng.apply_outer(w, dev, x, d, 0.5, gen)
        first = w.clone()
        eng.apply_outer(w, dev, x, d, 0.5, gen)
        runs.append((first, w.clone()))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    assert not torch.equal(runs[0][0], runs[0][1] - runs[0][0])


def test_kernel_bumps_the_version_counter_and_reports_touched_elements():
    dev = DEVICES["softbounds"]().sample((5, 4))
    w = torch.zeros(5, 4)
    x = torch.tensor([[1.0, 0.0, 0.5, 0.0]])
    d = torch.ones(1, 5)
    version = w._version
    st = StochasticEngine().apply_outer(w, dev, x, d, 0.5, torch.Generator().manual_seed(0), need_touched=True)
    assert w._version > version
    assert torch.equal(st.touched, w != 0)
    assert not bool(st.touched[:, [1, 3]].any())


def test_environment_switch_selects_the_torch_engine(monkeypatch):
    monkeypatch.setenv("ANALOGTRAIN_KERNELS", "torch")
    assert not nk.kernels_enabled()
    monkeypatch.delenv("ANALOGTRAIN_KERNELS")
    assert nk.kernels_enabled()


def test_layer_resume_is_bit_identical_with_the_kernel():
    cfg = at.AnalogConfig(algorithm=at.algorithms.AnalogSGD(), device=at.devices.get_preset("aihwkit_softbounds"),
                          engine="stochastic")
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(4, 10, generator=g) for _ in range(6)]

    def run(layer, opt, batches):
        for x in batches:
            opt.zero_grad()
            layer(x).pow(2).sum().backward()
            opt.step()

    a = at.nn.AnalogLinear(10, 6, bias=False, config=cfg, seed=3)
    opt_a = at.optim.AnalogSGD(a.parameters(), lr=0.1)
    run(a, opt_a, xs[:3])
    state = a.state_dict()
    run(a, opt_a, xs[3:])
    b = at.nn.AnalogLinear(10, 6, bias=False, config=cfg, seed=99)
    b.load_state_dict(state)
    opt_b = at.optim.AnalogSGD(b.parameters(), lr=0.1)
    run(b, opt_b, xs[3:])
    assert torch.equal(a.weight, b.weight)


@pytest.mark.parametrize("name", ["softbounds_mult", "softbounds_add", "power_mult", "exponential_add",
                                  "linearstep_add", "powstep", "expstep"])
def test_spread_check_detects_dropped_noise(name, monkeypatch):
    """The variance comparison above can fail: a kernel that drops the cycle-to-cycle noise
    (the mean is unchanged) is caught by it on every noisy preset."""
    real = nk.stochastic_update

    def noiseless(w, x, d, lr, dw, engine, coefficients, noise_type, sigma, generator, need_touched):
        return real(w, x, d, lr, dw, engine, coefficients, nk.NOISE_NONE, 0.0, generator, need_touched)

    trials, shape, batch = 300, (24, 40), 24
    monkeypatch.setattr(nk, "stochastic_update", noiseless)
    dk = _trials(DEVICES[name](), True, trials, shape, batch, seed=1)[0]
    monkeypatch.undo()
    dt = _trials(DEVICES[name](), False, trials, shape, batch, seed=2)[0]
    vk, vt = dk.reshape(trials, -1).var(0), dt.reshape(trials, -1).var(0)
    assert abs(math.log(float(vk.sum() / vt.sum()))) > 2 * SPREAD_TOL


# ---------------------------------------------------------------- fire(): signed pulse counts
def _fire_trials(device, kernel, trials, seed):
    shape = (12, 10)
    g = torch.Generator().manual_seed(0)
    counts = torch.randint(-4, 5, shape, generator=g).double()
    counts[0] = 0.0  # a row that is never touched
    out, ups, downs = [], [], []
    for t in range(trials):
        arr = at.AnalogArray(shape, device, seed=3, dtype=torch.float64)
        arr.generator.manual_seed(seed * 100_000 + t)
        arr.use_kernels = kernel
        with torch.no_grad():
            arr.state.copy_((torch.rand(shape, generator=torch.Generator().manual_seed(1)) - 0.5) * 0.4)
        w0 = arr.state.clone()
        st = arr.fire(counts)
        out.append(arr.state - w0)
        ups.append(float(st.up))
        downs.append(float(st.down))
    return torch.stack(out), counts, ups, downs


@pytest.mark.parametrize("name", sorted(DEVICES))
def test_fire_kernel_matches_the_torch_reference(name):
    """AnalogArray.fire: the kernel and Device.apply_pulses agree per element (mean z-scores,
    pooled variance) over 300 trials; counted pulses equal the requested counts exactly; the
    zero-count row never moves."""
    dk, counts, uk, dnk = _fire_trials(DEVICES[name](), True, 300, 1)
    dt, _, ut, dnt = _fire_trials(DEVICES[name](), False, 300, 2)
    z = _z(dk.reshape(300, -1), dt.reshape(300, -1))
    if z.numel():
        assert z.abs().max() < 5.5, float(z.abs().max())
        assert abs(float((z ** 2).mean()) - 1) < 4 * math.sqrt(2 / z.numel()), float((z ** 2).mean())
    vk, vt = dk.reshape(300, -1).var(0), dt.reshape(300, -1).var(0)
    if float(vt.sum()) > 0:
        assert abs(math.log(float(vk.sum() / vt.sum()))) < SPREAD_TOL, float(vk.sum() / vt.sum())
    assert set(uk) == {float(counts.clamp_min(0).sum())} and set(dnk) == {float((-counts).clamp_min(0).sum())}
    assert uk == ut and dnk == dnt
    assert torch.equal(dk[:, 0], torch.zeros_like(dk[:, 0]))


def test_fire_kernel_exact_on_ideal_and_rejects_bad_counts():
    """Ideal unbounded device, dw_min a power of two: fire moves every element by exactly
    counts * dw_min in both implementations; a fractional or infinite count is a ValueError
    and writes nothing."""
    dev = at.devices.Ideal(dw_min=0.125)
    counts = torch.tensor([[3.0, -2.0, 0.0], [0.0, 1.0, -5.0]])
    for kernel in (True, False):
        arr = at.AnalogArray((2, 3), dev, seed=0)
        arr.use_kernels = kernel
        arr.fire(counts)
        assert torch.equal(arr.state, counts * 0.125)
        assert arr.pulse_count == {"up": 4.0, "down": 7.0, "total": 11.0}
        for bad in (torch.tensor([[0.5, 0, 0], [0, 0, 0]]), torch.tensor([[float("inf"), 0, 0], [0, 0, 0]])):
            before = arr.state.clone()
            with pytest.raises(ValueError, match="finite integers"):
                arr.fire(bad)
            assert torch.equal(arr.state, before)


# ---------------------------------------------------------------- the expected engine
@pytest.mark.parametrize("name", sorted(DEVICES))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_expected_kernel_equals_the_torch_engine(name, dtype):
    """Deterministic: the compiled expected update equals the torch ExpectedEngine to rounding
    (state and expected pulse counts), on sampled per-element devices, with steps large
    enough to reach the bounds; the touched mask is where dW != 0."""
    from analogtrain.pulses import ExpectedEngine

    shape = (24, 40)
    device = DEVICES[name]().sample(shape, torch.Generator().manual_seed(7), dtype=dtype)
    g = torch.Generator().manual_seed(0)
    lo, hi = device.bounds()
    w0 = (lo + (hi - lo) * torch.rand(shape, generator=g, dtype=torch.float64).to(dtype)).to(dtype)  # inside
    x = (torch.rand(6, shape[1], generator=g) * 2 - 1).to(dtype)
    d = (torch.rand(6, shape[0], generator=g) * 2 - 1).to(dtype)
    x[:, 3] = 0.0
    out = {}
    for kernel in (True, False):
        eng = ExpectedEngine()
        eng.use_kernel = kernel
        w = w0.clone()
        st = eng.apply_outer(w, device, x, d, 0.4, None, need_touched=True)
        out[kernel] = (w, float(st.up), float(st.down), st.touched.bool())
    tol = 1e-12 if dtype == torch.float64 else 2e-6
    torch.testing.assert_close(out[True][0], out[False][0], rtol=0, atol=tol)
    assert out[True][1] == pytest.approx(out[False][1], rel=1e-5)
    assert out[True][2] == pytest.approx(out[False][2], rel=1e-5)
    assert torch.equal(out[True][3], out[False][3])
    assert bool(((out[True][0] == hi) | (out[True][0] == lo)).any())  # some elements reached a bound


@pytest.mark.parametrize("name", ["softbounds_mult", "softbounds_add", "ideal_bounded"])
@pytest.mark.parametrize("columns", [True, False])
def test_fire_lines_kernel_matches_fire_of_the_full_counts(name, columns):
    """AnalogArray.fire_lines (kernel on the selected lines) against its definition, fire of
    the full-shape counts (the torch path): per-element statistics over 300 trials, exact
    counted pulses, untouched lines never move, write noise redrawn only where pulses fired."""
    shape = (12, 10)
    lines = torch.tensor([7, 2])
    g = torch.Generator().manual_seed(0)
    sel = torch.randint(-3, 4, (shape[0], 2) if columns else (2, shape[1]), generator=g).double()
    res = {}
    for kernel in (True, False):
        out, ups = [], []
        for t in range(300):
            arr = at.AnalogArray(shape, DEVICES[name](), seed=3, dtype=torch.float64)
            arr.generator.manual_seed((1 if kernel else 2) * 100_000 + t)
            arr.use_kernels = kernel
            w0 = arr.state.clone()
            st = arr.fire_lines(sel, lines, columns=columns)
            out.append(arr.state - w0)
            ups.append((float(st.up), float(st.down)))
        res[kernel] = (torch.stack(out), ups)
    dk, dt = res[True][0], res[False][0]
    z = _z(dk.reshape(300, -1), dt.reshape(300, -1))
    if z.numel():
        assert z.abs().max() < 5.5
        assert abs(float((z ** 2).mean()) - 1) < 4 * math.sqrt(2 / z.numel())
    assert set(res[True][1]) == set(res[False][1]) == {(float(sel.clamp_min(0).sum()), float((-sel).clamp_min(0).sum()))}
    others = torch.ones(shape[1] if columns else shape[0], dtype=torch.bool)
    others[lines] = False
    untouched = dk[:, :, others] if columns else dk[:, others, :]
    assert torch.equal(untouched, torch.zeros_like(untouched))


def test_fire_lines_write_noise_only_where_pulses_fired():
    dev = at.devices.SoftBounds(tau=0.6, dw_min=1e-3, write_noise=0.5)
    arr = at.AnalogArray((50, 8), dev, seed=0)
    counts = torch.zeros(50, 2)
    counts[:25, 0] = 2.0
    arr.fire_lines(counts, torch.tensor([3, 5]))
    moved = arr.write_offset != 0
    expect = torch.zeros(50, 8, dtype=torch.bool)
    expect[:25, 3] = True
    assert torch.equal(moved, expect)
    with pytest.raises(ValueError, match="counts must have shape"):
        arr.fire_lines(torch.zeros(50, 3), torch.tensor([3, 5]))
