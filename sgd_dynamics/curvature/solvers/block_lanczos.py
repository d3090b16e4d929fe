"""Extreme eigenpairs of a symmetric operator given as a block product V (P×m) -> A V (P×m).

`block_eigsh` is a thick-restart block Lanczos method (block Krylov-Schur) with full
reorthogonalization, written in torch so that it runs on the operator's device:

- the basis grows by blocks: W = A Q_front is orthogonalized against the whole basis (block
  classical Gram-Schmidt, a second pass where the first cancelled much of a column;
  rank-deficient directions are replaced by random ones), and the projected matrix T = Qᵀ A Q
  is assembled from the coefficients, so that A Q = Q T + Q_front B holds to rounding;
- Rayleigh-Ritz on T gives Ritz pairs (θ_i, Q y_i) whose residual norms ||A Q y_i - θ_i Q y_i||
  = ||B y_i|| come for free;
- when the basis is full, it restarts from the wanted Ritz vectors and a few more (thick restart),
  which keeps the Krylov information of the converged directions;
- the Krylov iteration stops when every wanted pair has ||r_i|| <= tol · ||A||, with ||A||
  estimated by the largest |Ritz value| seen;
- then it checks that no eigenvalue beyond the k-th was missed (the multiplicity check). A Krylov
  space started from a block of b vectors holds at most b directions of any eigenspace (in exact
  arithmetic), so copies of a repeated eigenvalue beyond b, and eigenvalues whose components the
  start happened to lack, are invisible to the residuals. A short Krylov run (`check_steps`
  products, no restart) from a fresh random vector on the deflated operator
  A_d = (I - X Xᵀ) A (I - X Xᵀ) + s X Xᵀ (X the k found vectors, s a shift that puts them on the
  unwanted side of θ_k) looks for a Ritz value beyond θ_k by more than 2 tol ||A||. A Ritz value
  of A_d bounds its extreme eigenvalue from inside, so a hit is a genuinely missed eigenvalue: the
  solver then solves A_d for its k extreme pairs (started from the check's Ritz vectors), merges
  them with the found ones (they are orthogonal), keeps the k extreme, and checks again.
  "Converged" means: every returned pair has relative residual <= tol, and the last check found
  nothing beyond the k-th value. The check is a randomised test: an eigenvalue beyond θ_k that
  the run of `check_steps` products cannot separate from the rest of the deflated spectrum (one
  inside a dense bulk within a tiny relative gap of θ_k) can still escape it;
- otherwise it warns (`ConvergenceWarning`) or raises (`ConvergenceError`).

A starting block `x0` (for instance the eigenvectors of a previous, nearby operator) is the first
block of the Krylov space: a good guess converges in a few blocks (warm start).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ..choices import OnNonconvergence, check_choice

__all__ = [
    "ConvergenceWarning",
    "ConvergenceError",
    "EigResult",
    "block_eigsh",
    "default_tolerance",
]

logger = logging.getLogger("sgd_dynamics.curvature")

Matmat = Callable[[Tensor], Tensor]
_WHICH = ("largest", "smallest", "both")
_DGKS = 0.5**0.5
DEFAULT_BLOCK_SIZE = 1  # thick-restart Lanczos: fewest products; the check finds the copies
CHECK_STEPS = 20  # products of each multiplicity check's Krylov run (one vector at a time)
CHECK_MARGIN = 2.0  # a check hit must pass θ_k by more than CHECK_MARGIN · tol · ||A||


class ConvergenceWarning(RuntimeWarning):
    """An iterative eigensolver stopped before reaching its residual tolerance."""


class ConvergenceError(RuntimeError):
    """An iterative eigensolver stopped before reaching its residual tolerance."""


@dataclass
class EigResult:
    """Eigenpairs from `block_eigsh`.

    Attributes:
        eigenvalues: (w,) in the order asked for: "largest" descending, "smallest" ascending, "both"
            the k largest descending followed by the k smallest ascending (w = 2k).
        eigenvectors: (P, w), orthonormal columns, matching eigenvalues.
        residuals: (w,) relative residual norms ||A x - θ x|| / scale.
        scale: the estimate of ||A|| (largest |Ritz value| seen) used for the relative residuals.
        iterations: blocks applied; matvecs: columns applied (operator products); restarts.
        converged: whether every residual is <= tol and the multiplicity check (when run) found no
            eigenvalue beyond the k-th.
        images: (P, w) A applied to the eigenvectors, from the Krylov relation A Q = Q T + Q_front B
            (A x_i = θ_i x_i + Q_front B y_i), at no extra product.
        check_matvecs: products spent by the multiplicity checks and the solves they triggered.
        check_rounds: multiplicity checks run (1 when nothing was missed, 0 when not run).
    """

    eigenvalues: Tensor
    eigenvectors: Tensor
    residuals: Tensor
    scale: float
    iterations: int
    matvecs: int
    restarts: int
    converged: bool
    tol: float
    images: Tensor | None = None
    check_matvecs: int = 0
    check_rounds: int = 0

    @property
    def max_residual(self) -> float:
        return float(self.residuals.max()) if self.residuals.numel() else 0.0


def default_tolerance(dtype: torch.dtype) -> float:
    """The default relative residual tolerance of the solvers.

    Args:
        dtype: the computation dtype.

    Returns:
        1e-8 in float64, 1e-4 otherwise (float32).
    """
    return 1e-8 if dtype == torch.float64 else 1e-4


def _wanted_indices(n_ritz: int, k: int, which: str, device: torch.device) -> Tensor:
    """Indices into ascending Ritz values of the wanted ones, in output order."""
    top = torch.arange(n_ritz - 1, n_ritz - 1 - k, -1, device=device)
    bottom = torch.arange(k, device=device)
    if which == "largest":
        return top
    if which == "smallest":
        return bottom
    return torch.cat([top, bottom])


def _kept_indices(n_ritz: int, n_keep: int, which: str, device: torch.device) -> Tensor:
    """Indices of the Ritz vectors kept at a restart (the wanted end(s) of the spectrum)."""
    if which == "largest":
        return torch.arange(n_ritz - n_keep, n_ritz, device=device)
    if which == "smallest":
        return torch.arange(n_keep, device=device)
    half = (n_keep + 1) // 2
    return torch.cat(
        [
            torch.arange(n_keep - half, device=device),
            torch.arange(n_ritz - half, n_ritz, device=device),
        ]
    )


class _Orthonormalizer:
    """Orthonormalize a block against a basis, replacing numerically dependent columns."""

    def __init__(self, size: int, dtype: torch.dtype, device: torch.device, seed: int) -> None:
        self.size = size
        self.dtype = dtype
        self.device = device
        self.eps = torch.finfo(dtype).eps
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)

    def random(self, width: int) -> Tensor:
        return torch.randn(
            self.size, width, dtype=self.dtype, device=self.device, generator=self.generator
        )

    def __call__(self, block: Tensor, basis: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Return (C, Q, R) with block = basis C + Q R, Q orthonormal and orthogonal to basis."""
        raw_norms = block.norm(dim=0)
        coeffs = torch.zeros(basis.shape[1], block.shape[1], dtype=self.dtype, device=self.device)
        work = block.clone()
        if basis.shape[1]:
            # the newest 2 blocks first (they hold most of a Krylov image: Lanczos' three-term
            # recurrence), then classical Gram-Schmidt against the whole basis; a second pass
            # only where that one cancelled much of a column (DGKS: ||w'|| < ||w|| / sqrt 2)
            recent = min(basis.shape[1], 2 * block.shape[1])
            c = basis[:, -recent:].T @ work
            work -= basis[:, -recent:] @ c
            coeffs[-recent:] += c
            before = work.norm(dim=0)
            for _ in range(2):
                c = basis.T @ work
                work -= basis @ c
                coeffs += c
                after = work.norm(dim=0)
                if bool((after >= _DGKS * before).all()):
                    break
                before = after
        width = block.shape[1]
        q = torch.zeros(self.size, width, dtype=self.dtype, device=self.device)
        r = torch.zeros(width, width, dtype=self.dtype, device=self.device)
        for j in range(width):
            w = work[:, j]
            for _ in range(2):
                if j:
                    c = q[:, :j].T @ w
                    w = w - q[:, :j] @ c
                    r[:j, j] += c
            norm = w.norm()
            if norm > 10 * self.eps * raw_norms[j] and norm > 0:
                q[:, j] = w / norm
                r[j, j] = norm
            else:
                q[:, j] = self._random_orthogonal(basis, q[:, :j])
        if basis.shape[1] and width > 1:  # where the block lost orthogonality to the basis
            overlap = basis.T @ q
            if float(overlap.abs().max()) > 1e3 * self.eps:
                q_fixed = q - basis @ overlap
                q_new, r2 = torch.linalg.qr(q_fixed)
                coeffs += overlap @ r
                r = r2 @ r
                q = q_new
        return coeffs, q, r

    def _random_orthogonal(self, basis: Tensor, accepted: Tensor) -> Tensor:
        w = self.random(1)[:, 0]
        for _ in range(3):
            if basis.shape[1]:
                w = w - basis @ (basis.T @ w)
            if accepted.shape[1]:
                w = w - accepted @ (accepted.T @ w)
            w = w / w.norm()
        return w


@dataclass(frozen=True)
class _Plan:
    """One Krylov-Schur run: operator size P, k wanted per end, which end(s), relative tolerance,
    block size, basis columns before a thick restart, Ritz vectors kept at a restart, budget of
    operator columns, dtype and device of the basis, random seed, name in log messages."""

    size: int
    k: int
    which: str
    tol: float
    block: int
    basis_cap: int
    n_keep: int
    budget: int
    dtype: torch.dtype
    device: torch.device
    seed: int
    name: str

    @property
    def wanted(self) -> int:
        return 2 * self.k if self.which == "both" else self.k


def _dense_solve(matmat: Matmat, plan: _Plan) -> EigResult:
    """All eigenpairs of a small operator from its explicit matrix A = matmat(I)."""
    size, dtype, device = plan.size, plan.dtype, plan.device
    matrix = matmat(torch.eye(size, dtype=dtype, device=device))
    matrix = 0.5 * (matrix + matrix.T)
    values, vectors = torch.linalg.eigh(matrix.to(torch.float64))
    idx = _wanted_indices(size, min(plan.k, size), plan.which, values.device)
    values, vectors = values[idx].to(dtype), vectors[:, idx].to(dtype)
    scale = float(values.abs().max())
    return EigResult(
        values,
        vectors,
        torch.zeros_like(values),
        scale,
        1,
        size,
        0,
        True,
        plan.tol,
        vectors * values,
    )


def _start_block(ortho: _Orthonormalizer, plan: _Plan, x0: Tensor | None) -> Tensor:
    """The first (orthonormal) block: random, its first columns replaced by x0 (columns summed in
    `block` groups when x0 is wider than a block)."""
    size, block, dtype, device = plan.size, plan.block, plan.dtype, plan.device
    start = ortho.random(block)
    if x0 is not None:
        x0 = x0.to(device=device, dtype=dtype)
        if x0.shape[1] > block:  # sum the columns in `block` groups: one Krylov start per group
            groups = torch.arange(x0.shape[1], device=device) % block
            x0 = torch.zeros(size, block, dtype=dtype, device=device).index_add_(1, groups, x0)
        start[:, : x0.shape[1]] = x0
    _, front, _ = ortho(start, torch.zeros(size, 0, dtype=dtype, device=device))
    return front


class _KrylovRelation:
    """A Q_s = Q_s T + front B: the processed columns Q_s (P×s, A applied), T = Q_sᵀ A Q_s (s×s,
    float64), the next block `front` (P×b, orthonormal, ⊥ Q_s) and the coupling B (b×s, float64).

    Q_s is stored as the first s rows of a preallocated buffer: projections on the basis then read
    contiguous rows rather than strided columns."""

    def __init__(self, plan: _Plan, front: Tensor) -> None:
        self.f64 = dict(dtype=torch.float64, device=plan.device)
        self.dtype = plan.dtype
        self.space = torch.empty(
            plan.basis_cap + plan.block, plan.size, dtype=plan.dtype, device=plan.device
        )
        self.basis = front[:, :0]
        self.t = torch.zeros(0, 0, **self.f64)
        self.coupling = torch.zeros(plan.block, 0, **self.f64)
        self.front = front

    def extend(self, image: Tensor, ortho: _Orthonormalizer) -> None:
        """Append `front` to Q_s given image = A front; orthonormalize the image into the next
        front and extend T and B from the coefficients."""
        block = self.front.shape[1]
        s_old = self.basis.shape[1]
        self.space[s_old : s_old + block] = self.front.T
        self.basis = self.space[: s_old + block].T
        coeffs, self.front, r = ortho(image, self.basis)  # A front = basis C + new front R
        coeffs = coeffs.to(torch.float64)
        t_new = torch.zeros(s_old + block, s_old + block, **self.f64)
        t_new[:s_old, :s_old] = self.t
        t_new[s_old:, :s_old] = self.coupling
        t_new[:, s_old:] = coeffs
        self.t = 0.5 * (t_new + t_new.T)
        self.coupling = torch.cat([torch.zeros(block, s_old, **self.f64), r.to(torch.float64)], 1)

    def restart(self, theta: Tensor, ritz_y: Tensor, keep: Tensor) -> None:
        """Thick restart: keep the Ritz vectors Q_s y_i, i in `keep` (T becomes diagonal)."""
        y = ritz_y[:, keep]
        self.space[: len(keep)] = (self.basis @ y.to(self.dtype)).T
        self.basis = self.space[: len(keep)].T
        self.t = torch.diag(theta[keep])
        self.coupling = self.coupling @ y

    def ritz_result(
        self, plan: _Plan, theta: Tensor, ritz_y: Tensor, residuals: Tensor, scale: float
    ) -> dict:
        """The wanted Ritz pairs with their images A x_i = θ_i x_i + front B y_i (no product)."""
        count = min(plan.k, self.basis.shape[1] // (2 if plan.which == "both" else 1))
        idx = _wanted_indices(self.basis.shape[1], count, plan.which, plan.device)
        y = ritz_y[:, idx]
        vectors = self.basis @ y.to(plan.dtype)
        images = vectors * theta[idx].to(plan.dtype) + self.front @ (self.coupling @ y).to(
            plan.dtype
        )
        rel = residuals[idx] / scale if scale > 0 else torch.zeros_like(residuals[idx])
        return dict(
            eigenvalues=theta[idx].to(plan.dtype),
            eigenvectors=vectors,
            residuals=rel.to(plan.dtype),
            scale=scale,
            tol=plan.tol,
            images=images,
        )


def _wanted_converged(
    plan: _Plan, residuals: Tensor, scale: float, iterations: int, matvecs: int
) -> bool:
    """Whether every wanted Ritz pair has ||r_i|| <= tol · scale (logs the worst otherwise)."""
    s_new = residuals.numel()
    if s_new < plan.wanted:
        return False
    worst = float(residuals[_wanted_indices(s_new, plan.k, plan.which, plan.device)].max())
    if worst <= plan.tol * scale:
        return True
    logger.debug(
        "%s: step %d, %d matvecs, basis %d, max relative residual %.2e",
        plan.name,
        iterations,
        matvecs,
        s_new,
        worst / scale if scale > 0 else 0.0,
    )
    return False


def _krylov_schur(matmat: Matmat, plan: _Plan, x0: Tensor | None) -> EigResult:
    """The thick-restart block Lanczos iteration (module docstring); no warning, no check."""
    block = plan.block
    ortho = _Orthonormalizer(plan.size, plan.dtype, plan.device, plan.seed)
    krylov = _KrylovRelation(plan, _start_block(ortho, plan, x0))
    scale = 0.0
    matvecs = iterations = restarts = 0
    converged = False
    while True:
        image = matmat(krylov.front)
        matvecs += block
        iterations += 1
        krylov.extend(image, ortho)
        theta, ritz_y = torch.linalg.eigh(krylov.t)
        scale = max(scale, float(theta.abs().max()))
        residuals = (krylov.coupling @ ritz_y).norm(dim=0)  # ||A Q y - θ Q y|| = ||B y||
        if _wanted_converged(plan, residuals, scale, iterations, matvecs):
            converged = True
            break
        if matvecs + block > plan.budget:
            break
        s_new = krylov.basis.shape[1]
        if s_new + block > plan.basis_cap:  # thick restart: keep the wanted end(s), a few more
            krylov.restart(
                theta, ritz_y, _kept_indices(s_new, plan.n_keep, plan.which, plan.device)
            )
            restarts += 1
    return EigResult(
        **krylov.ritz_result(plan, theta, ritz_y, residuals, scale),
        iterations=iterations,
        matvecs=matvecs,
        restarts=restarts,
        converged=converged,
    )


def _ends(values: Tensor, k: int, which: str) -> list[tuple[str, Tensor]]:
    """[(end, the k-th value at that end)] for the wanted end(s) of an `EigResult` ordering."""
    if which == "largest":
        return [("largest", values[k - 1])]
    if which == "smallest":
        return [("smallest", values[k - 1])]
    return [("largest", values[k - 1]), ("smallest", values[2 * k - 1])]


def _deflation_shift(ends: list[tuple[str, Tensor]], which: str, width: float) -> float:
    """The shift s of A_d that puts the found vectors on the unwanted side of θ_k."""
    if which == "both":
        return 0.5 * float(ends[0][1] + ends[1][1])
    if which == "largest":
        return float(ends[0][1]) - width
    return float(ends[0][1]) + width


def _deflated(matmat: Matmat, found: Tensor, shift: float) -> Matmat:
    """A_d V = (I - X Xᵀ) A (I - X Xᵀ) V + shift X Xᵀ V, X = found (orthonormal columns): one
    product with A per call."""

    def apply(block: Tensor) -> Tensor:
        coords = found.T @ block
        inside = block - found @ coords
        out = matmat(inside)
        out = out - found @ (found.T @ out)
        return out + found @ (shift * coords)

    return apply


def _merge(
    result: EigResult, extra: EigResult, k: int, which: str, scale: float
) -> tuple[Tensor, Tensor, Tensor]:
    """The k extreme pairs (at the wanted ends) among the found pairs and those of the deflated
    operator (A y = A_d y + X (A X)ᵀ y for y ⊥ X); returns (values, vectors, images)."""
    assert result.images is not None and extra.images is not None
    x, ax = result.eigenvectors, result.images
    extra_images = extra.images + x @ (ax.T @ extra.eigenvectors)
    values = torch.cat([result.eigenvalues, extra.eigenvalues])
    vectors = torch.cat([x, extra.eigenvectors], dim=1)
    images = torch.cat([ax, extra_images], dim=1)
    order = torch.argsort(values.to(torch.float64))  # ascending
    top, bottom = order.flip(0)[:k], order[:k]
    idx = {"largest": top, "smallest": bottom, "both": torch.cat([top, bottom])}[which]
    return values[idx], vectors[:, idx], images[:, idx]


def _merged_result(result: EigResult, extra: EigResult, plan: _Plan, scale: float) -> EigResult:
    """`result` improved by the deflated solve `extra` (`_merge`), with true residuals."""
    values, vectors, images = _merge(result, extra, plan.k, plan.which, scale)
    residuals = (images - vectors * values).norm(dim=0) / max(scale, 1e-300)
    return EigResult(
        eigenvalues=values,
        eigenvectors=vectors,
        residuals=residuals,
        scale=max(scale, extra.scale),
        iterations=result.iterations,
        matvecs=result.matvecs,
        restarts=result.restarts + extra.restarts,
        converged=bool(residuals.max() <= plan.tol),
        tol=plan.tol,
        images=images,
    )


def _missed(probe: EigResult, ends: list[tuple[str, Tensor]], margin: float) -> list[str]:
    """The check's Ritz values beyond θ_k by more than `margin`, described, one per end."""
    probe_values = probe.eigenvalues.to(torch.float64)
    hits = []
    for i, (end, kth) in enumerate(ends):
        found = float(probe_values[i])
        beyond = found - float(kth) if end == "largest" else float(kth) - found
        if beyond > margin:
            hits.append(f"{end}: {found:.6g} beyond θ_k = {float(kth):.6g}")
    return hits


def _multiplicity_check(
    matmat: Matmat, result: EigResult, plan: _Plan, check_steps: int
) -> EigResult:
    """Deflated checks (module docstring) until one finds nothing beyond the k-th value or the
    budget is spent; returns the (possibly improved) result with its check figures."""
    spent = rounds = spent_iterations = 0
    while True:
        rounds += 1
        values = result.eigenvalues.to(torch.float64)
        scale = max(result.scale, float(values.abs().max()))
        ends = _ends(values, plan.k, plan.which)
        shift = _deflation_shift(ends, plan.which, max(scale, 1e-300))
        deflated = _deflated(matmat, result.eigenvectors, shift)
        # one random vector: the run's power against a missed eigenvalue is the degree of its
        # Krylov polynomial, so `check_steps` single products beat the same number in blocks
        steps = max(2, min(check_steps, plan.budget - result.matvecs - spent))
        probe_plan = replace(
            plan,
            k=1,
            block=1,
            basis_cap=steps + 1,
            n_keep=2,
            budget=steps,
            seed=plan.seed + 1000 + rounds,
            name=f"{plan.name} (check)",
        )
        probe = _krylov_schur(deflated, probe_plan, None)
        spent += probe.matvecs
        spent_iterations += probe.iterations
        hits = _missed(probe, ends, CHECK_MARGIN * plan.tol * scale)
        if not hits:
            logger.debug(
                "%s: multiplicity check %d found nothing beyond the k-th", plan.name, rounds
            )
            result.converged = True
            break
        logger.debug(
            "%s: check %d found %d eigenvalue(s) beyond the k-th that the block solver had "
            "missed (%s); solving once more with the found ones set aside",
            plan.name,
            rounds,
            len(hits),
            "; ".join(hits),
        )
        remaining = plan.budget - result.matvecs - spent
        if remaining < 2 * plan.block:
            result.converged = False
            break
        extra_plan = replace(
            plan, budget=remaining, seed=plan.seed + 2000 + rounds, name=f"{plan.name} (deflated)"
        )
        extra = _krylov_schur(deflated, extra_plan, probe.eigenvectors)
        spent += extra.matvecs
        spent_iterations += extra.iterations
        result = _merged_result(result, extra, plan, scale)
        if not result.converged:
            break
    result.check_matvecs = spent
    result.check_rounds = rounds
    result.matvecs += spent
    result.iterations += spent_iterations
    return result


def _check_arguments(
    size: int, k: int, which: str, on_failure: str, check_steps: int | None, x0: Tensor | None
) -> Tensor | None:
    """Raise a ValueError naming the bad argument; returns x0 as a (P, j) block (or None)."""
    if which not in _WHICH:
        raise ValueError(f"which must be one of {_WHICH}, got {which!r}")
    check_choice("on_failure", on_failure, OnNonconvergence)
    if not 1 <= k <= size:
        raise ValueError(f"k must satisfy 1 <= k <= {size} (the operator size), got {k}")
    if check_steps is not None and (isinstance(check_steps, bool) or check_steps < 0):
        raise ValueError(f"check_steps must be None or an integer >= 0, got {check_steps!r}")
    if x0 is not None:
        if x0.ndim == 1:
            x0 = x0[:, None]
        if x0.ndim != 2 or x0.shape[0] != size:
            raise ValueError(f"x0 must have shape ({size}, j), got {tuple(x0.shape)}")
    return x0


def _report(result: EigResult, plan: _Plan, on_failure: str) -> None:
    """Log the run; warn or raise (per `on_failure`) when it did not converge."""
    logger.debug(
        "%s: %s after %d blocks, %d matvecs (%d in checks), %d restarts, max residual %.2e",
        plan.name,
        "converged" if result.converged else "NOT converged",
        result.iterations,
        result.matvecs,
        result.check_matvecs,
        result.restarts,
        result.max_residual,
    )
    if result.converged:
        return
    message = (
        f"{plan.name}: the eigensolver stopped after {result.matvecs} operator products without "
        f"reaching the relative residual tolerance {plan.tol:.1e} with a clean multiplicity check "
        f"(max residual {result.max_residual:.2e}); raise max_matvecs or tol"
    )
    if on_failure == OnNonconvergence.RAISE:
        raise ConvergenceError(message)
    if on_failure == OnNonconvergence.WARN:
        warnings.warn(message, ConvergenceWarning, stacklevel=3)


def block_eigsh(
    matmat: Matmat,
    size: int,
    k: int,
    which: str = "largest",
    *,
    tol: float | None = None,
    block_size: int | None = None,
    max_basis: int | None = None,
    max_matvecs: int | None = None,
    x0: Tensor | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    seed: int = 0,
    on_failure: str = "warn",
    name: str = "operator",
    check_steps: int | None = None,
) -> EigResult:
    """k extreme eigenpairs of a symmetric operator given by its block products.

    Operators with P <= max_basis + 2 · block_size are solved exactly from their dense matrix.

    Args:
        matmat: V (P, m) -> A V (P, m) for a symmetric A.
        size: P.
        k: eigenpairs at each wanted end, 1 <= k <= P.
        which: "largest" (k largest, descending), "smallest" (k smallest, ascending), or "both" (the
            k largest and the k smallest from one Krylov space).
        tol: relative residual tolerance, ||A x - θ x|| <= tol · ||A|| (default:
            `default_tolerance`).
        block_size: vectors applied per operator call (default DEFAULT_BLOCK_SIZE = 1: thick-restart
            Lanczos, the fewest products on Hessian-like spectra; a block of b sees up to b copies
            of a repeated eigenvalue by itself, and larger blocks amortize passes over the data; the
            multiplicity check finds the copies whatever the block).
        max_basis: basis columns before a thick restart (default: three times the number kept).
        max_matvecs: budget of operator columns, checks included (default: max(2000, 50 ·
            max_basis)).
        x0: (P, j) starting vectors (warm start, e.g. the eigenvectors of a nearby operator). The
            first block is x0, completed with random columns when j < block_size, or with its
            columns summed in block_size groups when j > block_size (with one starting vector, the
            Krylov space of Σ x_i contains the x_i after about j steps, up to their error).
        dtype, device: of the basis and the products.
        seed: seed of the random starting and check vectors.
        on_failure: an `OnNonconvergence`: "warn" (`ConvergenceWarning`), "raise"
            (`ConvergenceError`) or "ignore" when the tolerance is not reached within `max_matvecs`;
            the best Ritz pairs are returned.
        name: the operator's name in log lines and messages.
        check_steps: products of each multiplicity check's Krylov run, from one random vector
            (default CHECK_STEPS = 20; 0 skips the check, and "converged" then only means small
            residuals).

    Returns:
        An `EigResult`; `converged` means small residuals and a clean multiplicity check.

    Raises:
        ValueError: for a bad `which`, `on_failure`, `k`, `check_steps` or `x0` shape.
        ConvergenceError: unconverged, with on_failure="raise".
    """
    x0 = _check_arguments(size, k, which, on_failure, check_steps, x0)
    device = torch.device(device) if device is not None else torch.device("cpu")
    tol = default_tolerance(dtype) if tol is None else float(tol)
    wanted = 2 * k if which == "both" else k
    block = block_size or DEFAULT_BLOCK_SIZE
    check_steps = CHECK_STEPS if check_steps is None else check_steps
    n_keep = wanted + max(block, wanted // 2)
    basis_cap = max(max_basis or 3 * n_keep, n_keep + 2 * block)
    budget = max_matvecs or max(2000, 50 * basis_cap)
    plan = _Plan(size, k, which, tol, block, basis_cap, n_keep, budget, dtype, device, seed, name)
    if size <= basis_cap + 2 * block:
        return _dense_solve(matmat, plan)

    result = _krylov_schur(matmat, plan, x0)
    if result.converged and check_steps > 0 and size > wanted + block:
        result = _multiplicity_check(matmat, result, plan, check_steps)
    _report(result, plan, on_failure)
    return result
