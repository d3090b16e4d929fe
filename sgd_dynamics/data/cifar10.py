"""CIFAR-10 from the standard python pickle batches (cifar-10-batches-py)."""

from __future__ import annotations

import os
import pickle

import numpy as np

from sgd_dynamics.data.arrays import ArrayData, Standardize
from sgd_dynamics.data.checks import check_labels, check_samples
from sgd_dynamics.data.classification import FileData
from sgd_dynamics.data.download import fetch
from sgd_dynamics.data.mnist import missing_files_message
from sgd_dynamics.utils.errors import SetupError

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR10_TEST_BATCH = "test_batch"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
# per-channel (R, G, B) pixel mean and standard deviation of the training set, pixels in [0, 1]
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def _latin1_bytes(text: str, encoding: str) -> bytes:
    """What ``_codecs.encode`` does for the bytes objects that Python 3 pickles (protocol 2):
    latin-1 only."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} refused")
    return text.encode("latin1")


# the only globals a CIFAR-10 batch refers to: numpy arrays and dtypes (plus how Python 3 pickles
# bytes objects); everything else is refused before it is looked up
_CIFAR_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): np.zeros(0).__reduce__()[0],
    ("numpy._core.multiarray", "_reconstruct"): np.zeros(0).__reduce__()[0],
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_bytes,
    ("__builtin__", "bytes"): bytes,  # an empty bytes object, pickled by Python 3
    ("builtins", "bytes"): bytes,
}


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that builds dicts, lists, str, bytes, numbers and numpy arrays only: a
    file that names any other global (a function that would run when unpickled) is refused."""

    def find_class(self, module: str, name: str):
        try:
            return _CIFAR_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"it refers to {module}.{name}, which a CIFAR-10 batch never holds (only dicts, "
                "lists, strings, numbers and numpy arrays are read; nothing is executed)"
            ) from None


def read_cifar_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one pickled CIFAR batch: a dict with "data" (n, 3072) uint8 (1024 red, then green,
    then blue pixels, each row-major 32x32) and "labels" (n ints in [0, 9]); keys are bytes in
    the published files (pickled by Python 2), str accepted too.

    The file is unpickled by a restricted unpickler that admits only the types those files
    hold (no code named by the file runs), then checked: at least one sample, uint8 data,
    integer labels in [0, 9]. Any problem raises ValueError or `pickle.UnpicklingError`.

    Returns (images (n, 3072) uint8, labels (n,) int64).
    """
    with open(path, "rb") as f:
        batch = _CifarUnpickler(f, encoding="bytes").load()
    if not isinstance(batch, dict):
        raise ValueError(f"a dict of arrays expected, found {type(batch).__name__}")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    missing = [key for key in ("data", "labels") if key not in batch]
    if missing:
        raise ValueError(f"no {' or '.join(missing)} entry in the batch")
    data, labels = batch["data"], np.asarray(batch["labels"])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        raise ValueError(f"data must be a uint8 array, found {getattr(data, 'dtype', type(data))}")
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0]:
        raise ValueError(f"data {data.shape} and labels {labels.shape}; expected (n, 3072), (n,)")
    check_samples(data.shape[0])
    return data, check_labels(labels, 10)


class CIFAR10Data(FileData):
    """CIFAR-10 from ``root/cifar-10-batches-py/`` (data_batch_1..5, test_batch).

    Inputs: the 3x32x32 pixels flattened in channel-major order (as stored), scaled to [0, 1]
    and standardised per channel with the training-set mean (0.4914, 0.4822, 0.4465) and
    standard deviation (0.2470, 0.2435, 0.2616): (3072,) float32.

    Args:
        root: folder that holds the extracted ``cifar-10-batches-py`` folder.
        download: fetch and extract cifar-10-python.tar.gz (md5-checked) with pooch.
        Other arguments as `ClassificationData`.
    """

    name = "cifar10"
    input_dim = 3072
    num_classes = 10

    def _missing(self) -> list[str]:
        folder = self.root / CIFAR10_FOLDER
        names = [*CIFAR10_TRAIN_BATCHES, CIFAR10_TEST_BATCH]
        return [n for n in names if not (folder / n).is_file()]

    def _read(self) -> ArrayData:
        missing = self._missing()
        if missing and self.download:
            fetch(CIFAR10_URL, CIFAR10_MD5, self.root, "cifar-10-python.tar.gz", untar=True)
            missing = self._missing()
        folder = self.root / CIFAR10_FOLDER
        if missing:
            expected = [
                f"{CIFAR10_FOLDER}/{n}" for n in [*CIFAR10_TRAIN_BATCHES, CIFAR10_TEST_BATCH]
            ]
            raise SetupError(
                missing_files_message(
                    self.name,
                    self.root.resolve(),
                    expected,
                    [f"{CIFAR10_FOLDER}/{n}" for n in missing],
                    CIFAR10_URL + " (extract the archive there)",
                )
            )
        parts = []
        for name in [*CIFAR10_TRAIN_BATCHES, CIFAR10_TEST_BATCH]:
            try:
                parts.append(read_cifar_batch(folder / name))
            except (  # what a damaged pickle can raise while it is read
                OSError,
                ValueError,
                KeyError,
                EOFError,
                TypeError,
                AttributeError,
                IndexError,
                pickle.UnpicklingError,
            ) as exc:
                raise SetupError(
                    f"dataset {self.name}: cannot read {folder / name}: {exc}"
                ) from None
        x_train = np.concatenate([p[0] for p in parts[:-1]])
        y_train = np.concatenate([p[1] for p in parts[:-1]])
        return ArrayData(x_train, y_train, parts[-1][0], parts[-1][1])

    def _transform(self) -> Standardize:
        return Standardize(self.input_dim, 1.0 / 255.0, CIFAR10_MEAN, CIFAR10_STD)
