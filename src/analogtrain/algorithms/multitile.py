"""Multi-tile residual learning (Li, Wu, Liu, Gokmen, Chen, arXiv 2510.02516, Sec. 3-4).

N tiles W(0), ..., W(N-1) (named ``"W"``, ``"P1"``, ..., ``"P{N-1}"``) form the composite weight

    W_bar = sum_n gamma^n W(n),         gamma in (0, 1)

(N = 2 is Residual Learning's W + gamma P). The fastest tile W(N-1) gets the gradient at W_bar
(Analog SGD step, eq. 6); every ``transfer_every[n]`` updates of tile n+1, its columns are read
and written open-loop onto tile n (eq. 7):

    W(n) <- W(n) + b_n read(W(n+1)) (.) F(W(n)) - |b_n read(W(n+1))| (.) G(W(n)),  b_n = lr * transfer_lr[n]

so tile n is updated once every prod_{m>n} transfer_every[m] steps (multi-timescale). Each
tile's range, scaled by gamma^n, resolves steps of the tile above it; with few states
(n_states = range / dw_min) the paper recommends gamma slightly above 1/n_states, and the
steady-state error shrinks geometrically with N (Cor. 1, ~ gamma^{2N/3}).

Mapping to the paper / aihwkit: gamma = the paper's gamma (aihwkit ``gamma_vec`` =
gamma^(N-1-i) up to normalisation), fast_lr * lr = alpha, transfer_lr[n] * lr = beta for tile n
(aihwkit ``transfer_lr_vec`` with scale_transfer_lr), transfer_every[n] = T_{n+1}
(aihwkit ``transfer_every_vec``). The warm-start / plateau-detector variant of Algorithm 1 is not
implemented.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .base import Algorithm, AlgorithmState, check_positive
from .residual import check_reference, check_transfer_schedule
from .transfer import OPEN_LOOP_WRITES, Lines, check_choice, read_lines, write_open_loop


def tile_names(n_tiles: int) -> list[str]:
    """Array names of the tiles, slowest first: W, P1, ..., P{n_tiles-1}."""
    return ["W"] + [f"P{n}" for n in range(1, n_tiles)]


@dataclass
class MultiTileResidual(Algorithm):
    """Multi-tile residual learning.

    - ``n_tiles`` >= 1 (default 3; 1 is Analog SGD, 2 is Residual Learning with all-column reads).
    - ``gamma`` in (0, 1) (default 0.5): geometric scale of the tiles.
    - ``fast_lr`` (default 1.0): gradient step on the fastest tile = lr * fast_lr.
    - ``transfer_lr`` (default 0.1, or one value per receiving tile 0..n_tiles-2): write step
      of a transfer into tile n = lr * transfer_lr[n] (multiplier of the optimizer lr). The
      default was 1.0 until issue 8: with it the 3-tile chain diverged on the small regression
      of tests/test_defaults_learn.py (loss 3.7-5.9x its initial value); 0.1 learns it (0.02-0.03).
    - ``transfer_every`` (default 2, or one int per receiving tile): updates of tile n+1 per
      transfer into tile n.
    - ``columns_per_transfer`` (default None or "all": all columns): columns read per transfer, cyclic.
    - ``tile_reference``: reference of tiles 1.. (None, float or "symmetric_point").
    """

    n_tiles: int = 3
    gamma: float = 0.5
    fast_lr: float = 1.0
    transfer_lr: float | Sequence[float] = 0.1
    transfer_every: int | Sequence[int] = 2
    columns_per_transfer: int | None = None
    tile_reference: object = None
    transfer_write: str = "pulse_train"
    _lrs: list = field(default=None, init=False, repr=False)
    _every: list = field(default=None, init=False, repr=False)

    name = "multi_tile_residual"

    def __post_init__(self):
        owner = type(self).__name__
        if not (isinstance(self.n_tiles, int) and self.n_tiles >= 1):
            raise ValueError(f"{owner}.n_tiles must be an int in [1, inf), got {self.n_tiles!r}")
        if not 0 < self.gamma < 1:
            raise ValueError(f"{owner}.gamma must lie in (0, 1), got {self.gamma!r}")
        check_positive(owner, "fast_lr", self.fast_lr)
        n = self.n_tiles - 1
        lrs = list(self.transfer_lr) if isinstance(self.transfer_lr, Sequence) else [self.transfer_lr] * n
        every = list(self.transfer_every) if isinstance(self.transfer_every, Sequence) else [self.transfer_every] * n
        if len(lrs) != n or len(every) != n:
            raise ValueError(
                f"{owner}.transfer_lr and transfer_every need one value per receiving tile "
                f"(n_tiles - 1 = {n}), got {len(lrs)} and {len(every)}"
            )
        for v in lrs:
            check_positive(owner, "transfer_lr", v)
        for v in every:
            if not (isinstance(v, int) and v >= 1):
                raise ValueError(f"{owner}.transfer_every values must be ints in [1, inf), got {v!r}")
        check_transfer_schedule(owner, 1, self.columns_per_transfer)
        check_reference(owner, "tile_reference", self.tile_reference)
        check_choice(owner, "transfer_write", self.transfer_write, OPEN_LOOP_WRITES)
        self._lrs, self._every = [float(v) for v in lrs], every

    def describe(self) -> dict:
        return {"name": self.name, "n_tiles": self.n_tiles, "gamma": self.gamma, "fast_lr": self.fast_lr,
                "transfer_lr": self._lrs, "transfer_every": self._every,
                "columns_per_transfer": self.columns_per_transfer, "tile_reference": self.tile_reference,
                "transfer_write": self.transfer_write}

    def init(self, spec):
        return MultiTileState(spec, self)


class MultiTileState(AlgorithmState):
    def __init__(self, spec, algo: MultiTileResidual):
        super().__init__(spec)
        self.algo = algo
        self.names = tile_names(algo.n_tiles)
        init = spec.init_weight if spec.init_weight is not None else 0.0
        for i, name in enumerate(self.names):
            self.arrays[name] = spec.make_array(name, init=init if i == 0 else 0.0,
                                                reference=None if i == 0 else algo.tile_reference)
        self.scales = [algo.gamma**i for i in range(algo.n_tiles)]
        self.transfer_io = spec.config.transfer_io
        self.generators["read"] = spec.generator("transfer_read")
        self.n_in = spec.shape[1]
        for name in self.names:
            self.counters[f"updates_{name}"] = 0
        self.lines = []
        for n in range(algo.n_tiles - 1):
            self.counters[f"transfers_{self.names[n + 1]}->{self.names[n]}"] = 0
            self.lines.append(Lines(self, spec.shape, algo.columns_per_transfer, key=f"next_column_{self.names[n]}"))

    def effective_weight(self):
        w = self.arrays[self.names[0]].read()
        for name, s in zip(self.names[1:], self.scales[1:]):
            w = w + s * self.arrays[name].read()
        return w

    def _transfer(self, n: int, lr: float) -> None:
        """Read tile n+1 (columns) and write lr * transfer_lr[n] * read onto tile n (eq. 7)."""
        src, dst = self.arrays[self.names[n + 1]], self.arrays[self.names[n]]
        lines = self.lines[n]
        cols = lines.next(src.torch_device)
        read = read_lines(src, lines, cols, self.transfer_io, self.generators["read"])
        write_open_loop(dst, lines, cols, read * (lr * self.algo._lrs[n]), self.algo.transfer_write)
        self.counters[f"transfers_{self.names[n + 1]}->{self.names[n]}"] += 1

    def step(self, x, d, lr):
        last = self.algo.n_tiles - 1
        self.arrays[self.names[last]].update_outer(x, d, lr * self.algo.fast_lr)
        self.counters[f"updates_{self.names[last]}"] += 1
        self.counters["steps"] += 1
        n = last - 1
        while n >= 0 and self.counters[f"updates_{self.names[n + 1]}"] % self.algo._every[n] == 0:
            self._transfer(n, lr)
            self.counters[f"updates_{self.names[n]}"] += 1
            n -= 1

    def summary(self) -> dict:
        out = super().summary()
        out["transfers"] = {f"{self.names[n + 1]}->{self.names[n]}":
                            self.counters[f"transfers_{self.names[n + 1]}->{self.names[n]}"]
                            for n in range(self.algo.n_tiles - 1)}
        return out
