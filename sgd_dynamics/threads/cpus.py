"""The CPUs this process may really use, read from the machine.

Each reader returns a `CpuLimit` (an upper bound on useful threads and where it comes from) or
None where the source sets no bound or cannot be read. The paths and the environment are
parameters, so the readers can be tried on faked files.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

SYSFS_CPUS = Path("/sys/devices/system/cpu")
PROC_CGROUP = Path("/proc/self/cgroup")
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class CpuLimit:
    """At most `cpus` threads are useful to this process; `reason` says why (for the log)."""

    cpus: int
    reason: str


def physical_cores(cpus: Collection[int], sysfs: Path = SYSFS_CPUS) -> int | None:
    """Number of distinct physical cores (package id, core id) among the logical CPUs `cpus`,
    from sysfs topology files; None if any of them cannot be read."""
    cores = set()
    for cpu in cpus:
        topology = sysfs / f"cpu{cpu}" / "topology"
        try:
            package = int((topology / "physical_package_id").read_text())
            core = int((topology / "core_id").read_text())
        except (OSError, ValueError):
            return None
        cores.add((package, core))
    return len(cores)


def affinity_limit(
    mask: Collection[int] | None = None, sysfs: Path = SYSFS_CPUS
) -> CpuLimit | None:
    """The CPUs in the affinity mask (`mask`; None: this process's, where the OS has one),
    counted as physical cores when hyper-threads share them (two threads on one core do not
    speed up dense arithmetic)."""
    if mask is None:
        if not hasattr(os, "sched_getaffinity"):
            return None
        mask = os.sched_getaffinity(0)
    if not mask:
        return None
    cores = physical_cores(mask, sysfs)
    if cores is not None and cores < len(mask):
        return CpuLimit(cores, f"{len(mask)} CPUs in affinity mask, {cores} physical cores")
    return CpuLimit(len(mask), f"{len(mask)} CPUs in affinity mask")


def _own_and_parent_dirs(mount: Path, cgroup_path: str) -> list[Path]:
    """The cgroup folder of `cgroup_path` under `mount` and its ancestors up to `mount`, those
    that exist (inside a container the process's path may not be visible: only `mount` is)."""
    own = mount / cgroup_path.strip("/")
    dirs = [own, *own.parents]
    return [d for d in dirs[: dirs.index(mount) + 1] if d.is_dir()]


def _v2_quota(directory: Path) -> float | None:
    """CPUs allowed by `cpu.max` ("QUOTA PERIOD" or "max PERIOD") in a cgroup v2 folder."""
    try:
        quota, period = (directory / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _v1_quota(directory: Path) -> float | None:
    """CPUs allowed by cpu.cfs_quota_us / cpu.cfs_period_us in a cgroup v1 folder (-1: none)."""
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def cgroup_limit(proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT) -> CpuLimit | None:
    """The CPU quota of this process's cgroup (v2 `cpu.max`, v1 `cpu.cfs_quota_us`), the
    smallest along its ancestors, rounded down to whole CPUs (at least 1); None: no quota."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            quotas += [_v2_quota(d) for d in _own_and_parent_dirs(root, path)]
        elif "cpu" in controllers.split(","):
            mounts = [root / controllers, root / "cpu", root / "cpu,cpuacct"]
            mount = next((m for m in mounts if m.is_dir()), None)
            if mount is not None:
                quotas += [_v1_quota(d) for d in _own_and_parent_dirs(mount, path)]
    quotas = [q for q in quotas if q is not None]
    if not quotas:
        return None
    quota = min(quotas)
    return CpuLimit(max(1, math.floor(quota)), f"CPU quota of {quota:g} CPUs (cgroup)")


def _positive_int(text: str) -> int | None:
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value >= 1 else None


def environment_limits(env: Mapping[str, str]) -> list[CpuLimit]:
    """Bounds set in the environment: SLURM_CPUS_PER_TASK (the CPUs SLURM gave each task) and
    OMP_NUM_THREADS (a limit the user or a launcher such as joblib's set; its first entry).
    Values that are not integers >= 1 set no bound."""
    limits = []
    for name in ("SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS"):
        value = _positive_int(env.get(name, "").split(",")[0].strip())
        if value is not None:
            limits.append(CpuLimit(value, f"{name}={value}"))
    return limits


def machine_limits(env: Mapping[str, str] | None = None) -> list[CpuLimit]:
    """Every bound this machine and environment put on the process's threads: affinity mask,
    cgroup quota, SLURM_CPUS_PER_TASK, OMP_NUM_THREADS; `os.cpu_count()` if none is found."""
    env = os.environ if env is None else env
    limits = [x for x in (affinity_limit(), cgroup_limit()) if x is not None]
    limits += environment_limits(env)
    if not limits:
        count = os.cpu_count() or 1
        limits.append(CpuLimit(count, f"{count} CPUs"))
    return limits
