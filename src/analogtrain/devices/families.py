"""Response-function families (2502.06309 table in Sec. 1.1 / App. B eq. 16, App. K.1).

| family       | q_plus(w)                              | q_minus(w)                             | SP |
|--------------|----------------------------------------|----------------------------------------|----|
| Ideal        | 1                                      | 1                                      | any (0 reported) |
| SoftBounds   | a_up (1 - w / w_max)                   | a_down (1 - w / w_min)                 | (a_up - a_down)/(a_up/w_max - a_down/w_min) |
| Power        | (1 - w/tau)^gamma                      | (1 + w/tau)^gamma                      | 0 |
| Exponential  | (exp(g(1 - w/tau)) - 1)/(exp(g) - 1)   | (exp(g(1 + w/tau)) - 1)/(exp(g) - 1)   | 0 |
| Piecewise    | linear interpolation of measured nodes | idem                                   | numeric |
| Custom       | any callable                           | any callable                           | numeric |
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from .base import Device, _check_positive


def _index_params(device, idx):
    """Copy of ``device`` with its per-element parameters taken at flat indices ``idx``."""
    picked = {name: v.reshape(-1).index_select(0, idx) for name, v in device.params().items()
              if isinstance(v, torch.Tensor) and v.dim() > 0}
    return device.with_params(**picked) if picked else device


class Ideal(Device):
    """Ideal device: q_plus = q_minus = 1 (Digital SGD when pulses are exact).

    ``bounds`` are hard limits (default unbounded).
    """

    family = "ideal"

    def __init__(self, *, bounds: tuple[float, float] = (-math.inf, math.inf), **kwargs) -> None:
        lo, hi = bounds
        if not lo < hi:
            raise ValueError(f"bounds must satisfy lo < hi, got {bounds!r}")
        self._bounds = (float(lo), float(hi))
        super().__init__(**kwargs)

    def q_plus(self, w):
        return torch.ones_like(w)

    def q_minus(self, w):
        return torch.ones_like(w)

    def bounds(self):
        return self._bounds

    def affine_pulse_coefficients(self, shape, dtype=torch.float32, device=None):
        """q_plus = q_minus = 1: cu0 = cd0 = dw_min, cu1 = cd1 = 0."""
        if type(self).q_plus is not Ideal.q_plus or type(self).q_minus is not Ideal.q_minus:
            return None
        lo, hi = self._bounds
        return self._flat_columns((self.dw_min, 0.0, self.dw_min, 0.0, lo, hi, self.dw_min), shape, dtype, device)

    def symmetric_point(self):
        """Every state is symmetric; 0 is reported."""
        shapes = self._param_shapes()
        shape = torch.broadcast_shapes(*shapes) if shapes else ()
        return torch.zeros(shape, dtype=torch.float64)

    def describe(self):
        d = super().describe()
        d["bounds"] = list(self._bounds)
        return d


class SoftBounds(Device):
    """Generic linear (soft-bounds) device.

    Paper form (2502.06309 Fig. 2, "c_Lin"): ``SoftBounds(tau=3.5, asymmetry=c)`` gives
    q_plus = (1 + c)(1 - w/tau), q_minus = (1 - c)(1 + w/tau) and SP = c * tau.
    aihwkit form: ``SoftBounds(up_slope=a_up, down_slope=a_down, w_max=b_max, w_min=b_min)``
    (b_min < 0) gives q_plus = a_up (1 - w/b_max), q_minus = a_down (1 - w/b_min) and
    SP = (a_up - a_down) / (a_up/b_max - a_down/b_min) (2602.21321 App. F.1, sign as in
    aihwkit's SoftBoundsReferenceDevice).

    Extra device-to-device keys (2602.21321 eq. 103-104): ``"slope"`` draws a common
    log-normal factor gamma_d = exp(std*xi) for both slopes, ``"up_down"`` an additive
    rho = std*xi with a_up = gamma_d + rho, a_down = gamma_d - rho.
    """

    family = "softbounds"
    element_params = ("up_slope", "down_slope", "w_max", "w_min")
    positive_params = ("up_slope", "down_slope", "w_max", "w_min")  # log-normal (scale) spreads

    def __init__(
        self,
        tau: float | None = None,
        asymmetry: float | None = None,
        *,
        up_slope: float | None = None,
        down_slope: float | None = None,
        w_max: float | None = None,
        w_min: float | None = None,
        **kwargs,
    ) -> None:
        spreads = dict(kwargs.pop("device_to_device", None) or {})
        self._slope_spread = float(spreads.pop("slope", 0.0))
        self._up_down_spread = float(spreads.pop("up_down", 0.0))
        if self._slope_spread < 0 or self._up_down_spread < 0:
            raise ValueError("device_to_device spreads 'slope' and 'up_down' must be >= 0")
        if tau is not None or asymmetry is not None:
            if any(v is not None for v in (up_slope, down_slope, w_max, w_min)):
                raise ValueError("give either (tau, asymmetry) or (up_slope, down_slope, w_max, w_min)")
            tau = 1.0 if tau is None else tau
            asymmetry = 0.0 if asymmetry is None else asymmetry
            _check_positive("tau", tau)
            if not -1.0 < asymmetry < 1.0:
                raise ValueError(f"asymmetry must lie in (-1, 1), got {asymmetry!r}")
            up_slope, down_slope = 1.0 + asymmetry, 1.0 - asymmetry
            w_max, w_min = tau, -tau
        up_slope = 1.0 if up_slope is None else up_slope
        down_slope = 1.0 if down_slope is None else down_slope
        w_max = 1.0 if w_max is None else w_max
        w_min = -1.0 if w_min is None else w_min
        _check_positive("up_slope", up_slope)
        _check_positive("down_slope", down_slope)
        if not w_min < 0 < w_max:
            raise ValueError(
                f"bounds must satisfy w_min < 0 < w_max (allowed: w_min in (-inf, 0), "
                f"w_max in (0, inf)), got w_min={w_min!r}, w_max={w_max!r}"
            )
        self.up_slope, self.down_slope = float(up_slope), float(down_slope)
        self.w_max, self.w_min = float(w_max), float(w_min)
        super().__init__(device_to_device=spreads, **kwargs)

    def _slopes_over_bounds(self):
        """(up_slope / w_max, down_slope / w_min): q+ = a_up - (a_up/w_max) w, q- = a_down - (a_down/w_min) w."""
        return self.derived("slopes_over_bounds",
                            lambda: (self.up_slope / self.w_max, self.down_slope / self.w_min))

    @staticmethod
    def _affine(a, c, w):
        """a - c * w, in one pass when the parameters are tensors of w's shape and dtype."""
        if isinstance(a, torch.Tensor) and isinstance(c, torch.Tensor) and a.shape == w.shape == c.shape \
                and a.dtype == w.dtype == c.dtype:
            return torch.addcmul(a, c, w, value=-1.0)
        return a - c * w

    def response_into(self, w, up, out):
        a = self.up_slope if up else self.down_slope
        c = self._slopes_over_bounds()[0 if up else 1]
        if isinstance(a, torch.Tensor) and isinstance(c, torch.Tensor) and a.shape == w.shape == c.shape \
                and a.dtype == w.dtype == c.dtype == out.dtype:
            return torch.addcmul(a, c, w, value=-1.0, out=out)
        return super().response_into(w, up, out)

    def expected_plan(self, w):
        """Soft bounds are affine: dW q_plus(w) = (dW a_up / w_max)(w_max - w) for dW >= 0 and
        dW q_minus(w) = (dW a_down / w_min)(w_min - w) for dW < 0, both interpolation weights
        >= 0, so the compact update is two ``lerp`` passes (see :meth:`Device.expected_plan`):
        rates = [a_up / w_max, a_down / w_min] (the second < 0, so clamp(dW rate, min=0) keeps
        only the down part) and pulse weights [w_max / (a_up dw_min), |w_min| / (a_down dw_min)]
        (R / (rate dw_min) = |dW| / dw_min). None unless the parameters are per-element tensors
        of w's shape, dtype and torch device."""
        if type(self).q_plus is not SoftBounds.q_plus or type(self).q_minus is not SoftBounds.q_minus:
            return None  # a subclass with other responses
        plan = self.derived("expected_plan", self._make_expected_plan)
        if plan is None or plan[2].shape != w.shape or plan[2].dtype != w.dtype or plan[2].device != w.device:
            return None
        return plan

    def _make_expected_plan(self):
        params = (self.up_slope, self.down_slope, self.w_max, self.w_min, self.dw_min)
        ref = self.w_max
        if not all(isinstance(p, torch.Tensor) and p.shape == ref.shape and p.dtype == ref.dtype
                   and p.device == ref.device for p in params):
            return None
        rate_up, rate_down = self._slopes_over_bounds()
        rates = torch.stack([rate_up, rate_down])
        count_weights = torch.stack([1.0 / (rate_up * self.dw_min), -1.0 / (rate_down * self.dw_min)])
        return rates, count_weights, self.w_max, self.w_min

    def q_plus(self, w):
        return self._affine(self.up_slope, self._slopes_over_bounds()[0], w)

    def q_minus(self, w):
        return self._affine(self.down_slope, self._slopes_over_bounds()[1], w)

    def q_signed(self, w, sign):
        # arithmetic blend instead of torch.where (both responses are finite everywhere)
        up = sign.clamp(0.0, 1.0)
        qp, qm = self.q_plus(w), self.q_minus(w)
        return qm.add_(up * (qp - qm))

    def bounds(self):
        return (self.w_min, self.w_max)

    def _pulse_table(self):
        """Per-element rows [rate, target] for an up pulse (row 2e: dw_min a_up / w_max, w_max)
        and a down pulse (row 2e + 1: dw_min a_down / |w_min|, w_min), flattened to
        (2 n_elem, 2), so the parameters of a list of pulses are a single row gather."""
        def make():
            rate_up, rate_down = self._slopes_over_bounds()
            cols = [self.dw_min * rate_up, self.w_max, -self.dw_min * rate_down, self.w_min]
            ref = next(c for c in cols if isinstance(c, torch.Tensor))
            flat = [torch.as_tensor(c, dtype=ref.dtype, device=ref.device).expand(ref.shape).reshape(-1) for c in cols]
            return torch.stack(flat, dim=1).reshape(-1, 2)
        return self.derived("pulse_table", make)

    def affine_pulse_coefficients(self, shape, dtype=torch.float32, device=None):
        """dw_min q_plus(w) = dw a_up - (dw a_up / w_max) w, dw_min q_minus(w) = dw a_down -
        (dw a_down / w_min) w. Subclasses that change the responses return None."""
        if (type(self).q_plus is not SoftBounds.q_plus or type(self).q_minus is not SoftBounds.q_minus
                or type(self).apply_pulse is not Device.apply_pulse):
            return None
        f64 = torch.float64
        dw = torch.as_tensor(self.dw_min, dtype=f64)
        up = dw * torch.as_tensor(self.up_slope, dtype=f64)
        down = dw * torch.as_tensor(self.down_slope, dtype=f64)
        w_max, w_min = torch.as_tensor(self.w_max, dtype=f64), torch.as_tensor(self.w_min, dtype=f64)
        return self._flat_columns((up, -up / w_max, down, -down / w_min, w_min, w_max, dw), shape, dtype, device)

    def safe_step(self):
        """Soft bounds: w + dW a_up (1 - w/w_max) <= w_max iff dW <= w_max / a_up (and the
        mirror for down steps), so |dW| <= min(w_max / a_up, |w_min| / a_down) never clamps."""
        def make():
            step = torch.minimum(torch.as_tensor(self.w_max / self.up_slope),
                                 torch.as_tensor(-self.w_min / self.down_slope))
            return float(step.min())
        return self.derived("safe_step", make)

    def pulse_factors(self, counts, generator=None, index=None, max_count=None):
        """Soft bounds are affine: an up pulse maps the distance to the upper bound as
        (w_max - w) <- (w_max - w)(1 - r eta), r = dw_min a_up / w_max, and a down pulse
        (w - w_min) <- (w - w_min)(1 - r eta), r = dw_min a_down / |w_min|, with
        eta = 1 + sigma_c xi (multiplicative cycle noise) or eta = 1 (none). A factor <= 0 is an
        overshoot, clamped at the bound (where the state then stays), so factors are
        max(1 - r eta, 0). Without noise the n factors are combined into one, (1 - r)^n.
        Additive cycle noise is not of this form (None).
        """
        if self.cycle_noise > 0 and self.cycle_noise_type == "additive":
            return None
        dtype, dev = counts.dtype, counts.device
        n = counts.abs() if max_count is None or max_count > 1 or self.cycle_noise == 0 else None
        if index is not None and self._param_shapes():
            rows = self._pulse_table().index_select(0, index * 2 + (counts < 0))
            r, target = rows.to(dtype).unbind(1)
        else:
            rate_up, rate_down = self._slopes_over_bounds()
            up = torch.sign(counts).clamp_(0.0, 1.0)  # 1: up, 0: down or no pulse
            target = self.w_min + up * (self.w_max - self.w_min)
            r = -self.dw_min * rate_down + up * (self.dw_min * (rate_up + rate_down))
        if self.cycle_noise == 0:
            return target, ((1.0 - r).clamp_(min=0.0) ** n).unsqueeze(-1)
        max_n = max_count if max_count is not None else (int(n.max().item()) if n.numel() else 0)
        xi = torch.randn(counts.shape + (max_n,), generator=generator, device=dev, dtype=dtype)
        f = (xi.mul_(-self.cycle_noise).sub_(1.0)).mul_(r.unsqueeze(-1)).add_(1.0).clamp_(min=0.0)  # 1 - r(1 + s xi)
        if n is not None:  # factor 1 beyond each element's count, also for count 0 (integers: no bool mask)
            active = (n.unsqueeze(-1) - torch.arange(max_n, device=dev, dtype=dtype)).clamp_(0.0, 1.0)
            f = active.mul_(f.sub_(1.0)).add_(1.0)
        return target, f

    def unit_pulse_factors(self, down, index, generator=None, dtype=torch.float32):
        """Same definition as :meth:`pulse_factors` with unit counts, f = max(1 - r (1 + sigma
        xi), 0), with r and the target read from 1-D per-element columns of the pulse table
        (row 2e: up, 2e + 1: down), indexed without forming signs. Scalar parameters and
        subclasses with other pulse maps take the generic route."""
        if (type(self).pulse_factors is not SoftBounds.pulse_factors
                or type(self)._pulse_table is not SoftBounds._pulse_table or not self._param_shapes()):
            return super().unit_pulse_factors(down, index, generator, dtype)
        if self.cycle_noise > 0 and self.cycle_noise_type == "additive":
            return None
        rate, target = self.derived("unit_pulse_columns",
                                    lambda: tuple(c.contiguous() for c in self._pulse_table().unbind(1)))
        row = torch.add(down, index, alpha=2)
        r = rate.index_select(0, row).to(dtype)
        t = target.index_select(0, row).to(dtype)
        if self.cycle_noise == 0:
            return t, r.neg_().add_(1.0).clamp_(min=0.0)
        xi = torch.randn(index.shape, generator=generator, device=index.device, dtype=dtype)
        # 1 - r (1 + s xi) = (1 - r) - s r xi
        return t, torch.addcmul(r.neg().add_(1.0), r, xi, value=-self.cycle_noise).clamp_(min=0.0)

    def apply_pulses(self, w, counts, generator=None):
        """Pulses in sequence through :meth:`pulse_factors`: exact, including the clamping of a
        pulse that moves a state away from its target (eta < 0) past the opposite bound."""
        counts = counts.to(w.dtype)
        if self.cycle_noise > 0 and self.cycle_noise_type == "multiplicative" and counts.numel() > 4096:
            n = counts.abs()
            max_n, total_n = float(n.amax()), float(n.sum())
            if max_n > 1 and n.numel() * max_n > 4 * total_n:  # few pulses on a large array
                return self._apply_pulse_list(w, counts, n, generator)
        form = self.pulse_factors(counts, generator)
        if form is None:
            return super().apply_pulses(w, counts, generator)
        target, f = form
        if f.shape[-1] == 0:
            return w
        # w F + target (1 - F) leaves w bit for bit unchanged where F = 1 (no pulses)
        total = f.prod(dim=-1)
        if float(f.amax()) > 1.0:  # eta < 0 somewhere: a pulse moved a state away from its target
            far = torch.cumprod(f, dim=-1).amax(dim=-1)  # farthest point of the path from the target
            reach = torch.addcmul(target * (1.0 - far), w, far)
            if not torch.equal(self.clamp(reach), reach):  # it crossed the opposite bound: pulse by pulse
                for k in range(f.shape[-1]):
                    w = self.clamp(torch.addcmul(target * (1.0 - f[..., k]), w, f[..., k]))
                return w
        return self.clamp(torch.addcmul(target * (1.0 - total), w, total))

    def _apply_pulse_list(self, w, counts, n, generator):
        """apply_pulses for sparse counts on a large array (multiplicative noise): noise is
        drawn only for the pulses fired (not max|count| per element) and the factors of an
        element are multiplied in log space; elements with a pulse that moves away from its
        target are recomposed pulse by pulse with clamping, with the same factors."""
        flat_w, flat_c = w.reshape(-1), counts.reshape(-1)
        idx = torch.nonzero(n.reshape(-1), as_tuple=True)[0]
        c_e = flat_c.index_select(0, idx)
        n_e = c_e.abs()
        sub = _index_params(self, idx)
        rate_up, rate_down = sub._slopes_over_bounds()
        up = torch.sign(c_e).clamp_(0.0, 1.0)
        target = sub.w_min + up * (sub.w_max - sub.w_min)
        r = -sub.dw_min * rate_down + up * (sub.dw_min * (rate_up + rate_down))
        reps = n_e.long()
        owner = torch.repeat_interleave(torch.arange(idx.numel(), device=w.device), reps)
        xi = torch.randn(owner.shape, generator=generator, device=w.device, dtype=w.dtype)
        f = (1.0 - r.index_select(0, owner) * (1.0 + self.cycle_noise * xi)).clamp_(min=0.0)
        zeros = torch.zeros(idx.numel(), device=w.device, dtype=w.dtype)
        total = torch.exp(zeros.clone().index_add_(0, owner, torch.log(f)))
        w_e = flat_w.index_select(0, idx)
        new = torch.addcmul(target * (1.0 - total), w_e, total)
        away = zeros.index_add_(0, owner, (f > 1.0).to(w.dtype))
        if float(away.amax()) > 0:
            sel = torch.nonzero(away, as_tuple=True)[0]
            first = (torch.cumsum(reps, 0) - reps).index_select(0, sel)
            n_sel = n_e.index_select(0, sel)
            lo, hi = sub.bounds()
            lo = lo.index_select(0, sel) if isinstance(lo, torch.Tensor) and lo.dim() else lo
            hi = hi.index_select(0, sel) if isinstance(hi, torch.Tensor) and hi.dim() else hi
            t, w_s = target.index_select(0, sel), w_e.index_select(0, sel)
            for k in range(int(n_sel.amax())):
                fk = f.index_select(0, (first + k).clamp_(max=f.numel() - 1))
                fk = torch.where(n_sel > k, fk, torch.ones_like(fk))
                w_s = torch.clamp(torch.addcmul(t * (1.0 - fk), w_s, fk), lo, hi)
            new = new.index_copy(0, sel, w_s)
        return self.clamp(flat_w.clone().index_copy_(0, idx, new).view_as(w))

    def symmetric_point(self):
        sp = (self.up_slope - self.down_slope) / (self.up_slope / self.w_max - self.down_slope / self.w_min)
        return torch.as_tensor(sp, dtype=torch.float64) if not isinstance(sp, torch.Tensor) else sp

    def sample(self, shape, generator=None, device=None, dtype=torch.float32):
        new = super().sample(shape, generator, device, dtype)
        if self._slope_spread > 0 or self._up_down_spread > 0:
            common = self.spread_factor(self._slope_spread,
                                        torch.randn(shape, generator=generator, dtype=dtype)).to(device)
            rho = (self._up_down_spread * torch.randn(shape, generator=generator, dtype=dtype)).to(device)
            if self.device_to_device_distribution == "aihwkit":  # scale_up/down = dw_min (gain +- r), |.|
                new.up_slope = (new.up_slope * common + rho).abs_().clamp_min(1e-6)
                new.down_slope = (new.down_slope * common - rho).abs_().clamp_min(1e-6)
            else:
                new.up_slope = (new.up_slope * common + rho).clamp_min(1e-3)
                new.down_slope = (new.down_slope * common - rho).clamp_min(1e-3)
        new._slope_spread = 0.0
        new._up_down_spread = 0.0
        return new

    def describe(self):
        d = super().describe()
        if self._slope_spread or self._up_down_spread:
            d.setdefault("device_to_device", {})
            d["device_to_device"].update(slope=self._slope_spread, up_down=self._up_down_spread)
        return d


def _power_like_coefficients(dev, cls, code: int, shape, dtype, device):
    """The kernels' power / exponential map of ``dev`` (:meth:`Device.shaped_pulse_coefficients`):
    q_plus = h(1 - w / tau), q_minus = h(1 + w / tau), so s_up = dw_min, b = 1, c_up = -1 / tau,
    s_down = -dw_min, c_down = 1 / tau; None for subclasses that change the responses or the pulse."""
    if (type(dev).q_plus is not cls.q_plus or type(dev).q_minus is not cls.q_minus
            or type(dev).apply_pulse is not Device.apply_pulse):
        return None
    f64 = torch.float64
    dw = torch.as_tensor(dev.dw_min, dtype=f64)
    tau = torch.as_tensor(dev.tau, dtype=f64)
    gamma = torch.as_tensor(dev.gamma, dtype=f64)
    norm = 1.0 / torch.expm1(gamma) if code == 2 else torch.ones_like(gamma)
    return code, (dw, 1.0, -1.0 / tau, gamma, norm), (-dw, 1.0, 1.0 / tau, gamma, norm), -tau, tau, dw


class Power(Device):
    """Power response: q_plus = (1 - w/tau)^gamma, q_minus = (1 + w/tau)^gamma, range [-tau, tau].

    2502.06309 App. K.1 eq. 148 (aihwkit PowStepDevice up to a constant absorbed in dw_min).
    """

    family = "power"
    element_params = ("tau", "gamma")
    positive_params = ("tau", "gamma")

    def __init__(self, gamma: float = 1.0, tau: float = 1.0, **kwargs) -> None:
        _check_positive("gamma", gamma)
        _check_positive("tau", tau)
        self.gamma, self.tau = float(gamma), float(tau)
        super().__init__(**kwargs)

    def q_plus(self, w):
        return (1.0 - w / self.tau).clamp_min(0.0) ** self.gamma

    def q_minus(self, w):
        return (1.0 + w / self.tau).clamp_min(0.0) ** self.gamma

    def bounds(self):
        return (-self.tau, self.tau)

    def shaped_pulse_coefficients(self, shape, dtype=torch.float32, device=None):
        """h(u) = max(u, 0)^gamma (kernel code 1)."""
        return _power_like_coefficients(self, Power, 1, shape, dtype, device)

    def symmetric_point(self):
        shapes = self._param_shapes()
        return torch.zeros(torch.broadcast_shapes(*shapes) if shapes else (), dtype=torch.float64)


class Exponential(Device):
    """Exponential response (2502.06309 App. K.1 eq. 149), range [-tau, tau]:

    q_plus = (exp(gamma (1 - w/tau)) - 1) / (exp(gamma) - 1),
    q_minus = (exp(gamma (1 + w/tau)) - 1) / (exp(gamma) - 1).
    """

    family = "exponential"
    element_params = ("tau", "gamma")
    positive_params = ("tau", "gamma")

    def __init__(self, gamma: float = 1.0, tau: float = 1.0, **kwargs) -> None:
        _check_positive("gamma", gamma)
        _check_positive("tau", tau)
        self.gamma, self.tau = float(gamma), float(tau)
        super().__init__(**kwargs)

    def _shape(self, u):
        g = self.gamma
        if isinstance(g, torch.Tensor):
            return torch.expm1(g * u) / torch.expm1(g)
        return torch.expm1(g * u) / math.expm1(g)

    def q_plus(self, w):
        return self._shape((1.0 - w / self.tau).clamp_min(0.0))

    def q_minus(self, w):
        return self._shape((1.0 + w / self.tau).clamp_min(0.0))

    def bounds(self):
        return (-self.tau, self.tau)

    def shaped_pulse_coefficients(self, shape, dtype=torch.float32, device=None):
        """h(u) = expm1(gamma max(u, 0)) / expm1(gamma) (kernel code 2)."""
        return _power_like_coefficients(self, Exponential, 2, shape, dtype, device)

    def symmetric_point(self):
        shapes = self._param_shapes()
        return torch.zeros(torch.broadcast_shapes(*shapes) if shapes else (), dtype=torch.float64)


class Piecewise(Device):
    """Response measured at nodes ``w_nodes`` (increasing), linearly interpolated.

    ``q_plus_nodes`` / ``q_minus_nodes`` are the measured responses (step / dw_min) at the
    nodes; the bounds are the first and last node. aihwkit's PiecewiseStepDevice takes the
    same data on an equidistant grid.
    """

    family = "piecewise"
    #: node vectors that devices.fitting.fit_device may fit
    fit_fields = ("q_plus_nodes", "q_minus_nodes")

    def __init__(
        self,
        w_nodes: Sequence[float],
        q_plus_nodes: Sequence[float],
        q_minus_nodes: Sequence[float],
        **kwargs,
    ) -> None:
        nodes = torch.as_tensor(w_nodes, dtype=torch.float64)
        qp = torch.as_tensor(q_plus_nodes, dtype=torch.float64)
        qm = torch.as_tensor(q_minus_nodes, dtype=torch.float64)
        if nodes.dim() != 1 or nodes.numel() < 2:
            raise ValueError("w_nodes must be a 1-D sequence of at least 2 points")
        if qp.shape != nodes.shape or qm.shape != nodes.shape:
            raise ValueError(
                f"q_plus_nodes and q_minus_nodes must have the shape of w_nodes {tuple(nodes.shape)}"
            )
        if not (nodes[1:] > nodes[:-1]).all():
            raise ValueError("w_nodes must be strictly increasing (bounds reversed or repeated)")
        if (qp[:-1] <= 0).any() or (qm[1:] <= 0).any():
            raise ValueError(
                "q_plus_nodes must be > 0 below the upper bound and q_minus_nodes > 0 above the "
                "lower bound (allowed range of the response: (0, inf))"
            )
        if (qp < 0).any() or (qm < 0).any():
            raise ValueError("responses must be >= 0 at every node")
        self.w_nodes, self.q_plus_nodes, self.q_minus_nodes = nodes, qp, qm
        super().__init__(**kwargs)

    def _interp(self, w, values):
        nodes = self.w_nodes.to(device=w.device, dtype=w.dtype)
        vals = values.to(device=w.device, dtype=w.dtype)
        wc = w.clamp(nodes[0], nodes[-1])
        idx = torch.searchsorted(nodes, wc.contiguous(), right=True).clamp(1, nodes.numel() - 1)
        x0, x1 = nodes[idx - 1], nodes[idx]
        y0, y1 = vals[idx - 1], vals[idx]
        return y0 + (y1 - y0) * (wc - x0) / (x1 - x0)

    def q_plus(self, w):
        return self._interp(w, self.q_plus_nodes)

    def q_minus(self, w):
        return self._interp(w, self.q_minus_nodes)

    def bounds(self):
        return (float(self.w_nodes[0]), float(self.w_nodes[-1]))

    def describe(self):
        d = super().describe()
        d.update(w_nodes=self.w_nodes.tolist(), q_plus_nodes=self.q_plus_nodes.tolist(),
                 q_minus_nodes=self.q_minus_nodes.tolist())
        return d


class Custom(Device):
    """Any response given as two Python callables on tensors, e.g.

    ``Custom(q_plus=lambda w: 1 - w, q_minus=lambda w: 1 + 0.5 * w, bounds=(-1, 1))``.

    The callables must return a tensor of their input's shape, positive strictly inside
    ``bounds``; this is checked at construction. The SP is found numerically.
    """

    family = "custom"

    def __init__(
        self,
        q_plus: Callable[[torch.Tensor], torch.Tensor],
        q_minus: Callable[[torch.Tensor], torch.Tensor],
        bounds: tuple[float, float] = (-1.0, 1.0),
        **kwargs,
    ) -> None:
        if not callable(q_plus) or not callable(q_minus):
            raise ValueError("q_plus and q_minus must be callables taking and returning tensors")  # noqa: TRY004
        lo, hi = bounds
        if not lo < hi:
            raise ValueError(f"bounds must satisfy lo < hi (reversed or empty), got {bounds!r}")
        self._q_plus, self._q_minus = q_plus, q_minus
        self._bounds = (float(lo), float(hi))
        super().__init__(**kwargs)
        self.validate_response()

    def q_plus(self, w):
        return self._q_plus(w)

    def q_minus(self, w):
        return self._q_minus(w)

    def bounds(self):
        return self._bounds

    def describe(self):
        d = super().describe()
        d["bounds"] = list(self._bounds)
        return d
