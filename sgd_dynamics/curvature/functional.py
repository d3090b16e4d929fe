"""A classifier evaluated at a flat parameter vector, on detached copies of its parameters.

Everything in `sgd_dynamics.curvature` works on one flat vector θ ∈ R^P: the model's parameters,
in `model.parameters()` order, each flattened row-major and concatenated. The model itself is
never modified: θ is a detached copy cast to the requested dtype, and the network is evaluated
through `torch.func.functional_call` with that copy (and copies of its floating-point buffers).

Curvature is measured in **eval mode** (dropout off, batch norm with running statistics), so the
loss is a deterministic function of θ whose samples do not interact; `evaluation_mode` switches
the model to eval for the duration of a computation and restores every submodule's flag after.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

__all__ = ["FunctionalModel", "evaluation_mode"]


@contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[None]:
    """Put `model` in eval mode inside the block; restore each submodule's `training` flag after."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in flags:
            module.training = training


class FunctionalModel:
    """`model` as a function of a flat parameter vector θ (P,) of dtype `dtype`.

    Attributes:
        theta: the model's current parameters, detached, cast to `dtype`, flattened (P,).
        names, shapes, numels, offsets: layout of θ (parameter i is θ[offsets[i]:offsets[i+1]]).
        device: the device of the model's parameters; all computations run there.
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        named = list(model.named_parameters())
        if not named:
            raise ValueError("the model has no parameters: there is no curvature to measure")
        devices = {p.device for _, p in named}
        if len(devices) != 1:
            raise ValueError(
                f"all parameters must be on one device, found {sorted(map(str, devices))}"
            )
        self.model = model
        self.dtype = dtype
        self.device = devices.pop()
        self.names = [name for name, _ in named]
        self.shapes = [tuple(p.shape) for _, p in named]
        self.numels = [p.numel() for _, p in named]
        self.offsets = [0]
        for numel in self.numels:
            self.offsets.append(self.offsets[-1] + numel)
        self.n_params = self.offsets[-1]
        with torch.no_grad():
            self.theta = torch.cat([p.detach().reshape(-1).to(dtype) for _, p in named])
            self.buffers = {
                name: (b.detach().to(dtype) if b.is_floating_point() else b.detach())
                for name, b in model.named_buffers()
            }

    def unflatten(self, theta: Tensor) -> dict[str, Tensor]:
        """Views of θ (P,) shaped like the model's parameters, keyed by parameter name."""
        return {
            name: theta[start:stop].view(shape)
            for name, shape, start, stop in zip(
                self.names, self.shapes, self.offsets[:-1], self.offsets[1:], strict=True
            )
        }

    def flatten(self, tensors: list[Tensor]) -> Tensor:
        """Concatenate per-parameter tensors (in parameter order) into one flat (P,) vector."""
        return torch.cat([t.reshape(-1) for t in tensors])

    def logits(self, theta: Tensor, inputs: Tensor) -> Tensor:
        """Network output at θ: (n, C) logits for inputs (n, ...)."""
        state = {**self.buffers, **self.unflatten(theta)}
        return functional_call(self.model, state, (inputs,))

    def losses(self, theta: Tensor, inputs: Tensor, targets: Tensor) -> Tensor:
        """Per-sample cross-entropy f_i = -log softmax(z(x_i; θ))[y_i], shape (n,)."""
        return F.cross_entropy(self.logits(theta, inputs), targets, reduction="none")

    def loss_sum(self, theta: Tensor, inputs: Tensor, targets: Tensor) -> Tensor:
        """Σ_i f_i over the given samples (a scalar)."""
        return self.losses(theta, inputs, targets).sum()

    def single_loss(self, theta: Tensor, x: Tensor, y: Tensor) -> Tensor:
        """f for one sample x (no batch axis) with label y (0-d): used under vmap."""
        return F.cross_entropy(self.logits(theta, x.unsqueeze(0)), y.unsqueeze(0))
