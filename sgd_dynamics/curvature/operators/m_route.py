"""How the iterative method applies M: per-sample gradient factors or jvp/vjp products.

M goes through per-sample gradient factors and its Gram matrix when they fit `memory_budget`
(layer by layer for networks of nn.Linear layers whose weights are used only by their own
layer's call), else through jvp/vjp products. A fast route is compared with the jvp/vjp product
on one probe per snapshot (`self_check`); when they disagree a `RouteWarning` is issued and M
goes through jvp/vjp products.
"""

from __future__ import annotations

import logging
import time
import warnings

import torch

from ..choices import MRoute
from ..options import SpectraOptions
from .per_sample import DenseGradients, GradientFactors, gradient_factors
from .products import CurvatureOperators

logger = logging.getLogger("sgd_dynamics.curvature")


class RouteWarning(RuntimeWarning):
    """The fast route for M disagreed with the general jvp/vjp product: the general one is used."""


# relative difference between the fast and the general M product above which the fast route is
# abandoned (float64: rounding is ~1e-14; float32: ~1e-6)
SELF_CHECK_TOLERANCE = {torch.float64: 1e-6, torch.float32: 1e-3}


def fast_route_discrepancy(ops: CurvatureOperators, seed: int) -> float:
    """||M_fast v - M_general v|| / ||M_general v|| for one Gaussian probe v: M through the
    per-sample gradient factors (ops.gradients) against M through jvp/vjp products."""
    generator = torch.Generator(device=ops.theta.device)
    generator.manual_seed(seed + 104729)
    probe = torch.randn(
        ops.n_params, 1, generator=generator, dtype=ops.theta.dtype, device=ops.theta.device
    )
    fast = ops.m(probe)
    saved, ops.gradients = ops.gradients, None
    try:
        general = ops.m(probe)
    finally:
        ops.gradients = saved
    norm = float(torch.maximum(general.norm(), fast.norm()))
    return float((fast - general).norm()) / norm if norm > 0 else 0.0


def m_factors(
    ops: CurvatureOperators, options: SpectraOptions
) -> tuple[GradientFactors | None, dict[str, float]]:
    """M's per-sample gradient factors for the iterative method (None: jvp/vjp products), after
    the self-check against the jvp/vjp product, and their diagnostics. Under DDP: the factors
    of this rank's shard (M products summed over the ranks)."""
    clock = time.perf_counter()
    factors = gradient_factors(
        ops.fm, ops.inputs, ops.targets, ops.chunk_size, options.memory_budget, options.m_route
    )
    info = {"factors_seconds": time.perf_counter() - clock}
    ops.gradients = factors
    if factors is not None and options.self_check:
        clock = time.perf_counter()
        discrepancy = fast_route_discrepancy(ops, options.seed)
        info.update(m_self_check=discrepancy, m_self_check_seconds=time.perf_counter() - clock)
        tolerance = SELF_CHECK_TOLERANCE[options.dtype]
        if not discrepancy <= tolerance:
            warnings.warn(
                f"M: the per-sample gradient factors disagree with jvp/vjp products "
                f"(relative difference {discrepancy:.2e} > {tolerance:.0e}): M through jvp/vjp "
                "products",
                RouteWarning,
                stacklevel=4,  # compute_spectra's caller
            )
            factors = ops.gradients = None
    return factors, info


def m_route_of(factors: GradientFactors | None) -> str:
    """ "operator" (jvp/vjp), "dense" (per-sample gradient matrix) or "linear" (layer factors)."""
    route = MRoute.OPERATOR if factors is None else MRoute.DENSE
    if factors is not None and not isinstance(factors, DenseGradients):
        route = MRoute.LINEAR
    logger.debug(
        "M through %s",
        {
            MRoute.OPERATOR: "jvp/vjp products",
            MRoute.DENSE: "the per-sample gradient matrix and its Gram",
            MRoute.LINEAR: "layer-wise factors and the Gram matrix",
        }[route],
    )
    return route.value
