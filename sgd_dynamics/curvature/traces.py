"""The traces of an iterative snapshot, each with its standard error.

tr(H_f) is a Hutchinson estimate (`trace_probes` Rademacher probes, standard error
std / sqrt(probes)); tr(M) is exact with per-sample gradient factors and a Hutchinson estimate on
the same probes otherwise; tr(H_p) = tr(M) - tr(H_f).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .distributed import sum_scalars
from .operators import CurvatureOperators


def hutchinson(ops: CurvatureOperators, probes: int, seed: int, with_m: bool) -> dict[str, float]:
    """Hutchinson estimates with standard errors: trace_hf (and, if with_m, trace_mt), and
    trace_hp_stderr, the standard error of tr(H_p) from the same probes (per-probe
    zᵀ(M - H_f)z when M is estimated too, else zᵀ H_f z: tr(M) is then exact)."""
    if probes < 1:
        return dict(trace_hf=math.nan, trace_hf_stderr=math.nan, trace_hp_stderr=math.nan)
    generator = torch.Generator(device=ops.theta.device)
    generator.manual_seed(seed + 7919)
    z = torch.randint(0, 2, (ops.n_params, probes), generator=generator, device=ops.theta.device)
    z = z.to(ops.theta.dtype) * 2 - 1
    hf_samples = (z * ops.hf(z)).sum(0)

    def stderr(samples: Tensor) -> float:
        return float(samples.std() / math.sqrt(probes)) if probes > 1 else math.nan

    out = dict(trace_hf=float(hf_samples.mean()), trace_hf_stderr=stderr(hf_samples))
    out["trace_hp_stderr"] = out["trace_hf_stderr"]
    if with_m:
        m_samples = (z * ops.m(z)).sum(0)
        out.update(trace_mt=float(m_samples.mean()), trace_mt_stderr=stderr(m_samples))
        out["trace_hp_stderr"] = stderr(m_samples - hf_samples)
    return out


def trace_fields(ops: CurvatureOperators, traces: dict[str, float]) -> dict[str, float]:
    """The six trace fields of a snapshot from the Hutchinson estimates: tr(M) exact from the
    per-sample gradient factors when M has them (summed over the ranks under DDP)."""
    factors = ops.gradients
    if factors is not None:
        (trace_mt,) = sum_scalars(ops.distributed, float(factors.sq_norms().sum()), like=ops.theta)
        traces.update(trace_mt=trace_mt / ops.n_samples, trace_mt_stderr=0.0)
    return dict(
        trace_hf=traces["trace_hf"],
        trace_mt=traces.get("trace_mt", math.nan),
        trace_hp=traces.get("trace_mt", math.nan) - traces["trace_hf"],
        trace_hf_stderr=traces["trace_hf_stderr"],
        trace_mt_stderr=traces.get("trace_mt_stderr", math.nan),
        trace_hp_stderr=traces["trace_hp_stderr"],
    )
