"""Response functions and the device model (2502.06309 Sec. 1, App. C eq. 26).

One pulse of polarity s on an element with state w gives

    w <- w + dw_min * (q_plus(w)  + sigma_c * xi)     (s = +1)
    w <- w - dw_min * (q_minus(w) + sigma_c * xi)     (s = -1)

F = (q_minus + q_plus) / 2 is the symmetric and G = (q_minus - q_plus) / 2 the asymmetric
component; the symmetric point (SP) is where G = 0. A family only implements ``q_plus``,
``q_minus`` and ``bounds``; everything else follows here.

Per-element (device-to-device) parameters: every family lists the names of its parameters
that may vary per element in ``element_params``. ``sample(shape, generator)`` returns a
copy of the device whose parameters are tensors of that shape, drawn once from the
``device_to_device`` spreads (log-normal for positive parameters, Gaussian for signed ones).
"""

from __future__ import annotations

import copy
import math
import operator
from collections.abc import Mapping

import torch

Number = float | torch.Tensor
#: how device-to-device factors of positive (scale) parameters are drawn, see :meth:`Device.spread_factor`
D2D_DISTRIBUTIONS = ("lognormal", "aihwkit")
_MISSING = object()


def _check_positive(name: str, value: Number) -> None:
    bad = (value <= 0).any().item() if isinstance(value, torch.Tensor) else not value > 0
    if bad:
        raise ValueError(f"{name} must be > 0 (allowed range: (0, inf)), got {value!r}")


def _check_range(name: str, value: float, lo: float, hi: float, *, lo_open=False, hi_open=False) -> None:
    ok_lo = value > lo if lo_open else value >= lo
    ok_hi = value < hi if hi_open else value <= hi
    if not (ok_lo and ok_hi and math.isfinite(value) or (hi == math.inf and ok_lo)):
        lb = "(" if lo_open else "["
        rb = ")" if hi_open else "]"
        raise ValueError(f"{name} must lie in {lb}{lo}, {hi}{rb}, got {value!r}")


class Device:
    """Base class of all devices: response functions plus pulse physics.

    Parameters common to every family:

    - ``dw_min``: response granularity, the step of one pulse at unit response; or
      ``n_states``: number of states across the bounds, dw_min = (hi - lo) / n_states.
    - ``cycle_noise``: cycle-to-cycle std sigma_c per pulse. ``"additive"`` (the papers',
      w += s*dw_min*(q + sigma_c*xi)) or ``"multiplicative"`` (aihwkit's mult_noise,
      w += s*dw_min*q*(1 + sigma_c*xi)).
    - ``write_noise``: std, in units of dw_min, of a fresh Gaussian added to the visible
      (read) value of an element each time it is written (aihwkit's write_noise_std); the
      hidden state that the response functions act on is unaffected.
    - ``device_to_device``: ``{param_name: std}`` spreads sampled once per element.
      Scale parameters get a factor (:meth:`spread_factor`), signed ones an additive std*xi.
    - ``device_to_device_distribution``: ``"lognormal"`` (default): factor exp(std*xi);
      ``"aihwkit"``: factor 1 + std*xi with aihwkit's enforce_consistency rule (the parameter
      keeps the sign of its nominal value: |1 + std*xi| for steps and bounds), as aihwkit's
      PulsedDevice draws dw_min_dtod, w_max_dtod and w_min_dtod.
    """

    #: names of per-element parameters of the family (besides ``dw_min``)
    element_params: tuple[str, ...] = ()
    #: which of them are strictly positive (log-normal spreads)
    positive_params: tuple[str, ...] = ()
    #: human-readable family name
    family: str = "device"

    def __init__(
        self,
        *,
        dw_min: float | None = None,
        n_states: float | None = None,
        cycle_noise: float = 0.0,
        cycle_noise_type: str = "additive",
        write_noise: float = 0.0,
        device_to_device: Mapping[str, float] | None = None,
        device_to_device_distribution: str = "lognormal",
    ) -> None:
        if dw_min is not None and n_states is not None:
            raise ValueError("give either dw_min or n_states, not both")
        if n_states is not None:
            _check_positive("n_states", n_states)
            lo, hi = self.bounds()
            dw_min = (float(hi) - float(lo)) / float(n_states)
            if not math.isfinite(dw_min):
                raise ValueError("n_states needs finite bounds; give dw_min instead")
        if dw_min is None:
            dw_min = 1e-3
        _check_positive("dw_min", dw_min)
        if cycle_noise < 0:
            raise ValueError(f"cycle_noise must be >= 0 (allowed range: [0, inf)), got {cycle_noise!r}")
        if cycle_noise_type not in ("additive", "multiplicative"):
            raise ValueError(
                f"cycle_noise_type must be 'additive' or 'multiplicative', got {cycle_noise_type!r}"
            )
        if write_noise < 0:
            raise ValueError(f"write_noise must be >= 0 (allowed range: [0, inf)), got {write_noise!r}")
        self.dw_min = dw_min
        self.write_noise = float(write_noise)
        self.cycle_noise = float(cycle_noise)
        self.cycle_noise_type = cycle_noise_type
        d2d = dict(device_to_device or {})
        allowed = ("dw_min",) + self.element_params
        for name, std in d2d.items():
            if name not in allowed:
                raise ValueError(
                    f"device_to_device key {name!r} is not a per-element parameter of "
                    f"{type(self).__name__}; allowed: {allowed}"
                )
            if std < 0:
                raise ValueError(f"device_to_device[{name!r}] must be >= 0, got {std!r}")
        self.device_to_device = d2d
        if device_to_device_distribution not in D2D_DISTRIBUTIONS:
            raise ValueError(f"device_to_device_distribution must be one of {D2D_DISTRIBUTIONS}, "
                             f"got {device_to_device_distribution!r}")
        self.device_to_device_distribution = device_to_device_distribution

    # ------------------------------------------------------------------ response functions
    def q_plus(self, w: torch.Tensor) -> torch.Tensor:
        """Response to an up pulse at state w (positive inside the bounds)."""
        raise NotImplementedError(f"{type(self).__name__} must implement q_plus")

    def q_minus(self, w: torch.Tensor) -> torch.Tensor:
        """Response to a down pulse at state w (positive inside the bounds)."""
        raise NotImplementedError(f"{type(self).__name__} must implement q_minus")

    def bounds(self) -> tuple[Number, Number]:
        """(lower, upper) limits of the state; may be per-element tensors."""
        return (-math.inf, math.inf)

    def F(self, w: torch.Tensor) -> torch.Tensor:
        """Symmetric component F = (q_minus + q_plus) / 2 (2502.06309 eq. 4)."""
        return 0.5 * (self.q_minus(w) + self.q_plus(w))

    def G(self, w: torch.Tensor) -> torch.Tensor:
        """Asymmetric component G = (q_minus - q_plus) / 2 (2502.06309 eq. 4)."""
        return 0.5 * (self.q_minus(w) - self.q_plus(w))

    def ratio(self, w: torch.Tensor) -> torch.Tensor:
        """Asymmetry ratio R = G / F (2502.06309 Sec. 1.5)."""
        return self.G(w) / self.F(w)

    def saturation(self, w: torch.Tensor) -> torch.Tensor:
        """Saturation M = F^2 - G^2 = q_plus * q_minus."""
        return self.q_plus(w) * self.q_minus(w)

    def accumulated_asymmetry(self, w: torch.Tensor, steps: int = 256) -> torch.Tensor:
        """R_c(w) = integral of R from the SP to w (trapezoid rule, elementwise)."""
        sp = self.symmetric_point()
        w = torch.as_tensor(w, dtype=torch.float64)
        sp = torch.as_tensor(sp, dtype=torch.float64)
        t = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64).view(-1, *([1] * w.dim()))
        pts = sp + t * (w - sp)
        vals = self.ratio(pts)
        return torch.trapezoid(vals, dx=1.0 / steps, dim=0) * (w - sp)

    # ------------------------------------------------------------------ pulse physics
    def clamp(self, w: torch.Tensor) -> torch.Tensor:
        """w clamped into [lo, hi] (per-element tensors or scalars); a new tensor."""
        lo, hi = self.bounds()
        if isinstance(lo, torch.Tensor) or isinstance(hi, torch.Tensor):
            lo_t = torch.as_tensor(lo, dtype=w.dtype, device=w.device)
            hi_t = torch.as_tensor(hi, dtype=w.dtype, device=w.device)
            return torch.clamp(w, lo_t, hi_t)
        if math.isinf(lo) and math.isinf(hi):
            return w.clone()
        return w.clamp(min=float(lo), max=float(hi))

    def clamp_(self, w: torch.Tensor) -> torch.Tensor:
        """Clamp w into [lo, hi] in place; returns w."""
        lo, hi = self.bounds()
        if isinstance(lo, torch.Tensor) or isinstance(hi, torch.Tensor):
            lo_t = torch.as_tensor(lo, dtype=w.dtype, device=w.device)
            hi_t = torch.as_tensor(hi, dtype=w.dtype, device=w.device)
            return torch.clamp(w, lo_t, hi_t, out=w)
        if math.isinf(lo) and math.isinf(hi):
            return w
        return w.clamp_(min=float(lo), max=float(hi))

    def safe_step(self) -> float | None:
        """Largest |dW| for which the compact update w + dW q(w) provably stays inside the bounds
        from any state inside them, or None when unknown (engines then clamp)."""
        return None

    def inverse_dw_min(self):
        """1 / dw_min (cached for per-element tensors)."""
        if isinstance(self.dw_min, torch.Tensor):
            return self.derived("inverse_dw_min", lambda: 1.0 / self.dw_min)
        return 1.0 / self.dw_min

    def response_into(self, w: torch.Tensor, up: bool, out: torch.Tensor) -> torch.Tensor:
        """Write q_plus(w) (``up``) or q_minus(w) into ``out`` (families may avoid the temporary)."""
        return out.copy_(self.q_plus(w) if up else self.q_minus(w))

    def expected_plan(self, w: torch.Tensor):
        """Optional fast form of the compact update for families whose responses are affine
        towards their bounds (soft bounds). Returns None (the expected engine then evaluates
        q_plus and q_minus) or ``(rates, count_weights, w_max, w_min)``: with
        R = clamp(dW * rates, min=0) of shape (2, *w.shape) (row 0 > 0 only where dW > 0,
        row 1 only where dW < 0) the update is w.lerp_(w_max, R[0]).lerp_(w_min, R[1]), and
        the up / down pulse counts are sum(R[k] * count_weights[k])."""
        return

    def q_signed(self, w: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
        """q_plus(w) where sign > 0, q_minus(w) elsewhere."""
        return torch.where(sign > 0, self.q_plus(w), self.q_minus(w))

    def apply_pulse(self, w: torch.Tensor, sign: torch.Tensor, generator: torch.Generator | None = None):
        """One pulse of polarity ``sign`` (+1/-1, elementwise) on every element of ``w``:

        w <- w + sign * dw_min * (q_sign(w) + sigma_c * xi)   (2502.06309 App. C eq. 26),
        or q_sign(w) * (1 + sigma_c * xi) for multiplicative cycle noise; then clamped to the
        bounds. Returns the new state.
        """
        q = self.q_signed(w, sign)
        if self.cycle_noise > 0:
            xi = torch.randn(w.shape, generator=generator, device=w.device, dtype=w.dtype)
            if self.cycle_noise_type == "additive":
                q = q + self.cycle_noise * xi
            else:
                q = q * (1.0 + self.cycle_noise * xi)
        return self.clamp(w + sign * self.dw_min * q)

    def apply_pulses(self, w: torch.Tensor, counts: torch.Tensor, generator: torch.Generator | None = None):
        """|counts| pulses of polarity sign(counts) on each element, one pulse at a time
        (each with the response at the current state and its own noise). Returns the new state;
        elements with count 0 are unchanged. Families may override with an exact closed form.
        """
        n = counts.abs()
        max_n = int(n.max().item()) if n.numel() else 0
        if max_n == 0:
            return w
        sign = torch.sign(counts).to(w.dtype)
        for t in range(max_n):
            w = torch.where(n > t, self.apply_pulse(w, sign, generator), w)
        return w

    def pulse_factors(self, counts: torch.Tensor, generator: torch.Generator | None = None,
                      index: torch.Tensor | None = None, max_count: int | None = None):
        """Closed form of |counts| same-sign pulses for families with affine responses.

        Returns ``(target, factors)`` such that pulse k maps the state as
        w <- clamp(target + (w - target) * factors[..., k]), with ``target`` and ``factors``
        (shape counts.shape + (K,), 1 beyond an element's count) independent of the state; a
        factor in [0, 1] moves the state towards ``target`` (so no clamping is needed then).
        None when the family has no such form (then pulses are applied one by one with
        :meth:`apply_pulses`). With ``index`` (flat element indices) the per-element
        parameters are taken at those elements and ``counts`` is 1-D, one entry per index.
        """
        return

    def unit_pulse_factors(self, down: torch.Tensor, index: torch.Tensor,
                           generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32):
        """(target, factor) of one pulse on each flat element ``index``, both 1-D of ``dtype``:
        :meth:`pulse_factors` with unit counts (``down``: int64, 1 for a down pulse, 0 for an up
        pulse; one noise draw per pulse). None when the family has no affine form. Families may
        override with a cheaper lookup of the same definition."""
        sign = down.to(dtype).mul_(-2.0).add_(1.0)
        form = self.pulse_factors(sign, generator, index=index, max_count=1)
        return None if form is None else (form[0], form[1][:, 0])

    def affine_pulse_coefficients(self, shape, dtype=torch.float32, device=None):
        """Per-pulse map of families whose responses are affine in w, for compiled kernels:
        flat contiguous tensors (cu0, cu1, cd0, cd1, lo, hi, dw) of ``shape``'s element count with

            up pulse:   w <- clamp(w + eta (cu0 + cu1 w))      (= w + dw_min q_plus(w) eta)
            down pulse: w <- clamp(w - eta (cd0 + cd1 w))      (= w - dw_min q_minus(w) eta)

        (eta the multiplicative cycle noise factor; additive noise adds +-dw sigma xi). None
        when q_plus / q_minus are not affine (the torch engine runs then)."""

    def shaped_pulse_coefficients(self, shape, dtype=torch.float32, device=None):
        """Per-pulse map of families whose responses are s_k h_k(b_k + c_k w) for one of the
        compiled kernels' shapes h, as ``(code, up, down, lo, hi, dw)`` with ``up`` and ``down``
        tuples (s, b, c, g, norm) of tensors or floats (expanded to ``shape``):

            polarity k: w <- clamp(w + eta s_k h_k(b_k + c_k w)),
            code 1 (power):       h_k(u) = max(u, 0)^g_k,
            code 2 (exponential): h_k(u) = expm1(g_k max(u, 0)) norm_k, norm_k = 1 / expm1(g_k)
            code 3 (saturating exponential, aihwkit ExpStep): h_k(u) = max(1 - norm_k exp(g_k u), 0)

        (eta the multiplicative cycle noise factor; additive noise adds +-dw sigma xi). None
        for other families (the torch engine runs then, or the affine map when there is one)."""

    def additive_noise_scales(self, shape, dtype=torch.float32, device=None):
        """Per-polarity factors (up, down; flat tensors or floats) of the additive cycle noise
        dw_min sigma xi in the compiled kernels; None: 1 for both (:meth:`apply_pulse`)."""

    def kernel_pulse_coefficients(self, shape, dtype=torch.float32):
        """The per-pulse map packed for the CPU kernels (pulses/numba_kernels.py), cached per
        (shape, dtype): numpy arrays coef (n, 4), bounds (n, 2) = [lo, hi], dw (n,), the shape
        code, the shape parameters gp (n, 6) = [b, g, norm] per polarity and the additive-noise scales
        na (n or 1, 2) = [up, down] (:meth:`additive_noise_scales`). Affine families (code 0):
        coef = [cu0, cu1, -cd0, -cd1], a pulse of polarity k (0 up, 1 down) is
        w <- clamp(w + eta (coef[2k] + coef[2k+1] w)); power / exponential families (codes 1, 2):
        coef = [s_up, c_up, s_down, c_down] (:meth:`shaped_pulse_coefficients`). None when the
        family has neither map."""
        def make():
            affine = self.affine_pulse_coefficients(shape, dtype, torch.device("cpu"))
            if affine is not None:
                cu0, cu1, cd0, cd1, lo, hi, dw = affine
                coef = torch.stack([cu0, cu1, -cd0, -cd1], 1)
                code, gp = 0, torch.zeros((1, 6), dtype=dtype)
            else:
                shaped = self.shaped_pulse_coefficients(shape, dtype, torch.device("cpu"))
                if shaped is None:
                    return None
                code, up, down, lo, hi, dw = shaped
                cpu = torch.device("cpu")
                s_up, b_up, c_up, g_up, n_up = self._flat_columns(up, shape, dtype, cpu)
                s_dn, b_dn, c_dn, g_dn, n_dn = self._flat_columns(down, shape, dtype, cpu)
                lo, hi, dw = self._flat_columns((lo, hi, dw), shape, dtype, cpu)
                coef = torch.stack([s_up, c_up, s_dn, c_dn], 1)
                gp = torch.stack([b_up, g_up, n_up, b_dn, g_dn, n_dn], 1)
            scales = self.additive_noise_scales(shape, dtype, torch.device("cpu"))
            if scales is None:
                na = torch.ones((1, 2), dtype=dtype)
            else:
                na = torch.stack(self._flat_columns(scales, shape, dtype, torch.device("cpu")), 1)
            return (coef.contiguous().numpy(), torch.stack([lo, hi], 1).contiguous().numpy(),
                    dw.contiguous().numpy(), int(code), gp.contiguous().numpy(), na.contiguous().numpy())
        return self.derived(("kernel_pulse_coefficients", tuple(shape), dtype), make)

    def _flat_columns(self, columns, shape, dtype, device):
        """Expand scalars / per-element tensors to flat contiguous tensors of ``shape``."""
        n = 1
        for k in shape:
            n *= int(k)
        out = []
        for c in columns:
            t = torch.as_tensor(c, dtype=dtype, device=device)
            out.append(t.expand(tuple(shape)).reshape(n).contiguous() if t.dim() else t.expand(n).contiguous())
        return tuple(out)

    def derived(self, name: str, compute):
        """Cache of a quantity derived from the parameters (e.g. 1 / dw_min), recomputed when a
        parameter object is replaced (``with_params``, ``sample``, ``to``)."""
        key = [getattr(self, n) for n in ("dw_min",) + self.element_params]
        cache = self.__dict__.get("_derived_cache")
        if cache is None or len(cache[0]) != len(key) or not all(map(operator.is_, cache[0], key)):
            cache = (key, {})
            self.__dict__["_derived_cache"] = cache
        store = cache[1]
        value = store.get(name, _MISSING)
        if value is _MISSING:
            value = store[name] = compute()
        return value

    def symmetric_point(self) -> torch.Tensor:
        """State where G = 0. Numeric by bisection inside the bounds unless a family overrides.

        Returns a tensor with the shape of the per-element parameters (a 0-dim tensor for a
        scalar device).
        """
        lo, hi = self.bounds()
        lo_t = torch.as_tensor(lo, dtype=torch.float64)
        hi_t = torch.as_tensor(hi, dtype=torch.float64)
        shape = torch.broadcast_shapes(lo_t.shape, hi_t.shape, *self._param_shapes())
        if not (torch.isfinite(lo_t).all() and torch.isfinite(hi_t).all()):
            lo_t = torch.full(shape, -1e3, dtype=torch.float64)
            hi_t = torch.full(shape, 1e3, dtype=torch.float64)
        a = (lo_t + 1e-12 * (hi_t - lo_t)).expand(shape).clone()
        b = (hi_t - 1e-12 * (hi_t - lo_t)).expand(shape).clone()
        ga = self.G(a)
        gb = self.G(b)
        if ((ga * gb) > 0).any():
            raise ValueError(
                f"{type(self).__name__}: G does not change sign inside the bounds, so the device "
                "has no symmetric point there"
            )
        for _ in range(80):
            m = 0.5 * (a + b)
            gm = self.G(m)
            left = (ga * gm) <= 0
            b = torch.where(left, m, b)
            a = torch.where(left, a, m)
            ga = torch.where(left, ga, gm)
        return 0.5 * (a + b)

    # ------------------------------------------------------------------ per-element params
    def _param_shapes(self) -> list[torch.Size]:
        shapes = []
        for name in ("dw_min",) + self.element_params:
            v = getattr(self, name)
            if isinstance(v, torch.Tensor):
                shapes.append(v.shape)
        return shapes

    def params(self) -> dict[str, Number]:
        """The per-element parameters (scalars before ``sample``, tensors after)."""
        return {name: getattr(self, name) for name in ("dw_min",) + self.element_params}

    def with_params(self, **params: Number) -> Device:
        """Copy of this device with the given parameters replaced."""
        new = copy.copy(self)
        for name, value in params.items():
            if name not in ("dw_min",) + self.element_params:
                raise ValueError(f"{name!r} is not a per-element parameter of {type(self).__name__}")
            setattr(new, name, value)
        return new

    def sample(
        self,
        shape: tuple[int, ...],
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Device:
        """Draw per-element parameters of the given shape (device-to-device variation)."""
        out = {}
        for name in ("dw_min",) + self.element_params:
            base = torch.full(shape, float(getattr(self, name)), dtype=dtype, device=device)
            std = self.device_to_device.get(name, 0.0)
            if std > 0:
                xi = torch.randn(shape, generator=generator, dtype=dtype, device="cpu").to(device)
                if name == "dw_min" or name in self.positive_params:
                    base = base * self.spread_factor(std, xi)
                else:
                    base = base + std * xi
            out[name] = base
        new = self.with_params(**out)
        new.device_to_device = {}
        new._validate_sampled()
        return new

    def spread_factor(self, std: float, xi: torch.Tensor) -> torch.Tensor:
        """Device-to-device factor of a scale parameter from standard normal draws ``xi``:
        exp(std xi) ("lognormal") or |1 + std xi| ("aihwkit", enforce_consistency)."""
        if self.device_to_device_distribution == "aihwkit":
            return (1.0 + std * xi).abs_()
        return torch.exp(std * xi)

    def _validate_sampled(self) -> None:
        """Hook for families to check sampled parameters (e.g. bounds still ordered)."""

    def validate_response(self, points: int = 257) -> None:
        """Raise ValueError if q_plus or q_minus is not positive strictly inside the bounds."""
        lo, hi = self.bounds()
        lo_f, hi_f = float(torch.as_tensor(lo).min()), float(torch.as_tensor(hi).max())
        if not math.isfinite(lo_f) or not math.isfinite(hi_f):
            lo_f, hi_f = -10.0, 10.0
        t = torch.linspace(0.0, 1.0, points, dtype=torch.float64)[1:-1]
        w = lo_f + t * (hi_f - lo_f)
        for name, fn in (("q_plus", self.q_plus), ("q_minus", self.q_minus)):
            vals = fn(w)
            if not isinstance(vals, torch.Tensor) or vals.shape != w.shape:
                raise ValueError(
                    f"{name} must return a tensor of the input's shape {tuple(w.shape)}, "
                    f"got {getattr(vals, 'shape', type(vals))}"
                )
            if not torch.isfinite(vals).all() or (vals <= 0).any():
                raise ValueError(
                    f"{name} must be finite and > 0 strictly inside the bounds "
                    f"({lo_f}, {hi_f}); allowed range of the response: (0, inf)"
                )

    def to(self, device=None, dtype=None) -> Device:
        """Move tensor parameters to a torch device / dtype."""
        moved = {}
        for name, v in self.params().items():
            if isinstance(v, torch.Tensor):
                moved[name] = v.to(device=device, dtype=dtype if v.is_floating_point() else None)
        return self.with_params(**moved) if moved else self

    def describe(self) -> dict:
        """Plain-data description (for configs and summaries)."""
        d = {"family": self.family}
        for name, v in self.params().items():
            d[name] = float(v) if not isinstance(v, torch.Tensor) else "per-element"
        d["cycle_noise"] = self.cycle_noise
        d["cycle_noise_type"] = self.cycle_noise_type
        if self.write_noise:
            d["write_noise"] = self.write_noise
        if self.device_to_device:
            d["device_to_device"] = dict(self.device_to_device)
        if self.device_to_device_distribution != "lognormal":
            d["device_to_device_distribution"] = self.device_to_device_distribution
        return d

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v}" for k, v in self.describe().items() if k != "family")
        return f"{type(self).__name__}({inner})"
