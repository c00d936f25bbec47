"""RIDER and E-RIDER: residual learning with dynamic symmetric-point tracking (2602.21321).

Arrays: W (analog, the model weight), P (analog residual array that receives the gradient
pulses), Q (digital EMA of P's reads, the running SP estimate) and, for E-RIDER, Q~ (an
analog copy of Q acting as P's reference, re-programmed only when the chopper flips).
All of P, Q and Q~ live in P's read space (read = state - reference), so a reference
offset of P (``p_reference=ReferenceOffset(mean, std)``, Tables 1-2) is exactly an SP that
Q has to find.

One step k (Algorithm 2 for RIDER, Algorithm 3 for E-RIDER; c_k = 1 for RIDER):

    W-bar_k = W_k + gamma c_k (P_k - R_k)                         mixed weight (forward/backward)
    P_{k+1} = P_k - alpha c_k g_k F_p(P_k) - alpha |g_k| G_p(P_k)  (11a)/(18a), g_k = grad at W-bar_k
    Q_{k+1} = (1 - eta) Q_k + eta P_{k+1}                         (12), digital
    W_{k+1} = W_k + beta c_k (P_{k+1} - R_k) F_w - ...            (11b)/(18b), the transfer
    c_{k+1} = -c_k with probability chop_prob (eq. 17); at a flip Q~ <- Q (programming, counted)

where R_k, the reference that P is read against, is the digital Q_k for RIDER
(``reference_sync="digital"``) and the analog copy Q~_k for E-RIDER (``"flips"``).
With chop_prob = 0 the chopper never flips, so ``"auto"`` uses the digital Q and E-RIDER
reduces exactly to RIDER (the paper: "RIDER is E-RIDER with p = 0").

Transfers: ``transfer="direct"`` writes beta * signal to W through the transfer
engine every step (eq. 11b); ``"buffered"`` is the practical form of Sec. 3.6 / the
E-RIDER code: the signal accumulates in a digital buffer H (+= beta * signal) and
whenever |H| reaches W's nominal dw_min, trunc(H / dw_min) pulses (at most ``transfer_bl``)
are fired on W and subtracted from H (or H is cleared with ``forget_buffer``).
``columns_per_transfer`` reads and transfers that many columns per step, cyclically (as the
aihwkit transfer compounds do); ``None`` reads the whole array every step (the theory).

Mapping of step sizes:

As in :mod:`.residual`, ``fast_lr`` and ``transfer_lr`` multiply the optimizer's ``lr`` (so LR
schedulers scale the whole algorithm): alpha = lr * fast_lr, beta = lr * transfer_lr; with
``scale_fast_lr`` / ``scale_transfer_lr`` False they are absolute (aihwkit's switches).

| here                   | paper (2602.21321)  | E-RIDER code / aihwkit DynamicTransferCompound |
|------------------------|---------------------|-----------------------------------------------|
| ``lr * fast_lr``       | alpha (P step)      | fast_lr (absolute, scale_fast_lr=False)        |
| ``lr * transfer_lr``   | beta (W step)       | transfer_lr (absolute, scale_transfer_lr=False) |
| ``eta``              | eta (EMA of Q)      | tail_weightening / n_samples, n_samples = max(ceil(1/in_chop_prob), 2) |
| ``gamma``            | gamma               | AIHWKIT_PREF_GAMMA ("pref" term, default 0.1)  |
| ``chop_prob``        | p                   | in_chop_prob                                   |
| ``chopper="regular"``| (Sec. 5)            | in_chop_random=False: flip every max(ceil(1/p), 2) steps |

Defaults (gamma 0.5, eta 0.05, fast_lr 1, transfer_lr 1, chop_prob 0.05, random chopper,
direct transfer of the whole array every step) were chosen on the small quadratic of
``analogtrain.experiments.rider_quadratic`` with lr = 0.05 (rider_quadratic.toml) so that such
problems work without tuning; E-RIDER needs no finer tuning there, while plain RIDER with
eta ~ alpha drifts (see docs/reproductions/sp_tracking.md) and needs Theorem 3.7's ordering
eta << beta << alpha.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..arrays import ReferenceOffset
from .base import Algorithm, AlgorithmState, StepSizes, check_bool, check_positive, check_unit
from .transfer import OPEN_LOOP_WRITES, Lines, ThresholdedBuffer, check_choice, ema_lines, read_lines, write_open_loop

TRANSFERS = ("direct", "buffered")
CHOPPERS = ("random", "regular")
SYNCS = ("auto", "digital", "flips")


def _check_reference(owner: str, reference) -> None:
    ok = (reference is None or isinstance(reference, (ReferenceOffset, float, int, torch.Tensor))
          or reference in ("symmetric_point", "sp"))
    if not ok:
        raise ValueError(
            f"{owner}.p_reference must be None, 'symmetric_point', a number, a tensor or a ReferenceOffset, "
            f"got {reference!r}"
        )


@dataclass
class _RiderParams(StepSizes, Algorithm):
    """Hyper-parameters shared by RIDER and E-RIDER (see the module docstring)."""

    gamma: float = 0.5
    eta: float = 0.05
    fast_lr: float = 1.0
    transfer_lr: float = 1.0
    transfer: str = "direct"
    columns_per_transfer: int | None = None
    transfer_bl: int = 1
    forget_buffer: bool = False
    p_reference: object = None
    transfer_write: str = "pulse_train"
    scale_fast_lr: bool = True
    scale_transfer_lr: bool = True

    # fixed parts of the buffered transfer (ThresholdedBuffer): threshold = nominal dw_min of W
    thres = 1.0
    momentum = 0.0

    @property
    def max_transfer_pulses(self) -> int:
        return self.transfer_bl

    def _validate(self) -> None:
        owner = type(self).__name__
        check_positive(owner, "gamma", self.gamma, allow_zero=True)
        check_unit(owner, "eta", self.eta)
        check_positive(owner, "fast_lr", self.fast_lr)
        check_positive(owner, "transfer_lr", self.transfer_lr, allow_zero=True)
        if self.transfer not in TRANSFERS:
            raise ValueError(f"{owner}.transfer must be one of {TRANSFERS}, got {self.transfer!r}")
        if self.columns_per_transfer is not None and not (
            isinstance(self.columns_per_transfer, int) and self.columns_per_transfer >= 1
        ):
            raise ValueError(f"{owner}.columns_per_transfer must be None or an int >= 1, got {self.columns_per_transfer!r}")
        if not (isinstance(self.transfer_bl, int) and self.transfer_bl >= 1):
            raise ValueError(f"{owner}.transfer_bl must be an int >= 1 (allowed range: [1, inf)), got {self.transfer_bl!r}")
        _check_reference(owner, self.p_reference)
        check_choice(owner, "transfer_write", self.transfer_write, OPEN_LOOP_WRITES)
        for name in ("scale_fast_lr", "scale_transfer_lr"):
            check_bool(owner, name, getattr(self, name))

    def __post_init__(self):
        self._validate()


@dataclass
class ERIDER(_RiderParams):
    """E-RIDER (2602.21321 Algorithm 3): RIDER plus a chopper on P's gradient and sign-recovery
    in the mixed weight, W-bar = W + gamma c_k (P - Q~); Q~ is re-programmed from Q at flips.

    ``chop_prob`` p in [0, 1]; ``chopper`` "random" (flip with probability p per step, eq. 17)
    or "regular" (flip every max(ceil(1/p), 2) steps); ``reference_sync`` "auto" (Q~ re-programmed
    at flips when p > 0, digital Q when p = 0), "flips" or "digital" (the digital Q in every
    step, the equations (18) as written, at the price of a digital MVM in hardware).
    """

    name = "erider"

    chop_prob: float = 0.05
    chopper: str = "random"
    reference_sync: str = "auto"

    def __post_init__(self):
        self._validate()
        check_unit("ERIDER", "chop_prob", self.chop_prob)
        if self.chopper not in CHOPPERS:
            raise ValueError(f"ERIDER.chopper must be one of {CHOPPERS}, got {self.chopper!r}")
        if self.reference_sync not in SYNCS:
            raise ValueError(f"ERIDER.reference_sync must be one of {SYNCS}, got {self.reference_sync!r}")

    def sync_mode(self) -> str:
        if self.reference_sync != "auto":
            return self.reference_sync
        return "flips" if self.chop_prob > 0 else "digital"

    def init(self, spec):
        return RiderState(spec, self, self.chop_prob, self.chopper, self.sync_mode())


@dataclass
class RIDER(_RiderParams):
    """RIDER (2602.21321 Algorithm 2): residual learning whose P is read against the digital EMA
    Q of its own reads, so Q tracks P's symmetric point. Equal to ``ERIDER(chop_prob=0)``.
    ``eta = 0`` freezes Q at 0: plain Residual Learning (Q = 0) with the same machinery.
    """

    name = "rider"

    def init(self, spec):
        return RiderState(spec, self, 0.0, "random", "digital")


class RiderState(AlgorithmState):
    """Per-layer state of RIDER / E-RIDER."""

    def __init__(self, spec, params: _RiderParams, chop_prob: float, chopper: str, sync: str) -> None:
        super().__init__(spec)
        self.params = params
        self.chop_prob = float(chop_prob)
        self.chopper = chopper
        self.sync = sync
        init = spec.init_weight if spec.init_weight is not None else 0.0
        self.arrays["W"] = spec.make_array("W", init=init)
        self.arrays["P"] = spec.make_array("P", init=0.0, reference=params.p_reference)
        P = self.arrays["P"]
        self.buffers["Q"] = torch.zeros_like(P.state)
        if sync == "flips":
            self.buffers["Q_tilde"] = torch.zeros_like(P.state)
        self.generators["transfer_read"] = spec.generator("transfer_read")
        # the chopper is host-side control logic: a CPU generator, no device sync per step
        self.chop_generator = torch.Generator(device="cpu")
        self.chop_generator.manual_seed(spec.array_seed("chopper"))
        self.chop = 1
        self.lines = Lines(self, P.shape, params.columns_per_transfer)
        self.buffer = (ThresholdedBuffer(self, self.arrays["W"], self.lines, params)
                       if params.transfer == "buffered" else None)
        self.transfer_io = spec.config.transfer_io
        self.counters.update(chopper_flips=0, q_tilde_syncs=0, q_tilde_programmed=0)
        self.period = max(math.ceil(1.0 / self.chop_prob), 2) if self.chop_prob > 0 else 0

    # ------------------------------------------------------------------ what forward sees
    def reference_buffer(self) -> torch.Tensor:
        """R_k: the reference P is read against (digital Q, or the analog copy Q~)."""
        return self.buffers["Q_tilde"] if self.sync == "flips" else self.buffers["Q"]

    def effective_weight(self) -> torch.Tensor:
        """W-bar = W + gamma c (P - R)."""
        W, P = self.arrays["W"], self.arrays["P"]
        gamma = self.params.gamma
        if gamma == 0:
            return W.read()
        return W.read() + (gamma * self.chop) * (P.read() - self.reference_buffer())

    # ------------------------------------------------------------------ one step
    def step(self, x: torch.Tensor, d: torch.Tensor, lr: float) -> None:
        params = self.params
        P = self.arrays["P"]
        c = self.chop
        # (11a)/(18a): chopped gradient pulses on P, alpha = lr * fast_lr
        P.update_outer(x, d if c > 0 else -d, params.fast_step(lr))
        # read P_{k+1} (whole array or the next columns)
        cols = self.lines.next(P.torch_device)
        p_read = read_lines(P, self.lines, cols, self.transfer_io, self.generators["transfer_read"])
        ref_old = self.lines.take(self.reference_buffer(), cols)
        if cols is None:
            ref_old = ref_old.clone()  # the EMA below updates Q in place
        signal = (p_read - ref_old) if c > 0 else (ref_old - p_read)  # c (P_{k+1} - R_k), R_k before the EMA
        # (12): EMA of the reads
        if params.eta > 0:
            ema_lines(self, "Q", self.lines, cols, p_read, params.eta)
        # (11b)/(18b): transfer to W
        beta = params.transfer_step(lr)
        if beta > 0:
            self._transfer(signal * beta, cols)
        self.counters["steps"] += 1
        self._advance_chopper()

    def _transfer(self, increment: torch.Tensor, cols) -> None:
        """(11b): direct open-loop write of beta * signal, or the buffered form (Sec. 3.6): H +=
        beta * signal, whole pulses at W's nominal granularity (:class:`ThresholdedBuffer`)."""
        if self.buffer is None:
            write_open_loop(self.arrays["W"], self.lines, cols, increment, self.params.transfer_write)
        else:
            self.buffer.step(cols, increment)

    def _advance_chopper(self) -> None:
        if self.chop_prob <= 0:
            return
        if self.chopper == "random":
            flip = float(torch.rand((), generator=self.chop_generator)) < self.chop_prob
        else:
            flip = self.counters["steps"] % self.period == 0
        if not flip:
            return
        self.chop = -self.chop
        self.counters["chopper_flips"] += 1
        if self.sync == "flips":
            # Algorithm 3 line 2: Q~ <- Q by weight programming of the reference array
            self.buffers["Q_tilde"].copy_(self.buffers["Q"])
            self.counters["q_tilde_syncs"] += 1
            self.counters["q_tilde_programmed"] += self.buffers["Q"].numel()

    # ------------------------------------------------------------------ reporting and state
    def summary(self) -> dict:
        out = super().summary()
        if self.sync == "flips":
            out.setdefault("programming_writes", {})["Q_tilde"] = self.counters["q_tilde_programmed"]
        out["chopper"] = self.chop
        return out

    def extra_state(self) -> dict:
        return {"chop": self.chop, "chop_rng": self.chop_generator.get_state()}

    def load_extra_state(self, extra: dict) -> None:
        if not extra:
            return
        self.chop = int(extra["chop"])
        self.chop_generator.set_state(extra["chop_rng"])
