"""Slow, independent float64 references for the curvature engine's tests.

Each quantity is computed the direct way, one sample at a time, from the definitions in
docs/math.md, over the trainable parameters (requires_grad=True) in named_parameters() order:
H_f by torch.autograd.functional.hessian of the mean loss, g_i by one backward pass per sample,
H_p = (1/n) Σ ∇²p_i / p_i from the Hessian of each sample's true-class probability, and M_b by
enumerating every size-b subset.
"""

from __future__ import annotations

import copy
import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.functional import hessian
from torch.func import functional_call


def _double(x: Tensor) -> Tensor:
    """Floating inputs in float64; integer inputs (token ids) as they are."""
    return x.double() if x.is_floating_point() else x


def reference_model(model: nn.Module) -> nn.Module:
    """A float64 copy of the model in eval mode."""
    return copy.deepcopy(model).double().eval()


def trainable(model: nn.Module) -> list[tuple[str, Tensor]]:
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


def flat_params(model: nn.Module) -> Tensor:
    return torch.cat([p.detach().reshape(-1) for _, p in trainable(model)]).double()


def _as_state(model: nn.Module, theta: Tensor) -> dict[str, Tensor]:
    state, offset = {}, 0
    for name, p in trainable(model):
        state[name] = theta[offset : offset + p.numel()].view_as(p)
        offset += p.numel()
    return state


def mean_loss_hessian(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """H_f = ∇² (1/n) Σ f_i, by torch.autograd.functional.hessian over the flat parameters."""
    ref = reference_model(model)

    def mean_loss(theta: Tensor) -> Tensor:
        return F.cross_entropy(functional_call(ref, _as_state(ref, theta), (_double(x),)), y)

    return hessian(mean_loss, flat_params(ref), vectorize=True)


def per_sample_gradient_loop(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """G (n×P): one backward pass per sample on a float64 copy of the model."""
    ref = reference_model(model)
    rows = []
    for i in range(x.shape[0]):
        loss = F.cross_entropy(ref(_double(x[i : i + 1])), y[i : i + 1])
        grads = torch.autograd.grad(loss, [p for _, p in trainable(ref)])
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows)


def second_moment(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """M = (1/n) Σ g_i g_iᵀ from the per-sample loop."""
    g = per_sample_gradient_loop(model, x, y)
    return g.T @ g / x.shape[0]


def residual_direct(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """H_p = (1/n) Σ ∇²p_i / p_i, p_i = softmax(z(x_i))[y_i]: not through M - H_f."""
    ref = reference_model(model)
    theta = flat_params(ref)
    total = torch.zeros(theta.numel(), theta.numel(), dtype=torch.float64)
    for i in range(x.shape[0]):

        def prob(t: Tensor, i: int = i) -> Tensor:
            logits = functional_call(ref, _as_state(ref, t), (_double(x[i : i + 1]),))
            return torch.softmax(logits, dim=1)[0, y[i]]

        total += hessian(prob, theta, vectorize=True) / prob(theta).detach()
    return total / x.shape[0]


def minibatch_moment_enumerated(model: nn.Module, x: Tensor, y: Tensor, b: int) -> Tensor:
    """E[ḡ_B ḡ_Bᵀ] over all size-b subsets B drawn without replacement (n small)."""
    g = per_sample_gradient_loop(model, x, y)
    subsets = list(itertools.combinations(range(x.shape[0]), b))
    total = torch.zeros(g.shape[1], g.shape[1], dtype=torch.float64)
    for subset in subsets:
        mean = g[list(subset)].mean(dim=0)
        total += torch.outer(mean, mean)
    return total / len(subsets)


def rel_error(a: Tensor, b: Tensor) -> float:
    """max |a - b| / max |b|."""
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    return float((a - b).abs().max() / b.abs().max())


def subspace_cosines(u: Tensor, v: Tensor) -> Tensor:
    """Cosines of the principal angles between span(u) and span(v), by scipy."""
    import numpy as np
    import scipy.linalg

    angles = scipy.linalg.subspace_angles(
        np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    )
    return torch.as_tensor(np.sort(np.cos(angles))[::-1].copy())
