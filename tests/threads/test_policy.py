"""The thread policy on faked inputs: the smallest limit, divided among the processes sharing
the CPUs (joblib workers, DDP ranks), capped by the problem's size; explicit settings; errors."""

from __future__ import annotations

import pytest

from sgd_dynamics.threads import (
    CpuLimit,
    ThreadChoice,
    Work,
    choose_threads,
    machine_limits,
    threads_for_run,
)
from sgd_dynamics.threads.policy import (
    WORK_PER_THREAD,
    ddp_ranks_on_machine,
    joblib_workers,
    launcher_limits,
    parse_threads,
    sharing,
)
from sgd_dynamics.utils import SetupError

JOBLIB = {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"}
SUBMITIT_LOCAL = {
    "_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"
}
SUBMITIT_SLURM = {
    "_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
}
BIG = Work(parameters=1_000_000, samples=10_000)  # 1e10 multiply-adds: no workload cap

AFFINITY_8 = CpuLimit(8, "8 CPUs in affinity mask")


def test_smallest_limit_wins_and_is_named():
    limits = [AFFINITY_8, CpuLimit(3, "CPU quota of 3.5 CPUs (cgroup)"), CpuLimit(6, "X")]
    choice = choose_threads("auto", limits, work=BIG)
    assert choice == ThreadChoice(3, ("CPU quota of 3.5 CPUs (cgroup)",))
    assert str(choice) == "threads: 3 (CPU quota of 3.5 CPUs (cgroup))"


@pytest.mark.parametrize(
    ("cpus", "n_jobs", "expected"),
    [(2, 2, 1), (8, 3, 2), (8, 2, 4), (1, 4, 1), (8, -1, 1), (8, -3, 1), (8, -7, 4), (8, 1, 8)],
)
def test_joblib_workers_share_the_cpus(cpus, n_jobs, expected):
    # joblib: n_jobs < 0 means cpus + 1 + n_jobs workers; each gets cpus // workers, at least 1
    launcher = {**JOBLIB, "n_jobs": n_jobs}
    shares = sharing(launcher, None, cpus, env={})
    choice = choose_threads("auto", [CpuLimit(cpus, f"{cpus} CPUs")], shares, BIG)
    assert choice.threads == expected


def test_start_up_line_names_the_joblib_workers():
    launcher = {**JOBLIB, "n_jobs": 2}
    shares = sharing(launcher, None, 2, env={})
    choice = choose_threads("auto", [CpuLimit(2, "2 CPUs in affinity mask")], shares, BIG)
    assert str(choice) == "threads: 1 (2 CPUs in affinity mask, 2 joblib workers)"


def test_joblib_n_jobs_rule():
    assert [joblib_workers(n, 8) for n in (1, 4, -1, -2, -100, None, 0)] == [1, 4, 8, 7, 1, 1, 1]


def test_ddp_ranks_started_by_lightning_share_the_machine():
    trainer = {"strategy": "ddp", "devices": 4}
    assert ddp_ranks_on_machine(trainer, {}) == 4
    shares = sharing(None, trainer, 8, env={})
    assert shares == [(4, "4 DDP ranks on this machine")]
    assert choose_threads("auto", [AFFINITY_8], shares, BIG).threads == 2
    # devices as a list of ids or a string
    assert ddp_ranks_on_machine({"strategy": "ddp_spawn", "devices": [0, 1, 2]}, {}) == 3
    assert ddp_ranks_on_machine({"strategy": "ddp", "devices": "0,1"}, {}) == 2
    assert ddp_ranks_on_machine({"strategy": "ddp", "devices": "3"}, {}) == 3


def test_no_ddp_or_slurm_tasks_do_not_divide():
    assert ddp_ranks_on_machine({"strategy": "auto", "devices": 4}, {}) == 1
    assert ddp_ranks_on_machine(None, {}) == 1
    # srun gave each rank SLURM_CPUS_PER_TASK CPUs of its own: no further division
    assert (
        ddp_ranks_on_machine({"strategy": "ddp", "devices": 4}, {"SLURM_CPUS_PER_TASK": "4"}) == 1
    )


def test_torchrun_local_world_size():
    assert ddp_ranks_on_machine({"strategy": "ddp", "devices": 1}, {"LOCAL_WORLD_SIZE": "3"}) == 3


def test_submitit_local_cpus_per_task_is_a_limit():
    assert launcher_limits({**SUBMITIT_LOCAL, "cpus_per_task": 2}) == [
        CpuLimit(2, "submitit_local cpus_per_task=2")
    ]
    assert launcher_limits({**SUBMITIT_SLURM, "cpus_per_task": 2}) == []  # SLURM sets its env
    assert launcher_limits(None) == []


def test_small_problem_runs_on_one_thread():
    small = Work(parameters=1002, samples=100)  # the default Gauss-10 run
    choice = choose_threads("auto", [AFFINITY_8], work=small)
    assert choice == ThreadChoice(
        1, ("8 CPUs in affinity mask", "small problem: 1,002 parameters x 100 samples")
    )


def test_medium_problem_gets_one_thread_per_unit_of_work():
    work = Work(parameters=WORK_PER_THREAD, samples=3)
    assert choose_threads("auto", [AFFINITY_8], work=work).threads == 3
    assert choose_threads("auto", [CpuLimit(2, "2 CPUs")], work=work).threads == 2


def test_explicit_setting_is_used_as_given():
    limits = [CpuLimit(2, "2 CPUs in affinity mask")]
    shares = [(2, "2 joblib workers")]
    tiny = Work(10, 10)
    assert choose_threads(1, limits, shares, tiny) == ThreadChoice(1, ("threads=1 in the config",))
    choice = choose_threads(4, limits, shares, tiny)
    assert choice.threads == 4
    assert str(choice) == (
        "threads: 4 (threads=4 in the config, above the limit: 2 CPUs in affinity mask)"
    )


@pytest.mark.parametrize("bad", [0, -2, 1.5, "4", "AUTO", "", None, True, [2]])
def test_invalid_settings_are_refused_clearly(bad):
    with pytest.raises(SetupError) as error:
        parse_threads(bad)
    assert str(error.value) == f"threads must be 'auto' or an integer >= 1, got {bad!r}"
    with pytest.raises(SetupError):
        threads_for_run(bad)


def test_threads_for_run_reads_the_environment():
    env = {"OMP_NUM_THREADS": "1"}
    choice = threads_for_run("auto", launcher={**JOBLIB, "n_jobs": 2}, work=BIG, env=env)
    assert str(choice) == "threads: 1 (OMP_NUM_THREADS=1, 2 joblib workers)"
    choice = threads_for_run("auto", launcher={**SUBMITIT_LOCAL, "cpus_per_task": 1}, env={})
    assert choice.threads == 1
    assert threads_for_run(3, env={}).threads == 3
    # joblib's n_jobs=-1 counts the machine's CPUs, not the OMP_NUM_THREADS=1 joblib gives a worker
    choice = threads_for_run("auto", launcher={**JOBLIB, "n_jobs": -1}, work=BIG, env=env)
    workers = min(limit.cpus for limit in machine_limits({}))
    assert choice.reasons[1:] == ((f"{workers} joblib workers",) if workers > 1 else ())
