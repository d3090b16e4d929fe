"""The run folder, in one place: its files written atomically and JSON in and out (`files`),
the spectral snapshots and a run's history (`snapshots`), ``status.json`` (`status`), the
record Hydra keeps in ``.hydra/`` (`hydra_record`), and where the folder lies and what it is
called (`location`).

The package imports nothing, so that the launch layer can ask where a run folder lies before
anything heavy is imported; import the submodules.
"""
