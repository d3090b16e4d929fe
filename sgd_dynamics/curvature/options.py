"""The settings of a curvature snapshot, checked once: `SpectraOptions`.

`compute_spectra(model, inputs, targets, options)` takes one (None: the defaults); the spectral
callback builds one when it is constructed, so a bad setting is refused before training. A bad
value raises one ValueError that starts with the setting's name and says what is accepted (the
callback prefixes it with ``spectral.``). The choice settings accept the members of the
`choices` Enums or their strings, and keep the string.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch

from sgd_dynamics.utils.validate import integer_at_least, is_integer

from .choices import HpMethod, Method, MRoute, OnNonconvergence, check_choice
from .density.densities import DensitySettings
from .solvers.block_lanczos import default_tolerance
from .thresholds import DENSE_MAX_PARAMS, method_for

__all__ = ["SpectraOptions", "DTYPES", "METHODS", "HP_METHODS"]

# the computation dtypes by name (the configuration's spectral.dtype)
DTYPES = {"float32": torch.float32, "float64": torch.float64}
# the accepted strings of the choice settings the configuration exposes, read by its schema
METHODS = Method.values()
HP_METHODS = HpMethod.values()


def _positive_number(value: object) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, numbers.Real)
        and math.isfinite(value)
        and value > 0
    )


def _dtype(value: object) -> torch.dtype:
    """torch.float32 / torch.float64 from the dtype or its name ("float32", "float64")."""
    if isinstance(value, str) and value in DTYPES:
        return DTYPES[value]
    if value in (torch.float32, torch.float64):
        return value  # type: ignore[return-value]
    raise ValueError(
        f"dtype must be torch.float32 or torch.float64 (or their names float32, float64), "
        f"got {value!r}"
    )


@dataclass(frozen=True)
class SpectraOptions:
    """Settings of `compute_spectra` (the per-call data: model, samples, batch size, warm start,
    DDP reduction and parameter selection are its arguments, not settings).

    Attributes:
        k: eigenpairs per operator, an integer >= 1 (at most P, checked against the model).
        method: "dense" (exact P×P matrices, all eigenvalues), "iterative" (matrix-free), or "auto"
            (dense when P <= dense_max_params, `thresholds.DENSE_MAX_PARAMS` = 3000 by default).
        dtype: torch.float64 or torch.float32 (or their names) for all computations.
        chunk_size: samples per forward/backward pass (None: `operators.default_chunk_size`).
        tol: relative residual tolerance of the iterative solvers, ||A x - θ x|| <= tol · ||A||
            (None: 1e-8 in float64, 1e-4 in float32; `solver_tolerance`).
        max_matvecs: product budget of each iterative solve (None: `block_eigsh`'s default).
        block_size: vectors per operator call in the P-side solvers (None: 1, thick-restart
            Lanczos).
        m_route: how M is applied in the iterative method: "auto", "linear" (layer-wise factors of
            nn.Linear networks), "dense" (per-sample gradient matrix), "operator" (jvp/vjp).
        memory_budget: bytes allowed for per-sample gradient factors and the Gram matrix.
        dense_max_params: largest P for which method="auto" picks the dense method.
        dense_threads: thread limit for the dense method and every dense eigendecomposition (1:
            small dense problems gain little from threads and collapse when the threads outnumber
            the free cores; None: leave the thread pools as they are).
        trace_probes: Hutchinson probes for tr(H_f) in the iterative method (0: NaN).
        seed: seed of the random starting blocks and probes (results are reproducible).
        on_nonconvergence: "warn" (ConvergenceWarning), "raise" (ConvergenceError) or "ignore".
        hp_method: H_p's extremes in the iterative method: "solve" (a converged block Lanczos solve
            on H_p = M - H_f), "ritz" (Rayleigh-Ritz estimates on span(top-k of H_f, top-k of M): k
            extra H_f products instead of a third solve; relative residuals in
            diagnostics["hp_max_residual"]) or "none" (hp_top and hp_bottom NaN; traces kept).
        self_check: with per-sample gradient factors, compare one M product through them with the
            jvp/vjp product; a relative difference above `m_route.SELF_CHECK_TOLERANCE` (in
            `operators`) abandons the factors with a `RouteWarning` (diagnostics["m_self_check"]).
        check_steps: products of each solver's multiplicity check (None: 20; 0 skips it, and then a
            converged solve may miss copies of a repeated eigenvalue beyond the block size).
        density: None/False: off; True (the defaults of `DensitySettings`, probes from `seed`) or a
            DensitySettings: also the spectral densities of H_f, M and H_p (docs/densities.md);
            under DDP M's Gram matrix is assembled from the ranks' shards, the same on every rank.
    """

    k: int = 15
    method: str = "auto"
    dtype: torch.dtype = torch.float64
    chunk_size: int | None = None
    tol: float | None = None
    max_matvecs: int | None = None
    block_size: int | None = None
    m_route: str = "auto"
    memory_budget: int = 1 << 30
    dense_max_params: int = DENSE_MAX_PARAMS
    dense_threads: int | None = 1
    trace_probes: int = 16
    seed: int = 0
    on_nonconvergence: str = "warn"
    hp_method: str = "solve"
    self_check: bool = True
    check_steps: int | None = None
    density: bool | DensitySettings | None = None

    def __post_init__(self) -> None:
        integer_at_least(self.k, "k", 1)
        object.__setattr__(self, "method", check_choice("method", self.method, Method))
        object.__setattr__(self, "dtype", _dtype(self.dtype))
        integer_at_least(self.chunk_size, "chunk_size", 1, optional=True)
        if self.tol is not None and not _positive_number(self.tol):
            raise ValueError(f"tol must be a finite number > 0 or None, got {self.tol!r}")
        integer_at_least(self.max_matvecs, "max_matvecs", 1, optional=True)
        integer_at_least(self.block_size, "block_size", 1, optional=True)
        object.__setattr__(self, "m_route", check_choice("m_route", self.m_route, MRoute))
        if not _positive_number(self.memory_budget):
            raise ValueError(
                f"memory_budget must be a number of bytes > 0, got {self.memory_budget!r}"
            )
        integer_at_least(self.dense_max_params, "dense_max_params", 0)
        integer_at_least(self.dense_threads, "dense_threads", 1, optional=True)
        integer_at_least(self.trace_probes, "trace_probes", 0)
        if not is_integer(self.seed):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        on_nonconvergence = check_choice(
            "on_nonconvergence", self.on_nonconvergence, OnNonconvergence
        )
        object.__setattr__(self, "on_nonconvergence", on_nonconvergence)
        object.__setattr__(self, "hp_method", check_choice("hp_method", self.hp_method, HpMethod))
        integer_at_least(self.check_steps, "check_steps", 0, optional=True)
        if self.density is not None and not isinstance(self.density, (bool, DensitySettings)):
            raise ValueError(
                "density must be None, a bool or a DensitySettings, got "
                f"{type(self.density).__name__}"
            )

    @property
    def solver_tolerance(self) -> float:
        """`tol`, or the dtype's default (1e-8 float64, 1e-4 float32)."""
        return default_tolerance(self.dtype) if self.tol is None else float(self.tol)

    @property
    def density_settings(self) -> DensitySettings | None:
        """None when densities are off; True gives the defaults with the probes drawn from seed."""
        if self.density is None or self.density is False:
            return None
        return DensitySettings(seed=self.seed) if self.density is True else self.density

    @property
    def dtype_name(self) -> str:
        """ "float32" or "float64"."""
        return str(self.dtype).replace("torch.", "")

    def method_for(self, n_params: int) -> str:
        """ "dense" or "iterative" for a model with P = n_params parameters."""
        return method_for(n_params, self.method, self.dense_max_params)

    def gram_solver_settings(self) -> dict[str, object]:
        """The keyword arguments of the n×n Gram-side solves (`gram.top_eigenvalues`)."""
        extra = dict(seed=self.seed, dense_threads=self.dense_threads)
        return dict(self._shared_solver_settings(), **extra)

    def solver_settings(self) -> dict[str, object]:
        """The keyword arguments every P-side `block_eigsh` solve of a snapshot shares."""
        extra = dict(max_matvecs=self.max_matvecs, block_size=self.block_size)
        return dict(self._shared_solver_settings(), **extra)

    def _shared_solver_settings(self) -> dict[str, object]:
        """Tolerance, failure handling and multiplicity check: the same for every solve."""
        tol, check_steps = self.solver_tolerance, self.check_steps
        return dict(tol=tol, on_failure=self.on_nonconvergence, check_steps=check_steps)
