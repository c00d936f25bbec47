"""Chopper mechanics of c-TTv2 and AGAD's on-the-fly reference (aihwkit Chopped/DynamicTransferCompound)."""

import pytest
import torch

import analogtrain as at
from analogtrain.algorithms import AGAD, ChoppedTikiTakaV2, TikiTakaV2

SHAPE = (4, 6)


def make_state(algo, device=None, seed=0, init=None):
    device = device or at.devices.Ideal(dw_min=1e-3)
    cfg = at.AnalogConfig(algorithm=algo, device=device, engine="expected")
    init = torch.zeros(SHAPE) if init is None else init
    return algo.init(at.TileSpec(SHAPE, cfg, seed=seed, init_weight=init))


def test_chopper_flips_sign_written_to_p():
    a = make_state(ChoppedTikiTakaV2(chop_prob=0.1, transfer_every=1000))
    b = make_state(ChoppedTikiTakaV2(chop_prob=0.1, transfer_every=1000))
    b.buffers["chopper"][[1, 4]] = -1.0
    x = torch.randn(3, SHAPE[1])
    d = torch.randn(3, SHAPE[0])
    a.step(x, d, 0.1)
    b.step(x, d, 0.1)
    pa, pb = a.arrays["P"].read(), b.arrays["P"].read()
    assert pa.abs().min() > 0
    sign = torch.ones(SHAPE[1])
    sign[[1, 4]] = -1.0
    torch.testing.assert_close(pb, pa * sign, rtol=1e-6, atol=0)


def test_chopper_sign_is_undone_on_read():
    algo = ChoppedTikiTakaV2(chop_prob=0.1, columns_per_transfer=None, thres=1e6)
    st = make_state(algo)
    p0 = 0.1 * torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
    st.arrays["P"].program(p0)
    st.buffers["chopper"][[0, 5]] = -1.0
    st.transfer(lr=0.5)
    sign = torch.ones(SHAPE[1])
    sign[[0, 5]] = -1.0
    torch.testing.assert_close(st.buffers["H"], 0.5 * p0 * sign, rtol=1e-6, atol=0)


def test_chopped_gradient_round_trip_reaches_buffer_with_gradient_sign():
    """Written with sign c, read back with sign c: H accumulates -lr*grad whatever c is (P's step
    lr * fast_lr with scale_fast_lr; the default absolute step is tested below)."""
    for chop in (1.0, -1.0):
        st = make_state(ChoppedTikiTakaV2(chop_prob=0.1, columns_per_transfer=None, thres=1e6, units_in_mbatch=True,
                                          scale_fast_lr=True))
        st.buffers["chopper"].fill_(chop)
        x = torch.randn(2, SHAPE[1], generator=torch.Generator().manual_seed(3))
        d = torch.randn(2, SHAPE[0], generator=torch.Generator().manual_seed(4))
        st.step(x, d, lr=0.1)
        torch.testing.assert_close(st.buffers["H"], 0.1 * (-0.1 * d.T @ x), rtol=1e-5, atol=1e-8)


def test_default_fast_step_is_absolute_as_aihwkit_chopped_compounds():
    """aihwkit's ChoppedTransferCompound (and DynamicTransferCompound) default scale_fast_lr=False:
    P's step is fast_lr (1.0) whatever the optimizer's lr; the buffer then holds lr * (-1 * grad)."""
    assert ChoppedTikiTakaV2().scale_fast_lr is False and AGAD().scale_fast_lr is False
    assert TikiTakaV2().scale_fast_lr is True  # aihwkit's TransferCompound scales it
    x = torch.randn(2, SHAPE[1], generator=torch.Generator().manual_seed(3))
    d = torch.randn(2, SHAPE[0], generator=torch.Generator().manual_seed(4))
    for lr in (0.1, 0.02):
        st = make_state(ChoppedTikiTakaV2(chop_prob=0.1, columns_per_transfer=None, thres=1e6, units_in_mbatch=True))
        st.step(x, d, lr=lr)
        torch.testing.assert_close(st.buffers["H"], lr * (-1.0 * d.T @ x), rtol=1e-5, atol=1e-8)


def test_regular_chopper_period():
    """chop_prob 0.25 -> n_samples 4: every column flips after each 4th full pass."""
    st = make_state(ChoppedTikiTakaV2(chop_prob=0.25, columns_per_transfer=2, chop_random=False))
    signs = []
    for _ in range(3 * 12):  # 3 transfers per pass, 12 passes
        st.transfer(lr=0.1)
        signs.append(st.buffers["chopper"].clone())
    per_pass = torch.stack(signs[2::3])  # after each complete pass
    expected = torch.tensor([1, 1, 1, -1, -1, -1, -1, 1, 1, 1, 1, -1], dtype=per_pass.dtype)
    assert torch.equal(per_pass, expected[:, None].expand(12, SHAPE[1]))


def test_random_chopper_flip_rate():
    st = make_state(ChoppedTikiTakaV2(chop_prob=0.2, chop_random=True, columns_per_transfer=None))
    flips = 0
    prev = st.buffers["chopper"].clone()
    n = 500
    for _ in range(n):
        st.transfer(lr=0.1)
        flips += int((st.buffers["chopper"] != prev).sum())
        prev = st.buffers["chopper"].clone()
    rate = flips / (n * SHAPE[1])
    # binomial(3000, 0.2): std 0.0073; 4 sigma
    assert abs(rate - 0.2) < 0.03


def test_zero_chop_prob_is_ttv2():
    gen = torch.Generator().manual_seed(0)
    xs = [torch.randn(2, SHAPE[1], generator=gen) for _ in range(30)]
    ds = [torch.randn(2, SHAPE[0], generator=gen) for _ in range(30)]
    a = make_state(TikiTakaV2(transfer_lr=20.0), device=at.devices.SoftBounds(tau=1.0, asymmetry=0.1))
    b = make_state(ChoppedTikiTakaV2(transfer_lr=20.0, chop_prob=0.0, momentum=0.1, units_in_mbatch=True,
                                     scale_fast_lr=True),
                   device=at.devices.SoftBounds(tau=1.0, asymmetry=0.1))
    for x, d in zip(xs, ds):
        a.step(x, d, 0.05)
        b.step(x, d, 0.05)
    assert a.arrays["W"].pulse_count["total"] > 0
    assert torch.equal(a.arrays["W"].state, b.arrays["W"].state)
    assert torch.equal(a.buffers["H"], b.buffers["H"])


def test_agad_reference_absorbs_constant_offset_of_p():
    """P holds a constant offset o (e.g. an SP off zero) and no gradient arrives: AGAD's past_mean
    converges to o and nothing is written to W, whereas TT-v2 keeps transferring the offset."""
    offset = 0.05 * torch.randn(SHAPE, generator=torch.Generator().manual_seed(7))
    # max_transfer_pulses large enough to drain the buffer during AGAD's warm-up (as aihwkit, the
    # buffer is reduced but nothing is written while the first reference is not known)
    agad = make_state(AGAD(chop_prob=0.1, columns_per_transfer=None, transfer_lr=1.0, max_transfer_pulses=100,
                           momentum=0.0, forget_buffer=False, chop_random=False))
    ttv2 = make_state(TikiTakaV2(columns_per_transfer=None, transfer_lr=1.0))
    for st in (agad, ttv2):
        st.arrays["P"].program(offset)
        for _ in range(60):
            st.transfer(lr=0.1)
    assert agad.arrays["W"].pulse_count["total"] == 0
    assert ttv2.arrays["W"].pulse_count["total"] > 100
    # running mean with m = 5/10: error 2^-10 of o after the first 10 reads
    torch.testing.assert_close(agad.reference(), offset, rtol=2e-3, atol=1e-7)


def test_agad_transfers_sign_recovered_signal():
    """P = o + c * s (offset plus chopped signal): the buffer accumulates s, not o."""
    offset = torch.full(SHAPE, 0.04)
    signal = 0.01 * torch.sign(torch.randn(SHAPE, generator=torch.Generator().manual_seed(8)))
    st = make_state(AGAD(chop_prob=0.5, columns_per_transfer=None, transfer_lr=1.0, thres=1e6))
    h_prev = None
    for i in range(12):
        c = st.buffers["chopper"]
        st.arrays["P"].program(offset + c * signal)
        st.transfer(lr=1.0)
        if i >= 6:
            # past_mean is the mean of the previous half period, o - c * s: increment 2 s per read
            torch.testing.assert_close(st.buffers["H"] - h_prev, 2 * signal, rtol=0, atol=2e-3)
        h_prev = st.buffers["H"].clone()


# ----------------------------------------------------------------------------- out chopper, gamma
def test_out_chopper_flips_sign_of_the_gradient_rows_and_is_undone_on_read():
    """aihwkit out_chop_prob: P receives d (.) c_out; the read is multiplied by c_out again, so the
    buffer holds -lr * grad whatever the output signs are."""
    x = torch.randn(2, SHAPE[1], generator=torch.Generator().manual_seed(3))
    d = torch.randn(2, SHAPE[0], generator=torch.Generator().manual_seed(4))
    algo = ChoppedTikiTakaV2(chop_prob=0.1, out_chop_prob=0.3, columns_per_transfer=None, thres=1e6,
                             units_in_mbatch=True, scale_fast_lr=True)
    plain = make_state(ChoppedTikiTakaV2(chop_prob=0.1, columns_per_transfer=None, thres=1e6, units_in_mbatch=True,
                                         scale_fast_lr=True))
    st = make_state(algo)
    st.buffers["out_chopper"][[0, 2]] = -1.0
    plain.gradient_to_p(x, d, 0.1)
    st.gradient_to_p(x, d, 0.1)
    sign = torch.ones(SHAPE[0], 1)
    sign[[0, 2]] = -1.0
    torch.testing.assert_close(st.arrays["P"].read(), sign * plain.arrays["P"].read(), rtol=1e-6, atol=0)
    st.transfer(lr=0.1)
    torch.testing.assert_close(st.buffers["H"], 0.1 * (-0.1 * d.T @ x), rtol=1e-5, atol=1e-8)


def test_out_chopper_flips_after_the_last_column_only():
    st = make_state(ChoppedTikiTakaV2(chop_prob=0.0, out_chop_prob=1.0, columns_per_transfer=1))
    for i in range(3 * SHAPE[1]):
        st.transfer(lr=0.1)
        passes = (i + 1) // SHAPE[1]
        expected = torch.full((SHAPE[0],), (-1.0) ** passes)
        assert torch.equal(st.buffers["out_chopper"], expected), i


def test_out_chopper_flip_rate():
    st = make_state(ChoppedTikiTakaV2(chop_prob=0.0, out_chop_prob=0.25, columns_per_transfer=None))
    prev, flips, n = st.buffers["out_chopper"].clone(), 0, 400
    for _ in range(n):
        st.transfer(lr=0.1)
        flips += int((st.buffers["out_chopper"] != prev).sum())
        prev = st.buffers["out_chopper"].clone()
    # binomial(1600, 0.25): std 0.011; 4 sigma
    assert abs(flips / (n * SHAPE[0]) - 0.25) < 0.044


def test_gamma_mixes_the_dechopped_fast_array():
    """aihwkit master (PR 764): forward weight C + gamma (c_d c_x^T) (.) A."""
    st = make_state(ChoppedTikiTakaV2(gamma=0.3, out_chop_prob=0.5), init=torch.full(SHAPE, 0.02))
    p0 = 0.1 * torch.randn(SHAPE, generator=torch.Generator().manual_seed(2))
    st.arrays["P"].program(p0)
    st.buffers["chopper"][[1, 3]] = -1.0
    st.buffers["out_chopper"][2] = -1.0
    chop = st.buffers["out_chopper"][:, None] * st.buffers["chopper"][None, :]
    torch.testing.assert_close(st.effective_weight(), st.arrays["W"].read() + 0.3 * chop * p0)
    zero = make_state(ChoppedTikiTakaV2(), init=torch.full(SHAPE, 0.02))
    zero.arrays["P"].program(p0)
    assert torch.equal(zero.effective_weight(), zero.arrays["W"].read())


# ----------------------------------------------------------------------------- E-RIDER, artifact form
def test_erider_artifact_with_zero_gamma_is_agad():
    from analogtrain.algorithms import ERIDERArtifact

    gen = torch.Generator().manual_seed(5)
    xs = [torch.randn(2, SHAPE[1], generator=gen) for _ in range(80)]
    ds = [torch.randn(2, SHAPE[0], generator=gen) for _ in range(80)]
    dev = at.devices.SoftBounds(tau=1.0, asymmetry=0.1)
    a = make_state(AGAD(transfer_lr=20.0, units_in_mbatch=True), device=dev)
    b = make_state(ERIDERArtifact(transfer_lr=20.0, gamma=0.0), device=dev)
    for x, d in zip(xs, ds):
        a.step(x, d, 0.05)
        b.step(x, d, 0.05)
    assert a.arrays["W"].pulse_count["total"] > 0
    assert torch.equal(a.arrays["W"].state, b.arrays["W"].state)
    assert torch.equal(a.effective_weight(), b.effective_weight())


def test_erider_artifact_forward_adds_gamma_times_the_chopped_reference_free_read():
    """W-bar = W + gamma c (P - Q~) with each column's value from its latest transfer."""
    from analogtrain.algorithms import ERIDERArtifact

    st = make_state(ERIDERArtifact(gamma=0.4, chop_prob=0.5, thres=1e6), init=torch.full(SHAPE, 0.01))
    gen = torch.Generator().manual_seed(9)
    expected = torch.zeros(SHAPE)
    for _ in range(3 * SHAPE[1]):
        p = 0.05 * torch.randn(SHAPE, generator=gen)
        st.arrays["P"].program(p)
        col = st.counters["next_column"]
        sign = float(st.buffers["chopper"][col])
        cols = torch.tensor([col])
        switched = bool(st.buffers["switched"][col])
        q = (st.buffers["running_mean"] if switched else st.buffers["past_mean"])[:, col].clone()
        expected[:, col] = sign * (p[:, col] - q)
        st.transfer(lr=0.1)
        torch.testing.assert_close(st.buffers["past_mean"].index_select(1, cols)[:, 0], q)
        torch.testing.assert_close(st.effective_weight(), st.arrays["W"].read() + 0.4 * expected)


# ----------------------------------------------------------------------------- coalesced transfers
COALESCE_CASES = [
    lambda: ChoppedTikiTakaV2(chop_prob=0.3, chop_random=True, transfer_lr=20.0),
    lambda: ChoppedTikiTakaV2(chop_prob=0.3, chop_random=False, out_chop_prob=0.4, transfer_lr=20.0,
                              columns_per_transfer=4),
    lambda: AGAD(chop_prob=0.25, transfer_lr=20.0, max_transfer_pulses=3),
    lambda: at.algorithms.ERIDERArtifact(chop_prob=0.5, transfer_lr=20.0, gamma=0.3, units_in_mbatch=False),
    lambda: TikiTakaV2(transfer_lr=20.0, units_in_mbatch=False, with_reset_prob=0.2),
    # TT-v1's pulse-train transfer writes draw from W's generator: exact under the expected engine
    lambda: at.algorithms.TikiTaka(transfer_lr=2.0, units_in_mbatch=False, columns_per_transfer=5),
]


@pytest.mark.parametrize("make", COALESCE_CASES)
def test_coalesced_transfers_equal_one_call_per_transfer(make):
    """The transfers due in one step (one per sample with units_in_mbatch=False) run as one
    vectorised transfer of their lines up to the cursor's wrap: on a noise-free device every
    state, buffer, chopper sign and counter equals the one-call-per-transfer reference exactly
    (shape (5, 7): cursors wrap inside a batch of 9)."""
    shape = (5, 7)
    dev = at.devices.SoftBounds(tau=1.0, asymmetry=0.2, dw_min=1e-3)
    states = []
    for coalesce in (True, False):
        algo = make()
        engine = "expected" if isinstance(algo, at.algorithms.TikiTaka) else "stochastic"
        cfg = at.AnalogConfig(algorithm=algo, device=dev, engine=engine)
        st = algo.init(at.TileSpec(shape, cfg, seed=3, init_weight=torch.zeros(shape)))
        st.coalesce = coalesce
        gen = torch.Generator().manual_seed(0)
        for _ in range(40):
            st.step(torch.randn(9, shape[1], generator=gen), torch.randn(9, shape[0], generator=gen), 0.05)
        states.append(st)
    a, b = states
    assert a.counters == b.counters and a.counters["transfers"] == 40 * (9 if not make().units_in_mbatch else 1)
    assert a.arrays["W"].pulse_count["total"] > 0
    for name in a.arrays:
        assert torch.equal(a.arrays[name].state, b.arrays[name].state), name
    for name in a.buffers:
        assert torch.equal(a.buffers[name], b.buffers[name]), name


def test_auto_scale_gives_each_sample_aihwkit_s_pulse_count_lr():
    """aihwkit auto_scale: s_b = fast_lr BL g / (m_x m_d) with running means of max|x|, max|d|
    (tau = (1 - auto_momentum) / B, started by the first value); an Ideal device under the
    expected engine takes exactly -sum_b s_b d_b x_b^T."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, SHAPE[1], generator=g) + 0.5
    d = torch.rand(3, SHAPE[0], generator=g) - 0.5
    algo = ChoppedTikiTakaV2(chop_prob=0.1, auto_scale=True, auto_momentum=0.9, auto_scale_bit_length=5,
                             fast_lr=0.5, thres=1e6, transfer_every=1000)
    st = make_state(algo)
    st.step(x, d, lr=0.1)
    tau = (1 - 0.9) / 3
    mx = md = 0.0
    want = torch.zeros(SHAPE)
    for b in range(3):
        xm, dm = float(x[b].abs().max()), float(d[b].abs().max())
        mx = xm if mx == 0 else (1 - tau) * mx + tau * xm
        md = dm if md == 0 else (1 - tau) * md + tau * dm
        want -= 0.5 * 5 * 1e-3 / (mx * md) * torch.outer(d[b], x[b])
    torch.testing.assert_close(st.arrays["P"].read(), want, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(st.buffers["auto_scale_m"], torch.tensor([mx, md], dtype=torch.float64))
    with pytest.raises(ValueError, match="bit length"):
        make_state(ChoppedTikiTakaV2(auto_scale=True)).step(x, d, lr=0.1)  # expected engine has none
    with pytest.raises(ValueError, match="auto_momentum"):
        ChoppedTikiTakaV2(auto_momentum=1.0)
