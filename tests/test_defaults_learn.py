"""Every transfer algorithm learns a small regression with its defaults (issue 8).

Task: y = W* x with W* (4, 8) uniform in +-s, s = half the smaller bound of the device, x uniform
in [-1, 1]^8, 512 samples, batch 8, MSE loss, optimizer lr 0.1, 20 epochs (1,280 steps), zero
initial weights, stochastic pulse trains (aihwkit's default update) and perfect IO. Devices: the
presets ``aihwkit_softbounds`` (multiplicative cycle noise), ``offset_softbounds_additive``
(additive cycle noise, SP 0.12) and ``offset_softbounds`` (no noise, SP 0.12). Requirement:
final / initial full-set loss < 0.3.

c-TTv2 with aihwkit's defaults (per-mat-vec transfers, random chopper 0.1, momentum 0) does not
meet it on these devices (0.43 on aihwkit_softbounds, about 1.0 with SP 0.12, measured at the
time of writing); the test for it is a strict expected failure, so a change that makes it learn
is noticed.
"""

import pytest
import torch

import analogtrain as at
from analogtrain.algorithms import (
    AGAD,
    ERIDER,
    RIDER,
    ChoppedTikiTakaV2,
    ERIDERArtifact,
    MultiTileResidual,
    ResidualLearning,
    ResidualLearningV2,
    TikiTaka,
    TikiTakaV2,
)
from analogtrain.devices import get_preset

PRESETS = ("aihwkit_softbounds", "offset_softbounds_additive", "offset_softbounds")
ALGORITHMS = (TikiTaka, ResidualLearning, TikiTakaV2, ResidualLearningV2, AGAD, MultiTileResidual, RIDER, ERIDER,
              ERIDERArtifact)


def loss_ratio(algo, preset, epochs=20, lr=0.1, seed=0):
    dev = get_preset(preset)
    lo, hi = dev.bounds()
    scale = 0.5 * min(-float(lo), float(hi))
    g = torch.Generator().manual_seed(seed)
    w_star = (torch.rand(4, 8, generator=g) * 2 - 1) * scale
    x = torch.rand(512, 8, generator=g) * 2 - 1
    y = x @ w_star.T
    cfg = at.AnalogConfig(algorithm=algo, device=dev, engine="stochastic")
    layer = at.nn.AnalogLinear(8, 4, bias=False, config=cfg, seed=seed, init_weight=torch.zeros(4, 8))
    opt = at.optim.AnalogSGD(layer.parameters(), lr=lr)

    def loss():
        with torch.no_grad():
            return float(torch.nn.functional.mse_loss(layer(x), y))

    initial = loss()
    order = torch.Generator().manual_seed(seed + 1)
    for _ in range(epochs):
        perm = torch.randperm(x.shape[0], generator=order)
        for b in range(0, x.shape[0], 8):
            i = perm[b:b + 8]
            opt.zero_grad()
            torch.nn.functional.mse_loss(layer(x[i]), y[i]).backward()
            opt.step()
    return loss() / initial


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.__name__)
def test_defaults_learn_the_small_regression(algorithm, preset):
    ratio = loss_ratio(algorithm(), preset)
    assert ratio < 0.3, f"{algorithm.__name__} on {preset}: final / initial loss {ratio:.3f}"


@pytest.mark.xfail(strict=True, reason="c-TTv2 with aihwkit's defaults does not learn the task with an SP offset")
def test_chopped_ttv2_defaults_learn_with_an_sp_offset():
    assert loss_ratio(ChoppedTikiTakaV2(), "offset_softbounds") < 0.3
