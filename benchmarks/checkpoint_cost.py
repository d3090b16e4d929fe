"""Cost of the periodic checkpoints (conf/callbacks/default.yaml) in a default run.

Usage:
    python benchmarks/checkpoint_cost.py [--repeats N] [key=value ...]

Runs ``python train.py [key=value ...]`` (the default run: Gauss-10, 3000 steps, dense spectra,
wandb offline) with the default checkpoints and, as the named baseline, with none
(``callbacks.checkpoint=null +trainer.enable_checkpointing=false``), alternating, N times each, in
temporary folders. Prints the median wall time of each, their ratio, and the seconds spent inside
checkpoint writes as the callback measured them (its log line) over the run's wall time: the
direct measure, unaffected by the noise of other processes on the machine.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import machine, write_results  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
BASELINE = ["callbacks.checkpoint=null", "+trainer.enable_checkpointing=false"]
WRITES = re.compile(r"checkpoints: (\d+) written in ([0-9.]+) s")


def one_run(overrides: list[str]) -> tuple[float, int, float]:
    """(wall seconds, checkpoints written, seconds writing them) of one train.py run."""
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true")
    with tempfile.TemporaryDirectory() as folder:
        argv = [sys.executable, str(REPO_ROOT / "train.py"), f"hydra.run.dir={folder}/run"]
        started = time.perf_counter()
        result = subprocess.run([*argv, *overrides], capture_output=True, text=True, env=env)
        wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"train.py failed:\n{result.stderr[-3000:]}")
    found = WRITES.search(result.stdout + result.stderr)
    return wall, int(found.group(1)) if found else 0, float(found.group(2)) if found else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("overrides", nargs="*", help="train.py overrides for both variants")
    args = parser.parse_args()
    where = machine()
    with_ckpt, without, writing, shares = [], [], [], []
    for _ in range(args.repeats):
        wall, n, seconds = one_run(args.overrides)
        with_ckpt.append(wall)
        writing.append(seconds)
        shares.append(seconds / wall)
        without.append(one_run([*args.overrides, *BASELINE])[0])
    a, b = statistics.median(with_ckpt), statistics.median(without)
    print(f"default checkpoints: median wall {a:.2f} s ({n} checkpoints per run)")
    print(f"baseline, none:      median wall {b:.2f} s")
    print(f"wall ratio default / baseline: {a / b:.4f}")
    print(
        f"inside checkpoint writes: median {statistics.median(writing):.4f} s = "
        f"{100 * statistics.median(shares):.3f} % of the run's wall time"
    )
    row = {
        "checkpoints_per_run": n,
        "median_wall_s": a,
        "median_wall_s_without_checkpoints": b,
        "wall_ratio": a / b,
        "median_s_in_checkpoint_writes": statistics.median(writing),
        "median_share_in_checkpoint_writes": statistics.median(shares),
    }
    settings = {"repeats": args.repeats, "overrides": args.overrides}
    print(f"# wrote {write_results('checkpoint_cost', [row], settings, where)}")


if __name__ == "__main__":
    main()
