"""Convolutions (1-D/2-D/3-D, padding modes, "same", dilation, groups) and recurrent layers (RNN,
LSTM, GRU and cells): with a noise-free device and IO.perfect() they compute their torch
counterparts' forward, input gradient and (as the recorded rank-1 pairs sum_p d_p x_p^T) weight
gradient; each trains a small task; convert() reports what it left digital."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import analogtrain as at
from analogtrain.algorithms import AnalogSGD, DigitalSGD
from analogtrain.devices import SoftBounds
from analogtrain.nn import (
    AnalogConv1d,
    AnalogConv2d,
    AnalogConv3d,
    AnalogGRUCell,
    AnalogLinear,
    AnalogLSTM,
    AnalogLSTMCell,
    AnalogRNN,
    AnalogRNNCell,
)

# float32 results of the same products summed in a different order
ATOL32 = 2e-5


def perfect_config(algorithm=None):
    return at.AnalogConfig(algorithm=algorithm or DigitalSGD(), device=SoftBounds(tau=4.0, dw_min=1e-4),
                           io=at.IO.perfect())


def tiles(module):
    """Every analog tile of a module: (name, layer) of the modules holding one."""
    return [(n, m) for n, m in module.named_modules() if hasattr(m, "tile")]


def recorded_weight_gradient(layer) -> torch.Tensor:
    """sum over the recorded (x, d) pairs of d^T x: what the analog update receives."""
    return sum(d.T @ x for x, d in layer._pending)


CONV = {1: (nn.Conv1d, AnalogConv1d, F.conv1d), 2: (nn.Conv2d, AnalogConv2d, F.conv2d),
        3: (nn.Conv3d, AnalogConv3d, F.conv3d)}
CONV_CASES = [
    # (N, kernel, stride, padding, dilation, groups, padding_mode)
    (1, 3, 1, 0, 1, 1, "zeros"),
    (1, 4, 1, "same", 1, 1, "zeros"),  # even kernel: torch puts the extra row right
    (1, 3, 2, 2, 2, 3, "reflect"),
    (2, 3, 2, 1, 1, 1, "zeros"),
    (2, (3, 2), 1, "same", (2, 1), 1, "replicate"),
    (2, 3, 1, "valid", 1, 3, "zeros"),
    (2, 2, 1, 1, 1, 3, "circular"),
    (3, 2, 1, 1, 1, 1, "zeros"),
    (3, (2, 3, 1), (1, 2, 1), "valid", 1, 3, "zeros"),
    (3, 3, 1, "same", 1, 1, "zeros"),
]


@pytest.mark.parametrize("n, kernel, stride, padding, dilation, groups, mode", CONV_CASES)
def test_conv_matches_torch_forward_input_and_weight_gradient(n, kernel, stride, padding, dilation, groups, mode):
    torch_cls, analog_cls, _ = CONV[n]
    torch.manual_seed(n * 100 + groups)
    ref = torch_cls(6, 9, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups,
                    padding_mode=mode)
    layer = analog_cls(6, 9, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups,
                       padding_mode=mode, config=perfect_config(), init_weight=ref.weight.data,
                       init_bias=ref.bias.data)
    spatial = {1: (11,), 2: (9, 8), 3: (6, 7, 5)}[n]
    x = torch.randn(2, 6, *spatial, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    y, y_ref = layer(x), ref(x_ref)
    assert y.shape == y_ref.shape
    assert torch.allclose(y, y_ref, atol=ATOL32)
    grad_out = torch.randn(y.shape)
    y.backward(grad_out)
    y_ref.backward(grad_out)
    assert torch.allclose(x.grad, x_ref.grad, atol=ATOL32)
    w_grad = ref.weight.grad.reshape(9, -1)
    found = tiles(layer)
    assert len(found) == groups  # one tile per group
    rows = 9 // groups
    for g, (_, tile_layer) in enumerate(found):
        assert torch.allclose(recorded_weight_gradient(tile_layer), w_grad[g * rows:(g + 1) * rows], atol=1e-4)
        assert torch.allclose(tile_layer.bias.grad, ref.bias.grad[g * rows:(g + 1) * rows], atol=ATOL32)
    weight, bias = layer.get_weights()
    assert torch.allclose(weight, ref.weight.data.reshape(9, -1), atol=1e-6)
    assert torch.allclose(bias, ref.bias.data)


def test_conv_unbatched_input_and_bad_arguments():
    torch.manual_seed(0)
    ref = nn.Conv1d(2, 3, 3, padding=1)
    layer = AnalogConv1d(2, 3, 3, padding=1, config=perfect_config(), init_weight=ref.weight.data,
                         init_bias=ref.bias.data)
    x = torch.randn(2, 10)
    assert torch.allclose(layer(x), ref(x), atol=ATOL32)
    with pytest.raises(ValueError, match="groups"):
        AnalogConv2d(4, 6, 3, groups=4, config=perfect_config())
    with pytest.raises(ValueError, match="same"):
        AnalogConv2d(2, 2, 3, stride=2, padding="same", config=perfect_config())
    with pytest.raises(ValueError, match="padding_mode"):
        AnalogConv1d(2, 2, 3, padding_mode="mirror", config=perfect_config())
    with pytest.raises(ValueError, match="kernel_size"):
        AnalogConv3d(2, 2, (3, 3), config=perfect_config())
    with pytest.raises(ValueError, match="input channels"):
        layer(torch.randn(1, 5, 10))
    with pytest.raises(ValueError, match="smaller than"):
        AnalogConv1d(2, 2, 5, config=perfect_config())(torch.randn(1, 2, 3))


def test_grouped_conv_set_weights_state_dict_and_pulses():
    dev = SoftBounds(tau=1.0, dw_min=0.01)
    cfg = at.AnalogConfig(algorithm=AnalogSGD(), device=dev, io=at.IO.perfect())
    layer = AnalogConv2d(4, 4, 3, padding=1, groups=2, config=cfg, seed=3)
    w = torch.full((4, 2, 3, 3), 0.2)
    achieved = layer.set_weights(w, torch.zeros(4))
    assert achieved.shape == (4, 18)
    assert torch.allclose(layer.get_weights()[0], torch.full((4, 18), 0.2), atol=0.011)  # within dw_min
    assert set(layer.arrays) == {"g0.W", "g1.W"}
    opt = at.optim.AnalogSGD(layer.parameters(), lr=0.1)
    layer(torch.randn(2, 4, 5, 5)).square().sum().backward()
    opt.step()
    table = {n: m.summary()["pulses"]["W"]["total"] for n, m in tiles(layer)}
    assert set(table) == {"group_layers.0", "group_layers.1"} and all(v > 0 for v in table.values())
    copy = AnalogConv2d(4, 4, 3, padding=1, groups=2, config=cfg, seed=9)
    copy.load_state_dict(layer.state_dict())
    x = torch.randn(1, 4, 5, 5)
    assert torch.equal(copy(x), layer(x))


def torch_recurrent(kind, **kw):
    return {"RNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}[kind](**kw)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("num_layers, bidirectional, batch_first", [(1, False, False), (2, True, True)])
def test_recurrent_matches_torch(kind, num_layers, bidirectional, batch_first):
    torch.manual_seed(len(kind) + num_layers)
    kw = {"input_size": 5, "hidden_size": 4, "num_layers": num_layers, "bidirectional": bidirectional,
              "batch_first": batch_first}
    ref = torch_recurrent(kind, **kw)
    analog = at.convert(nn.Sequential(ref), perfect_config())[0]
    assert type(analog).__name__ == f"Analog{kind}"
    x = torch.randn(3, 7, 5, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    h0 = torch.randn(num_layers * (2 if bidirectional else 1), 3 if batch_first else 7, 4)
    hx = (h0, torch.randn_like(h0)) if kind == "LSTM" else h0
    out, final = analog(x, hx)
    out_ref, final_ref = ref(x_ref, hx)
    assert torch.allclose(out, out_ref, atol=ATOL32)
    for a, b in zip(final if kind == "LSTM" else [final], final_ref if kind == "LSTM" else [final_ref]):
        assert torch.allclose(a, b, atol=ATOL32)
    loss_grad = torch.randn(out.shape)
    (out * loss_grad).sum().backward()
    (out_ref * loss_grad).sum().backward()
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-4)
    for name, cell in analog.cells.items():
        k, suffix = name[1:].partition("_")[0], "_reverse" if name.endswith("_reverse") else ""
        for part in ("ih", "hh"):
            want = getattr(ref, f"weight_{part}_l{k}{suffix}").grad
            tile = getattr(cell, f"weight_{part}")
            assert torch.allclose(recorded_weight_gradient(tile), want, atol=1e-4), (name, part)
            assert torch.allclose(tile.bias.grad, getattr(ref, f"bias_{part}_l{k}{suffix}").grad, atol=1e-4)


@pytest.mark.parametrize("cell_cls, ref_cls", [(AnalogRNNCell, nn.RNNCell), (AnalogLSTMCell, nn.LSTMCell),
                                               (AnalogGRUCell, nn.GRUCell)])
def test_cells_match_torch_batched_and_unbatched(cell_cls, ref_cls):
    torch.manual_seed(1)
    ref = ref_cls(3, 5)
    analog = at.convert(nn.Sequential(ref), perfect_config())[0]
    assert isinstance(analog, cell_cls)
    for shape in ((4, 3), (3,)):
        x = torch.randn(shape)
        got, want = analog(x), ref(x)
        for a, b in zip(got if isinstance(got, tuple) else [got], want if isinstance(want, tuple) else [want]):
            assert a.shape == b.shape and torch.allclose(a, b, atol=ATOL32)


def test_unbatched_sequence_and_default_init_range():
    torch.manual_seed(0)
    ref = nn.GRU(3, 4)
    analog = at.convert(nn.Sequential(ref), perfect_config())[0]
    x = torch.randn(6, 3)
    out, h = analog(x)
    out_ref, h_ref = ref(x)
    assert out.shape == (6, 4) and h.shape == (1, 4)
    assert torch.allclose(out, out_ref, atol=ATOL32) and torch.allclose(h, h_ref, atol=ATOL32)
    fresh = AnalogLSTM(3, 16, config=perfect_config())
    w = fresh.cells["l0"].weight_hh.get_weights()[0]
    assert w.shape == (64, 16) and float(w.abs().max()) <= 0.25 + 1e-6  # torch's init: U(+-1/sqrt(H))
    with pytest.raises(ValueError, match="input_size"):
        analog(torch.randn(6, 2, 5))
    with pytest.raises(ValueError, match="nonlinearity"):
        AnalogRNN(3, 4, nonlinearity="sigmoid")


def _train(model, make_batch, steps=150, lr=0.05):
    opt = at.optim.AnalogSGD(model.parameters(), lr=lr)
    losses = []
    for step in range(steps):
        x, y = make_batch(step)
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return sum(losses[:10]) / 10, sum(losses[-10:]) / 10


def analog_sgd_config():
    return at.AnalogConfig(algorithm=AnalogSGD(), device=SoftBounds(tau=1.0, dw_min=0.002), io=at.IO.perfect())


class SeqHead(nn.Module):
    def __init__(self, rnn, hidden):
        super().__init__()
        self.rnn, self.head = rnn, nn.Linear(hidden, 1)

    def forward(self, x):
        return self.head(self.rnn(x)[0][-1])


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_recurrent_layers_train_a_sequence_sum(kind):
    """Regress the mean of a length-6 sequence from the last hidden state: loss falls 3-fold."""
    torch.manual_seed(0)
    model = at.convert(SeqHead(torch_recurrent(kind, input_size=1, hidden_size=8), 8), analog_sgd_config(), seed=1)
    gen = torch.Generator().manual_seed(0)

    def batch(step):
        x = torch.rand(6, 16, 1, generator=gen) * 2 - 1
        return x, x.mean(0)

    first, last = _train(model, batch, steps=300, lr=0.1)
    assert last < first / 3, (first, last)
    assert all(not m._pending for _, m in tiles(model))  # nothing left recorded


@pytest.mark.parametrize("n, groups", [(1, 1), (3, 1), (2, 2)])
def test_convolutions_train_a_filter(n, groups):
    """Learn a fixed random convolution (teacher) from its outputs: loss falls 5-fold."""
    torch_cls, analog_cls, _conv = CONV[n]
    torch.manual_seed(n)
    teacher = torch_cls(2, 2, 3, padding="same", groups=groups)
    model = analog_cls(2, 2, 3, padding="same", groups=groups, config=analog_sgd_config(), seed=2)
    gen = torch.Generator().manual_seed(1)
    spatial = {1: (12,), 2: (6, 6), 3: (4, 4, 4)}[n]

    def batch(step):
        x = torch.randn(8, 2, *spatial, generator=gen)
        with torch.no_grad():
            return x, teacher(x)

    first, last = _train(model, batch, steps=200, lr=0.05)
    assert last < first / 5, (first, last)


class Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.conv = nn.Conv1d(4, 4, 3, padding="same")
        self.bn = nn.BatchNorm1d(4)
        self.up = nn.ConvTranspose1d(4, 4, 2)
        self.attn = nn.MultiheadAttention(4, 1)
        self.lstm = nn.LSTM(4, 4)
        self.fc = nn.Linear(4, 2)


def test_convert_reports_every_module_left_digital():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, report = at.convert(Mixed(), perfect_config(), return_report=True)
    converted = {n: a for n, _, a in report.converted}
    assert converted == {"conv": "AnalogConv1d", "lstm": "AnalogLSTM", "fc": "AnalogLinear"}
    left = {n: why for n, _, why in report.left_digital}
    assert set(left) == {"emb", "bn", "up", "attn", "attn.out_proj"}
    assert "lookup" in left["emb"] and "normalisation" in left["bn"] and "ConvTranspose" in left["up"]
    assert "MultiheadAttention" in left["attn.out_proj"]
    assert isinstance(model.attn.out_proj, nn.Linear) and not isinstance(model.attn.out_proj, AnalogLinear)
    text = " ".join(str(w.message) for w in caught)
    assert "up (ConvTranspose1d" in text and "attn.out_proj" in text and "emb" not in text
    assert "left digital 5" in str(report)
    _, chosen = at.convert(Mixed(), perfect_config(), layers=["fc"], return_report=True)
    assert "not selected" in {n: w for n, _, w in chosen.left_digital}["conv"]
    with pytest.raises(ValueError, match="MultiheadAttention"):
        at.convert(Mixed(), perfect_config(), layers=["attn.out_proj"])


def test_convert_a_bare_layer_and_an_lstm_with_projection():
    analog = at.convert(nn.Linear(3, 2), perfect_config())
    assert isinstance(analog, AnalogLinear)
    with pytest.warns(UserWarning, match="proj_size"):
        model = at.convert(nn.Sequential(nn.LSTM(3, 4, proj_size=2)), perfect_config())
    assert isinstance(model[0], nn.LSTM)


def test_lstm_state_dict_round_trip_and_deepcopy_keep_the_analog_state():
    import copy

    cfg = at.AnalogConfig(algorithm=AnalogSGD(), device=at.devices.get_preset("aihwkit_softbounds"),
                          io=at.IO.perfect())
    model = AnalogLSTM(3, 4, num_layers=2, config=cfg, seed=5)
    opt = at.optim.AnalogSGD(model.parameters(), lr=0.1)
    x = torch.randn(5, 2, 3)
    model(x)[0].sum().backward()
    opt.step()
    other = AnalogLSTM(3, 4, num_layers=2, config=cfg, seed=6)
    other.load_state_dict(model.state_dict())
    twin = copy.deepcopy(model)
    for m in (other, twin):
        assert torch.equal(m(x)[0], model(x)[0])
        for name, cell in m.cells.items():
            want = model.cells[name].weight_hh.arrays["W"].device.dw_min
            assert torch.equal(cell.weight_hh.arrays["W"].device.dw_min, want)  # device draws travel too
    assert {n for n, _ in tiles(model)} == {f"cells.l{k}.weight_{p}" for k in (0, 1) for p in ("ih", "hh")}
