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
pulses, not with B * out * in. Events (sample, element, signed count) are grouped into rounds by
their rank among the events of the same element, so one round updates distinct elements in a
single vectorised step and the per-element order of samples is exact. Elements hit by a single
event (the large majority) all go into the first round.
"""

from __future__ import annotations

import torch

from .base import (
    PulseEngine,
    PulseStats,
    apply_pulse_counts,
    check_bit_length,
    index_device,
    nominal_dw_min,
    slice_device,
)

#: arrays with B * out * in up to this size count coincidences densely (a batched matmul)
DENSE_LIMIT = 1 << 17


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
        x_max = x.abs().amax(dim=1).clamp_min(1e-30)
        d_max = d.abs().amax(dim=1).clamp_min(1e-30)
        k = lr * x_max * d_max / dw_min
        if self.bl_management:
            bl = torch.ceil(k).clamp(1, self.bit_length)
        else:
            bl = torch.full_like(x_max, float(self.bit_length))
        c = lr / (dw_min * bl)
        if self.update_management:
            d_val = torch.where(k > bl, d_max * bl / k, d_max)  # aihwkit: saturated BL
            scale_x = torch.sqrt(c * d_val / x_max)
            scale_d = torch.sqrt(c * x_max / d_val)
        else:
            scale_x = scale_d = torch.sqrt(c)
        p_x = (x.abs() * scale_x[:, None]).clamp(max=1.0)
        p_d = (d.abs() * scale_d[:, None]).clamp(max=1.0)
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
        elem, count = _sparse_coincidences(x_bits, d_bits, x, d)
        return self._apply_event_list(w, device, elem, count, generator, need_touched)

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
        return self._apply_event_list(w, device, elem, flat[sample_idx, elem], generator, need_touched)

    def _apply_event_list(self, w, device, elem, count, generator, need_touched) -> PulseStats:
        """Events (flat element, signed count) listed in sample order, applied in rounds of
        distinct elements: round r holds the r-th event of every element."""
        up = count.clamp_min(0).sum()
        down = (-count).clamp_min(0).sum()
        if elem.numel() == 0:
            return PulseStats(up, down, torch.zeros(0, dtype=torch.long, device=w.device) if need_touched else None)
        w_flat = w.view(-1)
        ev_device = index_device(device, elem)
        form = ev_device.pulse_factors(count.to(w.dtype), generator)
        if form is None:
            _apply_rounds_generic(w_flat, ev_device, elem, count, generator)
        else:
            _apply_rounds_affine(w_flat, ev_device, elem, form)
        touched = torch.unique(elem) if need_touched else None
        return PulseStats(up, down, touched)

    def describe(self):
        return {"engine": self.name, "bit_length": self.bit_length,
                "bl_management": self.bl_management, "update_management": self.update_management}


def _sparse_coincidences(x_bits, d_bits, x, d):
    """Coincidences of firing lines in the same slot, without forming (B, out, in).

    Returns (flat element index j * n_in + i, signed count 1 per pulse) ordered by sample
    (then slot): pulses of one sample and element in different slots are separate events of
    the same sign, consecutive in that element's order.
    """
    n_b, slots, n_in = x_bits.shape
    xb, xt, xi = torch.nonzero(x_bits, as_tuple=True)
    db, dt_, dj = torch.nonzero(d_bits, as_tuple=True)
    slot_x = xb * slots + xt
    slot_d = db * slots + dt_
    cnt_d = torch.bincount(slot_d, minlength=n_b * slots)
    start_d = torch.cumsum(cnt_d, 0) - cnt_d
    rep = cnt_d[slot_x]
    total = int(rep.sum().item())
    if total == 0:
        empty = torch.zeros(0, dtype=torch.long, device=x.device)
        return empty, torch.zeros(0, dtype=x.dtype, device=x.device)
    ex = torch.repeat_interleave(torch.arange(xi.numel(), device=x.device), rep, output_size=total)
    first = torch.repeat_interleave(torch.cumsum(rep, 0) - rep, rep, output_size=total)
    ed = start_d[slot_x[ex]] + torch.arange(total, device=x.device) - first
    b, i, j = xb[ex], xi[ex], dj[ed]
    count = -(torch.sign(x)[b, i] * torch.sign(d)[b, j])
    return j * n_in + i, count


def _round_order(elem, n_elem):
    """Permutation of the events into rounds and the round sizes.

    Round r holds the r-th event (in list order) of each element, so a round has distinct
    elements. Returns (None, [n]) when no element occurs twice (the common fast path), else
    (perm, sizes) with the events of round 0 first, then round 1, ...
    """
    n = elem.numel()
    mult = torch.zeros(n_elem, dtype=torch.int32, device=elem.device)
    mult.index_add_(0, elem, torch.ones(n, dtype=torch.int32, device=elem.device))
    repeated = mult[elem] > 1
    rep_pos = torch.nonzero(repeated, as_tuple=True)[0]
    if rep_pos.numel() == 0:
        return None, [n]
    single_pos = torch.nonzero(~repeated, as_tuple=True)[0]
    # rank among the events of the same element: sort the (few) repeated events by element,
    # keeping list order inside an element
    _, order = torch.sort(elem[rep_pos] * n + rep_pos)
    pos_sorted = rep_pos[order]
    _, group = torch.unique_consecutive(elem[pos_sorted], return_counts=True)
    rank = torch.arange(pos_sorted.numel(), device=elem.device) - torch.repeat_interleave(
        torch.cumsum(group, 0) - group, group)
    _, by_rank = torch.sort(rank, stable=True)
    sizes = torch.bincount(rank).tolist()
    sizes[0] += single_pos.numel()
    return torch.cat([single_pos, pos_sorted[by_rank]]), sizes


def _permute_device(device, perm):
    picked = {name: v[perm] for name, v in device.params().items() if isinstance(v, torch.Tensor) and v.dim() > 0}
    return device.with_params(**picked) if picked else device


def _apply_rounds_generic(w_flat, ev_device, elem, count, generator):
    """Rounds of :meth:`Device.apply_pulses` (pulse by pulse with the current response)."""
    perm, sizes = _round_order(elem, w_flat.numel())
    if perm is not None:
        elem, count, ev_device = elem[perm], count[perm], _permute_device(ev_device, perm)
    start = 0
    for size in sizes:
        stop = start + size
        e = elem[start:stop]
        w_flat[e] = slice_device(ev_device, start, stop).apply_pulses(w_flat[e], count[start:stop], generator)
        start = stop


def _apply_rounds_affine(w_flat, ev_device, elem, form):
    """Rounds of w <- target + (w - target) * prod_k f_k (state-independent target and factors,
    :meth:`Device.pulse_factors`). Elements with a factor > 1 (a pulse moving away from its
    target, which may hit the opposite bound) are composed pulse by pulse with clamping."""
    target, f = form
    if f.shape[-1] == 0:
        return
    away = (f > 1.0).any(dim=-1)
    if bool(away.any()):
        mark = torch.zeros(w_flat.numel(), dtype=torch.bool, device=w_flat.device)
        mark[elem[away]] = True
        slow = mark[elem]
        fast_idx = torch.nonzero(~slow, as_tuple=True)[0]
        slow_idx = torch.nonzero(slow, as_tuple=True)[0]
        _affine_rounds(w_flat, _permute_device(ev_device, slow_idx), elem[slow_idx], target[slow_idx], f[slow_idx],
                       stepwise=True)
        ev_device, elem, target, f = _permute_device(ev_device, fast_idx), elem[fast_idx], target[fast_idx], f[fast_idx]
    _affine_rounds(w_flat, ev_device, elem, target, f, stepwise=False)


def _affine_rounds(w_flat, ev_device, elem, target, f, stepwise):
    if elem.numel() == 0:
        return
    perm, sizes = _round_order(elem, w_flat.numel())
    if perm is not None:
        elem, target, f, ev_device = elem[perm], target[perm], f[perm], _permute_device(ev_device, perm)
    total = f if stepwise else f.prod(dim=-1)
    start = 0
    for size in sizes:
        stop = start + size
        e = elem[start:stop]
        dev_r = slice_device(ev_device, start, stop)
        t = target[start:stop]
        w_e = w_flat[e]
        if stepwise:
            for k in range(f.shape[-1]):
                w_e = dev_r.clamp(torch.addcmul(t, w_e - t, total[start:stop, k]))
        else:
            w_e = dev_r.clamp(torch.addcmul(t, w_e - t, total[start:stop]))
        w_flat[e] = w_e
        start = stop


def expected_pulses_per_step(x, d, lr, dw_min) -> float:
    """Expected number of coincidences of one rank update: sum_b sum_ij lr |x_bi d_bj| / dw_min
    (before probability capping); the workload normaliser used by the benchmarks."""
    return float((x.abs().sum(1) * d.abs().sum(1)).sum() * lr / dw_min)


__all__ = ["DENSE_LIMIT", "StochasticEngine", "expected_pulses_per_step"]
