"""Benchmark of the thread policy: the default run idle and on a busy machine.

Usage:
    python benchmarks/threads.py                  # default run (3000 steps), 3 rounds
    python benchmarks/threads.py --rounds 1 --max-steps 600
    python benchmarks/threads.py --quick          # smoke run: 20 steps, 1 round

Each row is the wall time of one ``python train.py logger=csv callbacks.progress=null`` process
(the default run otherwise: Gauss-10, default spectra), started in a temporary folder:

    new:  the thread policy (threads=auto; train.py sets OMP_WAIT_POLICY=PASSIVE);
    old:  the behaviour before it, the named baseline: 2 threads (OMP_NUM_THREADS=2 threads=2)
          and OpenMP's default wait policy (idle threads spin): torch is imported before
          train.py runs, so the OMP_WAIT_POLICY it sets comes too late for OpenMP.

"idle" runs alone; "loaded" runs beside two CPU-bound processes (Python busy loops, one core
each), started before and stopped after it. The sweep rows run two jobs (seed=0,1) with
``-m hydra/launcher=joblib hydra.launcher.n_jobs=2`` against the same two jobs one after the
other (``-m``, Hydra's basic launcher), both with the policy. Thread variables of this shell
(OMP_NUM_THREADS, MKL_NUM_THREADS, OPENBLAS_NUM_THREADS, OMP_WAIT_POLICY, GOMP_SPINCOUNT) are
removed from the runs' environment. Rounds are interleaved (the order within a round alternates
between rounds) and medians are reported. Results go to benchmarks/results/threads.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import machine, write_results  # noqa: E402

TRAIN = Path(__file__).resolve().parents[1] / "train.py"
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "OMP_WAIT_POLICY",
    "GOMP_SPINCOUNT",
)
# the baseline: torch (and its OpenMP) loaded before train.py sets OMP_WAIT_POLICY
OLD_LAUNCHER = (
    "import runpy, sys, torch; sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)
BUSY_LOOP = "while True: pass"


def clean_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", PYTHONWARNINGS="ignore")
    return env


def command(variant: str, args: list[str]) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of a train.py run: variant "new" or "old"."""
    env = clean_environment()
    if variant == "new":
        return [sys.executable, str(TRAIN), *args], env
    env["OMP_NUM_THREADS"] = "2"
    return [sys.executable, "-c", OLD_LAUNCHER, str(TRAIN), *args, "threads=2"], env


def timed_run(cmd: list[str], env: dict[str, str]) -> tuple[float, list[str]]:
    """Wall seconds of `cmd` in a fresh temporary folder, and its ``threads:`` lines."""
    with tempfile.TemporaryDirectory(prefix="bench_threads_") as folder:
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"error: run failed ({' '.join(cmd)}):\n{done.stderr[-3000:]}")
    return seconds, [line for line in done.stdout.splitlines() if line.startswith("threads: ")]


@contextmanager
def busy_processes(count: int) -> Iterator[None]:
    """`count` CPU-bound processes (one core each) running while the block runs."""
    busy = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(count)]
    try:
        time.sleep(0.5)  # let them start spinning
        yield
    finally:
        for process in busy:
            process.kill()
        for process in busy:
            process.wait()


def cases(run_args: list[str]) -> dict[str, tuple[str, list[str], dict[str, str]]]:
    """name -> (load, command, env): load "idle" or "loaded"."""
    sweep = ["-m", *run_args, "seed=0,1"]
    joblib = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    table = {}
    for load in ("idle", "loaded"):
        for variant in ("new", "old"):
            table[f"{load} {variant}"] = (load, *command(variant, run_args))
    table["sweep joblib"] = ("idle", *command("new", [*sweep, *joblib]))
    table["sweep sequential"] = ("idle", *command("new", sweep))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians)")
    parser.add_argument("--max-steps", type=int, default=None, help="trainer.max_steps")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 steps, 1 round")
    options = parser.parse_args()
    if options.rounds < 1 or (options.max_steps is not None and options.max_steps < 1):
        parser.error("--rounds and --max-steps must be >= 1")
    run_args = ["logger=csv", "callbacks.progress=null"]
    steps = 20 if options.quick else options.max_steps
    if steps is not None:
        run_args.append(f"trainer.max_steps={steps}")
    if options.quick:
        run_args.append("spectral.log_points=3")
    rounds = 1 if options.quick else options.rounds

    table = cases(run_args)
    where = machine()
    times: dict[str, list[float]] = {name: [] for name in table}
    lines: dict[str, list[str]] = {}
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"# {cpus} CPUs, load average {os.getloadavg()[0]:.2f} at start; train.py {run_args}")
    for r in range(rounds):
        order = list(table) if r % 2 == 0 else list(reversed(table))
        for load in ("idle", "loaded") if r % 2 == 0 else ("loaded", "idle"):
            names = [name for name in order if table[name][0] == load]
            with busy_processes(2 if load == "loaded" else 0):
                for name in names:
                    seconds, found = timed_run(*table[name][1:])
                    times[name].append(seconds)
                    lines.setdefault(name, found)
                    print(f"# round {r + 1}: {name:17s} {seconds:8.2f} s", flush=True)

    med = {name: statistics.median(values) for name, values in times.items()}
    print(f"\nmedians of {rounds} round(s), wall seconds of the whole process")
    print(f"{'':28s}{'new (policy)':>14s}{'old (2 thr.)':>14s}{'new/old':>9s}")
    for load, label in (("idle", "idle"), ("loaded", "beside 2 busy processes")):
        new, old = med[f"{load} new"], med[f"{load} old"]
        print(f"{label:28s}{new:14.2f}{old:14.2f}{new / old:9.2f}")
    print(
        f"{'loaded/idle':28s}{med['loaded new'] / med['idle new']:14.2f}"
        f"{med['loaded old'] / med['idle old']:14.2f}"
    )
    joblib, sequential = med["sweep joblib"], med["sweep sequential"]
    print(
        f"2-job sweep: joblib n_jobs=2 {joblib:.2f} s, one after the other {sequential:.2f} s, "
        f"joblib/sequential {joblib / sequential:.2f}"
    )
    print("\nthreads lines (new):")
    for name in ("idle new", "sweep joblib", "sweep sequential"):
        print(f"  {name}: {'; '.join(lines.get(name, [])) or '(none)'}")
    if not options.quick:  # a smoke run is not a result
        rows = [{"case": name, "median_wall_s": seconds} for name, seconds in med.items()]
        settings = {"rounds": rounds, "train_args": run_args}
        print(f"# wrote {write_results('threads', rows, settings, where)}")


if __name__ == "__main__":
    main()
