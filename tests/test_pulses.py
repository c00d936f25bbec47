"""Pulse engines: expected (compact model), stochastic pulse trains, deterministic pulses.

References: reference/residual_learning.md sections 1.1-1.3 and 6 (tests 1-3); aihwkit's
STOCHASTIC_COMPRESSED update rule (reference/aihwkit_peer.md section 4) for BL / update management.
Statistical tests use fixed seeds and tolerances derived from the binomial variance.
"""

import math

import pytest
import torch

from analogtrain.devices import Custom, Exponential, Ideal, Piecewise, Power, SoftBounds
from analogtrain.pulses import (
    DeterministicEngine,
    ExpectedEngine,
    StochasticEngine,
    apply_pulse_counts,
    make_engine,
    pulse_step,
)

F64 = torch.float64


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- single pulse physics
def test_pulse_step_is_the_single_pulse_rule():
    """w <- w + s dw_min q_s(w) (App. C eq. 26 without noise)."""
    dev = SoftBounds(tau=1.0, asymmetry=0.2, dw_min=1e-2)
    w = torch.linspace(-0.9, 0.9, 7, dtype=F64)
    up = pulse_step(w, dev, torch.ones_like(w), None)
    down = pulse_step(w, dev, -torch.ones_like(w), None)
    torch.testing.assert_close(up, w + 1e-2 * 1.2 * (1 - w), rtol=0, atol=1e-15)
    torch.testing.assert_close(down, w - 1e-2 * 0.8 * (1 + w), rtol=0, atol=1e-15)


@pytest.mark.parametrize("noise_type, expected_std", [("additive", 0.4), ("multiplicative", 0.4 * 0.5)])
def test_cycle_noise_statistics(noise_type, expected_std):
    """One up pulse at w = 0.5 on q+ = 1 - w (q+ = 0.5): additive noise gives a step
    dw (q + s xi) with std dw*s; multiplicative gives dw q (1 + s xi) with std dw*q*s.
    n = 40000 steps: relative std error of the std estimate ~0.35 %; tolerance 2 %."""
    dw = 1e-3
    dev = SoftBounds(tau=1.0, dw_min=dw, cycle_noise=0.4, cycle_noise_type=noise_type)
    w = torch.full((40000,), 0.5, dtype=F64)
    step = (pulse_step(w, dev, torch.ones_like(w), gen(1)) - w) / dw
    assert float(step.mean()) == pytest.approx(0.5, abs=4 * expected_std / 200)
    assert float(step.std()) == pytest.approx(expected_std, rel=0.02)


def test_apply_pulse_counts_composes_single_pulses():
    dev = SoftBounds(tau=1.0, dw_min=1e-2)
    w0 = torch.tensor([0.0, 0.3, -0.5, 0.2], dtype=F64)
    counts = torch.tensor([3, -2, 0, 1], dtype=F64)
    out = apply_pulse_counts(w0, dev, counts, None)
    w = w0.clone()
    for i, n in enumerate(counts.tolist()):
        for _ in range(int(abs(n))):
            s = 1.0 if n > 0 else -1.0
            w[i] = w[i] + s * 1e-2 * (1 - s * w[i])  # q+ = 1 - w, q- = 1 + w
    torch.testing.assert_close(out, w, rtol=0, atol=1e-15)
    assert torch.equal(w0, torch.tensor([0.0, 0.3, -0.5, 0.2], dtype=F64))  # input unchanged


# ---------------------------------------------------------------- expected engine
@pytest.mark.parametrize(
    "dev",
    [
        SoftBounds(tau=0.6, asymmetry=0.3, dw_min=1e-3),
        Power(gamma=3.0, tau=0.6, dw_min=1e-3),
        Exponential(gamma=2.0, tau=0.6, dw_min=1e-3),
        Custom(q_plus=lambda w: 1.5 - w, q_minus=lambda w: 1 + w**2, bounds=(-0.6, 0.6), dw_min=1e-3),
    ],
    ids=["softbounds", "power", "exponential", "custom"],
)
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_expected_engine_is_the_casewise_rule(dev, dtype):
    """Eq. 5 == eq. 3: w + dW q+(w) for dW >= 0, w + dW q-(w) for dW < 0, to float precision."""
    g = gen(0)
    w0 = (torch.rand(64, 32, generator=g, dtype=dtype) - 0.5) * 1.0
    delta = torch.randn(64, 32, generator=g, dtype=dtype) * 0.01
    w = w0.clone()
    stats = ExpectedEngine().apply(w, dev, delta)
    casewise = torch.where(delta >= 0, w0 + delta * dev.q_plus(w0), w0 + delta * dev.q_minus(w0))
    eps = torch.finfo(dtype).eps
    # equal up to one rounding of the state (the engine may use fused multiply-adds)
    torch.testing.assert_close(w, casewise, rtol=0, atol=eps)  # |w| < 1: one ulp <= eps
    fg = w0 + delta * dev.F(w0) - delta.abs() * dev.G(w0)
    torch.testing.assert_close(w, fg, rtol=0, atol=8 * eps)
    # pulse counts are the expected numbers |dW| / dw_min per polarity
    assert float(stats.up) == pytest.approx(float(delta.clamp_min(0).sum()) / 1e-3, rel=1e-4)
    assert float(stats.down) == pytest.approx(float((-delta).clamp_min(0).sum()) / 1e-3, rel=1e-4)


def test_expected_engine_granularity_noise_is_unbiased():
    """Stochastic rounding of |dW|/dw_min: integer pulses, mean = dW, variance dw_min^2 f(1-f)."""
    dw = 1e-3
    dev = Ideal(dw_min=dw)
    n = 50000
    delta = torch.full((n,), 2.3 * dw, dtype=F64)
    w = torch.zeros(n, dtype=F64)
    ExpectedEngine(granularity_noise=True).apply(w, dev, delta, gen(5))
    pulses = w / dw
    torch.testing.assert_close(pulses, pulses.round(), rtol=0, atol=1e-9)
    assert set(pulses.round().unique().tolist()) == {2.0, 3.0}
    std_mean = math.sqrt(0.3 * 0.7 / n)
    assert float(pulses.mean()) == pytest.approx(2.3, abs=4 * std_mean)


def test_saturation_rule_softbounds():
    """Test 3 of reference section 6: on soft bounds tau a step away from 0 shrinks by
    (1 - |w|/tau), a step towards 0 grows by (1 + |w|/tau); |dW| <= tau keeps |W| <= tau
    without any clamping."""
    tau = 0.8
    dev = SoftBounds(tau=tau, dw_min=1e-3)
    w0 = torch.tensor([0.4, -0.4, 0.4, -0.4], dtype=F64)
    delta = torch.tensor([0.01, -0.01, -0.01, 0.01], dtype=F64)
    w = w0.clone()
    ExpectedEngine().apply(w, dev, delta)
    factor = (w - w0) / delta
    torch.testing.assert_close(factor, torch.tensor([0.5, 0.5, 1.5, 1.5], dtype=F64), rtol=0, atol=1e-12)
    # random sequences with |dW| <= tau: the unclamped compact update never leaves [-tau, tau]
    g = gen(3)
    w = (torch.rand(2000, generator=g, dtype=F64) * 2 - 1) * tau
    for _ in range(200):
        delta = (torch.rand(2000, generator=g, dtype=F64) * 2 - 1) * tau
        raw = w + torch.where(delta >= 0, delta * dev.q_plus(w), delta * dev.q_minus(w))
        assert float(raw.abs().max()) <= tau + 1e-12
        ExpectedEngine().apply(w, dev, delta)
        torch.testing.assert_close(w, raw, rtol=0, atol=1e-15)


# ---------------------------------------------------------------- deterministic engine
def test_deterministic_pulse_counts_ceil_capped_at_bl():
    eng = DeterministicEngine(bit_length=5)
    dev = Ideal(dw_min=0.1)
    delta = torch.tensor([0.0, 0.05, 0.1, 0.15, -0.25, 0.3, 2.0, -2.0], dtype=F64)
    counts = eng.pulse_counts(delta, dev)
    assert counts.tolist() == [0, 1, 1, 2, -3, 3, 5, -5]
    w = torch.zeros(8, dtype=F64)
    stats = eng.apply(w, dev, delta)
    torch.testing.assert_close(w, counts * 0.1, rtol=0, atol=1e-12)
    assert float(stats.up) == 1 + 1 + 2 + 3 + 5
    assert float(stats.down) == 3 + 5
    # float32 round-off of |dW|/dw_min just above an integer is not an extra pulse
    d32 = torch.tensor([1e-3], dtype=torch.float32)
    assert DeterministicEngine(bit_length=100).pulse_counts(d32, Ideal(dw_min=1e-4)).item() == 10


def test_deterministic_rounding_modes():
    dev = Ideal(dw_min=1.0)
    delta = torch.tensor([0.4, 0.6, -1.4], dtype=F64)
    assert DeterministicEngine(rounding="round").pulse_counts(delta, dev).tolist() == [0, 1, -1]
    n = 40000
    stoch = DeterministicEngine(rounding="stochastic").pulse_counts(torch.full((n,), 0.3, dtype=F64), dev, gen(0))
    assert float(stoch.mean()) == pytest.approx(0.3, abs=4 * math.sqrt(0.21 / n))


@pytest.mark.parametrize("noise", [0.0, 0.1])
def test_compact_update_equals_pulse_composition(noise):
    """Test 1 of reference section 6 (Thm 4): soft bounds tau = 1, dw_min = 1e-4; firing
    ceil(dW/dw_min) pulses vs U_q(w, dW) = w + dW q(w). Without noise the relative discrepancy
    is dW/2 (1 - w)-compounding: (1-w)(1-(1-dw)^n) vs n dw (1 - w); it shrinks ~10x when dW
    shrinks 10x and the absolute error is O(dw_min + dW^2). With sigma_c > 0 the extra error
    has std sqrt(n) dw_min sigma_c (n = dW/dw_min)."""
    dw = 1e-4
    dev = SoftBounds(tau=1.0, dw_min=dw, cycle_noise=noise)
    eng = DeterministicEngine(bit_length=1000)
    w0 = torch.full((4000,), 0.3, dtype=F64)
    rel = {}
    for big in (1e-2, 1e-3):
        w = w0.clone()
        eng.apply(w, dev, torch.full_like(w0, big), gen(7))
        compact = w0 + big * dev.q_plus(w0)
        n = round(big / dw)
        exact = 1 - (1 - w0) * (1 - dw) ** n  # closed-form composition of n noise-free pulses
        if noise == 0:
            torch.testing.assert_close(w, exact, rtol=0, atol=1e-12)
        else:
            extra_std = math.sqrt(n) * dw * noise
            assert float((w - exact).std()) == pytest.approx(extra_std, rel=0.05)
            assert float((w - exact).mean()) == pytest.approx(0.0, abs=4 * extra_std / math.sqrt(4000))
        rel[big] = float(((w - compact).mean() / big).abs())
        assert float((w - compact).mean().abs()) <= dw + big**2
    if noise == 0:
        assert rel[1e-2] == pytest.approx(0.7 * (1e-2 - dw) / 2, rel=0.02)
        assert rel[1e-3] == pytest.approx(0.7 * (1e-3 - dw) / 2, rel=0.02)
        assert rel[1e-3] < rel[1e-2] / 8


# ---------------------------------------------------------------- stochastic engine: pulse trains
def test_train_probabilities_bl_and_update_management():
    eng = StochasticEngine(bit_length=31)
    x = torch.tensor([[0.5, -0.2, 0.1, 0.0], [1.0, 0.5, 0.25, 0.1]], dtype=F64)
    d = torch.tensor([[0.3, -0.6], [2.0, 1.0]], dtype=F64)
    lr, dw = 0.01, 1e-3
    bl, p_x, p_d = eng.train_probabilities(x, d, lr, dw)
    # BL_b = min(31, ceil(lr max|x_b| max|d_b| / dw_min)): ceil(3.0) = 3 and ceil(20) = 20
    assert bl.tolist() == [3.0, 20.0]
    for b in range(2):
        # BL * p_x p_d = lr |x d| / dw_min (expected pulse count) for every element
        prod = bl[b] * p_x[b][None, :] * p_d[b][:, None]
        torch.testing.assert_close(prod, lr * (d[b].abs()[:, None] * x[b].abs()[None, :]) / dw, rtol=1e-12, atol=1e-15)
        # update management: B max|x| = A max|d|, so the largest line probabilities are equal
        torch.testing.assert_close(p_x[b].max(), p_d[b].max(), rtol=1e-12, atol=0)
    # without update management both lines are scaled by sqrt(lr / (dw BL))
    eng2 = StochasticEngine(bit_length=31, update_management=False)
    bl2, p_x2, _p_d2 = eng2.train_probabilities(x, d, lr, dw)
    c = torch.sqrt(lr / (dw * bl2))
    torch.testing.assert_close(p_x2, (x.abs() * c[:, None]).clamp(max=1), rtol=1e-12, atol=0)
    # without BL management BL is always the bit length
    bl3, _, _ = StochasticEngine(bit_length=31, bl_management=False).train_probabilities(x, d, lr, dw)
    assert bl3.tolist() == [31.0, 31.0]


@pytest.mark.parametrize("bl_management, update_management", [(True, True), (False, True), (True, False)])
def test_mean_coincidences_match_bl_probability_rule(bl_management, update_management):
    """Mean pulses per element over n = 4000 independent samples equal BL p_x p_d
    (= lr|x d|/dw_min when nothing is capped) within 5 binomial standard errors,
    sqrt(BL p (1 - p) / n)."""
    eng = StochasticEngine(bit_length=31, bl_management=bl_management, update_management=update_management)
    n = 4000
    x1 = torch.tensor([0.9, -0.5, 0.3, 0.1, -0.05], dtype=F64)
    d1 = torch.tensor([0.4, -0.2, 0.05], dtype=F64)
    x, d = x1.expand(n, -1).clone(), d1.expand(n, -1).clone()
    lr, dw = 0.05, 1e-3
    signed = eng.coincidences(x, d, lr, dw, gen(11))
    assert signed.shape == (n, 3, 5)
    sign = -torch.sign(d1)[:, None] * torch.sign(x1)[None, :]
    assert torch.all(signed * sign >= 0)  # polarity -sign(x d)
    mean = signed.abs().mean(0)
    bl, p_x, p_d = eng.train_probabilities(x[:1], d[:1], lr, dw)
    p = p_d[0][:, None] * p_x[0][None, :]
    expected = bl[0] * p
    if update_management:
        torch.testing.assert_close(expected, lr * (d1.abs()[:, None] * x1.abs()[None, :]) / dw, rtol=1e-12, atol=0)
    se = torch.sqrt(bl[0] * p * (1 - p) / n)
    assert torch.all((mean - expected).abs() <= 5 * se + 1e-12), (mean, expected)


def test_probabilities_capped_at_one_when_bl_saturates():
    """lr max|x| max|d| / dw_min = 100 > BL = 31: the largest lines fire in every slot, so that
    element gets exactly 31 pulses per sample (the rule saturates instead of exceeding BL)."""
    eng = StochasticEngine(bit_length=31)
    x = torch.tensor([[1.0, 0.01]], dtype=F64).expand(50, -1)
    d = torch.tensor([[1.0, 0.01]], dtype=F64).expand(50, -1)
    signed = eng.coincidences(x, d, 0.1, 1e-3, gen(2))
    assert torch.all(signed[:, 0, 0] == -31)
    bl, p_x, p_d = eng.train_probabilities(x, d, 0.1, 1e-3)
    assert bl[0] == 31 and float(p_x[0, 0]) == pytest.approx(1.0, abs=1e-12) and float(p_d[0, 0]) == 1.0


def _softbounds_up_mean(w0, b, a, dw, bl, p):
    """E[w_n] - w0 after n ~ Bin(BL, p) noise-free up pulses on q+ = a (1 - w/b):
    w_n = b - (b - w0)(1 - a dw/b)^n, and E[(1 - r)^n] = (1 - p r)^BL."""
    r = a * dw / b
    return (b - w0) * (1 - (1 - p * r) ** bl)


def test_stochastic_mean_update_matches_expected_update():
    """Mean of -lr x d q(w)-type updates over T = 600 independent trials of one sample.

    Per element the increment is dw_min * sum of n responses, n ~ Bin(BL, p); its std is about
    dw_min q sqrt(BL p (1-p)); tolerance 5 standard errors of the mean. The exact mean of the
    compounded pulses (closed form for soft bounds) and the compact rule lr|x d| q(w0) differ by
    O(n^2 dw^2 / tau), well inside the tolerance here.
    """
    dw, tau = 1e-3, 1.0
    dev = SoftBounds(tau=tau, asymmetry=0.2, dw_min=dw)
    eng = StochasticEngine(bit_length=31)
    x = torch.tensor([[0.8, 0.4, -0.6, 0.2]], dtype=F64)
    d = torch.tensor([[-0.05, -0.1, 0.08]], dtype=F64)  # -x d > 0 for x > 0: mostly up pulses
    lr = 0.05
    w0 = torch.tensor([[0.3], [-0.2], [0.1]], dtype=F64).expand(3, 4).clone()
    trials = 600
    total = torch.zeros(3, 4, dtype=F64)
    g = gen(21)
    pulses = 0.0
    for _ in range(trials):
        w = w0.clone()
        stats = eng.apply_outer(w, dev, x, d, lr, g)
        total += w - w0
        pulses += float(stats.up + stats.down)
    mean = total / trials
    desired = -lr * d[0][:, None] * x[0][None, :]
    compact = torch.where(desired >= 0, desired * dev.q_plus(w0), desired * dev.q_minus(w0))
    bl, p_x, p_d = eng.train_probabilities(x, d, lr, dw)
    p = p_d[0][:, None] * p_x[0][None, :]
    q = torch.where(desired >= 0, dev.q_plus(w0), dev.q_minus(w0))
    se = dw * q * torch.sqrt(bl[0] * p * (1 - p) / trials)
    assert torch.all((mean - compact).abs() <= 5 * se), (mean, compact, se)
    # closed-form mean for the up-pulse elements (q+ = 1.2 (1 - w))
    up = desired > 0
    exact_up = _softbounds_up_mean(w0, tau, 1.2, dw, bl[0], p)
    assert torch.all(((mean - exact_up).abs() <= 5 * se)[up])
    # mean pulse count per step = sum lr |x d| / dw_min
    expected_pulses = float(lr * d.abs().sum() * x.abs().sum() / dw)
    assert pulses / trials == pytest.approx(expected_pulses, rel=0.03)


def test_stochastic_apply_general_increment_mean_counts():
    """apply(delta): |dW|/dw_min stochastically rounded, capped at BL."""
    eng = StochasticEngine(bit_length=4)
    dev = Ideal(dw_min=0.1)
    n = 20000
    delta = torch.cat([torch.full((n,), 0.23, dtype=F64), torch.full((n,), -0.07, dtype=F64),
                       torch.full((n,), 1.0, dtype=F64)])
    w = torch.zeros(3 * n, dtype=F64)
    stats = eng.apply(w, dev, delta, gen(4))
    pulses = w / 0.1
    assert float(pulses[:n].mean()) == pytest.approx(2.3, abs=4 * math.sqrt(0.21 / n))
    assert float(pulses[n:2 * n].mean()) == pytest.approx(-0.7, abs=4 * math.sqrt(0.21 / n))
    assert torch.all(pulses[2 * n:].round() == 4)  # 10 desired, capped at BL = 4
    assert float(stats.up + stats.down) == pytest.approx(float(pulses.abs().sum()), rel=1e-9)


def test_stochastic_samples_applied_in_sequence():
    """The engine equals a hand-rolled loop over samples (then pulses) on the coincidences that
    the same generator produces, on a nonlinear device where the order matters."""
    dev = SoftBounds(tau=0.5, asymmetry=0.3, dw_min=2e-2)
    eng = StochasticEngine(bit_length=31)
    eng.use_kernel = False  # the torch reference (the kernel draws its own stream: tests/test_kernels.py)
    g = gen(8)
    x = torch.rand(6, 5, generator=g, dtype=F64) * 2 - 1
    d = torch.randn(6, 3, generator=g, dtype=F64)
    lr = 0.2
    w0 = (torch.rand(3, 5, generator=g, dtype=F64) - 0.5) * 0.6
    g_engine, g_ref = gen(99), gen(99)
    w = w0.clone()
    eng.apply_outer(w, dev, x, d, lr, g_engine)
    signed = eng.coincidences(x, d, lr, 2e-2, g_ref)
    assert int((signed != 0).sum(0).max()) >= 3  # several samples hit the same element
    ref = w0.clone()
    for b in range(6):
        for j in range(3):
            for i in range(5):
                c = int(signed[b, j, i])
                for _ in range(abs(c)):
                    s = 1.0 if c > 0 else -1.0
                    q = dev.q_plus(ref[j, i]) if s > 0 else dev.q_minus(ref[j, i])
                    ref[j, i] = ref[j, i] + s * 2e-2 * q
    torch.testing.assert_close(w, ref, rtol=0, atol=1e-12)


def test_apply_events_order_matters_and_is_kept():
    """Events +3 (sample 0), -2 (sample 1), +1 (sample 2) on one element of a soft-bounds device
    give the sequential result, which differs from applying them in reverse order."""
    dev = SoftBounds(tau=0.5, asymmetry=0.3, dw_min=5e-2)
    eng = StochasticEngine()
    events = torch.tensor([[[3.0, 0.0]], [[-2.0, 1.0]], [[1.0, 0.0]]], dtype=F64)  # (B=3, out=1, in=2)
    w0 = torch.tensor([[0.2, -0.1]], dtype=F64)

    def by_hand(order):
        w = w0.clone()
        for b in order:
            w = apply_pulse_counts(w, dev, events[b], None)
        return w

    w = w0.clone()
    stats = eng.apply_events(w, dev, events, None)
    torch.testing.assert_close(w, by_hand([0, 1, 2]), rtol=0, atol=1e-14)
    assert float((by_hand([2, 1, 0]) - by_hand([0, 1, 2])).abs().max()) > 1e-3
    assert float(stats.up) == 5 and float(stats.down) == 2


def test_negative_lr_flips_the_update():
    """-lr d^T x with lr < 0 is the same desired increment as lr > 0 with -d."""
    dev = SoftBounds(tau=1.0, dw_min=1e-3)
    eng = StochasticEngine()
    x = torch.rand(4, 6, generator=gen(1), dtype=F64)
    d = torch.randn(4, 3, generator=gen(2), dtype=F64) * 0.1
    w1, w2 = torch.zeros(3, 6, dtype=F64), torch.zeros(3, 6, dtype=F64)
    eng.apply_outer(w1, dev, x, d, -0.1, gen(3))
    eng.apply_outer(w2, dev, x, -d, 0.1, gen(3))
    assert torch.equal(w1, w2)
    assert float(w1.abs().sum()) > 0


# ---------------------------------------------------------------- bounds under one-sided sequences
FAMILIES = [
    ("ideal", lambda **k: Ideal(bounds=(-0.5, 0.5), **k)),
    ("softbounds", lambda **k: SoftBounds(tau=0.5, asymmetry=0.2, **k)),
    ("power", lambda **k: Power(gamma=2.0, tau=0.5, **k)),
    ("exponential", lambda **k: Exponential(gamma=3.0, tau=0.5, **k)),
    ("piecewise", lambda **k: Piecewise([-0.5, 0.0, 0.5], [2.0, 1.0, 0.0], [0.0, 1.0, 2.0], **k)),
    ("custom", lambda **k: Custom(q_plus=lambda w: 0.5 - w, q_minus=lambda w: (0.5 + w) ** 2, bounds=(-0.5, 0.5), **k)),
]


@pytest.mark.parametrize("family", [f for _, f in FAMILIES], ids=[n for n, _ in FAMILIES])
@pytest.mark.parametrize("engine", ["expected", "stochastic", "deterministic"])
@pytest.mark.parametrize("noise_type", ["additive", "multiplicative"])
def test_bounds_hold_under_long_one_sided_sequences(family, engine, noise_type):
    dev = family(dw_min=0.05, cycle_noise=0.8, cycle_noise_type=noise_type)
    lo, hi = dev.bounds()
    eng = make_engine(engine)
    g = gen(5)
    w = torch.zeros(8, 12)
    for sign in (1.0, -1.0):
        for _ in range(30):
            eng.apply(w, dev, torch.full_like(w, sign * 0.3), g)
            assert float(w.min()) >= lo and float(w.max()) <= hi
        for _ in range(15):
            x = torch.rand(4, 12, generator=g)
            dd = -sign * torch.rand(4, 8, generator=g)
            eng.apply_outer(w, dev, x, dd, 1.0, g)
            assert float(w.min()) >= lo and float(w.max()) <= hi
        # the sequence drove the state towards the bound it pushes against
        assert sign * float(w.mean()) > 0.1 * (hi - lo)


def test_bounds_hold_with_per_element_bounds():
    dev = SoftBounds(tau=0.6, dw_min=0.05, cycle_noise=1.0, cycle_noise_type="additive",
                     device_to_device={"w_max": 0.3, "w_min": 0.3})
    s = dev.sample((8, 12), gen(0))
    w = torch.zeros(8, 12)
    eng = StochasticEngine()
    for _ in range(40):
        eng.apply_outer(w, s, torch.ones(2, 12), -torch.ones(2, 8), 1.0, gen(1))
    assert torch.all(w <= s.w_max) and torch.all(w >= s.w_min)
    assert float((s.w_max - w).mean()) < 0.15


# ---------------------------------------------------------------- reproducibility
@pytest.mark.parametrize("engine", ["expected_noise", "stochastic", "deterministic"])
def test_same_seed_same_run_different_seed_different(engine):
    dev = SoftBounds(tau=0.6, asymmetry=0.1, dw_min=1e-2, cycle_noise=0.3)
    eng = ExpectedEngine(granularity_noise=True) if engine == "expected_noise" else make_engine(engine)

    def run(seed):
        g = gen(seed)
        data = gen(123)
        w = torch.zeros(16, 24)
        for _ in range(5):
            x = torch.rand(8, 24, generator=data)
            d = torch.randn(8, 16, generator=data)
            eng.apply_outer(w, dev, x, d, 0.05, g)
        return w

    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: make_engine("fast"), "engine"),
        (lambda: StochasticEngine(bit_length=0), "bit_length"),
        (lambda: StochasticEngine(bit_length=2.5), "bit_length"),
        (lambda: StochasticEngine(bit_length=-3), "bit_length"),
        (lambda: DeterministicEngine(bit_length=0), "bit_length"),
        (lambda: DeterministicEngine(bit_length=1.5), "bit_length"),
        (lambda: DeterministicEngine(rounding="floor"), "rounding"),
        (lambda: make_engine("stochastic", bit_length=0), "bit_length"),
    ],
)
def test_invalid_engine_arguments(make, field):
    with pytest.raises(ValueError, match=field):
        make()


# ---------------------------------------------------------------- fast paths agree with the definitions
@pytest.mark.parametrize("batch", [5, 24], ids=["samples-as-rounds", "ranked-rounds"])
@pytest.mark.parametrize("dense_limit", [0, 1 << 30], ids=["sparse", "dense"])
def test_sparse_and_dense_coincidence_paths_apply_samples_in_sequence(monkeypatch, dense_limit, batch):
    """Both ways of forming coincidences (sparse pairs of firing lines, or a dense batched
    matmul) and both ways of forming rounds (each sample/slot a round, or the r-th event of
    every element) equal the hand-rolled sequential loop on noise-free nonlinear devices."""
    from analogtrain.pulses import stochastic

    monkeypatch.setattr(stochastic, "DENSE_LIMIT", dense_limit)
    dev = Exponential(gamma=2.0, tau=0.5, dw_min=2e-2)  # generic (pulse by pulse) family
    eng = StochasticEngine(bit_length=31)
    eng.use_kernel = False  # the torch paths (the kernel draws its own stream: tests/test_kernels.py)
    g = gen(18)
    x = torch.rand(batch, 7, generator=g, dtype=F64) * 2 - 1
    d = torch.randn(batch, 4, generator=g, dtype=F64)
    w0 = (torch.rand(4, 7, generator=g, dtype=F64) - 0.5) * 0.6
    for device in (dev, SoftBounds(tau=0.5, asymmetry=0.3, dw_min=2e-2)):
        w = w0.clone()
        eng.apply_outer(w, device, x, d, 0.3, gen(5))
        signed = eng.coincidences(x, d, 0.3, 2e-2, gen(5))
        assert int(signed.abs().amax()) >= 2 and int((signed != 0).sum(0).max()) >= 3
        ref = w0.clone()
        for b in range(batch):
            ref = apply_pulse_counts(ref, device, signed[b], None)
        torch.testing.assert_close(w, ref, rtol=0, atol=1e-12)


def test_softbounds_closed_form_matches_pulse_by_pulse_statistics():
    """SoftBounds.apply_pulses composes n noisy (multiplicative) pulses in closed form; its mean
    and spread match the generic pulse-by-pulse loop (n = 20000 elements each, 5 standard
    errors), and without noise it equals the loop to rounding."""
    from analogtrain.devices import Device

    counts = torch.tensor([7.0, -5.0, 12.0, -1.0], dtype=F64).repeat(20000)
    w0 = torch.tensor([0.2, -0.1, -0.4, 0.35], dtype=F64).repeat(20000)
    clean = SoftBounds(up_slope=1.3, down_slope=0.8, w_max=0.6, w_min=-0.5, dw_min=0.02)
    torch.testing.assert_close(clean.apply_pulses(w0, counts), Device.apply_pulses(clean, w0, counts), rtol=0,
                               atol=1e-14)
    noisy = SoftBounds(up_slope=1.3, down_slope=0.8, w_max=0.6, w_min=-0.5, dw_min=0.02, cycle_noise=0.5,
                       cycle_noise_type="multiplicative")
    fast = noisy.apply_pulses(w0, counts, gen(1)).view(20000, 4)
    slow = Device.apply_pulses(noisy, w0, counts, gen(2)).view(20000, 4)
    se_mean = torch.sqrt((fast.var(0) + slow.var(0)) / 20000)
    assert torch.all((fast.mean(0) - slow.mean(0)).abs() <= 5 * se_mean)
    torch.testing.assert_close(fast.std(0), slow.std(0), rtol=0.05, atol=0)
    assert float(fast.max()) <= 0.6 and float(fast.min()) >= -0.5


def test_softbounds_closed_form_clamps_pulses_moving_away():
    """With multiplicative noise sigma = 2, eta = 1 + 2 xi < 0 happens often: a pulse then moves
    the state away from its target and can hit the opposite bound, which must clamp."""
    dev = SoftBounds(tau=0.1, dw_min=0.05, cycle_noise=2.0, cycle_noise_type="multiplicative")
    w0 = torch.full((5000,), -0.099, dtype=F64)
    out = dev.apply_pulses(w0, torch.full((5000,), 6.0, dtype=F64), gen(3))
    assert float(out.min()) >= -0.1 and float(out.max()) <= 0.1
    assert int((out == -0.1).sum()) > 0  # some elements were pushed onto the lower bound


def test_update_management_under_bl_saturation_follows_aihwkit():
    """k = lr max|x| max|d| / dw_min = 100 > BL = 31: aihwkit replaces max|d| by max|d| BL / k in
    the balance, so p_x = |x_i| / max|x| and p_d = min(1, k |d_j| / (BL max|d|)). Every element
    with k |d_j| / max|d| <= BL then still gets exactly lr |x_i d_j| / dw_min expected pulses."""
    eng = StochasticEngine(bit_length=31)
    x = torch.tensor([[1.0, 0.5, 0.1]], dtype=F64)
    d = torch.tensor([[1.0, 0.2, 0.05]], dtype=F64)
    lr, dw = 0.1, 1e-3  # k = 100
    bl, p_x, p_d = eng.train_probabilities(x, d, lr, dw)
    assert float(bl[0]) == 31
    torch.testing.assert_close(p_x[0], x[0], rtol=1e-12, atol=0)
    torch.testing.assert_close(p_d[0], torch.tensor([1.0, 100 * 0.2 / 31, 100 * 0.05 / 31], dtype=F64),
                               rtol=1e-12, atol=0)
    expected = bl[0] * p_d[0][:, None] * p_x[0][None, :]
    desired = lr * d[0][:, None] * x[0][None, :] / dw
    torch.testing.assert_close(expected[1:], desired[1:], rtol=1e-12, atol=0)  # rows below saturation
    torch.testing.assert_close(expected[0], 31 * x[0], rtol=1e-12, atol=0)  # saturated row: p_d = 1


def test_softbounds_sparse_pulse_list_matches_pulse_by_pulse():
    """Large array, few pulses (the noise is drawn per fired pulse and the factors multiplied in
    log space): untouched elements stay bit for bit, touched ones match the generic loop in
    mean and spread (5000 samples per count, 5 standard errors / 6 %), bounds hold with a
    noise large enough to push states away from their targets."""
    from analogtrain.devices import Device

    n = 80000
    counts = torch.zeros(n, dtype=F64)
    counts[0::16] = 6.0
    counts[1::16] = -4.0
    counts[2::16] = 2.0
    counts[3::16] = -9.0
    w0 = torch.linspace(-0.4, 0.5, n, dtype=F64)
    dev = SoftBounds(up_slope=1.3, down_slope=0.8, w_max=0.6, w_min=-0.5, dw_min=0.02, cycle_noise=0.5,
                     cycle_noise_type="multiplicative")
    fast = dev.apply_pulses(w0, counts, gen(1))
    slow = Device.apply_pulses(dev, w0, counts, gen(2))
    assert torch.equal(fast[4::16], w0[4::16]) and torch.equal(fast[15::16], w0[15::16])
    for k in range(4):
        a, b = (fast - w0)[k::16], (slow - w0)[k::16]
        se = math.sqrt((a.var() + b.var()) / a.numel())
        assert abs(float(a.mean() - b.mean())) <= 5 * se
        assert float(a.std()) == pytest.approx(float(b.std()), rel=0.06)
    wild = SoftBounds(tau=0.1, dw_min=0.05, cycle_noise=2.0, cycle_noise_type="multiplicative")
    w1 = torch.full((n,), -0.099, dtype=F64)
    c1 = torch.zeros(n, dtype=F64)
    c1[::10] = 6.0
    out = wild.apply_pulses(w1, c1, gen(3))
    assert float(out.min()) >= -0.1 and float(out.max()) <= 0.1
    assert int((out[::10] == -0.1).sum()) > 0  # pushed onto the lower bound and clamped there


@pytest.mark.parametrize("dense_limit", [0, 1 << 30], ids=["sparse", "dense"])
def test_bounds_hold_with_strong_multiplicative_noise(monkeypatch, dense_limit):
    """sigma_c = 2: many pulses move states away from their targets (eta < 0), also right at
    the opposite bound; per-element bounds must hold on both coincidence paths."""
    from analogtrain.pulses import stochastic

    monkeypatch.setattr(stochastic, "DENSE_LIMIT", dense_limit)
    dev = SoftBounds(tau=0.3, dw_min=0.03, cycle_noise=2.0, cycle_noise_type="multiplicative",
                     device_to_device={"w_max": 0.3, "w_min": 0.3, "dw_min": 0.3})
    s = dev.sample((16, 24), gen(0))
    eng = StochasticEngine()
    g = gen(1)
    w = s.w_min.clone()  # start on the lower bound and pulse upwards (and then down again)
    for sign in (-1.0, 1.0):
        for _ in range(20):
            x = torch.rand(3, 24, generator=g)
            eng.apply_outer(w, s, x, sign * torch.rand(3, 16, generator=g) * 0.05, 1.0, g)
            assert torch.all(w <= s.w_max) and torch.all(w >= s.w_min)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_expected_engine_affine_path_with_per_element_parameters(dtype):
    """Sampled soft bounds (per-element slopes, bounds and dw_min) take the two-interpolation
    path of Device.expected_plan: the case-wise rule per element to a few ulps, clamped at the
    bounds for steps that overshoot them, with counts |dW| / nominal dw_min and each element
    moved by its own steps (dW * dw_min_ij / nominal, the mean of a nominal-size pulse train)."""
    base = SoftBounds(up_slope=1.2, down_slope=0.8, w_max=0.6, w_min=-0.5, dw_min=1e-3,
                      device_to_device={"dw_min": 0.3, "up_slope": 0.1, "down_slope": 0.1, "w_max": 0.2, "w_min": 0.2})
    dev = base.sample((48, 40), gen(1), dtype=dtype)
    assert dev.expected_plan(torch.zeros(48, 40, dtype=dtype)) is not None
    g = gen(2)
    lo, hi = dev.bounds()
    w0 = lo + (hi - lo) * torch.rand(48, 40, generator=g, dtype=dtype)
    delta = torch.randn(48, 40, generator=g, dtype=dtype) * 0.02
    delta[0, :5] = 3.0  # far beyond the safe step: lands on the upper bound
    delta[1, :5] = -3.0
    w = w0.clone()
    stats = ExpectedEngine().apply(w, dev, delta)
    nominal = dev.dw_min.mean()
    moved = delta * (dev.dw_min / nominal)
    casewise = torch.where(delta >= 0, w0 + moved * dev.q_plus(w0), w0 + moved * dev.q_minus(w0))
    casewise = torch.minimum(torch.maximum(casewise, lo), hi)
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(w, casewise, rtol=0, atol=4 * eps)
    assert torch.equal(w[0, :5], hi[0, :5]) and torch.equal(w[1, :5], lo[1, :5])
    assert float(stats.up) == pytest.approx(float((delta.clamp_min(0) / nominal).sum()), rel=1e-5)
    assert float(stats.down) == pytest.approx(float(((-delta).clamp_min(0) / nominal).sum()), rel=1e-5)


def test_expected_engine_is_the_mean_of_the_stochastic_rank_update_with_dw_min_variation():
    """Pulse trains are sized with the nominal dw_min (what the periphery knows); each element
    steps by its own dw_min. The expected engine's update equals the mean of the stochastic
    engine's per element: over 600 trials, per-element z-scores of the difference have
    |mean| < 0.15 and max |z| < 5, and elements with twice the step move about twice as far."""
    from analogtrain.pulses import StochasticEngine

    dev = SoftBounds(tau=1.0, dw_min=1e-3, device_to_device={"dw_min": 0.4}).sample((12, 10), gen(5))
    g = gen(6)
    x = torch.rand(1, 10, generator=g) * 0.5 + 0.5
    d = torch.rand(1, 12, generator=g) * 0.5 + 0.5
    lr = 2e-3
    w_exp = torch.zeros(12, 10)
    ExpectedEngine().apply_outer(w_exp, dev, x, d, lr)
    engine = StochasticEngine(bit_length=31)
    trials = []
    for t in range(600):
        w = torch.zeros(12, 10)
        engine.apply_outer(w, dev, x, d, lr, generator=gen(100 + t))
        trials.append(w)
    trials = torch.stack(trials)
    mean, se = trials.mean(0), trials.std(0) / 600 ** 0.5
    z = (mean - w_exp) / se
    assert abs(float(z.mean())) < 0.15 and float(z.abs().max()) < 5
    ratio = w_exp / (-lr * d.T @ x)  # = dw_min_ij / nominal (q = 1 at w = 0)
    torch.testing.assert_close(ratio, dev.dw_min / dev.dw_min.mean(), rtol=1e-5, atol=0)
