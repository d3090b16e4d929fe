"""The project's error class for bad user input."""


class SetupError(ValueError):
    """Bad user input found before training: a config value out of range, missing data files.

    The message says what was wrong and what is accepted. `train.py` prints it as
    ``error: <message>`` and exits with status 2, without a traceback. It is a `ValueError`, so
    notebook code can catch either.
    """
