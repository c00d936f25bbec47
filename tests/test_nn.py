"""AnalogLinear / AnalogConv2d and convert(): torch semantics with perfect IO, the periphery
in forward and backward, conversion of chosen layers, dtype and device placement."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import analogtrain as at
from analogtrain.algorithms import AnalogSGD, DigitalSGD
from analogtrain.devices import SoftBounds
from analogtrain.nn import AnalogConv2d, AnalogLinear

# float32 results of the same products summed in a different order
ATOL32 = 1e-5


def perfect_config(algorithm=None, **kwargs):
    return at.AnalogConfig(algorithm=algorithm or DigitalSGD(), device=SoftBounds(tau=2.0, dw_min=1e-4),
                           io=at.IO.perfect(), **kwargs)


def test_linear_matches_f_linear_forward_and_input_gradient():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(5, 7, generator=gen) * 0.3
    b = torch.randn(5, generator=gen)
    for algorithm in (DigitalSGD(), AnalogSGD()):
        layer = AnalogLinear(7, 5, config=perfect_config(algorithm), init_weight=w, init_bias=b)
        assert torch.allclose(layer.weight, w, atol=1e-7)  # AnalogSGD programs W exactly (inside the bounds)
        x = torch.randn(2, 3, 7, generator=gen, requires_grad=True)  # leading dims are kept
        y = layer(x)
        x_ref = x.detach().clone().requires_grad_(True)
        b_ref = b.clone().requires_grad_(True)
        y_ref = F.linear(x_ref, w, b_ref)
        assert y.shape == (2, 3, 5)
        assert torch.allclose(y, y_ref, atol=ATOL32)
        grad_out = torch.randn(2, 3, 5, generator=gen)
        y.backward(grad_out)
        y_ref.backward(grad_out)
        assert torch.allclose(x.grad, x_ref.grad, atol=ATOL32)
        assert torch.allclose(layer.bias.grad, b_ref.grad, atol=ATOL32)  # the digital bias: sum of d
        assert layer.weight.grad is None  # the weight is updated by pulses, not autograd
        assert len(layer._pending) == 1  # (x, d) recorded for the optimizer


@pytest.mark.parametrize("stride, padding, dilation", [(1, 0, 1), (2, 1, 1), (1, 2, 2)])
def test_conv2d_matches_f_conv2d_forward_and_input_gradient(stride, padding, dilation):
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(4, 3, 3, 3, generator=gen) * 0.2
    b = torch.randn(4, generator=gen)
    layer = AnalogConv2d(3, 4, 3, stride=stride, padding=padding, dilation=dilation,
                         config=perfect_config(), init_weight=w, init_bias=b)
    x = torch.randn(2, 3, 9, 8, generator=gen, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    y = layer(x)
    y_ref = F.conv2d(x_ref, w, b, stride=stride, padding=padding, dilation=dilation)
    assert y.shape == y_ref.shape
    assert torch.allclose(y, y_ref, atol=ATOL32)
    grad_out = torch.randn(y.shape, generator=gen)
    y.backward(grad_out)
    y_ref.backward(grad_out)
    assert torch.allclose(x.grad, x_ref.grad, atol=ATOL32)


def test_forward_uses_the_forward_periphery_and_backward_has_no_bound_management():
    io = at.IO(inp_bits=None, out_bits=None, out_noise=0.0)
    cfg = at.AnalogConfig(algorithm=DigitalSGD(), io=io)
    w = torch.full((3, 8), 5.0)  # y = 40 per output for x = 1, beyond out_bound 12
    layer = AnalogLinear(8, 3, bias=False, config=cfg, init_weight=w)
    x = torch.ones(1, 8, requires_grad=True)
    y = layer(x)
    assert torch.allclose(y, torch.full((1, 3), 40.0))  # recovered by iterative bound management
    y.backward(torch.ones(1, 3))
    assert torch.all(x.grad == 12.0)  # d W = 15 per input, clipped: no bound management backward


def test_noisy_forward_is_reproducible_from_the_seed():
    cfg = at.AnalogConfig(algorithm=DigitalSGD(), io=at.IO())
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(2))
    y1 = AnalogLinear(6, 3, config=cfg, seed=5)(x)
    y2 = AnalogLinear(6, 3, config=cfg, seed=5)(x)
    assert torch.equal(y1, y2)
    assert not torch.equal(y1, AnalogLinear(6, 3, config=cfg, seed=6)(x))


# ------------------------------------------------------------------------------ convert
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU())
        self.block = nn.Sequential(nn.Flatten(), nn.Linear(4 * 4 * 4, 16), nn.Tanh())
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        return self.fc(self.block(self.features(x)))


def analog_names(model):
    return sorted(n for n, m in model.named_modules() if isinstance(m, (AnalogLinear, AnalogConv2d)))


def test_convert_all_layers_keeps_the_function():
    torch.manual_seed(0)
    model = Net()
    analog = at.convert(model, perfect_config())
    assert analog_names(analog) == ["block.1", "fc", "features.0", "features.2"]
    assert isinstance(model.fc, nn.Linear)  # the original is untouched (a copy is converted)
    x = torch.randn(2, 1, 8, 8)
    assert torch.allclose(analog(x), model(x), atol=ATOL32)


def test_convert_chosen_layers_block_names_and_unknown_names():
    torch.manual_seed(0)
    model = Net()
    cfg = perfect_config()
    assert analog_names(at.convert(model, cfg, layers=["fc"])) == ["fc"]  # e.g. only the last layer
    assert analog_names(at.convert(model, cfg, layers=["features"])) == ["features.0", "features.2"]
    assert analog_names(at.convert(model, cfg, layers=["block", "fc"])) == ["block.1", "fc"]
    with pytest.raises(ValueError, match="not_there"):
        at.convert(model, cfg, layers=["not_there"])
    with pytest.raises(ValueError, match="features.1"):
        at.convert(model, cfg, layers=["features.1"])  # a ReLU: nothing to convert
    with pytest.raises(ValueError, match="config"):
        at.convert(model, "not a config")


def test_convert_gives_each_layer_its_own_seed():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    cfg = at.AnalogConfig(algorithm=AnalogSGD(), device=at.devices.get_preset("aihwkit_softbounds"),
                          io=at.IO.perfect())
    analog = at.convert(model, cfg)
    p0 = analog[0].arrays["W"].device.dw_min
    p1 = analog[1].arrays["W"].device.dw_min
    assert not torch.equal(p0, p1)  # independent device-to-device draws


def test_to_float64_runs_in_float64():
    torch.manual_seed(0)
    model = at.convert(Net(), at.AnalogConfig(algorithm=AnalogSGD(), io=at.IO()))
    model = model.to(torch.float64)
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    y = model(x)
    assert y.dtype == torch.float64
    y.sum().backward()
    opt = at.optim.AnalogSGD(model.parameters(), lr=0.01)
    opt.step()
    for layer in (model.fc, model.features[0]):
        assert layer.weight.dtype == torch.float64
        assert all(a.read().dtype == torch.float64 for a in layer.arrays.values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_converted_model_trains_on_cuda_and_stays_there():
    torch.manual_seed(0)
    cfg = at.AnalogConfig(algorithm=AnalogSGD(), io=at.IO(), engine="stochastic")
    model = at.convert(Net(), cfg).to("cuda")
    opt = at.optim.AnalogSGD(model.parameters(), lr=0.05)
    x = torch.randn(8, 1, 8, 8, device="cuda")
    target = torch.randint(0, 3, (8,), device="cuda")
    before = model.fc.arrays["W"].read().clone()
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(model(x), target).backward()
        opt.step()
    assert not torch.equal(before, model.fc.arrays["W"].read())
    for layer in (model.fc, model.block[1], model.features[0]):
        tensors = [layer.weight, layer.bias] + [a.state for a in layer.arrays.values()]
        tensors += [a.reference for a in layer.arrays.values()]
        assert all(t.device.type == "cuda" for t in tensors)
        assert layer.io_generator.device.type == "cuda"
        assert all(a.generator.device.type == "cuda" for a in layer.arrays.values())


def test_weight_mirror_follows_the_arrays_and_ignores_edits():
    """With Analog SGD the MVM weight is the ``weight`` mirror, refreshed in place whenever the
    array changed (any path, not only the optimizer) or the mirror itself was edited."""
    gen = torch.Generator().manual_seed(3)
    w = torch.randn(4, 6, generator=gen) * 0.2
    layer = AnalogLinear(6, 4, bias=False, config=perfect_config(AnalogSGD()), init_weight=w)
    x = torch.randn(3, 6, generator=gen)
    mirror = layer.weight
    torch.testing.assert_close(layer(x), x @ w.T, rtol=0, atol=ATOL32)
    # a direct pulse update of the array (outside the optimizer) is seen by the next forward
    layer.arrays["W"].update(torch.full((4, 6), 0.05))
    read = layer.arrays["W"].read()
    assert not torch.allclose(read, w, atol=1e-3)
    torch.testing.assert_close(layer(x), x @ read.T, rtol=0, atol=ATOL32)
    assert torch.equal(layer.weight, read) and layer.weight is mirror  # refreshed in place
    # programming replaces the state tensor: also seen
    layer.arrays["W"].program(torch.zeros(4, 6))
    assert torch.equal(layer(x), torch.zeros(3, 4))
    # an in-place edit of the mirror does not program the device: the next forward restores it
    with torch.no_grad():
        layer.weight.fill_(1.0)
    with pytest.warns(UserWarning, match="modified in place"):
        assert torch.equal(layer(x), torch.zeros(3, 4))
    assert torch.equal(layer.weight, torch.zeros(4, 6))
    # the read_into used for the refresh equals read()
    layer.arrays["W"].update(torch.full((4, 6), -0.02))
    out = torch.empty(4, 6)
    assert torch.equal(layer.arrays["W"].read_into(out), layer.arrays["W"].read())


def test_weight_mirror_survives_deepcopy_state_dict_and_inference_mode():
    """The in-place mirror stays consistent through copy.deepcopy, a state_dict round trip and
    torch.inference_mode (no stale weights, no in-place errors)."""
    import copy

    gen = torch.Generator().manual_seed(5)
    cfg = perfect_config(AnalogSGD(), engine="stochastic")
    net = at.convert(nn.Sequential(nn.Linear(5, 4), nn.Sigmoid(), nn.Linear(4, 3)), cfg)
    opt = at.optim.AnalogSGD(net.parameters(), lr=0.5)
    x = torch.rand(6, 5, generator=gen)
    for _ in range(3):
        opt.zero_grad()
        net(x).sum().backward()
        opt.step()
    twin = copy.deepcopy(net)
    assert torch.equal(twin(x), net(x))
    with torch.inference_mode():
        before = net(x)
    net[0].arrays["W"].update(torch.full((4, 5), 0.05))
    with torch.inference_mode():
        after = net(x)
    assert not torch.equal(before, after)  # the update is seen inside inference mode too
    assert torch.equal(net[0].weight, net[0].arrays["W"].read())
    fresh = at.convert(nn.Sequential(nn.Linear(5, 4), nn.Sigmoid(), nn.Linear(4, 3)), cfg)
    fresh.load_state_dict(net.state_dict())
    assert torch.equal(fresh[0].weight, net[0].weight) and torch.equal(fresh(x), net(x))
    assert not torch.equal(twin(x), net(x))  # the copy is independent of the original


# ---------------------------------------------------------------- weights in and out (issue 11)
@pytest.mark.parametrize("algorithm", ["AnalogSGD", "TikiTaka", "ResidualLearning", "DigitalSGD"])
def test_set_weights_programs_and_get_weights_reads_back(algorithm):
    """set_weights programs the effective weight (counted as programming writes, no pulses):
    get_weights returns it within float precision where it lies inside the bounds, clamped
    outside; the digital bias is set exactly; the torch layer's shape is accepted."""
    import analogtrain.algorithms as A

    dev = at.devices.SoftBounds(tau=0.6, dw_min=1e-3)
    cfg = at.AnalogConfig(algorithm=getattr(A, algorithm)(), device=dev, io=at.IO.perfect())
    layer = at.nn.AnalogLinear(5, 3, config=cfg)
    target = torch.linspace(-0.4, 0.4, 15).reshape(3, 5)
    achieved = layer.set_weights(target, bias=torch.tensor([1.0, 2.0, 3.0]))
    w, b = layer.get_weights()
    torch.testing.assert_close(w, achieved)
    torch.testing.assert_close(w, target, rtol=0, atol=1e-6)
    assert torch.equal(b, torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(layer(torch.eye(5)), target.T + b, rtol=0, atol=1e-6)  # the MVMs see it
    summary = layer.summary()
    assert all(p["total"] == 0 for p in summary["pulses"].values())
    if algorithm != "DigitalSGD":
        assert summary["programming_writes"]["W"] == 15
        clipped = layer.set_weights(torch.full((3, 5), 5.0))  # beyond the bound 0.6
        assert torch.allclose(clipped, torch.full((3, 5), 0.6), atol=1e-6)
    conv = at.nn.AnalogConv2d(2, 3, 2, config=cfg)
    conv.set_weights(torch.zeros(3, 2, 2, 2))
    with pytest.raises(ValueError, match="shape"):
        conv.set_weights(torch.zeros(3, 2))


def test_in_place_edit_of_weight_warns_and_is_discarded():
    cfg = at.AnalogConfig(device=at.devices.SoftBounds(tau=0.6), io=at.IO.perfect())
    layer = at.nn.AnalogLinear(4, 2, config=cfg)
    before, _ = layer.get_weights()
    x = torch.rand(3, 4)
    y = layer(x)
    with torch.no_grad():
        layer.weight.add_(1.0)
    with pytest.warns(UserWarning, match="modified in place"):
        y2 = layer(x)
    assert torch.equal(y, y2)
    assert torch.equal(layer.get_weights()[0], before)
    assert torch.equal(layer.weight.detach(), before)
