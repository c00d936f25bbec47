"""Mechanics of TT-v1, Residual Learning, TT-v2 and RLv2 (2502.06309 Sec. 4-5, App. D)."""

import copy
import io

import pytest
import torch

import analogtrain as at
from analogtrain.algorithms import (
    AGAD,
    AnalogSGD,
    ChoppedTikiTakaV2,
    ERIDERArtifact,
    MultiTileResidual,
    ResidualLearning,
    ResidualLearningV2,
    TikiTaka,
    TikiTakaV2,
)

SHAPE = (5, 7)


def make_state(algo, device=None, engine="expected", engine_kwargs=None, transfer_io=None, seed=3, shape=SHAPE,
               init=None):
    device = device or at.devices.SoftBounds(tau=1.0, asymmetry=0.1, dw_min=1e-3)
    cfg = at.AnalogConfig(algorithm=algo, device=device, engine=engine, engine_kwargs=engine_kwargs or {},
                          transfer_io=transfer_io or at.IO.perfect())
    if init is None:
        init = 0.2 * torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    return algo.init(at.TileSpec(shape, cfg, seed=seed, init_weight=init))


def regression_batches(n, shape=SHAPE, batch=4, seed=0):
    """Inputs and a fixed teacher for a linear regression y = W* x (d = W_eff x - y)."""
    gen = torch.Generator().manual_seed(seed)
    w_star = 0.3 * torch.randn(shape, generator=gen)
    xs = [torch.randn(batch, shape[1], generator=gen) for _ in range(n)]
    return w_star, xs


def train(state, n, lr=0.05, seed=0):
    """n regression steps; returns the effective weights after each step."""
    w_star, xs = regression_batches(n, shape=tuple(state.arrays["W"].shape), seed=seed)
    traj = []
    for x in xs:
        d = x @ (state.effective_weight() - w_star).T
        state.step(x, d, lr)
        traj.append(state.effective_weight().clone())
    return traj


# ----------------------------------------------------------------------------- TT-v1 / RL
def test_rl_gamma_zero_is_tiki_taka_bit_for_bit():
    kw = {"fast_lr": 1.0, "transfer_lr": 0.5, "transfer_every": 2, "columns_per_transfer": 3}
    for engine, ekw in (("stochastic", {"bit_length": 8}), ("deterministic", {"rounding": "stochastic"})):
        tt = make_state(TikiTaka(**kw), engine=engine, engine_kwargs=ekw, transfer_io=at.IO())
        rl = make_state(ResidualLearning(gamma=0.0, **kw), engine=engine, engine_kwargs=ekw, transfer_io=at.IO())
        a, b = train(tt, 40), train(rl, 40)
        for wa, wb in zip(a, b):
            assert torch.equal(wa, wb)
        for name in ("W", "P"):
            assert torch.equal(tt.arrays[name].state, rl.arrays[name].state)
        assert tt.summary()["pulses"] == rl.summary()["pulses"]
        assert tt.arrays["P"].pulse_count["total"] > 0 and tt.arrays["W"].pulse_count["total"] > 0


def test_rl_effective_weight_mixes_p_and_tt_hides_it():
    rl = make_state(ResidualLearning(gamma=0.3))
    tt = make_state(TikiTaka())
    train(rl, 5)
    train(tt, 5)
    w, p = rl.arrays["W"].read(), rl.arrays["P"].read()
    assert p.abs().max() > 0
    torch.testing.assert_close(rl.effective_weight(), w + 0.3 * p, rtol=0, atol=0)
    assert torch.equal(tt.effective_weight(), tt.arrays["W"].read())


def test_tt_transfer_is_open_loop_write_of_read_columns():
    """One transfer of columns (0, 1, 2) with an ideal device: W[:, c] += lr*transfer_lr*P[:, c], P kept."""
    dev = at.devices.Ideal(dw_min=1e-3)
    st = make_state(TikiTaka(transfer_lr=0.5, columns_per_transfer=3), device=dev)
    p0 = 0.1 * torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
    st.arrays["P"].program(p0)
    w0 = st.arrays["W"].read().clone()
    x = torch.zeros(1, SHAPE[1])
    d = torch.zeros(1, SHAPE[0])
    st.step(x, d, lr=0.2)  # zero gradient, one transfer
    expected = w0.clone()
    expected[:, :3] += 0.2 * 0.5 * p0[:, :3]
    torch.testing.assert_close(st.arrays["W"].read(), expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(st.arrays["P"].read(), p0, rtol=0, atol=0)
    st.step(x, d, lr=0.2)  # next transfer: columns 3, 4, 5
    expected[:, 3:6] += 0.2 * 0.5 * p0[:, 3:6]
    torch.testing.assert_close(st.arrays["W"].read(), expected, rtol=0, atol=1e-6)
    st.step(x, d, lr=0.2)  # cyclic: columns 6, 0, 1
    expected[:, [6, 0, 1]] += 0.2 * 0.5 * p0[:, [6, 0, 1]]
    torch.testing.assert_close(st.arrays["W"].read(), expected, rtol=0, atol=1e-6)
    s = st.summary()
    assert s["transfers"]["P->W"] == 3 and s["columns_transferred"]["P->W"] == 9


def test_transfer_every_and_all_columns():
    st = make_state(ResidualLearning(gamma=0.1, transfer_every=3, all_columns=True))
    train(st, 10)
    assert st.counters["transfers"] == 3
    assert st.counters["columns_transferred"] == 3 * SHAPE[1]


def test_p_step_is_fast_lr_times_lr():
    dev = at.devices.Ideal(dw_min=1e-4)
    st = make_state(ResidualLearning(gamma=0.2, fast_lr=0.5, transfer_every=1000), device=dev)
    x = torch.randn(2, SHAPE[1])
    d = torch.randn(2, SHAPE[0])
    st.step(x, d, lr=0.1)
    torch.testing.assert_close(st.arrays["P"].read(), -0.05 * d.T @ x, rtol=1e-5, atol=1e-7)


def test_per_array_devices_and_p_reference():
    dev_w = at.devices.SoftBounds(tau=1.0, asymmetry=0.0, dw_min=1e-3)
    dev_p = at.devices.SoftBounds(tau=0.5, asymmetry=0.3, dw_min=1e-3)
    st = make_state(ResidualLearning(p_reference="symmetric_point"), device={"W": dev_w, "P": dev_p})
    assert st.arrays["W"].template is dev_w and st.arrays["P"].template is dev_p
    torch.testing.assert_close(st.arrays["P"].read_symmetric_point(), torch.zeros(SHAPE), rtol=0, atol=1e-6)
    torch.testing.assert_close(st.arrays["P"].read(), torch.zeros(SHAPE), rtol=0, atol=0)


def test_analog_linear_exposes_arrays_and_trains():
    torch.manual_seed(0)
    cfg = at.AnalogConfig(algorithm=ResidualLearning(gamma=0.2), device=at.devices.SoftBounds(tau=1.0, dw_min=1e-3))
    layer = at.nn.AnalogLinear(6, 3, bias=False, config=cfg, seed=1)
    opt = at.optim.AnalogSGD(layer.parameters(), lr=0.1)
    x = torch.randn(64, 6)
    y = x @ (0.3 * torch.randn(3, 6)).T
    losses = []
    for i in range(200):
        opt.zero_grad()
        loss = ((layer(x[i % 8 * 8:(i % 8 + 1) * 8]) - y[i % 8 * 8:(i % 8 + 1) * 8]) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) < 0.05 * sum(losses[:10])
    assert set(layer.arrays) == {"W", "P"}
    s = layer.summary()
    assert s["pulses"]["P"]["total"] > 0 and s["pulses"]["W"]["total"] > 0 and s["transfers"]["P->W"] == 200


# ----------------------------------------------------------------------------- TT-v2
def test_ttv2_buffer_integrates_reads_then_emits_integer_pulses():
    dev = at.devices.SoftBounds(tau=1.0, asymmetry=0.0, dw_min=1e-2)
    algo = TikiTakaV2(transfer_lr=1.0, columns_per_transfer=None, thres=1e6, max_transfer_pulses=5, momentum=0.0,
                      forget_buffer=False)
    st = make_state(algo, device=dev, init=torch.zeros(SHAPE))
    p0 = 0.05 * torch.randn(SHAPE, generator=torch.Generator().manual_seed(2))
    st.arrays["P"].program(p0)
    for _ in range(4):
        st.transfer(lr=0.1)
    torch.testing.assert_close(st.buffers["H"], 4 * 0.1 * p0, rtol=1e-5, atol=1e-8)
    assert st.arrays["W"].pulse_count["total"] == 0
    # lower the threshold: n = clip(trunc(H / dw_min), -5, 5) whole pulses go to W
    algo.thres = 1.0
    h_before = st.buffers["H"].clone() + 0.1 * p0
    w_before = st.arrays["W"].state.clone()
    st.transfer(lr=0.1)
    n = torch.trunc(h_before / 1e-2).clamp(-5, 5)
    assert n.abs().sum() > 0
    assert st.arrays["W"].pulse_count["total"] == n.abs().sum().item()
    torch.testing.assert_close(st.buffers["H"], h_before - n * 1e-2, rtol=0, atol=1e-6)
    # W moved by exactly n pulses of the response (single pulse composition, no noise)
    w = w_before.clone()
    for t in range(5):
        active = n.abs() > t
        step = torch.where(n > 0, dev.q_plus(w), -dev.q_minus(w)) * 1e-2
        w = torch.where(active, w + step, w)
    torch.testing.assert_close(st.arrays["W"].state, w, rtol=0, atol=1e-6)


def test_ttv2_forget_buffer_and_momentum():
    dev = at.devices.Ideal(dw_min=1e-2)
    algo = TikiTakaV2(columns_per_transfer=None, forget_buffer=True, momentum=0.25, max_transfer_pulses=100)
    st = make_state(algo, device=dev, init=torch.zeros(SHAPE))
    p0 = torch.full(SHAPE, 0.035)
    st.arrays["P"].program(p0)
    st.transfer(lr=1.0)  # H = 0.035 -> 3 pulses, H = 0.035 * 0.25
    torch.testing.assert_close(st.buffers["H"], torch.full(SHAPE, 0.035 * 0.25), rtol=1e-5, atol=0)
    torch.testing.assert_close(st.arrays["W"].read(), torch.full(SHAPE, 0.03), rtol=1e-5, atol=0)


# ----------------------------------------------------------------------------- RLv2
def test_rlv2_one_pulse_per_coordinate_and_exact_decrement():
    dw = 1e-2
    dev = at.devices.SoftBounds(tau=1.0, asymmetry=0.2, dw_min=dw)
    algo = ResidualLearningV2(gamma=0.2, buffer_rate=0.5)
    st = make_state(algo, device=dev)
    gen = torch.Generator().manual_seed(5)
    p0 = 0.2 * torch.randn(SHAPE, generator=gen)  # |beta P| up to ~ 30 dw_min: still one pulse
    h0 = 0.02 * torch.randn(SHAPE, generator=gen)
    st.arrays["P"].program(p0)
    st.buffers["H"] = h0.clone()
    w0 = st.arrays["W"].state.clone()
    st.transfer(lr=0.1)
    h_half = 0.5 * h0 + 0.5 * p0
    fire = h_half.abs() >= dw
    sign = torch.sign(h_half) * fire
    assert 0 < fire.sum() < fire.numel()
    assert st.arrays["W"].pulse_count["total"] == fire.sum().item()  # at most one pulse per coordinate
    torch.testing.assert_close(st.buffers["H"], h_half - sign * dw, rtol=0, atol=1e-7)
    # |H| decremented by exactly dw_min where fired
    torch.testing.assert_close((h_half.abs() - st.buffers["H"].abs())[fire], torch.full((int(fire.sum()),), dw),
                               rtol=0, atol=1e-7)
    # W moves by dw_min * q_sign(W) per pulse
    q = torch.where(sign > 0, dev.q_plus(w0), dev.q_minus(w0))
    torch.testing.assert_close(st.arrays["W"].state - w0, sign * dw * q, rtol=0, atol=1e-7)


def test_rlv2_gradient_at_mixed_weight_and_counts():
    st = make_state(ResidualLearningV2(gamma=0.25))
    train(st, 20)
    torch.testing.assert_close(st.effective_weight(), st.arrays["W"].read() + 0.25 * st.arrays["P"].read())
    s = st.summary()
    assert s["transfers"]["P->W"] == 20
    assert s["pulses"]["W"]["total"] == int(s["pulses"]["W"]["total"])


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize("factory, field", [
    (lambda: TikiTaka(fast_lr=0.0), "fast_lr"),
    (lambda: TikiTaka(transfer_lr=-1.0), "transfer_lr"),
    (lambda: TikiTaka(transfer_every=0), "transfer_every"),
    (lambda: TikiTaka(columns_per_transfer=0), "columns_per_transfer"),
    (lambda: TikiTaka(p_reference="middle"), "p_reference"),
    (lambda: ResidualLearning(gamma=-0.1), "gamma"),
    (lambda: TikiTakaV2(thres=0.0), "thres"),
    (lambda: TikiTakaV2(momentum=1.0), "momentum"),
    (lambda: TikiTakaV2(max_transfer_pulses=0), "max_transfer_pulses"),
    (lambda: ResidualLearningV2(buffer_rate=0.0), "buffer_rate"),
    (lambda: ResidualLearningV2(buffer_rate=1.5), "buffer_rate"),
    (lambda: ChoppedTikiTakaV2(chop_prob=1.5), "chop_prob"),
    (lambda: AGAD(chop_prob=0.0), "chop_prob"),
    (lambda: AGAD(tail_weightening=0.0), "tail_weightening"),
    (lambda: ChoppedTikiTakaV2(out_chop_prob=-0.1), "out_chop_prob"),
    (lambda: ChoppedTikiTakaV2(gamma=-0.1), "gamma"),
    (lambda: ERIDERArtifact(gamma=-1.0), "gamma"),
    (lambda: MultiTileResidual(n_tiles=0), "n_tiles"),
    (lambda: MultiTileResidual(gamma=1.0), "gamma"),
    (lambda: MultiTileResidual(n_tiles=3, transfer_every=[2]), "transfer_every"),
])
def test_validation_names_the_field(factory, field):
    with pytest.raises(ValueError, match=field):
        factory()


# ----------------------------------------------------------------------------- checkpointing
ALGOS = [
    lambda: TikiTaka(columns_per_transfer=2),
    lambda: ResidualLearning(gamma=0.3, columns_per_transfer=3, transfer_every=2),
    lambda: TikiTakaV2(columns_per_transfer=2, transfer_lr=5.0),
    lambda: ResidualLearningV2(gamma=0.2, buffer_rate=0.3),
    lambda: ChoppedTikiTakaV2(chop_prob=0.3, chop_random=True, transfer_lr=5.0),
    lambda: AGAD(chop_prob=0.5, columns_per_transfer=7, transfer_lr=5.0),
    lambda: ChoppedTikiTakaV2(chop_prob=0.3, out_chop_prob=0.3, gamma=0.2, transfer_lr=5.0),
    lambda: ERIDERArtifact(chop_prob=0.5, transfer_lr=5.0, gamma=0.3),
    lambda: MultiTileResidual(n_tiles=3, gamma=0.5, transfer_every=[2, 3], columns_per_transfer=2),
    lambda: AnalogSGD(),
]


@pytest.mark.parametrize("factory", ALGOS)
def test_state_dict_mid_run_continues_identically(factory):
    kw = {"engine": "stochastic", "engine_kwargs": {"bit_length": 8}, "transfer_io": at.IO(out_noise=0.02),
              "device": at.devices.SoftBounds(tau=1.0, asymmetry=0.2, dw_min=1e-3, cycle_noise=0.1)}
    ref = make_state(factory(), **kw)
    train(ref, 12, seed=1)
    buf = io.BytesIO()
    torch.save(ref.state_dict(), buf)
    cont_ref = train(ref, 12, seed=2)
    other = make_state(factory(), seed=99, **kw)  # different seed: everything must come from the checkpoint
    buf.seek(0)
    other.load_state_dict(torch.load(buf, weights_only=False))
    cont = train(other, 12, seed=2)
    for a, b in zip(cont_ref, cont):
        assert torch.equal(a, b)
    assert copy.deepcopy(ref.summary()) == other.summary()
