"""Periphery (DAC/ADC, bounds, noise, noise and bound management) against aihwkit semantics.

Statistical tests use n independent draws and a fixed seed; the tolerance is stated next
to each assert in units of the estimator's standard error (se).
"""

import math

import pytest
import torch

from analogtrain import IO

NO_NOISE = {"out_noise": 0.0}


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_perfect_is_matmul():
    x = torch.randn(16, 7, generator=gen(1))
    w = torch.randn(5, 7, generator=gen(2))
    y = IO.perfect().mvm(x, w, gen())
    assert torch.equal(y, x @ w.T)


def test_default_steps_match_aihwkit():
    io = IO()
    # aihwkit: inp_res = 1/(2^7-2), out_res = 1/(2^9-2) as fractions of the range 2*bound
    assert io.inp_step == pytest.approx(2.0 / 126, rel=1e-15)
    assert io.out_step == pytest.approx(24.0 / 510, rel=1e-15)
    assert (io.inp_bound, io.out_bound, io.out_noise) == (1.0, 12.0, 0.06)
    assert (io.noise_management, io.bound_management) == ("abs_max", "iterative")
    assert io.max_bound_reduction == 16.0  # first power of 2 above 0.25 / (2/126) = 15.75
    assert IO(inp_bits=None).max_bound_reduction == 1024.0  # first power of 2 above max_bm_factor 1000
    assert IO.paper() == IO()
    assert IO.paper_transfer().noise_management == "none" and IO.paper_transfer().bound_management == "none"


def test_dac_rounds_to_exact_steps_and_clips():
    io = IO(out_bits=None, noise_management="none", bound_management="none", **NO_NOISE)
    x = torch.linspace(-1.5, 1.5, 1001, dtype=torch.float64)[:, None]
    y = io.mvm(x, torch.ones(1, 1, dtype=torch.float64))[:, 0]
    step = 2.0 / 126
    expected = (torch.round(x[:, 0] / step) * step).clamp(-1, 1)
    assert torch.equal(y, expected)
    levels = torch.unique(y)
    assert levels.numel() == 127  # 2^7 - 1 levels, symmetric around 0
    assert torch.allclose(levels[1:] - levels[:-1], torch.full((126,), step, dtype=torch.float64), atol=1e-12)
    assert y.abs().max() == 1.0


def test_adc_rounds_to_exact_steps_and_clips():
    io = IO(inp_bits=None, inp_bound=math.inf, noise_management="none", bound_management="none", **NO_NOISE)
    x = torch.linspace(-15, 15, 3001, dtype=torch.float64)[:, None]
    y = io.mvm(x, torch.ones(1, 1, dtype=torch.float64))[:, 0]
    step = 24.0 / 510
    assert torch.equal(y, (torch.round(x[:, 0] / step) * step).clamp(-12, 12))
    assert torch.unique(y).numel() == 511
    assert y.max() == 12.0 and y.min() == -12.0


def test_output_noise_std():
    n = 200_000
    io = IO(inp_bits=None, out_bits=None, noise_management="none", bound_management="none", out_noise=0.06)
    y = io.mvm(torch.zeros(n, 1, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64), gen(3))[:, 0]
    se_std = 0.06 / math.sqrt(2 * n)
    assert abs(y.std().item() - 0.06) < 5 * se_std
    assert abs(y.mean().item()) < 5 * 0.06 / math.sqrt(n)


def test_output_noise_is_scaled_back_by_abs_max():
    # the array sees x / max|x|, so the noise in the result is out_noise * max|x|
    n = 100_000
    io = IO(inp_bits=None, out_bits=None, bound_management="none", out_noise=0.06)
    x = torch.zeros(n, 2, dtype=torch.float64)
    x[:, 0] = 3.0
    w = torch.tensor([[0.0, 1.0]], dtype=torch.float64)  # reads the zero input: pure noise
    y = io.mvm(x, w, gen(4))[:, 0]
    assert abs(y.std().item() - 0.18) < 5 * 0.18 / math.sqrt(2 * n)


def test_input_and_weight_noise_std():
    n = 100_000
    x = torch.ones(n, 4, dtype=torch.float64)  # ||x||_2 = 2 after abs-max scaling
    w = torch.ones(1, 4, dtype=torch.float64)  # ||w_row||_2 = 2
    base = {"inp_bits": None, "out_bits": None, "bound_management": "none", "out_noise": 0.0}
    y = IO(inp_noise=0.05, **base).mvm(x, w, gen(5))[:, 0]
    assert abs(y.std().item() - 0.05 * 2) < 5 * 0.1 / math.sqrt(2 * n)
    assert abs(y.mean().item() - 4.0) < 5 * 0.1 / math.sqrt(n)
    y = IO(w_noise=0.03, **base).mvm(x, w, gen(6))[:, 0]
    assert abs(y.std().item() - 0.03 * 2) < 5 * 0.06 / math.sqrt(2 * n)


def test_abs_max_makes_result_invariant_to_input_scale():
    x = torch.randn(64, 20, generator=gen(7), dtype=torch.float64)
    w = torch.randn(8, 20, generator=gen(8), dtype=torch.float64) * 0.3
    io = IO()
    y = io.mvm(x, w, gen(9))
    for k in (-12, 10):  # powers of two: x / max|x| is bit-identical, so is everything after it
        assert torch.equal(io.mvm(x * 2.0**k, w, gen(9)), y * 2.0**k)
    # any scale: same up to output noise and quantisation, relative to the result's scale
    exact = x @ w.T
    for s in (1e-4, 1.0, 1e4):
        ys = io.mvm(x * s, w, gen(10)) / s
        # error per output: DAC (20 lines * step/2 * |w|) + noise 0.06 * 4 sigma + ADC step/2, times max|x|
        bound = (20 * (1 / 126) * 0.3 * 4 + 4 * 0.06 + 12 / 510) * x.abs().amax(1, keepdim=True)
        assert ((ys - exact).abs() <= bound).all()
    # without noise management small inputs vanish in the DAC
    plain = IO(noise_management="none", **NO_NOISE)
    assert torch.count_nonzero(plain.mvm(x * 1e-3, w)) == 0


def test_zero_input_vector_gives_zero_output_with_abs_max():
    x = torch.zeros(3, 5)
    x[1, 2] = 0.5
    y = IO().mvm(x, torch.ones(4, 5), gen())
    assert torch.equal(y[0], torch.zeros(4)) and torch.equal(y[2], torch.zeros(4))
    assert (y[1] != 0).all()


def test_iterative_bound_management_recovers_saturated_outputs():
    w = torch.full((3, 8), 5.0, dtype=torch.float64)
    x = torch.ones(2, 8, dtype=torch.float64)
    x[1, 1:] = 0.0  # sample 1 stays within bounds (5 < 12) and is not re-run
    exact = x @ w.T  # 40 and 5
    ideal_dac = dict(inp_bits=None, **NO_NOISE)  # isolates the ADC (reduced inputs leave the DAC grid)
    no_bm = IO(bound_management="none", **ideal_dac).mvm(x, w)
    assert torch.all(no_bm[0] == 12.0)  # ADC saturates
    y = IO(**ideal_dac).mvm(x, w)
    # sample 0 needs reduction 4 (40/4 = 10 < 12): error at most 4 ADC half-steps
    assert torch.all((y[0] - exact[0]).abs() <= 4 * (12 / 510) + 1e-12)
    assert torch.equal(y[1], no_bm[1])
    # with the 7-bit DAC the reduced input 1/4 leaves the DAC grid: error <= 8 lines * 5 * inp_step/2 * 4
    y_dac = IO(**NO_NOISE).mvm(x, w)
    assert torch.all((y_dac[0] - exact[0]).abs() <= 4 * (8 * 5 / 126 + 12 / 510))
    # outputs beyond 16 * out_bound stay clipped at the final reduction 16 (aihwkit max_bm_res rule)
    y_big = IO(**NO_NOISE).mvm(x, w * 100)
    assert torch.all(y_big[0] == 16 * 12.0)


def test_bound_management_with_noise_is_reproducible_and_unbiased():
    w = torch.full((4, 16), 2.0)
    x = torch.ones(2000, 16)
    io = IO(inp_bits=None)
    y1 = io.mvm(x, w, gen(11))
    assert torch.equal(y1, io.mvm(x, w, gen(11)))
    # reduction 4 (32/4 = 8): noise std 4 * 0.06, mean over 8000 outputs within 5 se (+ quantisation)
    assert abs(y1.mean().item() - 32.0) < 5 * 0.24 / math.sqrt(8000) + 4 * 12 / 510


def test_backward_has_no_bound_management():
    io = IO(inp_bits=None, **NO_NOISE)
    back = io.backward_io()
    assert back.bound_management == "none"
    assert back.noise_management == io.noise_management and back.out_noise == io.out_noise
    w = torch.full((3, 8), 5.0)
    d = torch.ones(1, 3)
    # backward MVM: grad_x = d @ W, i.e. an MVM with W^T; 15 > 12 saturates
    assert torch.all(back.mvm(d, w.T) == 12.0)
    assert torch.allclose(io.mvm(d, w.T), torch.full((1, 8), 15.0), atol=2 * 12 / 510)


def test_read_columns():
    w = torch.randn(6, 9, generator=gen(12), dtype=torch.float64) * 0.5
    cols = torch.tensor([0, 4, 8, 4])
    assert torch.equal(IO.perfect().read_columns(w, cols), w[:, cols])
    io = IO(out_noise=0.0)
    step = 24 / 510
    assert torch.allclose(io.read_columns(w, cols), torch.round(w[:, cols] / step) * step, atol=1e-12)
    # noisy reads: mean of 4000 reads within 5 se of the column
    noisy = IO(out_bits=None)
    reads = torch.stack([noisy.read_columns(w, cols, g) for g in [gen(100 + i) for i in range(4000)]])
    assert (reads.mean(0) - w[:, cols]).abs().max() < 5 * 0.06 / math.sqrt(4000)


def test_one_dimensional_input():
    x = torch.randn(7, generator=gen(13))
    w = torch.randn(3, 7, generator=gen(14))
    assert torch.equal(IO.perfect().mvm(x, w), w @ x)
    assert IO().mvm(x, w, gen()).shape == (3,)


@pytest.mark.parametrize(
    "field, value",
    [
        ("inp_bits", 1),
        ("inp_bits", 7.5),
        ("out_bits", 0),
        ("inp_bound", 0.0),
        ("out_bound", -1.0),
        ("out_bound", math.inf),
        ("inp_noise", -0.1),
        ("out_noise", -0.1),
        ("w_noise", -1.0),
        ("noise_management", "max"),
        ("bound_management", "shift"),
        ("max_bm_factor", 0.5),
        ("max_bm_res", 0.0),
    ],
)
def test_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        IO(**{field: value})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_mvm_on_cuda_matches_seeded_runs():
    dev = torch.device("cuda")
    x = torch.randn(32, 10, device=dev)
    w = torch.randn(5, 10, device=dev) * 3
    io = IO()
    g1 = torch.Generator(device=dev).manual_seed(0)
    g2 = torch.Generator(device=dev).manual_seed(0)
    y = io.mvm(x, w, g1)
    assert y.device.type == "cuda"
    assert torch.equal(y, io.mvm(x, w, g2))
