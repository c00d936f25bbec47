"""The AnalogSGD optimizer: torch.optim.SGD semantics (param groups, schedulers, zero_grad),
analog layers stepped through their algorithm, and bit-for-bit resumption from state_dict."""

import copy
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import analogtrain as at
from analogtrain.algorithms import AnalogSGD, DigitalSGD
from analogtrain.devices import Ideal, SoftBounds, get_preset
from analogtrain.nn import AnalogConv2d, AnalogLinear

ATOL32 = 1e-6


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.fc1 = nn.Linear(3 * 5 * 5, 8)
        self.fc2 = nn.Linear(8, 4)

    def forward(self, x):
        h = torch.tanh(self.conv(x)).flatten(1)
        return self.fc2(torch.sigmoid(self.fc1(h)))


def batches(n, seed=0, batch=6):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch, 2, 5, 5, generator=gen), torch.randint(0, 4, (batch,), generator=gen))
            for _ in range(n)]


def train(model, opt, data, scheduler=None):
    losses = []
    for x, y in data:
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(loss.item())
    return losses


def assert_same_parameters(analog, digital, atol=ATOL32):
    for (name_a, p_a), (name_d, p_d) in zip(analog.named_parameters(), digital.named_parameters(), strict=True):
        assert name_a == name_d
        # AnalogConv2d keeps its weight as the (out, in * kh * kw) matrix of the array
        assert torch.allclose(p_a.reshape(p_d.shape), p_d, atol=atol), name_a


def perfect(algorithm, device=None):
    return at.AnalogConfig(algorithm=algorithm, device=device or SoftBounds(tau=2.0), io=at.IO.perfect())


@pytest.mark.parametrize("algorithm, device", [(DigitalSGD(), None), (AnalogSGD(), Ideal(dw_min=1e-3))],
                         ids=["digital_sgd", "analog_sgd_ideal_device"])
def test_steps_equal_torch_sgd(algorithm, device):
    """Digital SGD, and Analog SGD on an ideal device (q = 1, expected engine), with perfect IO
    are SGD: Linear and Conv2d weights (with bias) follow torch.optim.SGD to float precision."""
    torch.manual_seed(0)
    digital = ConvNet()
    analog = at.convert(digital, perfect(algorithm, device))
    assert isinstance(analog.conv, AnalogConv2d) and isinstance(analog.fc2, AnalogLinear)
    opt_d = torch.optim.SGD(digital.parameters(), lr=0.1)
    opt_a = at.optim.AnalogSGD(analog.parameters(), lr=0.1)
    data = batches(4)
    train(digital, opt_d, data[:1])
    train(analog, opt_a, data[:1])
    assert_same_parameters(analog, digital)  # one step
    train(digital, opt_d, data[1:])
    train(analog, opt_a, data[1:])
    assert_same_parameters(analog, digital, atol=1e-5)


def test_param_groups_and_lr_scheduler_reach_the_algorithm():
    torch.manual_seed(1)
    digital = ConvNet()
    analog = at.convert(digital, perfect(DigitalSGD()))

    def groups(m):
        return [{"params": list(m.conv.parameters()) + list(m.fc1.parameters()), "lr": 0.2},
                {"params": m.fc2.parameters(), "lr": 0.02}]

    opt_d = torch.optim.SGD(groups(digital), lr=0.1, momentum=0.5)
    opt_a = at.optim.AnalogSGD(groups(analog), lr=0.1, momentum=0.5)  # momentum: digital parameters only
    sched_d = torch.optim.lr_scheduler.StepLR(opt_d, step_size=1, gamma=0.5)
    sched_a = torch.optim.lr_scheduler.StepLR(opt_a, step_size=1, gamma=0.5)
    data = batches(3, seed=2)
    # the analog weights get plain SGD with their group's current lr (momentum applies to the digital
    # biases only): after each step the digital model's weights are reset to that expectation
    lrs = []
    for x, y in data:
        lrs.append([g["lr"] for g in opt_a.param_groups])
        w_before = {n: getattr(digital, n).weight.detach().clone() for n in ("conv", "fc1", "fc2")}
        train(digital, opt_d, [(x, y)], sched_d)
        grads = {n: getattr(digital, n).weight.grad.clone() for n in ("conv", "fc1", "fc2")}
        train(analog, opt_a, [(x, y)], sched_a)
        for (n, lr) in (("conv", lrs[-1][0]), ("fc1", lrs[-1][0]), ("fc2", lrs[-1][1])):
            expected = w_before[n] - lr * grads[n]
            assert torch.allclose(getattr(analog, n).weight.reshape(expected.shape), expected, atol=ATOL32)
            with torch.no_grad():
                getattr(digital, n).weight.copy_(expected)  # keep both runs on the same weights
        for n in ("conv", "fc1", "fc2"):
            assert torch.allclose(getattr(analog, n).bias, getattr(digital, n).bias, atol=ATOL32)
    assert lrs == [[0.2, 0.02], [0.1, 0.01], [0.05, 0.005]]


def test_zero_grad_clears_pending_updates():
    torch.manual_seed(3)
    model = at.convert(ConvNet(), perfect(AnalogSGD()))
    opt = at.optim.AnalogSGD(model.parameters(), lr=0.1)
    before = {n: m.arrays["W"].read().clone() for n, m in model.named_modules() if hasattr(m, "arrays")}
    x, y = batches(1)[0]
    F.cross_entropy(model(x), y).backward()
    assert all(len(m._pending) == 1 for m in (model.conv, model.fc1, model.fc2))
    opt.zero_grad()
    assert all(len(m._pending) == 0 for m in (model.conv, model.fc1, model.fc2))
    opt.step()
    for n, w in before.items():
        assert torch.equal(model.get_submodule(n).arrays["W"].read(), w)
    assert model.fc2.summary()["pulses"]["W"]["total"] == 0


def test_two_backwards_before_a_step_accumulate():
    """Gradient accumulation: two backward passes then one step == one step on the summed gradient."""
    torch.manual_seed(4)
    digital = ConvNet()
    analog = at.convert(digital, perfect(DigitalSGD()))
    opt_d = torch.optim.SGD(digital.parameters(), lr=0.1)
    opt_a = at.optim.AnalogSGD(analog.parameters(), lr=0.1)
    data = batches(2, seed=5)
    for model, opt in ((digital, opt_d), (analog, opt_a)):
        opt.zero_grad()
        for x, y in data:
            F.cross_entropy(model(x), y).backward()
        opt.step()
    assert_same_parameters(analog, digital)


def test_optimizer_validation_names_the_field():
    params = [nn.Parameter(torch.zeros(2))]
    for kwargs, field in (({"lr": 0.0}, "lr"), ({"lr": 0.1, "momentum": 1.0}, "momentum"),
                          ({"lr": 0.1, "weight_decay": -1.0}, "weight_decay")):
        with pytest.raises(ValueError, match=field):
            at.optim.AnalogSGD(params, **kwargs)


# --------------------------------------------------------------------- state_dict round trip
RESUME_CASES = {
    "expected_granularity_noise": {"engine": "expected", "engine_kwargs": {"granularity_noise": True}},
    "stochastic": {"engine": "stochastic"},
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_state_dict_resume_is_bit_for_bit(case):
    """Save after 3 steps, load into a fresh model converted with another seed, continue: identical to
    uninterrupted training (device state, per-element spreads, pulse RNG, IO noise RNG, counters)."""
    cfg = at.AnalogConfig(algorithm=AnalogSGD(), device=get_preset("aihwkit_softbounds"), io=at.IO(),
                          **RESUME_CASES[case])
    torch.manual_seed(6)
    base = ConvNet()
    data = batches(6, seed=7)

    model = at.convert(base, cfg, seed=0)
    opt = at.optim.AnalogSGD(model.parameters(), lr=0.1, momentum=0.9)
    train(model, opt, data[:3])
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    losses = train(model, opt, data[3:])

    buffer.seek(0)
    saved = torch.load(buffer)
    resumed = at.convert(base, cfg, seed=99)
    resumed.load_state_dict(saved["model"])
    opt2 = at.optim.AnalogSGD(resumed.parameters(), lr=0.1, momentum=0.9)
    opt2.load_state_dict(saved["opt"])
    losses2 = train(resumed, opt2, data[3:])

    assert losses == losses2
    for name in ("conv", "fc1", "fc2"):
        a, b = model.get_submodule(name), resumed.get_submodule(name)
        assert torch.equal(a.arrays["W"].state, b.arrays["W"].state)
        assert torch.equal(a.arrays["W"].device.dw_min, b.arrays["W"].device.dw_min)
        assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
        assert a.summary() == b.summary()
    assert model.fc2.summary()["pulses"]["W"]["total"] > 0
    x = data[0][0]
    assert torch.equal(model(x), resumed(x))  # IO noise generators continue identically too


def test_resume_differs_without_the_rng_state():
    """Control for the test above: a fresh model with the same weights but not the saved state
    follows a different trajectory, so the bit-for-bit equality is not vacuous."""
    cfg = at.AnalogConfig(algorithm=AnalogSGD(), device=get_preset("aihwkit_softbounds"), io=at.IO(),
                          engine="stochastic")
    torch.manual_seed(6)
    base = ConvNet()
    data = batches(2, seed=7)
    m1, m2 = at.convert(base, cfg, seed=0), at.convert(base, cfg, seed=99)
    train(m1, at.optim.AnalogSGD(m1.parameters(), lr=0.1), data)
    train(m2, at.optim.AnalogSGD(m2.parameters(), lr=0.1), data)
    assert not torch.equal(m1.fc1.arrays["W"].state, m2.fc1.arrays["W"].state)


def test_deepcopy_of_a_converted_model_trains_identically():
    cfg = at.AnalogConfig(algorithm=AnalogSGD(), device=get_preset("aihwkit_softbounds"), io=at.IO(),
                          engine="stochastic")
    torch.manual_seed(8)
    m1 = at.convert(ConvNet(), cfg)
    m2 = copy.deepcopy(m1)
    data = batches(2, seed=9)
    assert train(m1, at.optim.AnalogSGD(m1.parameters(), lr=0.1), data) == \
        train(m2, at.optim.AnalogSGD(m2.parameters(), lr=0.1), data)
    assert m2.fc1.weight.analog_layer is m2.fc1  # the copy's parameters point to the copy's layers


def test_trains_through_the_paper_periphery_and_stochastic_pulses():
    """End to end with every non-ideality of the default path on: IO.paper() forward and backward
    (7/9-bit converters, output noise, noise and bound management) and stochastic pulse trains."""
    torch.manual_seed(10)
    cfg = at.AnalogConfig(algorithm=AnalogSGD(), device=SoftBounds(tau=1.0, dw_min=1e-3), io=at.IO.paper(),
                          engine="stochastic")
    layer = AnalogLinear(8, 3, bias=False, config=cfg, seed=1)
    target = torch.randn(3, 8) * 0.3
    opt = at.optim.AnalogSGD(layer.parameters(), lr=0.1)
    x_all = torch.randn(80, 16, 8)  # the loss plateaus after ~60 steps at ~4 % of its start
    losses = []
    for x in x_all:
        opt.zero_grad()
        loss = 0.5 * ((layer(x) - x @ target.T) ** 2).sum(1).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-20:]) / 20 < 0.1 * sum(losses[:5]) / 5
    assert layer.summary()["pulses"]["W"]["total"] > 0


# ---------------------------------------------------------------- AnalogOptimizer (issue 11)
def mlp_task(seed=0, n=64):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=gen)
    y = (x[:, :3] @ torch.randn(3, 4, generator=gen)).argmax(1)
    return x, y


def mlp(config, seed=0):
    torch.manual_seed(seed)
    return at.convert(nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 4)), config, seed=seed)


def pending(model):
    return sum(len(m._pending) for m in model.modules() if hasattr(m, "_pending"))


def test_wrapped_sgd_equals_analog_sgd_step_by_step():
    """AnalogOptimizer(torch.optim.SGD) steps digital parameters as torch SGD and analog layers
    through their algorithm with the group's lr: identical to AnalogSGD (DigitalSGD algorithm,
    Ideal device, perfect IO), also under an LR scheduler, and after a state_dict round trip."""
    cfg = perfect(DigitalSGD(), Ideal())
    x, y = mlp_task()
    a, b = mlp(cfg), mlp(cfg)
    opt_a = at.optim.AnalogOptimizer(torch.optim.SGD, a.parameters(), lr=0.1)
    opt_b = at.optim.AnalogSGD(b.parameters(), lr=0.1)
    sch_a = torch.optim.lr_scheduler.StepLR(opt_a, 3, 0.5)
    sch_b = torch.optim.lr_scheduler.StepLR(opt_b, 3, 0.5)
    for k in range(8):
        for model, opt, sch in ((a, opt_a, sch_a), (b, opt_b, sch_b)):
            opt.zero_grad()
            F.cross_entropy(model(x[8 * k:8 * k + 8]), y[8 * k:8 * k + 8]).backward()
            opt.step()
            sch.step()
        if k == 4:
            opt_a.load_state_dict(copy.deepcopy(opt_a.state_dict()))
    assert opt_a.param_groups[0]["lr"] == opt_b.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 ** 2)
    assert_same_parameters(a, b)


def test_adam_through_the_wrapper_trains_analog_layers_and_leaves_nothing_pending():
    """Adam via AnalogOptimizer trains a converted MLP on an analog device (loss falls like
    AnalogSGD's at a comparable lr: both below 0.6 of the initial loss after 100 steps), the
    analog arrays receive pulses, and no recorded activations are left on any layer."""
    cfg = at.AnalogConfig(algorithm=AnalogSGD(), device=SoftBounds(tau=1.0, dw_min=1e-3), io=at.IO.perfect())
    x, y = mlp_task(1)
    results = {}
    for name in ("adam", "sgd"):
        model = mlp(cfg, seed=2)
        opt = (at.optim.AnalogOptimizer(torch.optim.Adam, model.parameters(), lr=0.2) if name == "adam"
               else at.optim.AnalogSGD(model.parameters(), lr=0.2))
        first = F.cross_entropy(model(x), y).item()
        for k in range(100):
            i = (k * 8) % 64
            opt.zero_grad()
            F.cross_entropy(model(x[i:i + 8]), y[i:i + 8]).backward()
            opt.step()
        with torch.no_grad():
            results[name] = F.cross_entropy(model(x), y).item() / first
        assert pending(model) == 0
        assert all(m.summary()["pulses"]["W"]["total"] > 0 for m in model.modules() if hasattr(m, "tile"))
    assert results["adam"] < 0.6 and results["sgd"] < 0.6, results


def test_plain_torch_optimizer_on_a_converted_model_raises_and_clears_pending():
    model = mlp(perfect(AnalogSGD()))
    x, y = mlp_task()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(100):
        opt.zero_grad()
        F.cross_entropy(model(x[:8]), y[:8]).backward()
        with pytest.raises(RuntimeError, match=r"AnalogOptimizer\(torch.optim.Adam"):
            opt.step()
    assert pending(model) == 0
    # a torch optimizer over digital parameters only is untouched by the guard
    digital = nn.Linear(3, 2)
    torch.optim.Adam(digital.parameters()).step()


def test_analog_optimizer_validates_its_arguments():
    model = mlp(perfect(AnalogSGD()))
    with pytest.raises(ValueError, match="optimizer_class"):
        at.optim.AnalogOptimizer("adam", model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="optimizer_class"):
        at.optim.AnalogOptimizer(at.optim.AnalogSGD, model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="lr must be > 0"):
        at.optim.AnalogOptimizer(torch.optim.SGD, model.parameters(), lr=0.0)
