"""Fit a device family to a measured pulse-response trace (aihwkit ``fit_measurements`` analogue).

A trace is the weight of one element (or the mean over a population) after each of N pulses of
known polarity s_k = +-1, starting from w_0. The model (2502.06309 Sec. 1) is

    w_{k+1} = clamp(w_k + s_k dw_min q_{s_k}(w_k))

and the fit is least squares over the chosen parameters (scale parameters in log space, so
they keep their sign), by L-BFGS on torch autograd through the family's own q_plus / q_minus:

- ``method="increments"`` (default): residuals dw_k - s_k dw_min q_{s_k}(w_k) with the
  measured w_k: unbiased under cycle-to-cycle noise (which enters each increment), vectorised;
  increments ending on the trace's minimum or maximum (possibly clipped by a bound) are left out;
- ``method="trajectory"``: residuals w_k - w_k(model) of the simulated noise-free trace from
  w_0: for traces with read (measurement) noise rather than pulse noise.

Parameters that the data cannot separate must not be fitted together (e.g. SoftBounds' dw_min
and both slopes: only dw_min * slope is observable; fit the slopes with dw_min fixed).
"""

from __future__ import annotations

import copy

import torch

from .base import Device


def pulse_response(device: Device, signs, w0: float = 0.0) -> torch.Tensor:
    """Noise-free trace (N,) of one element of ``device`` (scalar parameters) under ``signs``:
    the weight after each pulse, float64."""
    signs = torch.as_tensor(signs, dtype=torch.float64)
    return _simulate(device, signs, torch.as_tensor(float(w0), dtype=torch.float64))


def _simulate(device: Device, signs: torch.Tensor, w0: torch.Tensor) -> torch.Tensor:
    lo, hi = device.bounds()
    w = w0
    out = []
    for s in signs.tolist():
        q = device.q_plus(w) if s > 0 else device.q_minus(w)
        w = w + s * device.dw_min * q
        w = torch.minimum(torch.maximum(w, torch.as_tensor(lo, dtype=w.dtype)), torch.as_tensor(hi, dtype=w.dtype))
        out.append(w)
    return torch.stack(out)


def fit_device(device: Device, signs, trace, params: list[str] | None = None, w0: float | None = None,
               method: str = "increments", max_iter: int = 200) -> tuple[Device, dict]:
    """Least-squares fit of ``params`` (default: dw_min and the family's element_params; a
    family's shape fields listed in ``device.fit_fields``, scalars or node vectors such as
    Piecewise's q_plus_nodes, may be named too) of
    ``device`` (the starting point; other parameters stay fixed) to ``trace`` (N,) measured
    after pulses ``signs`` (N,) from ``w0`` (default: the first point is the start and the
    fit uses the rest). Returns (fitted device with scalar parameters, info) with info =
    {"rmse": residual RMS, "iterations": L-BFGS iterations, "params": {name: value}}."""
    if method not in ("increments", "trajectory"):
        raise ValueError(f"method must be 'increments' or 'trajectory', got {method!r}")
    signs = torch.as_tensor(signs, dtype=torch.float64).reshape(-1)
    trace = torch.as_tensor(trace, dtype=torch.float64).reshape(-1)
    if w0 is None:
        w0, trace, signs = float(trace[0]), trace[1:], signs[1:]
    if signs.numel() != trace.numel() or trace.numel() < 2:
        raise ValueError(f"signs and trace must have the same length >= 2, got {signs.numel()} and {trace.numel()}")
    if not bool(((signs == 1) | (signs == -1)).all()):
        raise ValueError("signs must be +1 (up) or -1 (down)")
    if not bool(torch.isfinite(trace).all()):
        raise ValueError("trace must be finite")
    fields = tuple(getattr(device, "fit_fields", ()))
    allowed = ("dw_min",) + tuple(device.element_params) + fields
    params = list(("dw_min",) + tuple(device.element_params)) if params is None else list(params)
    unknown = [p for p in params if p not in allowed]
    if unknown or not params:
        raise ValueError(f"params must be a non-empty list of {allowed}, got {params}")
    start, sizes = {}, []
    for name in params:
        value = getattr(device, name)
        if name in fields and isinstance(value, torch.Tensor) and value.dim() == 1:  # a node vector
            start[name] = value.detach().to(torch.float64).clone()
        elif isinstance(value, torch.Tensor) and value.numel() != 1:
            raise ValueError(f"fit_device needs a device with scalar parameters; {name} is per-element")
        else:
            start[name] = torch.tensor([float(value)], dtype=torch.float64)
        sizes.append(start[name].numel())
    scale_names = {"dw_min", *device.positive_params, *getattr(device, "fit_positive", ())}
    u = torch.zeros(sum(sizes), dtype=torch.float64, requires_grad=True)
    vector = {name for name in params if name in fields and isinstance(getattr(device, name), torch.Tensor)
              and getattr(device, name).dim() == 1}

    def values(u):
        out = {}
        for name, part in zip(params, u.split(sizes)):
            p0 = start[name]
            if name in scale_names:
                v = p0 * torch.exp(part)
            else:
                v = p0 + part * p0.abs().clamp_min(1e-3)
            out[name] = v if name in vector else v[0]
        return out

    w_prev = torch.cat([torch.tensor([float(w0)], dtype=torch.float64), trace[:-1]])
    w0_t = torch.tensor(float(w0), dtype=torch.float64)
    # increments that ended on the trace's extremes may be clipped by the bounds: left out
    free = (trace > trace.min()) & (trace < trace.max())
    signs_free = signs[free]

    def with_values(vals):
        """The device with ``vals``: element parameters through with_params, family fields
        (``device.fit_fields``, e.g. ExpStep's A_up) set on a copy."""
        dev = device.with_params(**{k: v for k, v in vals.items() if k not in fields})
        extra = {k: v for k, v in vals.items() if k in fields}
        if extra:
            dev = copy.copy(dev)
            for k, v in extra.items():
                setattr(dev, k, v)
        return dev

    def residuals(u):
        dev = with_values(values(u))
        if method == "trajectory":
            return _simulate(dev, signs, w0_t) - trace
        q = torch.where(signs_free > 0, dev.q_plus(w_prev[free]), dev.q_minus(w_prev[free]))
        return signs_free * dev.dw_min * q - (trace - w_prev)[free]

    norm = float((trace - w_prev).abs().mean()) if method == "increments" else float(trace.abs().mean())
    norm = max(norm, 1e-12)
    opt = torch.optim.LBFGS([u], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-12, tolerance_change=1e-15)

    def closure():
        opt.zero_grad()
        loss = (residuals(u) / norm).square().mean()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        fitted_values = {k: v.detach().clone() if k in vector else float(v) for k, v in values(u).items()}
        rmse = float(residuals(u).square().mean().sqrt())
    if not all(bool(torch.isfinite(torch.as_tensor(v)).all()) for v in fitted_values.values()):
        raise ValueError("the fit diverged (non-finite parameters); start from a closer device")
    iterations = opt.state[opt._params[0]].get("n_iter", 0)
    fitted = {k: v.tolist() if k in vector else v for k, v in fitted_values.items()}
    return with_values(fitted_values), {"rmse": rmse, "iterations": int(iterations), "params": fitted}
