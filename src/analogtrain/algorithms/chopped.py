"""Chopped Tiki-Taka v2 (c-TTv2) and AGAD (Rasch et al., Nat. Commun. 2024; aihwkit
``ChoppedTransferCompound`` and ``DynamicTransferCompound``).

Both are TT-v2 (:class:`~analogtrain.algorithms.residual.TikiTakaV2`) with a sign chopper
c_i in {+1, -1} per input column i of P:

- gradient write to P: desired increment -fast_step * d^T (x (.) c), fast_step = fast_lr
  (absolute, aihwkit's default for the chopped compounds) or lr * fast_lr with
  ``scale_fast_lr`` (the chopper multiplies what is written to P, so gradient content in P flips sign with c while the device's drift
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

Output choppers (aihwkit ``out_chop_prob``, default 0): a sign d_j per output row of P, applied
to the gradient write (d (.) c_out) and undone on read like the input chopper; after the
transfer of the last column every row flips with probability out_chop_prob.

Mixing (aihwkit master ``gamma`` of the chopped compounds, PR 764): with ``gamma > 0`` forward
and backward use W + gamma (c_out c_in^T) (.) P, the fast array de-chopped.

:class:`ERIDERArtifact` is E-RIDER as the paper's public artifact runs it (AGAD's transfer plus
a "pref" term gamma c (P - Q~) in forward and backward, Q~ = past_mean).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import check_bool, check_positive, check_unit
from .residual import BufferedState, TikiTakaV2
from .transfer import Chopper, ema_lines


@dataclass
class ChoppedTikiTakaV2(TikiTakaV2):
    """c-TTv2: TT-v2 with input choppers on P.

    Extra fields: ``chop_prob`` in [0, 1] (default 0.1, aihwkit in_chop_prob),
    ``chop_random`` (default True as aihwkit's in_chop_random; False: regular period),
    ``out_chop_prob`` in [0, 1] (default 0, aihwkit out_chop_prob) and ``gamma`` >= 0 (default 0,
    aihwkit master's gamma with the de-chopping correction: forward on W + gamma (c c^T) (.) P).
    Defaults as aihwkit's ChoppedTransferCompound: an absolute fast-array learning rate
    (``scale_fast_lr=False``, fast_lr 1.0: P's step is fast_lr whatever the optimizer's lr, in
    aihwkit 1.1.0 and master alike, whereas TT-v1/TT-v2 scale it by lr), momentum 0 and
    forget_buffer True (H is cleared where a pulse fired), transfers per mat-vec
    (``units_in_mbatch=False``: with transfer_every 1 one column per sample), threshold = thres
    (aihwkit buffer_granularity) times the granularity of the fast array P. Other fields as
    TikiTakaV2.

    ``auto_scale`` (default False, aihwkit auto_scale): P's step per sample is
    fast_lr * BL * g_P / (m_x m_d), g_P P's nominal granularity, BL ``auto_scale_bit_length``
    (default: the bit length of P's pulse engine, aihwkit desired_BL), m_x / m_d running means of
    each sample's max|x| / max|d| (m <- (1 - tau) m + tau new with tau = (1 - auto_momentum) / B
    for a batch of B; the first value starts them), as aihwkit's ChoppedTransferCompound
    (rpu_chopped_transfer_device.cpp getPulseCountAutoLR).
    """

    chop_prob: float = 0.1
    chop_random: bool = True
    out_chop_prob: float = 0.0
    gamma: float = 0.0
    momentum: float = 0.0
    units_in_mbatch: bool = False
    scale_fast_lr: bool = False
    auto_scale: bool = False
    auto_momentum: float = 0.99
    auto_scale_bit_length: int | None = None

    name = "chopped_tiki_taka_v2"

    def _validate(self):
        super()._validate()
        check_unit(type(self).__name__, "chop_prob", self.chop_prob)
        check_bool(type(self).__name__, "chop_random", self.chop_random)
        check_unit(type(self).__name__, "out_chop_prob", self.out_chop_prob)
        check_positive(type(self).__name__, "gamma", self.gamma, allow_zero=True)
        check_bool(type(self).__name__, "auto_scale", self.auto_scale)
        check_unit(type(self).__name__, "auto_momentum", self.auto_momentum, hi_open=True)
        bl = self.auto_scale_bit_length
        if bl is not None and not (isinstance(bl, int) and not isinstance(bl, bool) and bl >= 1):
            raise ValueError(f"{type(self).__name__}.auto_scale_bit_length must be None or an int in [1, inf), "
                             f"got {bl!r}")
        if not self.transfer_columns:
            raise ValueError(f"{type(self).__name__}.transfer_columns must be True (the input choppers act per column)")

    def init(self, spec):
        return ChoppedState(spec, self, gamma=0.0)


class ChoppedState(BufferedState):
    unit_array = "P"

    def __init__(self, spec, algo, gamma):
        super().__init__(spec, algo, gamma)
        w = self.arrays["W"]
        self.chopper = Chopper(self, self.n_in, algo.chop_prob, algo.chop_random, device=w.torch_device,
                               dtype=w.dtype)
        self.out_chopper = Chopper(self, w.shape[0], algo.out_chop_prob, True, name="out_chopper",
                                   device=w.torch_device, dtype=w.dtype)
        self.n_samples = self.chopper.n_samples
        if algo.auto_scale:  # running means of max|x| and max|d| (aihwkit m_x, m_d)
            self.buffers["auto_scale_m"] = torch.zeros(2, dtype=torch.float64, device=w.torch_device)

    # ------------------------------------------------------------------ forward
    def effective_weight(self):
        """W, or W + gamma (c_out c_in^T) (.) P with gamma > 0 (aihwkit master, PR 764)."""
        w = self.arrays["W"].read()
        gamma = self.algo.gamma
        if gamma == 0:
            return w
        chop = self.out_chopper.signs[:, None] * self.chopper.signs[None, :]
        return w + gamma * chop * self.arrays["P"].read()

    # ------------------------------------------------------------------ chopper
    def gradient_to_p(self, x, d, lr):
        if x.dim() == 1:
            x, d = x[None], d[None]
        if self.algo.out_chop_prob > 0:
            d = d * self.out_chopper.signs
        step = self.algo.fast_step(lr)
        if self.algo.auto_scale:
            d, step = self.auto_scaled(x, d)
        self.arrays["P"].update_outer(x * self.chopper.signs, d, step)

    def auto_scaled(self, x, d):
        """aihwkit auto_scale (class doc): per sample b the step s_b = fast_lr BL g / (m_x m_d)
        after updating the running means with sample b; returned as (d_b s_b / s_B, s_B), which
        gives every sample its own step in one rank update (pulse probabilities depend on the
        product step |x| |d|)."""
        algo, P = self.algo, self.arrays["P"]
        bl = algo.auto_scale_bit_length or getattr(P.engine, "bit_length", None)
        if bl is None:
            raise ValueError(f"{type(algo).__name__}.auto_scale needs a bit length: P's engine has none "
                             f"(use the stochastic engine or set auto_scale_bit_length)")
        m = self.buffers["auto_scale_m"]
        tau = (1.0 - algo.auto_momentum) / x.shape[0]
        x_max = x.abs().amax(dim=1).double().tolist()
        d_max = d.abs().amax(dim=1).double().tolist()
        mx, md = float(m[0]), float(m[1])
        steps = []
        base = algo.fast_lr * bl * P.nominal_dw_min
        for xm, dm in zip(x_max, d_max):
            if xm > 0:
                mx = xm if mx <= 0 else (1.0 - tau) * mx + tau * xm
            if dm > 0:
                md = dm if md <= 0 else (1.0 - tau) * md + tau * dm
            steps.append(base / (mx * md) if mx > 0 and md > 0 else base)
        m[0], m[1] = mx, md
        last = steps[-1]
        scale = torch.tensor([s / last for s in steps], dtype=d.dtype, device=d.device)
        return d * scale[:, None], last

    def column_signs(self, cols) -> torch.Tensor:
        """Chopper signs c_out c_in broadcast against the read of lines ``cols``."""
        signs = self.lines.line_vector(self.chopper.signs, cols)
        if self.algo.out_chop_prob > 0:
            signs = self.out_chopper.signs[:, None] * signs
        return signs

    def flip_mask(self, cols, count: int = 1) -> torch.Tensor | None:
        """Which chopper lines flip after this transfer (None: none)."""
        return self.chopper.flips(cols, self.k * count, self.counters["columns_transferred"])

    def apply_flips(self, cols, flips):
        self.chopper.apply(cols, flips)
        # output choppers: every row flips with out_chop_prob after the last column's transfer
        if self.algo.out_chop_prob > 0 and (cols is None or bool((cols == self.n_in - 1).any())):
            rows = self.out_chopper.n
            self.out_chopper.apply(None, self.out_chopper.flips(None, rows, 0))

    # ------------------------------------------------------------------ transfer
    def buffer_input(self, read, cols, lr):
        return read * self.column_signs(cols) * self.algo.transfer_step(lr)

    def transfer(self, lr, count: int = 1):
        cols = self.next_columns(count)
        flips = self.flip_mask(cols, count)
        read = self.read_p(cols)
        self.buffer.step(cols, self.buffer_input(read, cols, lr))
        self.apply_flips(cols, flips)
        self.after_transfer(cols, count)


@dataclass
class AGAD(ChoppedTikiTakaV2):
    """AGAD: c-TTv2 with an on-the-fly reference of P from chopper half-period means.

    Extra field: ``tail_weightening`` (default 5.0, aihwkit's): weight of a new read in the
    running mean, m = min(tail_weightening / n_samples, 1). ``chop_prob`` must be > 0.
    Defaults as aihwkit's DynamicTransferCompound (1.1.0): regular chopper (chop_random False),
    otherwise as ChoppedTikiTakaV2. aihwkit 1.1.0's code has no significance gating (its
    docstring mentions one), so there is none here.
    """

    tail_weightening: float = 5.0
    chop_random: bool = False

    name = "agad"

    def _validate(self):
        super()._validate()
        owner = type(self).__name__
        if not self.chop_prob > 0:
            raise ValueError(f"{owner}.chop_prob must lie in (0, 1] (AGAD needs choppers), got {self.chop_prob!r}")
        check_positive(owner, "tail_weightening", self.tail_weightening)

    def init(self, spec):
        return AGADState(spec, self, gamma=0.0)


@dataclass
class ERIDERArtifact(AGAD):
    """E-RIDER as the paper's public artifact runs it (Jindanli898/E-RIDER: aihwkit
    DynamicTransferCompound with a "pref" term), beside :class:`~analogtrain.algorithms.ERIDER`,
    the theory form of 2602.21321 Algorithm 3.

    Transfer: AGAD's (:class:`AGAD`): chopper per input column; running mean m <- (1 - mu) m + mu
    read, mu = tail_weightening / n_samples; at a column's first transfer after its chopper
    flipped, past_mean <- m (this is Q~); H += transfer_step * c (read - Q~) in units of P's
    granularity; truncated pulses (at most max_transfer_pulses) to W; writes after the warm-up.
    Forward and backward: W + gamma * c (P - Q~), where c (P - Q~) of each column is the value
    computed at that column's latest transfer (the artifact's cpq buffer, so up to one pass of
    transfers old; zero before a column's first transfer). The artifact runs this term as a
    second analog MVM with output noise; here it is part of the one effective weight.

    How it differs from the theory form :class:`~analogtrain.algorithms.ERIDER`: one column per
    transfer instead of the whole array, a buffered thresholded transfer instead of a direct
    write, Q~ set from the running mean at flips of each column's own chopper (not a global
    chopper and a digital Q programmed into an analog reference), no programming writes, and the
    mixed weight uses stale per-column reads.

    Defaults: AGAD's (chop_prob 0.1 regular, tail_weightening 5, momentum 0, forget_buffer True)
    with ``gamma`` 0.1 (the kernel's AIHWKIT_PREF_GAMMA default; the paper's FCN script sets 0.01)
    and ``units_in_mbatch`` True (as the artifact's scripts: a transfer per mini-batch).
    """

    gamma: float = 0.1
    units_in_mbatch: bool = True

    name = "erider_artifact"

    def init(self, spec):
        return ERIDERArtifactState(spec, self, gamma=0.0)


class AGADState(ChoppedState):
    def __init__(self, spec, algo, gamma):
        super().__init__(spec, algo, gamma)
        w = self.arrays["W"]
        self.buffers["running_mean"] = torch.zeros(w.shape, device=w.torch_device, dtype=w.dtype)
        self.buffers["past_mean"] = torch.zeros(w.shape, device=w.torch_device, dtype=w.dtype)
        self.buffers["switched"] = torch.zeros(self.n_in, device=w.torch_device, dtype=torch.bool)
        self.mean_rate = min(algo.tail_weightening / self.n_samples, 1.0)

    def record_signal(self, cols, signal):
        """Hook for the chopped, reference-free signal c (read - past_mean) of this transfer."""

    def reference(self) -> torch.Tensor:
        """AGAD's current estimate of P's reference (past_mean), shape of P."""
        return self.buffers["past_mean"]

    def transfer(self, lr, count: int = 1):
        cols = self.next_columns(count)
        flips = self.flip_mask(cols, count)
        warm = self.counters["columns_transferred"] // self.n_in > self.n_samples
        read = self.read_p(cols)
        lines = self.lines
        switched_all = self.buffers["switched"]
        switched = lines.line_vector(switched_all, cols)
        # at a line's first transfer after its chopper flipped: past_mean <- running_mean
        past = torch.where(switched, lines.take(self.buffers["running_mean"], cols),
                           lines.take(self.buffers["past_mean"], cols))
        lines.put(self.buffers["past_mean"], cols, past)
        signal = (read - past) * self.column_signs(cols)
        self.record_signal(cols, signal)
        self.buffer.step(cols, signal * self.algo.transfer_step(lr), write=warm)
        ema_lines(self, "running_mean", lines, cols, read, self.mean_rate)
        now = flips if flips is not None else torch.zeros(self.k * count, dtype=torch.bool, device=switched_all.device)
        if cols is None:
            switched_all.copy_(now)
        else:
            switched_all.index_copy_(0, cols, now)
        self.apply_flips(cols, flips)
        self.after_transfer(cols, count)


class ERIDERArtifactState(AGADState):
    def __init__(self, spec, algo, gamma):
        super().__init__(spec, algo, gamma)
        w = self.arrays["W"]
        self.buffers["pref"] = torch.zeros(w.shape, device=w.torch_device, dtype=w.dtype)

    def record_signal(self, cols, signal):
        self.lines.put(self.buffers["pref"], cols, signal)

    def effective_weight(self):
        """W + gamma * c (P - Q~) with each column's value from its latest transfer."""
        w = self.arrays["W"].read()
        if self.algo.gamma == 0:
            return w
        return w + self.algo.gamma * self.buffers["pref"]
