"""Benchmark results as data: one JSON file per benchmark in benchmarks/results/, with the machine.

A result file holds ``{"benchmark", "command", "machine", "settings", "rows"}``: `machine` says
where the numbers were measured (CPU model, cores, torch and numpy versions, threads, load
average when the benchmark started), `rows` is a list of flat dicts, one per table row.
docs/performance.md quotes these files only (scripts/gen_docs.py renders their tables), so a
figure in the documentation always comes with the machine that produced it.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, `platform.processor()` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, object]:
    """Where a benchmark runs: CPU, cores, library versions, threads and load when it starts."""
    import numpy
    import torch

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count()
    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def write_results(
    name: str,
    rows: list[dict[str, object]],
    settings: dict[str, object],
    machine_info: dict[str, object],
    directory: Path = RESULTS_DIR,
) -> Path:
    """Write ``<directory>/<name>.json`` atomically (temporary file, then rename) and return it.

    Args:
        name: the file's stem, e.g. ``spectra_gauss10``.
        rows: one flat dict per table row (numbers as numbers, not formatted text).
        settings: what the benchmark was run with (sizes, repeats, k, ...).
        machine_info: `machine()`, taken when the benchmark started.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    record = {
        "benchmark": name,
        "command": " ".join(
            [os.path.relpath(Path(sys.argv[0]).resolve(), REPO_ROOT), *sys.argv[1:]]
        ),
        "machine": machine_info,
        "settings": settings,
        "rows": rows,
    }
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(record, indent=1, allow_nan=False) + "\n")
    os.replace(temporary, path)
    return path


def load_results(name: str, directory: Path = RESULTS_DIR) -> dict[str, object]:
    """The record of ``<directory>/<name>.json``."""
    return json.loads((directory / f"{name}.json").read_text())
