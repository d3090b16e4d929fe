"""A run's life cycle: checkpoints that survive kills, graceful stops on signals, divergence,
the run's outcome (status, message, exit code), and the epoch count shared by every record.

The submodules are imported one by one (this package imports nothing), so that train.py can
install its set-up signal handler before torch and Lightning are imported.
"""
