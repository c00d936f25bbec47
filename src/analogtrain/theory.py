"""Closed-form and numeric predictions used by tests and reports.

Analog SGD (2502.06309 Sec. 2, reference test 5): on f = (L/2)(w - w*)^2 with additive
Gaussian gradient noise eps ~ N(0, s^2), the mean stationarity map is

    T(w) = L (w - w*) + E|L (w - w*) + eps| * G(w) / F(w),

and the long-run mean of w sits at its root, between w* and the symmetric point.
"""

from __future__ import annotations

import math

import torch


def expected_abs_gaussian(mean: float, std: float) -> float:
    """E|mean + eps| for eps ~ N(0, std^2) (folded normal mean)."""
    if std == 0:
        return abs(mean)
    z = mean / std
    return std * math.sqrt(2 / math.pi) * math.exp(-0.5 * z * z) + mean * math.erf(z / math.sqrt(2))


def analog_sgd_stationarity(w: float, device, curvature: float, w_star: float, noise_std: float) -> float:
    """T(w) = L(w - w*) + E|L(w - w*) + eps| * G(w)/F(w) for a scalar device."""
    g = curvature * (w - w_star)
    wt = torch.tensor(float(w), dtype=torch.float64)
    ratio = float(device.G(wt) / device.F(wt))
    return g + expected_abs_gaussian(g, noise_std) * ratio


def analog_sgd_fixed_point(device, curvature: float, w_star: float, noise_std: float, tol: float = 1e-12) -> float:
    """Root of T(w) between w* and the device's SP (bisection), reference test 5."""
    sp = float(device.symmetric_point())
    a, b = (w_star, sp) if w_star <= sp else (sp, w_star)
    if a == b:
        return a
    ta = analog_sgd_stationarity(a, device, curvature, w_star, noise_std)
    tb = analog_sgd_stationarity(b, device, curvature, w_star, noise_std)
    if ta == 0:
        return a
    if tb == 0:
        return b
    if ta * tb > 0:
        raise ValueError("T(w) does not change sign between w* and the SP")
    while b - a > tol:
        m = 0.5 * (a + b)
        tm = analog_sgd_stationarity(m, device, curvature, w_star, noise_std)
        if (ta < 0) == (tm < 0):
            a, ta = m, tm
        else:
            b = m
    return 0.5 * (a + b)


def analog_sgd_mean_drift(w: torch.Tensor, device, curvature: float, w_star, noise_std: float) -> torch.Tensor:
    """F(w) * T(w) elementwise, so that E[w_{k+1} - w_k | w_k] = -lr * F(w_k) T(w_k) exactly
    for the expected engine (2502.06309 eq. 2 with g = L(w - w*) + eps, eps ~ N(0, s^2)):

        E[-lr g F - lr |g| G] = -lr (F E[g] + G E|g|) = -lr F T(w).

    A stationary Analog SGD iterate therefore satisfies E_pi[F(w) T(w)] = 0; its mean sits at
    the root of T up to O(Var(w)) = O(lr s^2 / L).
    """
    w = torch.as_tensor(w)
    g = curvature * (w - torch.as_tensor(w_star, dtype=w.dtype, device=w.device))
    if noise_std > 0:
        z = g / noise_std
        abs_g = noise_std * math.sqrt(2 / math.pi) * torch.exp(-0.5 * z * z) + g * torch.erf(z / math.sqrt(2))
    else:
        abs_g = g.abs()
    return device.F(w) * g + abs_g * device.G(w)


# ---------------------------------------------------------------------------------------------
# Zero-shifting (ZS) pulse complexity, 2602.21321 Sec. 2 (Theorems 2.2 and C.2) and the
# small-step predictions of reference/sp_tracking.md Sec. 2.5. Functions take a (sampled or
# scalar) device and return per-element tensors (0-dim for a scalar device).
# ---------------------------------------------------------------------------------------------


def _as64(v) -> torch.Tensor:
    return torch.as_tensor(v, dtype=torch.float64)


def _device_dw_min(device) -> torch.Tensor:
    return _as64(device.dw_min)


def _scan(device, lo: torch.Tensor, hi: torch.Tensor, points: int) -> torch.Tensor:
    """States lo + t (hi - lo), t in [0, 1], stacked on a leading axis of size ``points``."""
    t = torch.linspace(0.0, 1.0, points, dtype=torch.float64, device=lo.device).view(-1, *([1] * lo.dim()))
    return lo + t * (hi - lo)


def zs_slope_at_sp(device, h: float = 1e-6) -> torch.Tensor:
    """g' = G'(w_sp), the slope of the asymmetric component at the SP (central difference).

    For soft bounds q_+ = a_+(1 - w/w_max), q_- = a_-(1 - w/w_min):
    g' = (a_+/w_max - a_-/w_min) / 2 (reference/sp_tracking.md Sec. 2.5).
    """
    sp = _as64(device.symmetric_point())
    return (device.G(sp + h) - device.G(sp - h)) / (2 * h)


def zs_time_constant(device) -> torch.Tensor:
    """Pulses for the mean ZS error to shrink by e: tau = 1 / (dw_min g') (Sec. 2.5, derived).

    The linearised mean recursion is e_{n+1} = (1 - dw_min g') e_n, exact for soft bounds.
    """
    return 1.0 / (_device_dw_min(device) * zs_slope_at_sp(device))


def zs_mean_error(device, initial_error, pulses: int) -> torch.Tensor:
    """Predicted mean error of stochastic ZS after n pulses: e_0 (1 - dw_min g')^n (Sec. 2.5)."""
    return _as64(initial_error) * (1.0 - _device_dw_min(device) * zs_slope_at_sp(device)) ** int(pulses)


def zs_stationary_mse(device) -> torch.Tensor:
    """Stationary per-element MSE of stochastic ZS, dw_min F(w_sp)^2 / (2 g') (Sec. 2.5, derived).

    Additive cycle noise sigma_c adds dw_min sigma_c^2 / (2 g') (same recursion, extra variance);
    multiplicative noise multiplies the F^2 term by (1 + sigma_c^2).
    """
    sp = _as64(device.symmetric_point())
    var = _with_cycle_noise(device, device.F(sp) ** 2)
    return _device_dw_min(device) * var / (2.0 * zs_slope_at_sp(device))


def zs_pulses_for_mean_error(device, relative_error: float) -> torch.Tensor:
    """Pulses n with (1 - dw_min g')^n = relative_error: the N for a given relative mean error
    of stochastic ZS (Fig. 1b prediction, ~ log(1/rel) / (dw_min g'), slope -1 in dw_min)."""
    if not 0 < relative_error < 1:
        raise ValueError(f"relative_error must lie in (0, 1), got {relative_error!r}")
    rate = _device_dw_min(device) * zs_slope_at_sp(device)
    return math.log(relative_error) / torch.log1p(-rate)


def zs_constants(device, w0, margin: float = 0.0, points: int = 513) -> dict[str, torch.Tensor]:
    """Per-element constants of Theorems 2.2 / C.2 on the interval visited by ZS.

    The interval is [min(w0, SP) - margin, max(w0, SP) + margin] clamped to the bounds;
    returns ``phi0`` = int_SP^w0 G (the potential phi(W_0) - phi*), ``L_q`` = max G',
    ``mu_q`` = min G' and ``q_max`` = max(q_+, q_-) over that interval.
    """
    sp = _as64(device.symmetric_point())
    w0 = _as64(w0)
    w0 = w0.to(sp.device)
    sp, w0 = torch.broadcast_tensors(sp, w0)
    lo_b, hi_b = device.bounds()
    lo = torch.minimum(w0, sp) - margin
    hi = torch.maximum(w0, sp) + margin
    lo = torch.maximum(lo, _as64(lo_b).to(sp.device))
    hi = torch.minimum(hi, _as64(hi_b).to(sp.device))
    grid = _scan(device, lo, hi, points)
    g = device.G(grid)
    dg = (g[1:] - g[:-1]) / ((hi - lo) / (points - 1)).clamp_min(1e-300)
    q_max = torch.maximum(device.q_plus(grid), device.q_minus(grid)).amax(dim=0)
    path = _scan(device, sp, w0, points)
    phi0 = torch.trapezoid(device.G(path), dx=1.0 / (points - 1), dim=0) * (w0 - sp)
    return {"phi0": phi0, "L_q": dg.amax(dim=0), "mu_q": dg.amin(dim=0), "q_max": q_max}


def zs_noise_second_moment(device, q_max: torch.Tensor) -> torch.Tensor:
    """Bound on E|s F - G + noise|^2 per pulse in units of dw_min^2: q_max^2 (+ cycle noise)."""
    return _with_cycle_noise(device, q_max**2)


def _with_cycle_noise(device, second_moment):
    """A response's second moment per pulse with cycle-to-cycle noise: + sigma_c^2 (additive)
    or * (1 + sigma_c^2) (multiplicative)."""
    if device.cycle_noise <= 0:
        return second_moment
    if device.cycle_noise_type == "additive":
        return second_moment + device.cycle_noise**2
    return second_moment * (1.0 + device.cycle_noise**2)


def zs_average_iterate_bound(device, w0, pulses: int, margin: float = 0.0) -> torch.Tensor:
    """Theorem 2.2 (eq. 25), per element: (1/N) sum_n E G(W_n)^2
    <= (phi(W_0) - phi*) / (N dw_min) + (L_q / 2) dw_min q_max^2.

    q_max^2 is replaced by the per-pulse second moment including cycle-to-cycle noise (the
    proof's bound on E|dW|^2; equal to q_max^2 for a noise-free device). ``margin`` widens
    the interval over which L_q and q_max are taken (e.g. a few stationary RMS errors).
    """
    if int(pulses) < 1:
        raise ValueError(f"pulses must be >= 1, got {pulses!r}")
    c = zs_constants(device, w0, margin)
    dw = _device_dw_min(device)
    return c["phi0"] / (int(pulses) * dw) + 0.5 * c["L_q"] * dw * zs_noise_second_moment(device, c["q_max"])


def zs_last_iterate_bound(device, w0, pulses: int, margin: float = 0.0) -> torch.Tensor:
    """Theorem C.2 (eq. 28), per element, monotone devices:
    E (W_N - SP)^2 <= (1 - 2 dw_min mu_q)^N (W_0 - SP)^2 + dw_min q_max^2 / mu_q."""
    c = zs_constants(device, w0, margin)
    dw = _device_dw_min(device)
    sp = _as64(device.symmetric_point())
    e0 = (_as64(w0).to(sp.device) - sp) ** 2
    return (1.0 - 2.0 * dw * c["mu_q"]) ** int(pulses) * e0 + dw * zs_noise_second_moment(device, c["q_max"]) / c["mu_q"]


def zs_last_iterate_pulses(device, w0, target_mse: float, margin: float = 0.0) -> torch.Tensor:
    """Theorem C.2 pulse count: N >= log(2 (W_0 - SP)^2 / delta) / (2 mu_q dw_min) for
    E (W_N - SP)^2 <= delta, valid for delta >= the floor 2 q_max^2 dw_min / mu_q."""
    c = zs_constants(device, w0, margin)
    dw = _device_dw_min(device)
    sp = _as64(device.symmetric_point())
    e0 = (_as64(w0).to(sp.device) - sp) ** 2
    return torch.log(2.0 * e0 / target_mse).clamp_min(0.0) / (2.0 * c["mu_q"] * dw)


def zs_error_floor(device, w0, margin: float = 0.0) -> torch.Tensor:
    """Theorem C.2 minimum achievable MSE: delta_min = 2 q_max^2 dw_min / mu_q."""
    c = zs_constants(device, w0, margin)
    return 2.0 * zs_noise_second_moment(device, c["q_max"]) * _device_dw_min(device) / c["mu_q"]


def ema_attenuation(eta: float) -> float:
    """Lemma 3.10 (2602.21321): the EMA Q <- (1 - eta) Q + eta P is the low-pass filter
    H(z) = eta / (1 - (1 - eta) z^-1); an alternating input (omega = pi) is attenuated by
    |H(-1)| = eta / (2 - eta), a constant one passes with |H(1)| = 1."""
    if not 0 < eta <= 1:
        raise ValueError(f"eta must lie in (0, 1], got {eta!r}")
    return eta / (2.0 - eta)
