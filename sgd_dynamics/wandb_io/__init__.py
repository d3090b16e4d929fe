"""Weights & Biases, in one place: what a run sends (`run_logging`), the WANDB_* environment
(`environment`), reading an offline run back (`offline`) and a sweep report as a wandb run
(`report_run`).

The package imports nothing; wandb itself is imported only where a record is made or read.
(Named ``wandb_io``, not ``wandb``, so that no import can mistake it for the wandb library.)
"""
