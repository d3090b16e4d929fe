"""Stochastic Lanczos quadrature (SLQ): the spectral measure of a symmetric operator from products.

For a unit probe v and a symmetric A (P×P) with eigenpairs (λ_i, u_i), vᵀ f(A) v = Σ_i (u_iᵀv)²
f(λ_i): the probe sees the measure Σ_i (u_iᵀv)² δ(λ - λ_i), whose mean over random isotropic
unit probes is the spectral measure (1/P) Σ_i δ(λ - λ_i). q Lanczos steps from v give a q×q
tridiagonal T = Y diag(θ) Yᵀ; the Ritz values θ_j with weights τ_j = Y_{1j}² are the q-point
Gauss quadrature of the probe's measure (exact for polynomials of degree <= 2q - 1). Averaging over
m probes estimates the spectral measure (Lin, Saad and Yang, SIAM Review 2016).

Here the m probes run side by side: every step is one product of A with a (P, m) block, and each
column keeps its own three-term recurrence, fully reorthogonalised against its previous Lanczos
vectors (classical Gram-Schmidt, twice; q is small), so no ghost copies of converged Ritz values
appear. With `deflate` (P×k orthonormal columns, e.g. known eigenvectors) the probes and every
Lanczos vector are kept orthogonal to them: the quadrature then describes A compressed to their
orthogonal complement, of dimension P - k. Memory: (q + 1) m P numbers for the Lanczos vectors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch
from torch import Tensor

__all__ = ["Quadrature", "lanczos_quadrature", "random_probes"]

PROBE_KINDS = ("gaussian", "rademacher")
_BREAKDOWN = 1e3  # a residual below _BREAKDOWN · eps · ||A|| ends a probe's recurrence


@dataclass
class Quadrature:
    """Gauss quadrature nodes and weights of m probes.

    Attributes:
        nodes, weights: (m, q) float64; row r holds probe r's Ritz values and squared first
            components (each row's weights sum to 1). A probe whose Krylov space became invariant
            after s < q steps has weight 0 on its last q - s entries (nodes there are 0).
        steps: (m,) the number of Lanczos steps each probe made.
        products: operator calls made (each on a (P, m) block).
    """

    nodes: np.ndarray
    weights: np.ndarray
    steps: np.ndarray
    products: int


def random_probes(
    n_params: int,
    count: int,
    kind: str,
    generator: torch.Generator,
    dtype: torch.dtype,
    device: torch.device | str,
) -> Tensor:
    """Random probe vectors, not normalised.

    Args:
        n_params: P.
        count: probes.
        kind: "gaussian" (standard normal entries) or "rademacher" (±1).
        generator, dtype, device: where they are drawn.

    Returns:
        (P, count) probes.

    Raises:
        ValueError: for another kind.
    """
    if kind == "gaussian":
        return torch.randn(n_params, count, generator=generator, dtype=dtype, device=device)
    if kind == "rademacher":
        signs = torch.randint(0, 2, (n_params, count), generator=generator, device=device)
        return signs.to(dtype) * 2 - 1
    raise ValueError(f"probe kind must be one of {PROBE_KINDS}, got {kind!r}")


def _project_out(block: Tensor, basis: Tensor | None) -> Tensor:
    if basis is None or basis.shape[1] == 0:
        return block
    for _ in range(2):
        block = block - basis @ (basis.T @ block)
    return block


def lanczos_quadrature(
    matmat: Callable[[Tensor], Tensor],
    probes: Tensor,
    steps: int,
    deflate: Tensor | None = None,
) -> Quadrature:
    """Gauss quadratures of the spectral measure of A seen from each probe, by Lanczos.

    The steps stop early for a probe whose residual vanishes (an invariant Krylov space: its
    quadrature is then exact).

    Args:
        matmat: V (P, m) -> A V (P, m) for a symmetric A, in the probes' dtype and device.
        probes: (P, m) starting vectors, one Lanczos recurrence each, run together.
        steps: q, Lanczos steps per probe.
        deflate: (P, k) orthonormal columns to keep every Lanczos vector orthogonal to, or None.

    Returns:
        A `Quadrature`: each probe's nodes and weights.
    """
    n_params, count = probes.shape
    dimension = n_params - (0 if deflate is None else deflate.shape[1])
    if not 1 <= steps <= dimension:
        raise ValueError(
            f"steps must satisfy 1 <= steps <= {dimension} (the dimension probed), got {steps}"
        )
    v = _project_out(probes, deflate)
    norms = v.norm(dim=0)
    if bool((norms == 0).any()):
        raise ValueError("a probe vanished after deflation: it lies in the span of `deflate`")
    v = v / norms
    # probe r's Lanczos vectors are the rows of basis[r] (q, P): reorthogonalisation is one
    # batched matrix-vector product per pass
    basis = torch.empty(count, steps, n_params, dtype=probes.dtype, device=probes.device)
    alpha = np.zeros((count, steps))
    beta = np.zeros((count, steps))
    active = torch.ones(count, dtype=torch.bool, device=probes.device)
    lengths = np.full(count, steps)
    eps = torch.finfo(probes.dtype).eps
    scale = 0.0
    products = 0
    for j in range(steps):
        basis[:, j] = v.T
        w = matmat(v)
        products += 1
        a = (v * w).sum(dim=0)
        w = w - v * a
        for _ in range(2):  # full reorthogonalisation of every column against its own basis
            previous = basis[:, : j + 1]  # (m, j + 1, P)
            coefficients = torch.bmm(previous, w.T.unsqueeze(2))  # (m, j + 1, 1)
            w = w - torch.bmm(previous.transpose(1, 2), coefficients).squeeze(2).T
        w = _project_out(w, deflate)
        b = w.norm(dim=0)
        alpha[:, j] = a.cpu().double().numpy()
        scale = max(scale, float(a.abs().max()), float(b.max()))
        if j == steps - 1:
            break
        ended = active & (b <= _BREAKDOWN * eps * scale)
        for r in torch.nonzero(ended).flatten().tolist():
            lengths[r] = j + 1
        active &= ~ended
        if not bool(active.any()):
            break
        beta[:, j] = torch.where(active, b, torch.zeros_like(b)).cpu().double().numpy()
        v = torch.where(active, w / torch.where(active, b, torch.ones_like(b)), torch.zeros_like(w))
    nodes = np.zeros((count, steps))
    weights = np.zeros((count, steps))
    for r in range(count):
        s = int(lengths[r])
        theta, vectors = scipy.linalg.eigh_tridiagonal(alpha[r, :s], beta[r, : s - 1])
        nodes[r, :s] = theta
        weights[r, :s] = vectors[0] ** 2
    return Quadrature(nodes=nodes, weights=weights, steps=lengths, products=products)
