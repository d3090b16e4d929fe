"""Gauss-10: Gaussian clusters, generated from a seed (no download)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sgd_dynamics.data.arrays import ArrayData
from sgd_dynamics.data.classification import ClassificationData, positive_int
from sgd_dynamics.data.streams import stream
from sgd_dynamics.utils.errors import SetupError


@dataclass(frozen=True)
class Gauss10Parameters:
    """The generator's parameters (`make_gauss10`), with their defaults."""

    n_train: int = 100
    n_test: int = 1000
    input_dim: int = 20
    num_classes: int = 10
    mean_scale: float = 1.0
    noise_std: float = 1.5


def make_gauss10(seed: int, **parameters: float) -> ArrayData:
    """Generate the Gauss-10 arrays.

    Class means ``mu_c ~ N(0, mean_scale^2 I_d)``, c = 0..C-1; sample i of a split has class
    ``i mod C`` (so classes are balanced) and input ``x_i = mu_{y_i} + noise_std * eps_i`` with
    ``eps_i ~ N(0, I_d)``. Means, training noise and test noise come from three independent
    streams of `seed`, so the test set does not depend on n_train and the first k training
    samples are the same for every n_train >= k.

    With the defaults (d = 20, C = 10, mean_scale = 1, noise_std = 1.5) two class means are
    about sqrt(2 d) = 6.3 apart against a noise of 1.5 per direction: an MLP 20-32-10 fits the
    100 training samples exactly within a few hundred SGD steps (batch 5, lr 0.1) and reaches
    roughly 70-75 % test accuracy.

    Args:
        seed: the data seed.
        parameters: fields of `Gauss10Parameters` (n_train, n_test, input_dim, num_classes,
            mean_scale, noise_std); the others keep their defaults.

    Returns:
        ArrayData with float32 inputs (n, d) and int64 labels (n,).
    """
    p = Gauss10Parameters(**parameters)
    n_train, n_test, input_dim, num_classes = p.n_train, p.n_test, p.input_dim, p.num_classes
    mean_scale, noise_std = p.mean_scale, p.noise_std
    if mean_scale <= 0 or noise_std <= 0:
        raise SetupError(
            f"mean_scale and noise_std must be positive, got {mean_scale!r} and {noise_std!r}"
        )
    means = mean_scale * stream(seed, "gauss10_means").standard_normal((num_classes, input_dim))

    def split(n: int, purpose: str) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n, dtype=np.int64) % num_classes
        x = means[y] + noise_std * stream(seed, purpose).standard_normal((n, input_dim))
        return x.astype(np.float32), y

    x_train, y_train = split(n_train, "gauss10_train")
    x_test, y_test = split(n_test, "gauss10_test")
    return ArrayData(x_train, y_train, x_test, y_test)


class Gauss10Data(ClassificationData):
    """Gauss-10 (`make_gauss10`), generated from `seed`; inputs are used as generated.

    Args:
        n_train: number of generated training samples (default 100, 10 per class).
        n_test: number of held-out test samples (default 1000).
        input_dim, num_classes, mean_scale, noise_std: generator parameters (`make_gauss10`).
        Other arguments as `ClassificationData`.
    """

    name = "gauss10"

    def __init__(
        self,
        batch_size: int,
        seed: int = 0,
        label_noise: float = 0.0,
        n_train: int = 100,
        n_test: int = 1000,
        input_dim: int = 20,
        num_classes: int = 10,
        mean_scale: float = 1.0,
        noise_std: float = 1.5,
        eval_batch_size: int = 1000,
        drop_last: bool = False,
        num_workers: int = 0,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            seed=seed,
            label_noise=label_noise,
            n_train=positive_int("n_train", n_train),
            eval_batch_size=eval_batch_size,
            drop_last=drop_last,
            num_workers=num_workers,
        )
        self.n_test_samples = positive_int("n_test", n_test)
        self.input_dim = positive_int("input_dim", input_dim)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise SetupError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        self.num_classes = num_classes
        self.mean_scale = float(mean_scale)
        self.noise_std = float(noise_std)

    def _read(self) -> ArrayData:
        return make_gauss10(
            self.seed,
            n_train=self.requested_n_train,
            n_test=self.n_test_samples,
            input_dim=self.input_dim,
            num_classes=self.num_classes,
            mean_scale=self.mean_scale,
            noise_std=self.noise_std,
        )
