"""Per-sample gradients g_i = ∇f_i as the rows of G (n×P), stored explicitly or in factored form.

`GradientFactors` is what the second-moment code needs from G:

    gram()      G Gᵀ (n×n), whose nonzero eigenvalues / n are those of M = Gᵀ G / n
    sq_norms()  ||g_i||² (n,)
    matmat(V)   G V (n×m) for V (P×m)
    rmatmat(U)  Gᵀ U (P×m) for U (n×m)

Two implementations:

- `DenseGradients`: G itself, from `torch.func.vmap(grad)` over the samples, in chunks.
- `LinearLayerGradients`: for a network whose parameters all belong to `nn.Linear` layers, each
  called once per forward on a 2-D (n, in) input. A sample's gradient with respect to a layer's
  weight and bias is the outer product d_i ⊗ [a_i, 1] of the gradient of its loss with respect to
  the layer's output (d_i) and the layer's input (a_i), so G is never formed:
  G Gᵀ = Σ_layers ([A, 1][A, 1]ᵀ) ∘ (D Dᵀ), and G V, Gᵀ U are a few matrix products per layer.
  This holds only when the layer's call is the sole use of its weight and bias. The forward is
  traced (a `TorchFunctionMode`) and any use of a parameter outside its own layer's call
  (`F.linear(h, self.enc.weight)`, `h @ W`, `W.T`, ...) sends M to the general route, with the
  reason logged at INFO; `spectra` also compares one product with the jvp/vjp one per snapshot.

`gradient_factors` picks one of them within a memory budget, or returns None (then M is applied
through jvp/vjp products).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import torch

# vmap(grad) imports torch._dynamo on first use; imported while a process group exists, it keeps
# references to that group, so destroy_process_group cannot free it and the group's threads live
# on to interpreter exit, where they can abort the process (SIGABRT). Imported with the library,
# before any group is created, it holds none.
import torch._dynamo  # noqa: F401
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap
from torch.overrides import TorchFunctionMode

from sgd_dynamics.utils.validate import positive_int

from ..choices import MRoute, check_choice
from ..progress import tick
from .functional import FunctionalModel
from .stable_loss import per_sample_cross_entropy

__all__ = [
    "GradientFactors",
    "DenseGradients",
    "LinearLayerGradients",
    "per_sample_gradients",
    "linear_layer_gradients",
    "gradient_factors",
]

logger = logging.getLogger("sgd_dynamics.curvature")

_ROW_BLOCK_ELEMENTS = 1 << 24  # temporaries of at most this many elements in the factored products
GRAM_ROW_BLOCK = 1000  # rows per block of the layer-wise Gram matrix (one block: rows × n numbers)


class GradientFactors:
    """Interface: the per-sample gradient matrix G (n×P), row i = ∇f_i, through products.

    Attributes:
        n_samples: n.
        n_params: P.
    """

    n_samples: int
    n_params: int

    def gram(self) -> Tensor:
        """The Gram matrix of the rows.

        Returns:
            G Gᵀ (n, n), not divided by n.
        """
        raise NotImplementedError

    def sq_norms(self) -> Tensor:
        """The squared row norms.

        Returns:
            ||g_i||² (n,).
        """
        raise NotImplementedError

    def matmat(self, block: Tensor) -> Tensor:
        """The product with G.

        Args:
            block: V (P, m).

        Returns:
            G V (n, m).
        """
        raise NotImplementedError

    def rmatmat(self, block: Tensor) -> Tensor:
        """The product with Gᵀ.

        Args:
            block: U (n, m).

        Returns:
            Gᵀ U (P, m).
        """
        raise NotImplementedError


class DenseGradients(GradientFactors):
    """G stored as an (n, P) tensor."""

    def __init__(self, matrix: Tensor) -> None:
        self.matrix = matrix
        self.n_samples, self.n_params = matrix.shape

    def gram(self) -> Tensor:
        return self.matrix @ self.matrix.T

    def sq_norms(self) -> Tensor:
        return (self.matrix * self.matrix).sum(dim=1)

    def matmat(self, block: Tensor) -> Tensor:
        return self.matrix @ block

    def rmatmat(self, block: Tensor) -> Tensor:
        return self.matrix.T @ block


@dataclass
class _LinearLayer:
    """One nn.Linear: inputs with a ones column when it has a bias, output gradients, layout."""

    inputs: Tensor  # (n, J), J = in (+1 with bias)
    output_grads: Tensor  # (n, out)
    weight_offset: int
    bias_offset: int | None
    n_out: int
    n_in: int


class LinearLayerGradients(GradientFactors):
    """G of a network of nn.Linear layers, from each layer's inputs A and output gradients D."""

    def __init__(self, layers: list[_LinearLayer], n_samples: int, n_params: int) -> None:
        self.layers = layers
        self.n_samples = n_samples
        self.n_params = n_params

    def _row_blocks(self, width: int) -> list[slice]:
        step = max(1, _ROW_BLOCK_ELEMENTS // max(width, 1))
        return [slice(s, s + step) for s in range(0, self.n_samples, step)]

    def gram(self, row_block: int | None = None) -> Tensor:
        """G Gᵀ = Σ_layers (A Aᵀ) ∘ (D Dᵀ), (n, n), built by blocks of `row_block` rows.

        Only the blocks on and above the diagonal are computed (the rest is their transpose),
        which halves the work. row_block defaults to GRAM_ROW_BLOCK.
        """
        n = self.n_samples
        step = positive_int(GRAM_ROW_BLOCK if row_block is None else row_block, "row_block")
        first = self.layers[0].inputs
        out = torch.empty(n, n, dtype=first.dtype, device=first.device)
        for start in range(0, n, step):
            tick("Gram matrix rows", min(step, n - start))
            rows, right = slice(start, start + step), slice(start, n)
            block = None
            for layer in self.layers:
                a, d = layer.inputs, layer.output_grads
                inputs_gram = a[rows] @ a[right].T  # (rows, n - start)
                grads_gram = d[rows] @ d[right].T
                if block is None:
                    block = inputs_gram.mul_(grads_gram)
                else:
                    block.addcmul_(inputs_gram, grads_gram)
            assert block is not None
            out[rows, right] = block
            out[right, rows] = block.T
        return out

    def sq_norms(self) -> Tensor:
        return sum(
            (layer.inputs * layer.inputs).sum(1) * (layer.output_grads * layer.output_grads).sum(1)
            for layer in self.layers
        )

    def _layer_block(self, layer: _LinearLayer, block: Tensor) -> Tensor:
        """The layer's part of V (P×m) as (out, J, m)."""
        m = block.shape[1]
        weight = block[layer.weight_offset : layer.weight_offset + layer.n_out * layer.n_in]
        parts = [weight.reshape(layer.n_out, layer.n_in, m)]
        if layer.bias_offset is not None:
            bias = block[layer.bias_offset : layer.bias_offset + layer.n_out]
            parts.append(bias.reshape(layer.n_out, 1, m))
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

    def matmat(self, block: Tensor) -> Tensor:
        m = block.shape[1]
        out = torch.zeros(self.n_samples, m, dtype=block.dtype, device=block.device)
        for layer in self.layers:
            v = self._layer_block(layer, block)  # (out, J, m)
            n_out, width = v.shape[0], v.shape[1]
            v_flat = v.permute(1, 0, 2).reshape(width, n_out * m)
            for rows in self._row_blocks(n_out * m):
                av = (layer.inputs[rows] @ v_flat).view(-1, n_out, m)
                out[rows] += (av * layer.output_grads[rows, :, None]).sum(dim=1)
        return out

    def rmatmat(self, block: Tensor) -> Tensor:
        m = block.shape[1]
        out = torch.zeros(self.n_params, m, dtype=block.dtype, device=block.device)
        for layer in self.layers:
            n_out, width = layer.n_out, layer.inputs.shape[1]
            acc = torch.zeros(n_out * m, width, dtype=block.dtype, device=block.device)
            for rows in self._row_blocks(n_out * m):
                du = (layer.output_grads[rows, :, None] * block[rows, None, :]).reshape(
                    -1, n_out * m
                )
                acc += du.T @ layer.inputs[rows]
            grads = acc.view(n_out, m, width).permute(0, 2, 1)  # (out, J, m)
            size = n_out * layer.n_in
            out[layer.weight_offset : layer.weight_offset + size] = grads[:, : layer.n_in].reshape(
                size, m
            )
            if layer.bias_offset is not None:
                out[layer.bias_offset : layer.bias_offset + n_out] = grads[:, layer.n_in]
        return out


def per_sample_gradients(
    fm: FunctionalModel, inputs: Tensor, targets: Tensor, chunk_size: int
) -> Tensor:
    """G (n×P): row i is ∇f_i at fm.theta, by `vmap(grad)` over chunks of samples."""
    per_sample = vmap(grad(fm.single_loss), in_dims=(None, 0, 0))
    rows = []
    with torch.enable_grad():
        for start in range(0, inputs.shape[0], chunk_size):
            stop = start + chunk_size
            rows.append(per_sample(fm.theta, inputs[start:stop], targets[start:stop]).detach())
            tick("per-sample gradients", rows[-1].shape[0])
    return torch.cat(rows)


def _linear_layout(fm: FunctionalModel) -> list[tuple[nn.Linear, int, int | None]] | None:
    """(layer, weight offset, bias offset) for every nn.Linear, if they hold all parameters."""
    offsets = {name: offset for name, offset in zip(fm.names, fm.offsets, strict=False)}
    layout = []
    covered = 0
    for prefix, module in fm.model.named_modules():
        if not isinstance(module, nn.Linear) or type(module).forward is not nn.Linear.forward:
            continue
        dot = prefix + "." if prefix else ""
        weight_name, bias_name = dot + "weight", dot + "bias"
        if weight_name not in offsets or (module.bias is not None and bias_name not in offsets):
            return None  # a tied or frozen-out parameter: not this layout
        bias_offset = offsets[bias_name] if module.bias is not None else None
        layout.append((module, offsets[weight_name], bias_offset))
        covered += module.weight.numel() + (module.bias.numel() if module.bias is not None else 0)
    if not layout or covered != fm.n_params:
        return None
    return layout


def _leaves(value: object) -> Iterator[object]:
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    else:
        yield value


class _ParameterUseTracer(TorchFunctionMode):
    """Records every torch call that receives a layer's weight or bias outside that layer's call.

    owners: id(parameter tensor as substituted by functional_call) -> (name, owning nn.Linear).
    Forward pre-hooks and hooks on the layers maintain the stack of layers being called.
    """

    def __init__(self, owners: dict[int, tuple[str, nn.Module]]) -> None:
        super().__init__()
        self.owners = owners
        self.calling: list[nn.Module] = []
        self.unmodeled: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        for leaf in _leaves((args, kwargs)):
            if isinstance(leaf, Tensor) and id(leaf) in self.owners:
                name, owner = self.owners[id(leaf)]
                if not self.calling or self.calling[-1] is not owner:
                    what = getattr(func, "__name__", str(func))
                    self.unmodeled.append(f"{name} used by {what} outside its layer's call")
        return func(*args, **kwargs)


def _linear_factors(
    fm: FunctionalModel, inputs: Tensor, targets: Tensor, chunk_size: int
) -> LinearLayerGradients | str:
    """Factored G, or the reason why the model does not have the layer-wise structure."""
    layout = _linear_layout(fm)
    if layout is None:
        return "not every parameter belongs to an nn.Linear layer (tied, frozen or other layers)"
    n = inputs.shape[0]
    records: dict[int, list[tuple[Tensor, Tensor]]] = {}
    tracer: _ParameterUseTracer | None = None

    def pre_hook(module: nn.Module, args: tuple) -> None:
        if tracer is not None:
            tracer.calling.append(module)

    def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
        records.setdefault(id(module), []).append((args[0], output))
        if tracer is not None and tracer.calling:
            tracer.calling.pop()

    handles = [module.register_forward_hook(hook) for module, _, _ in layout]
    handles += [module.register_forward_pre_hook(pre_hook) for module, _, _ in layout]
    a_chunks: list[list[Tensor]] = [[] for _ in layout]
    d_chunks: list[list[Tensor]] = [[] for _ in layout]
    owners_of = {module: prefix for prefix, module in fm.model.named_modules()}
    try:
        for start in range(0, n, chunk_size):
            x, y = inputs[start : start + chunk_size], targets[start : start + chunk_size]
            tick("per-sample gradients", x.shape[0])
            records.clear()
            theta = fm.theta.detach().requires_grad_(True)
            with torch.enable_grad():
                state = fm.state(theta)
                if start == 0:  # trace the parameters' uses on the first chunk
                    owners = {}
                    for module, _, _ in layout:
                        dot = owners_of[module] + "." if owners_of[module] else ""
                        for attr in ("weight", "bias"):
                            if dot + attr in state:
                                owners[id(state[dot + attr])] = (dot + attr, module)
                    tracer = _ParameterUseTracer(owners)
                    with tracer:
                        logits = functional_call(fm.model, state, (x,))
                    unmodeled, tracer = tracer.unmodeled, None
                    if unmodeled:
                        return "; ".join(dict.fromkeys(unmodeled))
                else:
                    logits = fm.logits(theta, x, state)
                loss = per_sample_cross_entropy(logits, y).sum()
                seen = [records.get(id(module), []) for module, _, _ in layout]
                if any(len(calls) != 1 for calls in seen):
                    return "an nn.Linear layer is unused or called more than once per forward"
                outputs = [calls[0][1] for calls in seen]
                if any(o.ndim != 2 or o.shape[0] != x.shape[0] for o in outputs):
                    return "an nn.Linear layer is applied to inputs that are not (n, in)"
                grads = torch.autograd.grad(loss, outputs, allow_unused=True)
            for i, ((module, _, _), calls, g) in enumerate(zip(layout, seen, grads, strict=True)):
                a = calls[0][0].detach()
                if a.ndim != 2 or g is None:
                    return "an nn.Linear layer's output does not reach the loss"
                if module.bias is not None:
                    a = torch.cat([a, torch.ones_like(a[:, :1])], dim=1)
                a_chunks[i].append(a)
                d_chunks[i].append(g.detach())
    finally:
        for handle in handles:
            handle.remove()
    layers = [
        _LinearLayer(
            inputs=torch.cat(a_chunks[i]),
            output_grads=torch.cat(d_chunks[i]),
            weight_offset=weight_offset,
            bias_offset=bias_offset,
            n_out=module.out_features,
            n_in=module.in_features,
        )
        for i, (module, weight_offset, bias_offset) in enumerate(layout)
    ]
    return LinearLayerGradients(layers, n_samples=n, n_params=fm.n_params)


def linear_layer_gradients(
    fm: FunctionalModel, inputs: Tensor, targets: Tensor, chunk_size: int
) -> LinearLayerGradients | None:
    """Factored G for networks made of nn.Linear layers, each called once on (n, in) inputs and
    the only user of its weight and bias; None (the reason logged at DEBUG) otherwise."""
    factors = _linear_factors(fm, inputs, targets, chunk_size)
    if isinstance(factors, str):
        logger.debug("M: per-sample gradients by vmap (no layer-wise factors: %s)", factors)
        return None
    return factors


def gradient_factors(
    fm: FunctionalModel,
    inputs: Tensor,
    targets: Tensor,
    chunk_size: int,
    memory_budget: int,
    route: str = "auto",
) -> GradientFactors | None:
    """Per-sample gradient factors of M within `memory_budget` bytes, or None.

    Args:
        fm: the model as a function of θ.
        inputs: (n, ...) samples on fm's device; targets: (n,) int64 labels.
        chunk_size: samples per pass.
        memory_budget: bytes the factors and the n×n Gram matrix may take together.
        route: an `MRoute`: "auto" (linear-layer factors when the model allows, else dense G when
            n·P fits), "linear", "dense", or "operator".

    Returns:
        The factors (`LinearLayerGradients` or `DenseGradients`), or None: M through jvp/vjp
        products ("operator", or nothing fits).

    Raises:
        ValueError: for an unknown route, or "linear" on a model it does not apply to.
    """
    check_choice("m_route", route, MRoute)  # the same check as SpectraOptions.m_route
    if route == MRoute.OPERATOR:
        return None
    n, p = inputs.shape[0], fm.n_params
    itemsize = torch.empty((), dtype=fm.dtype).element_size()
    gram_bytes = 3 * n * n * itemsize
    if route in (MRoute.AUTO, MRoute.LINEAR):
        layout = _linear_layout(fm)
        if layout is not None:
            widths = sum(m.in_features + 1 + m.out_features for m, _, _ in layout)
            if route == MRoute.LINEAR or (n * widths * itemsize + gram_bytes <= memory_budget):
                factors = _linear_factors(fm, inputs, targets, chunk_size)
                if not isinstance(factors, str):
                    return factors
                if route == MRoute.LINEAR:
                    raise ValueError(f"m_route='linear' does not apply to this model: {factors}")
                logger.debug("M: per-sample gradients by vmap (no layer-wise factors: %s)", factors)
        if route == MRoute.LINEAR:
            raise ValueError(
                "m_route='linear' needs a model whose parameters all belong to "
                "nn.Linear layers, each called once per forward on (n, in) inputs"
            )
    if route == MRoute.DENSE:
        return DenseGradients(per_sample_gradients(fm, inputs, targets, chunk_size))
    if n * p * itemsize + gram_bytes <= memory_budget:
        try:
            return DenseGradients(per_sample_gradients(fm, inputs, targets, chunk_size))
        except RuntimeError as error:  # a model that vmap cannot batch: products instead
            logger.warning("per-sample gradients by vmap failed (%s): M through jvp/vjp", error)
    return None
