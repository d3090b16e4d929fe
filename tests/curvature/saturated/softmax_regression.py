"""Softmax regression driven to a chosen per-sample loss, and its curvature in closed form.

z_i = W x_i + b (C classes, d features, P = C (d + 1), parameters in nn.Linear's order: W row
by row, then b). With a_i = [x_i, 1] and the exact probabilities p_ij = exp(z_ij - lse(z_i)),

    H_f = (1/n) Σ_i S_i ⊗ a_i a_iᵀ,   S_i = diag(p_i) - p_i p_iᵀ,  (S_i)_yy = p_iy Σ_{j≠y} p_ij,
    g_i = (p_i - e_{y_i}) ⊗ a_i,       p_iy - 1 = -Σ_{j≠y} p_ij,
    M = (1/n) Σ_i g_i g_iᵀ,            H_p = M - H_f,

every entry formed from the other classes' p_j, never as 1 - p_y (numpy float64). Written here,
independently of the engine.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

N_SAMPLES, N_FEATURES, N_CLASSES = 24, 4, 3


def _probabilities(z: np.ndarray) -> np.ndarray:
    top = z.max(axis=1, keepdims=True)
    log_norm = top + np.log(np.exp(z - top).sum(axis=1, keepdims=True))
    return np.exp(z - log_norm)


def per_sample_losses(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """f_i = log(1 + Σ_{j≠y} exp(z_j - z_y)), accurate for f_i far below 1e-16 (log1p)."""
    rows = np.arange(len(y))
    margins = z - z[rows, y][:, None]
    margins[rows, y] = -np.inf
    return np.log1p(np.exp(margins).sum(axis=1))


def closed_form(model: nn.Linear, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """H_f, M, H_p (P×P float64) of the mean cross-entropy of softmax regression `model`."""
    w = model.weight.detach().double().numpy()
    b = model.bias.detach().double().numpy()
    z = x @ w.T + b
    n, c = z.shape
    rows = np.arange(n)
    p = _probabilities(z)
    others = p.copy()
    others[rows, y] = 0.0
    rest = others.sum(axis=1)  # Σ_{j≠y} p_j = 1 - p_y, exactly
    d = p.copy()
    d[rows, y] = -rest  # p - e_y
    s = -p[:, :, None] * p[:, None, :]
    s[:, np.arange(c), np.arange(c)] += p
    s[rows, y, y] = p[rows, y] * rest
    a = np.concatenate([x, np.ones((n, 1))], axis=1)
    # θ order: W (C×d row-major) then b (C): reorder the Kronecker index (class, feature)
    order = [ci * (a.shape[1]) + j for ci in range(c) for j in range(a.shape[1] - 1)]
    order += [ci * a.shape[1] + a.shape[1] - 1 for ci in range(c)]
    hf = (
        np.einsum("nij,nkl->ikjl", s, a[:, :, None] * a[:, None, :]).reshape(
            c * a.shape[1], c * a.shape[1]
        )
        / n
    )
    g = (d[:, :, None] * a[:, None, :]).reshape(n, -1)
    mt = g.T @ g / n
    hf, mt = hf[np.ix_(order, order)], mt[np.ix_(order, order)]
    return {"H_f": hf, "M": mt, "H_p": mt - hf, "losses": per_sample_losses(z, y)}


def saturated_problem(
    max_loss: float, seed: int = 0
) -> tuple[nn.Linear, torch.Tensor, torch.Tensor]:
    """Softmax regression (float64) whose largest per-sample loss is `max_loss` (to 1 %).

    Labels are the argmax of a random model's logits; the model is that one scaled by α, with α
    found by bisection on log α (every sample's loss falls as α grows).
    """
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(N_SAMPLES, N_FEATURES, generator=generator, dtype=torch.float64)
    w = torch.randn(N_CLASSES, N_FEATURES, generator=generator, dtype=torch.float64)
    b = torch.randn(N_CLASSES, generator=generator, dtype=torch.float64)
    y = (x @ w.T + b).argmax(dim=1)
    xn, yn = x.numpy(), y.numpy()

    def largest(log_alpha: float) -> float:
        alpha = np.exp(log_alpha)
        return float(per_sample_losses(xn @ (alpha * w.numpy()).T + alpha * b.numpy(), yn).max())

    low, high = 0.0, 12.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        if largest(middle) > max_loss:
            low = middle
        else:
            high = middle
    alpha = float(np.exp(high))
    model = nn.Linear(N_FEATURES, N_CLASSES).double()
    with torch.no_grad():
        model.weight.copy_(alpha * w)
        model.bias.copy_(alpha * b)
    return model, x, y
