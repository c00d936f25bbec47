"""Tasks: a model, its training batches, its loss and its evaluation.

A task is a small dataclass (its keywords are the ``[task]`` table of a config, validated at
construction) registered by name with :func:`register_task`. The run loop
(:mod:`analogtrain.experiments.runner`) only uses this interface:

- ``build_model(seed) -> nn.Module``: the digital model (``convert`` makes layers analog);
- ``setup(device, dtype)``: load/generate data onto the torch device once;
- ``train_batches(batch_size, generator)``: one epoch of (input, target) pairs;
- ``loss(output, target)``: the training loss (mean over the batch);
- ``evaluate(model) -> dict``: metrics such as ``test_loss``, ``test_accuracy``, ``loss``.

Other modules add tasks by decorating a Task subclass with ``@register_task("name")`` and
adding their module path to ``TASK_MODULES`` (imported on the first lookup).
"""

from __future__ import annotations

import importlib
import math
from collections import OrderedDict
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

#: modules imported before a task lookup so that their @register_task decorators run
TASK_MODULES: list[str] = ["analogtrain.experiments.tasks", "analogtrain.experiments.resnet"]

TASKS: dict[str, type] = {}


def register_task(name: str):
    """Class decorator: make a Task subclass available as ``[task] name = "<name>"``."""

    def decorate(cls):
        if name in TASKS and TASKS[name] is not cls:
            raise ValueError(f"task {name!r} is already registered by {TASKS[name].__module__}")
        cls.name = name
        TASKS[name] = cls
        return cls

    return decorate


def task_names() -> list[str]:
    for module in TASK_MODULES:
        importlib.import_module(module)
    return sorted(TASKS)


def make_task(table: dict):
    """A task from its config table ``{name = "...", **keywords}`` (ValueError naming the key)."""
    from .config import _call

    if not isinstance(table, dict) or "name" not in table:
        raise ValueError("task.name is required")
    names = task_names()
    name = table["name"]
    if name not in TASKS:
        raise ValueError(f"task.name: unknown task {name!r}; available: {names}")
    return _call(TASKS[name], {k: v for k, v in table.items() if k != "name"}, "task")


class Task:
    """Base class of tasks (see the module docstring for the interface)."""

    name = "task"
    #: whether evaluate() reports test_accuracy
    classification = False
    #: batch size when [train] batch_size is not given
    default_batch_size = 1
    #: the metric sweeps and the demo summarise, and whether larger is better
    primary_metric = "loss"
    higher_is_better = False

    def setup(self, device: torch.device, dtype: torch.dtype = torch.float32) -> None:
        """Put the task's data on ``device`` in ``dtype`` (called once before training)."""
        self.device = torch.device(device)
        self.dtype = dtype

    def build_model(self, seed: int) -> nn.Module:
        raise NotImplementedError(f"{type(self).__name__} must implement build_model")

    def train_batches(self, batch_size: int, generator: torch.Generator):
        raise NotImplementedError(f"{type(self).__name__} must implement train_batches")

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement loss")

    def evaluate(self, model: nn.Module) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must implement evaluate")

    def describe(self) -> dict:
        return {"name": self.name, **{f.name: getattr(self, f.name) for f in fields(self)}}


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


def _weight_of(model: nn.Module) -> torch.Tensor:
    """The (effective) weight of the first layer with one; analog layers mirror theirs."""
    for module in model.modules():
        if isinstance(getattr(module, "weight", None), torch.Tensor):
            return module.weight
    raise ValueError("model has no layer with a weight")


# --------------------------------------------------------------------------- quadratic


@register_task("quadratic")
@dataclass
class Quadratic(Task):
    """f(w) = (L/2) ||w - w*||^2 on ``dim`` analog weights, gradient noise of std ``noise_std``.

    Realised as a 1-layer linear model y = W x with W of shape (dim, 1) and constant input
    x = sqrt(L); the target t = sqrt(L) w* + (noise_std / sqrt(L)) xi makes the per-sample
    gradient of 0.5 ||y - t||^2 equal to L (w - w*) - noise_std * xi, i.e. exact gradient plus
    Gaussian noise of std ``noise_std`` per element (reference/residual_learning.md sec. 6).
    ``w_star`` is a number (all elements) or a list of ``dim`` numbers; ``init`` the start.
    An epoch is ``steps`` optimizer steps. Metrics: ``loss`` (noise-free f), ``weight_error``
    = ||w - w*||, ``weight_mean``.
    """

    dim: int = 1
    L: float = 1.0
    w_star: float | list = 0.5
    noise_std: float = 0.0
    init: float = 0.0
    steps: int = 100

    default_batch_size = 1

    def __post_init__(self):
        _check(isinstance(self.dim, int) and self.dim >= 1, f"task.dim must be an integer >= 1, got {self.dim!r}")
        _check(self.L > 0, f"task.L must lie in (0, inf), got {self.L!r}")
        _check(self.noise_std >= 0, f"task.noise_std must lie in [0, inf), got {self.noise_std!r}")
        _check(isinstance(self.steps, int) and self.steps >= 1, f"task.steps must be an integer >= 1, got {self.steps!r}")
        if isinstance(self.w_star, list):
            _check(len(self.w_star) == self.dim, f"task.w_star must have dim = {self.dim} entries, got {len(self.w_star)}")

    def setup(self, device, dtype=torch.float32):
        super().setup(device, dtype)
        self.w_star_tensor = torch.as_tensor(self.w_star, dtype=dtype, device=self.device).expand(self.dim)

    def build_model(self, seed):
        model = nn.Sequential(OrderedDict(w=nn.Linear(1, self.dim, bias=False)))
        with torch.no_grad():
            model.w.weight.fill_(float(self.init))
        return model

    def train_batches(self, batch_size, generator):
        root_l = math.sqrt(self.L)
        x = torch.full((batch_size, 1), root_l, device=self.device, dtype=self.dtype)
        for _ in range(self.steps):
            noise = torch.randn((batch_size, self.dim), generator=generator).to(self.device, self.dtype)
            yield x, root_l * self.w_star_tensor + (self.noise_std / root_l) * noise

    def loss(self, output, target):
        return 0.5 * (output - target).pow(2).sum(dim=1).mean()

    @torch.no_grad()
    def evaluate(self, model):
        w = _weight_of(model).reshape(-1).to(self.w_star_tensor)
        err = w - self.w_star_tensor
        return {"loss": float(0.5 * self.L * err.pow(2).sum()), "weight_error": float(err.norm()),
                "weight_mean": float(w.mean())}


# --------------------------------------------------------------------------- least squares


@register_task("least_squares")
@dataclass
class LeastSquares(Task):
    """The papers' toy problem f(W) = 1/2 ||A W - b||^2 (reference/residual_learning.md 4.2).

    A in R^{rows x cols} with N(0, 1) entries, W* ~ N(0, w_star_std^2) of shape (cols, outputs),
    b = A W*; all drawn from ``problem_seed`` (the same problem for every training seed).
    W is the analog weight of a linear layer without bias (shape (outputs, cols)), every step
    uses the full batch (the rows of A). ``reduction = "mean"`` divides the loss by the number
    of rows (the paper code's MSE/2), ``"sum"`` is the plain 1/2 ||AW - b||^2. ``init`` is the
    initial value of every weight (1.0 in the paper code); an epoch is ``steps`` iterations.
    Metrics: ``loss`` (f at the current W, same reduction) and ``weight_error`` = ||W - W*||_F.
    """

    rows: int = 100
    cols: int = 50
    outputs: int = 1
    w_star_std: float = 0.5
    problem_seed: int = 0
    reduction: str = "mean"
    init: float = 1.0
    steps: int = 100

    def __post_init__(self):
        for key in ("rows", "cols", "outputs", "steps"):
            v = getattr(self, key)
            _check(isinstance(v, int) and v >= 1, f"task.{key} must be an integer >= 1, got {v!r}")
        _check(self.w_star_std >= 0, f"task.w_star_std must lie in [0, inf), got {self.w_star_std!r}")
        _check(self.reduction in ("mean", "sum"), f"task.reduction must be 'mean' or 'sum', got {self.reduction!r}")

    @property
    def default_batch_size(self):
        return self.rows

    def setup(self, device, dtype=torch.float32):
        super().setup(device, dtype)
        gen = torch.Generator().manual_seed(int(self.problem_seed))
        self.A = torch.randn((self.rows, self.cols), generator=gen)
        self.W_star = self.w_star_std * torch.randn((self.cols, self.outputs), generator=gen)
        self.b = self.A @ self.W_star
        self.A, self.W_star, self.b = (t.to(self.device, dtype) for t in (self.A, self.W_star, self.b))

    def build_model(self, seed):
        model = nn.Sequential(OrderedDict(w=nn.Linear(self.cols, self.outputs, bias=False)))
        with torch.no_grad():
            model.w.weight.fill_(float(self.init))
        return model

    def train_batches(self, batch_size, generator):
        if batch_size != self.rows:
            raise ValueError(f"least_squares is full-batch: train.batch_size must be {self.rows} (rows) or unset")
        for _ in range(self.steps):
            yield self.A, self.b

    def loss(self, output, target):
        total = 0.5 * (output - target).pow(2).sum()
        return total / self.rows if self.reduction == "mean" else total

    @torch.no_grad()
    def evaluate(self, model):
        w = _weight_of(model).to(self.A)
        return {"loss": float(self.loss(self.A @ w.transpose(0, 1), self.b)),
                "weight_error": float((w.transpose(0, 1) - self.W_star).norm())}


# --------------------------------------------------------------------------- classification


_DATA_CACHE: dict = {}


def _dataset(name: str, data_dir, download: bool):
    from .. import data

    key = (name, str(data_dir))
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = data.load_dataset(name, data_dir, download)
    return _DATA_CACHE[key]


@dataclass
class ClassificationTask(Task):
    """Image classification: log-softmax outputs, NLL loss, test accuracy.

    ``dataset``: ``mnist_subset`` (bundled, 4,000 train / 1,000 test), ``mnist``,
    ``fashion_mnist`` (IDX files in ``data_dir``; ``download = true`` fetches them),
    ``cifar10``/``cifar100`` (pickles in ``data_dir``). ``train_samples`` / ``test_samples``
    cap the number of images used (None: all). ``normalize = true`` standardises the images
    with the per-channel mean and std of the training images (for MNIST about 0.13 and 0.31,
    the usual ``Normalize((0.1307,), (0.3081,))``); without it the sigmoid FCN sits on a
    plateau for the first few thousand steps.
    """

    dataset: str = "mnist_subset"
    data_dir: str | None = None
    download: bool = False
    train_samples: int | None = None
    test_samples: int | None = None
    normalize: bool = True

    classification = True
    primary_metric = "test_accuracy"
    higher_is_better = True
    eval_batch_size = 1000

    def __post_init__(self):
        from ..data import DATASETS

        _check(self.dataset in DATASETS, f"task.dataset must be one of {list(DATASETS)}, got {self.dataset!r}")
        for key in ("train_samples", "test_samples"):
            v = getattr(self, key)
            _check(v is None or (isinstance(v, int) and v >= 1), f"task.{key} must be an integer >= 1, got {v!r}")
        if self.dataset != "mnist_subset":
            _check(self.data_dir is not None, f"task.data_dir is required for dataset {self.dataset!r}")

    def setup(self, device, dtype=torch.float32):
        super().setup(device, dtype)
        ds = _dataset(self.dataset, self.data_dir, self.download).subset(self.train_samples, self.test_samples)
        self.num_classes = ds.num_classes
        x_train, x_test = ds.x_train, ds.x_test
        if self.normalize:
            mean = x_train.mean(dim=(0, 2, 3), keepdim=True)
            std = x_train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-8)
            x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
        ds = type(ds)(ds.name, x_train, ds.y_train, x_test, ds.y_test, ds.num_classes)
        self.x_train, self.y_train = ds.x_train.to(self.device, dtype), ds.y_train.to(self.device)
        self.x_test, self.y_test = ds.x_test.to(self.device, dtype), ds.y_test.to(self.device)

    def train_batches(self, batch_size, generator):
        n = len(self.x_train)
        order = torch.randperm(n, generator=generator).to(self.device)
        for start in range(0, n - batch_size + 1, batch_size):
            idx = order[start:start + batch_size]
            yield self.x_train[idx], self.y_train[idx]

    def loss(self, output, target):
        return F.nll_loss(output, target)

    @torch.no_grad()
    def evaluate(self, model):
        was_training = model.training
        model.eval()
        total_loss = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        for start in range(0, len(self.x_test), self.eval_batch_size):
            x = self.x_test[start:start + self.eval_batch_size]
            y = self.y_test[start:start + self.eval_batch_size]
            out = model(x)
            total_loss += F.nll_loss(out.float(), y, reduction="sum")
            correct += (out.argmax(dim=1) == y).sum()
        model.train(was_training)
        n = len(self.x_test)
        return {"test_loss": float(total_loss) / n, "test_accuracy": float(correct) / n}


@register_task("mnist_fcn")
@dataclass
class MnistFCN(ClassificationTask):
    """784-256-128-10 sigmoid MLP, log-softmax + NLL, batch 10 (2502.06309 App. K.3).

    Layer names (for ``train.layers``): ``fc1``, ``fc2``, ``fc3``.
    """

    default_batch_size = 10

    def build_model(self, seed):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self._build()

    def _build(self):
        in_features = 784 if self.dataset != "cifar10" and self.dataset != "cifar100" else 3 * 32 * 32
        return nn.Sequential(OrderedDict(
            flatten=nn.Flatten(),
            fc1=nn.Linear(in_features, 256), act1=nn.Sigmoid(),
            fc2=nn.Linear(256, 128), act2=nn.Sigmoid(),
            fc3=nn.Linear(128, 10 if self.dataset not in ("cifar100",) else 100),
            log_softmax=nn.LogSoftmax(dim=1),
        ))


@register_task("mnist_lenet")
@dataclass
class MnistLeNet(ClassificationTask):
    """LeNet-5 style CNN, tanh (2502.06309 App. K.3): conv 5x5x16 -> maxpool 2 -> conv 5x5x32 ->
    maxpool 2 -> FC 512->128 (tanh) -> FC 128->10, log-softmax + NLL, batch 8.

    Layer names: ``conv1``, ``conv2``, ``fc1``, ``fc2``. ``pool_tanh = true`` applies tanh once
    more after the second pooling, as 2602.21321's LeNet script (E-RIDER artifact,
    NeurIPS-2025/S2-mnist-CNN.py) does.
    """

    pool_tanh: bool = False

    default_batch_size = 8

    def __post_init__(self):
        super().__post_init__()
        _check(self.dataset in ("mnist_subset", "mnist", "fashion_mnist"),
               f"task.dataset of mnist_lenet must be an MNIST-format dataset, got {self.dataset!r}")
        _check(isinstance(self.pool_tanh, bool), f"task.pool_tanh must be true or false, got {self.pool_tanh!r}")

    def build_model(self, seed):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self._build()

    def _build(self):
        return nn.Sequential(OrderedDict(
            conv1=nn.Conv2d(1, 16, 5), act1=nn.Tanh(), pool1=nn.MaxPool2d(2),
            conv2=nn.Conv2d(16, 32, 5), act2=nn.Tanh(), pool2=nn.MaxPool2d(2),
            **({"pool_act": nn.Tanh()} if self.pool_tanh else {}),
            flatten=nn.Flatten(),
            fc1=nn.Linear(512, 128), act3=nn.Tanh(),
            fc2=nn.Linear(128, 10),
            log_softmax=nn.LogSoftmax(dim=1),
        ))
