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

Implementation: the pulse trains are drawn as bits (B, T, lines); coincidences are formed
sparsely (only pairs of firing lines in the same slot), so the cost scales with the number of
pulses, not with B * out * in (small arrays use a dense batched matmul instead). Events
(sample, element, signed count) are applied in rounds of distinct elements: with few samples
or slots each of them is a round (a slot never hits an element twice); otherwise round r holds
the r-th event of every element (elements hit once, the large majority, all go into round 0).
Soft-bounds devices compose the pulses of an event exactly in closed form
(:meth:`~analogtrain.devices.SoftBounds.pulse_factors`), other families pulse by pulse.
"""

from __future__ import annotations

import itertools

import torch

from .base import (
    PulseEngine,
    PulseStats,
    apply_pulse_counts,
    check_bit_length,
    index_device,
    nominal_dw_min,
)

#: arrays with B * out * in up to this size count coincidences densely (a batched matmul)
DENSE_LIMIT = 1 << 17
#: up to this many samples / slots, each is a round of its own (no ranking of events needed)
MAX_GROUP_ROUNDS = 16


class StochasticEngine(PulseEngine):
    name = "stochastic"

    def __init__(
        self,
        bit_length: int = 31,
        bl_management: bool = True,
        update_management: bool = True,
    ) -> None:
        self.bit_length = check_bit_length(bit_length)
        self.bl_management = bool(bl_management)
        self.update_management = bool(update_management)

    # ------------------------------------------------------------------ pulse trains
    def train_probabilities(self, x, d, lr, dw_min):
        """Per-sample bit lengths and line probabilities: (BL (B,), p_x (B, in), p_d (B, out))."""
        x_abs, d_abs = x.abs(), d.abs()
        x_max = x_abs.amax(dim=1).clamp_min_(1e-30)
        d_max = d_abs.amax(dim=1).clamp_min_(1e-30)
        k = x_max * d_max * (lr / dw_min)
        if self.bl_management:
            bl = torch.ceil(k).clamp_(1, self.bit_length)
        else:
            bl = torch.full_like(x_max, float(self.bit_length))
        c = (lr / dw_min) / bl
        if self.update_management:
            # aihwkit: when the bit length saturates (k > BL), max|d| is replaced by max|d| BL / k
            d_val = d_max * (bl / k).clamp_(max=1.0)
            scale_x = torch.sqrt(c * d_val / x_max)
            scale_d = c / scale_x  # scale_x * scale_d = c = lr / (dw_min BL)
        else:
            scale_x = scale_d = torch.sqrt(c)
        p_x = x_abs.mul_(scale_x[:, None]).clamp_(max=1.0)
        p_d = d_abs.mul_(scale_d[:, None]).clamp_(max=1.0)
        return bl, p_x, p_d

    def pulse_trains(self, x, d, lr, dw_min, generator=None):
        """Bits of the pulse trains: x_bits (B, T, in) and d_bits (B, T, out), T = max BL_b."""
        bl, p_x, p_d = self.train_probabilities(x, d, lr, dw_min)
        slots = int(bl.max().item())
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
        x_bits, d_bits = self.pulse_trains(x, d, lr, dw_min, generator)
        n_b, n_out, n_in = x.shape[0], d.shape[1], x.shape[1]
        if n_b * n_out * n_in <= DENSE_LIMIT:
            dt = x.dtype
            counts = torch.bmm(d_bits.transpose(1, 2).to(dt), x_bits.to(dt))
            signed = counts * -(torch.sign(d)[:, :, None] * torch.sign(x)[:, None, :])
            return self.apply_events(w, device, signed, generator, need_touched)
        elem, count, slot_sizes = _sparse_coincidences(x_bits, d_bits, x, d)
        return self._apply_event_list(w, device, elem, count, generator, need_touched, slot_sizes, unit=True)

    def apply(self, w, device, delta, generator=None, need_touched=False) -> PulseStats:
        """General increment: the pulse count per element is |dW|/dw_min stochastically
        rounded (unbiased), capped at the bit length, applied pulse by pulse."""
        n = delta.abs() / device.dw_min
        low = torch.floor(n)
        u = torch.rand(n.shape, generator=generator, device=n.device, dtype=n.dtype)
        n = (low + (u < n - low).to(n.dtype)).clamp(max=self.bit_length)
        counts = torch.sign(delta) * n
        w.copy_(apply_pulse_counts(w, device, counts, generator))
        return PulseStats(counts.clamp_min(0).sum(), (-counts).clamp_min(0).sum(),
                          (counts != 0) if need_touched else None)

    def apply_events(self, w, device, signed, generator=None, need_touched=False) -> PulseStats:
        """Apply signed per-sample pulse counts ``signed`` (B, *w.shape), samples in sequence."""
        flat = signed.reshape(signed.shape[0], -1)
        sample_idx, elem = torch.nonzero(flat, as_tuple=True)  # ordered by sample
        sizes = [n for n in torch.bincount(sample_idx, minlength=flat.shape[0]).tolist() if n]
        return self._apply_event_list(w, device, elem, flat[sample_idx, elem], generator, need_touched, sizes)

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
        touched = torch.unique(elem) if need_touched else None
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

    Returns (flat element index j * n_in + i, signed count +-1 per pulse, sizes of the
    non-empty slots) ordered by sample, then slot: a slot holds distinct elements; pulses of one
    sample and element in different slots are separate events of the same sign, consecutive in
    that element's order.
    """
    n_b, slots, n_in = x_bits.shape
    xb, xt, xi = torch.nonzero(x_bits, as_tuple=True)
    db, dt_, dj = torch.nonzero(d_bits, as_tuple=True)
    slot_x = xb * slots + xt
    cnt_d = torch.bincount(db * slots + dt_, minlength=n_b * slots)
    start_d = torch.cumsum(cnt_d, 0) - cnt_d
    rep = cnt_d.index_select(0, slot_x)  # partners of each firing x line
    cnt_x = torch.bincount(slot_x, minlength=n_b * slots)
    slot_sizes = (cnt_x * cnt_d).tolist()  # pulses per slot (pairs are listed slot by slot)
    total = sum(slot_sizes)
    if total == 0:
        return (torch.zeros(0, dtype=torch.long, device=x.device), torch.zeros(0, dtype=x.dtype, device=x.device),
                [])
    # per firing line: its sign and its part of the flat element index
    x_sign = torch.sign(x).view(-1).index_select(0, xb * n_in + xi)
    d_sign = torch.sign(d).neg_().view(-1).index_select(0, db * d.shape[1] + dj)
    d_row = dj * n_in
    # pair p of x event e is (e, start_d[slot] + p - first pair of e)
    ex = torch.repeat_interleave(torch.arange(xi.numel(), device=x.device), rep, output_size=total)
    ed = torch.repeat_interleave(start_d.index_select(0, slot_x) - (torch.cumsum(rep, 0) - rep), rep,
                                 output_size=total)
    ed += torch.arange(total, device=x.device)
    elem = d_row.index_select(0, ed).add_(xi.index_select(0, ex))
    sign = x_sign.index_select(0, ex).mul_(d_sign.index_select(0, ed))
    return elem, sign, [n for n in slot_sizes if n]


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


def expected_pulses_per_step(x, d, lr, dw_min) -> float:
    """Expected number of coincidences of one rank update: sum_b sum_ij lr |x_bi d_bj| / dw_min
    (before probability capping); the workload normaliser used by the benchmarks."""
    return float((x.abs().sum(1) * d.abs().sum(1)).sum() * lr / dw_min)


__all__ = ["DENSE_LIMIT", "StochasticEngine", "expected_pulses_per_step"]
