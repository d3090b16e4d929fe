"""Independent random streams derived from one data seed.

Each use of randomness in the data (Gauss-10 generation, the training subset, label noise,
the spectral subset, the shuffling of each epoch) draws from its own numpy PCG64 stream,
seeded by ``SeedSequence([seed, purpose code, *extra])``. So changing one use (say the label
noise fraction) never changes another (say the spectral subset), and nothing depends on torch's
global random state, the batch size or the process.
"""

from __future__ import annotations

import numpy as np

_PURPOSES = {
    "gauss10_means": 1,
    "gauss10_train": 2,
    "gauss10_test": 3,
    "subset": 4,
    "label_noise": 5,
    "spectral": 6,
    "shuffle": 7,
}


def stream(seed: int, purpose: str, *extra: int) -> np.random.Generator:
    """The numpy generator for `purpose` (a key of `_PURPOSES`) under data seed `seed` >= 0."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), _PURPOSES[purpose], *extra]))
