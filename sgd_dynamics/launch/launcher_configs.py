"""conf/hydra/launcher/{joblib,submitit_local,submitit_slurm}.yaml replace the launcher plugins'
own configs of the same names (same fields, the project's defaults), so that
``hydra/launcher=joblib`` gives the project's settings. Hydra merges such a file over the
plugin's structured config of the same name ("automatic schema matching") and warns at every
composition that this is deprecated: in a joblib sweep the launching process composes three
times and each worker once more, five identical warnings. Naming the files differently would
change the documented ``hydra/launcher=joblib``, so the warning is ignored, for these three
files only (`quiet_launcher_schema_warning`, run when `sgd_dynamics.launch` is imported: by
train.py, and by each launcher worker when it unpickles the job function, before it composes
the job's config)."""

from __future__ import annotations

import warnings

OWN_LAUNCHER_CONFIGS = ("joblib", "submitit_local", "submitit_slurm")


def quiet_launcher_schema_warning() -> None:
    """Ignore Hydra's schema-matching deprecation warning for the project's launcher configs."""
    names = "|".join(OWN_LAUNCHER_CONFIGS)
    warnings.filterwarnings(
        "ignore",
        message=rf"\s*'hydra/launcher/({names})' is validated against ConfigStore schema",
        category=UserWarning,
    )
