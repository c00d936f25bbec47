"""Multi-tile residual learning (2510.02516): composite weight, multi-timescale transfers, error floor."""

import itertools

import pytest
import torch

import analogtrain as at
from analogtrain.algorithms import AnalogSGD, MultiTileResidual

SHAPE = (4, 3)


@pytest.fixture(autouse=True)
def one_thread():
    """Many tiny ops: one thread is faster and leaves the other core free."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def make_state(algo, device=None, engine="expected", engine_kwargs=None, shape=SHAPE, init=None, seed=0):
    device = device or at.devices.SoftBounds(tau=1.0, asymmetry=0.0, dw_min=1e-3)
    cfg = at.AnalogConfig(algorithm=algo, device=device, engine=engine, engine_kwargs=engine_kwargs or {})
    init = 0.1 * torch.ones(shape) if init is None else init
    return algo.init(at.TileSpec(shape, cfg, seed=seed, init_weight=init))


def test_composite_weight_is_geometric_sum():
    st = make_state(MultiTileResidual(n_tiles=3, gamma=0.4))
    assert list(st.arrays) == ["W", "P1", "P2"]
    gen = torch.Generator().manual_seed(0)
    for name in ("P1", "P2"):
        st.arrays[name].program(0.1 * torch.randn(SHAPE, generator=gen))
    expected = st.arrays["W"].read() + 0.4 * st.arrays["P1"].read() + 0.16 * st.arrays["P2"].read()
    torch.testing.assert_close(st.effective_weight(), expected, rtol=0, atol=1e-7)


def test_one_tile_is_analog_sgd_bit_for_bit():
    kw = {"engine": "stochastic", "engine_kwargs": {"bit_length": 8}}
    a, b = make_state(MultiTileResidual(n_tiles=1), **kw), make_state(AnalogSGD(), **kw)
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        x, d = torch.randn(2, SHAPE[1], generator=gen), torch.randn(2, SHAPE[0], generator=gen)
        a.step(x, d, 0.05)
        b.step(x, d, 0.05)
    assert torch.equal(a.effective_weight(), b.effective_weight())


def test_multi_timescale_schedule():
    st = make_state(MultiTileResidual(n_tiles=3, gamma=0.5, transfer_every=[3, 2]))
    x, d = torch.randn(1, SHAPE[1]), torch.randn(1, SHAPE[0])
    for _ in range(12):
        st.step(x, d, 0.01)
    c = st.counters
    assert (c["updates_P2"], c["updates_P1"], c["updates_W"]) == (12, 6, 2)
    assert st.summary()["transfers"] == {"P2->P1": 6, "P1->W": 2}
    assert st.summary()["pulses"]["W"]["total"] > 0


def test_transfer_writes_scaled_read_of_faster_tile():
    dev = at.devices.Ideal(dw_min=1e-4)
    st = make_state(MultiTileResidual(n_tiles=2, gamma=0.5, transfer_lr=0.3, transfer_every=1), device=dev,
                    init=torch.zeros(SHAPE))
    p = 0.2 * torch.randn(SHAPE, generator=torch.Generator().manual_seed(2))
    st.arrays["P1"].program(p)
    st.step(torch.zeros(1, SHAPE[1]), torch.zeros(1, SHAPE[0]), lr=0.5)
    torch.testing.assert_close(st.arrays["W"].read(), 0.15 * p, rtol=0, atol=1e-6)


def scalar_toy_floor(n_tiles, steps=8000, problems=128, seed=0):
    """2510.02516 Sec. 5 toy: f = (w - b)^2 / 2 per element, soft bounds on [-1, 1] with
    dw_min = 0.5 (4 states), unbiased whole pulses (stochastic rounding). ``problems``
    independent scalars b in [-0.8, 0.8] are stacked as the rows of a (problems, 1) array.
    Returns the mean squared error of the composite weight over the second half of the run."""
    dev = at.devices.SoftBounds(tau=1.0, asymmetry=0.0, dw_min=0.5)
    b = torch.rand(problems, 1, generator=torch.Generator().manual_seed(123)) * 1.6 - 0.8
    algo = (AnalogSGD() if n_tiles == 1 else
            MultiTileResidual(n_tiles=n_tiles, gamma=0.75, transfer_lr=0.01, transfer_every=5))
    st = make_state(algo, device=dev, engine="deterministic",
                    engine_kwargs={"bit_length": 1000, "rounding": "stochastic"},
                    shape=(problems, 1), init=torch.zeros(problems, 1), seed=seed)
    x = torch.ones(1, 1)
    errs = []
    for k in range(steps):
        st.step(x, (st.effective_weight() - b).T, 0.1)
        if k >= steps // 2 and k % 10 == 0:
            errs.append(((st.effective_weight() - b) ** 2).mean())
    return float(torch.stack(errs).mean())


def test_scalar_toy_error_floor_decreases_with_tiles():
    floors = [scalar_toy_floor(n) for n in (1, 2, 3, 4)]
    # measured (seeds 0, 1, 2): 1 tile 0.050-0.052, 2 tiles 0.029-0.033, 3 tiles 0.017-0.020, 4 tiles 0.010-0.011
    for coarse, fine in itertools.pairwise(floors):
        assert fine < 0.85 * coarse, floors
    assert floors[-1] < 0.35 * floors[0], floors
