"""The parts every algorithm that moves content between arrays is built from.

TT-v1, Residual Learning, TT-v2, RLv2, c-TTv2, AGAD, multi-tile, RIDER, E-RIDER and the
two-stage baseline are short recipes of these parts, so a semantic choice (say aihwkit's
nominal-granularity threshold) is made once, here:

- :class:`Lines`: the line cursor, which columns (aihwkit ``transfer_columns=True``) or rows of
  the source array are read at a transfer: ``per_transfer`` consecutive lines (aihwkit
  ``n_reads_per_transfer``), cyclically or from a random start (``random_selection``).
- :func:`read_lines`: the transfer read through the transfer periphery (one-hot MVMs,
  aihwkit ``transfer_forward``; perfect by default).
- :func:`write_open_loop`: an open-loop write of a desired increment onto lines of the target,
  either as aihwkit does (``"pulse_train"``: a rank update with one-hot inputs through the
  array's transfer engine, so pulse trains with BL management under the stochastic engine) or
  element by element (``"per_element"``: |dW| / dw_min stochastically rounded per element).
  With the expected engine both are the compact rule W += dW F(W) - |dW| G(W).
- :class:`ThresholdedBuffer`: the digital buffer H of TT-v2 and its relatives (aihwkit
  ``BufferedTransferCompound``): H += input; n = clip(trunc(H / theta), +-max_pulses) whole pulses
  go to the target; H -= (1 - momentum) n theta, or H *= momentum where n != 0
  (``forget_buffer``). theta = thres * granularity with the *nominal* dw_min of the target
  (aihwkit, and what hardware can know; default) or each element's own (``"per_element"``),
  optionally scaled by aihwkit's ``auto_granularity``.
- :class:`Chopper`: a sign per input line (aihwkit ``in_chop_prob`` / ``in_chop_random``) or per
  output line (``out_chop_prob``), flipped after a line's transfer at random or every
  ``n_samples`` full passes.
- :func:`ema_lines`: the running mean m <- (1 - mu) m + mu read on the transferred lines (RIDER's
  Q, AGAD's running mean).

Algorithms fire pulses only through :class:`~analogtrain.arrays.AnalogArray` (``fire``,
``update``, ``update_outer``); nothing here imports the pulse engines.
"""

from __future__ import annotations

import math

import torch

from ..arrays import AnalogArray

#: how open-loop transfer increments are written (see :func:`write_open_loop`)
OPEN_LOOP_WRITES = ("pulse_train", "per_element")
#: how the whole pulses of a thresholded buffer are written (see :meth:`ThresholdedBuffer.write`)
PULSE_WRITES = ("exact", "pulse_train")
#: which dw_min sets the buffer threshold
GRANULARITIES = ("nominal", "per_element")


def check_choice(owner: str, name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{owner}.{name} must be one of {allowed}, got {value!r}")


# ----------------------------------------------------------------------------- line cursor
class Lines:
    """Which lines of an (out, in) array a transfer reads.

    ``columns=True`` reads columns (values of shape (out, k)), ``False`` rows ((k, in)).
    ``per_transfer`` None reads all lines (the theory's setting; ``next()`` returns None). The
    cursor position lives in ``owner.counters[key]`` so checkpoints carry it; a random start
    draws from ``owner.generators[key]``.
    """

    def __init__(self, owner, shape, per_transfer, *, columns: bool = True, random: bool = False,
                 key: str = "next_column") -> None:
        self.owner, self.columns, self.random, self.key = owner, bool(columns), bool(random), key
        self.shape = tuple(shape)
        self.n = self.shape[1] if self.columns else self.shape[0]
        self.k = self.n if per_transfer in (None, "all") else min(int(per_transfer), self.n)
        owner.counters.setdefault(key, 0)
        if self.random and self.k < self.n:
            owner.generators[key] = owner.spec.generator(key)

    @property
    def all(self) -> bool:
        return self.k == self.n

    def next(self, torch_device, count: int = 1) -> torch.Tensor | None:
        """Indices of the lines of this transfer (of ``count`` consecutive transfers of k lines
        each, cyclic cursor only); None means all lines."""
        if self.all:
            self.owner.counters[self.key] = 0
            return None
        if self.random:  # aihwkit random_selection: a random first line, then consecutive ones
            if count != 1:
                raise ValueError("random line selection draws one start per transfer (count must be 1)")
            gen = self.owner.generators[self.key]
            start = int(torch.randint(0, self.n, (1,), generator=gen, device=gen.device).item())
        else:
            start = self.owner.counters[self.key]
            self.owner.counters[self.key] = (start + self.k * count) % self.n
        return (torch.arange(self.k * count, device=torch_device) + start) % self.n

    def transfers_to_wrap(self) -> int:
        """How many consecutive transfers (cyclic cursor) fit before the cursor wraps (at least 1:
        a transfer that crosses the wrap runs alone). Transfers within such a run touch distinct
        lines, and the last line of the array is only ever in the run's last transfer."""
        left = self.n - self.owner.counters[self.key]
        return max(1, left // self.k)

    def take(self, t: torch.Tensor, lines) -> torch.Tensor:
        """The selected lines of a full-shape tensor (a view-free copy), or ``t`` for all lines."""
        if lines is None:
            return t
        return t.index_select(1 if self.columns else 0, lines)

    def put(self, t: torch.Tensor, lines, values: torch.Tensor) -> torch.Tensor:
        """Write ``values`` into the selected lines of ``t`` in place (all lines: copy)."""
        if lines is None:
            return t.copy_(values)
        return t.index_copy_(1 if self.columns else 0, lines, values.to(t.dtype))

    def scatter(self, values: torch.Tensor, lines) -> torch.Tensor:
        """Full-shape tensor with ``values`` in the selected lines and zeros elsewhere."""
        if lines is None:
            return values
        full = torch.zeros(self.shape, device=values.device, dtype=values.dtype)
        return self.put(full, lines, values)

    def line_vector(self, v: torch.Tensor, lines) -> torch.Tensor:
        """A per-input-column vector ``v`` (in,) broadcast against the selected values."""
        if self.columns:
            return v[None, :] if lines is None else v.index_select(0, lines)[None, :]
        return v[None, :]


# ----------------------------------------------------------------------------- reading
def read_lines(array: AnalogArray, lines: Lines, idx, io, generator) -> torch.Tensor:
    """Read lines ``idx`` of ``array`` through the transfer periphery ``io`` (one-hot MVMs:
    columns forward, rows through the transposed array); perfect IO returns the read values.
    A one-hot MVM of line c only involves line c, so the MVMs run on the selected lines
    (:meth:`AnalogArray.read_lines`): the same values and noise draws as on the whole array."""
    if io.is_perfect:
        return array.read_lines(idx, lines.columns)
    if idx is None:
        value = array.read()
        idx = torch.arange(lines.n, device=value.device)
        if lines.columns:
            return io.read_columns(value, idx, generator)
        return io.read_columns(value.transpose(0, 1), idx, generator).transpose(0, 1)
    sub = array.read_lines(idx, lines.columns)
    local = torch.arange(idx.numel(), device=sub.device)
    if lines.columns:
        return io.read_columns(sub, local, generator)
    return io.read_columns(sub.transpose(0, 1), local, generator).transpose(0, 1)


# ----------------------------------------------------------------------------- writing
def write_open_loop(array: AnalogArray, lines: Lines, idx, delta: torch.Tensor, how: str = "pulse_train"):
    """Write the desired increment ``delta`` (the selected lines) onto ``array`` open loop:
    ``"pulse_train"`` as aihwkit's transfer update (one-hot rank update through the transfer
    engine), ``"per_element"`` element by element (:meth:`AnalogArray.update_lines`)."""
    return array.update_lines(delta, idx, columns=lines.columns, trains=how == "pulse_train")


class ThresholdedBuffer:
    """Digital buffer H (owner.buffers[name], full shape) with whole-pulse writes (TT-v2 family).

    Per transfer on lines ``idx`` (aihwkit BufferedTransferCompound, in weight units):

        H <- decay_keep * H + input
        n  = clip(trunc(H / theta), -max_pulses, max_pulses)
        H <- H - (1 - momentum) n theta          (or H <- momentum H where n != 0, forget_buffer)
        n pulses of polarity sign(n) to the target

    Hyper-parameters come from ``params`` (fields thres, momentum, forget_buffer,
    max_transfer_pulses and optionally granularity, pulse_write), read at every use.
    theta = thres * g * scale, g the nominal dw_min of ``unit_array`` (default: the target; the
    chopped compounds use the fast array, as aihwkit) (``granularity="nominal"``,
    aihwkit) or each element's (``"per_element"``), ``scale`` e.g. aihwkit's auto_granularity
    factor. ``write="exact"`` fires exactly n pulses (:meth:`AnalogArray.fire`); ``"pulse_train"``
    writes them as aihwkit does, a rank update of a one-hot vector and n * g through the transfer
    engine (a stochastic train of mean |n| under the stochastic engine).
    """

    def __init__(self, owner, target: AnalogArray, lines: Lines, params, *, scale: float = 1.0,
                 name: str = "H", unit_array: AnalogArray | None = None) -> None:
        self.owner, self.target, self.lines, self.params, self.name = owner, target, lines, params, name
        self.unit_array = target if unit_array is None else unit_array
        self.scale = float(scale)
        owner.buffers[name] = torch.zeros(target.shape, device=target.torch_device, dtype=target.dtype)

    # the hyper-parameters are read from ``params`` (an algorithm) at every use
    thres = property(lambda self: float(self.params.thres))
    momentum = property(lambda self: float(self.params.momentum))
    forget_buffer = property(lambda self: bool(self.params.forget_buffer))
    max_pulses = property(lambda self: int(self.params.max_transfer_pulses))
    granularity = property(lambda self: getattr(self.params, "granularity", "nominal"))
    how = property(lambda self: getattr(self.params, "pulse_write", "exact"))

    def unit(self, idx, array: AnalogArray | None = None):
        """The granularity g of ``array`` (default: ``unit_array``) on the selected lines: a float
        (nominal) or a tensor (per element)."""
        array = self.unit_array if array is None else array
        if self.granularity == "nominal":
            return array.nominal_dw_min
        return self.lines.take(array.device.dw_min, idx)

    def threshold(self, idx):
        return self.unit(idx) * (self.thres * self.scale)

    def step(self, idx, increment: torch.Tensor, keep: float = 1.0, write: bool = True) -> torch.Tensor:
        """Add ``increment`` (selected lines) to H (after H *= keep), fire whole pulses; returns n.
        ``write=False`` reduces H as if the pulses were fired and fires none (AGAD's warm-up)."""
        h_all = self.owner.buffers[self.name]
        h = self.lines.take(h_all, idx)
        if keep != 1.0:
            h = h * keep
        h = h + increment
        theta = self.threshold(idx)
        n = torch.trunc(h / theta).clamp_(-self.max_pulses, self.max_pulses)
        if self.forget_buffer:
            h = torch.where(n != 0, h * self.momentum, h)
        else:
            h = h - (1.0 - self.momentum) * n * theta
        if idx is None:
            self.owner.buffers[self.name] = h
        else:
            self.lines.put(h_all, idx, h)
        if write:
            self.write(idx, n)
        return n

    def write(self, idx, n: torch.Tensor):
        if self.how == "exact":
            if idx is None:
                return self.target.fire(n)
            return self.target.fire_lines(n, idx, columns=self.lines.columns)
        return write_open_loop(self.target, self.lines, idx, n * self.unit(idx, self.target), "pulse_train")


# ----------------------------------------------------------------------------- chopper
class Chopper:
    """Signs c_i in {+1, -1}, one per line of one side (owner.buffers[name], shape (n,)).

    ``prob`` p (aihwkit in_chop_prob / out_chop_prob): with ``random=True`` (aihwkit
    in_chop_random) a transferred line flips with probability p after its transfer; with
    ``random=False`` every line flips after each n_samples-th full pass of transfers over the
    lines, n_samples = max(ceil(1 / p), 2) (aihwkit's regular chopper). p = 0: never flips.
    """

    def __init__(self, owner, n: int, prob: float, random: bool, *, name: str = "chopper",
                 device=None, dtype=torch.float32) -> None:
        self.owner, self.n, self.prob, self.random, self.name = owner, int(n), float(prob), bool(random), name
        owner.buffers[name] = torch.ones(self.n, device=device, dtype=dtype)
        self.n_samples = max(math.ceil(1.0 / self.prob), 2) if self.prob > 0 else 0
        if self.prob > 0 and self.random:
            owner.generators[name] = owner.spec.generator(name)

    @property
    def signs(self) -> torch.Tensor:
        return self.owner.buffers[self.name]

    def flips(self, idx, k: int, lines_done: int) -> torch.Tensor | None:
        """Which of the ``k`` lines ``idx`` of this transfer flip after it (None: none).
        ``lines_done``: lines transferred before this transfer (for the regular schedule)."""
        if self.prob <= 0:
            return None
        dev = self.signs.device
        if self.random:
            u = torch.rand(k, generator=self.owner.generators[self.name], device=dev)
            return u < self.prob
        passes = (torch.arange(k, device=dev) + lines_done) // self.n
        return (passes % self.n_samples) + 1 == self.n_samples

    def apply(self, idx, flips) -> None:
        if flips is None:
            return
        c = self.signs
        sign = 1.0 - 2.0 * flips.to(c.dtype)
        if idx is None:
            c.mul_(sign)
        else:
            c.index_copy_(0, idx, c.index_select(0, idx) * sign)


# ----------------------------------------------------------------------------- running mean
def ema_lines(owner, name: str, lines: Lines, idx, value: torch.Tensor, rate: float) -> None:
    """m <- (1 - rate) m + rate * value on the selected lines of owner.buffers[name]."""
    m_all = owner.buffers[name]
    if idx is None:
        m_all.mul_(1.0 - rate).add_(value, alpha=rate)
        return
    m = lines.take(m_all, idx)
    lines.put(m_all, idx, m.mul_(1.0 - rate).add_(value, alpha=rate))
