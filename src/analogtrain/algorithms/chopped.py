"""Chopped Tiki-Taka v2 (c-TTv2) and AGAD (Rasch et al., Nat. Commun. 2024; aihwkit
``ChoppedTransferCompound`` and ``DynamicTransferCompound``).

Both are TT-v2 (:class:`~analogtrain.algorithms.residual.TikiTakaV2`) with a sign chopper
c_i in {+1, -1} per input column i of P:

- gradient write to P: desired increment -lr * fast_lr * d^T (x (.) c)  (the chopper multiplies
  what is written to P, so gradient content in P flips sign with c while the device's drift
  towards its SP does not);
- transfer read of column i: c_i * read(P[:, i]) goes into the buffer H (the sign is undone on
  read), so the drift, which does not follow c, averages out of H over chopper periods.

Chopper schedule (aihwkit ``in_chop_prob`` / ``in_chop_random``): with ``chop_random=False``
(default) every column's sign flips after each ``n_samples = max(ceil(1/chop_prob), 2)``-th full
pass of transfers over the columns ("regular"); with ``chop_random=True`` each transferred
column flips with probability ``chop_prob`` after its transfer. ``chop_prob = 0`` is TT-v2.

AGAD additionally estimates P's reference on the fly (aihwkit DynamicTransferCompound; see
2602.21321 digest Sec. 3.6 for the running_mean / past_mean mechanics): per transferred column

    if the column's chopper switched at its previous transfer:  past_mean <- running_mean
    H += lr * transfer_lr * c_i * (read - past_mean)
    running_mean <- (1 - m) running_mean + m * read,   m = min(tail_weightening / n_samples, 1)

so what reaches W is the difference of P between chopper half periods, free of P's offset;
writes start after the first ``n_samples`` passes (warm-up, as aihwkit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .base import check_positive, check_unit
from .residual import BufferedState, TikiTakaV2


@dataclass
class ChoppedTikiTakaV2(TikiTakaV2):
    """c-TTv2: TT-v2 with input choppers on P.

    Extra fields: ``chop_prob`` in [0, 1] (default 0.1, aihwkit in_chop_prob) and
    ``chop_random`` (default False: regular period). Other fields and defaults as TikiTakaV2.
    """

    chop_prob: float = 0.1
    chop_random: bool = False

    name = "chopped_tiki_taka_v2"

    def _validate(self):
        super()._validate()
        check_unit(type(self).__name__, "chop_prob", self.chop_prob)

    def init(self, spec):
        return ChoppedState(spec, self, gamma=0.0)


class ChoppedState(BufferedState):
    def __init__(self, spec, algo, gamma):
        super().__init__(spec, algo, gamma)
        w = self.arrays["W"]
        self.buffers["chopper"] = torch.ones(self.n_in, device=w.torch_device, dtype=w.dtype)
        self.generators["chopper"] = spec.generator("chopper")
        p = algo.chop_prob
        self.n_samples = max(math.ceil(1.0 / p), 2) if p > 0 else 0

    # ------------------------------------------------------------------ chopper
    def gradient_to_p(self, x, d, lr):
        if x.dim() == 1:
            x = x[None]
        self.arrays["P"].update_outer(x * self.buffers["chopper"], d, lr * self.algo.fast_lr)

    def column_signs(self, cols) -> torch.Tensor:
        c = self.buffers["chopper"]
        return c if cols is None else c[cols]

    def pass_index(self, cols) -> torch.Tensor:
        """Index of the full pass over the columns that each transferred column belongs to."""
        dev = self.buffers["chopper"].device
        done = self.counters["columns_transferred"]
        return (torch.arange(self.k, device=dev) + done) // self.n_in

    def flip_mask(self, cols) -> torch.Tensor | None:
        """Which transferred columns flip their chopper after this transfer (None: none)."""
        if self.algo.chop_prob <= 0:
            return None
        if self.algo.chop_random:
            dev = self.buffers["chopper"].device
            u = torch.rand(self.k, generator=self.generators["chopper"], device=dev)
            return u < self.algo.chop_prob
        return (self.pass_index(cols) % self.n_samples) + 1 == self.n_samples

    def apply_flips(self, cols, flips):
        if flips is None:
            return
        c = self.buffers["chopper"]
        sign = 1.0 - 2.0 * flips.to(c.dtype)
        if cols is None:
            self.buffers["chopper"] = c * sign
        else:
            c[cols] = c[cols] * sign

    # ------------------------------------------------------------------ transfer
    def buffer_input(self, read, cols, lr):
        return read * self.column_signs(cols) * (lr * self.algo.transfer_lr)

    def transfer(self, lr):
        cols = self.next_columns()
        flips = self.flip_mask(cols)
        read = self.read_p(cols)
        h_all = self.buffers["H"]
        h = h_all if cols is None else h_all[:, cols]
        h = self.write_from_buffer(h + self.buffer_input(read, cols, lr), cols)
        if cols is None:
            self.buffers["H"] = h
        else:
            h_all[:, cols] = h
        self.apply_flips(cols, flips)
        self.count_transfer()


@dataclass
class AGAD(ChoppedTikiTakaV2):
    """AGAD: c-TTv2 with an on-the-fly reference of P from chopper half-period means.

    Extra field: ``tail_weightening`` (default 5.0, aihwkit's): weight of a new read in the
    running mean, m = min(tail_weightening / n_samples, 1). ``chop_prob`` must be > 0.
    """

    tail_weightening: float = 5.0

    name = "agad"

    def _validate(self):
        super()._validate()
        owner = type(self).__name__
        if not self.chop_prob > 0:
            raise ValueError(f"{owner}.chop_prob must lie in (0, 1] (AGAD needs choppers), got {self.chop_prob!r}")
        check_positive(owner, "tail_weightening", self.tail_weightening)

    def init(self, spec):
        return AGADState(spec, self, gamma=0.0)


class AGADState(ChoppedState):
    def __init__(self, spec, algo, gamma):
        super().__init__(spec, algo, gamma)
        w = self.arrays["W"]
        self.buffers["running_mean"] = torch.zeros(w.shape, device=w.torch_device, dtype=w.dtype)
        self.buffers["past_mean"] = torch.zeros(w.shape, device=w.torch_device, dtype=w.dtype)
        self.buffers["switched"] = torch.zeros(self.n_in, device=w.torch_device, dtype=torch.bool)
        self.mean_rate = min(algo.tail_weightening / self.n_samples, 1.0)

    def reference(self) -> torch.Tensor:
        """AGAD's current estimate of P's reference (past_mean), shape of P."""
        return self.buffers["past_mean"]

    def transfer(self, lr):
        cols = self.next_columns()
        flips = self.flip_mask(cols)
        warm = self.counters["columns_transferred"] // self.n_in > self.n_samples
        read = self.read_p(cols)
        sel = (lambda t: t) if cols is None else (lambda t: t[:, cols])
        running, past = sel(self.buffers["running_mean"]), sel(self.buffers["past_mean"])
        switched = self.buffers["switched"] if cols is None else self.buffers["switched"][cols]
        past = torch.where(switched[None, :], running, past)
        signal = (read - past) * self.column_signs(cols) * (lr * self.algo.transfer_lr)
        h = sel(self.buffers["H"]) + signal
        h = self.write_from_buffer(h, cols, write=warm)
        running = running * (1.0 - self.mean_rate) + read * self.mean_rate
        now_switched = flips if flips is not None else torch.zeros_like(switched)
        if cols is None:
            self.buffers["H"], self.buffers["running_mean"], self.buffers["past_mean"] = h, running, past
            self.buffers["switched"] = now_switched
        else:
            self.buffers["H"][:, cols] = h
            self.buffers["running_mean"][:, cols] = running
            self.buffers["past_mean"][:, cols] = past
            self.buffers["switched"][cols] = now_switched
        self.apply_flips(cols, flips)
        self.count_transfer()
