"""A Gauss-10 MLP after 10,000 SGD steps: float32 snapshots against a float64 reference.

Training drives the per-sample losses to ~1e-4..1e-3, where 1 - p_y formed as exp(log p_y) - 1
in float32 loses three to four digits. The network (20-32-10, ReLU, P = 1002) is trained by
plain SGD (batch 5, lr 0.1) written out in numpy float32, which takes a second; the reference
H_f, M and H_p are the float64 Hessian and per-sample Jacobian (`torch.func`) of the loss written
as log(1 + Σ_{j≠y} exp(z_j - z_y)), independently of the engine.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from torch.func import functional_call

from sgd_dynamics.curvature import SpectraOptions, compute_spectra
from sgd_dynamics.data.gauss10 import make_gauss10
from sgd_dynamics.models import MLP

STEPS, BATCH, LR, K = 10_000, 5, 0.1, 5


def _sgd(x: np.ndarray, y: np.ndarray, net: MLP, steps: int) -> None:
    """`steps` SGD steps on the mean cross-entropy of net (Linear, ReLU, Linear), in float32."""
    w1, b1, w2, b2 = (p.detach().numpy().copy() for p in net.parameters())
    rng = np.random.default_rng(1)
    eye = np.eye(w2.shape[0], dtype=np.float32)
    for _ in range(steps):
        batch = rng.integers(0, len(y), BATCH)
        xb, yb = x[batch], y[batch]
        pre = xb @ w1.T + b1
        hidden = np.maximum(pre, 0)
        z = hidden @ w2.T + b2
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        dz = (p - eye[yb]) / BATCH
        dh = (dz @ w2) * (pre > 0)
        w2 -= LR * dz.T @ hidden
        b2 -= LR * dz.sum(0)
        w1 -= LR * dh.T @ xb
        b1 -= LR * dh.sum(0)
    with torch.no_grad():
        for parameter, value in zip(net.parameters(), (w1, b1, w2, b2), strict=True):
            parameter.copy_(torch.from_numpy(value))


@functools.cache
def trained():
    data = make_gauss10(0)
    torch.manual_seed(0)
    net = MLP(20, 10)
    _sgd(data.x_train, data.y_train, net, STEPS)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    reference = net.double()
    net = MLP(20, 10)
    net.load_state_dict({k: v.float() for k, v in reference.state_dict().items()})
    names = [name for name, _ in reference.named_parameters()]
    shapes = [p.shape for p in reference.parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in reference.parameters()])

    def losses(t: torch.Tensor) -> torch.Tensor:
        state = dict(zip(names, torch.split(t, [s.numel() for s in shapes]), strict=True))
        state = {name: v.view(s) for (name, v), s in zip(state.items(), shapes, strict=True)}
        z = functional_call(reference, state, (x.double(),))
        margins = (z - z.gather(1, y[:, None])).scatter(1, y[:, None], -torch.inf)
        return torch.log1p(margins.exp().sum(1))

    hessian = torch.func.hessian(lambda t: losses(t).mean())(theta)
    jacobian = torch.func.jacrev(losses)(theta)
    moment = jacobian.T @ jacobian / len(y)
    values = {
        name: torch.linalg.eigvalsh(matrix).numpy()
        for name, matrix in (("H_f", hessian), ("M", moment), ("H_p", moment - hessian))
    }
    return net, x, y, values, losses(theta).detach()


@pytest.mark.slow  # ~10-20 s: the float64 reference Hessian of P = 1002 and two snapshots
@pytest.mark.parametrize("method", ["dense", "iterative"])
def test_float32_snapshot_of_a_trained_mlp(method):
    net, x, y, values, losses = trained()
    assert float(losses.median()) < 1e-3  # fitted: float32's 1 - p_y = exp(log p_y) - 1 is off
    spectra = compute_spectra(net, x, y, SpectraOptions(k=K, method=method, dtype=torch.float32))
    norm = {name: np.abs(v).max() for name, v in values.items()}
    errors = {
        "H_f": np.abs(spectra.hf_top - values["H_f"][::-1][:K]).max() / norm["H_f"],
        "M": np.abs(spectra.mt_top - values["M"][::-1][:K]).max() / norm["M"],
        "H_p top": np.abs(spectra.hp_top - values["H_p"][::-1][:K]).max() / norm["H_p"],
        "H_p bottom": np.abs(spectra.hp_bottom - values["H_p"][:K]).max() / norm["H_p"],
    }
    assert max(errors.values()) <= 1e-5, errors
    assert spectra.diagnostics["float32_unvouched"] == 0.0
