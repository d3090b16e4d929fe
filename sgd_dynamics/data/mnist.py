"""MNIST and Fashion-MNIST from their standard IDX files."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from sgd_dynamics.data.arrays import ArrayData, Standardize
from sgd_dynamics.data.checks import check_labels, check_samples
from sgd_dynamics.data.classification import FileData
from sgd_dynamics.data.download import fetch
from sgd_dynamics.data.idx import read_idx
from sgd_dynamics.utils.errors import SetupError

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class IdxSource:
    """Where an IDX data set comes from and how its pixels are normalised.

    `md5` holds the hashes of the gzipped files published at `base_url`; `mean` and `std` are
    the pixel mean and standard deviation of the full training set after scaling to [0, 1].
    """

    title: str
    base_url: str
    md5: dict[str, str]
    mean: float
    std: float


def _gz_hashes(*md5: str) -> dict[str, str]:
    """The md5 of each gzipped IDX file, given in the order of `IDX_FILES`."""
    return {f"{name}.gz": h for name, h in zip(IDX_FILES.values(), md5, strict=True)}


MNIST_SOURCE = IdxSource(
    title="MNIST",
    base_url="https://ossci-datasets.s3.amazonaws.com/mnist/",
    md5=_gz_hashes(
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "d53e105ee54ea40749a09fcbcd1e9432",
        "9fb629c4189551a2d022fa330f9573f3",
        "ec29112dd5afa0611ce80d1b7f02629c",
    ),
    mean=0.1307,
    std=0.3081,
)

FASHION_MNIST_SOURCE = IdxSource(
    title="Fashion-MNIST",
    base_url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    md5=_gz_hashes(
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "25c81989df183df01b3e8a0aad5dffbe",
        "bef4ecab320f06d8554ea6380940ec79",
        "bb300cfdad3c16e7a12a480ee83cd310",
    ),
    mean=0.2860,
    std=0.3530,
)


def _check_pixels(images: np.ndarray) -> np.ndarray:
    """`images` when they hold at least one sample of uint8 pixels, else ValueError."""
    check_samples(images.shape[0])
    if images.dtype != np.uint8:
        raise ValueError(f"pixels must be uint8, found {images.dtype}")
    return images


def find_idx_files(root: Path) -> tuple[dict[str, Path], list[str]]:
    """Locate the four IDX files in `root`, each plain or with ``.gz``.

    Returns (role -> path for the files found, base names of the files missing).
    """
    found, missing = {}, []
    for role, name in IDX_FILES.items():
        for candidate in (root / name, root / f"{name}.gz"):
            if candidate.is_file():
                found[role] = candidate
                break
        else:
            missing.append(name)
    return found, missing


def missing_files_message(
    dataset: str, root: Path, expected: list[str], missing: list[str], source: str
) -> str:
    """The one message shown when data files are missing: folder, files, how to get them."""
    state = "" if root.is_dir() else " (the folder does not exist)"
    return (
        f"dataset {dataset}: data files not found in {root}{state}\n"
        f"  expected: {', '.join(expected)}\n"
        f"  missing:  {', '.join(missing)}\n"
        f"  to get them: add dataset.download=true to fetch them from {source},\n"
        f"  or put them in that folder yourself, or point dataset.root=... at the folder "
        f"that holds them"
    )


class MNISTData(FileData):
    """MNIST from the four standard IDX files directly in `root` (each gzipped or not).

    Inputs: the 28x28 pixels in row-major order, scaled to [0, 1] and standardised with the
    training-set pixel mean and standard deviation (0.1307, 0.3081): (784,) float32. Files
    that cannot be used (corrupt gzip stream, bad header, no sample, pixels not uint8, labels
    not integers in [0, 9]) raise `SetupError` naming the file.

    Args:
        root: folder holding train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz],
            t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz].
        download: fetch missing files from the public mirror (md5-checked) with pooch.
        Other arguments as `ClassificationData`.
    """

    name = "mnist"
    source = MNIST_SOURCE
    input_dim = 784
    num_classes = 10

    def _read(self) -> ArrayData:
        found, missing = find_idx_files(self.root)
        if missing and self.download:
            for name in missing:
                fname = f"{name}.gz"
                fetch(self.source.base_url + fname, self.source.md5[fname], self.root, fname)
            found, missing = find_idx_files(self.root)
        if missing:
            raise SetupError(
                missing_files_message(
                    self.name,
                    self.root.resolve(),
                    [f"{n}[.gz]" for n in IDX_FILES.values()],
                    missing,
                    self.source.base_url,
                )
            )
        arrays = {}
        for role, path in found.items():
            try:
                arrays[role] = read_idx(path)
            except OSError as exc:
                raise SetupError(f"dataset {self.name}: cannot read {path}: {exc}") from None
            except ValueError as exc:  # the message names the file
                raise SetupError(f"dataset {self.name}: {exc}") from None
        for split in ("train", "test"):
            images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
            if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.ndim != 1:
                raise SetupError(
                    f"dataset {self.name}: {split} images have shape {images.shape} and labels "
                    f"{labels.shape}; expected (n, 28, 28) and (n,)"
                )
            if images.shape[0] != labels.shape[0]:
                raise SetupError(
                    f"dataset {self.name}: {images.shape[0]} {split} images but "
                    f"{labels.shape[0]} labels in {self.root}"
                )
            labels_in_range = partial(check_labels, num_classes=self.num_classes)
            for role, check in (("images", _check_pixels), ("labels", labels_in_range)):
                try:
                    arrays[f"{split}_{role}"] = check(arrays[f"{split}_{role}"])
                except ValueError as exc:
                    path = found[f"{split}_{role}"]
                    raise SetupError(f"dataset {self.name}: {path}: {exc}") from None
        return ArrayData(
            arrays["train_images"],
            arrays["train_labels"],
            arrays["test_images"],
            arrays["test_labels"],
        )

    def _transform(self) -> Standardize:
        return Standardize(self.input_dim, 1.0 / 255.0, self.source.mean, self.source.std)


class FashionMNISTData(MNISTData):
    """Fashion-MNIST, same files and layout as MNIST (`MNISTData`).

    Inputs standardised with the training-set pixel mean and standard deviation
    (0.2860, 0.3530) after scaling to [0, 1].
    """

    name = "fashion_mnist"
    source = FASHION_MNIST_SOURCE
