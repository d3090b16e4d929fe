"""A run's life cycle without Lightning: graceful stops on signals, divergence, the run's
outcome (status, message, exit code), the run folder's lock and fault injection. (status.json is
`sgd_dynamics.run_folder.status`; the checkpoint callback is `callbacks.last_checkpoint`; the
Lightning side of the life cycle is `sgd_dynamics.lightning`.)

The submodules are imported one by one (this package imports nothing), so that train.py can
install its set-up signal handler before torch and Lightning are imported.
"""
