"""Label noise: a fixed fraction of the training labels replaced by uniformly random labels."""

from __future__ import annotations

import math

import numpy as np

from sgd_dynamics.utils.errors import SetupError


def num_noisy(n: int, fraction: float) -> int:
    """How many of `n` labels are replaced: ``round(fraction * n)``, halves rounded up."""
    return int(math.floor(fraction * n + 0.5))


def check_fraction(fraction: float) -> float:
    """Return `fraction` as a float, or raise `SetupError` unless it lies in [0, 1]."""
    try:
        value = float(fraction)
    except (TypeError, ValueError):
        raise SetupError(
            f"dataset.label_noise must be a number in [0, 1], got {fraction!r}"
        ) from None
    if not 0.0 <= value <= 1.0:
        raise SetupError(f"dataset.label_noise must be in [0, 1], got {fraction!r}")
    return value


def corrupt_labels(
    labels: np.ndarray, fraction: float, num_classes: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Replace ``k = num_noisy(n, fraction)`` labels by labels drawn uniformly at random.

    The k positions are the first k of a random permutation of range(n) and their new labels
    the first k of n labels drawn uniformly from {0, ..., num_classes - 1}; both come from
    `rng`. A random label may equal the original one (as in Zhang et al., 2017), so about
    ``k (C - 1) / C`` labels actually change. For one seed the replaced sets are nested:
    the positions replaced at fraction r are also replaced, with the same labels, at any r' > r.

    Args:
        labels: (n,) integer class labels, not modified.
        fraction: in [0, 1].
        num_classes: C, the number of classes.
        rng: the label-noise stream.

    Returns:
        (noisy labels (n,) int64, replaced positions (k,) int64 in increasing order).
    """
    fraction = check_fraction(fraction)
    labels = np.asarray(labels, dtype=np.int64)
    n = labels.shape[0]
    order = rng.permutation(n)
    random_labels = rng.integers(0, num_classes, size=n)
    k = num_noisy(n, fraction)
    noisy = labels.copy()
    noisy[order[:k]] = random_labels[:k]
    return noisy, np.sort(order[:k]).astype(np.int64)
