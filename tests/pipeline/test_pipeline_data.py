"""Data sets: Gauss-10, IDX and CIFAR readers on files written in the real formats, label
noise, training subsets, the spectral subset and the shuffling order."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from pipeline_helpers import idx_bytes, write_cifar_files, write_mnist_files

from sgd_dynamics.data import StepShuffleSampler, corrupt_labels, make_gauss10, read_idx
from sgd_dynamics.data.label_noise import check_fraction
from sgd_dynamics.lightning import (
    CIFAR10DataModule,
    FashionMNISTDataModule,
    Gauss10DataModule,
    MNISTDataModule,
)
from sgd_dynamics.utils import SetupError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


# --- Gauss-10 -------------------------------------------------------------------------------
def test_gauss10_shapes_balance_and_reproducibility():
    data = make_gauss10(seed=3)
    assert data.x_train.shape == (100, 20) and data.x_train.dtype == np.float32
    assert data.x_test.shape == (1000, 20)
    assert np.bincount(data.y_train, minlength=10).tolist() == [10] * 10
    assert np.bincount(data.y_test, minlength=10).tolist() == [100] * 10
    again = make_gauss10(seed=3)
    assert np.array_equal(data.x_train, again.x_train) and np.array_equal(data.x_test, again.x_test)
    other = make_gauss10(seed=4)
    assert not np.allclose(data.x_train, other.x_train)


def test_gauss10_prefix_and_test_set_do_not_depend_on_n_train():
    small, large = make_gauss10(seed=1, n_train=30), make_gauss10(seed=1, n_train=200)
    assert np.array_equal(small.x_train, large.x_train[:30])
    assert np.array_equal(small.y_train, large.y_train[:30])
    assert np.array_equal(small.x_test, large.x_test)


def test_gauss10_distribution_matches_its_parameters():
    """Within-class spread = noise_std, class means ~ N(0, mean_scale^2): checked on a large
    sample in float64 against the generator's documented parameters."""
    data = make_gauss10(seed=0, n_train=100, n_test=50_000, noise_std=1.5, mean_scale=1.0)
    x, y = data.x_test.astype(np.float64), data.y_test
    means = np.stack([x[y == c].mean(axis=0) for c in range(10)])
    residual = x - means[y]
    assert residual.std() == pytest.approx(1.5, rel=0.02)
    # 200 mean coordinates drawn from N(0, 1): their variance is 1 within sampling error
    assert means.var() == pytest.approx(1.0, abs=0.3)
    # the training samples share the test set's class means
    xt = data.x_train.astype(np.float64)
    assert (xt - means[data.y_train]).std() == pytest.approx(1.5, rel=0.15)


def test_gauss10_datamodule_contract():
    dm = Gauss10DataModule(batch_size=5, seed=0)
    assert (dm.input_dim, dm.num_classes, dm.n_train, dm.batch_size) == (20, 10, 100, 5)
    batches = list(dm.train_dataloader())
    assert len(batches) == 20
    x, y = batches[0]
    assert x.shape == (5, 20) and x.dtype == torch.float32 and y.dtype == torch.int64
    # one epoch visits every training sample once
    seen = torch.cat([b[0] for b in batches])
    assert torch.equal(
        seen[torch.argsort(seen[:, 0])],
        dm.train_set.inputs[torch.argsort(dm.train_set.inputs[:, 0])],
    )


# --- label noise ----------------------------------------------------------------------------
@pytest.mark.parametrize("n", [7, 100, 1001])
@pytest.mark.parametrize("fraction", [0.0, 0.05, 0.25, 0.5, 1.0])
def test_label_noise_replaces_exactly_round_rn(n, fraction):
    labels = np.arange(n) % 10
    noisy, replaced = corrupt_labels(labels, fraction, 10, np.random.default_rng(0))
    expected = int(np.floor(fraction * n + 0.5))
    assert len(replaced) == expected == len(set(replaced.tolist()))
    untouched = np.setdiff1d(np.arange(n), replaced)
    assert np.array_equal(noisy[untouched], labels[untouched])
    assert noisy.min() >= 0 and noisy.max() <= 9


def test_label_noise_reproducible_nested_and_seed_dependent():
    labels = np.arange(500) % 10

    def draw(fraction, seed):
        return corrupt_labels(labels, fraction, 10, np.random.default_rng(seed))

    a, ra = draw(0.3, 1)
    b, rb = draw(0.3, 1)
    assert np.array_equal(a, b) and np.array_equal(ra, rb)
    _, rc = draw(0.3, 2)
    assert not np.array_equal(ra, rc)
    big, rbig = draw(0.6, 1)
    assert set(ra.tolist()) <= set(rbig.tolist())
    assert np.array_equal(big[ra], a[ra])


def test_label_noise_labels_are_uniform_and_may_keep_the_original():
    n = 50_000
    labels = np.arange(n) % 10
    noisy, _ = corrupt_labels(labels, 1.0, 10, np.random.default_rng(5))
    freq = np.bincount(noisy, minlength=10) / n
    assert np.allclose(freq, 0.1, atol=0.006)  # about 4.5 standard deviations
    assert (noisy == labels).mean() == pytest.approx(0.1, abs=0.006)


@pytest.mark.parametrize("bad", [1.5, -0.1, "a lot", None])
def test_label_noise_fraction_is_validated(bad):
    with pytest.raises(SetupError, match="label_noise"):
        check_fraction(bad)


def test_datamodule_applies_label_noise_to_training_labels_only():
    dm = Gauss10DataModule(batch_size=5, seed=2, label_noise=0.3)
    dm.load()
    clean = make_gauss10(seed=2)
    assert torch.equal(dm.clean_train_targets, torch.from_numpy(clean.y_train))
    assert len(dm.noisy_indices) == 30
    changed = torch.nonzero(dm.train_set.targets != dm.clean_train_targets).flatten()
    assert set(changed.tolist()) <= set(dm.noisy_indices.tolist())
    assert 0 < len(changed) <= 30
    assert torch.equal(dm.test_set.targets, torch.from_numpy(clean.y_test))
    same = Gauss10DataModule(batch_size=50, seed=2, label_noise=0.3)
    same.load()
    assert torch.equal(same.train_set.targets, dm.train_set.targets)


# --- spectral subset ------------------------------------------------------------------------
def test_spectral_samples_fixed_by_seed_not_batch_size_or_torch_state():
    torch.manual_seed(0)
    a = Gauss10DataModule(batch_size=5, seed=7, label_noise=0.5, n_train=100)
    xa, ya = a.spectral_samples(40)
    torch.manual_seed(123)
    b = Gauss10DataModule(batch_size=50, seed=7, label_noise=0.5, n_train=100)
    xb, yb = b.spectral_samples(40)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert xa.shape == (40, 20) and xa.dtype == torch.float32 and ya.dtype == torch.int64
    c = Gauss10DataModule(batch_size=5, seed=8, label_noise=0.5)
    assert not torch.equal(c.spectral_samples(40)[0], xa)


def test_spectral_samples_are_training_rows_with_noisy_labels():
    dm = Gauss10DataModule(batch_size=5, seed=1, label_noise=0.5)
    idx = dm.spectral_indices(30)
    x, y = dm.spectral_samples(30)
    assert len(set(idx.tolist())) == 30
    assert torch.equal(x, dm.train_set.inputs[idx])
    assert torch.equal(y, dm.train_set.targets[idx])
    assert set(idx.tolist()) <= set(dm.spectral_indices(60).tolist())
    for n in (None, 100, 500):
        xa, ya = dm.spectral_samples(n)
        assert torch.equal(xa, dm.train_set.inputs) and torch.equal(ya, dm.train_set.targets)


# --- shuffling ------------------------------------------------------------------------------
def test_training_order_is_keyed_by_the_global_step():
    """Batch s = perm_e[j b:(j+1) b], (e, j) = divmod(s, batches per epoch): each epoch a
    permutation fixed by (seed, e); an iteration starting mid-epoch continues that epoch."""
    step = {"value": 0}
    sampler = StepShuffleSampler(50, batch_size=8, seed=3, step=lambda: step["value"])
    assert sampler.batches_per_epoch == 7
    epochs = []
    for e in range(3):
        step["value"] = 7 * e
        torch.manual_seed(e + 100)  # the global torch state plays no part
        order = list(sampler)
        assert sorted(order) == list(range(50))
        epochs.append(order)
    assert epochs[0] != epochs[1]
    step["value"] = 7 + 3  # epoch 1, batch 3
    assert list(sampler) == epochs[1][24:]
    # without a step source each iteration is the next epoch
    free = StepShuffleSampler(50, batch_size=8, seed=3)
    assert [list(free) for _ in range(3)] == epochs
    dropping = StepShuffleSampler(50, batch_size=8, seed=3, drop_last=True)
    assert dropping.batches_per_epoch == 6 and list(dropping) == epochs[0][:48]


# --- IDX files ------------------------------------------------------------------------------
def test_read_idx_plain_and_gzipped(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    (tmp_path / "plain").write_bytes(idx_bytes(images))
    (tmp_path / "zipped.gz").write_bytes(gzip.compress(idx_bytes(images)))
    assert np.array_equal(read_idx(tmp_path / "plain"), images)
    assert np.array_equal(read_idx(tmp_path / "zipped.gz"), images)


def test_read_idx_big_endian_int32(tmp_path):
    values = [1, -2, 70000, 5, 6, 7]
    data = bytes([0, 0, 0x0C, 2]) + struct.pack(">II", 2, 3) + struct.pack(">6i", *values)
    (tmp_path / "ints").write_bytes(data)
    out = read_idx(tmp_path / "ints")
    assert out.shape == (2, 3) and out.tolist() == [[1, -2, 70000], [5, 6, 7]]


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match="not an IDX"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"\x00" * 3)
    with pytest.raises(ValueError, match="file size"):
        read_idx(tmp_path / "short")


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_datamodule_reads_and_normalises(tmp_path, gz):
    arrays = write_mnist_files(tmp_path, n_train=60, n_test=20, gz=gz)
    dm = MNISTDataModule(root=tmp_path, batch_size=8, seed=0)
    assert (dm.input_dim, dm.num_classes, dm.n_train, dm.n_test) == (784, 10, 60, 20)
    x, y = dm.spectral_samples(None)
    pixels = arrays["train-images-idx3-ubyte"].reshape(60, 784).astype(np.float64)
    expected = (pixels / 255.0 - 0.1307) / 0.3081
    assert np.allclose(x.numpy(), expected, atol=1e-5)
    assert np.array_equal(y.numpy(), arrays["train-labels-idx1-ubyte"])
    xt, yt = next(iter(dm.val_dataloader()))
    test_pixels = arrays["t10k-images-idx3-ubyte"].reshape(20, 784) / 255.0
    assert np.allclose(xt.numpy(), (test_pixels - 0.1307) / 0.3081, atol=1e-5)
    assert np.array_equal(yt.numpy(), arrays["t10k-labels-idx1-ubyte"])


def test_mnist_training_subset_is_a_seeded_subset_of_the_file(tmp_path):
    arrays = write_mnist_files(tmp_path, n_train=60, n_test=10)
    images = arrays["train-images-idx3-ubyte"].reshape(60, 784)
    dm = MNISTDataModule(root=tmp_path, batch_size=4, seed=5, n_train=25)
    assert dm.n_train == 25
    rows = {r.tobytes() for r in images}
    raw = dm.train_set.inputs.numpy()
    assert len({r.tobytes() for r in raw}) == 25 and {r.tobytes() for r in raw} <= rows
    again = MNISTDataModule(root=tmp_path, batch_size=60, seed=5, n_train=25)
    again.load()
    assert torch.equal(again.train_set.inputs, dm.train_set.inputs)
    with pytest.raises(SetupError, match="exceeds the 60 training samples"):
        MNISTDataModule(root=tmp_path, batch_size=4, n_train=61).load()


def test_fashion_mnist_uses_its_own_normalisation(tmp_path):
    arrays = write_mnist_files(tmp_path, n_train=10, n_test=5, gz=False)
    x, _ = FashionMNISTDataModule(root=tmp_path, batch_size=2).spectral_samples()
    pixels = arrays["train-images-idx3-ubyte"].reshape(10, 784) / 255.0
    assert np.allclose(x.numpy(), (pixels - 0.2860) / 0.3530, atol=1e-5)


def test_cifar10_reads_pickle_batches_channel_major(tmp_path):
    batches = write_cifar_files(tmp_path, n_per_batch=6)
    dm = CIFAR10DataModule(root=tmp_path, batch_size=4)
    assert (dm.input_dim, dm.n_train, dm.n_test) == (3072, 30, 6)
    x, y = dm.spectral_samples()
    raw = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)]).astype(np.float64)
    labels = np.concatenate([batches[f"data_batch_{i}"][1] for i in range(1, 6)])
    mean = np.repeat([0.4914, 0.4822, 0.4465], 1024)
    std = np.repeat([0.2470, 0.2435, 0.2616], 1024)
    assert np.allclose(x.numpy(), (raw / 255.0 - mean) / std, atol=1e-5)
    assert np.array_equal(y.numpy(), labels)
    xt, yt = next(iter(dm.val_dataloader()))
    test_raw = batches["test_batch"][0] / 255.0
    assert np.allclose(xt.numpy(), (test_raw - mean) / std, atol=1e-5)
    assert np.array_equal(yt.numpy(), batches["test_batch"][1])


# --- missing files --------------------------------------------------------------------------
def test_missing_mnist_files_message_names_folder_files_and_remedy(tmp_path):
    folder = tmp_path / "nowhere"
    with pytest.raises(SetupError) as info:
        MNISTDataModule(root=folder, batch_size=4).load()
    message = str(info.value)
    assert str(folder) in message and "does not exist" in message
    for name in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        assert name in message
    assert "dataset.download=true" in message and "dataset.root" in message


def test_partly_missing_files_are_listed(tmp_path):
    write_mnist_files(tmp_path, n_train=5, n_test=5)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(SetupError) as info:
        MNISTDataModule(root=tmp_path, batch_size=4).load()
    missing_line = [ln for ln in str(info.value).splitlines() if "missing:" in ln][0]
    assert "t10k-labels-idx1-ubyte" in missing_line and "train-images" not in missing_line


def test_missing_cifar_files_message(tmp_path):
    with pytest.raises(SetupError) as info:
        CIFAR10DataModule(root=tmp_path, batch_size=4).load()
    message = str(info.value)
    assert str(tmp_path) in message and "cifar-10-batches-py/data_batch_1" in message
    assert "dataset.download=true" in message


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": -5}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"batch_size": 5, "seed": -1}, "seed"),
        ({"batch_size": 5, "label_noise": 1.5}, "label_noise"),
        ({"batch_size": 5, "n_train": 0}, "n_train"),
    ],
)
def test_bad_arguments_raise_setup_error(kwargs, match):
    with pytest.raises(SetupError, match=match):
        Gauss10DataModule(**kwargs)


# --- the real Fashion-MNIST files (Debian package dataset-fashion-mnist) ----------------------
def test_real_fashion_mnist_files():
    if not FASHION_MNIST_DIR.is_dir():  # never skipped: `bash .ci/run` installs the package
        pytest.fail(f"{FASHION_MNIST_DIR} missing: apt-get install dataset-fashion-mnist")
    dm = FashionMNISTDataModule(root=FASHION_MNIST_DIR, batch_size=64)
    assert (dm.n_train, dm.n_test) == (60_000, 10_000)
    assert np.bincount(dm.train_set.targets.numpy()).tolist() == [6000] * 10
    pixels = dm.train_set.inputs.numpy().astype(np.float64) / 255.0
    # the documented normalisation constants are the training set's pixel mean and std
    assert pixels.mean() == pytest.approx(0.2860, abs=5e-4)
    assert pixels.std() == pytest.approx(0.3530, abs=5e-4)
