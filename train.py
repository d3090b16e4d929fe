"""Train a classifier with SGD and record the run: ``python train.py [key=value ...]``.

Hydra composes conf/train.yaml with the overrides; `sgd_dynamics.launch` builds every part of
the run from it with `hydra.utils.instantiate` and trains it (`sgd_dynamics.launch.run_job`),
and holds the resume, DDP and launcher workarounds. Bad input (a value out of range, missing
data files) is printed as ``error: ...`` with exit status 2.
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning (libgomp reads this once, when torch loads it):
# spinning threads take the cores other processes need when the machine is shared.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import sys

if __name__ == "__main__":  # a signal while torch and Lightning load: one line, no traceback
    from sgd_dynamics.lifecycle.stop import exit_on_signal_during_setup

    exit_on_signal_during_setup()

import hydra
from omegaconf import DictConfig

# Light imports only: torch and Lightning load inside `run_job`, so `--help` is fast.
from sgd_dynamics.launch import prepare_command_line, register_resolvers, run_job


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    """One job of Hydra's: build the run from `cfg` and train it."""
    run_job(cfg, script=__file__)


register_resolvers()

if __name__ == "__main__":
    sys.argv[1:] = prepare_command_line(sys.argv[1:])  # exits with status 2 on bad input
    main()
