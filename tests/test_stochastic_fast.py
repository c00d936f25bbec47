"""Fast paths of the stochastic engine's update equal an exact pulse-by-pulse reference.

The engine draws the pulses (which elements, in which order) and their cycle-to-cycle factors;
these tests draw the same pulses and factors from the same generator state and apply them one
at a time, in order, with clamping to the per-element bounds after every pulse (the definition),
then require the engine's state to match to float64 rounding.
"""

from __future__ import annotations

import math

import pytest
import torch

from analogtrain.devices import Exponential, SoftBounds
from analogtrain.pulses import StochasticEngine, stochastic
from analogtrain.pulses.base import nominal_dw_min

F64 = torch.float64


@pytest.fixture(autouse=True)
def torch_engine(monkeypatch):
    """These tests check the torch implementation (same generator stream as the hand-rolled
    references); the compiled kernel draws its own stream and is checked in test_kernels.py."""
    monkeypatch.setenv("ANALOGTRAIN_KERNELS", "torch")


def gen(seed):
    return torch.Generator().manual_seed(seed)


def sampled_softbounds(shape, sigma, seed=0, dw_min=0.03, tau=0.3):
    """Soft bounds with per-element parameters (like the aihwkit preset) and multiplicative noise."""
    dev = SoftBounds(up_slope=1.0, down_slope=1.0, w_max=tau, w_min=-tau, dw_min=dw_min, cycle_noise=sigma,
                     cycle_noise_type="multiplicative",
                     device_to_device={"dw_min": 0.3, "w_max": 0.3, "w_min": 0.3, "up_down": 0.05})
    return dev.sample(shape, gen(seed), dtype=F64)


def sequential(w0, device, elem, target, f):
    """Pulse k: w[e_k] <- clamp(t_k + (w[e_k] - t_k) f_k, lo, hi), in list order (Python floats).
    Returns (state, number of pulses whose result was clamped)."""
    lo = device.bounds()[0].reshape(-1).tolist()
    hi = device.bounds()[1].reshape(-1).tolist()
    w = w0.reshape(-1).tolist()
    clamped = 0
    for e, t, fk in zip(elem.tolist(), target.tolist(), f.tolist()):
        v = t + (w[e] - t) * fk
        if v < lo[e] or v > hi[e]:
            clamped += 1
        w[e] = min(max(v, lo[e]), hi[e])
    return torch.tensor(w, dtype=F64).view_as(w0), clamped


def inside_state(device, g):
    """States spread over the middle 60 % of each element's range."""
    lo, hi = device.bounds()
    return lo + (hi - lo) * (0.2 + 0.6 * torch.rand(lo.shape, generator=g, dtype=F64))


def near_bounds_state(device, g):
    """States within a few pulses of the bounds (both sides), so that pulses moving away from
    their target can cross the opposite bound."""
    lo, hi = device.bounds()
    u = torch.rand(lo.shape, generator=g, dtype=F64)
    eps = torch.rand(lo.shape, generator=g, dtype=F64) * 2e-3
    return torch.where(u < 0.5, lo + eps, hi - eps)


def rank_update_inputs(n_b, n_in, n_out, seed):
    g = gen(seed)
    x = torch.rand(n_b, n_in, generator=g, dtype=F64) * 2 - 1
    d = torch.randn(n_b, n_out, generator=g, dtype=F64)
    return x, d


def assert_in_bounds(w, device):
    lo, hi = device.bounds()
    assert torch.all(w >= lo) and torch.all(w <= hi)


# ---------------------------------------------------------------- sparse coincidences (unit pulses)
@pytest.mark.parametrize("sigma, near", [(0.0, False), (0.3, False), (2.0, False), (2.0, True)],
                         ids=["noise-free", "aihwkit-noise", "strong-noise", "strong-noise-near-bounds"])
@pytest.mark.parametrize("slot_loop", [True, False], ids=["slot-loop", "closed-form"])
def test_unit_pulses_match_sequential_reference(monkeypatch, sigma, near, slot_loop):
    """Several slots per sample (elements hit several times), mixed polarities across samples:
    the slot loop and the closed-form composition equal the pulse-by-pulse reference."""
    if not slot_loop:
        monkeypatch.setattr(stochastic, "MAX_SLOT_LOOP", 0)
    n_b, n_in, n_out = 5, 7, 6
    dev = sampled_softbounds((n_out, n_in), sigma)
    eng = StochasticEngine(bit_length=31)
    x, d = rank_update_inputs(n_b, n_in, n_out, 3)
    lr = 0.6
    g = gen(4)
    w0 = near_bounds_state(dev, g) if near else inside_state(dev, g)
    clamped_total = 0
    for seed in range(6):
        x_bits, d_bits = eng.pulse_trains(x, d, lr, nominal_dw_min(dev), gen(seed))
        elem, down, sizes = stochastic._sparse_coincidences(x_bits, d_bits, x, d)
        assert len(sizes) > n_b  # several slots per sample
        assert int(torch.bincount(elem).max()) >= 4  # elements hit several times
        target, f = dev.unit_pulse_factors(down, elem, gen(100 + seed), F64)
        ref, clamped = sequential(w0, dev, elem, target, f)
        clamped_total += clamped
        w = w0.clone()
        stats = eng._apply_unit_events(w, dev, elem, down, sizes, gen(100 + seed), False)
        torch.testing.assert_close(w, ref, rtol=0, atol=1e-12)
        assert_in_bounds(w, dev)
        assert float(stats.up) == float((down == 0).sum()) and float(stats.down) == float(down.sum())
        if sigma > 1:
            assert bool((f > 1).any())  # pulses moving away from their target occurred
        w0 = ref
    if near:
        assert clamped_total > 0  # the reference did clamp: the test exercises the exact rule


# ---------------------------------------------------------------- dense counts (several pulses per event)
@pytest.mark.parametrize("sigma, near", [(0.0, False), (0.3, False), (2.0, False), (2.0, True)],
                         ids=["noise-free", "aihwkit-noise", "strong-noise", "strong-noise-near-bounds"])
@pytest.mark.parametrize("n_b", [1, 4])
def test_dense_counts_match_sequential_reference(sigma, near, n_b):
    """apply_events with counts up to 9 per sample and element and mixed signs equals the
    pulse-by-pulse reference with the same factors (pulses of a sample and element are
    consecutive, in the engine's order)."""
    shape = (5, 6)
    dev = sampled_softbounds(shape, sigma, seed=1)
    eng = StochasticEngine()
    g = gen(7)
    w0 = near_bounds_state(dev, g) if near else inside_state(dev, g)
    clamped_total = 0
    for seed in range(6):
        gc = gen(50 + seed)
        signed = torch.randint(-9, 10, (n_b,) + shape, generator=gc).to(F64)
        signed[torch.rand(signed.shape, generator=gc) < 0.3] = 0.0
        # the engine's pulse list: events (sample, element) in order, each repeated |count| times
        flat = signed.reshape(-1)
        pos = torch.nonzero(flat, as_tuple=True)[0]
        count = flat[pos]
        owner = torch.repeat_interleave(count.abs().long())
        p_elem = (pos % (shape[0] * shape[1]))[owner]
        p_down = (count < 0).long()[owner]
        target, f = dev.unit_pulse_factors(p_down, p_elem, gen(200 + seed), F64)
        ref, clamped = sequential(w0, dev, p_elem, target, f)
        clamped_total += clamped
        w = w0.clone()
        stats = eng.apply_events(w, dev, signed, gen(200 + seed))
        torch.testing.assert_close(w, ref, rtol=0, atol=1e-12)
        assert_in_bounds(w, dev)
        assert float(stats.up) == float(signed.clamp_min(0).sum())
        assert float(stats.down) == float((-signed).clamp_min(0).sum())
        w0 = ref
    if near:
        assert clamped_total > 0


def test_forced_away_factor_at_the_opposite_bound_is_clamped():
    """Hand-made factors: an up pulse with factor 1.5 on a state just above the lower bound
    (followed by ordinary up pulses) must stop on the lower bound, then move up from there;
    a state far from the bound with the same factors must not clamp (the closed form is used)."""
    dev = SoftBounds(tau=0.5, dw_min=0.05)  # scalar bounds +-0.5, r = 0.1 for up pulses
    lo = -0.5
    w_flat = torch.tensor([lo + 1e-3, 0.0], dtype=F64)
    f = torch.tensor([0.9, 1.5, 0.9, 0.9, 1.5, 0.9], dtype=F64)  # per pulse, 3 pulses per element
    target = torch.full((6,), 0.5, dtype=F64)
    elem = torch.tensor([0, 0, 0, 1, 1, 1])
    owner = torch.arange(6)
    lf = stochastic._log_factors(f)
    # each pulse a group of its own: sums of the later log factors of its element
    after = torch.tensor([lf[1] + lf[2], lf[2], 0.0, lf[4] + lf[5], lf[5], 0.0], dtype=F64)
    total = torch.tensor([lf[:3].sum()] * 3 + [lf[3:].sum()] * 3, dtype=F64)
    acc = torch.zeros(2, dtype=F64)
    w = w_flat.clone()
    stochastic._compose(w, dev, acc, elem, lf, target, after, total, owner, elem, f, lf, target)
    # by hand: element 0 hits the lower bound at the second pulse, element 1 never clamps
    w0 = 0.5 + (lo + 1e-3 - 0.5) * 0.9
    w0 = max(0.5 + (w0 - 0.5) * 1.5, lo)
    assert w0 == lo
    w0 = 0.5 + (w0 - 0.5) * 0.9
    w1 = 0.5 + (0.0 - 0.5) * (0.9 * 1.5 * 0.9)  # no clamp
    torch.testing.assert_close(w, torch.tensor([w0, w1], dtype=F64), rtol=0, atol=1e-15)


# ---------------------------------------------------------------- other devices keep their exact paths
@pytest.mark.parametrize("dense_limit", [0, 1 << 30], ids=["sparse", "dense"])
def test_additive_noise_goes_through_the_general_path(monkeypatch, dense_limit):
    """Additive cycle noise has no affine closed form: apply_outer equals the general
    pulse-by-pulse event path (same generator), and bounds hold."""
    monkeypatch.setattr(stochastic, "DENSE_LIMIT", dense_limit)
    dev = SoftBounds(tau=0.3, dw_min=0.03, cycle_noise=1.0, cycle_noise_type="additive",
                     device_to_device={"w_max": 0.3, "w_min": 0.3}).sample((6, 7), gen(0), dtype=F64)
    eng = StochasticEngine()
    x, d = rank_update_inputs(4, 7, 6, 9)
    w0 = inside_state(dev, gen(1))
    w = w0.clone()
    eng.apply_outer(w, dev, x, d, 0.5, gen(2))
    g = gen(2)
    x_bits, d_bits = eng.pulse_trains(x, d, 0.5, nominal_dw_min(dev), g)
    ref = w0.clone()
    if dense_limit:
        counts = torch.bmm(d_bits.transpose(1, 2).to(F64), x_bits.to(F64))
        signed = counts * -(torch.sign(d)[:, :, None] * torch.sign(x)[:, None, :])
        flat = signed.reshape(4, -1)
        sample_idx, elem = torch.nonzero(flat, as_tuple=True)
        sizes = [n for n in torch.bincount(sample_idx, minlength=4).tolist() if n]
        eng._apply_event_list(ref, dev, elem, flat[sample_idx, elem], g, False, sizes)
    else:
        elem, down, sizes = stochastic._sparse_coincidences(x_bits, d_bits, x, d)
        eng._apply_event_list(ref, dev, elem, 1.0 - 2.0 * down.to(F64), g, False, sizes, unit=True)
    assert torch.equal(w, ref)
    assert_in_bounds(w, dev)
    assert float((w - w0).abs().max()) > 0


@pytest.mark.parametrize("dense_limit", [0, 1 << 30], ids=["sparse", "dense"])
def test_non_affine_family_matches_hand_rolled_loop(monkeypatch, dense_limit):
    """A family without pulse_factors (Exponential) still applies samples and pulses in order."""
    from analogtrain.pulses.base import apply_pulse_counts

    monkeypatch.setattr(stochastic, "DENSE_LIMIT", dense_limit)
    dev = Exponential(gamma=2.0, tau=0.5, dw_min=2e-2)
    eng = StochasticEngine()
    x, d = rank_update_inputs(6, 5, 4, 11)
    w0 = (torch.rand(4, 5, generator=gen(2), dtype=F64) - 0.5) * 0.6
    w = w0.clone()
    eng.apply_outer(w, dev, x, d, 0.3, gen(5))
    signed = eng.coincidences(x, d, 0.3, 2e-2, gen(5))
    ref = w0.clone()
    for b in range(6):
        ref = apply_pulse_counts(ref, dev, signed[b], None)
    torch.testing.assert_close(w, ref, rtol=0, atol=1e-12)


# ---------------------------------------------------------------- reproducibility and statistics
@pytest.mark.parametrize("dense_limit", [0, 1 << 30], ids=["sparse", "dense"])
def test_same_seed_same_run(monkeypatch, dense_limit):
    monkeypatch.setattr(stochastic, "DENSE_LIMIT", dense_limit)
    dev = sampled_softbounds((12, 20), 0.3, dw_min=1e-2).to(dtype=torch.float32)

    def run(seed):
        eng = StochasticEngine()
        w = torch.zeros(12, 20)
        g, data = gen(seed), gen(77)
        for _ in range(6):
            x = torch.rand(8, 20, generator=data)
            d = torch.randn(8, 12, generator=data) * 0.3
            eng.apply_outer(w, dev, x, d, 0.05, g)
        return w

    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert_in_bounds(a, dev)


@pytest.mark.parametrize("dense_limit", [0, 1 << 30], ids=["sparse", "dense"])
def test_mean_update_matches_closed_form_expectation(monkeypatch, dense_limit):
    """One sample, T = 3000 trials from the same state on a sampled soft-bounds device with 30 %
    multiplicative noise. Per element the n ~ Bin(BL, p) pulses have independent factors with
    mean 1 - r, so E[w] = t + (w0 - t)(1 - p r)^BL. The mean over trials must agree within
    5 standard errors; it must also agree with the compact rule -lr x d q(w0) to within
    5 standard errors plus the O(BL p^2 r^2) curvature of the compounded pulses."""
    monkeypatch.setattr(stochastic, "DENSE_LIMIT", dense_limit)
    shape = (3, 4)
    dev = sampled_softbounds(shape, 0.3, seed=2, dw_min=5e-3, tau=0.6)
    eng = StochasticEngine(bit_length=31)
    x = torch.tensor([[0.8, 0.4, -0.6, 0.2]], dtype=F64)
    d = torch.tensor([[-0.5, 0.9, 0.3]], dtype=F64)
    lr = 0.02
    w0 = torch.tensor([[0.3], [-0.2], [0.1]], dtype=F64).expand(shape).clone()
    trials = 3000
    g = gen(21)
    finals = torch.empty((trials,) + shape, dtype=F64)
    for k in range(trials):
        w = w0.clone()
        eng.apply_outer(w, dev, x, d, lr, g)
        finals[k] = w
    mean, se = finals.mean(0), finals.std(0) / math.sqrt(trials)
    bl, p_x, p_d = eng.train_probabilities(x, d, lr, nominal_dw_min(dev))
    p = p_d[0][:, None] * p_x[0][None, :]
    up = (-d[0][:, None] * x[0][None, :]) > 0
    target = torch.where(up, dev.w_max, dev.w_min)
    r = torch.where(up, dev.dw_min * dev.up_slope / dev.w_max, dev.dw_min * dev.down_slope / -dev.w_min)
    exact = target + (w0 - target) * (1 - p * r) ** bl[0]
    assert torch.all((mean - exact).abs() <= 5 * se + 1e-15), (mean - exact) / se
    # compact rule with the device's own dw_min per element: BL p dw_min q(w0) = expected pulses x step
    compact = w0 + bl[0] * p * r * (target - w0)
    curvature = bl[0] * (p * r) ** 2 * (target - w0).abs()
    assert torch.all((mean - compact).abs() <= 5 * se + 2 * curvature)


@pytest.mark.parametrize("update_management", [True, False])
@pytest.mark.parametrize("bl_management", [True, False])
def test_per_sample_rule_on_floats_equals_the_tensor_rule(monkeypatch, update_management, bl_management):
    """Small batches run the BL / probability rule on Python floats, large ones on (B,) tensors:
    the same bit lengths and probabilities to float32 rounding (saturated, unsaturated and zero rows)."""
    eng = StochasticEngine(update_management=update_management, bl_management=bl_management)
    g = gen(21)
    x = torch.randn(40, 30, generator=g)
    d = torch.randn(40, 12, generator=g) * torch.logspace(-4, 0, 40)[:, None]
    x[3] = 0.0
    small = eng.train_probabilities(x.clone(), d.clone(), 0.1, 1e-3)
    monkeypatch.setattr(stochastic, "SCALAR_RULE_MAX_BATCH", 0)
    large = eng.train_probabilities(x.clone(), d.clone(), 0.1, 1e-3)
    assert torch.equal(small[0], large[0])
    if bl_management:  # both regimes present: BL 1 (small k) and saturated at 31
        assert 1.0 in small[0].tolist() and 31.0 in small[0].tolist()
    else:
        assert set(small[0].tolist()) == {31.0}
    for a, b in zip(small[1:], large[1:]):
        torch.testing.assert_close(a, b, rtol=4e-7, atol=1e-7)


@pytest.mark.parametrize("cycle_noise", [0.0, 0.3])
def test_soft_bounds_unit_pulse_factors_equal_the_generic_definition(cycle_noise):
    """SoftBounds.unit_pulse_factors (1-D table columns) gives the same targets and factors as
    the generic Device.unit_pulse_factors (pulse_factors with unit counts), same draws."""
    from analogtrain.devices.base import Device

    base = SoftBounds(up_slope=1.1, down_slope=0.9, w_max=0.6, w_min=-0.5, dw_min=0.01, cycle_noise=cycle_noise, cycle_noise_type="multiplicative",
                      device_to_device={"dw_min": 0.3, "w_max": 0.2, "w_min": 0.2})
    dev = base.sample((7, 9), gen(5), dtype=F64)
    g = gen(6)
    elem = torch.randint(0, 63, (500,), generator=g)
    down = torch.randint(0, 2, (500,), generator=g)
    fast = dev.unit_pulse_factors(down, elem, gen(7), F64)
    generic = Device.unit_pulse_factors(dev, down, elem, gen(7), F64)
    torch.testing.assert_close(fast[0], generic[0], rtol=0, atol=0)
    torch.testing.assert_close(fast[1], generic[1], rtol=0, atol=1e-15)
    assert torch.equal(fast[0], torch.where(down.bool(), dev.w_min.reshape(-1)[elem], dev.w_max.reshape(-1)[elem]))
    assert SoftBounds(tau=0.6, dw_min=0.01, cycle_noise=0.1, cycle_noise_type="additive").sample(
        (2, 2), gen(8), dtype=F64).unit_pulse_factors(down[:3] * 0, elem[:3] % 4, gen(9), F64) is None
