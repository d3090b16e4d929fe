"""What the two methods of a snapshot share before the `Spectra` is assembled.

`SnapshotParts`: what one method (`dense`, `iterative`) measured, as tensors on the computation
device; `Laps`: the timings of an iterative snapshot's parts; `snapshot_eigsh`: `block_eigsh` on
one of the snapshot's P×P operators with its settings, and `solver_info`, the solver figures
that go into `Spectra.diagnostics`; `minibatch_top_from_gram`: M_b's top eigenvalues from the
Gram side when the snapshot formed K (both methods).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ..density.densities import SpectralDensities
from ..gram.spectrum import minibatch_gram, top_eigenvalues
from ..operators.per_sample import GradientFactors
from ..operators.products import CurvatureOperators
from ..options import SpectraOptions
from ..solvers.block_lanczos import EigResult, block_eigsh


def to_numpy(x: Tensor) -> np.ndarray:
    """`x` as a float64 numpy array on the CPU."""
    return x.detach().to("cpu", torch.float64).numpy()


@dataclass
class SnapshotParts:
    """What one method measured, as tensors on the computation device, before the shared steps
    (densities, principal angles, norms) complete it into a `Spectra` (`_to_spectra`).

    Field names and shapes as in `Spectra`; in addition gram (n, n), K = G Gᵀ / n when the
    snapshot formed it (M's exact density reuses it), and factors, M's per-sample gradient
    factors in the iterative method (None: M through jvp/vjp products).
    """

    m_route: str
    hf_top: Tensor
    hf_vecs: Tensor
    mt_top: Tensor
    mt_vecs: Tensor
    hp_top: Tensor
    hp_bottom: Tensor
    trace_hf: float
    trace_mt: float
    trace_hp: float
    trace_hf_stderr: float = 0.0
    trace_mt_stderr: float = 0.0
    trace_hp_stderr: float = 0.0
    hf_all: Tensor | None = None
    mt_all: Tensor | None = None
    hp_all: Tensor | None = None
    mb_top: Tensor | None = None
    hp_top_vecs: Tensor | None = None
    hp_bottom_vecs: Tensor | None = None
    mt_sample_vecs: Tensor | None = None
    gram: Tensor | None = None
    factors: GradientFactors | None = None
    densities: SpectralDensities | None = None
    diagnostics: dict[str, float] = field(default_factory=dict)


class Laps:
    """Seconds of the parts of an iterative snapshot: lap(name) stores `name_seconds`, the time
    since the previous lap (or since the start), in `diagnostics`."""

    def __init__(self, diagnostics: dict[str, float]) -> None:
        self.diagnostics = diagnostics
        self.clock = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.diagnostics[f"{name}_seconds"] = now - self.clock
        self.clock = now


def solver_info(prefix: str, result: EigResult) -> dict[str, float]:
    return {
        f"{prefix}_matvecs": float(result.matvecs),
        f"{prefix}_iterations": float(result.iterations),
        f"{prefix}_restarts": float(result.restarts),
        f"{prefix}_max_residual": result.max_residual,
        f"{prefix}_converged": float(result.converged),
        f"{prefix}_check_matvecs": float(result.check_matvecs),
        f"{prefix}_check_rounds": float(result.check_rounds),
    }


def snapshot_eigsh(
    ops: CurvatureOperators,
    name: str,
    matmat: Callable[[Tensor], Tensor],
    which: str,
    x0: Tensor | None,
    k: int,
    options: SpectraOptions,
) -> EigResult:
    """`block_eigsh` on a P×P operator of the snapshot with the snapshot's solver settings; each
    operator draws its random start from its own seed (H_f: seed, M: +1, H_p: +2, M_b: +3)."""
    offset = {"H_f": 0, "M": 1, "H_p": 2, "M_b": 3}[name]
    return block_eigsh(
        matmat,
        ops.n_params,
        k,
        which,
        x0=x0,
        dtype=ops.theta.dtype,
        device=ops.theta.device,
        seed=options.seed + offset,
        name=name,
        **options.solver_settings(),
    )


def minibatch_top_from_gram(
    gram: Tensor, c: float, options: SpectraOptions
) -> tuple[Tensor, dict[str, float]]:
    """(k,) largest eigenvalues of M_b = c M + (1 - c) μμᵀ, descending, from the Gram side
    W^½ K W^½ (`gram` = K, formed by the snapshot), and the solver figures."""
    matrix, settings = minibatch_gram(gram, c), options.gram_solver_settings()
    values, info = top_eigenvalues(matrix, options.k, name="M_b (Gram)", **settings)
    return values, {f"mb_{key}": value for key, value in info.items()}
