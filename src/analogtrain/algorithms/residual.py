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
from ..pulses import DeterministicEngine
from .base import Algorithm, AlgorithmState, check_positive, check_unit


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


def columns_per_read(columns_per_transfer, n_in: int) -> int:
    """Number of columns read per transfer for a layer with ``n_in`` inputs."""
    if columns_per_transfer in (None, "all"):
        return n_in
    return min(int(columns_per_transfer), n_in)


def check_reference(owner: str, name: str, value) -> None:
    if value is None or isinstance(value, (int, float, ReferenceOffset)) or value in ("symmetric_point", "sp"):
        return
    raise ValueError(f"{owner}.{name} must be None, a float, 'symmetric_point' or a ReferenceOffset, got {value!r}")


# ----------------------------------------------------------------------------- TT-v1 / RL
@dataclass
class TikiTaka(Algorithm):
    """Tiki-Taka v1: gradient pulses on P, periodic column transfers P -> W, forward on W only.

    - ``fast_lr`` (default 1.0): P step = lr * fast_lr (2025 paper's alpha; 2024's beta).
    - ``transfer_lr`` (default 1.0): a transferred column c of W gets the desired increment
      lr * transfer_lr * read(P[:, c]) (2025's beta; 2024's alpha; aihwkit transfer_lr with
      scale_transfer_lr).
    - ``transfer_every`` (default 1): transfer after every that many optimizer steps.
    - ``columns_per_transfer`` (default 1, aihwkit n_reads_per_transfer): columns read per
      transfer, cyclically; ``None`` or ``"all"`` reads all columns (the theory / least-squares
      setting).
    - ``p_reference``: reference of P: ``None`` (the device as is, its SP where it is),
      ``"symmetric_point"`` (perfect zero-shift, Assumption 4) or a float.

    Defaults work on small problems (MNIST-size layers with lr ~ 0.05-0.1 and a device of
    ~1000 states); aihwkit TT presets correspond to fast_lr = aihwkit_fast_lr / lr.
    """

    fast_lr: float = 1.0
    transfer_lr: float = 1.0
    transfer_every: int = 1
    columns_per_transfer: int | None = 1
    p_reference: object = None

    name = "tiki_taka"

    def __post_init__(self):
        self._validate()

    def _validate(self):
        owner = type(self).__name__
        check_positive(owner, "fast_lr", self.fast_lr)
        check_positive(owner, "transfer_lr", self.transfer_lr)
        check_transfer_schedule(owner, self.transfer_every, self.columns_per_transfer)
        check_reference(owner, "p_reference", self.p_reference)

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
    """Shared machinery: arrays W and P, the gradient on P, cyclic column reads of P."""

    def __init__(self, spec, algo, gamma: float):
        super().__init__(spec)
        self.algo = algo
        self.gamma = float(gamma)
        init = spec.init_weight if spec.init_weight is not None else 0.0
        self.arrays["W"] = spec.make_array("W", init=init)
        self.arrays["P"] = spec.make_array("P", init=0.0, reference=algo.p_reference)
        self.transfer_engine = spec.config.make_transfer_engine()
        self.transfer_io = spec.config.transfer_io
        self.generators["read"] = spec.generator("transfer_read")
        self.n_in = spec.shape[1]
        self.k = columns_per_read(algo.columns_per_transfer, self.n_in)
        self.counters.update(transfers=0, columns_transferred=0, next_column=0)

    # ------------------------------------------------------------------ forward
    def effective_weight(self):
        w = self.arrays["W"].read()
        if self.gamma == 0.0:
            return w
        return w + self.gamma * self.arrays["P"].read()

    # ------------------------------------------------------------------ pieces
    def gradient_to_p(self, x, d, lr):
        """Eq. 10: desired increment -lr * fast_lr * d^T x on P (through the pulse engine)."""
        self.arrays["P"].update_outer(x, d, lr * self.algo.fast_lr)

    def next_columns(self) -> torch.Tensor | None:
        """Indices of the columns of this transfer (cyclic); None means all columns."""
        if self.k == self.n_in:
            self.counters["next_column"] = 0
            return None
        start = self.counters["next_column"]
        self.counters["next_column"] = (start + self.k) % self.n_in
        dev = self.arrays["P"].torch_device
        return (torch.arange(self.k, device=dev) + start) % self.n_in

    def read_p(self, cols) -> torch.Tensor:
        """Read columns of P through the transfer periphery: (out, k), or (out, in) for all."""
        p = self.arrays["P"].read()
        if self.transfer_io.is_perfect:
            return p if cols is None else p[:, cols]
        if cols is None:
            cols = torch.arange(self.n_in, device=p.device)
        return self.transfer_io.read_columns(p, cols, self.generators["read"])

    def count_transfer(self):
        self.counters["transfers"] += 1
        self.counters["columns_transferred"] += self.k

    def transfer_due(self) -> bool:
        return self.counters["steps"] % self.algo.transfer_every == 0

    def summary(self) -> dict:
        out = super().summary()
        out["transfers"] = {"P->W": self.counters["transfers"]}
        out["columns_transferred"] = {"P->W": self.counters["columns_transferred"]}
        return out


class ResidualState(TransferState):
    """TT-v1 (gamma = 0) and Residual Learning: open-loop transfer W += lr * transfer_lr * P."""

    def step(self, x, d, lr):
        self.gradient_to_p(x, d, lr)
        self.counters["steps"] += 1
        if self.transfer_due():
            cols = self.next_columns()
            read = self.read_p(cols)
            self.arrays["W"].update(self.scatter(read * (lr * self.algo.transfer_lr), cols), self.transfer_engine)
            self.count_transfer()


# ----------------------------------------------------------------------------- buffered
@dataclass
class TikiTakaV2(Algorithm):
    """Tiki-Taka v2 (aihwkit BufferedTransferCompound): reads of P integrate in a digital H,
    whole pulses go to W.

    Per transferred column c (H in weight units, threshold theta = thres * dw_min(W)):

        H[:, c] += lr * transfer_lr * read(P[:, c])
        n = clip(trunc(H[:, c] / theta), -max_transfer_pulses, max_transfer_pulses)
        W[:, c] gets n pulses of polarity sign(n) (each dw_min * q(W))
        H[:, c] -= (1 - momentum) * n * theta      or, with forget_buffer, H *= momentum where n != 0

    Defaults: fast_lr 1.0, transfer_lr 1.0, thres 1.0 (aihwkit thres_scale), momentum 0,
    forget_buffer False, max_transfer_pulses 1 (aihwkit TTv2 presets use a transfer BL of 1),
    one column per step. Gradient at W (gamma = 0).
    """

    fast_lr: float = 1.0
    transfer_lr: float = 1.0
    transfer_every: int = 1
    columns_per_transfer: int | None = 1
    thres: float = 1.0
    momentum: float = 0.0
    forget_buffer: bool = False
    max_transfer_pulses: int = 1
    p_reference: object = None

    name = "tiki_taka_v2"

    def __post_init__(self):
        self._validate()

    def _validate(self):
        owner = type(self).__name__
        check_positive(owner, "fast_lr", self.fast_lr)
        check_positive(owner, "transfer_lr", self.transfer_lr)
        check_transfer_schedule(owner, self.transfer_every, self.columns_per_transfer)
        check_positive(owner, "thres", self.thres)
        check_unit(owner, "momentum", self.momentum, hi_open=True)
        if not (isinstance(self.max_transfer_pulses, int) and self.max_transfer_pulses >= 1):
            raise ValueError(f"{owner}.max_transfer_pulses must be an int in [1, inf), got {self.max_transfer_pulses!r}")
        check_reference(owner, "p_reference", self.p_reference)

    def init(self, spec):
        return BufferedState(spec, self, gamma=0.0)


class BufferedState(TransferState):
    """TT-v2 / RLv2 / c-TTv2 core: digital buffer H and thresholded whole-pulse writes to W."""

    #: EMA decay of H per read (RLv2: beta; TT-v2: 0, a pure integrator)
    decay = 0.0

    def __init__(self, spec, algo, gamma: float):
        super().__init__(spec, algo, gamma)
        w = self.arrays["W"]
        self.buffers["H"] = torch.zeros(w.shape, device=w.torch_device, dtype=w.dtype)
        self.pulse_engine = DeterministicEngine(bit_length=algo.max_transfer_pulses, rounding="round")

    def threshold(self) -> torch.Tensor | float:
        """theta = thres * dw_min of W (per element when dw_min varies device to device)."""
        return self.algo.thres * self.arrays["W"].device.dw_min

    def buffer_input(self, read, cols, lr) -> torch.Tensor:
        """What one read adds to H (TT-v2: lr * transfer_lr * read)."""
        return read * (lr * self.algo.transfer_lr)

    def write_from_buffer(self, h: torch.Tensor, cols, write: bool = True) -> torch.Tensor:
        """Thresholded whole-pulse write of buffer columns ``h`` (out, k); returns the new h.

        ``write=False`` reduces the buffer as if the pulses were fired but fires none (AGAD's
        warm-up)."""
        theta = self.threshold()
        theta_c = theta if not isinstance(theta, torch.Tensor) or cols is None else theta[:, cols]
        n = torch.trunc(h / theta_c).clamp(-self.algo.max_transfer_pulses, self.algo.max_transfer_pulses)
        if self.algo.forget_buffer:
            h = torch.where(n != 0, h * self.algo.momentum, h)
        else:
            h = h - (1.0 - self.algo.momentum) * n * theta_c
        if write:
            w = self.arrays["W"]
            dw_min = w.device.dw_min
            dw_c = dw_min if not isinstance(dw_min, torch.Tensor) or cols is None else dw_min[:, cols]
            w.update(self.scatter(n * dw_c, cols), self.pulse_engine)
        return h

    def transfer(self, lr):
        cols = self.next_columns()
        read = self.read_p(cols)
        h_all = self.buffers["H"]
        h = h_all if cols is None else h_all[:, cols]
        if self.decay:
            h = h * (1.0 - self.decay)
        h = h + self.buffer_input(read, cols, lr)
        h = self.write_from_buffer(h, cols)
        if cols is None:
            self.buffers["H"] = h
        else:
            h_all[:, cols] = h
        self.count_transfer()

    def step(self, x, d, lr):
        self.gradient_to_p(x, d, lr)
        self.counters["steps"] += 1
        if self.transfer_due():
            self.transfer(lr)


# ----------------------------------------------------------------------------- RLv2
@dataclass
class ResidualLearningV2(Algorithm):
    """Residual Learning v2 (2502.06309 Sec. 5, App. D): EMA buffer + one-pulse threshold.

    Per transfer (default: every step, all columns, as in the paper):

        H <- (1 - buffer_rate) H + buffer_rate * read(P)          (eq. 14; read noise from transfer_io)
        where |H| >= dw_min(W): one pulse of polarity sign(H) to W, H <- H - sign(H) dw_min

    and the gradient is taken at W + gamma P (eq. 10). ``buffer_rate`` is the paper's beta in
    (0, 1] (default 0.1): small values filter the read noise. ``fast_lr`` scales the P step as in
    :class:`ResidualLearning`; ``gamma`` default 0.2.
    aihwkit (per the paper's code hint): ChoppedTransferCompound with in_chop_prob 0,
    buffer_as_momentum, momentum ~ 1 - buffer_rate.
    """

    gamma: float = 0.2
    fast_lr: float = 1.0
    buffer_rate: float = 0.1
    transfer_every: int = 1
    columns_per_transfer: int | None = None
    p_reference: object = None

    name = "residual_learning_v2"

    def __post_init__(self):
        owner = type(self).__name__
        check_positive(owner, "gamma", self.gamma, allow_zero=True)
        check_positive(owner, "fast_lr", self.fast_lr)
        check_unit(owner, "buffer_rate", self.buffer_rate, lo_open=True)
        check_transfer_schedule(owner, self.transfer_every, self.columns_per_transfer)
        check_reference(owner, "p_reference", self.p_reference)

    # fixed parts of the thresholded write (one pulse, subtract dw_min)
    thres = 1.0
    momentum = 0.0
    forget_buffer = False
    max_transfer_pulses = 1

    def init(self, spec):
        return ResidualV2State(spec, self, gamma=self.gamma)


class ResidualV2State(BufferedState):
    def __init__(self, spec, algo, gamma):
        super().__init__(spec, algo, gamma)
        self.decay = float(algo.buffer_rate)

    def buffer_input(self, read, cols, lr):
        return read * self.algo.buffer_rate
