"""Stochastic pulse trains (aihwkit's STOCHASTIC_COMPRESSED update, Gokmen & Vlasov 2016).

For each sample b of a batch the periphery sends BL_b time slots; input line i fires in a slot
with probability p_x = B_b |x_i|, output line j with p_d = A_b |d_j|. Element (j, i) receives one
pulse of polarity -sign(x_i d_j) per coincidence, so the expected number of pulses is
BL * p_x * p_d = lr |x_i d_j| / dw_min and the expected update is -lr x_i d_j q(w).

- BL management: BL_b = min(bit_length, ceil(k_b)), k_b = lr * max|x_b| * max|d_b| / dw_min.
- A_b * B_b = lr / (dw_min * BL_b); update management balances them so that
  B_b max|x_b| = A_b max|d_b|. When k_b > BL_b (the bit length saturates) aihwkit's rule is
  used: max|d_b| is replaced by max|d_b| * BL_b / k_b in the balance, so x lines keep
  p_x = |x_i| / max|x_b| and all the excess goes to the d lines (capped at probability 1).
- Samples are applied in sequence: each element sees its pulses in the order of the batch,
  every pulse with the response at the current state plus cycle-to-cycle noise
  (:meth:`Device.apply_pulses`; soft-bounds devices compose same-sign pulses exactly in
  closed form).

Implementation: the pulse trains are drawn as bits (B, T, lines). Large arrays form the
coincidences sparsely (only pairs of firing lines in the same slot), so the cost scales with the
number of pulses, not with B * out * in; a slot never hits an element twice. For devices with
affine pulse maps (:meth:`~analogtrain.devices.Device.pulse_factors`, soft bounds: every pulse is
w <- t + (w - t) f with a state-independent target t and factor f, the noise drawn per pulse)
each slot is then one vectorised step over its elements, slot after slot (the exact sequential
order); a pulse with f > 1 (moving away from its target under multiplicative noise) is clamped
to the bounds, which is the exact rule for a single pulse. Small arrays (B * out * in up to
``DENSE_LIMIT``) count pulses per sample and element with a batched matmul; pulses of one
sample and element share their target, so they commute, and the samples are composed in closed
form from prefix sums of log factors over the samples (:func:`_compose`); an element whose
pulses moving away from the target could reach the opposite bound (checked with a provable
bound) is recomposed pulse by pulse with clamping, with the same factors. Other families, and
soft bounds with additive noise, are applied in rounds of distinct elements pulse by pulse
(``_apply_event_list``).
"""

from __future__ import annotations

import bisect
import itertools
import math

import torch

from ..devices.base import Device
from . import numba_kernels
from .base import (
    PulseEngine,
    PulseStats,
    apply_pulse_counts,
    check_bit_length,
    index_device,
    nominal_dw_min,
)

#: arrays with B * out * in up to this size count coincidences densely (a batched matmul); the
#: sparse path (cost ~ pulses + slots) is cheaper above it on one CPU thread
DENSE_LIMIT = 1 << 14
#: up to this many samples the per-sample BL / probability rule runs on Python floats
SCALAR_RULE_MAX_BATCH = 64
#: up to this many samples / slots, each is a round of its own (no ranking of events needed)
MAX_GROUP_ROUNDS = 16
#: sparse coincidences of affine devices: up to this many slots each slot is a step of its own
#: (three ops per slot); beyond, the pulses are composed in closed form (two ops per slot)
MAX_SLOT_LOOP = 512
#: log factors are floored here: exp(-64) ~ 1.6e-28 is a factor 0 (a pulse that lands exactly on
#: its target) to far below float64 resolution, and keeps the sums finite
LOG_FLOOR = -64.0


def _kernel_coefficients(w: torch.Tensor, device: Device):
    """The packed per-pulse map when the compiled stochastic kernel applies to this call, else None."""
    return numba_kernels.kernel_coefficients(w, device) if w.dim() == 2 else None


class StochasticEngine(PulseEngine):
    name = "stochastic"
    outer_is_elementwise = False

    def __init__(
        self,
        bit_length: int = 31,
        bl_management: bool = True,
        update_management: bool = True,
    ) -> None:
        self.bit_length = check_bit_length(bit_length)
        self.bl_management = bool(bl_management)
        self.update_management = bool(update_management)
        #: run the compiled CPU kernel where it applies (numba importable, CPU tensor, affine
        #: family); False: always the torch implementation (the reference)
        self.use_kernel = True

    # ------------------------------------------------------------------ pulse trains
    def train_probabilities(self, x, d, lr, dw_min):
        """Per-sample bit lengths and line probabilities: (BL (B,), p_x (B, in), p_d (B, out))."""
        bl, p_x, p_d, _ = self._train_probabilities(x, d, lr, dw_min)
        return bl, p_x, p_d

    def _train_probabilities(self, x, d, lr, dw_min):
        """:meth:`train_probabilities` plus the number of slots T = max BL_b (an int). Up to
        ``SCALAR_RULE_MAX_BATCH`` samples the per-sample rule runs on Python floats (about ten
        fewer tensor operations per call than on (B,) tensors; same rule)."""
        x_abs, d_abs = x.abs(), d.abs()
        if x.shape[0] > SCALAR_RULE_MAX_BATCH:
            x_max = x_abs.amax(dim=1).clamp_min_(1e-30)
            d_max = d_abs.amax(dim=1).clamp_min_(1e-30)
            bl, scale_x, scale_d = self._bl_rule(x_max, d_max, lr, dw_min, torch.ceil, torch.sqrt,
                                                 lambda v: v.clamp(max=1.0))
            slots = int(bl.max().item())
        else:
            rows = [self._bl_rule(max(xm, 1e-30), max(dm, 1e-30), lr, dw_min, math.ceil, math.sqrt,
                                  lambda v: min(v, 1.0))
                    for xm, dm in zip(x_abs.amax(dim=1).tolist(), d_abs.amax(dim=1).tolist())]
            bl_l, sx_l, sd_l = zip(*rows) if rows else ((), (), ())
            slots = int(max(bl_l)) if rows else 1
            bl, scale_x, scale_d = (torch.tensor(v, dtype=x.dtype, device=x.device) for v in (bl_l, sx_l, sd_l))
        p_x = x_abs.mul_(scale_x[:, None]).clamp_(max=1.0)
        p_d = d_abs.mul_(scale_d[:, None]).clamp_(max=1.0)
        return bl, p_x, p_d, slots

    def _bl_rule(self, x_max, d_max, lr, dw_min, ceil, sqrt, at_most_one):
        """BL and the x / d line scales of one sample (floats) or of all samples ((B,) tensors)."""
        k = x_max * d_max * (lr / dw_min)
        if self.bl_management:
            bl = ceil(k)
            bl = (bl.clamp(1, self.bit_length) if isinstance(bl, torch.Tensor)
                  else min(max(bl, 1), self.bit_length))
        else:
            bl = k * 0 + float(self.bit_length)
        c = (lr / dw_min) / bl
        if self.update_management:
            # aihwkit: when the bit length saturates (k > BL), max|d| is replaced by max|d| BL / k
            d_val = d_max * at_most_one(bl / k)
            scale_x = sqrt(c * d_val / x_max)
            scale_d = c / scale_x  # scale_x * scale_d = c = lr / (dw_min BL)
        else:
            scale_x = scale_d = sqrt(c)
        return bl, scale_x, scale_d

    def pulse_trains(self, x, d, lr, dw_min, generator=None):
        """Bits of the pulse trains: x_bits (B, T, in) and d_bits (B, T, out), T = max BL_b."""
        bl, p_x, p_d, slots = self._train_probabilities(x, d, lr, dw_min)
        b, n_in = x.shape
        n_out = d.shape[1]
        dev, dt = x.device, x.dtype
        x_bits = torch.rand((b, slots, n_in), generator=generator, device=dev, dtype=dt) < p_x[:, None, :]
        if slots > 1:
            slot_ok = torch.arange(slots, device=dev, dtype=dt)[None, :] < bl[:, None]  # (B, T)
            x_bits &= slot_ok[:, :, None]
        d_bits = torch.rand((b, slots, n_out), generator=generator, device=dev, dtype=dt) < p_d[:, None, :]
        return x_bits, d_bits

    def coincidences(self, x, d, lr, dw_min, generator=None) -> torch.Tensor:
        """Signed pulse counts per sample and element, shape (B, out, in) (dense reference)."""
        x_bits, d_bits = self.pulse_trains(x, d, lr, dw_min, generator)
        dt = x.dtype
        counts = torch.bmm(d_bits.transpose(1, 2).to(dt), x_bits.to(dt))  # (B, out, in)
        return counts * -(torch.sign(d)[:, :, None] * torch.sign(x)[:, None, :])

    # ------------------------------------------------------------------ application
    def apply_outer(self, w, device, x, d, lr, generator=None, need_touched=False) -> PulseStats:
        if x.dim() == 1:
            x, d = x[None], d[None]
        if lr < 0:  # -lr d^T x == -|lr| (-d)^T x
            lr, d = -lr, -d
        dw_min = nominal_dw_min(device)
        packed = _kernel_coefficients(w, device) if self.use_kernel else None
        if packed is not None:
            return self._apply_outer_kernel(w, device, packed, x, d, lr, dw_min, generator, need_touched)
        x_bits, d_bits = self.pulse_trains(x, d, lr, dw_min, generator)
        n_b, n_out, n_in = x.shape[0], d.shape[1], x.shape[1]
        if n_b * n_out * n_in <= DENSE_LIMIT:
            dt = x.dtype
            counts = torch.bmm(d_bits.transpose(1, 2).to(dt), x_bits.to(dt))
            signed = counts.mul_(torch.sign(d).neg_()[:, :, None] * torch.sign(x)[:, None, :])
            return self.apply_events(w, device, signed, generator, need_touched)
        elem, down, slot_sizes = _sparse_coincidences(x_bits, d_bits, x, d)
        return self._apply_unit_events(w, device, elem, down, slot_sizes, generator, need_touched)

    def _apply_outer_kernel(self, w, device, packed, x, d, lr, dw_min, generator, need_touched) -> PulseStats:
        """The compiled kernel (:func:`~analogtrain.pulses.numba_kernels.stochastic_update`)."""
        noise = numba_kernels.noise_code(device)
        n_up, n_down, touched = numba_kernels.stochastic_update(
            w, x, d, lr, dw_min, self, packed, noise, device.cycle_noise, generator, need_touched)
        return PulseStats(torch.tensor(float(n_up), dtype=w.dtype), torch.tensor(float(n_down), dtype=w.dtype),
                          touched)

    def apply(self, w, device, delta, generator=None, need_touched=False) -> PulseStats:
        """General increment: the pulse count per element is |dW| / nominal dw_min (the
        periphery's granularity; each pulse then moves an element by its own dw_min)
        stochastically rounded (unbiased), capped at the bit length, applied pulse by pulse."""
        n = delta.abs() / nominal_dw_min(device)
        low = torch.floor(n)
        u = torch.rand(n.shape, generator=generator, device=n.device, dtype=n.dtype)
        n = (low + (u < n - low).to(n.dtype)).clamp(max=self.bit_length)
        counts = torch.sign(delta) * n
        w.copy_(apply_pulse_counts(w, device, counts, generator))
        return PulseStats(counts.clamp_min(0).sum(), (-counts).clamp_min(0).sum(),
                          (counts != 0) if need_touched else None)

    def apply_events(self, w, device, signed, generator=None, need_touched=False) -> PulseStats:
        """Apply signed per-sample pulse counts ``signed`` (B, *w.shape), samples in sequence."""
        n_b = signed.shape[0]
        n_elem = w.numel()
        sample_idx, elem = torch.nonzero(signed.reshape(n_b, n_elem), as_tuple=True)  # ordered by sample
        pos = torch.add(elem, sample_idx, alpha=n_elem)
        count = signed.reshape(-1).index_select(0, pos).to(w.dtype)
        if pos.numel() == 0 or _affine_form_unknown(device):
            sizes = [n for n in torch.bincount(sample_idx, minlength=n_b).tolist() if n]
            return self._apply_event_list(w, device, elem, count, generator, need_touched, sizes)
        n_abs = count.abs()
        up = n_abs.sum().add_(count.sum()).mul_(0.5)
        down = n_abs.sum() - up
        # one entry per pulse (noise is drawn per pulse); ``owner`` is the event of each pulse
        reps = n_abs.long()
        owner = torch.repeat_interleave(reps)
        p_elem = elem.index_select(0, owner)
        form = device.unit_pulse_factors((count < 0).long().index_select(0, owner), p_elem, generator, w.dtype)
        if form is None:  # not affine after all: the general path (draws its own noise)
            sizes = [n for n in torch.bincount(sample_idx, minlength=n_b).tolist() if n]
            return self._apply_event_list(w, device, elem, count, generator, need_touched, sizes)
        p_target, p_f = form
        p_lf = _log_factors(p_f)
        g = torch.zeros(pos.numel(), dtype=torch.float64, device=w.device).index_add_(0, owner, p_lf)
        target = p_target.index_select(0, torch.cumsum(reps, 0).sub_(reps))
        if n_b == 1:  # one group per element: nothing after it
            total, after = g, torch.zeros_like(g)
        else:  # prefix sums over the samples, densely (B * n_elem is small here)
            dense = torch.zeros(n_b * n_elem, dtype=torch.float64, device=w.device).index_copy_(0, pos, g)
            cum = torch.cumsum(dense.view(n_b, n_elem), 0)
            total = cum[-1].index_select(0, elem)
            after = total - cum.view(-1).index_select(0, pos)
        _compose(w.view(-1), device, None, elem, g, target, after, total, owner, p_elem, p_f, p_lf, p_target)
        return PulseStats(up, down, elem if need_touched else None)

    def _apply_unit_events(self, w, device, elem, down, slot_sizes, generator, need_touched) -> PulseStats:
        """Unit pulses (flat element, ``down`` 1 for a down pulse, 0 for an up pulse) listed slot
        by slot, ``slot_sizes`` per slot. A slot holds distinct elements, so with affine pulse
        maps (:meth:`Device.pulse_factors`) each slot is one vectorised step w <- t + (w - t) f of
        its elements, in order; a pulse with f > 1 (moving away from its target) is clamped to
        the bounds, the exact rule for a single pulse. With many slots the pulses are composed
        in closed form instead (:func:`_compose`: two small ops per slot rather than three)."""
        n = elem.numel()
        down_n = down.sum().to(w.dtype)
        stats = (n - down_n, down_n)
        form = None
        if n and not _affine_form_unknown(device):
            form = device.unit_pulse_factors(down, elem, generator, w.dtype)
        if form is None:  # no pulses, or not affine (e.g. additive cycle noise): the general path
            count = down.to(w.dtype).mul_(-2.0).add_(1.0)
            self._apply_event_list(w, device, elem, count, generator, False, slot_sizes, unit=True)
            return PulseStats(*stats, elem if need_touched else None)
        target, f = form
        w_flat = w.view(-1)
        if len(slot_sizes) > MAX_SLOT_LOOP:
            self._compose_slots(w_flat, device, elem, target, f, slot_sizes)
        else:
            fix = {}
            away = torch.nonzero(f > 1.0, as_tuple=True)[0]
            if away.numel():  # per slot: positions in the slot and bounds of its pulses moving away
                starts = list(itertools.accumulate(slot_sizes, initial=0))
                for pos, (lo_a, hi_a) in zip(away.tolist(), _bound_pairs(device, elem.index_select(0, away))):
                    k = bisect.bisect_right(starts, pos) - 1
                    fix.setdefault(k, []).append((pos - starts[k], lo_a, hi_a))
            for k, (e_s, t_s, f_s) in enumerate(zip(elem.split(slot_sizes), target.split(slot_sizes),
                                                    f.split(slot_sizes))):
                # t + f (w - t), anchored at the end that the factor is closer to, so for f in
                # [0, 1] the result never passes t in rounding (torch.lerp)
                new = torch.lerp(t_s, w_flat.index_select(0, e_s), f_s)
                for loc, lo_a, hi_a in fix.get(k, ()):
                    v = float(new[loc])
                    if not lo_a <= v <= hi_a:
                        new[loc] = min(max(v, lo_a), hi_a)
                w_flat.index_copy_(0, e_s, new)
        return PulseStats(*stats, elem if need_touched else None)

    def _compose_slots(self, w_flat, device, elem, target, f, slot_sizes):
        """Closed-form composition of unit pulses in many slots (:func:`_compose`): each pulse is
        a group; the sums of log factors of an element up to each pulse are gathered slot by
        slot from a per-element running sum."""
        lf = _log_factors(f)
        run = self._running_sum(w_flat.numel(), w_flat.device)
        run.index_fill_(0, elem, 0.0)
        upto = torch.empty_like(lf)
        for e_s, lf_s, u_s in zip(elem.split(slot_sizes), lf.split(slot_sizes), upto.split(slot_sizes)):
            run.index_add_(0, e_s, lf_s)
            torch.index_select(run, 0, e_s, out=u_s)
        total = run.index_select(0, elem)
        after = total - upto
        owner = torch.arange(elem.numel(), device=elem.device)
        _compose(w_flat, device, run, elem, lf, target, after, total, owner, elem, f, lf, target)

    def _running_sum(self, n_elem, dev):
        """Per-element float64 scratch (reset at the touched elements only by its users)."""
        key = ("run", n_elem, dev)
        scratch = self.__dict__.setdefault("_scratch", {})
        buf = scratch.get(key)
        if buf is None:
            buf = scratch[key] = torch.zeros(n_elem, dtype=torch.float64, device=dev)
        return buf

    def _apply_event_list(self, w, device, elem, count, generator, need_touched, groups=None,
                          unit=False) -> PulseStats:
        """Events (flat element, signed count) listed in sample order, applied in rounds of
        distinct elements. ``groups``: sizes of consecutive runs of distinct elements (the
        samples or slots); when there are few they are the rounds, else round r holds the r-th
        event of every element."""
        count = count.to(w.dtype)
        if unit:  # every count is +-1: up + down = number of events
            up = count.sum().add_(count.numel()).mul_(0.5)
            down = count.numel() - up
        else:
            up, down = count.clamp_min(0).sum(), -count.clamp_max(0).sum()
        if elem.numel() == 0:
            return PulseStats(up, down, torch.zeros(0, dtype=torch.long, device=w.device) if need_touched else None)
        w_flat = w.view(-1)
        if groups is not None and len(groups) <= MAX_GROUP_ROUNDS:
            rounds, rank = _contiguous_rounds(groups, elem.device)
        else:
            rounds, rank = self._rounds(elem, w_flat.numel())
        form = device.pulse_factors(count, generator, index=elem, max_count=1 if unit else None)
        if form is None:
            ev_device = index_device(device, elem)
            for idx in rounds:
                e, c, dev_r = (elem, count, ev_device) if idx is None else (elem[idx], count[idx],
                                                                            _select_device(ev_device, idx))
                w_flat[e] = dev_r.apply_pulses(w_flat[e], c, generator)
        else:
            _apply_affine(w_flat, device, elem, form, rounds, rank)
        touched = elem if need_touched else None
        return PulseStats(up, down, touched)

    def _rounds(self, elem, n_elem):
        """Split the event list into rounds of distinct elements: round r holds the r-th event
        (in list order) of every element. Returns (rounds, rank): ``rounds`` a list of index
        tensors, or [None] when every element occurs once (then ``rank`` is None); ``rank``
        maps event positions to their round."""
        key = (n_elem, elem.device)
        scratch = self.__dict__.setdefault("_scratch", {})
        buf = scratch.get(key)
        if buf is None:
            buf = scratch[key] = torch.zeros(n_elem, dtype=torch.int32, device=elem.device)
        ones = torch.ones(elem.numel(), dtype=torch.int32, device=elem.device)
        buf.index_add_(0, elem, ones)
        repeated = buf[elem] > 1
        buf.index_add_(0, elem, ones, alpha=-1)  # back to zeros
        rep_pos = torch.nonzero(repeated, as_tuple=True)[0]
        if rep_pos.numel() == 0:
            return [None], None
        single_pos = torch.nonzero(~repeated, as_tuple=True)[0]
        # sort the (few) repeated events by element, keeping list order inside an element
        _, order = torch.sort(elem[rep_pos] * elem.numel() + rep_pos)
        pos_sorted = rep_pos[order]
        _, group = torch.unique_consecutive(elem[pos_sorted], return_counts=True)
        rank_rep = torch.arange(pos_sorted.numel(), device=elem.device) - torch.repeat_interleave(
            torch.cumsum(group, 0) - group, group)
        rank = torch.zeros(elem.numel(), dtype=torch.long, device=elem.device)
        rank[pos_sorted] = rank_rep
        rounds = [torch.cat([single_pos, pos_sorted[rank_rep == 0]])]
        rounds += [pos_sorted[rank_rep == r] for r in range(1, int(group.max().item()))]
        return rounds, lambda pos: rank[pos]

    def describe(self):
        return {"engine": self.name, "bit_length": self.bit_length,
                "bl_management": self.bl_management, "update_management": self.update_management}


def _sparse_coincidences(x_bits, d_bits, x, d):
    """Coincidences of firing lines in the same slot, without forming (B, out, in).

    Returns (flat element index j * n_in + i, 1 for a down pulse and 0 for an up pulse (int64),
    sizes of the non-empty slots) ordered by sample, then slot: a slot holds distinct elements;
    pulses of one sample and element in different slots are separate events of the same sign,
    consecutive in that element's order. Inside a slot the pulses are listed by firing d line.
    """
    n_b, slots, n_in = x_bits.shape
    n_out = d_bits.shape[2]
    dev = x.device
    cnt_x = x_bits.view(n_b * slots, n_in).sum(1)
    cnt_d = d_bits.view(n_b * slots, n_out).sum(1)
    slot_sizes = (cnt_x * cnt_d).tolist()  # pulses per slot
    total = sum(slot_sizes)
    if total == 0:
        empty = torch.zeros(0, dtype=torch.long, device=dev)
        return empty, empty, []
    # per firing line its part of a code 4 * (j * n_in + i) + a + b + 1, with a = [x_i < 0] and
    # b = [d_j < 0]: the pulse goes down (polarity -sign(x_i d_j) < 0) iff a == b iff the code is odd
    x_code = (x < 0).long().add_(torch.arange(1, 4 * n_in + 1, 4, device=dev))
    d_code = (d < 0).long().add_(torch.arange(0, 4 * n_in * n_out, 4 * n_in, device=dev))
    if slots > 1:
        x_code = x_code[:, None, :].expand(n_b, slots, n_in)
        d_code = d_code[:, None, :].expand(n_b, slots, n_out)
    x_code = x_code.reshape(-1).index_select(0, torch.nonzero(x_bits.view(-1), as_tuple=True)[0])
    d_code = d_code.reshape(-1).index_select(0, torch.nonzero(d_bits.view(-1), as_tuple=True)[0])
    # firing d line k pairs with the x lines of its slot: x events start_x[slot] .. + cnt_x[slot]
    rep = torch.repeat_interleave(cnt_x, cnt_d)
    start = torch.repeat_interleave(torch.cumsum(cnt_x, 0).sub_(cnt_x), cnt_d).sub_(torch.cumsum(rep, 0).sub_(rep))
    ed = torch.repeat_interleave(rep, output_size=total)
    ex = start.index_select(0, ed).add_(torch.arange(total, device=dev))
    code = d_code.index_select(0, ed).add_(x_code.index_select(0, ex))
    return code >> 2, code & 1, [n for n in slot_sizes if n]


def _contiguous_rounds(sizes, dev):
    """Rounds that are consecutive slices of the event list: (list of slices, round of each event)."""
    bounds = [0]
    for n in sizes:
        bounds.append(bounds[-1] + n)
    rounds = [slice(a, b) for a, b in itertools.pairwise(bounds)] or [None]
    if len(rounds) == 1:
        return [None], None
    return rounds, lambda pos: torch.searchsorted(torch.tensor(bounds[:-1], device=dev), pos, right=True) - 1


def _select_device(device, idx):
    """Device whose per-element (1-D) parameters are taken at positions ``idx``."""
    picked = {name: v[idx] for name, v in device.params().items() if isinstance(v, torch.Tensor) and v.dim() > 0}
    return device.with_params(**picked) if picked else device


def _bound_pairs(device, e):
    """[[lo, hi], ...] (Python floats) of the flat elements ``e`` (a few)."""
    lo, hi = device.bounds()
    if isinstance(lo, torch.Tensor) and lo.dim() > 0 and isinstance(hi, torch.Tensor) and hi.dim() > 0:
        table = device.derived("stochastic_bound_pairs", lambda: torch.stack((lo.reshape(-1), hi.reshape(-1)), 1))
        return table.index_select(0, e).tolist()
    lo, hi = _bounds_at(device, e)
    n = e.numel()
    return list(zip(torch.as_tensor(lo).expand(n).tolist(), torch.as_tensor(hi).expand(n).tolist()))


def _bounds_at(device, e):
    lo, hi = device.bounds()
    lo = lo.reshape(-1)[e] if isinstance(lo, torch.Tensor) and lo.dim() > 0 else lo
    hi = hi.reshape(-1)[e] if isinstance(hi, torch.Tensor) and hi.dim() > 0 else hi
    return lo, hi


def _apply_affine(w_flat, device, elem, form, rounds, rank):
    """Rounds of w <- target + (w - target) * prod_k f_k with state-independent targets and
    factors (:meth:`Device.pulse_factors`). All factors in [0, 1] move the state monotonically
    towards its target (no clamping needed); an event with a factor > 1 (a pulse moving away,
    which may hit the opposite bound) is composed pulse by pulse with clamping."""
    target, f = form
    single = f.shape[-1] == 1
    total = f[:, 0] if single else f.prod(dim=-1)
    away_pos = torch.nonzero((f > 1.0).any(dim=-1), as_tuple=True)[0]
    away_rank = None
    if away_pos.numel():
        away_rank = torch.zeros_like(away_pos) if rank is None else rank(away_pos)
        away_rounds = set(away_rank.tolist())
    for r, idx in enumerate(rounds):
        moves_away = away_rank is not None and r in away_rounds
        fix = None
        if moves_away and not single:  # several pulses: does the path cross the opposite bound?
            pos = away_pos[away_rank == r]
            e_a = elem[pos]
            lo_a, hi_a = _bounds_at(device, e_a)
            t_a, w_a, f_a = target[pos], w_flat[e_a], f[pos]
            reach = torch.addcmul(t_a, w_a - t_a, torch.cumprod(f_a, dim=-1).amax(dim=-1))
            if not bool(((reach >= lo_a) & (reach <= hi_a)).all()):  # pulse by pulse with clamping
                for k in range(f.shape[-1]):
                    w_a = torch.clamp(torch.addcmul(t_a, w_a - t_a, f_a[:, k]), lo_a, hi_a)
                fix = (e_a, w_a)
        if idx is None:
            e, t, tot = elem, target, total
        elif isinstance(idx, slice):
            n = idx.stop - idx.start
            e, t, tot = elem.narrow(0, idx.start, n), target.narrow(0, idx.start, n), total.narrow(0, idx.start, n)
        else:
            e, t, tot = elem[idx], target[idx], total[idx]
        # anchored at the target: t + (w - t) F never passes t for F in [0, 1], even in rounding
        new = torch.addcmul(t, w_flat.index_select(0, e) - t, tot)
        if moves_away and single:  # one pulse per event: clamping its result is the exact rule
            new = torch.clamp(new, *_bounds_at(device, e))
        w_flat.index_copy_(0, e, new)
        if fix is not None:
            w_flat.index_copy_(0, fix[0], fix[1])


def _affine_form_unknown(device) -> bool:
    """True when the family has no closed form of its pulses at all (general path at once)."""
    return type(device).pulse_factors is Device.pulse_factors


def _log_factors(f):
    """log of pulse factors in float64, floored at LOG_FLOOR (a factor 0 lands on the target)."""
    return torch.log(f.to(torch.float64)).clamp_(min=LOG_FLOOR)


def _compose(w_flat, device, acc, elem, g, target, after, total, owner, p_elem, p_f, p_lf, p_target):
    """Closed-form composition of affine pulses, in place on ``w_flat``.

    Events are groups of pulses of one element with one target t (one sample, or one slot);
    the groups of an element are applied in their order, each as w <- t + (w - t) exp(g) with g
    the sum of the log factors of its pulses (same-target maps commute, so the order inside a
    group is immaterial). Unrolled over the groups of an element,

        w_final = w0 + sum_groups (t - w0) (1 - exp(g)) exp(after),

    ``after`` the sum of the log factors of the element's later groups and ``total`` the sum
    over all its groups (both per event). The sum is formed per element in float64 in ``acc``
    (a per-element scratch, only touched elements are written), or over a float64 copy of the
    whole state when ``acc`` is None (small arrays).

    Factors in [0, 1] keep the state between its start and the targets. A factor > 1 (a pulse
    moving away from its target, multiplicative noise) could cross the opposite bound, where
    sequential application clamps: the state x above the lower bound obeys
    x' >= x min(f, 1) - D max(f - 1, 0) for every pulse (D = hi - lo, any target in [lo, hi]),
    so no clamping happens if (w0 - lo) prod min(f, 1) >= D sum max(f - 1, 0), and the same
    for the upper bound. Elements that fail this bound are recomposed pulse by pulse with
    clamping (``p_*``: the pulses in order, ``owner`` their event), with the same factors.
    """
    f64 = torch.float64
    w0 = w_flat.index_select(0, elem).to(f64)
    delta = (w0 - target.to(f64)).mul_(torch.exp(g).sub_(1.0)).mul_(torch.exp(after))  # (t - w0)(1 - e^g)
    ap = torch.nonzero(p_f > 1.0, as_tuple=True)[0]  # log factor > 0
    fix = _away_fix(w_flat, device, w0, total, owner, p_elem, p_f, p_lf, p_target, ap) if ap.numel() else None
    lo, hi = device.bounds()
    # float32 state and bounds: the float64 result lies within 1e-15 of [lo, hi], so its rounding
    # to float32 cannot leave [lo, hi]; otherwise clamp explicitly
    exact_cast = (isinstance(lo, torch.Tensor) and isinstance(hi, torch.Tensor)
                  and lo.dtype == hi.dtype == w_flat.dtype == torch.float32)
    if acc is None:  # small array: accumulate over all of it (untouched elements round-trip exactly)
        full = w_flat.to(f64, copy=True).index_add_(0, elem, delta)
        if not exact_cast:
            if isinstance(lo, torch.Tensor) or isinstance(hi, torch.Tensor):
                full = torch.clamp(full, torch.as_tensor(lo, dtype=f64, device=full.device).reshape(-1),
                                   torch.as_tensor(hi, dtype=f64, device=full.device).reshape(-1))
            else:
                full.clamp_(lo, hi)
        w_flat.copy_(full)
    else:
        acc.index_copy_(0, elem, w0)  # duplicates of an element write the same value
        acc.index_add_(0, elem, delta)
        out = acc.index_select(0, elem).to(w_flat.dtype)
        if not exact_cast:
            out = torch.clamp(out, *_bounds_at(device, elem))
        w_flat.index_copy_(0, elem, out)
    if fix is not None:
        w_flat.index_copy_(0, fix[0], fix[1])


def _away_fix(w_flat, device, w0, total, owner, p_elem, p_f, p_lf, p_target, ap):
    """Exact states of the elements whose pulses moving away from their target (positions
    ``ap``) might cross the opposite bound (see :func:`_compose`); None when there are none.
    Such pulses are rare (eta < 0), so the bound is checked on Python scalars."""
    ev = owner.index_select(0, ap)
    a_elem = p_elem.index_select(0, ap)
    lo, hi = _bounds_at(device, a_elem)
    n = ap.numel()
    lo_l = torch.as_tensor(lo, dtype=torch.float64).expand(n).tolist()
    hi_l = torch.as_tensor(hi, dtype=torch.float64).expand(n).tolist()
    info = {}
    for e, f, lf, w, tot, lo_e, hi_e in zip(a_elem.tolist(), p_f.index_select(0, ap).tolist(),
                                            p_lf.index_select(0, ap).tolist(), w0.index_select(0, ev).tolist(),
                                            total.index_select(0, ev).tolist(), lo_l, hi_l):
        old = info.get(e)
        info[e] = [w, tot, lo_e, hi_e, f - 1.0, lf] if old is None else old[:4] + [old[4] + f - 1.0, old[5] + lf]
    bad_l = [e for e, (w, tot, lo_e, hi_e, spread, grow) in info.items()
             if min(w - lo_e, hi_e - w) * math.exp(tot - grow) <= (hi_e - lo_e) * spread * (1.0 + 1e-6)]
    if not bad_l:
        return None
    bad = torch.tensor(bad_l, dtype=torch.long, device=w_flat.device)
    sel = torch.nonzero(torch.isin(p_elem, bad), as_tuple=True)[0]  # their pulses, in order
    state = dict(zip(bad_l, w_flat.index_select(0, bad).tolist()))
    for e, f, t in zip(p_elem.index_select(0, sel).tolist(), p_f.index_select(0, sel).tolist(),
                       p_target.index_select(0, sel).tolist()):
        v = t + (state[e] - t) * f
        lo_e, hi_e = info[e][2], info[e][3]
        state[e] = min(max(v, lo_e), hi_e)
    return bad, torch.tensor([state[e] for e in bad_l], dtype=w_flat.dtype, device=w_flat.device)


def expected_pulses_per_step(x, d, lr, dw_min) -> float:
    """Expected number of coincidences of one rank update: sum_b sum_ij lr |x_bi d_bj| / dw_min
    (before probability capping); the workload normaliser used by the benchmarks."""
    return float((x.abs().sum(1) * d.abs().sum(1)).sum() * lr / dw_min)


__all__ = ["DENSE_LIMIT", "StochasticEngine", "expected_pulses_per_step"]
