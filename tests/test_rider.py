"""RIDER / E-RIDER (2602.21321 Algorithms 2 and 3): mechanics, equivalences, SP tracking."""

import copy
import math

import pytest
import torch

import analogtrain as at
from analogtrain.algorithms import ERIDER, RIDER
from analogtrain.experiments.rider_quadratic import QuadraticProblem, compare, run_quadratic
from analogtrain.theory import ema_attenuation


def make_state(algorithm, shape=(6, 5), device=None, engine="expected", seed=0, io=None):
    dev = device or at.devices.SoftBounds(tau=1.0, asymmetry=0.2, dw_min=1e-3)
    cfg = at.AnalogConfig(algorithm=algorithm, device=dev, io=io or at.IO.perfect(), engine=engine)
    init = torch.linspace(-0.2, 0.2, shape[0] * shape[1]).reshape(shape)
    return algorithm.init(at.TileSpec(shape, cfg, seed=seed, init_weight=init))


def drive(state, steps, seed=0, batch=3):
    """Random (x, d) steps; returns the effective weights after each step."""
    gen = torch.Generator().manual_seed(seed)
    out_f, in_f = state.arrays["W"].shape
    weights = []
    for _ in range(steps):
        x = torch.randn(batch, in_f, generator=gen)
        d = torch.randn(batch, out_f, generator=gen) * 0.5
        state.step(x, d, 0.05)
        weights.append(state.effective_weight().clone())
    return weights


def test_ema_is_the_filter_of_lemma_3_10():
    eta, s, amp = 0.25, 0.3, 0.2
    state = make_state(RIDER(eta=eta, transfer_lr=0.0), device=at.devices.Ideal())
    P = state.arrays["P"]
    zeros_x, zeros_d = torch.zeros(1, 5), torch.zeros(1, 6)
    qs = []
    for k in range(200):
        P.program(s + amp * (-1) ** (k + 1))  # P_{k+1} = s + A(-1)^{k+1}
        state.step(zeros_x, zeros_d, 0.1)
        qs.append(float(state.buffers["Q"].mean()))
    mid = 0.5 * (qs[-1] + qs[-2])
    half_swing = 0.5 * abs(qs[-1] - qs[-2])
    assert mid == pytest.approx(s, abs=1e-6)  # |H(1)| = 1: the constant passes
    assert half_swing == pytest.approx(amp * ema_attenuation(eta), rel=1e-4)  # |H(-1)| = eta/(2-eta)


def test_effective_weight_is_mixed_weight():
    state = make_state(ERIDER(gamma=0.3, chop_prob=0.5), engine="expected")
    drive(state, 7)
    W, P = state.arrays["W"].read(), state.arrays["P"].read()
    expected = W + 0.3 * state.chop * (P - state.buffers["Q_tilde"])
    torch.testing.assert_close(state.effective_weight(), expected)


@pytest.mark.parametrize("kw", [{}, {"transfer": "buffered", "columns_per_transfer": 2},
                                {"transfer": "direct", "columns_per_transfer": 3}])
def test_rider_equals_erider_with_zero_chop_prob(kw):
    dev = at.devices.SoftBounds(tau=1.0, asymmetry=0.2, dw_min=1e-2, cycle_noise=0.1)
    a = make_state(RIDER(**kw), device=dev, engine="stochastic", seed=4)
    b = make_state(ERIDER(chop_prob=0.0, **kw), device=dev, engine="stochastic", seed=4)
    wa, wb = drive(a, 40), drive(b, 40)
    for x, y in zip(wa, wb):
        assert torch.equal(x, y)
    assert torch.equal(a.buffers["Q"], b.buffers["Q"])
    assert a.summary()["pulses"] == b.summary()["pulses"]
    assert "Q_tilde" not in b.buffers  # no analog copy without a chopper


def test_q_tilde_changes_only_at_chopper_flips():
    state = make_state(ERIDER(chop_prob=0.1, eta=0.3))
    before, flips_seen, steps = state.buffers["Q_tilde"].clone(), 0, 600
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        flips = state.counters["chopper_flips"]
        chop = state.chop
        state.step(torch.randn(2, 5, generator=gen), torch.randn(2, 6, generator=gen), 0.05)
        flipped = state.counters["chopper_flips"] == flips + 1
        assert flipped == (state.chop != chop)
        now = state.buffers["Q_tilde"]
        if flipped:
            flips_seen += 1
            assert torch.equal(now, state.buffers["Q"])  # programmed from Q
        else:
            assert torch.equal(now, before)
        before = now.clone()
    # random telegraph: flips ~ Binomial(steps, p); 5 sigma
    assert abs(flips_seen - 0.1 * steps) < 5 * math.sqrt(steps * 0.1 * 0.9)
    s = state.summary()
    assert s["programming_writes"]["Q_tilde"] == flips_seen * 30
    assert s["counters"]["q_tilde_syncs"] == flips_seen


def test_regular_chopper_period():
    state = make_state(ERIDER(chop_prob=0.05, chopper="regular"))
    signs = []
    for _ in range(100):
        signs.append(state.chop)
        state.step(torch.ones(1, 5), torch.ones(1, 6) * 0.1, 0.01)
    # period max(ceil(1/p), 2) = 20 steps per chopper phase
    assert signs[:20] == [1] * 20 and signs[20:40] == [-1] * 20 and signs[40:60] == [1] * 20
    assert state.counters["chopper_flips"] == 5


def test_buffered_transfer_fires_whole_pulses():
    dev = at.devices.SoftBounds(tau=1.0, asymmetry=0.0, dw_min=1e-2)
    capped = make_state(RIDER(transfer="buffered", transfer_lr=10.0, transfer_bl=1), device=dev)
    W = capped.arrays["W"]
    for _ in range(20):
        before = W.pulse_count["total"]
        drive(capped, 1)
        fired = W.pulse_count["total"] - before
        assert fired == int(fired) and fired <= W.state.numel()  # at most transfer_bl = 1 per element
    free = make_state(RIDER(transfer="buffered", transfer_lr=10.0, transfer_bl=1000), device=dev)
    drive(free, 20)
    # without the cap every whole pulse is fired: less than one pulse stays in the buffer
    assert float(free.buffers["H"].abs().max()) < 1e-2
    assert free.arrays["W"].pulse_count["total"] > 0


def test_columns_per_transfer_updates_only_those_columns_of_q():
    state = make_state(RIDER(columns_per_transfer=2, eta=0.5))
    drive(state, 1)
    q = state.buffers["Q"]
    assert bool((q[:, 2:] == 0).all()) and bool((q[:, :2] != 0).any())
    drive(state, 2)  # columns 2,3 then 4,0 (cyclic)
    assert state.counters["next_column"] == 1


def test_quadratic_erider_beats_residual_learning():
    """Issue 4: with P's SP at 0.3 tau, E-RIDER (defaults) ends with |mean W-bar - w*| at most
    half of RL's, and Q ends closer to P's SP than to zero."""
    problem = QuadraticProblem(dim=128, p_asymmetry=0.3, p_tau=1.0, w_star=0.2, noise=1.0)
    res = compare(problem, steps=3000, lr=0.05, record_every=100,
                  algorithms={"RL": RIDER(eta=0.0), "E-RIDER": ERIDER()})
    rl, er = res["RL"].final(10), res["E-RIDER"].final(10)
    sp = problem.p_symmetric_point
    assert rl["weight_error"] > 0.1  # RL keeps the bias c * E|g| / L ~ 0.24
    assert er["weight_error"] <= 0.5 * rl["weight_error"]
    assert abs(er["q_mean"] - sp) < abs(er["q_mean"])
    assert er["q_mean"] == pytest.approx(sp, abs=0.05)


def test_quadratic_tracks_a_reference_offset():
    """A symmetric P device read against r = SP + 0.3 (ReferenceOffset) has its SP at -0.3 in
    read space; E-RIDER's Q finds it."""
    problem = QuadraticProblem(dim=64, p_asymmetry=0.0, w_star=0.2)
    state, trace = run_quadratic(ERIDER(p_reference=at.ReferenceOffset(mean=0.3, std=0.0)), problem, 3000, 0.05)
    assert float(state.arrays["P"].read_symmetric_point().mean()) == pytest.approx(-0.3, abs=1e-5)
    assert trace.final(10)["q_mean"] == pytest.approx(-0.3, abs=0.06)


def test_state_dict_round_trip_continues_identically():
    dev = at.devices.SoftBounds(tau=1.0, asymmetry=0.2, dw_min=1e-2, cycle_noise=0.1, write_noise=0.5)
    algo = ERIDER(chop_prob=0.2, transfer="buffered", columns_per_transfer=2)
    a = make_state(algo, device=dev, engine="stochastic", seed=9)
    drive(a, 15, seed=1)
    saved = copy.deepcopy(a.state_dict())
    first = drive(a, 15, seed=2)
    b = make_state(algo, device=dev, engine="stochastic", seed=123)  # different seed: all state from the dict
    b.load_state_dict(saved)
    second = drive(b, 15, seed=2)
    for x, y in zip(first, second):
        assert torch.equal(x, y)
    assert a.summary() == b.summary()


def test_layer_trains_and_reports_pulses():
    torch.manual_seed(0)
    dev = at.devices.SoftBounds(tau=1.0, asymmetry=0.3, dw_min=1e-3)
    cfg = at.AnalogConfig(algorithm=ERIDER(chop_prob=0.1), device=dev, io=at.IO.perfect(), engine="expected")
    layer = at.nn.AnalogLinear(4, 2, bias=False, config=cfg, seed=1)
    opt = at.optim.AnalogSGD(layer.parameters(), lr=0.1)
    target = torch.tensor([[0.3, -0.2, 0.1, 0.0], [-0.1, 0.2, 0.0, 0.3]])
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(300):
        x = torch.randn(8, 4, generator=gen)
        loss = ((layer(x) - x @ target.T) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-20:]) / 20 < 0.2 * sum(losses[:20]) / 20
    s = layer.summary()
    assert s["pulses"]["P"]["total"] > 0 and s["pulses"]["W"]["total"] > 0
    assert s["counters"]["chopper_flips"] > 0


def test_validation():
    for bad in [{"gamma": -1}, {"eta": 1.5}, {"transfer_lr": -0.1}, {"transfer": "pulse"},
                {"columns_per_transfer": 0}, {"transfer_bl": 0}, {"p_reference": "zero"}]:
        with pytest.raises(ValueError):
            RIDER(**bad)
    for bad in [{"chop_prob": 1.5}, {"chopper": "telegraph"}, {"reference_sync": "never"}]:
        with pytest.raises(ValueError):
            ERIDER(**bad)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda():
    dev = at.devices.SoftBounds(tau=1.0, asymmetry=0.2, dw_min=1e-3)
    cfg = at.AnalogConfig(algorithm=ERIDER(), device=dev, io=at.IO.perfect())
    state = ERIDER().init(at.TileSpec((6, 5), cfg, torch_device="cuda"))
    state.step(torch.randn(3, 5, device="cuda"), torch.randn(3, 6, device="cuda"), 0.05)
    assert state.effective_weight().device.type == "cuda"


@pytest.mark.parametrize("cls", [RIDER, ERIDER])
def test_absolute_step_sizes_ignore_the_optimizer_lr(cls):
    """scale_fast_lr / scale_transfer_lr False (aihwkit's absolute form): alpha = fast_lr and
    beta = transfer_lr whatever lr is, so the same run at lr 0.1 with fast_lr 0.05 equals
    lr 1 with scaled steps fast_lr 0.05 ... exactly (expected engine)."""
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(3, 5, generator=g) for _ in range(20)]
    ds = [torch.randn(3, 6, generator=g) for _ in range(20)]
    kw = {"eta": 0.1, "gamma": 0.3} | ({"chop_prob": 0.0} if cls is ERIDER else {})
    absolute = make_state(cls(fast_lr=0.05, transfer_lr=0.02, scale_fast_lr=False, scale_transfer_lr=False, **kw))
    scaled = make_state(cls(fast_lr=0.05, transfer_lr=0.02, **kw))
    for x, d in zip(xs, ds):
        absolute.step(x, d, 0.37)  # lr ignored
        scaled.step(x, d, 1.0)  # lr 1: the scaled steps equal the absolute ones
    for name in absolute.arrays:
        assert torch.equal(absolute.arrays[name].state, scaled.arrays[name].state), name
    assert absolute.arrays["W"].pulse_count["total"] > 0
    with pytest.raises(ValueError, match="scale_fast_lr"):
        cls(scale_fast_lr=1)
