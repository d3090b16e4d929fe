"""The machine readers of the thread policy on faked inputs: affinity masks over a fake sysfs
topology, cgroup v1/v2 files in a temporary folder, environment variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from sgd_dynamics.threads.cpus import (
    CpuLimit,
    affinity_limit,
    cgroup_limit,
    environment_limits,
    physical_cores,
)


def fake_topology(sysfs: Path, cores: dict[int, tuple[int, int]]) -> Path:
    """cpuN/topology/{physical_package_id,core_id} for each logical CPU N -> (package, core)."""
    for cpu, (package, core) in cores.items():
        topology = sysfs / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True)
        (topology / "physical_package_id").write_text(f"{package}\n")
        (topology / "core_id").write_text(f"{core}\n")
    return sysfs


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# --- affinity mask and physical cores ---------------------------------------------------------


def test_hyperthreads_count_as_their_physical_cores(tmp_path):
    # 8 logical CPUs: 2 packages x 2 cores x 2 hyper-threads; core ids repeat across packages
    cores = {cpu: (cpu // 4, (cpu // 2) % 2) for cpu in range(8)}
    sysfs = fake_topology(tmp_path, cores)
    assert physical_cores(range(8), sysfs) == 4
    assert physical_cores([0, 1], sysfs) == 1  # two threads of one core
    assert physical_cores([0, 4], sysfs) == 2  # same core id, different packages
    limit = affinity_limit({0, 1, 2, 3, 4, 5}, sysfs)
    assert limit == CpuLimit(3, "6 CPUs in affinity mask, 3 physical cores")


def test_affinity_without_hyperthreads_counts_cpus(tmp_path):
    sysfs = fake_topology(tmp_path, {cpu: (0, cpu) for cpu in range(4)})
    assert affinity_limit({1, 3}, sysfs) == CpuLimit(2, "2 CPUs in affinity mask")


def test_unreadable_topology_falls_back_to_logical_cpus(tmp_path):
    sysfs = fake_topology(tmp_path, {0: (0, 0)})  # cpu1 has no topology files
    assert physical_cores([0, 1], sysfs) is None
    assert affinity_limit({0, 1}, sysfs) == CpuLimit(2, "2 CPUs in affinity mask")


def test_own_affinity_mask_is_read():
    import os

    limit = affinity_limit()
    assert limit is not None and 1 <= limit.cpus <= len(os.sched_getaffinity(0))


# --- cgroup quotas ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "own, files, expected",
    [  # the quota of the process's own folder; the smallest quota along its ancestors
        (
            "user.slice/job",
            {"user.slice/job": "250000 100000", "user.slice": "max 100000"},
            CpuLimit(2, "CPU quota of 2.5 CPUs (cgroup)"),
        ),
        (
            "a/b",
            {"a/b": "max 100000", "a": "150000 100000"},
            CpuLimit(1, "CPU quota of 1.5 CPUs (cgroup)"),
        ),
    ],
)
def test_cgroup_v2_quota(tmp_path, own, files, expected):
    proc = tmp_path / "cgroup"
    proc.write_text(f"0::/{own}\n")
    root = tmp_path / "fs"
    for folder, quota in files.items():
        write(root / folder / "cpu.max", f"{quota}\n")
    assert cgroup_limit(proc, root) == expected


def test_cgroup_quota_below_one_cpu_gives_one_thread(tmp_path):
    proc = tmp_path / "cgroup"
    proc.write_text("0::/\n")
    write(tmp_path / "fs" / "cpu.max", "50000 100000\n")
    assert cgroup_limit(proc, tmp_path / "fs").cpus == 1


def test_cgroup_v2_without_quota(tmp_path):
    proc = tmp_path / "cgroup"
    proc.write_text("0::/job\n")
    write(tmp_path / "fs" / "job" / "cpu.max", "max 100000\n")
    assert cgroup_limit(proc, tmp_path / "fs") is None


def test_cgroup_path_not_visible_in_container_uses_the_mount(tmp_path):
    # inside a container the process's host path is not under the mount: the mount is its cgroup
    proc = tmp_path / "cgroup"
    proc.write_text("0::/docker/0123abcd\n")
    write(tmp_path / "fs" / "cpu.max", "300000 100000\n")
    assert cgroup_limit(proc, tmp_path / "fs") == CpuLimit(3, "CPU quota of 3 CPUs (cgroup)")


def test_cgroup_v1_cfs_quota(tmp_path):
    proc = tmp_path / "cgroup"
    proc.write_text("5:memory:/slurm/job7\n4:cpu,cpuacct:/slurm/job7\n0::/\n")
    job = tmp_path / "fs" / "cpu,cpuacct" / "slurm" / "job7"
    write(job / "cpu.cfs_quota_us", "400000\n")
    write(job / "cpu.cfs_period_us", "100000\n")
    write(job.parent / "cpu.cfs_quota_us", "-1\n")
    write(job.parent / "cpu.cfs_period_us", "100000\n")
    assert cgroup_limit(proc, tmp_path / "fs") == CpuLimit(4, "CPU quota of 4 CPUs (cgroup)")


def test_cgroup_v1_unlimited_and_hybrid_v2_root(tmp_path):
    # the hybrid layout of this kind of machine: v1 cpu at /, v2 mounted elsewhere, no quota
    proc = tmp_path / "cgroup"
    proc.write_text("1:cpu:/\n0::/\n")
    write(tmp_path / "fs" / "cpu" / "cpu.cfs_quota_us", "-1\n")
    write(tmp_path / "fs" / "cpu" / "cpu.cfs_period_us", "100000\n")
    assert cgroup_limit(proc, tmp_path / "fs") is None


def test_no_cgroup_file(tmp_path):
    assert cgroup_limit(tmp_path / "absent", tmp_path) is None


# --- environment ------------------------------------------------------------------------------


def test_slurm_and_omp_variables():
    env = {"SLURM_CPUS_PER_TASK": "3", "OMP_NUM_THREADS": "4,2"}
    assert environment_limits(env) == [
        CpuLimit(3, "SLURM_CPUS_PER_TASK=3"),
        CpuLimit(4, "OMP_NUM_THREADS=4"),
    ]


def test_malformed_variables_set_no_bound():
    env = {"SLURM_CPUS_PER_TASK": "two", "OMP_NUM_THREADS": "0"}
    assert environment_limits(env) == []
    assert environment_limits({}) == []
