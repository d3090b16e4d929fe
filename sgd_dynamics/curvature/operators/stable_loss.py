"""The per-sample cross-entropy the curvature engine differentiates, exact when a sample is fitted.

f_i = -log p_i, p_i = softmax(z_i)[y_i], written as

    f_i = softplus(t_i),   t_i = logsumexp_{j≠y_i} z_ij - z_iy_i,

so that every derivative keeps its relative accuracy however well the sample is fitted:

    ∂f/∂z_j = σ(t) q_j = p_j (j ≠ y),   ∂f/∂z_y = -σ(t) = -Σ_{j≠y} p_j,
    ∂²f/∂z² = σ(t)(1 - σ(t)) (q - e_y)(q - e_y)ᵀ + σ(t) (diag(q) - q qᵀ) = diag(p) - p pᵀ,

with σ the logistic function and q the softmax over the other classes (q_y = 0). `1 - p_y`
appears only as σ(t) = Σ_{j≠y} p_j, never as a difference `1 - p_y`: PyTorch's cross-entropy
forms it as exp(log p_y) - 1, which rounds to 0 once log p_y does (per-sample losses below the
dtype's resolution, 1e-16 in float64, 6e-8 in float32), and then the gradients, diag(p) - p pᵀ
and every curvature matrix lose all relative accuracy (docs/math.md, "Numbers at convergence").

The derivatives autograd takes of this expression (backward, double backward, forward mode)
are those of `torch.nn.functional.softplus`, σ(t) = e^t / (1 + e^t) and σ(t)(1 - σ(t)), and of
`torch.logsumexp` over the other classes (gathered, no -inf mask), e^{z_j - lse}: each a
product or quotient of accurately computed factors. softplus runs with threshold 40 (linear
above t = 40, where σ(t) = 1 to float64's resolution), not PyTorch's default 20.

The mirror case, a sample confidently misclassified (t ≫ 1, p_y rounding to 0), keeps its
gradient (of size ~1) exact, but its curvature diag(p) - p pᵀ, itself of size ~p_y or ~1 - p_max,
is formed with σ(t)(1 - σ(t)) and loses its relative accuracy; its share of H_f is then that
small, below the rounding of any fitted or ordinary sample's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["per_sample_cross_entropy", "loss_margin"]

# softplus(t) = t above this t: σ(40) = 1 - 4e-18 is 1 in float64 and float32
_SOFTPLUS_THRESHOLD = 40.0


def loss_margin(logits: Tensor, targets: Tensor) -> Tensor:
    """t_i = logsumexp_{j≠y_i} z_ij - z_iy_i, shape (n,): f_i = softplus(t_i).

    Args:
        logits: (n, C) with C >= 2, floating.
        targets: (n,) int64 labels in [0, C).
    """
    n_classes = logits.shape[-1]
    columns = torch.arange(n_classes - 1, device=logits.device)
    others = columns + (columns >= targets.unsqueeze(-1)).to(columns.dtype)  # (n, C-1): j ≠ y
    z_y = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return torch.logsumexp(logits.gather(-1, others), dim=-1) - z_y


def per_sample_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """f_i = -log softmax(z_i)[y_i] = softplus(logsumexp_{j≠y_i} z_ij - z_iy_i), shape (n,).

    The same values as `F.cross_entropy(logits, targets, reduction="none")` (to rounding), with
    derivatives exact to rounding relative to their size also when p_y rounds to 1 (module
    docstring). Works under `torch.func.vmap`, `grad`, `jvp`, `vjp` and double backward.

    Args:
        logits: (n, C) with C >= 2, floating.
        targets: (n,) int64 labels in [0, C).
    """
    return F.softplus(loss_margin(logits, targets), beta=1.0, threshold=_SOFTPLUS_THRESHOLD)
