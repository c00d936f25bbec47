"""Stochastic pulse trains (aihwkit's STOCHASTIC_COMPRESSED update, Gokmen & Vlasov 2016).

For each sample b of a batch the periphery sends BL time slots; input line i fires in a slot
with probability p_x = B_b |x_i|, output line j with p_d = A_b |d_j|. Element (j, i) receives one
pulse of polarity -sign(x_i d_j) per coincidence, so the expected number of pulses is
BL * p_x * p_d = lr |x_i d_j| / dw_min and the expected update is -lr x_i d_j q(w).

- BL management: BL_b = min(bit_length, ceil(lr * max|x_b| * max|d_b| / dw_min)).
- A_b * B_b = lr / (dw_min * BL_b); update management balances them so that
  B_b max|x_b| = A_b max|d_b| (probabilities capped at 1).
- Samples are applied in sequence: each element sees its pulses in the order of the batch,
  every pulse with the response at the current state plus cycle-to-cycle noise.

Only elements that receive pulses are touched. Events are grouped into rounds by their rank
among the events of the same element, so one round updates distinct elements in a single
vectorised step and the per-element order of samples is exact.
"""

from __future__ import annotations


import torch

from .base import (
    check_bit_length,
    PulseEngine,
    PulseStats,
    apply_pulse_counts,
    index_device,
    nominal_dw_min,
    slice_device,
)


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
        if self.bl_management:
            bl = torch.ceil(lr * x_max * d_max / dw_min).clamp(1, self.bit_length)
        else:
            bl = torch.full_like(x_max, float(self.bit_length))
        c = lr / (dw_min * bl)
        if self.update_management:
            scale_x = torch.sqrt(c * d_max / x_max)
            scale_d = torch.sqrt(c * x_max / d_max)
        else:
            scale_x = scale_d = torch.sqrt(c)
        p_x = (x.abs() * scale_x[:, None]).clamp(max=1.0)
        p_d = (d.abs() * scale_d[:, None]).clamp(max=1.0)
        return bl, p_x, p_d

    def coincidences(self, x, d, lr, dw_min, generator=None) -> torch.Tensor:
        """Signed pulse counts per sample and element, shape (B, out, in)."""
        bl, p_x, p_d = self.train_probabilities(x, d, lr, dw_min)
        slots = int(bl.max().item())
        b, n_in = x.shape
        n_out = d.shape[1]
        dev, dt = x.device, x.dtype
        slot_ok = torch.arange(slots, device=dev)[None, :] < bl[:, None]  # (B, T)
        x_bits = torch.rand((b, slots, n_in), generator=generator, device=dev, dtype=dt) < p_x[:, None, :]
        x_bits &= slot_ok[:, :, None]
        d_bits = torch.rand((b, slots, n_out), generator=generator, device=dev, dtype=dt) < p_d[:, None, :]
        counts = torch.bmm(d_bits.transpose(1, 2).to(dt), x_bits.to(dt))  # (B, out, in)
        sign = -(torch.sign(d)[:, :, None] * torch.sign(x)[:, None, :])
        return counts * sign

    # ------------------------------------------------------------------ application
    def apply_outer(self, w, device, x, d, lr, generator=None, need_touched=False) -> PulseStats:
        if x.dim() == 1:
            x, d = x[None], d[None]
        if lr < 0:  # -lr d^T x == -|lr| (-d)^T x
            lr, d = -lr, -d
        dw_min = nominal_dw_min(device)
        signed = self.coincidences(x, d, lr, dw_min, generator)
        return self.apply_events(w, device, signed, generator, need_touched)

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
        n_elem = w.numel()
        up = signed.clamp_min(0).sum()
        down = (-signed).clamp_min(0).sum()
        flat = signed.reshape(signed.shape[0], -1)
        sample_idx, elem = torch.nonzero(flat, as_tuple=True)  # ordered by sample
        if elem.numel() == 0:
            return PulseStats(up, down, torch.zeros(0, dtype=torch.long, device=w.device) if need_touched else None)
        counts = flat[sample_idx, elem]
        # rank of each event among the events of its element (in sample order)
        elem_sorted, order = torch.sort(elem, stable=True)
        _, group_sizes = torch.unique_consecutive(elem_sorted, return_counts=True)
        starts = torch.cumsum(group_sizes, 0) - group_sizes
        rank = torch.arange(elem.numel(), device=w.device) - torch.repeat_interleave(starts, group_sizes)
        n_rounds = int(group_sizes.max().item())
        if n_rounds == 1:
            rounds = [(0, elem.numel())]
            ev_elem, ev_count = elem, counts
        else:
            key = rank * n_elem + elem_sorted
            key_sorted, order2 = torch.sort(key)
            perm = order[order2]
            ev_elem, ev_count = elem[perm], counts[perm]
            sizes = torch.bincount(rank, minlength=n_rounds).tolist()
            bounds = [0]
            for s in sizes:
                bounds.append(bounds[-1] + s)
            rounds = list(zip(bounds[:-1], bounds[1:]))
        ev_device = index_device(device, ev_elem)
        w_flat = w.view(-1)
        for start, stop in rounds:
            e = ev_elem[start:stop]
            new = apply_pulse_counts(w_flat[e], slice_device(ev_device, start, stop), ev_count[start:stop], generator)
            w_flat[e] = new
        touched = torch.unique(elem) if need_touched else None
        return PulseStats(up, down, touched)

    def describe(self):
        return {"engine": self.name, "bit_length": self.bit_length,
                "bl_management": self.bl_management, "update_management": self.update_management}


def expected_pulses_per_step(x, d, lr, dw_min) -> float:
    """Expected number of coincidences of one rank update: sum_b sum_ij lr |x_bi d_bj| / dw_min
    (before probability capping); the workload normaliser used by the benchmarks."""
    return float((x.abs().sum(1) * d.abs().sum(1)).sum() * lr / dw_min)


__all__ = ["StochasticEngine", "expected_pulses_per_step"]
