"""Checks of arrays read from data files: samples present, labels integers in range. The
callers add the name of the file to the ValueError's message."""

from __future__ import annotations

import numpy as np


def check_samples(count: int) -> None:
    """ValueError when a file holds no sample."""
    if count == 0:
        raise ValueError("it holds 0 samples")


def check_labels(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """`labels` as int64 when they are integers in [0, num_classes), else ValueError naming the
    dtype, or the first label out of range and its position."""
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be integers in [0, {num_classes - 1}], found dtype {labels.dtype}"
        )
    labels = labels.astype(np.int64)
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        raise ValueError(
            f"labels must lie in [0, {num_classes - 1}], found {labels[bad[0]]} at position "
            f"{bad[0]} ({bad.size} label(s) out of range)"
        )
    return labels
