"""Generated command lines (hypothesis, `generated_inputs`) against the one contract of
train.py's input: the command line makes a run (`check_command_line` returns), or it is refused
with ONE line, ``error: <message>`` and exit status 2, with nothing created; never another
exception (a traceback), Hydra's own message, or a hang.

In-process through `check_command_line` (what `prepare_command_line` runs before Hydra), a few
hundred cases; the accepted ones are composed again with Hydra's own compose API and must be
the same configuration. Slow: a sample of generated cases as real ``train.py`` subprocesses.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from generated_inputs import command_lines
from hydra import compose, initialize_config_dir
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf
from pipeline_helpers import PYTHON, REPO_ROOT, load_entry_point, train_env

from sgd_dynamics.launch.command_line import check_command_line
from sgd_dynamics.utils import ConfigError

load_entry_point()
FAST = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(autouse=True)
def run_id(monkeypatch):
    monkeypatch.setenv("SGD_DYNAMICS_RUN_ID", "gen000")


def outcome(argv: list[str], cwd: Path) -> str | None:
    """None when `argv` is accepted, else the refusal's message; asserts the contract: only
    `ConfigError`, one line, nothing created in `cwd`."""
    before = sorted(p.name for p in cwd.iterdir())
    try:
        check_command_line(argv, cwd=cwd)
        message = None
    except ConfigError as exc:
        message = str(exc)
        assert message and "\n" not in message and "\r" not in message, message
        assert "Traceback" not in message
    assert sorted(p.name for p in cwd.iterdir()) == before
    return message


def kind(message: str | None) -> str:
    if message is None:
        return "accepted"
    if message.startswith("sweep job"):
        message = message.split("): ", 1)[1]
    for pattern, name in [
        (r"cannot parse the override", "grammar"),
        (r"unrecognized arguments|expected one argument|invalid choice", "flags"),
        (r"no such option of the group", "group option"),
        (r"unknown key", "unknown key"),
        (r"cannot be resolved", "interpolation"),
        (r"the run would", "resources"),
        (r"cannot write|the current folder", "output folder"),
    ]:
        if re.search(pattern, message):
            return name
    return "value"


@FAST
@given(argv=command_lines())
def test_generated_command_lines_are_run_or_refused_in_one_line(argv, tmp_path):
    event(kind(outcome(argv, tmp_path)))


def hydra_compose(argv: list[str]) -> dict | None:
    """The configuration Hydra's own compose API makes of `argv` (no hydra node), or None
    when Hydra refuses it."""
    try:
        with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
            cfg = compose("train", overrides=argv, return_hydra_config=True)
    except Exception:
        return None
    container = OmegaConf.to_container(cfg)
    del container["hydra"]
    return container


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(argv=command_lines(flags=False))
def test_what_is_accepted_is_what_hydra_composes(argv, tmp_path):
    """An accepted command line composes with Hydra's compose API into the configuration that
    was checked; one Hydra refuses is refused."""
    from sgd_dynamics.launch.command_line import _parse, composer

    message = outcome(argv, tmp_path)
    reference = hydra_compose(argv)
    event(kind(message))
    if message is None:
        assert reference is not None, argv
        checked = OmegaConf.to_container(composer().compose(_parse(argv)))
        del checked["hydra"]
        assert checked == reference
    if reference is None:
        assert message is not None, argv


# --------------------------------------------------------------------- through train.py
def run_train_checked(argv: list[str], cwd: Path, timeout: float = 180):
    """``train.py ARGV`` in `cwd` with a short run appended where the command line does not
    set those keys (2 steps, no snapshots, no logger), killed after `timeout` s (a hang fails)."""
    quick = {"trainer.max_steps": "2", "spectral": "off", "logger": "none"}
    keys = {a.lstrip("+~").split("=")[0] for a in argv}
    extra = [
        f"{k}={v}"
        for k, v in quick.items()
        if k not in keys and not any(key.startswith(k + ".") for key in keys)
    ]
    return subprocess.run(
        [PYTHON, str(REPO_ROOT / "train.py"), *argv, *extra],
        cwd=cwd,
        env=train_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(argv=command_lines(), existing=st.booleans())
def test_generated_command_lines_through_train_py(argv, existing, tmp_path_factory):
    """Exit 0 with a completed run, or exit 2 with one ``error:`` line as the last line of
    stderr, no traceback, no output folder created and an existing folder unchanged."""
    cwd = tmp_path_factory.mktemp("gen")
    existing_dir = cwd / "existing"
    if existing:  # a folder with a file in it, as the run folder
        existing_dir.mkdir()
        (existing_dir / "notes.txt").write_text("keep me\n")
        argv = [*argv, f"hydra.run.dir={existing_dir}"]
    before = {str(p.relative_to(cwd)): p.stat().st_mtime_ns for p in cwd.rglob("*")}
    result = run_train_checked(argv, cwd)
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output[-3000:]
    assert result.returncode in (0, 2, 3), output[-3000:]  # 3: a run that diverged
    event(f"exit {result.returncode}")
    if result.returncode == 2:
        errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
        assert len(errors) == 1 and result.stderr.rstrip().endswith(errors[0]), result.stderr
        after = {str(p.relative_to(cwd)): p.stat().st_mtime_ns for p in cwd.rglob("*")}
        assert after == before, (argv, result.stderr)
    else:  # a run: completed, or diverged (lr too large) with its status
        status = [p.read_text() for p in cwd.rglob("status.json")]
        outcome = '"completed"' if result.returncode == 0 else '"diverged"'
        assert status and any(outcome in text for text in status), output[-2000:]
