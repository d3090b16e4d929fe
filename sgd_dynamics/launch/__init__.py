"""The launch layer between Hydra and the library: what ``train.py`` runs.

- `entry`: the command line before Hydra (`prepare_command_line`: resume, DDP children, run
  id, unwritable output folder) and the job (`run_job`: build, train, exit status), the
  OmegaConf resolvers conf/ uses and which errors are the user's (`user_error`);
- `build`: every part of a run instantiated from its node of the resolved config, after
  `targets.check_instantiable` (every ``_target_`` one of the project's classes);
- `resume`: the command line of a resumed run; `resume_guard`: the checkpoint is readable and
  of this model; `overrides`: Hydra's override grammar, the
  rules for overrides replayed from a run folder and for the resolvers a typed one may call;
- `ddp`: Lightning's DDP re-launch of the script, in single runs and in sweeps;
- `sweep_outputs`: the Hydra callback that prints a sweep's folder and report command;
  `job_console`: the Hydra callback that labels a sweep job's console lines;
  `launcher_configs`: the project's launcher configs and Hydra's warning about them;
- `sweep_jobs`: a sweep's jobs from its multirun.yaml (Hydra's basic sweeper expansion);
  `sweep_resume`: ``sgd-dynamics resume SWEEP_DIR``, which completes a sweep that did not end.

It imports Hydra and OmegaConf, and torch and Lightning only inside the functions that need
them (``train.py --help`` stays fast); it never imports the Lightning callbacks of
``callbacks/``, which conf/ names by ``_target_``.
"""

from sgd_dynamics.launch.build import build, set_threads
from sgd_dynamics.launch.entry import prepare_command_line, register_resolvers, run_job, user_error
from sgd_dynamics.launch.launcher_configs import quiet_launcher_schema_warning
from sgd_dynamics.launch.resume import resume_argv

quiet_launcher_schema_warning()  # here: launcher workers import this package before composing

__all__ = [
    "build",
    "prepare_command_line",
    "register_resolvers",
    "resume_argv",
    "run_job",
    "set_threads",
    "user_error",
]
