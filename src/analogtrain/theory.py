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
