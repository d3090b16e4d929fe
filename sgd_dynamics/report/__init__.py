"""The report of a sweep, without Lightning: its analysis (`analysis`: jobs, groups, quantile
bands, CSV tables; `report` is the entry point), the records it returns (`records`) and its
figures (`figures`). ``sgd-dynamics report SWEEP_DIR`` runs all three; a report as a wandb run
is `sgd_dynamics.wandb_io.report_run`.
"""

from sgd_dynamics.report.analysis import DEAD_REASON, report

__all__ = ["DEAD_REASON", "report"]
