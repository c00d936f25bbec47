"""Mixed precision (Nandakumar et al., Front. Neurosci. 2020; aihwkit ``MixedPrecisionCompound``
in a ``DigitalRankUpdateRPUConfig``): the rank update is computed in digital, in a floating-point
matrix chi of the layer's shape; only whole pulses of chi reach the analog array W.

Per sample b of a mini-batch (aihwkit applies the rank update vector by vector)::

    chi <- chi + lr * q_d(d_b) q_x(x_b)^T          (lr: the optimizer's; chi holds what SGD subtracts)

and once every ``transfer_every`` mini-batches (see Schedule below), on ``n_rows_per_transfer``
rows R of chi (output lines; cyclic, or a random first row with ``random_row``)::

    n      = trunc(chi[R] / g)                     (signed whole pulses per element, g = granularity)
    chi[R] <- chi[R] - n g                         (the remainder stays in digital)
    W[R]   gets the SGD step  -transfer_lr * g * n  as pulses

Semantics checked against aihwkit 1.1.0's C++ (``rpu_mixedprec_device.cpp``,
``rpu_mixedprec_device_base.cpp``, Python ``compounds.MixedPrecisionCompound``):

- **Sign and lr.** chi accumulates ``+lr * d x^T`` with the SGD learning rate applied (aihwkit's
  ``ger`` with the tile's learning rate), i.e. chi is the gradient step to *subtract*; positive n
  moves W down. ``transfer_lr`` scales only the write (aihwkit: the transfer's pulse lr is
  ``granularity * transfer_lr``); chi is always reduced by ``n * granularity``.
- **Granularity.** ``granularity`` 0 (default) takes the device's weight granularity, the nominal
  dw_min of W (before device-to-device variation; aihwkit ``getWeightGranularity``).
- **Schedule.** aihwkit counts vector updates u = 0, 1, ... and transfers after the update of the
  sample with u > 0 and u % (transfer_every * batch) == 0, i.e. once per ``transfer_every``
  mini-batches, *after the first sample of the next one* (``transfer_timing="aihwkit"``, the
  default). ``transfer_timing="batch_end"`` transfers after the last sample of every
  ``transfer_every``-th mini-batch instead. ``n_rows_per_transfer`` -1 (default): all rows;
  0: never transfer (aihwkit "no transfer"). Rows are taken consecutively from where the last
  transfer stopped, wrapping around (aihwkit ``current_row_index``); ``random_row`` draws the
  first row uniformly, when fewer than all rows are transferred.
- **The write.** aihwkit writes each row as a pulsed rank update of x = n, d = one-hot(row),
  lr = g * transfer_lr through the tile's ``update`` parameters (``rpu_config.update``: pulse
  type, ``desired_bl``) with ``update_management`` and ``update_bl_management`` forced on:
  BL = min(desired_bl, ceil(transfer_lr * max|n|)), a stochastic train whose mean is |n|
  pulses per element (exact where |n| = max|n| of its row; the excess is lost when max|n|
  exceeds desired_bl). ``pulse_write="pulse_train"`` (default) does the same through W's
  transfer engine (``AnalogConfig.transfer_engine``, default the engine; under the expected
  engine the expected update); ``pulse_write="exact"`` fires exactly r |n| pulses of polarity
  -sign(n) per element, r = transfer_lr * g / dw_min (:meth:`AnalogArray.fire_lines`; r must be
  a whole number, e.g. 1 with the defaults). The device's own
  response (dw_min, bounds, dtod, cycle noise) applies to every pulse either way; aihwkit's
  update parameters are used only for these transfer pulses (the chi update fires none).
- **Quantisation.** ``n_x_bins`` / ``n_d_bins`` (0: off, default) quantise each sample's x / d
  dynamically before the outer product: width = max|v_b| / floor(bins / 2) (1 for an all-zero
  vector), v -> clip(round(v / width + u - 1/2), +-floor(bins / 2)) * width with u ~ U[0, 1)
  when ``stoc_round_x`` / ``stoc_round_d`` (aihwkit's Python defaults: True) and u = 1/2
  otherwise (round half to even, aihwkit's rintf). floor(bins / 2) levels each side of 0:
  even ``bins`` give bins + 1 levels. aihwkit 1.1.0 computes the quantised outer product
  wrongly when exactly one of n_x_bins / n_d_bins is positive (its d loop writes ``qd_[i]``,
  the last x index, so the d vector stays zero); here both cases follow the documented rule.

Not modelled: aihwkit's ``compute_sparsity`` statistic and the integer variant
(``MixedPrecisionIntCompound``). Setting the weight (:meth:`program_weight`, aihwkit
``set_weights``) clears chi and restarts the row cursor and the update counter, as aihwkit's
``onSetWeights``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .base import Algorithm, AlgorithmState, check_positive
from .transfer import Lines, check_choice

#: how the whole pulses of chi are written (see the module docstring)
MP_PULSE_WRITES = ("pulse_train", "exact")
#: when a due transfer runs within its mini-batch
TRANSFER_TIMINGS = ("aihwkit", "batch_end")


def _check_int(owner: str, name: str, value, lo: int, extra: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"{owner}.{name} must be an int in [{lo}, inf){extra}, got {value!r}")


def _check_bool(owner: str, name: str, value) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{owner}.{name} must be True or False, got {value!r}")  # noqa: TRY004


@dataclass
class MixedPrecision(Algorithm):
    """Mixed precision (aihwkit ``MixedPrecisionCompound``): digital chi accumulation of the
    rank update, whole pulses of chi written row by row to the analog array W.

    Fields (aihwkit's names and defaults; semantics in the module docstring):

    - ``transfer_every`` (int >= 1, default 1): a transfer every that many mini-batches.
    - ``n_rows_per_transfer`` (default -1: all rows; 0: no transfer; k >= 1: k consecutive
      rows, cyclically).
    - ``random_row`` (default False): a random first row per transfer (when k < rows).
    - ``granularity`` (>= 0, default 0: the nominal dw_min of W): the weight of one pulse in chi.
    - ``transfer_lr`` (> 0, default 1): the write is -transfer_lr * granularity * n.
    - ``n_x_bins``, ``n_d_bins`` (0 or >= 2, default 0: no quantisation): dynamic per-sample
      quantisation of x and d before the outer product.
    - ``stoc_round_x``, ``stoc_round_d`` (default True, aihwkit's): stochastic rounding in the
      quantisation.
    - ``pulse_write`` (analogtrain): "pulse_train" (default, aihwkit's pulsed rank update through
      the transfer engine) or "exact" (exactly r |n| pulses per element, r = transfer_lr * g /
      dw_min a whole number).
    - ``transfer_timing`` (analogtrain): "aihwkit" (default: after the first sample of the next
      mini-batch) or "batch_end".

    Forward and backward use W. Buffers: ``chi`` (aihwkit hidden weights ``hidden_weights_chi``).
    """

    transfer_every: int = 1
    n_rows_per_transfer: int = -1
    random_row: bool = False
    granularity: float = 0.0
    transfer_lr: float = 1.0
    n_x_bins: int = 0
    n_d_bins: int = 0
    stoc_round_x: bool = True
    stoc_round_d: bool = True
    pulse_write: str = "pulse_train"
    transfer_timing: str = "aihwkit"

    name = "mixed_precision"

    def __post_init__(self):
        owner = type(self).__name__
        _check_int(owner, "transfer_every", self.transfer_every, 1)
        rows = self.n_rows_per_transfer
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < -1:
            raise ValueError(f"{owner}.n_rows_per_transfer must be -1 (all rows), 0 (no transfer) or an int in "
                             f"[1, inf), got {rows!r}")
        _check_bool(owner, "random_row", self.random_row)
        for name in ("granularity", "transfer_lr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{owner}.{name} must be a finite number, got {value!r}")
        check_positive(owner, "granularity", self.granularity, allow_zero=True)
        check_positive(owner, "transfer_lr", self.transfer_lr)
        for name in ("n_x_bins", "n_d_bins"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value == 1:
                raise ValueError(f"{owner}.{name} must be 0 (no quantisation) or an int in [2, inf), got {value!r}")
        _check_bool(owner, "stoc_round_x", self.stoc_round_x)
        _check_bool(owner, "stoc_round_d", self.stoc_round_d)
        check_choice(owner, "pulse_write", self.pulse_write, MP_PULSE_WRITES)
        check_choice(owner, "transfer_timing", self.transfer_timing, TRANSFER_TIMINGS)

    def init(self, spec):
        return MixedPrecisionState(spec, self)


def quantize(v: torch.Tensor, n_bins: int, stochastic: bool, generator: torch.Generator | None) -> torch.Tensor:
    """aihwkit's dynamic quantisation of each row (sample) of ``v`` (B, n) to floor(n_bins/2)
    levels each side of 0 (see the module docstring); ``n_bins`` 0 returns ``v``."""
    if n_bins <= 0:
        return v
    half = float(n_bins // 2)
    width = v.abs().amax(dim=1, keepdim=True) / half
    width = torch.where(width == 0, torch.ones_like(width), width)
    s = v / width
    if stochastic:
        s = s + (torch.rand(v.shape, generator=generator, device=v.device, dtype=v.dtype) - 0.5)
    return torch.round(s).clamp_(-half, half) * width


class MixedPrecisionState(AlgorithmState):
    """Array W, digital chi (buffers["chi"]); counters: steps, samples (aihwkit's update index),
    transfers, rows_transferred, next_row (the row cursor)."""

    def __init__(self, spec, algo: MixedPrecision):
        super().__init__(spec)
        self.algo = algo
        init = spec.init_weight if spec.init_weight is not None else 0.0
        W = self.arrays["W"] = spec.make_array("W", init=init)
        self.buffers["chi"] = torch.zeros(W.shape, device=W.torch_device, dtype=W.dtype)
        rows = algo.n_rows_per_transfer
        self.lines = Lines(self, spec.shape, None if rows < 0 else max(rows, 1), columns=False,
                           random=algo.random_row, key="next_row")
        if (algo.n_x_bins and algo.stoc_round_x) or (algo.n_d_bins and algo.stoc_round_d):
            self.generators["quantize"] = spec.generator("quantize")
        self.counters.update(samples=0, transfers=0, rows_transferred=0)
        #: pulses per unit of n for exact writes (r = transfer_lr * g / dw_min, a whole number)
        self.pulses_per_count = 1.0
        if algo.pulse_write == "exact":
            r = float(algo.transfer_lr) * self.granularity / W.nominal_dw_min
            if abs(r - round(r)) > 1e-6 * max(r, 1.0) or round(r) < 1:
                raise ValueError(f"MixedPrecision.pulse_write='exact' writes whole pulses: transfer_lr * granularity "
                                 f"/ dw_min must be a whole number, got {algo.transfer_lr!r} * {self.granularity!r} / "
                                 f"{W.nominal_dw_min!r} = {r!r}; use pulse_write='pulse_train'")
            self.pulses_per_count = float(round(r))

    # ------------------------------------------------------------------ forward
    def effective_weight(self):
        return self.arrays["W"].read()

    def weight_dependencies(self):
        return self.arrays["W"].read_dependencies()

    def effective_weight_into(self, out):
        return self.arrays["W"].read_into(out)

    @property
    def granularity(self) -> float:
        """g: ``algo.granularity``, or the nominal dw_min of W when that is 0."""
        g = float(self.algo.granularity)
        return g if g > 0 else self.arrays["W"].nominal_dw_min

    def program_weight(self, target):
        """Program W (closed loop, see the base class) and clear chi, the row cursor and the
        update counter, as aihwkit's set_weights (``onSetWeights``)."""
        out = super().program_weight(target)
        self.buffers["chi"].zero_()
        self.counters.update(samples=0, next_row=0)
        return out

    # ------------------------------------------------------------------ pieces
    def accumulate(self, x: torch.Tensor, d: torch.Tensor, lr: float) -> None:
        """chi += lr * q_d(d)^T q_x(x) over the samples of x (B, in), d (B, out)."""
        algo, gen = self.algo, self.generators.get("quantize")
        qx = quantize(x, algo.n_x_bins, algo.stoc_round_x, gen)
        qd = quantize(d, algo.n_d_bins, algo.stoc_round_d, gen)
        self.buffers["chi"].addmm_(qd.transpose(0, 1), qx, alpha=float(lr))

    def transfer(self) -> torch.Tensor | None:
        """Whole pulses of the next rows of chi to W; returns the signed counts n of those rows
        (None when ``n_rows_per_transfer`` is 0)."""
        if self.algo.n_rows_per_transfer == 0:
            return None
        W, chi, g = self.arrays["W"], self.buffers["chi"], self.granularity
        rows = self.lines.next(W.torch_device)
        sel = self.lines.take(chi, rows)
        n = torch.trunc(sel / g)
        self.lines.put(chi, rows, sel - n * g)
        self.counters["transfers"] += 1
        self.counters["rows_transferred"] += self.lines.k
        if bool(n.any()):
            self.write(rows, n, g)
        return n

    def write(self, rows, n: torch.Tensor, g: float) -> None:
        """The SGD step -transfer_lr * g * n on the rows ``rows`` (None: all) of W."""
        W = self.arrays["W"]
        if self.algo.pulse_write == "exact":
            counts = -n if self.pulses_per_count == 1.0 else -n * self.pulses_per_count
            if rows is None:
                W.fire(counts)
            else:
                W.fire_lines(counts, rows, columns=False)
            return
        idx = torch.arange(self.lines.n, device=W.torch_device) if rows is None else rows
        hot = torch.zeros(idx.numel(), W.shape[0], device=W.torch_device, dtype=W.dtype)
        hot.scatter_(1, idx[:, None], 1.0)  # row r: x = n[r], d = e_r (aihwkit's one-hot transfer vectors)
        W.update_outer(n, hot, g * float(self.algo.transfer_lr), transfer=True)

    def transfer_position(self, batch: int) -> int | None:
        """Index of the sample after whose update a transfer runs in this mini-batch (None: none)."""
        every = self.algo.transfer_every
        if self.algo.transfer_timing == "batch_end":
            return batch - 1 if (self.counters["steps"] + 1) % every == 0 else None
        period = every * batch  # aihwkit: transfer_every * m_batch vector updates
        u0 = self.counters["samples"]
        i = (-u0) % period
        if u0 + i == 0:
            i += period
        return i if i < batch else None

    def step(self, x, d, lr):
        if x.dim() == 1:
            x, d = x[None], d[None]
        W = self.arrays["W"]
        if x.dim() != 2 or x.shape[1] != W.shape[1] or d.shape != (x.shape[0], W.shape[0]):
            raise ValueError(f"step needs x (B, {W.shape[1]}) and d (B, {W.shape[0]}), "
                             f"got {tuple(x.shape)} and {tuple(d.shape)}")
        lr = float(lr)
        if not (math.isfinite(lr) and bool(torch.isfinite(x).all() & torch.isfinite(d).all())):
            raise ValueError(f"mixed precision: the update inputs x, d or lr ({lr}) are not finite (NaN or inf); "
                             f"nothing was written")
        if lr == 0.0:  # aihwkit: a zero learning rate is no update at all
            self.counters["steps"] += 1
            return
        x, d = x.to(W.dtype), d.to(W.dtype)
        batch = x.shape[0]
        at = self.transfer_position(batch)
        if at is None:
            self.accumulate(x, d, lr)
        else:
            self.accumulate(x[:at + 1], d[:at + 1], lr)
            self.transfer()
            if at + 1 < batch:
                self.accumulate(x[at + 1:], d[at + 1:], lr)
        self.counters["steps"] += 1
        self.counters["samples"] += batch

    def summary(self) -> dict:
        out = super().summary()
        out["transfers"] = {"chi->W": self.counters["transfers"]}
        out["rows_transferred"] = {"chi->W": self.counters["rows_transferred"]}
        return out
