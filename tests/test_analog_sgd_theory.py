"""Analog GD / SGD on a quadratic against the theory (2502.06309 Sec. 2 and App. J;
reference/residual_learning.md Sec. 2 and Sec. 6 tests 4-6).

Every test runs the real AnalogArray and pulse engines on n independent scalar problems at
once: a (1, n) array (or (n, 1) with rank-1 updates for the stochastic engine) whose element
i minimises f_i(w) = (L/2)(w - w*_i)^2 with the stochastic gradient g = L(w - w*) + eps,
eps ~ N(0, s^2).

Tolerance of the fixed-point tests (derived here, asserted below). For the expected engine

    E[w_{k+1} - w_k | w_k] = -lr h(w_k),   h = F T   (theory.analog_sgd_mean_drift),

so a stationary iterate has E_pi[h(w)] = 0 exactly. Expanding h around the long-run mean m,
0 = h(m) + h''(m) Var/2 + O(Var^2), so m = root(T) - (h''/(2 h')) Var + ..., with
Var = O(lr s^2 / L). The asserted tolerance is

    tol = 5 se + 2 |h''/(2 h')| Var + 2 dw_min (stochastic engine only)

with se the standard error of the mean over the n independent elements (time average per
element after burn-in), Var the measured stationary variance, a factor 2 of margin for the
higher orders, and 2 dw_min for the pulse granularity of the stochastic engine.
"""

import itertools
import math

import pytest
import torch

from analogtrain import AnalogArray
from analogtrain.devices import Exponential, Power, SoftBounds
from analogtrain.theory import analog_sgd_fixed_point, analog_sgd_mean_drift

L = 1.0  # curvature of the quadratic


def run_analog_sgd(device, w_star, noise_std, lr, n=2048, burn=None, steps=None, seed=0, init=None,
                   engine="expected"):
    """Analog SGD on n independent elements; returns (per-element time means, pooled variance, array).

    ``engine="expected"`` uses a (1, n) array and ``update(-lr g)``; any other engine uses an
    (n, 1) array and the rank-1 update ``update_outer(x=1, d=g, lr)`` (desired -lr g).
    """
    burn = int(5 / lr) if burn is None else burn
    steps = int(10 / lr) if steps is None else steps
    outer = engine != "expected"
    shape = (n, 1) if outer else (1, n)
    w0 = w_star if init is None else init
    w0 = torch.as_tensor(w0, dtype=torch.float64).expand(n).reshape(shape)
    arr = AnalogArray(shape, device, engine=engine, seed=seed, init=w0, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed + 1)
    w_star_t = torch.as_tensor(w_star, dtype=torch.float64).expand(n).reshape(shape)
    one = torch.ones(1, 1, dtype=torch.float64)
    total = torch.zeros(shape, dtype=torch.float64)
    total_sq = torch.zeros(shape, dtype=torch.float64)
    for k in range(burn + steps):
        w = arr.read()
        if k >= burn:
            total += w
            total_sq += w * w
        grad = L * (w - w_star_t)
        if noise_std > 0:
            grad = grad + noise_std * torch.randn(shape, generator=gen, dtype=torch.float64)
        if outer:
            arr.update_outer(one, grad.reshape(1, n), lr)
        else:
            arr.update(-lr * grad)
    means = (total / steps).reshape(-1)
    var = float((total_sq / steps).reshape(-1).mean() - (means**2).mean())
    return means, var, arr


def tolerance(device, w_star, noise_std, root, means, var, granularity=0.0):
    """5 se + 2 |h''/(2h')| Var + 2 granularity (module docstring)."""
    def h(w):
        return float(analog_sgd_mean_drift(torch.tensor(w, dtype=torch.float64), device, L, w_star, noise_std))

    d = 1e-3
    h1 = (h(root + d) - h(root - d)) / (2 * d)
    h2 = (h(root + d) - 2 * h(root) + h(root - d)) / d**2
    se = float(means.std()) / math.sqrt(means.numel())
    return 5 * se + 2 * abs(h2 / (2 * h1)) * var + 2 * granularity


DEVICES = {
    "softbounds_sp0": SoftBounds(tau=1.0, asymmetry=0.0),
    "power_gamma2": Power(gamma=2.0, tau=1.0),
    "exponential_gamma2": Exponential(gamma=2.0, tau=1.0),
}


# ---------------------------------------------------------------------------------- Analog GD
@pytest.mark.parametrize(
    "device",
    [SoftBounds(tau=1.0, asymmetry=0.3), Power(gamma=2.0, tau=1.0), Exponential(gamma=3.0, tau=1.0)],
    ids=["softbounds_sp0.3", "power", "exponential"],
)
def test_analog_gd_with_exact_gradients_converges_to_the_optimum(device):
    """Reference test 4 / Thm 6: no gradient noise, no bias, whatever the SP."""
    n = 1024
    w_star = torch.linspace(-0.6, 0.6, n, dtype=torch.float64)
    init = -w_star.flip(0)  # start on the other side of the SP
    arr = AnalogArray((1, n), device, seed=0, init=init[None], dtype=torch.float64)
    for _ in range(400):
        arr.update(-0.3 * L * (arr.read() - w_star[None]))
    # contraction per step >= 1 - 0.3 * min q on [-0.6, 0.6]; 400 steps take any start below 1e-9
    assert (arr.read()[0] - w_star).abs().max() < 1e-9


def test_analog_gd_with_pulses_converges_to_within_one_pulse():
    """Deterministic engine (ceil(|dw|/dw_min) pulses): the iterate ends within one pulse of w*."""
    device = SoftBounds(tau=1.0, asymmetry=0.3, dw_min=1e-3)
    n = 512
    w_star = torch.linspace(-0.6, 0.6, n, dtype=torch.float64)
    arr = AnalogArray((1, n), device, engine="deterministic", seed=0, init=0.0, dtype=torch.float64)
    for _ in range(300):
        arr.update(-0.3 * L * (arr.read() - w_star[None]))
    grid = torch.linspace(-0.7, 0.7, 1001, dtype=torch.float64)
    q_max = float(torch.maximum(device.q_plus(grid), device.q_minus(grid)).max())
    assert (arr.read()[0] - w_star).abs().max() <= device.dw_min * q_max


# --------------------------------------------------------------------------------- Analog SGD
@pytest.mark.parametrize("name", list(DEVICES))
def test_analog_sgd_settles_at_the_fixed_point(name):
    """Reference test 5: the long-run mean is the root of T, between w* and the SP (0), for any start."""
    device = DEVICES[name]
    w_star, s, lr, n = 0.5, 1.0, 0.02, 2048
    init = torch.where(torch.arange(n) % 2 == 0, torch.tensor(-0.8), torch.tensor(0.8))
    means, var, _ = run_analog_sgd(device, w_star, s, lr, n=n, init=init)
    root = analog_sgd_fixed_point(device, L, w_star, s)
    tol = tolerance(device, w_star, s, root, means, var)
    assert 0.0 < root < w_star - 0.2  # a large bias towards the SP that the test can resolve
    assert abs(float(means.mean()) - root) < tol
    # independent of the initialisation: both halves agree within 5 se of their difference
    even, odd = means[0::2], means[1::2]
    se_diff = math.sqrt(float(even.var()) / even.numel() + float(odd.var()) / odd.numel())
    assert abs(float(even.mean() - odd.mean())) < 5 * se_diff
    assert tol < 0.01


def test_analog_sgd_bias_does_not_shrink_with_the_learning_rate():
    device = DEVICES["softbounds_sp0"]
    w_star, s = 0.5, 1.0
    root = analog_sgd_fixed_point(device, L, w_star, s)
    biases = []
    for lr in (0.04, 0.02, 0.01):
        means, var, _ = run_analog_sgd(device, w_star, s, lr, n=2048)
        assert abs(float(means.mean()) - root) < tolerance(device, w_star, s, root, means, var)
        biases.append(float(means.mean()) - w_star)
    assert all(b < -0.2 for b in biases)  # root - w* = -0.225
    assert max(biases) - min(biases) < 0.01  # quartering lr changes the bias by < 5 %


def test_analog_sgd_bias_grows_with_the_noise():
    device = DEVICES["softbounds_sp0"]
    w_star = 0.5
    biases = []
    for s in (0.25, 0.5, 1.0, 2.0):
        lr = min(0.04, 0.02 / s**2)  # keeps Var = O(lr s^2) small
        means, var, _ = run_analog_sgd(device, w_star, s, lr, n=2048)
        root = analog_sgd_fixed_point(device, L, w_star, s)
        assert abs(float(means.mean()) - root) < tolerance(device, w_star, s, root, means, var)
        biases.append(w_star - float(means.mean()))
    assert all(b2 > b1 + 0.02 for b1, b2 in itertools.pairwise(biases))


@pytest.mark.parametrize("asymmetry", [-0.3, 0.0, 0.3])
def test_analog_sgd_is_pulled_towards_the_symmetric_point(asymmetry):
    """Reference test 6: with SP = c*tau != 0 the iterate moves from w* = 0 towards c*tau."""
    device = SoftBounds(tau=1.0, asymmetry=asymmetry)
    w_star, s, lr = 0.0, 1.0, 0.02
    means, var, _ = run_analog_sgd(device, w_star, s, lr, n=2048)
    root = analog_sgd_fixed_point(device, L, w_star, s)
    mean = float(means.mean())
    assert abs(mean - root) < tolerance(device, w_star, s, root, means, var)
    if asymmetry == 0:
        assert root == 0.0  # w* = SP: no bias
    else:
        sp = asymmetry * 1.0
        assert 0.3 * abs(sp) < abs(root) < abs(sp) and math.copysign(1, root) == math.copysign(1, sp)
        assert 0.3 * abs(sp) < abs(mean) < abs(sp) and math.copysign(1, mean) == math.copysign(1, sp)


def test_stochastic_pulse_trains_settle_at_the_same_fixed_point():
    """aihwkit-style stochastic rank-1 pulse trains: BL management gives
    BL = ceil(lr max|g| / dw_min) ~ 0.02 * 4.5 / 4e-3 ~ 23 < 31, so no probability is capped."""
    device = SoftBounds(tau=1.0, asymmetry=0.0, dw_min=4e-3)
    w_star, s, lr = 0.5, 1.0, 0.02
    means, var, arr = run_analog_sgd(device, w_star, s, lr, n=1024, engine="stochastic")
    root = analog_sgd_fixed_point(device, L, w_star, s)
    tol = tolerance(device, w_star, s, root, means, var, granularity=device.dw_min)
    assert abs(float(means.mean()) - root) < tol
    assert tol < 0.02 and arr.pulse_count["total"] > 0


def test_analog_sgd_bias_shrinks_as_the_dynamic_range_grows():
    """Reference test 5: the bias grows with 1/tau (penalty Sigma/(2 tau) w^2 for soft bounds)."""
    w_star, s, lr = 0.5, 1.0, 0.02
    biases = []
    for tau in (0.75, 1.5, 3.0):
        device = SoftBounds(tau=tau, asymmetry=0.0)
        means, var, _ = run_analog_sgd(device, w_star, s, lr)
        root = analog_sgd_fixed_point(device, L, w_star, s)
        assert abs(float(means.mean()) - root) < tolerance(device, w_star, s, root, means, var)
        biases.append(w_star - float(means.mean()))
    assert all(b1 > b2 + 0.02 for b1, b2 in itertools.pairwise(biases))
