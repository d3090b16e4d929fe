"""The four curvature operators as products, and what they are built from.

- `functional`: the model as a function of its flattened parameters θ (`FunctionalModel`), the
  loss f(θ) = mean cross-entropy, and `evaluation_mode`.
- `products`: `CurvatureOperators`, the products V (P×m) -> A V with A = H_f, M, M_b, H_p, over
  the samples in chunks.
- `per_sample`: per-sample gradient factors of M (G itself, or layer-wise factors of nn.Linear
  networks) and their products and Gram matrix.
- `m_route`: which route M takes in the iterative method (factors or jvp/vjp products), checked
  against the general product (`RouteWarning`).
- `stable_loss`: the per-sample cross-entropy every product differentiates, written so that its
  derivatives stay exact when a sample is fitted (`per_sample_cross_entropy`).
- `distributed`: `Reduction`, the sums of the products over DDP processes.
"""

from .distributed import Reduction, default_reduction
from .functional import FunctionalModel, evaluation_mode
from .m_route import RouteWarning
from .per_sample import DenseGradients, GradientFactors, LinearLayerGradients, gradient_factors
from .products import CurvatureOperators, default_chunk_size, minibatch_coefficient
from .stable_loss import per_sample_cross_entropy

__all__ = [
    "CurvatureOperators",
    "minibatch_coefficient",
    "default_chunk_size",
    "FunctionalModel",
    "evaluation_mode",
    "GradientFactors",
    "DenseGradients",
    "LinearLayerGradients",
    "gradient_factors",
    "RouteWarning",
    "Reduction",
    "default_reduction",
    "per_sample_cross_entropy",
]
