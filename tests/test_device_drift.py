"""Between-update physics of aihwkit's PulsedDevice (aihwkit ``post_update_step``): lifetime decay
towards the per-device reset bias, diffusion, and resets to reset_bias + reset_std xi; each
checked against its closed form."""

import pytest
import torch

import analogtrain as at
from analogtrain.algorithms import AnalogSGD, TikiTakaV2
from analogtrain.arrays import AnalogArray
from analogtrain.devices import ConstantStep, LinearStep

QUIET = {"dw_min_dtod": 0.0, "up_down_dtod": 0.0, "w_max_dtod": 0.0, "w_min_dtod": 0.0, "dw_min_std": 0.0}


def test_lifetime_decays_towards_the_reset_bias_geometrically():
    """w_n = b + (w_0 - b) (1 - 1/lifetime)^n, clamped to the bounds (aihwkit decayWeights)."""
    dev = ConstantStep(lifetime=10.0, reset=0.1, w_max=1.0, w_min=-1.0, **QUIET)
    arr = AnalogArray((3, 4), dev, seed=0, init=0.5)
    for _ in range(7):
        assert arr.post_update_step()
    torch.testing.assert_close(arr.state, torch.full((3, 4), 0.1 + 0.4 * 0.9 ** 7), rtol=0, atol=1e-6)
    assert arr.drift_steps == 7 and arr.pulse_count["total"] == 0


def test_lifetime_and_reset_spreads_are_per_element_draws():
    dev = ConstantStep(lifetime=50.0, lifetime_dtod=0.2, reset=0.05, reset_dtod=0.02, **QUIET)
    arr = AnalogArray((64, 64), dev, seed=1)
    hidden = arr.get_hidden_parameters()
    t = 1.0 / (1.0 - hidden["decay_scale"])  # the drawn lifetimes
    assert float(t.mean()) == pytest.approx(50.0, rel=0.02)  # 4096 draws of 50 (1 + 0.2 xi): SE 0.3 %
    assert float(t.std()) == pytest.approx(10.0, rel=0.05)
    assert float(hidden["reset_bias"].mean()) == pytest.approx(0.05, abs=0.002)
    assert float(hidden["reset_bias"].std()) == pytest.approx(0.02, rel=0.05)


def test_diffusion_variance_grows_linearly():
    """w += rate xi per step: after n steps Var = n rate^2 (bounds far away)."""
    dev = ConstantStep(diffusion=0.01, w_max=10.0, w_min=-10.0, **QUIET)
    arr = AnalogArray((64, 64), dev, seed=2)
    for _ in range(25):
        arr.post_update_step()
    var = float(arr.state.var())
    assert var == pytest.approx(25 * 0.01 ** 2, rel=0.06)  # 4096 samples: SE of a variance 2.2 %


def test_no_drift_without_lifetime_or_diffusion():
    arr = AnalogArray((3, 3), LinearStep(**QUIET), seed=0, init=0.2)
    before = arr.state.clone()
    assert not arr.post_update_step() and torch.equal(arr.state, before) and arr.drift_steps == 0


def test_reset_goes_to_the_reset_bias_with_reset_std():
    dev = ConstantStep(reset=0.1, reset_std=0.05, **QUIET)
    arr = AnalogArray((64, 64), dev, seed=3, init=0.4)
    mask = torch.zeros(64, 64, dtype=torch.bool)
    mask[:, ::2] = True
    arr.reset_where(mask)
    reset = arr.state[mask]
    assert float(reset.mean()) == pytest.approx(0.1, abs=0.003) and float(reset.std()) == pytest.approx(0.05, rel=0.05)
    assert torch.equal(arr.state[~mask], torch.full((2048,), 0.4))
    assert arr.programming_writes == 2048  # the reset is a counted programming write (construction is not)

def test_layers_apply_decay_once_per_optimizer_step_and_resume_with_it():
    dev = ConstantStep(lifetime=20.0, **QUIET)
    cfg = at.AnalogConfig(algorithm=AnalogSGD(), device=dev, io=at.IO.perfect())
    layer = at.nn.AnalogLinear(4, 3, bias=False, config=cfg, init_weight=torch.full((3, 4), 0.3))
    opt = at.optim.AnalogSGD(layer.parameters(), lr=1e-9)  # an update of ~no pulses
    for _ in range(5):
        opt.zero_grad()
        layer(torch.zeros(1, 4)).sum().backward()
        opt.step()
    assert layer.arrays["W"].drift_steps == 5
    torch.testing.assert_close(layer.get_weights()[0], torch.full((3, 4), 0.3 * 0.95 ** 5), rtol=0, atol=1e-6)
    assert layer.summary()["drift_steps"] == {"W": 5}
    other = at.nn.AnalogLinear(4, 3, bias=False, config=cfg)
    other.load_state_dict(layer.state_dict())
    assert other.arrays["W"].drift_steps == 5 and torch.equal(other.weight, layer.weight)


def test_ttv2_resets_of_p_use_the_device_reset():
    dev = ConstantStep(reset=0.2, reset_std=0.0, **QUIET)
    algo = TikiTakaV2(with_reset_prob=1.0, transfer_every=1)
    st = algo.init(at.TileSpec((4, 5), at.AnalogConfig(algorithm=algo, device=dev), seed=0))
    st.arrays["P"].program(torch.full((4, 5), -0.3))
    st.transfer(lr=0.1)
    assert torch.equal(st.arrays["P"].state[:, 0], torch.full((4,), 0.2))  # the transferred column
    assert torch.equal(st.arrays["P"].state[:, 1], torch.full((4,), -0.3))
