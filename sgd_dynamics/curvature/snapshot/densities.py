"""A snapshot's spectral densities of H_f, M and H_p: exact (dense method) or by SLQ."""

from __future__ import annotations

import contextlib
import logging
import time

import torch

from ..choices import HpMethod
from ..density.densities import Outliers, SpectralDensities, exact_densities
from ..density.densities import spectral_densities as slq_densities
from ..gram.assembly import snapshot_gram
from ..gram.spectrum import gram_eigenvalues
from ..operators.products import CurvatureOperators
from ..options import SpectraOptions
from ..thresholds import keeps_gradient_graphs
from .parts import SnapshotParts, to_numpy

logger = logging.getLogger("sgd_dynamics.curvature")


def _iterative_densities(
    ops: CurvatureOperators, parts: SnapshotParts, options: SpectraOptions
) -> SpectralDensities:
    """Densities of H_f and H_p by SLQ with the snapshot's solves merged in as outliers (top-k of
    H_f; top- and bottom-k of H_p when they come from a converged solve), M's exact spectrum
    from the Gram matrix of the per-sample gradients (the snapshot's own, else from the factors,
    else from per-sample gradients chunk by chunk; under DDP assembled across the processes)."""
    gram = parts.gram  # the snapshot's own K
    if gram is None:  # under DDP assembled across the processes from their shards
        gram = snapshot_gram(ops, parts.factors)
    gram_values = gram_eigenvalues(gram, options.dense_threads)
    hp_outliers = None
    if options.hp_method == HpMethod.SOLVE and parts.hp_top_vecs is not None:
        assert parts.hp_bottom_vecs is not None
        hp_outliers = Outliers(
            torch.cat([parts.hp_top, parts.hp_bottom]).detach(),
            torch.cat([parts.hp_top_vecs, parts.hp_bottom_vecs], dim=1),
        )
    keep_graphs = keeps_gradient_graphs(ops.n_samples, ops.chunk_size)
    with ops.kept_gradient_graphs() if keep_graphs else contextlib.nullcontext():
        return slq_densities(
            ops.hf,
            ops.n_params,
            m=ops.m,
            gram_values=gram_values,
            hf_outliers=Outliers(parts.hf_top.detach(), parts.hf_vecs),
            hp_outliers=hp_outliers,
            settings=options.density_settings,
            dtype=ops.theta.dtype,
            device=ops.theta.device,
        )


def snapshot_densities(
    ops: CurvatureOperators, parts: SnapshotParts, options: SpectraOptions
) -> SpectralDensities:
    """The snapshot's densities: exact from all eigenvalues (dense method), else by SLQ;
    `density_seconds` (and the SLQ's block products) go to parts.diagnostics."""
    clock = time.perf_counter()
    if parts.hf_all is not None and parts.mt_all is not None and parts.hp_all is not None:
        densities = exact_densities(
            to_numpy(parts.hf_all),
            to_numpy(parts.mt_all),
            to_numpy(parts.hp_all),
            options.density_settings,
        )
    else:
        densities = _iterative_densities(ops, parts, options)
        parts.diagnostics.update(
            density_hf_products=float(densities.hf_products),
            density_mt_products=float(densities.mt_products),
        )
    parts.diagnostics["density_seconds"] = time.perf_counter() - clock
    logger.debug(
        "densities in %.2f s: W1(H_p, -H_f) / spread = %.4g",
        parts.diagnostics["density_seconds"],
        densities.hp_to_minus_hf,
    )
    return densities
