"""Two-stage baseline (2602.21321 Algorithm 4): ZS calibration of P, then residual learning."""

import copy

import pytest
import torch

import analogtrain as at
from analogtrain.algorithms import AGAD, RIDER, AnalogSGD, ResidualLearning, TikiTakaV2
from analogtrain.algorithms.twostage import TwoStage
from analogtrain.experiments.rider_quadratic import QuadraticProblem, run_quadratic


def make_state(algorithm, shape=(8, 6), seed=0):
    dev = at.devices.SoftBounds(tau=1.0, asymmetry=0.3, dw_min=1e-2)
    cfg = at.AnalogConfig(algorithm=algorithm, device=dev, io=at.IO.perfect(), engine="expected")
    init = torch.linspace(-0.2, 0.2, shape[0] * shape[1]).reshape(shape)
    return algorithm.init(at.TileSpec(shape, cfg, seed=seed, init_weight=init))


def drive(state, steps, seed=0):
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        state.step(torch.randn(4, 6, generator=gen), torch.randn(4, 8, generator=gen) * 0.3, 0.05)
        out.append(state.effective_weight().clone())
    return out


@pytest.mark.parametrize("then", [ResidualLearning(gamma=0.3), TikiTakaV2(), AGAD(), RIDER()])
def test_calibrates_p_and_counts_pulses_apart(then):
    state = make_state(TwoStage(calibration_pulses=800, then=then))
    P = state.arrays["P"]
    # 800 pulses = 8 time constants of the dw 1e-2 device: the SP seen through P's read is ~0
    assert abs(float(P.read_symmetric_point().mean())) < 0.02
    assert float(P.read().abs().max()) == 0.0  # P reads zero right after calibration
    assert P.pulse_count["total"] == 0.0  # calibration pulses are not training pulses
    drive(state, 5)
    s = state.summary()
    assert s["calibration"]["pulses"] == 800 * 48
    assert s["pulses_calibration_total"] == 800 * 48
    assert s["pulses_training_total"] == pytest.approx(sum(v["total"] for v in s["pulses"].values()))
    assert s["pulses_total"] == pytest.approx(s["pulses_training_total"] + 800 * 48)
    assert s["counters"]["steps"] == 5


def test_zero_pulses_is_the_wrapped_algorithm():
    a = make_state(TwoStage(calibration_pulses=0, then=ResidualLearning()))
    b = make_state(ResidualLearning())
    for x, y in zip(drive(a, 20), drive(b, 20)):
        assert torch.equal(x, y)


def test_rider_with_frozen_q_is_residual_learning():
    """Cross-check of two implementations: RIDER with eta = 0 (Q = 0) and full-array transfers
    is Residual Learning (2502.06309 eqs. 10-11) with all columns transferred every step."""
    a = make_state(RIDER(eta=0.0, gamma=0.3))
    b = make_state(ResidualLearning(gamma=0.3, columns_per_transfer=None))
    for x, y in zip(drive(a, 30), drive(b, 30)):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-6)


def test_more_calibration_pulses_remove_the_bias_of_residual_learning():
    """Quadratic with P's SP at 0.3: RL's bias shrinks as the calibration budget N grows."""
    problem = QuadraticProblem(dim=128, dw_min=1e-2)
    errors = {}
    for n in (0, 100, 1000):
        _, trace = run_quadratic(TwoStage(calibration_pulses=n, then=ResidualLearning(gamma=0.5)), problem, 2500, 0.05)
        errors[n] = trace.final(10)["weight_error"]
    assert errors[0] > 0.15  # uncalibrated RL: bias ~ c E|g| / L ~ 0.24
    assert errors[100] < 0.6 * errors[0]
    assert errors[1000] < 0.3 * errors[0]


def test_state_dict_round_trip():
    algo = TwoStage(calibration_pulses=50, then=TikiTakaV2())
    a = make_state(algo)
    drive(a, 10, seed=1)
    saved = copy.deepcopy(a.state_dict())
    first = drive(a, 10, seed=2)
    b = make_state(algo, seed=77)
    b.load_state_dict(saved)
    second = drive(b, 10, seed=2)
    for x, y in zip(first, second):
        assert torch.equal(x, y)
    assert a.summary() == b.summary()


def test_layer_with_two_stage():
    dev = at.devices.SoftBounds(tau=1.0, asymmetry=0.3, dw_min=1e-2)
    cfg = at.AnalogConfig(algorithm=TwoStage(calibration_pulses=200), device=dev, io=at.IO.perfect())
    layer = at.nn.AnalogLinear(5, 3, bias=False, config=cfg)
    layer(torch.randn(2, 5)).sum().backward()
    at.optim.AnalogSGD(layer.parameters(), lr=0.05).step()
    s = layer.summary()
    assert s["pulses_calibration_total"] == 200 * 15
    assert s["pulses_training_total"] > 0


def test_validation():
    with pytest.raises(ValueError, match="calibration_pulses"):
        TwoStage(calibration_pulses=-1)
    with pytest.raises(ValueError, match="mode"):
        TwoStage(mode="adaptive")
    with pytest.raises(ValueError, match="then"):
        TwoStage(then="rl")
    with pytest.raises(ValueError, match="no analog array"):
        make_state(TwoStage(then=AnalogSGD()))
