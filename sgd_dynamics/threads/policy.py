"""The thread policy: how many intra-op threads a run uses.

With ``threads=auto`` the number is

    min(limits) // (processes sharing those CPUs), at least 1,

then at most one thread per `WORK_PER_THREAD` multiply-adds of a pass over the samples. The
limits are the machine's (affinity mask, cgroup quota, SLURM_CPUS_PER_TASK, OMP_NUM_THREADS;
see `cpus`) and, for `hydra/launcher=submitit_local`, the job's `cpus_per_task`. The processes
sharing the CPUs are the joblib launcher's workers (`n_jobs`) and the DDP ranks Lightning starts
on this machine (`trainer.devices`; not under SLURM with SLURM_CPUS_PER_TASK, where each task
has its own CPUs). The last cap is the workload's: small dense problems run as fast on one
thread, and spare threads only wait for cores when the machine is busy. An integer `threads`
is used as given.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sgd_dynamics.threads.cpus import CpuLimit, environment_limits, machine_limits
from sgd_dynamics.utils.errors import SetupError
from sgd_dynamics.utils.validate import is_integer

AUTO = "auto"
# Multiply-adds per thread below which another thread does not pay (a heuristic, not tuned by
# measurement): a pass of ~4M multiply-adds takes well under a millisecond on one core, the scale
# of a thread team's wake-up and synchronisation costs summed over the pass's small operations.
# The default Gauss-10 run (1,002 parameters x 100 samples) is far below it; the MNIST-sized MLP
# over 2,000 spectral samples (1.8e8) is far above.
WORK_PER_THREAD = 1 << 22

JOBLIB_LAUNCHER = "JoblibLauncher"
SUBMITIT_LOCAL_LAUNCHER = "submitit_launcher.LocalLauncher"


@dataclass(frozen=True)
class Work:
    """The size of the run's largest repeated computation: a pass of a network with
    `parameters` parameters over `samples` samples (about parameters × samples multiply-adds)."""

    parameters: int
    samples: int

    @property
    def multiply_adds(self) -> int:
        return self.parameters * self.samples

    def __str__(self) -> str:
        return f"{self.parameters:,} parameters x {self.samples:,} samples"


@dataclass(frozen=True)
class ThreadChoice:
    """The number of intra-op threads and the reasons, printed at start-up as
    ``threads: 1 (2 CPUs in affinity mask, 2 joblib workers)``."""

    threads: int
    reasons: tuple[str, ...]

    def __str__(self) -> str:
        return f"threads: {self.threads} ({', '.join(self.reasons)})"


def parse_threads(value: object) -> int | None:
    """The `threads` setting: None for ``"auto"``, else an int >= 1 (`SetupError` otherwise)."""
    if isinstance(value, str) and value == AUTO:
        return None
    if not is_integer(value) or value < 1:
        raise SetupError(f"threads must be 'auto' or an integer >= 1, got {value!r}")
    return int(value)


def _count_devices(devices: object) -> int:
    """Processes Lightning starts per machine for `trainer.devices`: an int, a string of an
    int or of comma-separated device ids, or a list of ids; 1 for anything else ("auto")."""
    if isinstance(devices, bool):
        return 1
    if isinstance(devices, int):
        return max(devices, 1)
    if isinstance(devices, str):
        text = devices.strip()
        if text.isdigit():
            return max(int(text), 1)
        ids = [p for p in text.split(",") if p.strip().isdigit()]
        return max(len(ids), 1)
    if isinstance(devices, Sequence):
        return max(len(devices), 1)
    return 1


def ddp_ranks_on_machine(trainer: Mapping | None, env: Mapping[str, str]) -> int:
    """DDP processes on this machine that share its CPUs: LOCAL_WORLD_SIZE where a launcher
    (torchrun) sets it; `trainer.devices` when Lightning starts the ranks itself (strategy
    ddp*); 1 under SLURM with SLURM_CPUS_PER_TASK (each task has its own CPUs) or without DDP."""
    local = env.get("LOCAL_WORLD_SIZE", "")
    if local.isdigit() and int(local) >= 1:
        return int(local)
    trainer = trainer or {}
    if not str(trainer.get("strategy", "auto")).startswith("ddp"):
        return 1
    if "SLURM_CPUS_PER_TASK" in env:
        return 1
    return _count_devices(trainer.get("devices", 1))


def joblib_workers(n_jobs: object, cpus: int) -> int:
    """Worker processes of the joblib launcher for `n_jobs` (joblib's rule: negative n means
    cpus + 1 + n, at least 1; None means 1)."""
    if not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or n_jobs == 0:
        return 1
    return n_jobs if n_jobs > 0 else max(cpus + 1 + n_jobs, 1)


def launcher_limits(launcher: Mapping | None) -> list[CpuLimit]:
    """The CPUs a launcher's job is declared to have: submitit_local's `cpus_per_task` (its
    processes are not confined to them, so the policy keeps to them itself)."""
    launcher = launcher or {}
    cpus = launcher.get("cpus_per_task")
    if str(launcher.get("_target_", "")).endswith(SUBMITIT_LOCAL_LAUNCHER) and isinstance(
        cpus, int
    ):
        if cpus >= 1:
            return [CpuLimit(cpus, f"submitit_local cpus_per_task={cpus}")]
    return []


def sharing(
    launcher: Mapping | None, trainer: Mapping | None, cpus: int, env: Mapping[str, str]
) -> list[tuple[int, str]]:
    """The processes on this machine that share its CPUs, as (count, reason) pairs."""
    shares = []
    launcher = launcher or {}
    if str(launcher.get("_target_", "")).endswith(JOBLIB_LAUNCHER):
        workers = joblib_workers(launcher.get("n_jobs"), cpus)
        shares.append((workers, f"{workers} joblib workers"))
    ranks = ddp_ranks_on_machine(trainer, env)
    shares.append((ranks, f"{ranks} DDP ranks on this machine"))
    return [(count, reason) for count, reason in shares if count > 1]


def choose_threads(
    setting: object,
    limits: Sequence[CpuLimit],
    shares: Sequence[tuple[int, str]] = (),
    work: Work | None = None,
) -> ThreadChoice:
    """The policy (see the module's docstring) on given inputs. `limits` must not be empty."""
    explicit = parse_threads(setting)
    bound = min(limits, key=lambda limit: limit.cpus)
    if explicit is not None:
        reasons = [f"threads={explicit} in the config"]
        if explicit > bound.cpus:
            reasons.append(f"above the limit: {bound.reason}")
        return ThreadChoice(explicit, tuple(reasons))
    processes = 1
    for count, _ in shares:
        processes *= count
    threads = max(1, bound.cpus // processes)
    reasons = [bound.reason, *(reason for _, reason in shares)]
    if work is not None:
        useful = max(1, work.multiply_adds // WORK_PER_THREAD)
        if useful < threads:
            threads = useful
            reasons.append(f"small problem: {work}")
    return ThreadChoice(threads, tuple(reasons))


def threads_for_run(
    setting: object,
    *,
    trainer: Mapping | None = None,
    launcher: Mapping | None = None,
    work: Work | None = None,
    env: Mapping[str, str] | None = None,
) -> ThreadChoice:
    """The policy for a run on this machine: `trainer` and `launcher` are the run's trainer
    and Hydra launcher configs (None outside a Hydra job), `work` the run's size."""
    env = os.environ if env is None else env
    parse_threads(setting)  # a bad value fails before the machine is read
    machine = machine_limits({})  # the CPUs themselves (joblib counts its workers from them)
    limits = [*machine, *environment_limits(env), *launcher_limits(launcher)]
    cpus = min(limit.cpus for limit in machine)
    return choose_threads(setting, limits, sharing(launcher, trainer, cpus, env), work)
