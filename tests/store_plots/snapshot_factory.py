"""Synthetic snapshots for the store, plot and report tests (a helper module, not tests).

``dense_snapshot`` builds real matrices (float64) so the stored spectra obey the mathematics
the figures show: H_f symmetric indefinite, M = G^T G / n PSD with rank <= n, H_p = M - H_f,
cosines the singular values of U^T V for the top-k eigenvectors.
"""

from __future__ import annotations

import numpy as np


def dense_snapshot(step: int, rng: np.random.Generator, p: int = 40, n: int = 8, k: int = 5):
    """A snapshot dict with full spectra; M shrinks as the step grows (training converges)."""
    a = rng.standard_normal((p, p)) / np.sqrt(p)
    hf = (a + a.T) / 2 + np.diag(np.linspace(0.0, 1.0, p)) / (1.0 + step / 10)
    g = rng.standard_normal((n, p)) / (1.0 + step / 10)
    m = g.T @ g / n
    hp = m - hf
    ev_hf, vec_hf = np.linalg.eigh(hf)
    ev_m, vec_m = np.linalg.eigh(m)
    ev_hp = np.linalg.eigvalsh(hp)
    u, v = vec_hf[:, ::-1][:, :k], vec_m[:, ::-1][:, :k]
    cosines = np.linalg.svd(u.T @ v, compute_uv=False)
    loss = 2.3 / (1.0 + step)
    return {
        "step": np.int64(step),
        "epoch": np.int64(step // 20),
        "train_loss": loss,
        "train_acc": 1.0 - loss / 2.3,
        "hf_top": ev_hf[::-1][:k],
        "mt_top": ev_m[::-1][:k],
        "hp_top": ev_hp[::-1][:k],
        "hp_bottom": ev_hp[:k],
        "cosines": np.sort(cosines)[::-1],
        "hf_all": ev_hf,
        "mt_all": ev_m,
        "hp_all": ev_hp,
        "trace_hf": np.trace(hf),
        "trace_mt": np.trace(m),
        "trace_hp": np.trace(hp),
        "n_samples": np.int64(n),
        "n_params": np.int64(p),
    }


def iterative_snapshot(step: int, rng: np.random.Generator, k: int = 5) -> dict:
    """A snapshot dict without full spectra (the iterative method)."""
    snap = dense_snapshot(step, rng, k=k)
    for key in ("hf_all", "mt_all", "hp_all"):
        del snap[key]
    return snap
