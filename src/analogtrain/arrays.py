"""AnalogArray: a crossbar of resistive elements.

Holds the hidden device state w (what the response functions act on), the per-element
device parameters drawn once from a seed (device-to-device variation), a reference r and
the cumulative pulse counters. The value an MVM sees is the read value

    read() = w - r  (+ write noise, redrawn for elements each time they are written)

so the symmetric point seen through the read is SP(w) - r (2602.21321 Sec. 1.6 / eq. 105).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .devices.base import Device
from .pulses import PulseEngine, PulseStats, clamp_to_bounds, make_engine, numba_kernels


@dataclass(frozen=True)
class ReferenceOffset:
    """Reference set to the true SP plus a per-element Gaussian offset (2602.21321 eq. 105):

    r = SP + mean + std * xi,  xi ~ N(0, 1)   ("Ref Mean" / "Ref Std" of Tables 1-2).
    """

    mean: float = 0.0
    std: float = 0.0

    def __post_init__(self):
        if self.std < 0:
            raise ValueError(f"ReferenceOffset.std must be >= 0 (allowed range: [0, inf)), got {self.std!r}")


def record_versions(tensors) -> tuple:
    """(tensor, version counter) pairs of ``tensors``, for :func:`unchanged`. The tensors
    themselves (not their ids) are kept, so a freed tensor's id cannot be reused."""
    return tuple((t, t._version) for t in tensors)


def unchanged(recorded, tensors) -> bool:
    """Whether ``tensors`` are the recorded ones (identity), none modified in place since."""
    return len(recorded) == len(tensors) and all(
        t is r and t._version == v for (r, v), t in zip(recorded, tensors))


def _new_generator(seed: int, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen


class AnalogArray:
    """One analog array of shape (out, in) (any shape works for element-wise use).

    Parameters
    ----------
    shape: array shape.
    device: a :class:`~analogtrain.devices.Device` (per-element parameters are sampled here).
    engine: "expected", "stochastic", "deterministic" or a PulseEngine instance.
    transfer_engine: engine of transfer writes into this array (``update(..., transfer=True)``);
        default: ``engine``.
    seed: seeds the per-element parameters, the reference offsets and every pulse.
    reference: ``None``/0 (r = 0), ``"symmetric_point"`` (r = true SP, perfect zero-shift),
        a float or tensor, or a :class:`ReferenceOffset`.
    init: initial read value (float or tensor), programmed exactly at construction.
    """

    def __init__(
        self,
        shape,
        device: Device,
        engine: str | PulseEngine = "expected",
        seed: int = 0,
        reference=None,
        init=0.0,
        torch_device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        engine_kwargs: dict | None = None,
        transfer_engine: str | PulseEngine | None = None,
    ) -> None:
        if not isinstance(device, Device):
            raise ValueError(f"device must be an analogtrain Device, got {type(device).__name__}")  # noqa: TRY004
        self.shape = torch.Size(shape)
        if any(s <= 0 for s in self.shape):
            raise ValueError(f"shape must have positive sizes, got {tuple(self.shape)}")
        self.template = device
        self.engine = make_engine(engine, **(engine_kwargs or {}))
        self.transfer_engine = self.engine if transfer_engine is None else make_engine(transfer_engine)
        self.seed = int(seed)
        #: the array's name in its algorithm (set by TileSpec.make_array), used in messages
        self.name = "array"
        #: fire() through the compiled kernel where it applies (numba, CPU, affine family);
        #: False: always the torch reference (Device.apply_pulses)
        self.use_kernels = True
        tdev = torch.device(torch_device) if torch_device is not None else torch.device("cpu")
        construction = _new_generator(self.seed, torch.device("cpu"))
        self.device = device.sample(tuple(self.shape), construction, tdev, dtype)
        self.generator = _new_generator(self.seed + 1, tdev)
        self.reference = torch.zeros(self.shape, device=tdev, dtype=dtype)
        self.state = torch.zeros(self.shape, device=tdev, dtype=dtype)
        self.write_offset = torch.zeros(self.shape, device=tdev, dtype=dtype)
        self.pulses_up = torch.zeros((), device=tdev, dtype=torch.float64)
        self.pulses_down = torch.zeros((), device=tdev, dtype=torch.float64)
        self.programming_writes = 0
        #: optimizer steps at which lifetime / diffusion changed the state (post_update_step)
        self.drift_steps = 0
        self.set_reference(reference, generator=construction)
        self.program(init, count=False)

    # ------------------------------------------------------------------ reading
    @property
    def torch_device(self) -> torch.device:
        return self.state.device

    @property
    def dtype(self) -> torch.dtype:
        return self.state.dtype

    def read(self) -> torch.Tensor:
        """Read value w - r (+ write noise): what an MVM with this array sees.

        The result is cached until the state, reference or write offsets change (tracked by
        tensor identity and version counter), so repeated reads between updates cost nothing;
        modifying the returned tensor in place invalidates the cache.
        """
        track = not (torch.is_inference_mode_enabled() or self.state.is_inference())
        cached = self._valid_read_cache() if track else None
        if cached is not None:
            return cached
        out = self.read_into(torch.empty_like(self.state))
        if track:
            self._read_cache = (record_versions(self.read_dependencies()), out, out._version)
        return out

    def _valid_read_cache(self) -> torch.Tensor | None:
        """The cached read value while state, reference, write offsets and the cached tensor
        itself are unmodified, else None."""
        cached = self.__dict__.get("_read_cache")
        if cached is not None and cached[1]._version == cached[2] and unchanged(cached[0], self.read_dependencies()):
            return cached[1]
        return None

    def read_into(self, out: torch.Tensor) -> torch.Tensor:
        """The read value w - r (+ write noise) written into ``out`` (same values as :meth:`read`)."""
        ref_zero = self._reference_is_zero()
        if self.device.write_noise > 0:
            torch.add(self.state, self.write_offset, out=out)
            if not ref_zero:
                out.sub_(self.reference)
        elif ref_zero:
            out.copy_(self.state)
        else:
            torch.sub(self.state, self.reference, out=out)
        return out

    def read_lines(self, lines: torch.Tensor | None, columns: bool = True) -> torch.Tensor:
        """The read values of selected columns ((out, k), ``columns``) or rows ((k, in)); all of
        :meth:`read` for ``lines=None``. Equal to ``read()`` indexed, computed on those lines only
        (a transfer reads one column of a large array per step)."""
        if lines is None:
            return self.read()
        axis = 1 if columns else 0
        cached = self._valid_read_cache()
        if cached is not None:
            return cached.index_select(axis, lines)
        out = self.state.index_select(axis, lines)
        if self.device.write_noise > 0:
            out.add_(self.write_offset.index_select(axis, lines))
        if not self._reference_is_zero():
            out.sub_(self.reference.index_select(axis, lines))
        return out

    def read_dependencies(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The tensors the read value is a function of: state, reference, write offsets."""
        return (self.state, self.reference, self.write_offset)

    def _reference_is_zero(self) -> bool:
        """Whether r = 0 everywhere (cached per reference tensor and version: no sync per read)."""
        ref = self.reference
        cached = self.__dict__.get("_ref_zero")
        if cached is not None and cached[0] is ref and cached[1] == ref._version:
            return cached[2]
        zero = not bool(torch.count_nonzero(ref)) if ref.numel() else True
        self._ref_zero = (ref, ref._version, zero)
        return zero

    def symmetric_point(self) -> torch.Tensor:
        """True per-element SP of the hidden state (ground truth for calibration)."""
        return self.device.symmetric_point().to(device=self.torch_device, dtype=self.dtype).expand(self.shape)

    def read_symmetric_point(self) -> torch.Tensor:
        """SP as seen through the reference: SP - r (0 for a perfectly zero-shifted array)."""
        return self.symmetric_point() - self.reference

    # ------------------------------------------------------------------ writing
    def set_reference(self, reference, generator: torch.Generator | None = None) -> None:
        """Set r: None/0, "symmetric_point", a float/tensor or a ReferenceOffset."""
        if reference is None:
            ref = torch.zeros(self.shape)
        elif isinstance(reference, str):
            if reference not in ("symmetric_point", "sp"):
                raise ValueError(f"reference string must be 'symmetric_point', got {reference!r}")
            ref = self.symmetric_point()
        elif callable(reference):  # drawn by the (sampled) device itself, e.g. PowStepReference
            ref = torch.as_tensor(reference(self.device)).cpu()
        elif isinstance(reference, ReferenceOffset):
            gen = generator if generator is not None else _new_generator(self.seed + 2, torch.device("cpu"))
            xi = torch.randn(tuple(self.shape), generator=gen)
            ref = self.symmetric_point().cpu() + reference.mean + reference.std * xi
        else:
            ref = torch.as_tensor(reference)
        self.reference = ref.to(device=self.torch_device, dtype=self.dtype).expand(self.shape).clone()

    def program(self, values, count: bool = True) -> None:
        """Write read values directly (closed-loop weight programming), clamped to the bounds.

        Counted in ``programming_writes`` (number of programmed elements) when ``count``.
        """
        v = torch.as_tensor(values, device=self.torch_device, dtype=self.dtype).expand(self.shape)
        self.state = clamp_to_bounds(v + self.reference, self.device).clone()
        self.write_offset.zero_()
        if count:
            self.programming_writes += self.state.numel()

    def _record(self, stats: PulseStats) -> None:
        self.pulses_up.add_(stats.up)  # float64 accumulators
        self.pulses_down.add_(stats.down)
        if stats.touched is not None and self.device.write_noise > 0:
            touched = stats.touched
            if not touched.is_floating_point() and touched.dtype != torch.bool:  # flat element indices
                self._redraw_write_offsets(touched)
                return
            if touched.dtype == torch.bool and self.torch_device.type == "cpu":
                idx = touched.reshape(-1).nonzero().squeeze(1)
                if idx.numel() * 8 < touched.numel():  # a few lines (transfer writes): draw for those only
                    self._redraw_write_offsets(idx)
                    return
            noise = torch.randn(self.shape, generator=self.generator, device=self.torch_device, dtype=self.dtype)
            noise = noise * (self.device.dw_min * self.device.write_noise)
            if touched.is_floating_point():  # a 0/1 mask: weight 1 takes the new draw exactly
                self.write_offset = torch.lerp(self.write_offset, noise, touched.to(noise.dtype))
            else:  # a bool mask
                self.write_offset = torch.where(touched, noise, self.write_offset)

    @property
    def nominal_dw_min(self) -> float:
        """The device's nominal granularity (the configured dw_min, before device-to-device
        variation): what the periphery and the transfer thresholds can know (aihwkit's
        weight granularity)."""
        v = self.template.dw_min
        return float(v.mean()) if isinstance(v, torch.Tensor) else float(v)

    def _engine(self, engine, transfer: bool) -> PulseEngine:
        if engine is not None:
            return engine
        return self.transfer_engine if transfer else self.engine

    def update(self, delta: torch.Tensor, engine: PulseEngine | None = None, transfer: bool = False) -> PulseStats:
        """Apply a desired increment of the read value through the pulse engine (the transfer
        engine with ``transfer=True``)."""
        delta = torch.as_tensor(delta, device=self.torch_device, dtype=self.dtype)
        if delta.shape != self.shape:
            raise ValueError(f"delta must have the array's shape {tuple(self.shape)}, got {tuple(delta.shape)}")
        if not bool(torch.isfinite(delta).all()):
            raise ValueError(f"array {self.name!r}: the increment is not finite (NaN or inf); nothing was written")
        eng = self._engine(engine, transfer)
        stats = eng.apply(self.state, self.device, delta, self.generator, self.device.write_noise > 0)
        self._record(stats)
        return stats

    def fire(self, counts: torch.Tensor) -> PulseStats:
        """Fire exactly |counts| pulses of polarity sign(counts) on each element (signed integer
        counts of the array's shape; 0: the element is not touched). Each pulse sees the response
        at the current state and its own cycle-to-cycle noise (:meth:`Device.apply_pulses`).
        This is how algorithms write whole pulses (thresholded transfers); every pulse is counted.
        """
        counts = torch.as_tensor(counts, device=self.torch_device, dtype=self.dtype)
        if counts.shape != self.shape:
            raise ValueError(f"counts must have the array's shape {tuple(self.shape)}, got {tuple(counts.shape)}")
        packed = numba_kernels.kernel_coefficients(self.state, self.device) if getattr(self, "use_kernels", True) else None
        if packed is not None:  # the compiled form of the lines below (tests/test_kernels.py)
            up, down, touched = numba_kernels.apply_counts(
                self.state, counts, packed, numba_kernels.noise_code(self.device), self.device.cycle_noise,
                self.generator, self.device.write_noise > 0)
            stats = PulseStats(torch.tensor(up, dtype=torch.float64), torch.tensor(down, dtype=torch.float64), touched)
            self._record(stats)
            return stats
        if not bool(torch.isfinite(counts).all()) or not torch.equal(counts, torch.trunc(counts)):
            raise ValueError("counts must be finite integers (signed pulse counts)")
        self.state.copy_(self.device.apply_pulses(self.state, counts, self.generator))
        stats = PulseStats(counts.clamp_min(0).sum(), (-counts).clamp_min(0).sum(),
                           torch.sign(counts).abs_() if self.device.write_noise > 0 else None)
        self._record(stats)
        return stats

    def fire_lines(self, counts: torch.Tensor, lines: torch.Tensor, columns: bool = True) -> PulseStats:
        """:meth:`fire` on selected lines only: ``counts`` (out, k) for the columns ``lines``
        (``columns=True``) or (k, in) for those rows; every other element is untouched. The
        definition is ``fire`` of the full-shape counts (what runs without the kernels)."""
        lines = torch.as_tensor(lines, device=self.torch_device, dtype=torch.long).reshape(-1)
        counts = torch.as_tensor(counts, device=self.torch_device, dtype=self.dtype)
        rows_, cols_ = self.shape
        axis = 1 if columns else 0
        if counts.dim() != 2 or counts.shape[axis] != lines.numel() or counts.shape[1 - axis] != self.shape[1 - axis]:
            raise ValueError(f"counts must have shape {(rows_, lines.numel()) if columns else (lines.numel(), cols_)} "
                             f"for {lines.numel()} {'columns' if columns else 'rows'}, got {tuple(counts.shape)}")
        packed = numba_kernels.kernel_coefficients(self.state, self.device) if getattr(self, "use_kernels", True) else None
        if packed is None:
            full = torch.zeros(self.shape, device=self.torch_device, dtype=self.dtype)
            return self.fire(full.index_copy_(axis, lines, counts))
        if columns:
            elements = torch.arange(rows_)[:, None] * cols_ + lines[None, :]
        else:
            elements = lines[:, None] * cols_ + torch.arange(cols_)[None, :]
        up, down = numba_kernels.apply_counts_at(self.state, elements, counts, packed,
                                                 numba_kernels.noise_code(self.device), self.device.cycle_noise,
                                                 self.generator)
        touched = None
        if self.device.write_noise > 0:
            touched = elements.reshape(-1)[counts.reshape(-1) != 0]
        stats = PulseStats(torch.tensor(up, dtype=torch.float64), torch.tensor(down, dtype=torch.float64), touched)
        self._record(stats)
        return stats

    def update_outer(self, x: torch.Tensor, d: torch.Tensor, lr: float, engine: PulseEngine | None = None,
                     transfer: bool = False) -> PulseStats:
        """SGD rank update with desired increment -lr * sum_b d_b x_b^T (x: (B, in), d: (B, out));
        through the transfer engine with ``transfer=True``."""
        if x.dim() == 1:
            x, d = x[None], d[None]
        if len(self.shape) != 2 or x.shape[1] != self.shape[1] or d.shape[1] != self.shape[0] or x.shape[0] != d.shape[0]:
            raise ValueError(
                f"update_outer needs x (B, {self.shape[1]}) and d (B, {self.shape[0]}), "
                f"got {tuple(x.shape)} and {tuple(d.shape)}"
            )
        if not (math.isfinite(float(lr)) and bool(torch.isfinite(x).all() & torch.isfinite(d).all())):
            raise ValueError(f"array {self.name!r}: the update inputs x, d or lr ({lr}) are not finite (NaN or "
                             f"inf); nothing was written")
        eng = self._engine(engine, transfer)
        stats = eng.apply_outer(self.state, self.device, x.to(self.dtype), d.to(self.dtype), float(lr),
                                self.generator, self.device.write_noise > 0)
        self._record(stats)
        return stats

    def update_lines(self, delta: torch.Tensor, lines: torch.Tensor | None, columns: bool = True,
                     trains: bool = True) -> PulseStats:
        """Transfer write of the desired increment ``delta`` onto lines ``lines`` (column
        indices with ``columns``, else rows; None: all), through the transfer engine.

        ``delta`` holds the selected lines: (out, k) for columns, (k, in) for rows.
        ``trains=True`` writes as aihwkit's transfer update does: a rank update with one one-hot
        vector per line on the read side (dW = -1 * (-delta) e^T), i.e. pulse trains with BL and
        update management under the stochastic engine. ``trains=False`` writes the full-shape
        increment element by element (:meth:`update`). Engines whose rank update is the
        element-wise update of -lr d^T x (expected, deterministic) give the same either way and
        take the element-wise form.
        """
        delta = torch.as_tensor(delta, device=self.torch_device, dtype=self.dtype)
        axis = 1 if columns else 0
        if not trains or getattr(self.transfer_engine, "outer_is_elementwise", True):
            if lines is None:
                return self.update(delta, transfer=True)
            full = torch.zeros(self.shape, device=self.torch_device, dtype=self.dtype)
            return self.update(full.index_copy_(axis, lines, delta), transfer=True)
        n = self.shape[axis]
        idx = torch.arange(n, device=self.torch_device) if lines is None else lines
        hot = torch.zeros(idx.numel(), n, device=self.torch_device, dtype=self.dtype).scatter_(1, idx[:, None], 1.0)
        if columns:  # column c: x = e_c, d = -delta[:, c]
            return self.update_outer(hot, -delta.transpose(0, 1), 1.0, transfer=True)
        return self.update_outer(-delta, hot, 1.0, transfer=True)  # row r: d = e_r, x = -delta[r, :]

    def program_where(self, mask: torch.Tensor, values=0.0) -> None:
        """Program the elements where ``mask`` is true to the read values ``values`` (a reset,
        aihwkit with_reset_prob); counted in ``programming_writes``."""
        v = torch.as_tensor(values, device=self.torch_device, dtype=self.dtype).expand(self.shape)
        self._program_hidden_where(mask, v + self.reference)

    def _program_hidden_where(self, mask, hidden: torch.Tensor) -> None:
        """Set the hidden state to ``hidden`` (clamped to the bounds) where ``mask`` is true,
        clearing those elements' write offsets; counted in ``programming_writes``."""
        mask = torch.as_tensor(mask, device=self.torch_device, dtype=torch.bool).expand(self.shape)
        self.state.copy_(torch.where(mask, clamp_to_bounds(hidden, self.device), self.state))
        self.write_offset.masked_fill_(mask, 0.0)
        self.programming_writes += int(mask.sum())

    def reset_where(self, mask: torch.Tensor) -> None:
        """Reset the elements where ``mask`` is true (aihwkit with_reset_prob / resetCols). Devices
        with a reset point (aihwkit families: per-element ``reset_bias``, cycle noise
        ``reset_std``) reset their hidden state to reset_bias + reset_std xi, clamped to the
        bounds, as aihwkit; others are programmed to read 0. Counted in ``programming_writes``."""
        bias = getattr(self.device, "reset_bias", None)
        if bias is None:
            self.program_where(mask, 0.0)
            return
        target = torch.as_tensor(bias, device=self.torch_device, dtype=self.dtype).expand(self.shape)
        std = float(getattr(self.device, "reset_std", 0.0))
        if std > 0:
            target = target + std * torch.randn(self.shape, generator=self.generator, device=self.torch_device,
                                                dtype=self.dtype)
        self._program_hidden_where(mask, target)

    def post_update_step(self) -> bool:
        """What happens to the array between optimizer steps (aihwkit ``post_update_step``):
        diffusion w += rate_ij xi, then decay towards the reset point w <- b_ij + (w - b_ij) s_ij,
        each clamped to the bounds, with fresh write noise on every element. Only for devices
        with lifetime or diffusion (``device.drifts``); counted in ``drift_steps``. Returns
        whether the state changed."""
        dev = self.device
        if not getattr(dev, "drifts", False):
            return False
        if dev.diffusion > 0:
            rate = torch.as_tensor(dev.diffusion_rate, device=self.torch_device, dtype=self.dtype)
            self.state.add_(rate * torch.randn(self.shape, generator=self.generator, device=self.torch_device,
                                               dtype=self.dtype))
            self.device.clamp_(self.state)
        if dev.lifetime > 0:
            bias = torch.as_tensor(dev.reset_bias, device=self.torch_device, dtype=self.dtype)
            scale = torch.as_tensor(dev.decay_scale, device=self.torch_device, dtype=self.dtype)
            self.state.sub_(bias).mul_(scale).add_(bias)
            self.device.clamp_(self.state)
        if dev.write_noise > 0:
            self._redraw_write_offsets(torch.arange(self.state.numel(), device=self.torch_device))
        self.drift_steps += 1
        return True

    def _redraw_write_offsets(self, idx: torch.Tensor) -> None:
        """Fresh write offsets dw_min write_noise xi for the flat element indices ``idx``
        (each written element gets a new draw, the others keep theirs)."""
        dw = torch.as_tensor(self.device.dw_min, dtype=self.dtype, device=self.torch_device)
        noise = torch.randn(idx.numel(), generator=self.generator, device=self.torch_device, dtype=self.dtype)
        if dw.dim():
            noise = noise * (dw.expand(self.shape).reshape(-1)[idx] * self.device.write_noise)
        else:
            noise = noise * (float(dw) * self.device.write_noise)
        if not self.write_offset.is_contiguous():
            self.write_offset = self.write_offset.contiguous()
        self.write_offset.view(-1)[idx] = noise

    @property
    def pulse_count(self) -> dict[str, float]:
        """Cumulative pulses fired on this array: up, down and total."""
        up, down = float(self.pulses_up), float(self.pulses_down)
        return {"up": up, "down": down, "total": up + down}

    def reset_pulse_count(self) -> None:
        self.pulses_up.zero_()
        self.pulses_down.zero_()

    # ------------------------------------------------------------------ hidden parameters
    def get_hidden_parameters(self) -> dict[str, torch.Tensor]:
        """The per-element device parameters (``dw_min`` and the family's ``element_params``,
        e.g. up_slope, w_max for SoftBounds) and the ``reference``, each a copy of the array's
        shape (aihwkit ``get_hidden_parameters``)."""
        out = {name: torch.as_tensor(v, dtype=self.dtype, device=self.torch_device).expand(self.shape).clone()
               for name, v in self.device.params().items()}
        out["reference"] = self.reference.clone()
        return out

    def set_hidden_parameters(self, params: dict) -> None:
        """Replace per-element device parameters and / or the reference (aihwkit
        ``set_hidden_parameters``): values are scalars or tensors broadcastable to the array's
        shape; names are those of :meth:`get_hidden_parameters` (others are an error). The
        hidden state is not touched (the next pulse acts with the new parameters)."""
        allowed = list(self.device.params()) + ["reference"]
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ValueError(f"unknown hidden parameter(s) {unknown} of {type(self.device).__name__}; "
                             f"allowed: {allowed}")
        positive = ("dw_min",) + tuple(self.device.positive_params)
        current = self.device.params()
        new = {}
        for name, value in params.items():
            t = torch.as_tensor(value, dtype=self.dtype, device=self.torch_device)
            try:
                t = t.expand(self.shape).clone()
            except RuntimeError as exc:
                raise ValueError(f"hidden parameter {name!r} must broadcast to the array shape {tuple(self.shape)}, "
                                 f"got shape {tuple(t.shape)}") from exc
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"hidden parameter {name!r} must be finite")
            if name in positive:  # scale parameters (steps, slopes, bounds) keep their sign and are non-zero
                sign = torch.as_tensor(current[name], dtype=self.dtype, device=self.torch_device).sign()
                if bool((t * sign <= 0).any()):
                    raise ValueError(f"hidden parameter {name!r} must keep the sign of its current values and be "
                                     f"non-zero (e.g. dw_min > 0, w_max > 0, w_min < 0)")
            new[name] = t
        reference = new.pop("reference", None)
        if new:
            device = self.device.with_params(**new)
            device._validate_sampled()
            self.device = device
        if reference is not None:
            self.reference = reference

    # ------------------------------------------------------------------ placement and state
    def to(self, torch_device=None, dtype=None) -> AnalogArray:
        """Move all tensors (state, parameters, reference, counters) to a torch device/dtype."""
        tdev = torch.device(torch_device) if torch_device is not None else self.torch_device
        dt = dtype or self.dtype
        if tdev != self.torch_device:
            gen_seed = int(torch.randint(0, 2**62, (1,), generator=self.generator, device=self.torch_device).item())
            self.generator = _new_generator(gen_seed, tdev)
        self.state = self.state.to(tdev, dt)
        self.reference = self.reference.to(tdev, dt)
        self.write_offset = self.write_offset.to(tdev, dt)
        self.pulses_up = self.pulses_up.to(tdev)
        self.pulses_down = self.pulses_down.to(tdev)
        self.device = self.device.to(tdev, dt)
        return self

    def state_dict(self) -> dict:
        """Everything needed to continue bit for bit: state, parameters, reference, counters, RNG."""
        return {
            "state": self.state.clone(),
            "reference": self.reference.clone(),
            "write_offset": self.write_offset.clone(),
            "params": {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in self.device.params().items()},
            "pulses_up": self.pulses_up.clone(),
            "pulses_down": self.pulses_down.clone(),
            "programming_writes": self.programming_writes,
            "drift_steps": self.drift_steps,
            "rng": self.generator.get_state(),
        }

    def load_state_dict(self, sd: dict) -> None:
        tdev, dt = self.torch_device, self.dtype
        self.state = sd["state"].to(tdev, dt).clone()
        self.reference = sd["reference"].to(tdev, dt).clone()
        self.write_offset = sd["write_offset"].to(tdev, dt).clone()
        params = {k: (v.to(tdev, dt) if isinstance(v, torch.Tensor) else v) for k, v in sd["params"].items()}
        self.device = self.device.with_params(**params)
        self.pulses_up = sd["pulses_up"].to(tdev).clone()
        self.pulses_down = sd["pulses_down"].to(tdev).clone()
        self.programming_writes = int(sd["programming_writes"])
        self.drift_steps = int(sd.get("drift_steps", 0))
        self.generator.set_state(sd["rng"])

    def __repr__(self) -> str:
        return (f"AnalogArray(shape={tuple(self.shape)}, device={self.template!r}, "
                f"engine={self.engine.name}, seed={self.seed})")
