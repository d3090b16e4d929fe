"""The ``sgd-dynamics`` command's options are checked like the configuration: a value out of
range, not a number, nan, or an output folder that cannot hold files is refused with ONE line
``sgd-dynamics <command>: error: argument --<option>: <what is accepted>, got <value>`` and exit
status 2, before any folder is read; generated values (hypothesis) agree with an independent
statement of each option's range."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgd_dynamics.cli import main

# ruff: noqa: E501  (the table of refusals reads best one per line)


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """(exit status, stderr) of ``sgd-dynamics ARGV`` in-process."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


def one_line_error(code: int, err: str) -> str:
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


PLOT, REPORT = "sgd-dynamics plot: error: ", "sgd-dynamics report: error: "
INTEGER, FRACTION = "an integer >= {}, got '{}'", "a number in [0, 1], got '{}'"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["plot", "--k", "-3", "R"], PLOT + "argument --k: " + INTEGER.format(1, -3)),
        (["plot", "--k", "0", "R"], PLOT + "argument --k: " + INTEGER.format(1, 0)),
        (["plot", "--steps", "-1", "--", "R"], PLOT + "argument --steps: " + INTEGER.format(0, -1)),
        (["report", "--threshold", "nan", "S"], REPORT + "argument --threshold: " + FRACTION.format("nan")),
        (["report", "--threshold", "1.5", "S"], REPORT + "argument --threshold: " + FRACTION.format(1.5)),
        (["report", "--top", "0", "S"], REPORT + "argument --top: " + INTEGER.format(1, 0)),
        (["report", "--quantiles", "inf", "--", "S"], REPORT + "argument --quantiles: " + FRACTION.format("inf")),
        (["plot"], PLOT + "the following arguments are required: RUN_DIR"),
        (["frob"], "sgd-dynamics: error: argument COMMAND: invalid choice: 'frob'"),
    ],
)  # fmt: skip
def test_bad_options_are_refused_in_one_line(argv, message, capsys):
    assert one_line_error(*run_cli(argv, capsys)).startswith(message)


def test_output_folders_that_cannot_take_files_are_refused(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "file").write_text("x")
    for out, reason in [
        (tmp_path / "file", f"{tmp_path / 'file'} is not a folder"),
        (tmp_path / "file" / "figures", f"{tmp_path / 'file'} is not a folder"),
        ("/proc/figures", "/proc is on a file system that stores no files"),
    ]:
        line = one_line_error(*run_cli(["plot", "--out", str(out), str(run)], capsys))
        assert line.startswith("sgd-dynamics plot: error: argument --out: cannot write ")
        assert line.endswith(reason)
    assert (tmp_path / "file").read_text() == "x"


def test_folders_that_are_not_runs_or_sweeps_are_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    for command in ("plot", "report"):
        for folder in (tmp_path / "missing", tmp_path / "file", tmp_path):
            line = one_line_error(*run_cli([command, str(folder)], capsys))
            assert line.startswith(f"sgd-dynamics {command}: error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def accepted_integer(text: str, low: int) -> bool:
    try:
        return int(text) >= low
    except ValueError:
        return False


def accepted_fraction(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and 0 <= value <= 1


OPTIONS = [  # (command, option, the independent statement of what it accepts)
    ("plot", "--k", lambda t: accepted_integer(t, 1)),
    ("plot", "--steps", lambda t: accepted_integer(t, 0)),
    ("report", "--top", lambda t: accepted_integer(t, 1)),
    ("report", "--threshold", accepted_fraction),
    ("report", "--quantiles", accepted_fraction),
]
texts = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "0x10", "1_000", " 3", "", "é", "0.5", "1"]),
    st.text(alphabet="0123456789.-+eE", min_size=1, max_size=6),
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(option=st.sampled_from(OPTIONS), text=texts)
def test_generated_option_values(option, text, tmp_path, capsys):
    """Refused with the option's one line exactly when the independent statement refuses the
    value; an accepted value gets as far as the folder (an empty one: not a run or sweep)."""
    command, name, accepts = option
    if text.startswith("-") and not accepted_integer(text, -(10**9)) and text != "-inf":
        text = f" {text}"  # argparse reads a leading '-' that is not a number as an option
    code, err = run_cli([command, f"{name}={text}", str(tmp_path)], capsys)
    line = one_line_error(code, err)
    refused = line.startswith(f"sgd-dynamics {command}: error: argument {name}: ")
    assert refused == (not accepts(text)), (text, line)
