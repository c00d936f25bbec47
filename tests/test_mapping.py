"""Mapping as aihwkit's MappingParameter: tiles of a large layer, weight scaling (omega, global
or per output row, lr compensation) and learned output scales; hand-computed steps and the
untiled layer as references."""

import pytest
import torch
import torch.nn.functional as F

import analogtrain as at
from analogtrain.algorithms import AnalogSGD, DigitalSGD
from analogtrain.devices import SoftBounds
from analogtrain.mapping import Mapping, split_sizes
from analogtrain.nn import AnalogConv2d, AnalogLinear


def config(algorithm=None, mapping=None, **kwargs):
    return at.AnalogConfig(algorithm=algorithm or DigitalSGD(), device=SoftBounds(tau=4.0, dw_min=1e-4),
                           io=at.IO.perfect(), mapping=mapping or Mapping(), **kwargs)


def test_split_sizes_are_balanced_like_aihwkit():
    assert split_sizes(1000, 512) == [500, 500]
    assert split_sizes(700, 512) == [350, 350]
    assert split_sizes(1025, 512) == [342, 342, 341]
    assert split_sizes(512, 512) == [512]
    assert split_sizes(300, 0) == [300]


def test_mapping_validation_names_the_field():
    for kwargs, field in [({"weight_scaling_omega": -1.0}, "weight_scaling_omega"),
                          ({"max_input_size": -3}, "max_input_size"), ({"max_output_size": 2.5}, "max_output_size"),
                          ({"learn_out_scaling": 1}, "learn_out_scaling"), ({"digital_bias": False}, "digital_bias")]:
        with pytest.raises(ValueError, match=field):
            Mapping(**kwargs)
    with pytest.raises(ValueError, match="mapping"):
        at.AnalogConfig(mapping={"max_input_size": 8})
    assert Mapping.aihwkit().max_input_size == 512 and Mapping.aihwkit().max_output_size == 512


def test_a_1000_x_700_layer_splits_into_2_x_2_tiles_equal_to_the_untiled_layer():
    torch.manual_seed(0)
    w = torch.randn(1000, 700) * 0.05
    b = torch.randn(1000) * 0.1
    tiled = AnalogLinear(700, 1000, config=config(AnalogSGD(), Mapping.aihwkit()), init_weight=w, init_bias=b)
    plain = AnalogLinear(700, 1000, config=config(AnalogSGD()), init_weight=w, init_bias=b)
    assert tiled.tiled and not plain.tiled
    assert tiled.grid.out_sizes == [500, 500] and tiled.grid.in_sizes == [350, 350]
    assert set(tiled.arrays) == {"t0_0.W", "t0_1.W", "t1_0.W", "t1_1.W"}
    assert torch.equal(tiled.get_weights()[0], plain.get_weights()[0])
    x = torch.randn(4, 700, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    y, y2 = tiled(x), plain(x2)
    assert torch.allclose(y, y2, atol=2e-5)
    g = torch.randn(4, 1000)
    y.backward(g)
    y2.backward(g)
    assert torch.allclose(x.grad, x2.grad, atol=2e-5)
    assert torch.allclose(tiled.bias.grad, plain.bias.grad)


def test_tiled_pulse_counts_sum_over_tiles_and_match_the_untiled_update():
    """Expected engine, noise-free device: every element gets the same update, so the pulses of
    the four tiles add up to the untiled layer's and the weights agree."""
    torch.manual_seed(1)
    w = torch.randn(30, 20) * 0.1
    layers = {name: AnalogLinear(20, 30, bias=False, config=config(AnalogSGD(), mapping=m), init_weight=w)
              for name, m in (("tiled", Mapping(max_input_size=12, max_output_size=16)), ("plain", Mapping()))}
    x, g = torch.randn(8, 20), torch.randn(8, 30)
    for layer in layers.values():
        opt = at.optim.AnalogSGD(layer.parameters(), lr=0.05)
        layer(x).backward(g)
        opt.step()
    tiled, plain = layers["tiled"], layers["plain"]
    assert tiled.grid.out_sizes == [15, 15] and tiled.grid.in_sizes == [10, 10]
    per_tile = [block.summary()["pulses"]["W"]["total"] for block in tiled.grid.blocks.values()]
    assert all(p > 0 for p in per_tile)
    assert sum(per_tile) == pytest.approx(plain.summary()["pulses"]["W"]["total"], rel=1e-5)
    assert torch.allclose(tiled.get_weights()[0], plain.get_weights()[0], atol=1e-6)
    from analogtrain.experiments.runner import pulse_table, total_pulses
    model = torch.nn.Sequential(tiled)
    assert total_pulses(pulse_table(model)) == pytest.approx(sum(per_tile))


@pytest.mark.parametrize("columnwise", [False, True])
def test_weight_scaling_round_trips_and_fills_omega(columnwise):
    torch.manual_seed(2)
    w = torch.randn(6, 9) * 3.0  # far outside the device range [-0.6, 0.6] before scaling
    dev = SoftBounds(tau=0.6, dw_min=1e-3)
    mapping = Mapping(weight_scaling_omega=0.6, weight_scaling_columnwise=columnwise)
    layer = AnalogLinear(9, 6, config=at.AnalogConfig(algorithm=AnalogSGD(), device=dev, io=at.IO.perfect(),
                                                      mapping=mapping), init_weight=w)
    stored = layer.arrays["W"].read()
    peak = stored.abs().amax(dim=1) if columnwise else stored.abs().max()
    assert torch.allclose(peak, torch.full_like(peak, 0.6), atol=1e-6)  # the abs-max maps to omega
    alpha = layer.mapping_scales
    assert alpha.shape == ((6,) if columnwise else (1,))
    got = layer.get_weights()[0]
    assert torch.allclose(got, w, atol=float(alpha.max()) * 1e-3)  # within one device step (alpha dw_min)
    new = torch.randn(6, 9)
    achieved = layer.set_weights(new)
    assert torch.allclose(achieved, new, atol=1e-5)
    assert torch.allclose(layer.mapping_scales, mapping.weight_scales(new))


@pytest.mark.parametrize("compensate", [False, True])
def test_weight_scaling_forward_backward_and_step_follow_the_logical_weight(compensate):
    """y = alpha (W_a x) + b with W_a = W / alpha; input gradient W^T d; the update gets
    d / alpha, so the logical weight moves by -lr d^T x exactly (DigitalSGD arrays)."""
    torch.manual_seed(3)
    w, b = torch.randn(5, 7), torch.randn(5)
    mapping = Mapping(weight_scaling_omega=0.5, weight_scaling_columnwise=True,
                      weight_scaling_lr_compensation=compensate)
    layer = AnalogLinear(7, 5, config=config(mapping=mapping), init_weight=w, init_bias=b)
    x = torch.randn(3, 7, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    w_ref = w.clone().requires_grad_(True)
    y, y_ref = layer(x), F.linear(x_ref, w_ref, b)
    assert torch.allclose(y, y_ref, atol=1e-5)
    g = torch.randn(3, 5)
    y.backward(g)
    y_ref.backward(g)
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-5)
    at.optim.AnalogSGD(layer.parameters(), lr=0.1).step()
    assert torch.allclose(layer.get_weights()[0], w - 0.1 * w_ref.grad, atol=1e-5)


def test_learned_output_scale_step_equals_hand_computed_sgd():
    torch.manual_seed(4)
    w, b = torch.randn(4, 3), torch.randn(4)
    mapping = Mapping(learn_out_scaling=True, out_scaling_columnwise=True)
    layer = AnalogLinear(3, 4, config=config(mapping=mapping), init_weight=w, init_bias=b)
    assert torch.equal(layer.out_scaling_alpha.data, torch.ones(4))
    with torch.no_grad():
        layer.out_scaling_alpha.copy_(torch.tensor([0.5, 1.0, 2.0, 1.5]))
    s = layer.out_scaling_alpha.detach().clone()
    x = torch.randn(6, 3)
    target = torch.randn(6, 4)
    loss = F.mse_loss(layer(x), target)
    loss.backward()
    # by hand: y = s (W x) + b, L = mean((y - t)^2); dL/dy = 2 (y - t) / numel
    z = x @ w.T
    grad_y = 2 * (s * z + b - target) / target.numel()
    lr = 0.2
    at.optim.AnalogSGD(layer.parameters(), lr=lr).step()
    assert torch.allclose(layer.out_scaling_alpha.detach(), s - lr * (grad_y * z).sum(0), atol=1e-6)
    assert torch.allclose(layer.bias.detach(), b - lr * grad_y.sum(0), atol=1e-6)
    # the arrays receive d = s * grad_y (the chain rule through the digital scale)
    w_arrays = layer.tile.effective_weight()
    assert torch.allclose(w_arrays, w - lr * (s * grad_y).T @ x, atol=1e-6)
    # get_weights reports the logical weight: arrays times the learned scales
    assert torch.allclose(layer.get_weights()[0], w_arrays * layer.out_scaling_alpha.detach().view(-1, 1))
    layer.set_weights(w)  # resets the learned scales to 1 (aihwkit set_scales)
    assert torch.equal(layer.out_scaling_alpha.data, torch.ones(4))


def test_mapped_layers_state_dict_round_trip_and_convolutions_tile():
    torch.manual_seed(5)
    mapping = Mapping(weight_scaling_omega=0.6, learn_out_scaling=True, max_input_size=16, max_output_size=4)
    cfg = at.AnalogConfig(algorithm=AnalogSGD(), device=at.devices.get_preset("aihwkit_softbounds"),
                          io=at.IO.perfect(), mapping=mapping)
    conv = AnalogConv2d(3, 6, 3, padding=1, config=cfg, seed=1)  # fan-in 27 > 16, out 6 > 4: 2 x 2 tiles
    assert conv.tiled and conv.grid.in_sizes == [14, 13] and conv.grid.out_sizes == [3, 3]
    opt = at.optim.AnalogSGD(conv.parameters(), lr=0.1)
    conv(torch.randn(2, 3, 5, 5)).square().mean().backward()
    opt.step()
    other = AnalogConv2d(3, 6, 3, padding=1, config=cfg, seed=7)
    other.load_state_dict(conv.state_dict())
    x = torch.randn(1, 3, 5, 5)
    assert torch.equal(other(x), conv(x))
    assert torch.equal(other.get_weights()[0], conv.get_weights()[0])
    ref = torch.nn.Conv2d(3, 6, 3, padding=1)
    mapped = at.convert(torch.nn.Sequential(ref), config(mapping=mapping))[0]
    assert torch.allclose(mapped(x), ref(x), atol=1e-5)


def test_mapping_section_of_a_run_config():
    from analogtrain.experiments import build_config

    base = {"task": {"name": "quadratic"}, "algorithm": {"name": "AnalogSGD"}}
    cfg = build_config({**base, "mapping": {"preset": "aihwkit", "weight_scaling_omega": 0.3,
                                            "learn_out_scaling": True}})
    assert cfg.mapping == Mapping(weight_scaling_omega=0.3, learn_out_scaling=True, max_input_size=512,
                                  max_output_size=512)
    assert build_config(base).mapping == Mapping()
    with pytest.raises(ValueError, match="mapping.*omega_scale"):
        build_config({**base, "mapping": {"omega_scale": 0.3}})
    with pytest.raises(ValueError, match="mapping.preset"):
        build_config({**base, "mapping": {"preset": "ibm"}})
    with pytest.raises(ValueError, match="weight_scaling_omega"):
        build_config({**base, "mapping": {"weight_scaling_omega": -1}})
