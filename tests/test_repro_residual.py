"""Small versions of the reproductions of 2502.06309 (reference/residual_learning.md 4.2 and 6.5-6.8).

- least squares (Fig. 2): with a zero-SP device TT/RL end far below Analog SGD; with the SP of
  P off zero (c_Lin = 0.3 on both arrays) TT/RL end above Analog SGD (the ordering reverses).
- quadratic exactness: Analog SGD keeps its noise-induced bias (theory.analog_sgd_fixed_point);
  RL with a zero-SP P reaches w* to a few dw_min; RL whose P has its SP off zero keeps a bias of
  about c * Sigma' / L with Sigma' = E|grad f(W_bar; xi)| (derived in the reference, sec. 3.4).
"""

import pathlib

import pytest
import torch

import analogtrain as at
from analogtrain import theory
from analogtrain.algorithms import AnalogSGD, ResidualLearning, TikiTaka

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(autouse=True)
def one_thread():
    """These loops are many tiny ops: one thread is faster and leaves the other core free."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ----------------------------------------------------------------------------- least squares
def least_squares_loss(algo, asymmetry, rows=40, cols=20, iters=500, lr=0.8, seed=0):
    """f(W_bar) = 1/2 mean (A W_bar - b)^2 after ``iters`` full-batch steps (paper code settings:
    tau 3.5, dw_min 1e-4, stochastic pulse trains with BL 8 per sample, W initialised to 1,
    transfers of all columns every step written by the compact rule with granularity noise)."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(rows, cols, generator=gen)
    w_star = 0.5 * torch.randn(1, cols, generator=gen)
    b = a @ w_star.T
    dev = at.devices.SoftBounds(tau=3.5, asymmetry=asymmetry, dw_min=1e-4)
    cfg = at.AnalogConfig(algorithm=algo, device=dev, engine="stochastic", engine_kwargs={"bit_length": 8},
                          transfer_engine=at.pulses.ExpectedEngine(granularity_noise=True))
    st = algo.init(at.TileSpec((1, cols), cfg, seed=seed, init_weight=torch.ones(1, cols)))
    for _ in range(iters):
        d = (a @ st.effective_weight().T - b) / rows
        st.step(a, d, lr)
    return 0.5 * float(((a @ st.effective_weight().T - b) ** 2).mean())


ALGOS = {
    "analog_sgd": AnalogSGD,
    "tiki_taka": lambda: TikiTaka(columns_per_transfer=None),
    "residual": lambda: ResidualLearning(gamma=0.4, all_columns=True),
}


def test_least_squares_zero_sp_tt_rl_beat_analog_sgd_and_ordering_reverses_at_c03():
    # at c = 0.3 the ordering is reversed within the first 150 iterations already
    loss = {(name, c): least_squares_loss(make(), c, iters=500 if c == 0 else 150)
            for c in (0.0, 0.3) for name, make in ALGOS.items()}
    # measured (seeds 0-3): c=0: ASGD 0.15, TT 0.013-0.069, RL ~1e-5; c=0.3 (150 it.): ASGD 9.2, TT 76, RL 78.
    # The paper's "TT/RL" run is aihwkit's TransferCompound with gamma 0.4, i.e. RL: 3x is asserted for
    # it. Plain TT-v1 (gamma 0) is only ahead while Analog SGD is still converging (equal at 800
    # iterations), so it gets the weaker bound.
    assert loss[("residual", 0.0)] * 3 < loss[("analog_sgd", 0.0)], loss
    assert loss[("residual", 0.0)] < 1e-3, loss  # RL reaches the dw_min-level floor (~1e-5)
    assert loss[("tiki_taka", 0.0)] < 0.6 * loss[("analog_sgd", 0.0)], loss
    for name in ("tiki_taka", "residual"):
        assert loss[(name, 0.3)] > loss[("analog_sgd", 0.3)], loss


@pytest.mark.slow
def test_least_squares_paper_size():
    """Paper size (A 100 x 50, 1000 iterations) for c in {0, 0.1, 0.2, 0.3}: TT/RL degrade with c."""
    rl = [least_squares_loss(ResidualLearning(gamma=0.4, all_columns=True), c, rows=100, cols=50, iters=1000)
          for c in (0.0, 0.1, 0.2, 0.3)]
    sgd = [least_squares_loss(AnalogSGD(), c, rows=100, cols=50, iters=1000) for c in (0.0, 0.3)]
    assert rl[0] * 3 < sgd[0]
    assert rl[-1] > sgd[-1]
    assert rl[0] < rl[1] < rl[3]


# ----------------------------------------------------------------------------- quadratic
W_STAR, NOISE, CURVATURE = 0.4, 0.5, 1.0


def quadratic_mean(algo, device, copies=200, steps=6000, lr=0.01, seed=0):
    """Long-run mean of the effective weight on f = (L/2)(w - w*)^2 with N(0, s^2) gradient noise,
    ``copies`` independent scalars, averaged over the second half of the run."""
    cfg = at.AnalogConfig(algorithm=algo, device=device, engine="expected", engine_kwargs={"granularity_noise": True})
    st = algo.init(at.TileSpec((copies, 1), cfg, seed=seed, init_weight=torch.zeros(copies, 1)))
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.ones(1, 1)
    total, n = torch.zeros(copies, 1), 0
    for k in range(steps):
        d = CURVATURE * (st.effective_weight() - W_STAR) + NOISE * torch.randn(copies, 1, generator=gen)
        st.step(x, d.T, lr)
        if k >= steps // 2:
            total += st.effective_weight()
            n += 1
    return float((total / n).mean())


def test_quadratic_exactness_and_mis_shifted_residual():
    dev_sp0 = at.devices.SoftBounds(tau=1.0, asymmetry=0.0, dw_min=1e-3)
    sgd = quadratic_mean(AnalogSGD(), dev_sp0)
    predicted_sgd = theory.analog_sgd_fixed_point(dev_sp0, CURVATURE, W_STAR, NOISE)
    assert abs(sgd - predicted_sgd) < 0.01
    assert W_STAR - sgd > 0.1  # Analog SGD's bias towards the SP (0.116)
    rl = quadratic_mean(ResidualLearning(gamma=0.5, transfer_lr=2.0), dev_sp0)
    # measured -0.005: a few dw_min (the residual bias comes from P's fluctuations seen through
    # W's asymmetric transfer, ~ sqrt(lr); it is the noisy-read effect that RLv2 filters)
    assert abs(rl - W_STAR) < 0.01
    c = 0.2
    dev_p = at.devices.SoftBounds(tau=1.0, asymmetry=c, dw_min=1e-3)  # P's SP at c * tau = 0.2
    rl_off = quadratic_mean(ResidualLearning(gamma=0.5, transfer_lr=2.0), {"W": dev_sp0, "P": dev_p})
    bias = 0.0
    for _ in range(50):  # L * bias = c * E|L * bias + s xi|
        bias = c * theory.expected_abs_gaussian(CURVATURE * bias, NOISE) / CURVATURE
    # measured 0.075 vs predicted 0.081
    assert rl_off - W_STAR == pytest.approx(bias, rel=0.2)


# ----------------------------------------------------------------------------- configs
@pytest.mark.parametrize("name", ["least_squares_asymmetry", "quadratic_exactness", "mnist_response_shapes",
                                  "cifar_resnet_finetune"])
def test_reproduction_configs_build(name):
    from analogtrain.experiments import build_config, load_config
    from analogtrain.experiments.config import resolve

    cfg = resolve(load_config(CONFIGS / f"{name}.toml"))
    analog = build_config(cfg)
    assert isinstance(analog, at.AnalogConfig)


# ----------------------------------------------------------------------------- ResNet task
def write_tiny_cifar(root: pathlib.Path, n_train=24, n_test=12, seed=0):
    """A CIFAR-10-format folder (pickled dicts with byte keys) whose label is the brightest channel."""
    import pickle

    import numpy as np

    rng = np.random.default_rng(seed)
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    for name, n in (("data_batch_1", n_train), ("test_batch", n_test)):
        labels = rng.integers(0, 3, n)
        data = rng.integers(0, 80, (n, 3, 32, 32), dtype=np.uint8)
        data[np.arange(n), labels] += 150
        with open(base / name, "wb") as f:
            pickle.dump({b"data": data.reshape(n, -1), b"labels": labels.tolist()}, f)


@pytest.mark.parametrize("depth", [18, 50])
def test_resnet_names_and_shapes(depth):
    from analogtrain.experiments.resnet import ResNet

    model = ResNet(depth, num_classes=10, width=8)
    names = dict(model.named_modules())
    assert {"conv1", "bn1", "layer1.0.conv1", "layer4", "fc"} <= set(names)
    out = model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 10)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(2))
    n_blocks = sum(1 for n in names if n.count(".") == 1 and n.startswith("layer"))
    assert n_blocks == (8 if depth == 18 else 16)


def test_resnet_pretrained_checkpoint_loads_except_mismatched_fc(tmp_path):
    from analogtrain.experiments.resnet import ResNet, load_pretrained

    src = ResNet(18, num_classes=1000, stem="imagenet", width=8)
    torch.save(src.state_dict(), tmp_path / "r18.pth")
    dst = ResNet(18, num_classes=10, stem="imagenet", width=8)
    left = load_pretrained(dst, str(tmp_path / "r18.pth"))
    assert left == ["fc.bias", "fc.weight"]
    torch.testing.assert_close(dst.layer3[1].conv2.weight, src.layer3[1].conv2.weight)


def test_cifar_resnet_finetune_runs_on_tiny_synthetic_set(tmp_path):
    from analogtrain.experiments import load_config, run_experiment

    write_tiny_cifar(tmp_path / "cifar")
    cfg = load_config(CONFIGS / "cifar_resnet_finetune.toml")
    cfg["task"].update(data_dir=str(tmp_path / "cifar"), width=8)
    cfg["train"].update(epochs=2, batch_size=8, lr_step_epochs=0, device="cpu", lr=0.05)
    cfg["io"] = {"perfect": True}
    cfg["engine"] = {"name": "expected"}
    summary = run_experiment(cfg, tmp_path / "run", quiet=True)
    assert summary["status"] == "finished"
    fc = summary["layers"]["fc"]
    assert set(fc["pulses"]) == {"W", "P"}
    assert fc["pulses"]["P"]["total"] > 0 and fc["transfers"]["P->W"] == 2 * 3  # 24 images / batch 8
    assert 0.0 <= summary["metrics"]["test_accuracy"] <= 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cifar_resnet_finetune_on_cuda(tmp_path):
    from analogtrain.experiments import load_config, run_experiment

    write_tiny_cifar(tmp_path / "cifar")
    cfg = load_config(CONFIGS / "cifar_resnet_finetune.toml")
    cfg["task"].update(data_dir=str(tmp_path / "cifar"), width=8)
    cfg["train"].update(epochs=1, batch_size=8, lr_step_epochs=0, device="cuda")
    summary = run_experiment(cfg, tmp_path / "run", quiet=True)
    assert summary["status"] == "finished" and summary["device"].startswith("cuda")
    assert summary["layers"]["fc"]["pulses"]["P"]["total"] > 0
