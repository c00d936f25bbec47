"""Silent cases a new user hit (issue 11): each raises a ValueError naming the field, or is
documented behaviour checked here."""

import pytest
import torch
from torch import nn

import analogtrain as at
from analogtrain.algorithms import AnalogSGD, TikiTaka


def test_unknown_array_name_in_a_device_dict_is_an_error():
    dev = at.devices.SoftBounds(tau=0.6)
    cfg = at.AnalogConfig(algorithm=TikiTaka(), device={"W": dev, "P": dev, "p": dev})
    with pytest.raises(ValueError, match=r"unknown array name\(s\) \['p'\].*\['P', 'W'\]"):
        at.nn.AnalogLinear(3, 2, config=cfg)
    # without 'P' the array P finds no entry: the message names it and suggests the key 'p'
    cfg = at.AnalogConfig(algorithm=TikiTaka(), device={"W": dev, "p": dev})
    with pytest.raises(ValueError, match=r"no entry for array 'P'.*did you mean 'P' for 'p'"):
        at.nn.AnalogLinear(3, 2, config=cfg)


def test_unnamed_array_without_default_is_an_error_and_default_is_used():
    dev_w, dev_p = at.devices.SoftBounds(tau=0.6), at.devices.SoftBounds(tau=0.3)
    with pytest.raises(ValueError, match="no entry for array 'P'"):
        at.nn.AnalogLinear(3, 2, config=at.AnalogConfig(algorithm=TikiTaka(), device={"W": dev_w}))
    layer = at.nn.AnalogLinear(3, 2, config=at.AnalogConfig(algorithm=TikiTaka(),
                                                            device={"W": dev_w, "default": dev_p}))
    assert float(layer.arrays["P"].device.bounds()[1].max()) == pytest.approx(0.3)
    assert float(layer.arrays["W"].device.bounds()[1].max()) == pytest.approx(0.6)


def test_non_finite_increments_are_refused_naming_the_array():
    layer = at.nn.AnalogLinear(3, 2, config=at.AnalogConfig(device=at.devices.SoftBounds(tau=0.6)))
    arr = layer.arrays["W"]
    before = arr.state.clone()
    with pytest.raises(ValueError, match="array 'W'.*not finite"):
        arr.update(torch.full((2, 3), float("nan")))
    with pytest.raises(ValueError, match="array 'W'.*not finite"):
        arr.update_outer(torch.tensor([[1.0, float("inf"), 0.0]]), torch.ones(1, 2), 0.1)
    with pytest.raises(ValueError, match="array 'W'.*not finite"):
        arr.update_outer(torch.ones(1, 3), torch.ones(1, 2), float("nan"))
    assert torch.equal(arr.state, before)
    # a NaN loss reaches the update as NaN errors d: refused at the optimizer step
    opt = at.optim.AnalogSGD(layer.parameters(), lr=0.1)
    (layer(torch.ones(1, 3)).sum() * float("nan")).backward()
    with pytest.raises(ValueError, match="not finite"):
        opt.step()
    assert torch.equal(arr.state, before)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_convert_follows_the_model_dtype(dtype):
    model = nn.Sequential(nn.Linear(4, 3)).to(dtype)
    analog = at.convert(model, at.AnalogConfig(io=at.IO.perfect()))
    layer = analog[0]
    assert layer.weight.dtype == dtype and layer.arrays["W"].state.dtype == dtype
    x = torch.rand(2, 4, dtype=dtype)
    assert analog(x).dtype == dtype


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_convert_refuses_half_precision(dtype):
    with pytest.raises(ValueError, match="float32 or float64"):
        at.convert(nn.Sequential(nn.Linear(4, 3)).to(dtype), at.AnalogConfig())


def test_layers_must_be_a_list_of_names():
    model = nn.Sequential()
    model.add_module("fc", nn.Linear(4, 3))
    with pytest.raises(ValueError, match=r"layers must be a list of module names \(e.g. \['fc'\]\)"):
        at.convert(model, at.AnalogConfig(), layers="fc")
    assert isinstance(at.convert(model, at.AnalogConfig(), layers=["fc"]).fc, at.nn.AnalogLinear)


def test_gradient_clipping_sees_digital_gradients_only():
    """Documented behaviour: analog weights carry no .grad, so clip_grad_norm_ acts on the
    digital parameters (biases) only; the analog update receives the raw error d."""
    layer = at.nn.AnalogLinear(3, 2, config=at.AnalogConfig(algorithm=AnalogSGD()))
    layer(torch.ones(4, 3)).sum().backward()
    assert layer.weight.grad is None and layer.bias.grad is not None
    norm = torch.nn.utils.clip_grad_norm_(layer.parameters(), 1e-3)
    assert float(norm) == pytest.approx(float(torch.full((2,), 4.0).norm()))
    assert float(layer.bias.grad.norm()) == pytest.approx(1e-3, rel=1e-3)
    assert torch.equal(layer._pending[0][1], torch.ones(4, 2))
