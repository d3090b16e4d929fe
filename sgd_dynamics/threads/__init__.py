"""Threads: how many a run uses (the policy), read from the CPUs the process may really use, the
processes sharing them and the problem's size, and the pools' sizes set accordingly."""

from sgd_dynamics.threads.cpus import CpuLimit, machine_limits
from sgd_dynamics.threads.policy import (
    ThreadChoice,
    Work,
    choose_threads,
    parse_threads,
    threads_for_run,
)
from sgd_dynamics.threads.pools import apply_threads, limit_threads

__all__ = [
    "CpuLimit",
    "ThreadChoice",
    "Work",
    "apply_threads",
    "choose_threads",
    "limit_threads",
    "machine_limits",
    "parse_threads",
    "threads_for_run",
]
