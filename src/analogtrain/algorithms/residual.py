"""Tiki-Taka and Residual Learning: a fast array P accumulates gradients, W receives transfers.

Two analog arrays per layer: the main array W and the residual ("fast") array P, P_0 = 0.

- **TT-v1** (:class:`TikiTaka`, Gokmen & Haensch 2020; analysed in 2406.12774):
  forward/backward use W only; P gets the gradient pulses; every ``transfer_every`` steps
  ``columns_per_transfer`` columns of P are read and written onto W by pulses (open loop,
  P is never reset).
- **Residual Learning** (:class:`ResidualLearning`, 2502.06309 Sec. 4, eqs. 10-11):
  the same, but forward/backward use the mixed weight W + gamma * P::

      P_{k+1} = P_k - a grad f(W_k + gamma P_k) (.) F(P_k) - a |grad f(...)| (.) G(P_k)   (10)
      W_{k+1} = W_k + b P_{k+1} (.) F(W_k) - b |P_{k+1}| (.) G(W_k)                      (11)

  ``gamma = 0`` is exactly TT-v1.
- **TT-v2** (:class:`TikiTakaV2`, Gokmen 2021; aihwkit ``BufferedTransferCompound``): reads of
  P accumulate in a digital buffer H; an integer number of pulses goes to W when |H| crosses
  ``thres * dw_min``; gradient at W.
- **RLv2** (:class:`ResidualLearningV2`, 2502.06309 Sec. 5 / App. D, eq. 14):
  H <- (1 - beta) H + beta (P + read noise); ONE pulse of sign(H) to W where |H| >= dw_min,
  H reduced by dw_min there; gradient at W + gamma P.

Step sizes (this library's names; the papers swap alpha and beta):

| here | meaning | 2502.06309 (2025) | 2406.12774 (2024) | aihwkit TransferCompound |
|---|---|---|---|---|
| ``lr`` (optimizer) | global step size | - | - | optimizer lr |
| ``fast_lr`` | P step = lr * fast_lr | alpha (eq. 10) | beta | ``fast_lr`` / lr (aihwkit's is absolute) |
| ``transfer_lr`` | W step per read = lr * transfer_lr | beta (eq. 11) | alpha | ``transfer_lr`` with ``scale_transfer_lr=True`` |
| ``gamma`` | mixing W + gamma P | gamma | (0) | ``gamma`` (effective gamma A + C) |
| ``buffer_rate`` (RLv2) | EMA weight of H | beta (eq. 14) | - | ~ 1 - ``momentum`` |

Both ``fast_lr`` and ``transfer_lr`` are *multipliers of the optimizer's lr*, so LR schedulers
scale the whole algorithm (aihwkit's ``scale_transfer_lr=True`` default for the transfer).
A transfer reads columns through ``config.transfer_io`` (perfect by default) and writes them with
``config.make_transfer_engine()`` (same engine as gradients unless ``transfer_engine`` is set).
The thresholded writes of TT-v2 / RLv2 always fire exact whole pulses (each moves an element by
dw_min * q(w) plus cycle noise), whatever the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..arrays import ReferenceOffset
from .base import Algorithm, AlgorithmState, StepSizes, check_bool, check_positive, check_unit
from .transfer import (
    GRANULARITIES,
    OPEN_LOOP_WRITES,
    PULSE_WRITES,
    Lines,
    ThresholdedBuffer,
    check_choice,
    read_lines,
    write_open_loop,
)


# ----------------------------------------------------------------------------- validation
def check_transfer_schedule(owner: str, transfer_every, columns_per_transfer) -> None:
    if not (isinstance(transfer_every, int) and transfer_every >= 1):
        raise ValueError(f"{owner}.transfer_every must be an int in [1, inf), got {transfer_every!r}")
    if columns_per_transfer not in (None, "all") and not (
            isinstance(columns_per_transfer, int) and columns_per_transfer >= 1):
        raise ValueError(
            f"{owner}.columns_per_transfer must be an int in [1, inf) or None / 'all' (all columns), "
            f"got {columns_per_transfer!r}"
        )


def check_reference(owner: str, name: str, value) -> None:
    if value is None or isinstance(value, (int, float, ReferenceOffset)) or value in ("symmetric_point", "sp"):
        return
    raise ValueError(f"{owner}.{name} must be None, a float, 'symmetric_point' or a ReferenceOffset, got {value!r}")


# ----------------------------------------------------------------------------- shared schedule
@dataclass
class TransferSchedule(StepSizes, Algorithm):
    """Fields shared by the fast/slow transfer algorithms (TT-v1, RL, TT-v2, c-TTv2, AGAD).

    - ``fast_lr`` (default 1.0): P step = lr * fast_lr; with ``scale_fast_lr=False`` the step is
      ``fast_lr`` itself (aihwkit 1.1.0's absolute fast_lr; aihwkit 1.2.0 ``scale_fast_lr``).
    - ``transfer_lr`` (default 1.0): transfer step = lr * transfer_lr (aihwkit
      ``scale_transfer_lr=True``, the default) or ``transfer_lr`` (``scale_transfer_lr=False``).
    - ``transfer_every`` (default 1): a transfer every that many mini-batches, or mat-vecs
      (samples) with ``units_in_mbatch=False`` (aihwkit ``units_in_mbatch``; the transfers due in
      a batch then run after its gradient pulses, aihwkit interleaves them with the samples).
    - ``columns_per_transfer`` (default 1, aihwkit ``n_reads_per_transfer``; None or "all":
      every line); ``transfer_columns`` (default True: columns; False: rows); ``random_selection``
      (default False: cyclic; True: a random first line per transfer).
    - ``with_reset_prob`` (default 0): after its transfer a read line of P is reset (programmed)
      to 0 with this probability (aihwkit ``with_reset_prob``), counted as programming writes.
    - ``p_reference``: reference of P (None, a float, "symmetric_point" or a ReferenceOffset).
    """

    fast_lr: float = 1.0
    transfer_lr: float = 1.0
    transfer_every: int = 1
    columns_per_transfer: int | None = 1
    p_reference: object = None
    transfer_columns: bool = True
    random_selection: bool = False
    units_in_mbatch: bool = True
    scale_fast_lr: bool = True
    scale_transfer_lr: bool = True
    with_reset_prob: float = 0.0

    def __post_init__(self):
        self._validate()

    def _validate(self):
        owner = type(self).__name__
        check_positive(owner, "fast_lr", self.fast_lr)
        check_positive(owner, "transfer_lr", self.transfer_lr)
        check_transfer_schedule(owner, self.transfer_every, self.columns_per_transfer)
        check_reference(owner, "p_reference", self.p_reference)
        for name in ("transfer_columns", "random_selection", "units_in_mbatch", "scale_fast_lr", "scale_transfer_lr"):
            check_bool(owner, name, getattr(self, name))
        check_unit(owner, "with_reset_prob", self.with_reset_prob)


# ----------------------------------------------------------------------------- TT-v1 / RL
@dataclass
class TikiTaka(TransferSchedule):
    """Tiki-Taka v1: gradient pulses on P, periodic line transfers P -> W, forward on W only.

    A transferred column c of W gets the desired increment transfer_step * read(P[:, c])
    (2025's beta; 2024's alpha; aihwkit transfer_lr), written open loop: ``transfer_write``
    "pulse_train" (default, aihwkit: one-hot rank update through the transfer engine, BL-managed
    pulse trains under the stochastic engine) or "per_element" (|dW| / dw_min stochastically
    rounded per element). Both are the compact rule under the expected engine. P is never
    reset (unless ``with_reset_prob``). Schedule fields: :class:`TransferSchedule`.

    Defaults work on small problems (MNIST-size layers with lr ~ 0.05-0.1 and a device of
    ~1000 states); aihwkit 1.1.0 TT presets correspond to fast_lr = aihwkit_fast_lr / lr, or
    ``scale_fast_lr=False`` with aihwkit's number.
    """

    transfer_write: str = "pulse_train"

    name = "tiki_taka"

    def _validate(self):
        super()._validate()
        check_choice(type(self).__name__, "transfer_write", self.transfer_write, OPEN_LOOP_WRITES)

    @property
    def mixing(self) -> float:
        return 0.0

    def init(self, spec):
        return ResidualState(spec, self, self.mixing)


@dataclass
class ResidualLearning(TikiTaka):
    """Residual Learning (2502.06309 eqs. 10-11): as TT-v1, forward/backward on W + gamma * P.

    ``gamma`` (default 0.2; the paper uses 0.4 in its least-squares and ResNet code, 0.1-0.4 in
    Fig. 5) must lie in [0, inf); ``gamma = 0`` is TT-v1. ``all_columns=True`` is shorthand for
    ``columns_per_transfer=None`` (read and transfer all of P every transfer, as in the theory).
    """

    gamma: float = 0.2
    all_columns: bool = False

    name = "residual_learning"

    def _validate(self):
        super()._validate()
        check_positive(type(self).__name__, "gamma", self.gamma, allow_zero=True)
        if self.all_columns:
            self.columns_per_transfer = None

    @property
    def mixing(self) -> float:
        return float(self.gamma)


class TransferState(AlgorithmState):
    """Shared recipe: arrays W and P, gradient pulses on P, transfers of lines of P into W
    (subclasses define ``transfer(lr)``)."""

    def __init__(self, spec, algo, gamma: float):
        super().__init__(spec)
        self.algo = algo
        self.gamma = float(gamma)
        init = spec.init_weight if spec.init_weight is not None else 0.0
        self.arrays["W"] = spec.make_array("W", init=init)
        self.arrays["P"] = spec.make_array("P", init=0.0, reference=algo.p_reference)
        self.transfer_io = spec.config.transfer_io
        self.generators["read"] = spec.generator("transfer_read")
        self.n_in = spec.shape[1]
        self.lines = Lines(self, spec.shape, algo.columns_per_transfer,
                           columns=getattr(algo, "transfer_columns", True),
                           random=getattr(algo, "random_selection", False))
        self.k = self.lines.k
        if getattr(algo, "with_reset_prob", 0.0) > 0:
            self.generators["reset"] = spec.generator("reset")
        self.counters.update(transfers=0, columns_transferred=0, samples=0)

    # ------------------------------------------------------------------ forward
    def effective_weight(self):
        w = self.arrays["W"].read()
        if self.gamma == 0.0:
            return w
        return w + self.gamma * self.arrays["P"].read()

    # ------------------------------------------------------------------ pieces
    def gradient_to_p(self, x, d, lr):
        """Eq. 10: desired increment -fast_step * d^T x on P (through the pulse engine)."""
        self.arrays["P"].update_outer(x, d, self.algo.fast_step(lr))

    def next_columns(self, count: int = 1) -> torch.Tensor | None:
        """Indices of the lines of this transfer (``count`` coalesced transfers); None: all lines."""
        return self.lines.next(self.arrays["P"].torch_device, count)

    def read_p(self, cols) -> torch.Tensor:
        """Read lines of P through the transfer periphery: (out, k) columns or (k, in) rows."""
        return read_lines(self.arrays["P"], self.lines, cols, self.transfer_io, self.generators["read"])

    def after_transfer(self, cols, count: int = 1):
        """Reset the read lines of P with probability with_reset_prob; count the transfer(s)."""
        prob = getattr(self.algo, "with_reset_prob", 0.0)
        if prob > 0:
            P = self.arrays["P"]
            k = self.k * count
            hit = torch.rand(k, generator=self.generators["reset"], device=self.generators["reset"].device) < prob
            if bool(hit.any()):
                idx = torch.arange(self.lines.n, device=P.torch_device) if cols is None else cols
                line_mask = torch.zeros(self.lines.n, dtype=torch.bool, device=P.torch_device)
                line_mask[idx[hit.to(P.torch_device)]] = True
                mask = line_mask[None, :] if self.lines.columns else line_mask[:, None]
                P.reset_where(mask.expand(P.shape))
        self.counters["transfers"] += count
        self.counters["columns_transferred"] += self.k * count

    def transfers_due(self, batch: int) -> int:
        """Transfers of this step: one every transfer_every mini-batches, or every
        transfer_every samples (``units_in_mbatch=False``)."""
        every = self.algo.transfer_every
        if getattr(self.algo, "units_in_mbatch", True):
            return int(self.counters["steps"] % every == 0)
        before = self.counters["samples"]
        self.counters["samples"] = before + batch
        return (before + batch) // every - before // every

    #: run the transfers due in one step on distinct lines as one vectorised transfer of their
    #: lines (:meth:`run_transfers`); False: one call per transfer (the reference)
    coalesce = True

    def step(self, x, d, lr):
        if x.dim() == 1:
            x, d = x[None], d[None]
        self.gradient_to_p(x, d, lr)
        self.counters["steps"] += 1
        self.run_transfers(self.transfers_due(x.shape[0]), lr)

    def run_transfers(self, due: int, lr) -> None:
        """``due`` consecutive transfers. With a cyclic cursor, the transfers up to the cursor's
        wrap touch distinct lines, and P does not change between them (gradient pulses come
        first; with_reset_prob resets only lines already read), so they run as one transfer of
        all their lines: the same per-line arithmetic, chopper and reset draws in the same order
        (one draw per line), the out-chopper flip after the wrap as before; only the pulses' noise
        draws are ordered differently (tests/test_chopped.py compares both ways)."""
        if not self.coalesce or due <= 1 or self.lines.all or self.lines.random:
            for _ in range(due):
                self.transfer(lr)
            return
        while due > 0:
            count = min(due, self.lines.transfers_to_wrap())
            self.transfer(lr, count)
            due -= count

    def summary(self) -> dict:
        out = super().summary()
        out["transfers"] = {"P->W": self.counters["transfers"]}
        out["columns_transferred"] = {"P->W": self.counters["columns_transferred"]}
        return out


class ResidualState(TransferState):
    """TT-v1 (gamma = 0) and Residual Learning: open-loop transfer W += transfer_step * read(P)."""

    def transfer(self, lr, count: int = 1):
        cols = self.next_columns(count)
        read = self.read_p(cols)
        write_open_loop(self.arrays["W"], self.lines, cols, read * self.algo.transfer_step(lr),
                        self.algo.transfer_write)
        self.after_transfer(cols, count)


# ----------------------------------------------------------------------------- buffered
@dataclass
class TikiTakaV2(TransferSchedule):
    """Tiki-Taka v2 (aihwkit BufferedTransferCompound): reads of P integrate in a digital H,
    whole pulses go to W (:class:`~analogtrain.algorithms.transfer.ThresholdedBuffer`).

    Per transferred column c (H in weight units, threshold theta = thres * g):

        H[:, c] += transfer_step * read(P[:, c])
        n = clip(trunc(H[:, c] / theta), -max_transfer_pulses, max_transfer_pulses)
        W[:, c] gets n pulses of polarity sign(n) (each dw_min * q(W))
        H[:, c] -= (1 - momentum) * n * theta      or, with forget_buffer, H *= momentum where n != 0

    - ``granularity``: g = the nominal dw_min of W ("nominal", default, aihwkit) or each
      element's own ("per_element").
    - ``auto_granularity`` (default 0: off): aihwkit's auto_granularity a; theta is scaled by
      a / (n_lines * transfer_every) (:meth:`BufferedState.threshold_scale`).
    - ``pulse_write``: "exact" (default: exactly n pulses) or "pulse_train" (aihwkit's transfer
      update: a one-hot rank update of n g through the transfer engine, a stochastic train of
      mean |n| under the stochastic engine).

    Defaults: fast_lr 1, transfer_lr 1, thres 1 (aihwkit thres_scale), momentum 0.1 and
    forget_buffer True (aihwkit's), max_transfer_pulses 1 (aihwkit transfer BL), one column per
    step. Gradient at W (gamma = 0).
    """

    thres: float = 1.0
    momentum: float = 0.1
    forget_buffer: bool = True
    max_transfer_pulses: int = 1
    granularity: str = "nominal"
    auto_granularity: float = 0.0
    pulse_write: str = "exact"

    name = "tiki_taka_v2"

    def _validate(self):
        super()._validate()
        owner = type(self).__name__
        check_positive(owner, "thres", self.thres)
        check_unit(owner, "momentum", self.momentum, hi_open=True)
        check_bool(owner, "forget_buffer", self.forget_buffer)
        if not (isinstance(self.max_transfer_pulses, int) and self.max_transfer_pulses >= 1):
            raise ValueError(f"{owner}.max_transfer_pulses must be an int in [1, inf), got {self.max_transfer_pulses!r}")
        check_choice(owner, "granularity", self.granularity, GRANULARITIES)
        check_positive(owner, "auto_granularity", self.auto_granularity, allow_zero=True)
        check_choice(owner, "pulse_write", self.pulse_write, PULSE_WRITES)

    def init(self, spec):
        return BufferedState(spec, self, gamma=0.0)


class BufferedState(TransferState):
    """TT-v2 / RLv2 / c-TTv2 / AGAD core: digital buffer H and thresholded whole-pulse writes to W."""

    #: EMA decay of H per read (RLv2: beta; TT-v2: 0, a pure integrator)
    decay = 0.0

    def __init__(self, spec, algo, gamma: float):
        super().__init__(spec, algo, gamma)
        self.buffer = ThresholdedBuffer(self, self.arrays["W"], self.lines, algo, scale=self.threshold_scale(),
                                        unit_array=self.arrays[self.unit_array])

    #: name of the array whose granularity sets the threshold (aihwkit: the slow array for
    #: BufferedTransferCompound, the fast one for the chopped compounds)
    unit_array = "W"

    def threshold_scale(self) -> float:
        """aihwkit ``auto_granularity`` a: theta is scaled by a / (n_lines * transfer_every) (the
        lines of one full pass and the raw transfer_every, as aihwkit); 1 when off (a = 0)."""
        auto = getattr(self.algo, "auto_granularity", 0.0)
        if not auto:
            return 1.0
        return float(auto) / (self.lines.n * self.algo.transfer_every)

    def threshold(self):
        """theta = thres * granularity (per element when ``granularity="per_element"``)."""
        return self.buffer.threshold(None)

    def buffer_input(self, read, cols, lr) -> torch.Tensor:
        """What one read adds to H (TT-v2: transfer_step * read)."""
        return read * self.algo.transfer_step(lr)

    def transfer(self, lr, count: int = 1):
        cols = self.next_columns(count)
        read = self.read_p(cols)
        self.buffer.step(cols, self.buffer_input(read, cols, lr), keep=1.0 - self.decay)
        self.after_transfer(cols, count)


# ----------------------------------------------------------------------------- RLv2
@dataclass
class ResidualLearningV2(Algorithm):
    """Residual Learning v2 (2502.06309 Sec. 5, App. D): EMA buffer + one-pulse threshold.

    Per transfer (default: every step, all columns, as in the paper):

        H <- (1 - buffer_rate) H + buffer_rate * read(P)          (eq. 14; read noise from transfer_io)
        where |H| >= dw_min(W): one pulse of polarity sign(H) to W, H <- H - sign(H) dw_min

    and the gradient is taken at W + gamma P (eq. 10). ``buffer_rate`` is the paper's beta in
    (0, 1] (default 0.1): small values filter the read noise. ``fast_lr`` scales the P step as in
    :class:`ResidualLearning`; ``gamma`` default 0.2. ``granularity``: dw_min of the threshold,
    "nominal" (default) or "per_element".
    aihwkit (per the paper's code hint): ChoppedTransferCompound with in_chop_prob 0,
    buffer_as_momentum, momentum ~ 1 - buffer_rate.
    """

    gamma: float = 0.2
    fast_lr: float = 1.0
    buffer_rate: float = 0.1
    transfer_every: int = 1
    columns_per_transfer: int | None = None
    p_reference: object = None
    granularity: str = "nominal"

    name = "residual_learning_v2"

    def __post_init__(self):
        owner = type(self).__name__
        check_positive(owner, "gamma", self.gamma, allow_zero=True)
        check_positive(owner, "fast_lr", self.fast_lr)
        check_unit(owner, "buffer_rate", self.buffer_rate, lo_open=True)
        check_transfer_schedule(owner, self.transfer_every, self.columns_per_transfer)
        check_reference(owner, "p_reference", self.p_reference)
        check_choice(owner, "granularity", self.granularity, GRANULARITIES)

    # fixed parts of the thresholded write (one pulse, subtract dw_min)
    thres = 1.0
    momentum = 0.0
    forget_buffer = False
    max_transfer_pulses = 1

    def fast_step(self, lr: float) -> float:
        return lr * self.fast_lr

    def init(self, spec):
        return ResidualV2State(spec, self, gamma=self.gamma)


class ResidualV2State(BufferedState):
    def __init__(self, spec, algo, gamma):
        super().__init__(spec, algo, gamma)
        self.decay = float(algo.buffer_rate)

    def buffer_input(self, read, cols, lr):
        return read * self.algo.buffer_rate
