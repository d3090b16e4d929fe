"""A classifier evaluated at a flat parameter vector, on detached copies of its parameters.

Everything in `sgd_dynamics.curvature` works on one flat vector θ ∈ R^P: by default the model's
**trainable** parameters (`requires_grad=True`), in `model.named_parameters()` order, each
flattened row-major and concatenated (an explicit `params` selects another set). Parameters
outside θ are held fixed. The model itself is never modified: θ is a detached copy cast to the
requested dtype, and the network is evaluated through `torch.func.functional_call` with that copy
(and copies of the fixed parameters and floating-point buffers).

Parametrisations (`torch.nn.utils.parametrize`, the hook-based `weight_norm` and
`spectral_norm`) recompute a weight from other tensors inside hooks that this functional view
cannot differentiate consistently; models using them are refused by name.

Curvature is measured in **eval mode** (dropout off, batch norm with running statistics), so the
loss is a deterministic function of θ whose samples do not interact; `evaluation_mode` switches
the model to eval for the duration of a computation and restores every submodule's flag after.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.func import functional_call

from .stable_loss import per_sample_cross_entropy

__all__ = ["FunctionalModel", "evaluation_mode", "select_parameters"]


@contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[None]:
    """Put `model` in eval mode inside the block; restore each submodule's `training` flag after.

    Args:
        model: any module; its submodules' flags are restored even when the block raises.
    """
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in flags:
            module.training = training


def _parametrised_modules(model: nn.Module) -> list[str]:
    """Names of submodules with a parametrisation or a weight/spectral-norm hook."""
    from torch.nn.utils import parametrize

    found = []
    for name, module in model.named_modules():
        hooks = [type(h).__name__ for h in module._forward_pre_hooks.values()]
        kinds = [h for h in hooks if h in ("WeightNorm", "SpectralNorm")]
        if parametrize.is_parametrized(module):
            kinds.append("parametrize")
        if kinds:
            found.append(f"{name or '<root>'} ({', '.join(kinds)})")
    return found


def select_parameters(
    model: nn.Module, params: Iterable[Tensor] | Iterable[str] | None = None
) -> list[tuple[str, Tensor]]:
    """(name, parameter) pairs spanning θ, in `model.named_parameters()` order.

    params: None (the trainable parameters, `requires_grad=True`), or an iterable of the model's
        parameters (tensors) or of their names (as in `model.named_parameters()`).
    """
    named = list(model.named_parameters())
    if params is None:
        return [(name, p) for name, p in named if p.requires_grad]
    wanted = list(params)
    by_id = {id(p): name for name, p in named}
    names_known = {name for name, _ in named}
    chosen: set[str] = set()
    for item in wanted:
        if isinstance(item, str):
            if item not in names_known:
                raise ValueError(f"params: {item!r} is not a parameter name of the model")
            chosen.add(item)
        elif isinstance(item, Tensor) and id(item) in by_id:
            chosen.add(by_id[id(item)])
        else:
            raise ValueError(
                "params must be the model's own parameters (tensors from model.parameters()) or "
                f"their names, got {type(item).__name__}"
            )
    return [(name, p) for name, p in named if name in chosen]


class FunctionalModel:
    """`model` as a function of a flat parameter vector θ (P,) of dtype `dtype`.

    Args:
        model: any nn.Module.
        dtype: torch.float64 or torch.float32.
        params: the parameters spanning θ (see `select_parameters`; default: the trainable ones).
            The others are held fixed at their current values.

    Attributes:
        theta: the selected parameters, detached, cast to `dtype`, flattened (P,).
        names, shapes, numels, offsets: layout of θ (parameter i is θ[offsets[i]:offsets[i+1]]).
        device: the device of the model's parameters; all computations run there.
    """

    def __init__(
        self,
        model: nn.Module,
        dtype: torch.dtype,
        params: Iterable[Tensor] | Iterable[str] | None = None,
    ) -> None:
        parametrised = _parametrised_modules(model)
        if parametrised:
            raise ValueError(
                "the curvature engine cannot differentiate parametrised weights (weight_norm, "
                "spectral_norm, torch.nn.utils.parametrize), found on: "
                + ", ".join(parametrised)
                + "; remove them (torch.nn.utils.remove_weight_norm, "
                "parametrize.remove_parametrizations) or measure an equivalent plain model"
            )
        named = select_parameters(model, params)
        if not named:
            raise ValueError(
                "the model has no parameters in the selected set (by default those with "
                "requires_grad=True): there is no curvature to measure"
            )
        devices = {p.device for _, p in model.named_parameters()}
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
            selected = set(self.names)
            fixed = [(n, p) for n, p in model.named_parameters() if n not in selected]
            self.buffers = {
                name: (b.detach().to(dtype) if b.is_floating_point() else b.detach())
                for name, b in [*model.named_buffers(), *fixed]
            }
        bad = [
            name
            for name, p in model.named_parameters()
            if p.is_floating_point() and not bool(torch.isfinite(p.detach()).all())
        ]
        if bad:
            raise ValueError(
                f"the model's parameters hold NaN or infinite values ({', '.join(bad)}): the "
                "curvature of a diverged model is undefined"
            )

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

    def state(self, theta: Tensor) -> dict[str, Tensor]:
        """The tensors `functional_call` substitutes: buffers, fixed parameters, views of θ."""
        return {**self.buffers, **self.unflatten(theta)}

    def logits(
        self, theta: Tensor, inputs: Tensor, state: dict[str, Tensor] | None = None
    ) -> Tensor:
        """Network output at θ: (n, C) logits for inputs (n, ...) (`state`: from `self.state`)."""
        return functional_call(self.model, state or self.state(theta), (inputs,))

    def losses(self, theta: Tensor, inputs: Tensor, targets: Tensor) -> Tensor:
        """Per-sample cross-entropy f_i = -log softmax(z(x_i; θ))[y_i], shape (n,), in the form
        whose derivatives stay exact when a sample is fitted (`stable_loss`)."""
        return per_sample_cross_entropy(self.logits(theta, inputs), targets)

    def loss_sum(self, theta: Tensor, inputs: Tensor, targets: Tensor) -> Tensor:
        """Σ_i f_i over the given samples (a scalar)."""
        return self.losses(theta, inputs, targets).sum()

    def single_loss(self, theta: Tensor, x: Tensor, y: Tensor) -> Tensor:
        """f for one sample x (no batch axis) with label y (0-d): used under vmap."""
        return per_sample_cross_entropy(self.logits(theta, x.unsqueeze(0)), y.unsqueeze(0))[0]
