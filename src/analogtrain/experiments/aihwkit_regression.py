"""The small regression of the aihwkit golden traces (tests/data/aihwkit_golden_regression.json).

``benchmarks/aihwkit_golden.py`` trains aihwkit 1.1.0's AnalogLinear(32, 8, bias=False) on a fixed
linear teacher with Analog SGD, TT-v1, TT-v2, c-TTv2 and AGAD on aihwkit's default SoftBounds
device and records the MSE per epoch. This module runs the same task in analogtrain with the
settings that mirror aihwkit field by field (``aihwkit_config``), so tests and users can put the
two loss curves side by side.

Mapping (aihwkit 1.1.0 field -> analogtrain):

| aihwkit | analogtrain |
|---|---|
| SoftBoundsDevice() | preset ``aihwkit_softbounds`` (device_to_device_distribution "aihwkit") |
| UpdateParameters() (BL 31, UBLM, UM, STOCHASTIC_COMPRESSED) | engine "stochastic", bit_length 31 |
| forward / backward / transfer_forward is_perfect | IO.perfect() for io and transfer_io |
| fast_lr 0.2 (absolute) | fast_lr 0.2, scale_fast_lr False |
| transfer_lr 1, scale_transfer_lr True | transfer_lr 1, scale_transfer_lr True |
| transfer_every 1, units_in_mbatch True, n_reads_per_transfer 1 | same names (columns_per_transfer 1) |
| TransferCompound transfer_update UpdateParameters() | transfer_write "pulse_train" through the stochastic engine |
| Buffered: thres_scale 1, momentum 0.1, forget_buffer True, transfer BL 1 | thres 1, momentum 0.1, forget_buffer True, max_transfer_pulses 1, pulse_write "exact" |
| Chopped/Dynamic: buffer_granularity 1 (fast device's dw_min), momentum 0 | thres 1 (granularity of P), momentum 0 |
| in_chop_prob 0.1, in_chop_random True (Chopped) / False (Dynamic) | chop_prob 0.1, chop_random True / False |
| tail_weightening 5 | tail_weightening 5 |

Mixed precision (``MIXED_PRECISION``; golden file tests/data/aihwkit_golden_mixed_precision.json,
``benchmarks/aihwkit_golden.py --mixed-precision``; not in ``ALGORITHMS``, whose names the main
golden file holds):

| aihwkit (DigitalRankUpdateRPUConfig) | analogtrain |
|---|---|
| MixedPrecisionCompound(device=SoftBoundsDevice()) | MixedPrecision(), preset ``aihwkit_softbounds`` |
| transfer_every 1, n_rows_per_transfer -1, granularity 0 (dw_min), transfer_lr 1 | same names and values |
| n_x_bins / n_d_bins, stoc_round_x / stoc_round_d True | same names |
| transfer: pulsed update of x = n, d = one-hot row, UM / UBLM forced, UpdateParameters() BL 31 | pulse_write "pulse_train" through the stochastic engine, bit_length 31 |
| transfer after the first sample of the next mini-batch | transfer_timing "aihwkit" |

Entries: ``mixed_precision`` (class defaults), ``mixed_precision_rows`` (n_rows_per_transfer 1),
``mixed_precision_bins`` (n_x_bins = n_d_bins = 3) and ``mixed_precision_clean`` (class defaults
on a SoftBounds device without device-to-device or cycle-to-cycle variation, aihwkit's
SoftBoundsDevice(dw_min_dtod=0, w_max_dtod=0, w_min_dtod=0, up_down_dtod=0, dw_min_std=0)).
"""

from __future__ import annotations

import numpy as np
import torch

from .. import IO, AnalogConfig
from ..algorithms import AGAD, AnalogSGD, ChoppedTikiTakaV2, MixedPrecision, TikiTaka, TikiTakaV2
from ..devices import SoftBounds, get_preset
from ..nn import AnalogLinear
from ..optim import AnalogSGD as AnalogSGDOptimizer

ALGORITHMS = ("analog_sgd", "ttv1", "ttv2", "cttv2", "agad")
#: mixed-precision entries (MixedPrecisionCompound field overrides, as benchmarks/aihwkit_golden.py)
MIXED_PRECISION = {
    "mixed_precision": {},
    "mixed_precision_rows": {"n_rows_per_transfer": 1},
    "mixed_precision_bins": {"n_x_bins": 3, "n_d_bins": 3},
    "mixed_precision_clean": {},
}


def regression_data():
    """X (1024, 32), Y (1024, 8) of the golden task (numpy RandomState(1234), float32)."""
    rng = np.random.RandomState(1234)
    x = rng.uniform(-1, 1, size=(1024, 32)).astype(np.float32)
    w_target = rng.uniform(-0.3, 0.3, size=(8, 32))
    y = (x @ w_target.T).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(y)


def aihwkit_algorithm(name: str):
    """The analogtrain algorithm that mirrors the golden file's aihwkit compound."""
    common = {"fast_lr": 0.2, "scale_fast_lr": False, "transfer_lr": 1.0, "scale_transfer_lr": True,
              "transfer_every": 1, "units_in_mbatch": True, "columns_per_transfer": 1}
    if name == "analog_sgd":
        return AnalogSGD()
    if name == "ttv1":
        return TikiTaka(transfer_write="pulse_train", **common)
    if name == "ttv2":
        return TikiTakaV2(thres=1.0, momentum=0.1, forget_buffer=True, max_transfer_pulses=1, **common)
    if name == "cttv2":
        return ChoppedTikiTakaV2(chop_prob=0.1, chop_random=True, momentum=0.0, forget_buffer=True,
                                 max_transfer_pulses=1, **common)
    if name == "agad":
        return AGAD(chop_prob=0.1, chop_random=False, momentum=0.0, forget_buffer=True, max_transfer_pulses=1,
                    tail_weightening=5.0, **common)
    if name in MIXED_PRECISION:
        return MixedPrecision(transfer_every=1, pulse_write="pulse_train", transfer_timing="aihwkit",
                              **MIXED_PRECISION[name])
    raise ValueError(f"algorithm must be one of {ALGORITHMS + tuple(MIXED_PRECISION)}, got {name!r}")


def aihwkit_device(name: str):
    """aihwkit's default SoftBoundsDevice, or without its variations for ``mixed_precision_clean``."""
    if name == "mixed_precision_clean":
        return SoftBounds(up_slope=1.0, down_slope=1.0, w_max=0.6, w_min=-0.6, dw_min=1e-3)
    return get_preset("aihwkit_softbounds")


def aihwkit_config(name: str) -> AnalogConfig:
    return AnalogConfig(algorithm=aihwkit_algorithm(name), device=aihwkit_device(name),
                        io=IO.perfect(), transfer_io=IO.perfect(), engine="stochastic",
                        engine_kwargs={"bit_length": 31})


def run_regression(name: str, seed: int, record_epochs=(0, 1, 2, 3, 5, 8, 10), lr: float = 0.1,
                   batch: int = 8) -> dict[int, float]:
    """Train the golden task with ``name``; returns {epoch: full-set MSE} at ``record_epochs``."""
    x, y = regression_data()
    layer = AnalogLinear(32, 8, bias=False, config=aihwkit_config(name), seed=seed,
                         init_weight=torch.zeros(8, 32))
    opt = AnalogSGDOptimizer(layer.parameters(), lr=lr)
    out = {}

    def mse():
        with torch.no_grad():
            return float(torch.nn.functional.mse_loss(layer(x), y))

    last = max(record_epochs)
    if 0 in record_epochs:
        out[0] = mse()
    for epoch in range(1, last + 1):
        order = torch.from_numpy(np.random.RandomState(100 + epoch).permutation(1024))
        for b in range(0, 1024, batch):
            idx = order[b:b + batch]
            opt.zero_grad()
            torch.nn.functional.mse_loss(layer(x[idx]), y[idx]).backward()
            opt.step()
        if epoch in record_epochs:
            out[epoch] = mse()
    return out
