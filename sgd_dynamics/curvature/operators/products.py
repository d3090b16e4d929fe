"""H_f, M, M_b and H_p applied to blocks of vectors, without forming P×P matrices.

With per-sample losses f_i(θ) = -log p_i(θ), i = 1..n (docs/math.md):

    H_f V = (1/n) Σ_i ∇²f_i V                 forward-over-reverse Hessian-vector products
    M V   = (1/n) Jᵀ (J V)                      J (n×P) = Jacobian of (f_1..f_n); jvp then vjp
    M_b V = c_b M V + (1 - c_b) μ (μᵀ V)        c_b = (n - b) / (b (n - 1)), μ = ∇F
    H_p V = (1/n) Σ_i ∇²ψ_i V                 ψ_i(θ) = p_i(θ) / p_i(θ₀) = exp(f_i(θ₀) - f_i(θ))

H_p = (1/n) Σ ∇²p_i / p_i = M - H_f (docs/math.md) is the Hessian at θ₀ of the mean of ψ_i, whose
denominator is held at the current parameters θ₀ (∇²ψ_i = ψ_i (∇f_i ∇f_iᵀ - ∇²f_i), ψ_i(θ₀) = 1):
one H_p product costs one Hessian-vector product, not an M product plus an H_f product
(`hp_difference`).

Every product takes a block V of shape (P, m) (or one vector (P,)) and returns the same shape; the
m columns go through `torch.func.vmap` together, and the data are summed in chunks of
`chunk_size` samples, so memory is bounded by the chunk, not by n. When per-sample gradient
factors are available (`per_sample.GradientFactors`), M V = Gᵀ (G V) / n uses them instead of
jvp/vjp.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor
from torch.func import grad, jvp, vjp, vmap

from ..progress import tick
from ..thresholds import MAX_CHUNK_SAMPLES
from .distributed import Reduction, sum_scalars
from .functional import FunctionalModel
from .per_sample import GradientFactors
from .stable_loss import per_sample_cross_entropy

__all__ = ["CurvatureOperators", "minibatch_coefficient", "default_chunk_size"]


def minibatch_coefficient(n_samples: int, batch_size: int) -> float:
    """The weight of Σ in M_b = μμᵀ + c_b Σ for size-b batches drawn without replacement.

    Args:
        n_samples: n, the population size.
        batch_size: b, with 1 <= b <= n.

    Returns:
        c_b = (n - b) / (b (n - 1)) (c_1 = 1, c_n = 0; 1 when n = 1).

    Raises:
        ValueError: unless 1 <= b <= n.
    """
    if not 1 <= batch_size <= n_samples:
        raise ValueError(f"batch_size must satisfy 1 <= b <= n = {n_samples}, got {batch_size}")
    if n_samples == 1:
        return 1.0
    return (n_samples - batch_size) / (batch_size * (n_samples - 1))


def default_chunk_size(n_samples: int) -> int:
    """Samples per pass by default.

    Args:
        n_samples: n.

    Returns:
        min(n, `thresholds.MAX_CHUNK_SAMPLES`).
    """
    return min(n_samples, MAX_CHUNK_SAMPLES)


class CurvatureOperators:
    """Matrix-free H_f, M, M_b, H_p of the mean cross-entropy of `fm` on (inputs, targets).

    Args:
        fm: the model as a function of its flat parameters (`FunctionalModel`).
        inputs: (n, ...) tensor on fm.device, floating inputs in fm.dtype.
        targets: (n,) int64 labels.
        chunk_size: samples per forward/backward pass (None: `default_chunk_size`).
        gradients: per-sample gradient factors G; when given, M products use Gᵀ (G V) / n.
        column_chunk: at most this many columns of a block go through vmap at once (None: all).
        distributed: a `distributed.Reduction` when several processes share the work: this process
            keeps only its shard of (inputs, targets) and every sum over samples is all-reduced, so
            products are still means over all n samples (n_samples = n).
    """

    def __init__(
        self,
        fm: FunctionalModel,
        inputs: Tensor,
        targets: Tensor,
        chunk_size: int | None = None,
        gradients: GradientFactors | None = None,
        column_chunk: int | None = None,
        distributed: Reduction | None = None,
    ) -> None:
        self.fm = fm
        self.n_samples = int(targets.shape[0])
        self.distributed = distributed
        if distributed is not None:
            if self.n_samples < distributed.world_size:  # the same test on every rank: no hang
                raise ValueError(
                    f"{self.n_samples} sample(s) for {distributed.world_size} processes: every "
                    "process needs at least one sample of the snapshot (use more samples, e.g. "
                    "spectral.n_samples, or fewer processes)"
                )
            shard = distributed.shard(self.n_samples)
            inputs, targets = inputs[shard], targets[shard]
        self.inputs = inputs
        self.targets = targets
        self.n_local = int(targets.shape[0])
        self.n_params = fm.n_params
        self.chunk_size = chunk_size or default_chunk_size(self.n_samples)
        self.gradients = gradients
        self.column_chunk = column_chunk
        self.theta = fm.theta
        self._mean_gradient: Tensor | None = None
        self._graphs: dict[tuple[str, int, int], tuple[Tensor, Tensor]] | None = None

    def chunks(self) -> Iterator[tuple[Tensor, Tensor]]:
        """(inputs, targets) in consecutive chunks of at most `chunk_size` samples."""
        for start in range(0, self.n_local, self.chunk_size):
            stop = start + self.chunk_size
            yield self.inputs[start:stop], self.targets[start:stop]

    # ---------------------------------------------------------------- loss and gradient
    def loss_gradient(self) -> tuple[float, float, Tensor]:
        """The loss, accuracy and mean gradient at θ₀ (summed over the processes under DDP).

        Returns:
            (mean loss F, accuracy, μ = ∇F (P,)) on all samples, in eval mode.
        """
        total_loss = 0.0
        correct = 0
        gradient = torch.zeros_like(self.theta)
        for x, y in self.chunks():
            theta = self.theta.detach().requires_grad_(True)
            with torch.enable_grad():
                logits = self.fm.logits(theta, x)
                loss = per_sample_cross_entropy(logits, y).sum()
                (chunk_grad,) = torch.autograd.grad(loss, theta)
            gradient += chunk_grad
            total_loss += float(loss.detach())
            correct += int((logits.detach().argmax(dim=1) == y).sum())
        if self.distributed is not None:
            self.distributed.sum(gradient)
            total_loss, correct = sum_scalars(self.distributed, total_loss, correct, like=gradient)
        gradient /= self.n_samples
        self._mean_gradient = gradient
        return total_loss / self.n_samples, correct / self.n_samples, gradient

    @property
    def mean_gradient(self) -> Tensor:
        """μ = ∇F (P,), computed on first use."""
        if self._mean_gradient is None:
            self.loss_gradient()
        assert self._mean_gradient is not None
        return self._mean_gradient

    # ---------------------------------------------------------------- products
    def _apply(
        self, block: Tensor, per_chunk: Callable[[Tensor, Tensor, Tensor], Tensor]
    ) -> Tensor:
        """Σ over chunks of per_chunk(x, y, Vt) / n, with Vt = block.T (m, P); returns (P, m)."""
        vector = block.ndim == 1
        columns = block.reshape(self.n_params, -1).to(self.theta.dtype)
        rows = columns.T.contiguous()
        out = torch.zeros_like(rows)
        for x, y in self.chunks():
            out += per_chunk(x, y, rows)
        if self.distributed is not None:
            self.distributed.sum(out)
        out /= self.n_samples
        result = out.T
        return result.reshape(-1) if vector else result

    def _vmap(self, fn: Callable[[Tensor], Tensor], rows: Tensor) -> Tensor:
        return vmap(fn, chunk_size=self.column_chunk)(rows)

    @contextmanager
    def kept_gradient_graphs(self) -> Iterator[None]:
        """Inside the block, H_f and H_p products keep each chunk's gradient graph (the first
        product builds it, later ones only backpropagate through it, column by column, with no
        forward pass). Memory: the double-backward graphs of all
        chunks (one set for H_f, one for H_p once an H_p product was made)."""
        self._graphs = {}
        try:
            yield
        finally:
            self._graphs = None

    def _ratio_sum(self, theta: Tensor, x: Tensor, y: Tensor, reference: Tensor) -> Tensor:
        """Σ_i ψ_i(θ) = Σ_i exp(f_i(θ₀) - f_i(θ)) over the chunk, reference = f_i(θ₀) (c,)."""
        return torch.exp(reference - self.fm.losses(theta, x, y)).sum()

    def _gradient_graph(self, x: Tensor, y: Tensor, kind: str = "hf") -> tuple[Tensor, Tensor]:
        """(θ leaf, the chunk's gradient built with create_graph), cached when kept: of Σ_i f_i
        (kind "hf") or of Σ_i ψ_i (kind "hp")."""
        key = (kind, x.data_ptr(), x.shape[0])
        if self._graphs is not None and key in self._graphs:
            return self._graphs[key]
        theta = self.theta.detach().requires_grad_(True)
        if kind == "hf":
            objective = self.fm.loss_sum(theta, x, y)
        else:
            losses = self.fm.losses(theta, x, y)
            objective = torch.exp(losses.detach() - losses).sum()
        (gradient,) = torch.autograd.grad(objective, theta, create_graph=True)
        if self._graphs is not None:
            self._graphs[key] = (theta, gradient)
        return theta, gradient

    def _hessian_chunk(self, x: Tensor, y: Tensor, rows: Tensor, kind: str) -> Tensor:
        """The chunk's Σ_i ∇²f_i Vᵀ (kind "hf") or Σ_i ∇²ψ_i Vᵀ (kind "hp"), (m, P)."""
        keep = self._graphs is not None
        if keep or rows.shape[0] == 1:
            # double backward through the chunk's gradient graph, one column at a time: with a
            # kept graph only the backward pass runs per column, and vmap's per-call overhead
            # makes it no cheaper for a few columns
            theta, gradient = self._gradient_graph(x, y, kind)
            return torch.stack(
                [torch.autograd.grad(gradient, theta, row, retain_graph=keep)[0] for row in rows]
            )
        if kind == "hf":
            gradient = grad(self.fm.loss_sum)
        else:
            with torch.no_grad():
                reference = self.fm.losses(self.theta, x, y)
            gradient = grad(lambda t, xs, ys: self._ratio_sum(t, xs, ys, reference))

        def hvp(v: Tensor) -> Tensor:
            return jvp(lambda t: gradient(t, x, y), (self.theta,), (v,))[1]

        return self._vmap(hvp, rows)

    def _hf_chunk(self, x: Tensor, y: Tensor, rows: Tensor) -> Tensor:
        return self._hessian_chunk(x, y, rows, "hf")

    def _hp_chunk(self, x: Tensor, y: Tensor, rows: Tensor) -> Tensor:
        return self._hessian_chunk(x, y, rows, "hp")

    def _m_chunk(self, x: Tensor, y: Tensor, rows: Tensor) -> Tensor:
        def losses(t: Tensor) -> Tensor:
            return self.fm.losses(t, x, y)

        jv = self._vmap(lambda v: jvp(losses, (self.theta,), (v,))[1], rows)  # (m, c) = (J V)ᵀ
        _, pullback = vjp(losses, self.theta)
        return self._vmap(lambda u: pullback(u)[0], jv)

    def hf(self, block: Tensor) -> Tensor:
        """H_f V = (1/n) Σ_i ∇²f_i V.

        Args:
            block: V, (P, m) or (P,).

        Returns:
            H_f V, the shape of V.
        """
        tick("H_f products", block.shape[1] if block.ndim > 1 else 1)
        with torch.enable_grad():
            return self._apply(block, self._hf_chunk)

    def m(self, block: Tensor) -> Tensor:
        """M V = (1/n) Σ_i g_i (g_iᵀ V), through the per-sample gradient factors when set
        (`gradients`), else jvp/vjp products.

        Args:
            block: V, (P, m) or (P,).

        Returns:
            M V, the shape of V.
        """
        tick("M products", block.shape[1] if block.ndim > 1 else 1)
        if self.gradients is not None:
            vector = block.ndim == 1
            columns = block.reshape(self.n_params, -1).to(self.theta.dtype)
            result = self.gradients.rmatmat(self.gradients.matmat(columns))
            if self.distributed is not None:  # factors of this rank's shard: partial sums
                self.distributed.sum(result)
            result = result / self.n_samples
            return result.reshape(-1) if vector else result
        with torch.enable_grad():
            return self._apply(block, self._m_chunk)

    def mb(self, block: Tensor, batch_size: int) -> Tensor:
        """M_b V = c_b M V + (1 - c_b) μ (μᵀ V), the second moment of size-b mini-batch gradients
        drawn without replacement.

        Args:
            block: V, (P, m) or (P,).
            batch_size: b, 1 <= b <= n.

        Returns:
            M_b V, the shape of V.
        """
        c = minibatch_coefficient(self.n_samples, batch_size)
        mu = self.mean_gradient
        columns = block.reshape(self.n_params, -1).to(self.theta.dtype)
        result = c * self.m(columns) + (1.0 - c) * torch.outer(mu, mu @ columns)
        return result.reshape(-1) if block.ndim == 1 else result

    def hp(self, block: Tensor) -> Tensor:
        """H_p V = (1/n) Σ_i ∇²ψ_i V, ψ_i = p_i / p_i(θ₀): one Hessian-vector product per column.

        Args:
            block: V, (P, m) or (P,).

        Returns:
            H_p V = M V - H_f V, the shape of V.
        """
        tick("H_p products", block.shape[1] if block.ndim > 1 else 1)
        with torch.enable_grad():
            return self._apply(block, self._hp_chunk)

    def hp_difference(self, block: Tensor) -> Tensor:
        """H_p V = M V - H_f V: the same operator as `hp`, as an M and an H_f product."""
        return self.m(block) - self.hf(block)
