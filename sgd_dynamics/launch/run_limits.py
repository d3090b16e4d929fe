"""What a valid configuration must also satisfy to make a run that trains and can finish:
checked on the composed configuration, after `config_schema.validate_config`, before anything
is created.

- `check_required`: the sections and keys every run builds from (``~dataset`` deletes one);
- `check_training_loop`: Trainer arguments of the open ``trainer`` section that bound the
  training loop, so that a run trains at least one step, stops, and trains the batch it records
  (``limit_train_batches=0``, ``fast_dev_run``, ``accumulate_grad_batches``, ...);
- `check_data_files`: the files a file data set reads are in ``dataset.root`` (or will be
  downloaded);
- `check_devices`: an accelerator this machine has, and no more devices than it has;
- `check_threads`: a thread count the OpenMP runtime can create (at most `THREADS_PER_CPU`
  per CPU of this machine);
- `memory_needed` / `check_memory`: a lower bound of the memory the data set, the network and
  one spectral snapshot hold, against the memory available;
- `disk_needed` / `check_disk`: a lower bound of the bytes the snapshot schedule and the
  checkpoint write, against the free space of the output folder's file system.

Every check raises `ConfigError` (``<key>=<value>: <what is accepted>``). No Hydra, no torch.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sgd_dynamics.config_schema import GAUSS10, format_value
from sgd_dynamics.schedule import snapshot_steps
from sgd_dynamics.utils.errors import ConfigError
from sgd_dynamics.utils.validate import is_integer

__all__ = [
    "THREADS_PER_CPU",
    "Estimate",
    "available_memory",
    "check_data_files",
    "check_devices",
    "check_disk",
    "check_memory",
    "check_required",
    "check_sizes",
    "check_threads",
    "check_training_loop",
    "disk_needed",
    "memory_needed",
    "usable_cpus",
]

# sections every run instantiates (by their _target_) and top-level keys the groups interpolate
REQUIRED_SECTIONS = ("dataset", "model", "optimizer", "module", "trainer")
REQUIRED_KEYS = ("seed", "batch_size", "lr", "threads", "ckpt_path", "run_dir")


def _refuse(key: str, value: object, accepted: str) -> ConfigError:
    return ConfigError(f"{key}={format_value(value)}: {accepted}")


# ----------------------------------------------------------------------------- structure
def check_required(config: Mapping[str, object]) -> None:
    """Every section a run builds is a mapping with its ``_target_``, every top-level key the
    groups interpolate is present, and the spectral snapshots, when configured, are the
    callback ``callbacks.spectral`` (else a ``spectral`` section would silently measure
    nothing)."""
    for name in REQUIRED_KEYS:
        if name not in config:
            raise ConfigError(f"~{name}: {name} is required; set it instead (`{name}=...`)")
    for name in REQUIRED_SECTIONS:
        section = config.get(name)
        if not isinstance(section, Mapping) or "_target_" not in section:
            shown = "deleted" if name not in config else format_value(section)
            raise ConfigError(
                f"{name}: {shown}: a run needs its {name} section (a mapping with _target_); "
                f"choose an option of the group instead (`{name}=<option>`)"
            )
    for name in ("logger", "callbacks"):
        for entry, node in (config.get(name) or {}).items():
            if isinstance(node, Mapping) and entry != "spectral" and "_target_" not in node:
                raise _refuse(f"{name}.{entry}", node, _NO_TARGET)
    spectral = config.get("spectral")
    if isinstance(spectral, Mapping) and "_target_" not in spectral:
        raise _refuse("spectral", spectral, _NO_TARGET)
    callbacks = config.get("callbacks")
    if isinstance(spectral, Mapping) and (
        not isinstance(callbacks, Mapping) or callbacks.get("spectral") != spectral
    ):
        shown = callbacks.get("spectral") if isinstance(callbacks, Mapping) else callbacks
        name = "callbacks.spectral" if isinstance(callbacks, Mapping) else "callbacks"
        raise _refuse(
            name,
            shown,
            "the spectral section (callbacks.spectral = ${spectral}): the snapshots run as "
            "that callback; turn them off with spectral=off",
        )


_NO_TARGET = (
    "an option of its group, or null (a mapping without _target_ builds nothing: keys set on "
    "a section that is off, e.g. spectral=off with spectral.k=...)"
)


# ----------------------------------------------------------------------------- training loop
def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _batches(value: object, zero: bool) -> bool:
    """An int >= 1 (>= 0 with `zero`) or a fraction in (0, 1] ([0, 1] with `zero`)."""
    if is_integer(value):
        return value >= (0 if zero else 1)
    return _is_number(value) and (0 <= value if zero else 0 < value) and value <= 1


def _duration_seconds(value: object) -> float | None:
    """Seconds of a Trainer ``max_time``: ``"DD:HH:MM:SS"`` or a mapping of timedelta
    arguments (days, hours, minutes, seconds, ...); None when it is neither."""
    if isinstance(value, str):
        parts = value.split(":")
        if len(parts) != 4 or not all(p.strip().isdigit() for p in parts):
            return None
        days, hours, minutes, seconds = (int(p) for p in parts)
        return ((days * 24 + hours) * 60 + minutes) * 60.0 + seconds
    if isinstance(value, Mapping):
        units = {"weeks": 604800, "days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}
        units |= {"milliseconds": 1e-3, "microseconds": 1e-6}
        if not value or not set(value) <= set(units) or not all(map(_is_number, value.values())):
            return None
        return sum(units[k] * v for k, v in value.items())
    return None


# argument -> (accepts(value), what is accepted): the Trainer arguments that bound the loop
TRAINING_LOOP = {
    "limit_train_batches": (
        lambda v: v is None or _batches(v, zero=False),
        "null, an integer >= 1 or a fraction in (0, 1] of the training batches (0 trains nothing)",
    ),
    "limit_val_batches": (
        lambda v: v is None or _batches(v, zero=True),
        "null, an integer >= 0 or a fraction in [0, 1] of the test batches (0: no evaluation)",
    ),
    "overfit_batches": (
        lambda v: _batches(v, zero=True),
        "an integer >= 0 or a fraction in [0, 1]",
    ),
    "fast_dev_run": (
        lambda v: v is False or v == 0 and is_integer(v),
        "false (a debugging mode that trains a few batches with no checkpoint, logger or "
        "snapshot schedule; set trainer.max_steps instead)",
    ),
    "accumulate_grad_batches": (
        lambda v: is_integer(v) and v == 1,
        "1 (the SGD batch is batch_size: accumulating gradients over several batches would "
        "train with another batch than the run records; raise batch_size instead)",
    ),
    "max_time": (
        lambda v: v is None or (s := _duration_seconds(v)) is not None and s > 0,
        'null or a positive duration, "DD:HH:MM:SS" or {days: ..., hours: ...} (0 trains nothing)',
    ),
    "min_steps": (lambda v: v is None or is_integer(v) and v >= -1, "null or an integer >= -1"),
    "min_epochs": (lambda v: v is None or is_integer(v) and v >= 0, "null or an integer >= 0"),
}


def check_training_loop(trainer: Mapping[str, object]) -> None:
    """The Trainer arguments of `TRAINING_LOOP` (open keys of ``trainer``, which
    `validate_config` passes unchecked to the Trainer) accept only values that train at least
    one step of the recorded batch and stop; and ``max_steps=-1`` needs a finite
    ``max_epochs`` (Lightning trains forever with both -1)."""
    for name, (accepts, accepted) in TRAINING_LOOP.items():
        if name in trainer and not accepts(trainer[name]):
            raise _refuse(f"trainer.{name}", trainer[name], accepted)
    if trainer.get("max_steps") == -1 and trainer.get("max_epochs") == -1:
        raise _refuse(
            "trainer.max_epochs",
            -1,
            "null or an integer >= 1 when trainer.max_steps=-1 (both -1: the run never ends)",
        )


# ----------------------------------------------------------------------------- data files
def missing_data_files(config: Mapping[str, object], cwd: str | os.PathLike = ".") -> list[str]:
    """The files a file data set (MNIST, Fashion-MNIST, CIFAR-10) needs that are not in
    ``dataset.root`` (relative to `cwd`), by the readers' own rules; [] for Gauss-10 and when
    ``dataset.download`` will fetch them."""
    from sgd_dynamics.data.cifar10 import CIFAR10_FOLDER, CIFAR10_TEST_BATCH, CIFAR10_TRAIN_BATCHES
    from sgd_dynamics.data.mnist import find_idx_files

    dataset = config.get("dataset") or {}
    target = dataset.get("_target_")
    root = dataset.get("root")
    if target not in FILE_DATA_SIZES or dataset.get("download") or not isinstance(root, str):
        return []
    folder = Path(cwd, root).expanduser()
    if "CIFAR10" in target:
        names = [*CIFAR10_TRAIN_BATCHES, CIFAR10_TEST_BATCH]
        return [
            f"{CIFAR10_FOLDER}/{n}" for n in names if not (folder / CIFAR10_FOLDER / n).is_file()
        ]
    return [f"{name}[.gz]" for name in find_idx_files(folder)[1]]


def check_data_files(config: Mapping[str, object], cwd: str | os.PathLike = ".") -> None:
    """`ConfigError` naming the data files missing from ``dataset.root`` (one line; the
    readers check the files' contents when the run loads them)."""
    missing = missing_data_files(config, cwd)
    if missing:
        root = config["dataset"]["root"]
        where = Path(cwd, root).expanduser().absolute()
        state = "" if where.is_dir() else ", a folder that does not exist"
        raise ConfigError(
            f"dataset.root={root}: data files not found in {where}{state} (missing: "
            f"{', '.join(missing)}); add dataset.download=true to fetch them, or point "
            "dataset.root at the folder that holds them"
        )


# ----------------------------------------------------------------------------- devices
def device_count(accelerator: str) -> int | None:
    """Devices of `accelerator` this machine has (torch's count); None for cpu and auto."""
    import torch

    if accelerator in ("gpu", "cuda"):
        return torch.cuda.device_count()
    if accelerator == "mps":
        return int(bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()))
    return None


def check_devices(trainer: Mapping[str, object]) -> None:
    """``trainer.accelerator`` names a kind of device this machine has, and ``trainer.devices``
    asks for no more of them than it has (checked where the job runs on this machine)."""
    accelerator = str(trainer.get("accelerator", "auto"))
    count = device_count(accelerator)
    if count is None:
        return
    if count == 0:
        raise _refuse(
            "trainer.accelerator",
            accelerator,
            f"cpu or auto: this machine has no {accelerator} device (torch sees none)",
        )
    devices = trainer.get("devices", 1)
    wanted = len(devices) if isinstance(devices, list) else devices
    if is_integer(wanted) and wanted > count:
        raise _refuse(
            "trainer.devices",
            devices,
            f"at most {count} ({accelerator} devices of this machine) or -1 (all)",
        )


# ----------------------------------------------------------------------------- threads
THREADS_PER_CPU = 4  # oversubscription beyond this only slows a run; far beyond, libgomp crashes


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask; the CPU count without one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return os.cpu_count() or 1


def check_threads(threads: object, cpus: int | None = None) -> None:
    """An explicit ``threads`` is at most `THREADS_PER_CPU` × the CPUs of this machine: more
    threads than CPUs only slow the run down, and the OpenMP runtime aborts the process (SIGSEGV)
    when it cannot create a thread. ``auto`` always passes."""
    cpus = usable_cpus() if cpus is None else cpus
    limit = THREADS_PER_CPU * cpus
    if is_integer(threads) and threads > limit:
        raise _refuse(
            "threads",
            threads,
            f"auto or an integer from 1 to {limit} ({THREADS_PER_CPU} per CPU of the {cpus} "
            "this process may use: more threads than CPUs only slow a run down)",
        )


# ----------------------------------------------------------------------------- sizes
# (input_dim, num_classes, samples in the files: training + test) of the file data sets
FILE_DATA_SIZES = {
    "sgd_dynamics.lightning.MNISTDataModule": (784, 10, 60000, 10000),
    "sgd_dynamics.lightning.FashionMNISTDataModule": (784, 10, 60000, 10000),
    "sgd_dynamics.lightning.CIFAR10DataModule": (3072, 10, 50000, 10000),
}
DENSE_MAX_PARAMS = 3000  # spectral.method=auto: dense up to this P (curvature.thresholds)


@dataclass(frozen=True)
class Estimate:
    """A lower bound of the bytes a run needs, by part, with the key that sizes the largest."""

    parts: dict[str, int]
    key: str

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    def describe(self) -> str:
        shown = ", ".join(f"{name} {_bytes(n)}" for name, n in self.parts.items() if n)
        return f"at least {_bytes(self.total)} ({shown})"


def _bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError  # unreachable


def _dims(config: Mapping[str, object]) -> tuple[int, int, int, int]:
    """(input_dim, num_classes, n_train, n_test) of the configured data set."""
    dataset = config["dataset"]
    target = dataset.get("_target_")
    if target == GAUSS10:
        return (
            int(dataset.get("input_dim", 10)),
            int(dataset.get("num_classes", 10)),
            int(dataset.get("n_train") or 1),
            int(dataset.get("n_test", 1000)),
        )
    input_dim, classes, n_file, n_test = FILE_DATA_SIZES.get(target, (1, 2, 1, 1))
    n_train = dataset.get("n_train")
    return input_dim, classes, min(int(n_train or n_file), n_file), n_test


def check_sizes(config: Mapping[str, object]) -> None:
    """`config_schema.validate_sizes` with the training samples and the parameter count known
    from the configuration (Gauss-10: generated; file data sets: the published files, which
    the readers check again when the run loads them)."""
    from sgd_dynamics.config_schema import validate_sizes

    _, _, n_train, _ = _dims(config)
    validate_sizes(config, n_train=n_train, n_params=parameter_count(config))


def parameter_count(config: Mapping[str, object]) -> int:
    """P of the configured MLP: depth hidden layers of width units between the data set's
    input and its classes, with biases when ``model.bias``."""
    input_dim, classes, _, _ = _dims(config)
    model = config["model"]
    widths = [input_dim, *[int(model.get("width", 1))] * int(model.get("depth", 0)), classes]
    bias = bool(model.get("bias", True))
    return sum(a * b + (b if bias else 0) for a, b in zip(widths, widths[1:], strict=False))


def memory_needed(config: Mapping[str, object]) -> Estimate:
    """A lower bound of the memory a run holds at once: the data set (Gauss-10: float32
    inputs and int64 labels; file data sets: their uint8 images), the network (weights,
    gradients and momentum: 3 × 4P bytes) and one spectral snapshot (dense: the P × P
    matrices H_f and M in the snapshot's dtype; iterative: the n × n Gram matrix of the spectral
    samples)."""
    input_dim, _, n_train, n_test = _dims(config)
    per_sample = input_dim * 4 + 8 if config["dataset"].get("_target_") == GAUSS10 else input_dim
    data = (n_train + n_test) * per_sample
    p = parameter_count(config)
    parts = {"data set": data, "network": 3 * 4 * p, "spectral snapshot": 0}
    spectral = config.get("spectral")
    if isinstance(spectral, Mapping):
        itemsize = 4 if spectral.get("dtype") == "float32" else 8
        method = spectral.get("method", "auto")
        if method == "auto":
            method = "dense" if p <= DENSE_MAX_PARAMS else "iterative"
        n = min(int(spectral.get("n_samples") or n_train), n_train)
        parts["spectral snapshot"] = 2 * p * p * itemsize if method == "dense" else n * n * itemsize
    else:
        method = "off"
    keys = {
        "data set": "dataset.n_train",
        "network": "model.width" if int(config["model"].get("depth", 0)) else "dataset.input_dim",
        "spectral snapshot": "spectral.method" if method == "dense" else "spectral.n_samples",
    }
    return Estimate(parts, keys[max(parts, key=parts.get)])


def available_memory(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """Bytes of memory available to a new process (MemAvailable, bounded by this process's
    cgroup memory limit where one is set); None where neither can be read."""
    limits = []
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                limits.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            limits.append(int(text))
    return min(limits) if limits else None


def check_memory(config: Mapping[str, object], available: int | None = None) -> None:
    """`ConfigError` when `memory_needed` exceeds `available` (default: `available_memory`)."""
    available = available_memory() if available is None else available
    estimate = memory_needed(config)
    if available is not None and estimate.total > available:
        value = _lookup(config, estimate.key)
        raise _refuse(
            estimate.key,
            value,
            f"the run would need {estimate.describe()} of memory and {_bytes(available)} are "
            "available; choose a smaller value",
        )


def _lookup(config: Mapping[str, object], key: str) -> object:
    node: object = config
    for part in key.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def _training_steps(config: Mapping[str, object]) -> int:
    """The last global step: trainer.max_steps, or (max_steps -1) max_epochs × batches per
    epoch (max_epochs null: Lightning's 1000)."""
    trainer = config["trainer"]
    steps = trainer.get("max_steps", -1)
    if is_integer(steps) and steps >= 0:
        return int(steps)
    epochs = trainer.get("max_epochs")
    epochs = 1000 if epochs is None or epochs == -1 else int(epochs)
    _, _, n_train, _ = _dims(config)
    return epochs * max(1, math.ceil(n_train / max(int(config.get("batch_size", 1)), 1)))


LISTED_LOG_POINTS = 100_000  # log-spaced schedules up to this many points are listed exactly


def snapshot_count(config: Mapping[str, object]) -> int:
    """A lower bound of the snapshots the schedule takes (`schedule.snapshot_steps`: step 0,
    the last step, every ``every_n_steps``-th step, ``log_points`` log-spaced steps), without
    listing every step: ``last // every_n_steps + 1``, and the log-spaced steps (distinct after
    rounding) when there are at most `LISTED_LOG_POINTS` of them."""
    spectral = config.get("spectral")
    if not isinstance(spectral, Mapping):
        return 0
    last = _training_steps(config)
    every = spectral.get("every_n_steps")
    points = spectral.get("log_points")
    count = 2 if last > 0 else 1
    if is_integer(every) and every >= 1:
        count = max(count, last // int(every) + 1)
    if is_integer(points) and 2 <= points <= LISTED_LOG_POINTS:
        count = max(count, len(snapshot_steps(last, log_points=int(points))))
    return count


def disk_needed(config: Mapping[str, object]) -> Estimate:
    """A lower bound of the bytes a run writes: each snapshot's arrays in float64 (the top-k
    values of H_f, M, M_b and both ends of H_p and the k cosines; the dense method adds the P
    eigenvalues of H_f, M and H_p) times `snapshot_count`, and the checkpoint (weights and
    momentum: 2 × 4P bytes)."""
    p = parameter_count(config)
    spectral = config.get("spectral")
    per_snapshot = 0
    if isinstance(spectral, Mapping):
        k = int(spectral.get("k", 1))
        method = spectral.get("method", "auto")
        dense = method == "dense" or method == "auto" and p <= DENSE_MAX_PARAMS
        per_snapshot = 8 * (6 * k + (3 * p if dense else 0))
    snapshots = snapshot_count(config) * per_snapshot
    every = _lookup(config, "spectral.every_n_steps")
    key = "spectral.every_n_steps" if every else "trainer.max_steps"
    parts = {"snapshots": snapshots, "checkpoint": 2 * 4 * p}
    return Estimate(parts, key if snapshots >= parts["checkpoint"] else "model.width")


def check_disk(config: Mapping[str, object], folder: str | os.PathLike) -> None:
    """`ConfigError` when `disk_needed` exceeds the free space of the file system that will
    hold `folder` (its deepest existing part)."""
    existing = Path(folder).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        free = shutil.disk_usage(existing).free
    except OSError:
        return
    estimate = disk_needed(config)
    if estimate.total > free:
        key = estimate.key
        raise ConfigError(
            f"{key}={format_value(_lookup(config, key))}: the run would write "
            f"{estimate.describe()} into {folder} and "
            f"{_bytes(free)} are free there; take fewer snapshots (spectral.every_n_steps, "
            "spectral.log_points) or fewer steps"
        )
