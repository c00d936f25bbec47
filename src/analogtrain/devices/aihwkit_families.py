"""aihwkit 1.1.0's pulsed device families, with aihwkit's parameter names and equations.

Source: aihwkit v1.1.0 (commit 809114e5), C++ ``src/rpucuda/rpu_pulsed_device.cpp``
(``PulsedRPUDevice::populate``: device-to-device draws), ``rpu_linearstep_device.cpp``,
``rpu_expstep_device.cpp``, ``rpu_powstep_device.cpp``, ``rpu_piecewisestep_device.cpp``,
``rpu_softbounds_reference_device.cpp`` and Python ``aihwkit/simulator/configs/devices.py``
(defaults, ``SoftBoundsPmaxDevice.as_bindings``). Implemented from the equations.

Every family here keeps aihwkit's per-device quantities as per-element parameters:

- ``scale_up``, ``scale_down``: the up / down step at the reference state in units of the
  nominal ``dw_min`` (aihwkit's ``dwmin_up`` / ``dwmin_down`` hidden parameters divided by
  dw_min). Drawn once per element (aihwkit ``populate``)::

      gain = 1 + dw_min_dtod xi   (exp(dw_min_dtod xi) with dw_min_dtod_log_normal)
      r    = up_down_dtod xi
      scale_up   = up_bias + gain + r,    up_bias   = min(up_down, 0)
      scale_down = down_bias + gain - r,  down_bias = -max(up_down, 0)

- ``w_max``, ``w_min``: per-element bounds w_max (1 + w_max_dtod xi), w_min (1 + w_min_dtod xi);
  with ``enforce_consistency`` (default) |scale|, swapped if crossed, w_max = |w_max|,
  w_min = -|w_min|; without it crossed bounds collapse to their midpoint.
- ``corrupt_devices_prob`` / ``corrupt_devices_range``: a device is stuck (both scales 0, both
  bounds one uniform value in the bounds clipped to +-range) with that probability.

``device_to_device_distribution="aihwkit"`` (the default here) draws the factors as above;
``"lognormal"`` draws exp(std xi) factors for gain, bounds and exponents instead (issue 5's
alternative); additive spreads (up_down, r) stay Gaussian.

dw_min stays the nominal scalar (aihwkit's weight granularity, what the periphery knows); one
pulse of polarity s is w <- clamp(w + s dw_min q_s(w) (1 + dw_min_std xi)) (aihwkit's
multiplicative cycle noise, ``cycle_noise_type = "multiplicative"``) unless a family says
otherwise. ``write_noise_std`` (units of dw_min) becomes the base ``write_noise``.

Between updates (aihwkit ``post_update_step``, once per optimizer step): diffusion (+dtod) and
lifetime (+dtod) act through :meth:`AnalogArray.post_update_step`; resets (with_reset_prob) go to
the per-device reset bias (reset + reset_dtod xi) plus reset_std noise
(:meth:`AnalogArray.reset_where`). Drift (``drift``) is not modelled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .base import Device

__all__ = ["AihwkitPulsedDevice", "ConstantStep", "ExpStep", "LinearStep", "PiecewiseStep", "PowStep",
           "SoftBoundsPmax", "SoftBoundsReference"]


def _finite(name: str, value) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite (allowed range: (-inf, inf)), got {value!r}")
    return v


def _nonneg(name: str, value) -> float:
    v = float(value)
    if not (math.isfinite(v) and v >= 0):
        raise ValueError(f"{name} must be >= 0 (allowed range: [0, inf)), got {value!r}")
    return v


def _positive(name: str, value) -> float:
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be > 0 (allowed range: (0, inf)), got {value!r}")
    return v


def _up_down_bias(up_down: float) -> tuple[float, float]:
    """aihwkit's (up_bias, down_bias): up_down > 0 shrinks the down step, < 0 the up step."""
    return (0.0, -up_down) if up_down > 0 else (up_down, 0.0)


def _decay_scale(lifetime: float) -> float:
    """aihwkit's decay scale of a lifetime t: 1 - 1 / t for t > 1, 0 for 0 < t <= 1, 1 (none) for 0."""
    if lifetime <= 0:
        return 1.0
    return 1.0 - 1.0 / lifetime if lifetime > 1 else 0.0


class AihwkitPulsedDevice(Device):
    """Common part of aihwkit's ``PulsedDevice`` (fields and defaults as aihwkit 1.1.0).

    Parameters (aihwkit names): dw_min 0.001, dw_min_dtod 0.3, dw_min_dtod_log_normal False,
    dw_min_std 0.3 (cycle-to-cycle), up_down 0, up_down_dtod 0.01, w_max 0.6 (w_max_dtod 0.3),
    w_min -0.6 (w_min_dtod 0.3), enforce_consistency True, corrupt_devices_prob 0,
    corrupt_devices_range 0.1, write_noise_std 0 (units of dw_min), reset 0 / reset_dtod 0 /
    reset_std 0.01, lifetime 0 / lifetime_dtod 0 (decay towards the reset bias per step),
    diffusion 0 / diffusion_dtod 0 (Gaussian steps per step).
    Subclasses define the shape of the response (:meth:`_shape_up` / :meth:`_shape_down`):
    q_plus(w) = scale_up * shape_up(w), q_minus(w) = scale_down * shape_down(w).
    """

    element_params: tuple[str, ...] = ("scale_up", "scale_down", "w_max", "w_min", "decay_scale", "diffusion_rate",
                                       "reset_bias")
    family = "aihwkit_pulsed"
    aihwkit_class = "PulsedDevice"
    #: multiplicative (aihwkit default) or additive cycle noise of the family
    _default_mult_noise = True
    #: names of family spreads (aihwkit *_dtod fields) beyond the common ones
    _family_dtod: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        dw_min: float = 0.001,
        dw_min_dtod: float = 0.3,
        dw_min_dtod_log_normal: bool = False,
        dw_min_std: float = 0.3,
        up_down: float = 0.0,
        up_down_dtod: float = 0.01,
        w_max: float = 0.6,
        w_max_dtod: float = 0.3,
        w_min: float = -0.6,
        w_min_dtod: float = 0.3,
        enforce_consistency: bool = True,
        corrupt_devices_prob: float = 0.0,
        corrupt_devices_range: float = 0.1,
        write_noise_std: float = 0.0,
        reset: float = 0.0,
        reset_dtod: float = 0.0,
        reset_std: float = 0.01,
        lifetime: float = 0.0,
        lifetime_dtod: float = 0.0,
        diffusion: float = 0.0,
        diffusion_dtod: float = 0.0,
        mult_noise: bool | None = None,
        device_to_device_distribution: str = "aihwkit",
    ) -> None:
        _positive("dw_min", dw_min)
        for name, v in (("dw_min_dtod", dw_min_dtod), ("up_down_dtod", up_down_dtod), ("w_max_dtod", w_max_dtod),
                        ("w_min_dtod", w_min_dtod), ("dw_min_std", dw_min_std), ("write_noise_std", write_noise_std),
                        ("corrupt_devices_range", corrupt_devices_range), ("reset_dtod", reset_dtod),
                        ("reset_std", reset_std), ("lifetime", lifetime), ("lifetime_dtod", lifetime_dtod),
                        ("diffusion", diffusion), ("diffusion_dtod", diffusion_dtod)):
            _nonneg(name, v)
        if not 0.0 <= float(corrupt_devices_prob) <= 1.0:
            raise ValueError(f"corrupt_devices_prob must lie in [0, 1], got {corrupt_devices_prob!r}")
        up_down = _finite("up_down", up_down)
        if not -1.0 < up_down < 1.0:
            raise ValueError(f"up_down must lie in (-1, 1) (a step factor 1 - |up_down| > 0), got {up_down!r}")
        w_max, w_min = _finite("w_max", w_max), _finite("w_min", w_min)
        if not (w_min <= 0.0 <= w_max and w_min < w_max):
            raise ValueError(f"bounds must satisfy w_min <= 0 <= w_max and w_min < w_max (aihwkit: [w_min, w_max] "
                             f"must contain 0; allowed: w_min in (-inf, 0], w_max in [0, inf)), got w_min={w_min!r}, "
                             f"w_max={w_max!r}")
        _finite("reset", reset)
        self.dw_min_dtod, self.dw_min_dtod_log_normal = float(dw_min_dtod), bool(dw_min_dtod_log_normal)
        self.dw_min_std, self.up_down, self.up_down_dtod = float(dw_min_std), up_down, float(up_down_dtod)
        self.w_max_dtod, self.w_min_dtod = float(w_max_dtod), float(w_min_dtod)
        self.enforce_consistency = bool(enforce_consistency)
        self.corrupt_devices_prob, self.corrupt_devices_range = float(corrupt_devices_prob), float(corrupt_devices_range)
        self.write_noise_std = float(write_noise_std)
        self.reset, self.reset_dtod, self.reset_std = float(reset), float(reset_dtod), float(reset_std)
        self.lifetime, self.lifetime_dtod = float(lifetime), float(lifetime_dtod)
        self.diffusion, self.diffusion_dtod = float(diffusion), float(diffusion_dtod)
        # per-element after sampling (aihwkit's hidden parameters decay_scales, diffusion_rates, reset_bias)
        self.decay_scale = _decay_scale(self.lifetime)
        self.diffusion_rate, self.reset_bias = self.diffusion, self.reset
        self.mult_noise = self._default_mult_noise if mult_noise is None else bool(mult_noise)
        up_bias, down_bias = _up_down_bias(up_down)
        self.scale_up, self.scale_down = 1.0 + up_bias, 1.0 + down_bias
        self.w_max, self.w_min = w_max, w_min
        self._nominal_w_max, self._nominal_w_min = w_max, w_min
        self._sampled = False
        super().__init__(dw_min=dw_min, cycle_noise=dw_min_std,
                         cycle_noise_type="multiplicative" if self.mult_noise else "additive",
                         write_noise=write_noise_std, device_to_device_distribution=device_to_device_distribution)

    # ------------------------------------------------------------------ response
    def _shape_up(self, w):
        return torch.ones_like(w)

    def _shape_down(self, w):
        return torch.ones_like(w)

    def q_plus(self, w):
        """scale_up * shape_up(w) (noise-free mean step of an up pulse, units of dw_min)."""
        return self.scale_up * self._shape_up(w)

    def q_minus(self, w):
        """scale_down * shape_down(w) (noise-free mean step of a down pulse, units of dw_min)."""
        return self.scale_down * self._shape_down(w)

    def q_signed(self, w, sign):
        """q_plus where sign > 0, else q_minus; only one of them when every sign agrees."""
        up = sign > 0
        if bool(up.all()):
            return self.q_plus(w).expand(w.shape)
        if not bool(up.any()):
            return self.q_minus(w).expand(w.shape)
        return torch.where(up, self.q_plus(w), self.q_minus(w))

    def bounds(self):
        return (self.w_min, self.w_max)

    def _range(self):
        return self.w_max - self.w_min

    def symmetric_point(self):
        """Per element: the state where G = (q_minus - q_plus) / 2 changes sign (bisection), or,
        where it does not inside the bounds (hard bounds, e.g. ConstantStep with up_down != 0),
        the bound that alternating pulses drift to (w_max if q_plus > q_minus, w_min if less;
        0 (clamped to the bounds) when G = 0 at both ends, as Ideal reports)."""
        lo, hi = (torch.as_tensor(v, dtype=torch.float64) for v in self.bounds())
        shape = torch.broadcast_shapes(lo.shape, hi.shape, *self._param_shapes())
        lo, hi = lo.expand(shape), hi.expand(shape)
        eps = 1e-12 * (hi - lo)
        a, b = (lo + eps).clone(), (hi - eps).clone()
        ga, gb = self.G(a).to(torch.float64), self.G(b).to(torch.float64)
        for _ in range(80):
            m = 0.5 * (a + b)
            gm = self.G(m).to(torch.float64)
            left = (ga * gm) <= 0
            b = torch.where(left, m, b)
            a = torch.where(left, a, m)
            ga = torch.where(left, ga, gm)
        sp = 0.5 * (a + b)
        g_lo, g_hi = self.G(lo + eps).to(torch.float64), gb
        same = (g_lo * g_hi) > 0
        drift = torch.where(g_lo < 0, hi, lo)
        flat = (g_lo == 0) & (g_hi == 0)
        sp = torch.where(same, drift, sp)
        return torch.where(flat, torch.zeros_like(sp).clamp(lo, hi), sp)

    # ------------------------------------------------------------------ device-to-device draws
    def _factor(self, std, shape, generator, lognormal=False):
        """1 + std xi (aihwkit) or exp(std xi) ("lognormal" distribution / log-normal field)."""
        xi = torch.randn(shape, generator=generator, dtype=torch.float64)
        if lognormal or self.device_to_device_distribution == "lognormal":
            return torch.exp(std * xi)
        return 1.0 + std * xi

    def _draw(self, std, shape, generator):
        """std xi, or zeros without a draw when std is 0."""
        if std == 0:
            return torch.zeros(shape, dtype=torch.float64)
        return std * torch.randn(shape, generator=generator, dtype=torch.float64)

    def _scaled(self, value, std, shape, generator, lognormal=False):
        if std == 0:
            return torch.full(shape, float(value), dtype=torch.float64)
        return value * self._factor(std, shape, generator, lognormal)

    def _populate(self, shape, generator) -> dict[str, torch.Tensor]:
        """aihwkit ``PulsedRPUDevice::populate`` (float64, CPU): scales, bounds, corruption."""
        w_max = self._scaled(self._nominal_w_max, self.w_max_dtod, shape, generator)
        w_min = self._scaled(self._nominal_w_min, self.w_min_dtod, shape, generator)
        gain = self._scaled(1.0, self.dw_min_dtod, shape, generator, self.dw_min_dtod_log_normal)
        r = self._draw(self.up_down_dtod, shape, generator)
        up_bias, down_bias = _up_down_bias(self.up_down)
        scale_up, scale_down = up_bias + gain + r, down_bias + gain - r
        if self.enforce_consistency:
            scale_up, scale_down = scale_up.abs(), scale_down.abs()
            crossed = w_min > w_max
            w_max, w_min = torch.where(crossed, w_min, w_max).abs(), -torch.where(crossed, w_max, w_min).abs()
        else:
            crossed = w_min > w_max
            mid = 0.5 * (w_max + w_min)
            w_max, w_min = torch.where(crossed, mid, w_max), torch.where(crossed, mid, w_min)
        if self.corrupt_devices_prob > 0:
            stuck = torch.rand(shape, generator=generator, dtype=torch.float64) < self.corrupt_devices_prob
            rng = abs(self.corrupt_devices_range)
            lo = torch.minimum(w_max, w_min).clamp_min(-rng)
            hi = torch.maximum(w_max, w_min).clamp_max(rng)
            value = lo + (hi - lo) * torch.rand(shape, generator=generator, dtype=torch.float64)
            w_max, w_min = torch.where(stuck, value, w_max), torch.where(stuck, value, w_min)
            scale_up = torch.where(stuck, 0.0, scale_up)
            scale_down = torch.where(stuck, 0.0, scale_down)
        out = {"scale_up": scale_up, "scale_down": scale_down, "w_max": w_max, "w_min": w_min}
        out.update(self._populate_drift(shape, generator))
        return out

    def _populate_drift(self, shape, generator) -> dict[str, torch.Tensor]:
        """aihwkit's per-device diffusion rate |diffusion (1 + diffusion_dtod xi)|, reset bias
        reset + reset_dtod xi and decay scale 1 - 1 / t, t = lifetime (1 + lifetime_dtod xi)
        (0 for t <= 1; 1, no decay, for lifetime 0); one number when its spread is 0 (no draw)."""
        def one(value):
            return torch.tensor(float(value), dtype=torch.float64)

        rate = (self.diffusion * self._factor(self.diffusion_dtod, shape, generator)).abs() \
            if self.diffusion > 0 and self.diffusion_dtod > 0 else one(self.diffusion)
        bias = self.reset + self._draw(self.reset_dtod, shape, generator) if self.reset_dtod > 0 else one(self.reset)
        if self.lifetime > 0 and self.lifetime_dtod > 0:
            t = self.lifetime * self._factor(self.lifetime_dtod, shape, generator)
            scale = torch.where(t > 1.0, 1.0 - 1.0 / t, torch.zeros_like(t))
        else:
            scale = one(_decay_scale(self.lifetime))
        return {"decay_scale": scale, "diffusion_rate": rate, "reset_bias": bias}

    @property
    def drifts(self) -> bool:
        """Whether arrays of this device change between updates (lifetime or diffusion > 0)."""
        return self.lifetime > 0 or self.diffusion > 0

    def _populate_family(self, shape, generator, p: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Family-specific per-element draws (after the common ones); ``p`` may be modified."""
        return {}

    def sample(self, shape, generator=None, device=None, dtype=torch.float32):
        """Per-element parameters of ``shape`` drawn as aihwkit's ``populate`` (see module doc)."""
        shape = tuple(shape)
        p = self._populate(shape, generator)
        p.update(self._populate_family(shape, generator, p))
        new = self.with_params(**{k: v.to(device=device, dtype=dtype) for k, v in p.items()})
        new._sampled = True
        new.device_to_device = {}
        return new

    # ------------------------------------------------------------------ reporting
    def aihwkit_fields(self) -> dict:
        """The aihwkit dataclass fields this device was configured with (nominal values)."""
        d = {"dw_min": float(self.dw_min), "dw_min_dtod": self.dw_min_dtod,
             "dw_min_dtod_log_normal": self.dw_min_dtod_log_normal, "dw_min_std": self.dw_min_std,
             "up_down": self.up_down, "up_down_dtod": self.up_down_dtod, "w_max": self._nominal_w_max,
             "w_max_dtod": self.w_max_dtod, "w_min": self._nominal_w_min, "w_min_dtod": self.w_min_dtod,
             "enforce_consistency": self.enforce_consistency, "corrupt_devices_prob": self.corrupt_devices_prob,
             "corrupt_devices_range": self.corrupt_devices_range, "write_noise_std": self.write_noise_std,
             "reset": self.reset, "reset_dtod": self.reset_dtod, "reset_std": self.reset_std,
             "lifetime": self.lifetime, "lifetime_dtod": self.lifetime_dtod, "diffusion": self.diffusion,
             "diffusion_dtod": self.diffusion_dtod}
        d.update(self._family_fields())
        return d

    def _family_fields(self) -> dict:
        return {}

    def describe(self):
        d = super().describe()
        d["aihwkit_class"] = self.aihwkit_class
        d["aihwkit"] = self.aihwkit_fields()
        return d


class ConstantStep(AihwkitPulsedDevice):
    """aihwkit ``ConstantStepDevice``: q_plus = scale_up, q_minus = scale_down (hard bounds).

    w <- clamp(w + s dw_min scale_s (1 + dw_min_std xi), w_min, w_max).
    """

    family = "constant_step"
    aihwkit_class = "ConstantStepDevice"

    def affine_pulse_coefficients(self, shape, dtype=torch.float32, device=None):
        """cu0 = dw_min scale_up, cd0 = dw_min scale_down, no slope (multiplicative noise)."""
        if type(self).q_plus is not ConstantStep.q_plus or type(self).apply_pulse is not Device.apply_pulse:
            return None
        dw = self.dw_min
        return self._flat_columns((dw * self.scale_up, 0.0, dw * self.scale_down, 0.0, self.w_min, self.w_max, dw),
                                  shape, dtype, device)


class LinearStep(AihwkitPulsedDevice):
    """aihwkit ``LinearStepDevice`` (C++ ``LinearStepRPUDevice``)::

        q_plus(w)  = scale_up   (1 - gamma_up   w / ref_up)
        q_minus(w) = scale_down (1 - gamma_down w / ref_down)

    ref_up = w_max, ref_down = w_min: the nominal bounds with ``mean_bound_reference`` (default),
    else the element's own bounds. Per element gamma_d = gamma_d + gamma_d_dtod xi, made
    |gamma_d| unless ``allow_increasing`` (aihwkit ``ls_decrease_up/down``). Cycle noise:
    ``mult_noise=True`` (default): w += s dw_min q_s(w) (1 + dw_min_std xi); ``False``:
    w += s dw_min (q_s(w) + scale_s dw_min_std xi) (aihwkit ``update_once_add``).
    gamma 0 is ConstantStep; gamma 1 with ``mean_bound_reference=False`` is aihwkit's SoftBounds.
    """

    family = "linear_step"
    aihwkit_class = "LinearStepDevice"
    element_params = AihwkitPulsedDevice.element_params + ("gamma_up", "gamma_down")

    def __init__(self, *, gamma_up: float = 0.0, gamma_down: float = 0.0, gamma_up_dtod: float = 0.05,
                 gamma_down_dtod: float = 0.05, allow_increasing: bool = False, mean_bound_reference: bool = True,
                 **kwargs) -> None:
        self.gamma_up, self.gamma_down = _finite("gamma_up", gamma_up), _finite("gamma_down", gamma_down)
        self.gamma_up_dtod = _nonneg("gamma_up_dtod", gamma_up_dtod)
        self.gamma_down_dtod = _nonneg("gamma_down_dtod", gamma_down_dtod)
        self.allow_increasing, self.mean_bound_reference = bool(allow_increasing), bool(mean_bound_reference)
        if not self.allow_increasing:
            self.gamma_up, self.gamma_down = abs(self.gamma_up), abs(self.gamma_down)
        super().__init__(**kwargs)

    def _refs(self):
        if self.mean_bound_reference:
            return self._nominal_w_max, self._nominal_w_min
        return self.w_max, self.w_min

    def _slopes(self):
        """(gamma_up / ref_up, gamma_down / ref_down), 0 where the reference is 0."""
        def div(g, r):
            if isinstance(r, torch.Tensor):
                return torch.where(r != 0, g / torch.where(r != 0, r, torch.ones_like(r)), torch.zeros_like(r))
            return g / r if r != 0 else 0.0 * g

        def make():
            ru, rd = self._refs()
            return div(self.gamma_up, ru), div(self.gamma_down, rd)

        return self.derived("linear_step_slopes", make)

    def _shape_up(self, w):
        return 1.0 - self._slopes()[0] * w

    def _shape_down(self, w):
        return 1.0 - self._slopes()[1] * w

    def _populate_family(self, shape, generator, p):
        gu = self.gamma_up + self._draw(self.gamma_up_dtod, shape, generator)
        gd = self.gamma_down + self._draw(self.gamma_down_dtod, shape, generator)
        if not self.allow_increasing:
            gu, gd = gu.abs(), gd.abs()
        return {"gamma_up": gu, "gamma_down": gd}

    def apply_pulse(self, w, sign, generator=None):
        """Multiplicative noise: the base rule; additive (``mult_noise=False``):
        w <- clamp(w + s dw_min (q_s(w) + scale_s dw_min_std xi))."""
        if self.mult_noise or self.cycle_noise == 0:
            return super().apply_pulse(w, sign, generator)
        q = self.q_signed(w, sign)
        scale = torch.where(sign > 0, torch.as_tensor(self.scale_up, dtype=w.dtype),
                            torch.as_tensor(self.scale_down, dtype=w.dtype))
        xi = torch.randn(w.shape, generator=generator, device=w.device, dtype=w.dtype)
        return self.clamp(w + sign * self.dw_min * (q + self.cycle_noise * scale * xi))

    def affine_pulse_coefficients(self, shape, dtype=torch.float32, device=None):
        """dw_min q_plus = dw su - dw su (gamma_up / ref_up) w, dw_min q_minus likewise (the
        compiled kernels; additive noise scaled per polarity by :meth:`additive_noise_scales`)."""
        if (type(self)._shape_up is not LinearStep._shape_up or type(self)._shape_down is not LinearStep._shape_down
                or type(self).apply_pulse is not LinearStep.apply_pulse):
            return None
        f64 = torch.float64
        dw = torch.as_tensor(self.dw_min, dtype=f64)
        su, sd = torch.as_tensor(self.scale_up, dtype=f64), torch.as_tensor(self.scale_down, dtype=f64)
        ku, kd = (torch.as_tensor(k, dtype=f64) for k in self._slopes())
        return self._flat_columns((dw * su, -dw * su * ku, dw * sd, -dw * sd * kd, self.w_min, self.w_max, dw),
                                  shape, dtype, device)

    def additive_noise_scales(self, shape, dtype=torch.float32, device=None):
        """aihwkit ``update_once_add``: the additive noise of a pulse is dw_min scale_s dw_min_std xi."""
        if self.mult_noise:
            return None
        return self.scale_up, self.scale_down

    def symmetric_point(self):
        """G = 0 of the affine responses: w* = (su - sd) / (su k_up - sd k_down), k = gamma / ref,
        clamped to the bounds; numeric bisection where the slopes cancel."""
        ku, kd = self._slopes()
        su, sd = self.scale_up, self.scale_down
        den = torch.as_tensor(su * ku - sd * kd, dtype=torch.float64)
        num = torch.as_tensor(su - sd, dtype=torch.float64)
        if bool((den == 0).any()):
            return super().symmetric_point()
        sp = num / den
        lo, hi = (torch.as_tensor(b, dtype=torch.float64) for b in self.bounds())
        return torch.minimum(torch.maximum(sp, lo), hi)

    def _family_fields(self):
        return {"gamma_up": float(self.gamma_up) if not isinstance(self.gamma_up, torch.Tensor) else "per-element",
                "gamma_down": float(self.gamma_down) if not isinstance(self.gamma_down, torch.Tensor) else "per-element",
                "gamma_up_dtod": self.gamma_up_dtod, "gamma_down_dtod": self.gamma_down_dtod,
                "allow_increasing": self.allow_increasing, "mean_bound_reference": self.mean_bound_reference,
                "mult_noise": self.mult_noise}


class SoftBoundsPmax(LinearStep):
    """aihwkit ``SoftBoundsPmaxDevice``: soft bounds given by p_max pulses from range_min to
    range_max with rate alpha, converted as aihwkit's ``as_bindings``::

        B = (range_max - range_min) / (1 - exp(-p_max alpha))
        w_min = range_min, w_max = range_min + B, dw_min = B alpha, up_down = 1 + 2 range_min / B

    then aihwkit's SoftBounds (LinearStep with gamma 1 at the element's own bounds, no gamma
    spread): q_plus = scale_up (1 - w / w_max), q_minus = scale_down (1 - w / w_min).
    Defaults p_max 1000, alpha 0.0005, range_min -1, range_max 1, mult_noise True.
    """

    family = "softbounds_pmax"
    aihwkit_class = "SoftBoundsPmaxDevice"

    def __init__(self, *, p_max: float = 1000, alpha: float = 0.001 / 2, range_min: float = -1.0,
                 range_max: float = 1.0, **kwargs) -> None:
        for bad in ("w_min", "w_max", "dw_min", "up_down", "n_states"):
            if bad in kwargs:
                raise ValueError(f"SoftBoundsPmax derives {bad} from p_max, alpha, range_min, range_max; do not give it")
        self.p_max, self.alpha = _positive("p_max", p_max), _positive("alpha", alpha)
        range_min, range_max = _finite("range_min", range_min), _finite("range_max", range_max)
        if not range_min < 0.0 < range_max:
            raise ValueError(f"range_min < 0 < range_max required (allowed: range_min in (-inf, 0), range_max in "
                             f"(0, inf)), got range_min={range_min!r}, range_max={range_max!r}")
        self.range_min, self.range_max = range_min, range_max
        b = (range_max - range_min) / (1.0 - math.exp(-self.p_max * self.alpha))
        super().__init__(gamma_up=1.0, gamma_down=1.0, gamma_up_dtod=0.0, gamma_down_dtod=0.0,
                         allow_increasing=False, mean_bound_reference=False, w_min=range_min, w_max=range_min + b,
                         dw_min=b * self.alpha, up_down=1.0 + 2.0 * range_min / b, **kwargs)

    def _family_fields(self):
        d = super()._family_fields()
        d.update(p_max=self.p_max, alpha=self.alpha, range_min=self.range_min, range_max=self.range_max)
        return d


class SoftBoundsReference(LinearStep):
    """aihwkit ``SoftBoundsReferenceDevice``: soft bounds (LinearStep with gamma 1 at the
    element's bounds) with per-element slope spreads that move the bounds::

        w_max <- w_max / |1 + slope_up_dtod xi|,  w_min <- w_min / |1 + slope_down_dtod xi|

    (only where w_max > 0 > w_min), q_plus = scale_up (1 - w / w_max), q_minus = scale_down
    (1 - w / w_min); additive cycle noise by default (``mult_noise=False``: w += s dw_min scale_s
    (1 - w / b_s + dw_min_std xi)). The reference conductance r (read value w - r) is a property
    of the array here: ``reference_mean``, ``reference_std`` and ``subtract_symmetry_point`` are
    stored and :meth:`array_reference` gives the matching AnalogArray ``reference`` argument.
    """

    family = "softbounds_reference"
    aihwkit_class = "SoftBoundsReferenceDevice"
    _default_mult_noise = False

    def __init__(self, *, slope_up_dtod: float = 0.0, slope_down_dtod: float = 0.0, reference_mean: float = 0.0,
                 reference_std: float = 0.0, subtract_symmetry_point: bool = False, **kwargs) -> None:
        self.slope_up_dtod = _nonneg("slope_up_dtod", slope_up_dtod)
        self.slope_down_dtod = _nonneg("slope_down_dtod", slope_down_dtod)
        self.reference_mean = _finite("reference_mean", reference_mean)
        self.reference_std = _nonneg("reference_std", reference_std)
        self.subtract_symmetry_point = bool(subtract_symmetry_point)
        super().__init__(gamma_up=1.0, gamma_down=1.0, gamma_up_dtod=0.0, gamma_down_dtod=0.0,
                         allow_increasing=False, mean_bound_reference=False, **kwargs)

    def _populate_family(self, shape, generator, p):
        out = super()._populate_family(shape, generator, p)
        ok = (p["w_max"] > 0) & (p["w_min"] < 0)
        if self.slope_up_dtod > 0:
            p["w_max"] = torch.where(ok, p["w_max"] / self._factor(self.slope_up_dtod, shape, generator).abs(),
                                     p["w_max"])
        if self.slope_down_dtod > 0:
            p["w_min"] = torch.where(ok, p["w_min"] / self._factor(self.slope_down_dtod, shape, generator).abs(),
                                     p["w_min"])
        return out

    def array_reference(self):
        """The AnalogArray ``reference`` matching aihwkit's: r = SP + reference_mean + reference_std xi
        with ``subtract_symmetry_point`` (a ReferenceOffset), else the constant reference_mean (None
        for 0)."""
        from ..arrays import ReferenceOffset

        if self.subtract_symmetry_point:
            return ReferenceOffset(mean=self.reference_mean, std=self.reference_std)
        if self.reference_std == 0:
            return None if self.reference_mean == 0 else self.reference_mean
        raise ValueError("reference_std > 0 without subtract_symmetry_point (r = mean + std xi about 0) has no "
                         "AnalogArray reference form yet; use subtract_symmetry_point=True or reference_std=0")

    def _family_fields(self):
        return {"mult_noise": self.mult_noise, "slope_up_dtod": self.slope_up_dtod,
                "slope_down_dtod": self.slope_down_dtod, "reference_mean": self.reference_mean,
                "reference_std": self.reference_std, "subtract_symmetry_point": self.subtract_symmetry_point}


class ExpStep(AihwkitPulsedDevice):
    """aihwkit ``ExpStepDevice`` (C++ ``ExpStepRPUDevice``)::

        z = 2 a w / (w_max - w_min) + b                 (the element's bounds)
        q_plus(w)  = scale_up   max(1 - A_up   exp( gamma_up   z), 0)
        q_minus(w) = scale_down max(1 - A_down exp(-gamma_down z), 0)

    Defaults A_up 0.00081, A_down 0.36833, gamma_up 12.44625, gamma_down 12.78785, a 0.244,
    b 0.2425 (not varied per device in aihwkit). Cycle noise multiplicative, except with
    ``dw_min_std_add`` or ``dw_min_std_slope`` != 0 (aihwkit ``update_once_complex_noise``):
    dw = s dw_min q_s(w), w <- clamp(w + dw + dw_min_std (|dw| + dw_min_std_add +
    dw_min_std_slope |w|) xi); q_plus / q_minus stay the noise-free mean response.
    """

    family = "exp_step"
    aihwkit_class = "ExpStepDevice"

    def __init__(self, *, A_up: float = 0.00081, A_down: float = 0.36833, gamma_up: float = 12.44625,
                 gamma_down: float = 12.78785, a: float = 0.244, b: float = 0.2425, dw_min_std_add: float = 0.0,
                 dw_min_std_slope: float = 0.0, **kwargs) -> None:
        self.A_up, self.A_down = _finite("A_up", A_up), _finite("A_down", A_down)
        self.gamma_up, self.gamma_down = _finite("gamma_up", gamma_up), _finite("gamma_down", gamma_down)
        self.a, self.b = _finite("a", a), _finite("b", b)
        self.dw_min_std_add = _finite("dw_min_std_add", dw_min_std_add)
        self.dw_min_std_slope = _finite("dw_min_std_slope", dw_min_std_slope)
        super().__init__(**kwargs)

    def has_complex_noise(self) -> bool:
        """aihwkit's hasComplexNoise: dw_min_std > 0 and (add or slope) != 0."""
        return self.dw_min_std > 0 and (self.dw_min_std_add != 0 or self.dw_min_std_slope != 0)

    def _z(self, w):
        rng = self._range()
        if isinstance(rng, torch.Tensor):
            rng = torch.where(rng > 0, rng, torch.ones_like(rng))
        return 2.0 * self.a * w / rng + self.b

    #: scalar shape fields that devices.fitting.fit_device may fit
    fit_fields = ("A_up", "A_down", "gamma_up", "gamma_down", "a", "b")
    #: of them, those fitted in log space (positive)
    fit_positive = ("A_up", "A_down", "gamma_up", "gamma_down")

    def _shape_up(self, w):
        return (1.0 - self.A_up * torch.exp(self.gamma_up * self._z(w))).clamp_min(0.0)

    def _shape_down(self, w):
        return (1.0 - self.A_down * torch.exp(-self.gamma_down * self._z(w))).clamp_min(0.0)

    def shaped_pulse_coefficients(self, shape, dtype=torch.float32, device=None):
        """The kernels' saturating-exponential map (code 3): with z = b + (2 a / R) w,
        q_plus = scale_up max(1 - A_up exp(gamma_up z), 0), q_minus = scale_down
        max(1 - A_down exp(-gamma_down z), 0); None with aihwkit's complex noise (its own rule) or
        for subclasses that change the shapes."""
        if (self.has_complex_noise() or type(self)._shape_up is not ExpStep._shape_up
                or type(self)._shape_down is not ExpStep._shape_down or type(self)._z is not ExpStep._z):
            return None
        f64 = torch.float64
        dw = torch.as_tensor(self.dw_min, dtype=f64)
        rng = torch.as_tensor(self._range(), dtype=f64)
        slope = 2.0 * self.a / torch.where(rng > 0, rng, torch.ones_like(rng))
        up = (dw * torch.as_tensor(self.scale_up, dtype=f64), self.b, slope, self.gamma_up, self.A_up)
        down = (-dw * torch.as_tensor(self.scale_down, dtype=f64), self.b, slope, -self.gamma_down, self.A_down)
        return 3, up, down, self.w_min, self.w_max, dw

    def apply_pulse(self, w, sign, generator=None):
        """Base multiplicative rule, or aihwkit's complex noise (class doc)."""
        if not self.has_complex_noise():
            return super().apply_pulse(w, sign, generator)
        dw = sign * self.dw_min * self.q_signed(w, sign)
        std = self.dw_min_std * (dw.abs() + self.dw_min_std_add + self.dw_min_std_slope * w.abs())
        xi = torch.randn(w.shape, generator=generator, device=w.device, dtype=w.dtype)
        return self.clamp(w + dw + std * xi)

    def _family_fields(self):
        return {"A_up": self.A_up, "A_down": self.A_down, "gamma_up": self.gamma_up, "gamma_down": self.gamma_down,
                "a": self.a, "b": self.b, "dw_min_std_add": self.dw_min_std_add,
                "dw_min_std_slope": self.dw_min_std_slope}


class PowStep(AihwkitPulsedDevice):
    """aihwkit ``PowStepDevice`` (C++ ``PowStepRPUDevice``), independent bounds::

        q_plus(w)  = scale_up   ((w_max - w) / (w_max - w_min)) ** gamma_up
        q_minus(w) = scale_down ((w - w_min) / (w_max - w_min)) ** gamma_down

    aihwkit's step scale: at w the step is dw_min times the relative distance to the bound to the
    power gamma (0.5 ** gamma at the middle of symmetric bounds). Per element (aihwkit
    ``ps_gamma*``): gain = 1 + pow_gamma_dtod xi, r = pow_up_down_dtod xi,
    gamma_up = (up_bias + gain + r) pow_gamma, gamma_down = (down_bias + gain - r) pow_gamma with
    (up_bias, down_bias) from pow_up_down like up_down; |.| with enforce_consistency.
    Defaults pow_gamma 1, pow_gamma_dtod 0.1, pow_up_down 0, pow_up_down_dtod 0.
    """

    family = "pow_step"
    aihwkit_class = "PowStepDevice"
    element_params = AihwkitPulsedDevice.element_params + ("gamma_up", "gamma_down")

    def __init__(self, *, pow_gamma: float = 1.0, pow_gamma_dtod: float = 0.1, pow_up_down: float = 0.0,
                 pow_up_down_dtod: float = 0.0, **kwargs) -> None:
        self.pow_gamma = _positive("pow_gamma", pow_gamma)
        self.pow_gamma_dtod = _nonneg("pow_gamma_dtod", pow_gamma_dtod)
        self.pow_up_down = _finite("pow_up_down", pow_up_down)
        if not -1.0 < self.pow_up_down < 1.0:
            raise ValueError(f"pow_up_down must lie in (-1, 1), got {pow_up_down!r}")
        self.pow_up_down_dtod = _nonneg("pow_up_down_dtod", pow_up_down_dtod)
        ub, db = _up_down_bias(self.pow_up_down)
        self.gamma_up, self.gamma_down = (1.0 + ub) * self.pow_gamma, (1.0 + db) * self.pow_gamma
        super().__init__(**kwargs)

    def _rel(self, x):
        rng = self._range()
        if isinstance(rng, torch.Tensor):
            safe = torch.where(rng > 0, rng, torch.ones_like(rng))
            return torch.where(rng > 0, x / safe, torch.zeros_like(x)).clamp_min(0.0)
        return (x / rng).clamp_min(0.0)

    def _shape_up(self, w):
        return self._rel(self.w_max - w) ** self.gamma_up

    def _shape_down(self, w):
        return self._rel(w - self.w_min) ** self.gamma_down

    def shaped_pulse_coefficients(self, shape, dtype=torch.float32, device=None):
        """The kernels' power map (code 1): q_plus = scale_up max(w_max / R - w / R, 0)^gamma_up,
        q_minus = scale_down max(-w_min / R + w / R, 0)^gamma_down, R = w_max - w_min (steps 0
        where R <= 0, as :meth:`_rel`); None for subclasses that change the shapes or the pulse."""
        if (type(self)._shape_up is not PowStep._shape_up or type(self)._shape_down is not PowStep._shape_down
                or type(self).apply_pulse is not Device.apply_pulse):
            return None
        f64 = torch.float64
        dw = torch.as_tensor(self.dw_min, dtype=f64)
        w_max, w_min = torch.as_tensor(self.w_max, dtype=f64), torch.as_tensor(self.w_min, dtype=f64)
        rng = w_max - w_min
        ok = rng > 0
        inv = torch.where(ok, 1.0 / torch.where(ok, rng, torch.ones_like(rng)), torch.zeros_like(rng))
        s_up = torch.where(ok, dw * torch.as_tensor(self.scale_up, dtype=f64), torch.zeros_like(rng))
        s_dn = torch.where(ok, -dw * torch.as_tensor(self.scale_down, dtype=f64), torch.zeros_like(rng))
        g_up, g_dn = torch.as_tensor(self.gamma_up, dtype=f64), torch.as_tensor(self.gamma_down, dtype=f64)
        return (1, (s_up, w_max * inv, -inv, g_up, 1.0), (s_dn, -w_min * inv, inv, g_dn, 1.0), w_min, w_max, dw)

    def _populate_family(self, shape, generator, p):
        gain = self._scaled(1.0, self.pow_gamma_dtod, shape, generator)
        r = self._draw(self.pow_up_down_dtod, shape, generator)
        ub, db = _up_down_bias(self.pow_up_down)
        gu, gd = (ub + gain + r) * self.pow_gamma, (db + gain - r) * self.pow_gamma
        if self.enforce_consistency:
            gu, gd = gu.abs(), gd.abs()
        return {"gamma_up": gu, "gamma_down": gd}

    def _family_fields(self):
        return {"pow_gamma": self.pow_gamma, "pow_gamma_dtod": self.pow_gamma_dtod, "pow_up_down": self.pow_up_down,
                "pow_up_down_dtod": self.pow_up_down_dtod}


def device_reference(device) -> torch.Tensor:
    """AnalogArray ``reference`` callable: the per-element reference a device drew itself
    (``reference_value``, e.g. PowStepReference)."""
    return device.reference_value


class PowStepReference(PowStep):
    """aihwkit ``PowStepReferenceDevice``: PowStep with a static reference r per element drawn at
    construction, the array reading w - r::

        r = reference_mean + reference_std xi  (+ SP~ with ``subtract_symmetry_point``)

    where SP~ is aihwkit's numerical estimate of the symmetric point: starting at 0,
    n_estimation_steps noise-free (up, down) pulse pairs, SP~ += s_up (rel. distance to w_max)^g_up
    - s_down (rel. distance to w_min)^g_down (n <= 0: 10 x range / min step, at most 10,000; only
    where w_max > 0 > w_min); the reset bias moves by SP~ too. No write noise (as aihwkit).
    Build arrays with ``reference=device.array_reference()``.
    """

    family = "pow_step_reference"
    aihwkit_class = "PowStepReferenceDevice"
    element_params = PowStep.element_params + ("reference_value",)

    def __init__(self, *, subtract_symmetry_point: bool = False, n_estimation_steps: int = -1,
                 reference_mean: float = 0.0, reference_std: float = 0.0, **kwargs) -> None:
        if kwargs.get("write_noise_std", 0.0):
            raise ValueError("PowStepReference has no write noise (aihwkit: not supported); write_noise_std must be 0")
        if not isinstance(n_estimation_steps, int) or isinstance(n_estimation_steps, bool):
            raise ValueError(f"n_estimation_steps must be an integer (<= 0: automatic), got {n_estimation_steps!r}")  # noqa: TRY004
        self.subtract_symmetry_point = bool(subtract_symmetry_point)
        self.n_estimation_steps = n_estimation_steps
        self.reference_mean = _finite("reference_mean", reference_mean)
        self.reference_std = _nonneg("reference_std", reference_std)
        self.reference_value = self.reference_mean
        super().__init__(**kwargs)

    def estimated_symmetric_point(self, p: dict[str, torch.Tensor]) -> torch.Tensor:
        """aihwkit's SP~ from the sampled parameters ``p`` (class doc), float64."""
        bu, bd = p["w_max"].to(torch.float64), p["w_min"].to(torch.float64)
        su, sd = self.dw_min * p["scale_up"].to(torch.float64), self.dw_min * p["scale_down"].to(torch.float64)
        gu, gd = p["gamma_up"].to(torch.float64), p["gamma_down"].to(torch.float64)
        r = bu - bd
        ok = (bu > 0) & (bd < 0)
        if self.n_estimation_steps > 0:
            steps = torch.full(bu.shape, self.n_estimation_steps, dtype=torch.long)
        else:
            step = torch.minimum(sd.abs(), su.abs()).clamp_min(1e-30)
            steps = torch.round(10.0 * r / step).clamp(max=10000).long()
        steps = torch.where(ok, steps, torch.zeros_like(steps))
        safe_r = torch.where(r > 0, r, torch.ones_like(r))
        sp = torch.zeros_like(bu)
        for i in range(int(steps.max()) if steps.numel() else 0):
            move = -sd * ((sp - bd) / safe_r).clamp_min(0) ** gd + su * ((bu - sp) / safe_r).clamp_min(0) ** gu
            sp = torch.where(steps > i, sp + move, sp)
        return sp

    def _populate_family(self, shape, generator, p):
        out = super()._populate_family(shape, generator, p)
        ref = self.reference_mean + self._draw(self.reference_std, shape, generator)
        if self.subtract_symmetry_point:
            sp = self.estimated_symmetric_point({**p, **out})
            ref = ref + sp
            p["reset_bias"] = p["reset_bias"] + sp
        out["reference_value"] = ref
        return out

    def array_reference(self):
        """The AnalogArray ``reference`` argument: the per-element r drawn with the device."""
        return device_reference

    def _family_fields(self):
        d = super()._family_fields()
        d.update(subtract_symmetry_point=self.subtract_symmetry_point, n_estimation_steps=self.n_estimation_steps,
                 reference_mean=self.reference_mean, reference_std=self.reference_std)
        return d


class PiecewiseStep(AihwkitPulsedDevice):
    """aihwkit ``PiecewiseStepDevice``: step factors given at n + 1 equidistant nodes over the
    element's [w_min, w_max], linearly interpolated::

        u = max((w - w_min) / (w_max - w_min) n, 0), i = min(floor(u), n - 1), t = min(u - i, 1)
        q_plus(w)  = scale_up   ((1 - t) piecewise_up[i]   + t piecewise_up[i + 1])
        q_minus(w) = scale_down ((1 - t) piecewise_down[i] + t piecewise_down[i + 1])

    (a single node: a constant factor). Defaults piecewise_up = piecewise_down = [1].
    """

    family = "piecewise_step"
    aihwkit_class = "PiecewiseStepDevice"
    #: node vectors that devices.fitting.fit_device may fit
    fit_fields = ("piecewise_up", "piecewise_down")

    def __init__(self, *, piecewise_up: Sequence[float] = (1.0,), piecewise_down: Sequence[float] = (1.0,),
                 **kwargs) -> None:
        up = torch.as_tensor([float(v) for v in piecewise_up], dtype=torch.float64)
        down = torch.as_tensor([float(v) for v in piecewise_down], dtype=torch.float64)
        if up.numel() < 1 or up.shape != down.shape:
            raise ValueError(f"piecewise_up and piecewise_down must be non-empty and of equal length, got "
                             f"{up.numel()} and {down.numel()} nodes")
        for name, v in (("piecewise_up", up), ("piecewise_down", down)):
            if not bool(torch.isfinite(v).all()) or bool((v < 0).any()):
                raise ValueError(f"{name} entries must be finite and >= 0 (allowed range: [0, inf)), got {v.tolist()}")
        self.piecewise_up, self.piecewise_down = up, down
        super().__init__(**kwargs)

    def _interp(self, w, nodes):
        vals = nodes.to(device=w.device, dtype=w.dtype)
        n = vals.numel() - 1
        if n <= 0:
            return vals[0].expand(w.shape).clone()
        rng = self._range()
        if isinstance(rng, torch.Tensor):
            safe = torch.where(rng > 0, rng, torch.ones_like(rng))
        else:
            safe = rng if rng > 0 else 1.0
        u = ((w - self.w_min) / safe * n).clamp_min(0.0)
        i = torch.floor(u).clamp(max=n - 1)
        t = (u - i).clamp(max=1.0)
        idx = i.long()
        out = (1.0 - t) * vals[idx] + t * vals[idx + 1]
        if isinstance(rng, torch.Tensor):
            out = torch.where(rng > 0, out, vals[0].expand(out.shape))
        return out

    def _shape_up(self, w):
        return self._interp(w, self.piecewise_up)

    def _shape_down(self, w):
        return self._interp(w, self.piecewise_down)

    def _family_fields(self):
        return {"piecewise_up": self.piecewise_up.tolist(), "piecewise_down": self.piecewise_down.tolist()}
