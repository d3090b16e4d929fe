"""The console of a joblib sweep, as a user sees it (stdout and stderr, Python's default warning
filters): every line a job prints starts with its job label, and no warning is repeated."""

from __future__ import annotations

import re
import subprocess
from collections import Counter

import pytest
from pipeline.pipeline_helpers import PYTHON, REPO_ROOT, train_env

TINY = [
    "trainer.max_steps=10",
    "spectral.log_points=3",
    "spectral.k=3",
    "spectral.draw_at_end=false",
    "model.width=8",
    "logger=csv",
]
# the lines of the launching process: Hydra's launch lines and the sweep's closing lines
LAUNCHER_LINE = re.compile(
    r"^(Joblib\.Parallel\(|Launching jobs, |\t#\d+ : |Sweep outputs: |Report: )"
)


@pytest.mark.slow
def test_a_joblib_sweep_labels_every_job_line_and_repeats_no_warning(tmp_path):
    env = train_env()
    env.pop("PYTHONWARNINGS")  # the warnings a user would see
    done = subprocess.run(
        [PYTHON, str(REPO_ROOT / "train.py"), "-m", "hydra/launcher=joblib"]
        + ["hydra.launcher.n_jobs=2", "seed=0,1", *TINY],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [ln for ln in (done.stdout + done.stderr).splitlines() if ln.strip()]
    job_lines = {0: [], 1: []}
    for line in lines:
        if LAUNCHER_LINE.match(line):
            continue
        label = re.match(r"^\[job (\d)\] ", line)
        assert label is not None, f"a line without its job: {line!r}\n" + "\n".join(lines)
        job_lines[int(label.group(1))].append(line[label.end() :])
    for job, printed in job_lines.items():  # each job's own lines, under its own label
        assert any(ln.startswith("Outputs: ") and ln.endswith(f"/{job}") for ln in printed), job
        assert any(ln.startswith("snapshot step 10: ") for ln in printed), job
    warned = [ln for ln in lines if "warning" in ln.lower()]
    repeated = [ln for ln, n in Counter(warned).items() if n > 1]
    assert not repeated, repeated
    assert "ConfigStore schema" not in done.stdout + done.stderr
