"""AnalogArray: reference handling, write noise, pulse counters, state_dict, placement, seeding."""

import math

import pytest
import torch

import analogtrain as at
from analogtrain.arrays import AnalogArray, ReferenceOffset
from analogtrain.devices import Ideal, SoftBounds, get_preset

F64 = torch.float64


def test_read_is_state_minus_reference():
    dev = SoftBounds(tau=1.0, asymmetry=0.2, dw_min=1e-3)
    arr = AnalogArray((4, 5), dev, reference=0.25, init=0.1, dtype=F64)
    torch.testing.assert_close(arr.read(), torch.full((4, 5), 0.1, dtype=F64))
    torch.testing.assert_close(arr.state, torch.full((4, 5), 0.35, dtype=F64))
    torch.testing.assert_close(arr.read_symmetric_point(), torch.full((4, 5), 0.2 - 0.25, dtype=F64))


def test_symmetric_point_reference_zero_shifts_every_element():
    dev = SoftBounds(tau=0.6, dw_min=1e-3, device_to_device={"up_down": 0.05, "w_max": 0.2, "w_min": 0.2})
    arr = AnalogArray((20, 30), dev, seed=3, reference="symmetric_point", dtype=F64)
    sp = arr.symmetric_point()
    assert float(sp.std()) > 0.01  # per-element SPs really differ
    torch.testing.assert_close(arr.reference, sp)
    torch.testing.assert_close(arr.read_symmetric_point(), torch.zeros_like(sp))
    # G of the sampled device vanishes at the reference
    torch.testing.assert_close(arr.device.G(arr.reference), torch.zeros_like(sp), rtol=0, atol=1e-9)
    # init 0 is programmed relative to the reference: the state sits at the SP
    torch.testing.assert_close(arr.state, sp)


def test_reference_offset_statistics():
    """r = SP + mean + std xi (2602.21321 eq. 105): n = 40000, tolerance 4 standard errors."""
    dev = SoftBounds(tau=1.0, asymmetry=0.1, dw_min=1e-3)
    arr = AnalogArray((200, 200), dev, seed=0, reference=ReferenceOffset(mean=0.05, std=0.1), dtype=F64)
    off = arr.reference - arr.symmetric_point()
    n = off.numel()
    assert float(off.mean()) == pytest.approx(0.05, abs=4 * 0.1 / math.sqrt(n))
    assert float(off.std()) == pytest.approx(0.1, abs=4 * 0.1 / math.sqrt(2 * n))
    same = AnalogArray((200, 200), dev, seed=0, reference=ReferenceOffset(mean=0.05, std=0.1), dtype=F64)
    assert torch.equal(same.reference, arr.reference)
    with pytest.raises(ValueError, match="std"):
        ReferenceOffset(mean=0.0, std=-0.1)


def test_set_reference_variants():
    dev = SoftBounds(tau=1.0, asymmetry=0.3, dw_min=1e-3)
    arr = AnalogArray((3, 3), dev, dtype=F64)
    assert torch.equal(arr.reference, torch.zeros(3, 3, dtype=F64))
    arr.set_reference(torch.arange(9, dtype=F64).reshape(3, 3) / 100)
    assert float(arr.reference[2, 2]) == pytest.approx(0.08)
    arr.set_reference("symmetric_point")
    torch.testing.assert_close(arr.reference, torch.full((3, 3), 0.3, dtype=F64))
    arr.set_reference(None)
    assert float(arr.reference.abs().max()) == 0.0
    with pytest.raises(ValueError, match="reference"):
        arr.set_reference("mean")


def test_program_clamps_to_bounds_and_counts_writes():
    arr = AnalogArray((2, 3), SoftBounds(tau=0.5, dw_min=1e-3), dtype=F64)
    arr.program(torch.tensor([[0.1, 0.9, -0.9], [0.0, 0.2, -0.2]], dtype=F64))
    torch.testing.assert_close(arr.read(), torch.tensor([[0.1, 0.5, -0.5], [0.0, 0.2, -0.2]], dtype=F64))
    assert arr.programming_writes == 6


def test_pulse_count_accumulates_exact_counts():
    arr = AnalogArray((2, 2), Ideal(dw_min=0.1), engine="deterministic", dtype=F64)
    arr.update(torch.tensor([[0.25, -0.1], [0.0, 0.05]], dtype=F64))  # 3 up, 1 down, 0, 1 up
    assert arr.pulse_count == {"up": 4.0, "down": 1.0, "total": 5.0}
    arr.update(torch.tensor([[-0.3, -0.3], [0.1, 0.0]], dtype=F64))  # 6 down, 1 up
    assert arr.pulse_count == {"up": 5.0, "down": 7.0, "total": 12.0}
    torch.testing.assert_close(arr.read(), torch.tensor([[0.0, -0.4], [0.1, 0.1]], dtype=F64), rtol=0, atol=1e-12)
    arr.reset_pulse_count()
    assert arr.pulse_count["total"] == 0.0


def test_update_outer_counts_pulses_of_the_stochastic_engine():
    arr = AnalogArray((16, 32), SoftBounds(tau=1.0, dw_min=1e-3), engine="stochastic", seed=1)
    g = torch.Generator().manual_seed(0)
    total = 0.0
    for _ in range(3):
        x = torch.rand(4, 32, generator=g)
        d = torch.randn(4, 16, generator=g) * 0.1
        stats = arr.update_outer(x, d, 0.05)
        total += float(stats.up + stats.down)
    assert arr.pulse_count["total"] == total > 0


def test_update_shape_errors():
    arr = AnalogArray((3, 4), SoftBounds(tau=1.0))
    with pytest.raises(ValueError, match="delta"):
        arr.update(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="update_outer"):
        arr.update_outer(torch.zeros(2, 3), torch.zeros(2, 4), 0.1)
    with pytest.raises(ValueError, match="shape"):
        AnalogArray((0, 4), SoftBounds(tau=1.0))
    with pytest.raises(ValueError, match="device"):
        AnalogArray((2, 2), "softbounds")
    with pytest.raises(ValueError, match="engine"):
        AnalogArray((2, 2), SoftBounds(tau=1.0), engine="exact")


def test_write_noise_semantics():
    """Write noise (units of dw_min) is a fresh Gaussian on the read value of every element that
    was written, redrawn each write; the hidden state is the one of a noise-free device."""
    dw, wn = 1e-3, 0.6
    noisy = AnalogArray((100, 200), SoftBounds(tau=1.0, dw_min=dw, write_noise=wn), engine="deterministic",
                        seed=4, dtype=F64)
    clean = AnalogArray((100, 200), SoftBounds(tau=1.0, dw_min=dw), engine="deterministic", seed=4, dtype=F64)
    torch.testing.assert_close(noisy.read(), clean.read())  # nothing written yet
    delta = torch.zeros(100, 200, dtype=F64)
    delta[:50] = 2e-3  # only the first half is written
    noisy.update(delta)
    clean.update(delta)
    assert torch.equal(noisy.state, clean.state)
    offset = noisy.read() - noisy.state
    assert float(offset[50:].abs().max()) == 0.0
    n = offset[:50].numel()
    assert float(offset[:50].std()) == pytest.approx(dw * wn, rel=4 / math.sqrt(2 * n))
    assert float(offset[:50].mean()) == pytest.approx(0.0, abs=4 * dw * wn / math.sqrt(n))
    first = offset.clone()
    delta2 = torch.zeros(100, 200, dtype=F64)
    delta2[:25] = 1e-3
    noisy.update(delta2)
    second = noisy.read() - noisy.state
    assert torch.equal(second[25:], first[25:])  # untouched elements keep their offset
    assert float((second[:25] - first[:25]).abs().min()) > 0  # rewritten elements get a new draw
    # the stochastic engine (outer updates) also redraws only the elements it pulsed
    arr = AnalogArray((8, 8), SoftBounds(tau=1.0, dw_min=dw, write_noise=wn), engine="stochastic", seed=2)
    x = torch.zeros(1, 8)
    x[0, :3] = 1.0
    arr.update_outer(x, -torch.ones(1, 8), 0.01)
    off = arr.read() - arr.state
    assert float(off[:, 3:].abs().max()) == 0.0
    assert float(off[:, :3].abs().min()) > 0


@pytest.mark.parametrize("engine", ["expected", "stochastic", "deterministic"])
def test_state_dict_round_trip_continues_bit_for_bit(engine):
    dev = get_preset("aihwkit_softbounds")

    def steps(arr, g, n):
        for _ in range(n):
            x = torch.rand(4, 12, generator=g)
            d = torch.randn(4, 6, generator=g) * 0.3
            arr.update_outer(x, d, 0.05)

    data = torch.Generator().manual_seed(0)
    a = AnalogArray((6, 12), dev, engine=engine, seed=5, init=0.1)
    steps(a, data, 3)
    sd = a.state_dict()
    data_state = data.get_state()
    steps(a, data, 3)
    b = AnalogArray((6, 12), dev, engine=engine, seed=999, init=-0.3)  # different seed, overwritten by load
    b.load_state_dict(sd)
    data.set_state(data_state)
    steps(b, data, 3)
    assert torch.equal(a.state, b.state)
    assert torch.equal(a.read(), b.read())
    assert a.pulse_count == b.pulse_count
    for name, v in a.device.params().items():
        assert torch.equal(v, b.device.params()[name])


@pytest.mark.parametrize("engine", ["expected", "stochastic", "deterministic"])
def test_arrays_same_seed_same_run(engine):
    dev = SoftBounds(tau=0.6, dw_min=1e-3, cycle_noise=0.3, write_noise=0.5,
                     device_to_device={"dw_min": 0.3, "w_max": 0.3})

    def run(seed):
        arr = AnalogArray((8, 10), dev, engine=engine, seed=seed, reference=ReferenceOffset(0.0, 0.05))
        g = torch.Generator().manual_seed(1)
        for _ in range(4):
            arr.update_outer(torch.rand(3, 10, generator=g), torch.randn(3, 8, generator=g), 0.1)
        return arr.read()

    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))


def test_to_dtype_keeps_values_and_parameters():
    dev = SoftBounds(tau=0.6, dw_min=1e-3, device_to_device={"dw_min": 0.3})
    arr = AnalogArray((4, 6), dev, seed=0, init=0.2, reference=0.05)
    before = arr.read().clone()
    arr.to(dtype=F64)
    assert arr.dtype == F64 and arr.state.dtype == F64 and arr.reference.dtype == F64
    assert arr.device.dw_min.dtype == F64
    torch.testing.assert_close(arr.read(), before.to(F64))
    arr.update(torch.full((4, 6), 1e-3, dtype=F64))
    assert arr.read().dtype == F64
    # pulse trains are sized with the nominal (mean) granularity: 1e-3 / mean(dw_min) per element
    assert arr.pulse_count["total"] == pytest.approx(24 * 1e-3 / float(arr.device.dw_min.mean()), rel=1e-9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("engine", ["expected", "stochastic", "deterministic"])
def test_array_on_cuda(engine):
    dev = get_preset("aihwkit_softbounds")
    arr = AnalogArray((16, 32), dev, engine=engine, seed=0, torch_device="cuda")
    x = torch.rand(8, 32, device="cuda")
    d = torch.randn(8, 16, device="cuda") * 0.1
    arr.update_outer(x, d, 0.05)
    assert arr.read().device.type == "cuda"
    assert arr.pulse_count["total"] > 0
    cpu = AnalogArray((16, 32), dev, engine=engine, seed=0).to("cuda")
    assert cpu.state.device.type == "cuda"


def test_read_cache_follows_every_change():
    arr = AnalogArray((3, 4), SoftBounds(tau=1.0, dw_min=1e-2), engine="deterministic", dtype=F64, init=0.1)
    first = arr.read()
    assert arr.read() is first  # no change: cached
    arr.update(torch.full((3, 4), 0.02, dtype=F64))
    second = arr.read()
    assert second is not first and float(second[0, 0]) > 0.1
    arr.program(torch.zeros(3, 4, dtype=F64))
    assert float(arr.read().abs().max()) == 0.0
    arr.program(torch.full((3, 4), 0.3, dtype=F64))
    torch.testing.assert_close(arr.read(), torch.full((3, 4), 0.3, dtype=F64))
    arr.set_reference(0.1)
    torch.testing.assert_close(arr.read(), torch.full((3, 4), 0.2, dtype=F64))
    out = arr.read()
    out.add_(1.0)  # a caller modifying its copy in place does not poison the cache
    torch.testing.assert_close(arr.read(), torch.full((3, 4), 0.2, dtype=F64))
    arr.state.add_(0.05)  # in-place change of the state
    torch.testing.assert_close(arr.read(), torch.full((3, 4), 0.25, dtype=F64))
    with torch.inference_mode():
        torch.testing.assert_close(arr.read(), torch.full((3, 4), 0.25, dtype=F64))


@pytest.mark.parametrize("write_noise", [0.0, 0.5])
@pytest.mark.parametrize("reference", [None, ReferenceOffset(mean=0.1, std=0.05)])
def test_read_into_equals_read(write_noise, reference):
    arr = AnalogArray((6, 5), SoftBounds(tau=1.0, dw_min=1e-2, write_noise=write_noise), engine="stochastic",
                      seed=4, reference=reference, init=0.1)
    arr.update(torch.full((6, 5), 0.05))
    out = torch.full((6, 5), float("nan"))
    assert arr.read_into(out) is out
    assert torch.equal(out, arr.read())
    assert all(t is d for t, d in zip(arr.read_dependencies(), (arr.state, arr.reference, arr.write_offset)))


def test_write_noise_redraws_only_the_written_elements():
    """Write noise (aihwkit write_noise_std): every element a pulse reaches gets a fresh offset
    dw_min * write_noise * xi; the others keep theirs. A one-column write draws only for that
    column (the sparse path) with the right spread; a full update redraws every element."""
    dev = SoftBounds(tau=0.6, dw_min=1e-3, write_noise=0.5)
    arr = AnalogArray((4000, 6), dev, engine="stochastic", seed=1)
    arr.update(torch.full((4000, 6), 2e-3))  # every element: the dense path
    before = arr.write_offset.clone()
    assert float(before.std()) == pytest.approx(0.5e-3, rel=0.03)
    counts = torch.zeros(4000, 6)
    counts[:, 2] = 1.0
    arr.fire(counts)
    after = arr.write_offset
    keep = torch.ones(6, dtype=torch.bool)
    keep[2] = False
    assert torch.equal(after[:, keep], before[:, keep])
    fresh = after[:, 2]
    assert float(fresh.std()) == pytest.approx(0.5e-3, rel=0.05)  # 4000 draws: std of std ~1.1 %
    assert abs(float(fresh.mean())) < 5 * 0.5e-3 / 4000 ** 0.5
    assert float(torch.corrcoef(torch.stack([fresh, before[:, 2]]))[0, 1]) == pytest.approx(0.0, abs=0.07)


@pytest.mark.parametrize("columns", [True, False])
def test_read_lines_equals_the_indexed_read(columns):
    dev = SoftBounds(tau=0.6, dw_min=1e-3, write_noise=2.0, device_to_device={"dw_min": 0.3})
    arr = AnalogArray((5, 7), dev, seed=2, init=0.1, reference=torch.linspace(-0.1, 0.1, 35).reshape(5, 7))
    arr.fire(torch.ones(5, 7))  # write noise drawn for every element
    lines = torch.tensor([4, 0, 2])
    axis = 1 if columns else 0
    full = arr.read()
    assert torch.equal(arr.read_lines(lines, columns), full.index_select(axis, lines))  # from the read cache
    arr._read_cache = None
    assert torch.equal(arr.read_lines(lines, columns), full.index_select(axis, lines))  # computed on the lines
    assert arr.read_lines(None, columns) is arr.read()


def test_transfer_read_of_lines_through_a_noisy_periphery_equals_the_full_array_read():
    """A one-hot MVM of column c involves column c only: reading the selected lines alone gives
    the same values (noise draws included) as the one-hot MVMs on the whole array."""
    from analogtrain.algorithms.transfer import Lines, read_lines

    class Owner:
        counters, generators = {}, {}

    arr = AnalogArray((6, 9), SoftBounds(tau=1.0, dw_min=1e-3), seed=1, init=torch.rand(6, 9) - 0.5)
    io = at.IO(out_noise=0.05, out_bits=7)
    idx = torch.tensor([5, 3])  # valid rows and columns
    for columns in (True, False):
        lines = Lines(Owner(), (6, 9), 2, columns=columns)
        got = read_lines(arr, lines, idx, io, torch.Generator().manual_seed(5))
        value = arr.read()
        if columns:
            want = io.read_columns(value, idx, torch.Generator().manual_seed(5))
        else:
            want = io.read_columns(value.transpose(0, 1), idx, torch.Generator().manual_seed(5)).transpose(0, 1)
        assert torch.equal(got, want)
