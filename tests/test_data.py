"""Data loaders on small files written by the tests (no network)."""

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from analogtrain import data


def _write_mnist(root, n_train=12, n_test=5, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    root.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        data.write_idx(root / (name + (".gz" if gz else "")), arr)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_from_idx_files(tmp_path, gz):
    arrays = _write_mnist(tmp_path, gz=gz)
    ds = data.load_mnist(tmp_path)
    assert ds.x_train.shape == (12, 1, 28, 28) and ds.x_test.shape == (5, 1, 28, 28)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    np.testing.assert_allclose(ds.x_train[:, 0].numpy(), arrays["train-images-idx3-ubyte"] / 255.0, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(ds.y_test.numpy(), arrays["t10k-labels-idx1-ubyte"])
    assert ds.num_classes == 10 and ds.name == "mnist"


def test_fashion_variant_and_load_dataset(tmp_path):
    arrays = _write_mnist(tmp_path, seed=3)
    ds = data.load_dataset("fashion_mnist", tmp_path)
    assert ds.name == "fashion_mnist"
    np.testing.assert_array_equal(ds.y_train.numpy(), arrays["train-labels-idx1-ubyte"])


def test_missing_idx_file_is_a_clear_error(tmp_path):
    _write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        data.load_mnist(tmp_path)


def test_download_fetches_missing_files(tmp_path, monkeypatch):
    source = tmp_path / "mirror"
    arrays = _write_mnist(source, gz=True, seed=5)
    fetched = []

    def fake_download(url, dest):  # stands in for the network
        fetched.append(url)
        dest.write_bytes((source / url.rsplit("/", 1)[-1]).read_bytes())

    monkeypatch.setattr(data, "_download", fake_download)
    ds = data.load_mnist(tmp_path / "cache", download=True)
    assert len(fetched) == 4 and all(u.startswith(data.MIRRORS["mnist"][0]) for u in fetched)
    np.testing.assert_array_equal(ds.y_train.numpy(), arrays["train-labels-idx1-ubyte"])
    # second call finds the files and downloads nothing
    data.load_mnist(tmp_path / "cache", download=True)
    assert len(fetched) == 4


def test_read_idx_other_types_and_errors(tmp_path):
    values = np.array([[1, -2, 70000], [3, 4, -5]], dtype=">i4")
    path = tmp_path / "ints.idx"
    path.write_bytes(bytes([0, 0, 0x0C, 2]) + struct.pack(">II", 2, 3) + values.tobytes())
    np.testing.assert_array_equal(data.read_idx(path), values.astype(np.int32))
    bad = tmp_path / "bad.idx"
    bad.write_bytes(b"\x01\x02\x08\x01" + struct.pack(">I", 3) + b"abc")
    with pytest.raises(ValueError, match="magic"):
        data.read_idx(bad)
    short = tmp_path / "short.idx.gz"
    with gzip.open(short, "wb") as f:
        f.write(bytes([0, 0, 0x08, 1]) + struct.pack(">I", 10) + b"abc")
    with pytest.raises(ValueError, match="expected 10 data bytes"):
        data.read_idx(short)


def _cifar_batch(n, labels_key, seed):
    rng = np.random.default_rng(seed)
    return {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            labels_key: [int(v) for v in rng.integers(0, 10, n)], b"batch_label": b"test"}


def test_load_cifar10_pickles(tmp_path):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    batches = {name: _cifar_batch(4, b"labels", i) for i, name in enumerate(["data_batch_1", "data_batch_2",
                                                                           "test_batch"])}
    for name, batch in batches.items():
        with open(base / name, "wb") as f:
            pickle.dump(batch, f)
    ds = data.load_cifar(tmp_path, 10)
    assert ds.x_train.shape == (8, 3, 32, 32) and ds.x_test.shape == (4, 3, 32, 32)
    raw = batches["data_batch_2"][b"data"]
    # channel-major rows: R (1024 values) then G then B
    assert ds.x_train[4, 1, 0, 0].item() == pytest.approx(raw[0, 1024] / 255.0)
    assert ds.x_train[5, 2, 31, 31].item() == pytest.approx(raw[1, 3071] / 255.0)
    assert ds.y_train.tolist() == batches["data_batch_1"][b"labels"] + batches["data_batch_2"][b"labels"]


def test_load_cifar100_pickles(tmp_path):
    for name, n in (("train", 6), ("test", 3)):
        with open(tmp_path / name, "wb") as f:
            pickle.dump(_cifar_batch(n, b"fine_labels", n), f)
    ds = data.load_dataset("cifar100", tmp_path)
    assert ds.num_classes == 100 and ds.x_train.shape == (6, 3, 32, 32) and len(ds.y_test) == 3
    with pytest.raises(ValueError, match="num_classes"):
        data.load_cifar(tmp_path, 7)


def test_mnist_subset_split_is_fixed_and_balanced():
    ds = data.load_mnist_subset()
    assert ds.x_train.shape == (4000, 1, 28, 28) and ds.x_test.shape == (1000, 1, 28, 28)
    assert torch.bincount(ds.y_train).tolist() == [400] * 10
    assert torch.bincount(ds.y_test).tolist() == [100] * 10
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    again = data.load_mnist_subset()
    assert torch.equal(again.x_test, ds.x_test) and torch.equal(again.y_train, ds.y_train)
    # the first 500 training images already mix the classes
    assert len(torch.unique(ds.y_train[:500])) == 10
    small = ds.subset(100, 50)
    assert len(small.x_train) == 100 and len(small.y_test) == 50
    with pytest.raises(ValueError, match="train_samples"):
        ds.subset(0)


def test_load_dataset_errors():
    with pytest.raises(ValueError, match="dataset must be one of"):
        data.load_dataset("imagenet", "/tmp")
    with pytest.raises(ValueError, match="data_dir"):
        data.load_dataset("mnist")
