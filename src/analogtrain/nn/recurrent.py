"""Analog recurrent layers: RNN, LSTM and GRU with torch's gates, built from AnalogLinear.

Each cell has two analog tiles, ``weight_ih`` (input -> gates) and ``weight_hh`` (hidden ->
gates), with digital biases b_ih, b_hh, as aihwkit's AnalogRNN / AnalogLSTM / AnalogGRU and with
torch's equations and gate order (so ``convert`` copies ``weight_ih_l{k}`` etc. row for row):

- RNN:  h' = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or relu
- LSTM: i, f, g, o = chunks of (W_ih x + b_ih + W_hh h + b_hh); c' = s(f) c + s(i) tanh(g);
  h' = s(o) tanh(c')
- GRU:  r, z, n_i / r_h, z_h, n_h = chunks of W_ih x + b_ih / W_hh h + b_hh;
  r = s(r_i + r_h), z = s(z_i + z_h), n = tanh(n_i + r n_h), h' = (1 - z) n + z h

Backward through time records one (x, d) pair per step on ``weight_hh`` and the whole sequence
on ``weight_ih`` (its MVM runs once over all steps); the optimizer's step applies them all as
rank-1 updates, i.e. the BPTT gradient sum_t d_t x_t^T is what the analog update receives.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..config import AnalogConfig
from .layers import AnalogLinear

GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}


class _AnalogCell(nn.Module):
    """The two tiles of one recurrent cell; ``init`` = (w_ih, w_hh, b_ih, b_hh) or None (torch's
    default: every weight and bias uniform in +-1/sqrt(hidden_size)). Subclasses define
    ``cell(gates_x, state)``: one step from the input projection gates_x = W_ih x + b_ih."""

    kind = ""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, config: AnalogConfig | None = None,
                 seed: int = 0, init: tuple | None = None):
        super().__init__()
        for name, v in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not (isinstance(v, int) and v > 0):
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        self.input_size, self.hidden_size = input_size, hidden_size
        rows = GATES[self.kind] * hidden_size
        if init is None:
            gen = torch.Generator().manual_seed(int(seed) + 3)
            bound = 1.0 / math.sqrt(hidden_size)

            def draw(*shape):
                return (torch.rand(shape, generator=gen) * 2 - 1) * bound

            init = (draw(rows, input_size), draw(rows, hidden_size), draw(rows), draw(rows))
        w_ih, w_hh, b_ih, b_hh = init
        self.weight_ih = AnalogLinear(input_size, rows, bias=bias, config=config, seed=seed, init_weight=w_ih,
                                      init_bias=b_ih if bias else None)
        self.weight_hh = AnalogLinear(hidden_size, rows, bias=bias, config=config, seed=seed + 1, init_weight=w_hh,
                                      init_bias=b_hh if bias else None)

    def forward(self, x: torch.Tensor, state=None):
        """One step, as torch's RNNCell / LSTMCell / GRUCell (state None: zeros)."""
        batched = x.dim() == 2
        if not batched:
            x = x.unsqueeze(0)
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_size)
            state = (zeros, zeros) if self.kind == "LSTM" else zeros
        elif not batched:
            state = tuple(s.unsqueeze(0) for s in state) if self.kind == "LSTM" else state.unsqueeze(0)
        out = self.cell(self.weight_ih(x), state)
        if not batched:
            out = tuple(s.squeeze(0) for s in out) if self.kind == "LSTM" else out.squeeze(0)
        return out


class AnalogRNNCell(_AnalogCell):
    """h' = act(W_ih x + b_ih + W_hh h + b_hh), act = ``nonlinearity`` ('tanh' or 'relu')."""

    kind = "RNN"

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity: str = "tanh", config=None, seed=0, init=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias, config, seed, init)
        self.nonlinearity = nonlinearity

    def cell(self, gates_x, h):
        pre = gates_x + self.weight_hh(h)
        return torch.tanh(pre) if self.nonlinearity == "tanh" else torch.relu(pre)


class AnalogLSTMCell(_AnalogCell):
    """torch's LSTMCell (gates i, f, g, o) on two analog tiles."""

    kind = "LSTM"

    def cell(self, gates_x, state):
        h, c = state
        i, f, g, o = (gates_x + self.weight_hh(h)).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class AnalogGRUCell(_AnalogCell):
    """torch's GRUCell (gates r, z, n) on two analog tiles."""

    kind = "GRU"

    def cell(self, gates_x, h):
        r_i, z_i, n_i = gates_x.chunk(3, dim=-1)
        r_h, z_h, n_h = self.weight_hh(h).chunk(3, dim=-1)
        r = torch.sigmoid(r_i + r_h)
        z = torch.sigmoid(z_i + z_h)
        n = torch.tanh(n_i + r * n_h)
        return n + z * (h - n)


class _AnalogRecurrent(nn.Module):
    """Stacked (and optionally bidirectional) recurrent layers with torch's interface:
    input (T, B, I) (or (B, T, I) with ``batch_first``, or unbatched (T, I)); returns the
    output (T, B, D H) and h_n (D num_layers, B, H) (LSTM: (h_n, c_n)); ``dropout`` between
    layers in training. Cells are ``cells[f"l{k}"]`` and ``cells[f"l{k}_reverse"]``."""

    cell_class: type = _AnalogCell

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 config: AnalogConfig | None = None, seed: int = 0, init: dict | None = None, **cell_kwargs):
        super().__init__()
        if not (isinstance(num_layers, int) and num_layers >= 1):
            raise ValueError(f"num_layers must be an integer >= 1, got {num_layers!r}")
        if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
            raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout, self.bidirectional = bias, batch_first, float(dropout), bidirectional
        self.kind = self.cell_class.kind
        directions = ["", "_reverse"] if bidirectional else [""]
        cells = {}
        index = 0
        for k in range(num_layers):
            in_size = input_size if k == 0 else hidden_size * len(directions)
            for suffix in directions:
                name = f"l{k}{suffix}"
                cells[name] = self.cell_class(in_size, hidden_size, bias=bias, config=config, seed=seed + 2 * index,
                                              init=None if init is None else init[name], **cell_kwargs)
                index += 1
        self.cells = nn.ModuleDict(cells)

    def _run_direction(self, cell: _AnalogCell, x: torch.Tensor, state, reverse: bool):
        t_len, b = x.shape[:2]
        gates_x = cell.weight_ih(x.reshape(t_len * b, -1)).reshape(t_len, b, -1)  # one MVM over all steps
        outputs = [None] * t_len
        steps = range(t_len - 1, -1, -1) if reverse else range(t_len)
        for t in steps:
            state = cell.cell(gates_x[t], state)
            outputs[t] = state[0] if self.kind == "LSTM" else state
        return torch.stack(outputs), state

    def forward(self, x: torch.Tensor, hx=None):
        if x.dim() not in (2, 3):
            raise ValueError(f"{type(self).__name__} expects input (T, B, I), (B, T, I) with batch_first, or (T, I); "
                             f"got shape {tuple(x.shape)}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{type(self).__name__} expects input_size {self.input_size}, got {x.shape[-1]}")
        batched = x.dim() == 3
        if not batched:
            x = x.unsqueeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)
        n_dir = 2 if self.bidirectional else 1
        b = x.shape[1]
        dtype = self.cells["l0"].weight_ih.weight.dtype
        x = x.to(dtype)
        if hx is None:
            zeros = x.new_zeros(self.num_layers * n_dir, b, self.hidden_size)
            hx = (zeros, zeros) if self.kind == "LSTM" else zeros
        elif not batched:
            hx = tuple(h.unsqueeze(1) for h in hx) if self.kind == "LSTM" else hx.unsqueeze(1)
        finals_h, finals_c = [], []
        layer_input = x
        for k in range(self.num_layers):
            outs = []
            for d, suffix in enumerate(["", "_reverse"][:n_dir]):
                i = k * n_dir + d
                state = (hx[0][i], hx[1][i]) if self.kind == "LSTM" else hx[i]
                out, state = self._run_direction(self.cells[f"l{k}{suffix}"], layer_input, state, reverse=d == 1)
                outs.append(out)
                if self.kind == "LSTM":
                    finals_h.append(state[0])
                    finals_c.append(state[1])
                else:
                    finals_h.append(state)
            layer_input = outs[0] if n_dir == 1 else torch.cat(outs, dim=-1)
            if self.dropout and self.training and k < self.num_layers - 1:
                layer_input = torch.nn.functional.dropout(layer_input, self.dropout, training=True)
        output = layer_input
        h_n = torch.stack(finals_h)
        final = (h_n, torch.stack(finals_c)) if self.kind == "LSTM" else h_n
        if not batched:
            output = output.squeeze(1)
            final = tuple(f.squeeze(1) for f in final) if self.kind == "LSTM" else final.squeeze(1)
        elif self.batch_first:
            output = output.transpose(0, 1)
        return output, final

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"
        if self.batch_first:
            text += ", batch_first=True"
        if self.bidirectional:
            text += ", bidirectional=True"
        return text


class AnalogRNN(_AnalogRecurrent):
    """Analog ``nn.RNN`` (``nonlinearity`` 'tanh' or 'relu')."""

    cell_class = AnalogRNNCell

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity: str = "tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, config=None, seed=0, init=None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, config, seed,
                         init, nonlinearity=nonlinearity)
        self.nonlinearity = nonlinearity


class AnalogLSTM(_AnalogRecurrent):
    """Analog ``nn.LSTM`` (no ``proj_size``)."""

    cell_class = AnalogLSTMCell


class AnalogGRU(_AnalogRecurrent):
    """Analog ``nn.GRU``."""

    cell_class = AnalogGRUCell
