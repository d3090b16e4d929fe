"""The project's error class for bad user input."""


class SetupError(ValueError):
    """Bad user input found before training: a config value out of range, missing data files.

    The message says what was wrong and what is accepted. `train.py` prints it as
    ``error: <message>`` and exits with status 2, without a traceback. It is a `ValueError`, so
    notebook code can catch either.
    """


class ConfigError(SetupError):
    """A configuration value that is not accepted, found before anything is built or written:
    the message is ``<key>=<value>: <what is accepted>`` (or names the file that cannot be
    used), and the run folder is left as Hydra made it (no status.json)."""
