"""Pool sizes: `apply_threads` sets torch's and every loaded BLAS/OpenMP library's pool,
`limit_threads` caps them inside a block and restores them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from sgd_dynamics.threads import apply_threads, limit_threads

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def restore_pools():
    previous = torch.get_num_threads()
    with threadpool_limits(limits=None):  # restores the BLAS/OpenMP pools on exit
        yield
    torch.set_num_threads(previous)


def pool_sizes() -> dict[str, int]:
    return {info["filepath"]: info["num_threads"] for info in threadpool_info()}


def test_apply_threads_sets_torch_and_every_blas(restore_pools):
    apply_threads(1)
    assert torch.get_num_threads() == 1
    sizes = pool_sizes()
    assert any("openblas" in path for path in sizes), sizes  # numpy's and scipy's OpenBLAS
    assert set(sizes.values()) == {1}, sizes
    apply_threads(2)
    assert torch.get_num_threads() == 2
    assert set(pool_sizes().values()) == {2}


def test_apply_threads_refuses_zero():
    with pytest.raises(ValueError, match=">= 1"):
        apply_threads(0)


def test_limit_threads_caps_and_restores(restore_pools):
    apply_threads(2)
    with limit_threads(1):
        assert torch.get_num_threads() == 1
        assert set(pool_sizes().values()) == {1}
    assert torch.get_num_threads() == 2
    assert set(pool_sizes().values()) == {2}
    with limit_threads(None):
        assert torch.get_num_threads() == 2
    with pytest.raises(ValueError, match=">= 1 or None"):
        with limit_threads(0):
            pass


SPY = """
import os, sys
seen = {}
class Spy:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and name not in seen:
            seen[name] = os.environ.get("OMP_WAIT_POLICY")
        return None
sys.meta_path.insert(0, Spy())
sys.path.insert(0, sys.argv[1])
import train  # sets the policy at import; torch itself loads when a run is built
import torch
print(seen["torch"])
"""


@pytest.mark.parametrize(("preset", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_train_py_sets_passive_wait_before_torch_loads(preset, expected):
    """OpenMP reads OMP_WAIT_POLICY once, when torch loads it: train.py must set it before
    importing torch, and keep a value the user set."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if preset is not None:
        env["OMP_WAIT_POLICY"] = preset
    done = subprocess.run(
        [sys.executable, "-c", SPY, str(REPO_ROOT)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [expected]
