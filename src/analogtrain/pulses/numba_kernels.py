"""Compiled CPU kernels (numba) for the pulse engines; the pure-torch engines are their reference.

Kernels are used when numba is importable and ``ANALOGTRAIN_KERNELS`` is not ``"torch"``;
otherwise the torch implementation runs (one warning when numba is missing). Tests compare
every kernel with the torch reference statistically (``tests/test_kernels.py``).

Random numbers: each call seeds an inline xoshiro256** generator (splitmix64-expanded) from
one 62-bit draw of the array's torch generator, so the kernel's randomness is a function of
that generator's state, which checkpoints already carry: a resumed run is bit-identical.
Gaussians come from a 128-layer ziggurat (Marsaglia & Tsang 2000, in Doornik's ZIGNOR form,
tables built at import), one 64-bit draw per sample in the common case.

Stochastic update (:func:`stochastic_update`, aihwkit STOCHASTIC_COMPRESSED, the rule of
:class:`~analogtrain.pulses.StochasticEngine`): samples in order; per sample the bit length
BL_b and line probabilities p_x, p_d (BL and update management); per slot each input line
fires with p_x, each output line with p_d, and every coincidence (j, i) is one pulse of
polarity -sign(x_i d_j) on element (j, i), pulses of a slot applied together (a slot never
hits an element twice), slots in sequence. A pulse is the family's per-pulse map
(:meth:`~analogtrain.devices.Device.kernel_pulse_coefficients`), one of three shapes:

    affine (SoftBounds, LinearStep, ...):   polarity k: w <- w + eta (a_k + b_k w)
    power (Power, aihwkit PowStep):         polarity k: w <- w + eta s_k max(b_k + c_k w, 0)^g_k
    exponential (Exponential):              polarity k: w <- w + eta s_k expm1(g_k max(b_k + c_k w, 0)) / expm1(g_k)
    saturating exponential (aihwkit ExpStep): polarity k: w <- w + eta s_k max(1 - A_k exp(g_k (b_k + c_k w)), 0)

with eta = 1 + sigma xi (multiplicative cycle noise) or 1 and an added dw sigma n_k xi (additive;
n_k = 1, or aihwkit LinearStep's scale_up / scale_down), then clamped to [lo, hi].
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch

try:  # numba is optional
    import numba
    from numba import njit
except ImportError:  # pragma: no cover - exercised in environments without numba
    numba = None

def ziggurat_tables(layers: int = 128, r: float = 3.442619855899, v: float = 9.91256303526217e-3):
    """Layer edges x[0..layers] of the normal ziggurat (Doornik 2005, ZIGNOR), x[layers] = 0."""
    x = np.zeros(layers + 1)
    f = np.exp(-0.5 * r * r)
    x[0] = v / f
    x[1] = r
    for i in range(2, layers):
        x[i] = np.sqrt(-2.0 * np.log(v / x[i - 1] + f))
        f = np.exp(-0.5 * x[i] * x[i])
    return x, r


ZIG_X, ZIG_R = ziggurat_tables()
ZIG_RATIO = np.append(ZIG_X[1:] / ZIG_X[:-1], 0.0)

#: noise types of the kernels
NOISE_NONE, NOISE_MULTIPLICATIVE, NOISE_ADDITIVE = 0, 1, 2
#: response shapes of the kernels' per-pulse map (module docstring)
SHAPE_AFFINE, SHAPE_POWER, SHAPE_EXPONENTIAL, SHAPE_SATURATING_EXP = 0, 1, 2, 3

_warned = False


def kernels_enabled() -> bool:
    """True when numba is importable and ``ANALOGTRAIN_KERNELS`` does not ask for torch."""
    global _warned
    if os.environ.get("ANALOGTRAIN_KERNELS", "").lower() == "torch":
        return False
    if numba is None:
        if not _warned:
            warnings.warn("numba is not installed: the pure-torch pulse engines run (slower); "
                          "pip install numba for the compiled CPU kernels", stacklevel=3)
            _warned = True
        return False
    return True


def kernel_seed(generator: torch.Generator | None) -> int:
    """One 62-bit seed for a kernel call, drawn from the array's torch generator."""
    return int(torch.randint(0, 2**62, (1,), generator=generator).item())


if numba is not None:

    @njit(cache=True, inline="always")
    def _rotl(x, k):
        return (x << numba.uint64(k)) | (x >> numba.uint64(64 - k))

    @njit(cache=True)
    def _seed_state(seed):
        """xoshiro256** state from a 64-bit seed through splitmix64."""
        s = np.empty(4, dtype=np.uint64)
        z = numba.uint64(seed)
        for k in range(4):
            z = z + numba.uint64(0x9E3779B97F4A7C15)
            v = z
            v = (v ^ (v >> numba.uint64(30))) * numba.uint64(0xBF58476D1CE4E5B9)
            v = (v ^ (v >> numba.uint64(27))) * numba.uint64(0x94D049BB133111EB)
            s[k] = v ^ (v >> numba.uint64(31))
        return s

    @njit(cache=True, inline="always")
    def _next(s):
        result = _rotl(s[1] * numba.uint64(5), 7) * numba.uint64(9)
        t = s[1] << numba.uint64(17)
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
        return result

    @njit(cache=True, inline="always")
    def _uniform(s):
        """Uniform in [0, 1) with 53 random bits."""
        return float(_next(s) >> numba.uint64(11)) * (1.0 / 9007199254740992.0)

    @njit(cache=True, inline="always")
    def _normal(s, zx, zratio, zr):
        """Standard normal by the ziggurat (ZIGNOR): layer i from the low 7 bits, u in (-1, 1)
        from the high 53 bits of one draw; the wedges and the tail (i = 0) are rare."""
        while True:
            bits = _next(s)
            i = bits & numba.uint64(127)
            u = 2.0 * (float(bits >> numba.uint64(11)) * (1.0 / 9007199254740992.0)) - 1.0
            if abs(u) < zratio[i]:
                return u * zx[i]
            if i == 0:  # tail beyond r
                while True:
                    a = -np.log(1.0 - _uniform(s)) / zr
                    b = -np.log(1.0 - _uniform(s))
                    if b + b >= a * a:
                        break
                return zr + a if u > 0 else -(zr + a)
            x = u * zx[i]
            f0 = np.exp(-0.5 * (zx[i] * zx[i] - x * x))
            f1 = np.exp(-0.5 * (zx[i + 1] * zx[i + 1] - x * x))
            if f1 + _uniform(s) * (f0 - f1) < 1.0:
                return x

    @njit(cache=True)
    def _normals(seed, n):
        """n standard normals from a seed (for the tests of the generator)."""
        s = _seed_state(seed)
        out = np.empty(n)
        zx, zratio = ZIG_X, ZIG_RATIO
        for k in range(n):
            out[k] = _normal(s, zx, zratio, ZIG_R)
        return out

    @njit(cache=True, inline="always")
    def _step(shape, a0, a1, v, gp, e, k):
        """The noise-free step of a pulse of polarity k at state v (module docstring): a0 + a1 v
        (affine); with u = b_k + a1 v and gp[e] = [b_up, g_up, norm_up, b_down, g_down, norm_down]:
        a0 max(u, 0)^g_k (power), a0 expm1(g_k max(u, 0)) norm_k (exponential),
        a0 max(1 - norm_k exp(g_k u), 0) (saturating exponential, norm_k = A_k)."""
        if shape == 0:
            return a0 + a1 * v
        u = gp[e, 3 * k] + a1 * v
        if shape == 3:
            return a0 * max(1.0 - gp[e, 3 * k + 2] * np.exp(gp[e, 3 * k + 1] * u), 0.0)
        if u <= 0.0:
            return 0.0 * a0
        if shape == 1:
            return a0 * u ** gp[e, 3 * k + 1]
        return a0 * np.expm1(gp[e, 3 * k + 1] * u) * gp[e, 3 * k + 2]

    @njit(cache=True, inline="always")
    def _noise_scale(na, e, k):
        """The additive-noise scale of polarity k at element e (na is (1, 2) when it is per polarity only)."""
        return na[e, k] if na.shape[0] > 1 else na[0, k]

    @njit(cache=True, inline="always")
    def _pulse_train(v, m, shape, k, a0, a1, gp, e, lo, hi, dw, nk, noise_type, sigma, s, zx, zratio, zr):
        """m pulses of polarity k on element e from state v: each steps by the map's step at
        v, times 1 + sigma xi (multiplicative noise) or plus dw sigma nk xi (additive), then clamps."""
        for _p in range(m):
            step = _step(shape, a0, a1, v, gp, e, k)
            if noise_type == 1:
                step *= 1.0 + sigma * _normal(s, zx, zratio, zr)
            elif noise_type == 2:
                step += dw * sigma * nk * _normal(s, zx, zratio, zr)
            v = min(max(v + step, lo), hi)
        return v

    @njit(cache=True, inline="always")
    def _counts_are_integers(counts):
        for k in range(counts.shape[0]):
            c = counts[k]
            if c != np.floor(c) or not np.isfinite(c):
                return False
        return True

    @njit(cache=True, inline="always")
    def _threshold(p):
        """Bernoulli(p) as ``32 random bits < threshold``: threshold = floor(p 2^32) (p >= 1:
        2^32, always), so the firing probability is p to within 2^-32."""
        if p >= 1.0:
            return numba.uint64(4294967296)
        return numba.uint64(p * 4294967296.0)

    @njit(cache=True, inline="always")
    def _active_lines(thresholds, active):
        """The lines that can fire (threshold > 0), in order, into ``active``; returns their number.
        Lines of probability 0 (zero inputs, e.g. the blank pixels of MNIST) draw no random bits."""
        n = 0
        for k in range(thresholds.shape[0]):
            if thresholds[k] > 0:
                active[n] = k
                n += 1
        return n

    @njit(cache=True, inline="always")
    def _fire_lines(s, thresholds, active, n, fired):
        """The lines ``active[:n]`` fire independently (32 random bits each, two lines per 64-bit
        draw); the indices of the firing lines go to ``fired`` in order. Returns their number."""
        nf = 0
        low = numba.uint64(0xFFFFFFFF)
        for k in range(0, n - 1, 2):
            r = _next(s)
            i0 = active[k]
            i1 = active[k + 1]
            if (r & low) < thresholds[i0]:
                fired[nf] = i0
                nf += 1
            if (r >> numba.uint64(32)) < thresholds[i1]:
                fired[nf] = i1
                nf += 1
        if n % 2 == 1 and (_next(s) & low) < thresholds[active[n - 1]]:
            fired[nf] = active[n - 1]
            nf += 1
        return nf

    @njit(cache=True)
    def _stochastic_update(w, x, d, lr, dw_nominal, bit_length, bl_management, update_management,
                           coef, bounds, dwe, shape, gp, na, noise_type, sigma, seed, touched, mark):
        s = _seed_state(seed)
        n_b, n_in = x.shape
        n_out = d.shape[1]
        tx = np.empty(n_in, dtype=np.uint64)
        td = np.empty(n_out, dtype=np.uint64)
        x_fire = np.empty(n_in, dtype=np.int64)
        d_fire = np.empty(n_out, dtype=np.int64)
        x_down = np.empty(n_in, dtype=np.int64)
        x_act = np.empty(n_in, dtype=np.int64)
        d_act = np.empty(n_out, dtype=np.int64)
        n_pulses = 0
        n_down = 0
        zx, zratio, zr = ZIG_X, ZIG_RATIO, ZIG_R
        for b in range(n_b):
            x_max = 0.0
            for i in range(n_in):
                x_max = max(x_max, abs(x[b, i]))
                x_down[i] = 1 if x[b, i] > 0.0 else 0
            d_max = 0.0
            for j in range(n_out):
                d_max = max(d_max, abs(d[b, j]))
            if x_max == 0.0 or d_max == 0.0:
                continue
            k = x_max * d_max * (lr / dw_nominal)
            bl = min(max(np.ceil(k), 1.0), float(bit_length)) if bl_management else float(bit_length)
            c = (lr / dw_nominal) / bl
            if update_management:
                scale_x = np.sqrt(c * d_max * min(bl / k, 1.0) / x_max)
                scale_d = c / scale_x
            else:
                scale_x = np.sqrt(c)
                scale_d = scale_x
            for i in range(n_in):
                tx[i] = _threshold(abs(x[b, i]) * scale_x)
            for j in range(n_out):
                td[j] = _threshold(abs(d[b, j]) * scale_d)
            n_xa = _active_lines(tx, x_act)
            n_da = _active_lines(td, d_act)
            if n_xa == 0 or n_da == 0:
                continue
            for _slot in range(int(bl)):
                nx = _fire_lines(s, tx, x_act, n_xa, x_fire)
                if nx == 0:
                    continue
                nd = _fire_lines(s, td, d_act, n_da, d_fire)
                n_pulses += nx * nd
                for r in range(nd):
                    j = d_fire[r]
                    # polarity -sign(x_i d_j): down (1) iff x_i and d_j have the same sign
                    d_neg = 0 if d[b, j] > 0.0 else 1
                    base = j * n_in
                    for q in range(nx):
                        e = base + x_fire[q]
                        down = x_down[x_fire[q]] ^ d_neg
                        n_down += down
                        w[e] = _pulse_train(w[e], 1, shape, down, coef[e, 2 * down], coef[e, 2 * down + 1], gp, e,
                                            bounds[e, 0], bounds[e, 1], dwe[e], _noise_scale(na, e, down),
                                            noise_type, sigma, s, zx, zratio, zr)
                        if mark:
                            touched[e] = 1
        return n_pulses - n_down, n_down


    @njit(cache=True)
    def _apply_counts(w, counts, coef, bounds, dwe, shape, gp, na, noise_type, sigma, seed, touched, mark):
        """|counts[e]| pulses of polarity sign(counts[e]) on element e, one after another.
        Returns (up, down, status): status 1 when a count is not a finite integer (nothing is
        written then: the check runs first)."""
        if not _counts_are_integers(counts):
            return 0.0, 0.0, 1
        s = _seed_state(seed)
        zx, zratio, zr = ZIG_X, ZIG_RATIO, ZIG_R
        n_up = 0.0
        n_down = 0.0
        for e in range(w.shape[0]):
            c = counts[e]
            if c == 0.0:
                continue
            down = 1 if c < 0.0 else 0
            m = int(abs(c))
            if down:
                n_down += m
            else:
                n_up += m
            w[e] = _pulse_train(w[e], m, shape, down, coef[e, 2 * down], coef[e, 2 * down + 1], gp, e, bounds[e, 0],
                                bounds[e, 1], dwe[e], _noise_scale(na, e, down), noise_type, sigma, s, zx, zratio, zr)
            if mark:
                touched[e] = 1
        return n_up, n_down, 0


    @njit(cache=True, fastmath={"reassoc", "contract"})
    def _expected_update(w, delta, coef, bounds, dwe, shape, gp, na, touched, mark):
        """The expected (compact-model) update in one pass (2502.06309 eq. 5): with
        n = |dW_e| / dw_e pulses' worth and k = 1 (down) for dW_e < 0,
        w <- clamp(w + n step_k(w)) = w + dW q_+-(w); returns the sums of n per direction (the
        expected pulse counts). The affine loop is branch-free, so LLVM vectorises it; dW = 0
        leaves w exactly as it is (n = 0)."""
        n_up = 0.0
        n_down = 0.0
        if shape == 0:
            for e in range(w.shape[0]):
                dw = delta[e]
                down = dw < 0.0
                n = abs(dw) / dwe[e]
                a0 = coef[e, 2] if down else coef[e, 0]
                a1 = coef[e, 3] if down else coef[e, 1]
                v = w[e]
                w[e] = min(max(v + n * (a0 + a1 * v), bounds[e, 0]), bounds[e, 1])
                n_down += n if down else 0.0
                n_up += 0.0 if down else n
        else:
            for e in range(w.shape[0]):
                dw = delta[e]
                if dw == 0.0:
                    continue
                k = 1 if dw < 0.0 else 0
                n = abs(dw) / dwe[e]
                v = w[e]
                step = _step(shape, coef[e, 2 * k], coef[e, 2 * k + 1], v, gp, e, k)
                w[e] = min(max(v + n * step, bounds[e, 0]), bounds[e, 1])
                if k:
                    n_down += n
                else:
                    n_up += n
        if mark:
            for e in range(w.shape[0]):
                touched[e] = delta[e] != 0.0
        return n_up, n_down

    @njit(cache=True)
    def _apply_counts_at(w, elements, counts, coef, bounds, dwe, shape, gp, na, noise_type, sigma, seed):
        """As :func:`_apply_counts` on the flat elements ``elements`` (distinct) with their
        counts; returns (up, down, status)."""
        if not _counts_are_integers(counts):
            return 0.0, 0.0, 1
        s = _seed_state(seed)
        zx, zratio, zr = ZIG_X, ZIG_RATIO, ZIG_R
        n_up = 0.0
        n_down = 0.0
        for k in range(counts.shape[0]):
            c = counts[k]
            if c == 0.0:
                continue
            e = elements[k]
            down = 1 if c < 0.0 else 0
            m = int(abs(c))
            if down:
                n_down += m
            else:
                n_up += m
            w[e] = _pulse_train(w[e], m, shape, down, coef[e, 2 * down], coef[e, 2 * down + 1], gp, e, bounds[e, 0],
                                bounds[e, 1], dwe[e], _noise_scale(na, e, down), noise_type, sigma, s, zx, zratio, zr)
        return n_up, n_down, 0


def stochastic_update(w: torch.Tensor, x: torch.Tensor, d: torch.Tensor, lr: float, dw_nominal: float,
                      engine, coefficients, noise_type: int, sigma: float, generator,
                      need_touched: bool):
    """Run the compiled stochastic update in place on the CPU tensor ``w`` (out, in).

    ``coefficients``: the packed per-pulse map (coef (n, 4) = [a_up, b_up, a_down, b_down],
    bounds (n, 2) = [lo, hi], dw (n,) of w's dtype, n = w.numel(), the shape code, the shape
    parameters (n, 6) = [b, g, 1 / expm1(g)] per polarity and the additive-noise scales (n or 1, 2);
    :meth:`Device.kernel_pulse_coefficients`).
    Returns (n_up, n_down, touched bool mask or None)."""
    w_np = w.detach().numpy().reshape(-1)  # a view (w is contiguous): flat indexing in the kernel
    x_np = np.ascontiguousarray(x.detach().to(w.dtype).numpy())
    d_np = np.ascontiguousarray(d.detach().to(w.dtype).numpy())
    touched = np.zeros(w.numel() if need_touched else 1, dtype=np.uint8)
    n_up, n_down = _stochastic_update(
        w_np, x_np, d_np, float(lr), float(dw_nominal), int(engine.bit_length), bool(engine.bl_management),
        bool(engine.update_management), *coefficients, int(noise_type), float(sigma), kernel_seed(generator),
        touched, bool(need_touched))
    # writes through a numpy view do not bump torch's version counter: do it here, so caches
    # keyed on tensor versions (the layer's weight mirror, read caches) see the change
    torch.autograd.graph.increment_version(w)
    mask = torch.from_numpy(touched.view(np.bool_)).view(w.shape) if need_touched else None
    return n_up, n_down, mask


def apply_counts(w: torch.Tensor, counts: torch.Tensor, coefficients, noise_type: int, sigma: float, generator,
                 need_touched: bool):
    """Fire |counts| pulses of polarity sign(counts) per element of the CPU tensor ``w`` in place
    (the compiled form of :meth:`Device.apply_pulses` for affine families). Returns (n_up,
    n_down, touched mask or None); ValueError when a count is not a finite integer."""
    w_np = w.detach().numpy().reshape(-1)
    c_np = np.ascontiguousarray(counts.detach().to(w.dtype).reshape(-1).numpy())
    touched = np.zeros(w.numel() if need_touched else 1, dtype=np.uint8)
    n_up, n_down, status = _apply_counts(w_np, c_np, *coefficients, int(noise_type), float(sigma),
                                         kernel_seed(generator), touched, bool(need_touched))
    if status:
        raise ValueError("counts must be finite integers (signed pulse counts)")
    torch.autograd.graph.increment_version(w)
    mask = torch.from_numpy(touched.view(np.bool_)).view(w.shape) if need_touched else None
    return n_up, n_down, mask


def noise_code(device) -> int:
    """The kernels' noise type of a device's cycle-to-cycle noise."""
    if device.cycle_noise <= 0:
        return NOISE_NONE
    return NOISE_MULTIPLICATIVE if device.cycle_noise_type == "multiplicative" else NOISE_ADDITIVE


def kernel_coefficients(w: torch.Tensor, device):
    """The packed per-pulse map of ``device`` when a compiled kernel applies to the state ``w``
    (CPU, float32/64, contiguous, numba enabled, a family with an affine, power or exponential
    per-pulse map), else None."""
    if (w.device.type != "cpu" or w.dtype not in (torch.float32, torch.float64) or not w.is_contiguous()
            or not kernels_enabled()):
        return None
    return device.kernel_pulse_coefficients(w.shape, w.dtype)


def expected_update(w: torch.Tensor, delta: torch.Tensor, coefficients, need_touched: bool):
    """The expected update w <- clamp(w + dW q_+-(w)) of a kernel family in place on the CPU
    tensor ``w`` (compiled form of :class:`~analogtrain.pulses.ExpectedEngine`'s update).
    Returns (expected up count, expected down count, touched mask or None)."""
    w_np = w.detach().numpy().reshape(-1)
    d_np = np.ascontiguousarray(delta.detach().to(w.dtype).reshape(-1).numpy())
    touched = np.zeros(w.numel() if need_touched else 1, dtype=np.uint8)
    n_up, n_down = _expected_update(w_np, d_np, *coefficients, touched, bool(need_touched))
    torch.autograd.graph.increment_version(w)
    mask = torch.from_numpy(touched.view(np.bool_)).view(w.shape) if need_touched else None
    return n_up, n_down, mask


def apply_counts_at(w: torch.Tensor, elements: torch.Tensor, counts: torch.Tensor, coefficients, noise_type: int,
                    sigma: float, generator):
    """Fire ``counts`` (signed, one per element) on the distinct flat ``elements`` of the CPU
    tensor ``w`` in place; returns (n_up, n_down); ValueError for a non-integer count."""
    w_np = w.detach().numpy().reshape(-1)
    e_np = np.ascontiguousarray(elements.detach().to(torch.int64).reshape(-1).numpy())
    c_np = np.ascontiguousarray(counts.detach().to(w.dtype).reshape(-1).numpy())
    n_up, n_down, status = _apply_counts_at(w_np, e_np, c_np, *coefficients, int(noise_type), float(sigma),
                                            kernel_seed(generator))
    if status:
        raise ValueError("counts must be finite integers (signed pulse counts)")
    torch.autograd.graph.increment_version(w)
    return n_up, n_down
