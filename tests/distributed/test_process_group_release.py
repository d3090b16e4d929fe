"""A process group used by the curvature engine is freed by destroy_process_group.

torch.func's vmap(grad) imports torch._dynamo on first use, and torch._dynamo imported while a
process group exists keeps references to it: destroy_process_group then cannot free the group,
and its gloo threads live on to interpreter exit, where they sometimes abort the process
(SIGABRT, "terminate called without an active exception"; twice in CI, in spawned DDP test
workers). Importing the library must make that impossible. Each case runs in a fresh
interpreter (torch._dynamo not yet imported), in the order a script would: import, create the
group, compute, destroy; the process's native threads are counted from /proc.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import torch
    import torch.distributed as dist
    {library_import}

    def threads():
        return sorted(
            open(f"/proc/self/task/{{t}}/comm").read().strip()
            for t in os.listdir("/proc/self/task")
        )

    before = threads()
    dist.init_process_group(
        "gloo", init_method="file://" + sys.argv[1], rank=0, world_size=1
    )
    during = threads()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    {compute}
    dist.barrier()
    dist.destroy_process_group()
    print(json.dumps({{"before": before, "during": during, "after": threads()}}))
    """
)

COMPUTE_SPECTRA = (
    "compute_spectra(model, torch.randn(6, 3), torch.randint(0, 2, (6,)), "
    "SpectraOptions(k=2, method='iterative', m_route='dense'), distributed=default_reduction())"
)
CASES = {
    "compute_spectra": (
        "from sgd_dynamics.curvature import SpectraOptions, compute_spectra\n"
        "from sgd_dynamics.curvature.operators.distributed import default_reduction",
        COMPUTE_SPECTRA,
    ),
    # the per-sample gradients alone, as a notebook would call them
    "per_sample_gradients": (
        "from sgd_dynamics.curvature.operators import FunctionalModel\n"
        "from sgd_dynamics.curvature.operators.per_sample import per_sample_gradients",
        "per_sample_gradients(FunctionalModel(model, torch.float32), torch.randn(6, 3), "
        "torch.randint(0, 2, (6,)), 3)",
    ),
}


def run_case(tmp_path: Path, library_import: str, compute: str) -> dict[str, list[str]]:
    script = tmp_path / "case.py"
    script.write_text(SCRIPT.format(library_import=library_import, compute=compute))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "store")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", sorted(CASES))
def test_destroy_process_group_frees_the_group_after_the_engine_ran(tmp_path, case):
    threads = run_case(tmp_path, *CASES[case])
    assert len(threads["during"]) > len(threads["before"])  # the group's threads were there
    assert threads["after"] == threads["before"], threads
