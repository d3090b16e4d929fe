"""A zoo of architectures and spectra with repeated eigenvalues, float64: compute_spectra (dense,
and iterative with M through the fast route and through jvp/vjp products) against the slow
independent references of `references.py` (autograd Hessian of the mean loss, per-sample
gradients one sample at a time, H_p from (1/n) Σ ∇²p_i / p_i directly).

Each case is small (P of about 100-350, n <= 40) so the iterative method is forced
(method="iterative" with P well above the size the solver would solve densely).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sgd_dynamics.curvature import SpectraOptions, compute_spectra
from sgd_dynamics.curvature.operators import minibatch_coefficient

from ..references import mean_loss_hessian, per_sample_gradient_loop, residual_direct

DENSE_TOL = 1e-10  # dense method against the references (rounding: ~1e-14)
ITERATIVE_TOL = 1e-7  # iterative method (residual tolerance 1e-8 · ||A||)
COSINE_TOL = 1e-5


class TanhMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 4)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ConvPool(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.head = nn.Linear(4 * 2 * 2, 4)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.tanh(self.conv(x.view(-1, 1, 6, 6)))  # (n, 4, 4, 4)
        h = F.max_pool2d(h, 2) + F.avg_pool2d(h, 2)  # (n, 4, 2, 2)
        return self.head(h.flatten(1))


class BatchNormNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 10)
        self.bn = nn.BatchNorm1d(10)
        self.head = nn.Linear(10, 4)
        with torch.no_grad():
            self.bn.running_mean.normal_()
            self.bn.running_var.uniform_(0.5, 2.0)
            self.bn.weight.uniform_(0.5, 1.5)
            self.bn.bias.normal_()

    def forward(self, x: Tensor) -> Tensor:
        return self.head(torch.tanh(self.bn(self.fc(x))))


class SharedInsideOutside(nn.Module):
    """enc is called as a module and its weight is used again outside: F.linear and h @ W."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(6, 6)
        self.head = nn.Linear(6, 4)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.tanh(self.enc(x))
        h = torch.tanh(F.linear(h, self.enc.weight))
        h = torch.tanh(h @ self.enc.weight)
        return self.head(h)


class SharedTwoModules(nn.Module):
    """One Linear called twice and two Linears sharing one weight."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 6)
        self.b = nn.Linear(6, 6)
        self.b.weight = self.a.weight
        self.head = nn.Linear(6, 4)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.tanh(self.a(x))
        h = torch.tanh(self.a(h))
        return self.head(torch.tanh(self.b(h)))


class TiedEmbedding(nn.Module):
    """Token ids (n, 3) -> mean embedding -> tanh -> logits against the same embedding."""

    def __init__(self, vocab: int = 12, dim: int = 6) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.mix = nn.Linear(dim, dim)

    def forward(self, tokens: Tensor) -> Tensor:
        h = torch.tanh(self.mix(self.emb(tokens).mean(dim=1)))
        return h @ self.emb.weight.T


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(6, 8)
        self.inner = nn.Linear(8, 8)
        self.out = nn.Linear(8, 4)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.tanh(self.inp(x))
        h = h + torch.tanh(self.inner(h))
        return self.out(h)


class LayerNormNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 10)
        self.norm = nn.LayerNorm(10)
        self.head = nn.Linear(10, 4)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(torch.tanh(self.norm(self.fc(x))))


def softmax_regression(d: int, classes: int, scale: float, seed: int = 0) -> nn.Module:
    """Linear(d, C) at W = scale · N(0, 1), b = 0. At scale 0 every sample's p is uniform and
    H_f = (1/C)(I - 11ᵀ/C) ⊗ (1/n) Σ x̃ x̃ᵀ: each nonzero eigenvalue has multiplicity C - 1;
    a small scale splits each cluster by a relative spread that grows with the scale."""
    torch.manual_seed(seed)
    model = nn.Linear(d, classes)
    with torch.no_grad():
        model.weight.normal_().mul_(scale)
        model.bias.zero_()
    return model


ARCHITECTURES = {
    "tanh_mlp": (TanhMLP, 6),
    "conv_pool": (ConvPool, 36),
    "batchnorm_eval": (BatchNormNet, 6),
    "shared_inside_outside": (SharedInsideOutside, 6),
    "shared_two_modules": (SharedTwoModules, 6),
    "tied_embedding": (TiedEmbedding, None),
    "residual": (Residual, 6),
    "layernorm": (LayerNormNet, 6),
}


def architecture_case(name: str, n: int = 12) -> tuple[nn.Module, Tensor, Tensor]:
    cls, dim = ARCHITECTURES[name]
    torch.manual_seed(0)
    model = cls().double()
    gen = torch.Generator().manual_seed(1)
    if dim is None:
        x = torch.randint(0, 12, (n, 3), generator=gen)
        y = torch.randint(0, 12, (n,), generator=gen)
    else:
        x = torch.randn(n, dim, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 4, (n,), generator=gen)
    return model, x, y


def multiplicity_case(classes: int, scale: float) -> tuple[nn.Module, Tensor, Tensor]:
    """Zero-initialised (scale 0) or nearly zero softmax regression on 20 anisotropic features."""
    n, d = 2 * classes + 8, 20
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64) * torch.linspace(
        0.3, 2.0, d, dtype=torch.float64
    )
    y = torch.arange(n) % classes
    return softmax_regression(d, classes, scale).double(), x, y


class Reference:
    """The exact spectra of the references (float64 eigh of the explicit matrices)."""

    def __init__(self, model: nn.Module, x: Tensor, y: Tensor, k: int, batch_size: int) -> None:
        n = x.shape[0]
        hessian = mean_loss_hessian(model, x, y)
        g = per_sample_gradient_loop(model, x, y)
        moment = g.T @ g / n
        residual = residual_direct(model, x, y)
        mu = g.mean(dim=0)
        c = minibatch_coefficient(n, batch_size)
        mb = c * moment + (1 - c) * torch.outer(mu, mu)
        self.hf_values, self.hf_vectors = torch.linalg.eigh(hessian)
        self.mt_values, self.mt_vectors = torch.linalg.eigh(moment)
        hp_values = torch.linalg.eigvalsh(residual)
        self.values = {
            "hf_top": self.hf_values.flip(0)[:k],
            "mt_top": self.mt_values.flip(0)[:k],
            "hp_top": hp_values.flip(0)[:k],
            "hp_bottom": hp_values[:k],
            "mb_top": torch.linalg.eigvalsh(mb).flip(0)[:k],
        }
        self.traces = {
            "trace_hf": float(torch.trace(hessian)),
            "trace_mt": float(torch.trace(moment)),
            "trace_hp": float(torch.trace(residual)),
        }
        # H_p from ∇²p_i / p_i equals M - H_f: the identity the whole engine rests on
        self.identity_error = float((residual - (moment - hessian)).abs().max()) / float(
            hessian.abs().max()
        )


def relative_error(values: np.ndarray, reference: Tensor) -> float:
    ref = reference.numpy()
    return float(np.max(np.abs(np.asarray(values) - ref)) / np.max(np.abs(ref)))


def errors_against(s, ref: Reference) -> dict[str, float]:
    """Worst relative error of each quantity of the snapshot s against the reference."""
    out = {
        name: relative_error(getattr(s, name), value)
        for name, value in ref.values.items()
        if getattr(s, name) is not None
    }
    # relative to the larger of tr H_f and tr M: tr H_p = tr M - tr H_f may cancel to ~0
    trace_scale = max(abs(value) for value in ref.traces.values())
    for name, value in ref.traces.items():
        stderr = getattr(s, f"{name}_stderr")
        if stderr == 0.0:  # exact
            out[name] = abs(getattr(s, name) - value) / trace_scale
        else:  # a Hutchinson estimate: within 5 standard errors
            assert abs(getattr(s, name) - value) <= 5 * stderr, (name, stderr)
    return out


def cosine_error(s, ref: Reference, k: int) -> float | None:
    """|cosines - reference cosines| on the defined entries, where the reference's top-j
    eigenspaces are well separated (gaps > 1e-6 relative); None when no such j >= 1."""
    defined = int(np.isfinite(s.cosines).sum())
    hf_desc, mt_desc = ref.hf_values.flip(0), ref.mt_values.flip(0)
    hf_gap = (hf_desc[:-1] - hf_desc[1:]) / hf_desc.abs().max()
    mt_gap = (mt_desc[:-1] - mt_desc[1:]) / mt_desc.abs().max()
    if defined == 0 or hf_gap[defined - 1] < 1e-6 or mt_gap[defined - 1] < 1e-6:
        return None
    u = ref.hf_vectors.flip(1)[:, :defined]
    v = ref.mt_vectors.flip(1)[:, :defined]
    expected = torch.linalg.svdvals(u.T @ v).numpy()
    return float(np.max(np.abs(s.cosines[:defined] - expected)))


# every fast route the engine may take for the case, and the general one
M_ROUTES = ("auto", "operator")


def check_case(model, x, y, k: int, batch_size: int = 3) -> dict[str, dict[str, float]]:
    """Dense and iterative snapshots (both M routes) against the reference; asserts and returns
    {config: {quantity: worst relative error}}."""
    ref = Reference(model, x, y, k, batch_size)
    assert ref.identity_error <= 1e-12
    results: dict[str, dict[str, float]] = {}
    dense = compute_spectra(model, x, y, SpectraOptions(k=k, method="dense"), batch_size=batch_size)
    results["dense"] = errors_against(dense, ref)
    for route in M_ROUTES:
        s = compute_spectra(
            model,
            x,
            y,
            SpectraOptions(k=k, method="iterative", m_route=route),
            batch_size=batch_size,
        )
        assert s.method == "iterative"
        for key in ("hf", "hp"):
            assert s.diagnostics[f"{key}_converged"] == 1.0, key
            assert s.diagnostics[f"{key}_check_rounds"] >= 1, key  # the multiplicity check ran
        results[f"iterative/{s.m_route}"] = errors_against(s, ref)
        cos = cosine_error(s, ref, k)
        if cos is not None:
            results[f"iterative/{s.m_route}"]["cosines"] = cos
    cos = cosine_error(dense, ref, k)
    if cos is not None:
        results["dense"]["cosines"] = cos
    for config, errors in results.items():
        tol = DENSE_TOL if config == "dense" else ITERATIVE_TOL
        for name, error in errors.items():
            limit = COSINE_TOL if name == "cosines" else tol
            assert error <= limit, (config, name, error)
    return results


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_architecture_matches_references(name: str) -> None:
    model, x, y = architecture_case(name)
    results = check_case(model, x, y, k=4)
    # dense, a fast route (layer-wise factors or the per-sample gradient matrix), jvp/vjp
    assert len(results) == 3 and "iterative/operator" in results


@pytest.mark.parametrize(("classes", "k"), [(3, 6), (10, 12), (16, 18)])
def test_exact_multiplicities(classes: int, k: int) -> None:
    """Zero-initialised softmax regression: H_f's top eigenvalue has multiplicity C - 1 = 2, 9,
    15, and every copy must be returned (k spans the top cluster and part of the next)."""
    model, x, y = multiplicity_case(classes, scale=0.0)
    ref = Reference(model, x, y, k, 3)
    top = ref.values["hf_top"]
    copies = int((top >= top[0] * (1 - 1e-12)).sum())
    assert copies == classes - 1
    check_case(model, x, y, k=k)


@pytest.mark.parametrize("scale", [1e-8, 1e-6, 1e-4, 1e-3])
def test_near_multiplicities(scale: float) -> None:
    """Softmax regression near zero: the top cluster of 9 eigenvalues of H_f spreads by a
    relative 1e-8 ... 1e-3 (checked on the reference); every member must be returned."""
    model, x, y = multiplicity_case(10, scale=scale)
    ref = Reference(model, x, y, 12, 3)
    top = ref.hf_values.flip(0)[:9]
    spread = float((top[0] - top[-1]) / top[0])
    assert 0.1 * scale <= spread <= 10 * scale or (scale == 1e-3 and spread <= 1e-2)
    check_case(model, x, y, k=12)


def test_frozen_parameters_are_not_in_p() -> None:
    """P counts the trainable parameters; params= selects another set."""
    model, x, y = architecture_case("tanh_mlp")
    model.net[0].weight.requires_grad_(False)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    ref = Reference(model, x, y, 4, 3)  # over the trainable parameters
    s = compute_spectra(model, x, y, SpectraOptions(k=4, method="dense"))
    assert s.n_params == trainable and s.hf_vecs.shape == (trainable, 4)
    errors = errors_against(s, ref)
    assert max(errors.values()) <= DENSE_TOL
    head_only = compute_spectra(
        model, x, y, SpectraOptions(k=4, method="dense"), params=["net.4.weight"]
    )
    assert head_only.n_params == 32
    everything = compute_spectra(
        model, x, y, SpectraOptions(k=4, method="dense"), params=model.parameters()
    )
    assert everything.n_params == sum(p.numel() for p in model.parameters())
    assert math.isfinite(everything.trace_hf) and math.isfinite(head_only.trace_hf)
