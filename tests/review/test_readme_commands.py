"""The README's shell commands as printed: `.venv/bin/` paths throughout, every `train.py`
command line composes with Hydra, `plot --steps` names steps a default run has, `--help` works."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser

from sgd_dynamics.schedule import snapshot_steps

REPO_ROOT = Path(__file__).resolve().parents[2]
README = (REPO_ROOT / "README.md").read_text()
PLACEHOLDERS = {"<partition>": "debug", "${SLURM_JOB_ID}": "123", "<date>_<time>_<id>": "x"}


def command_lines() -> list[str]:
    """Each command of the ```bash blocks: continuation lines joined, comments dropped."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" # ")[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def test_programs_are_called_from_the_projects_environment():
    programs = ("python", "pip", "sgd-dynamics", "wandb")
    for line in command_lines():
        for token in line.split():
            if os.path.basename(token) in programs:
                assert token == f".venv/bin/{os.path.basename(token)}", line


def train_commands() -> list[list[str]]:
    """The overrides of each `train.py` command line, one value per swept key."""
    commands = []
    parser = OverridesParser.create()
    for line in command_lines():
        if " train.py" not in line:
            continue
        for placeholder, value in PLACEHOLDERS.items():
            line = line.replace(placeholder, value)
        args = line.split(" train.py", 1)[1].split()
        args = [a.replace("'", "") for a in args if a not in ("-m", "--help")]
        overrides = []
        for parsed in parser.parse_overrides(args):
            key = parsed.get_key_element()
            if parsed.is_sweep_override():
                overrides.append(f"{key}={next(iter(parsed.sweep_iterator()))}")
            else:
                overrides.append(f"{key}={parsed.get_value_element_as_str()}")
        commands.append(overrides)
    return commands


def test_every_train_command_composes(monkeypatch):
    commands = train_commands()
    assert len(commands) >= 12
    monkeypatch.setenv("SGD_DYNAMICS_RUN_ID", "abcdef")
    import train  # noqa: F401  (registers the run_name and sweep_name resolvers)

    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        for overrides in commands:
            compose(config_name="train", overrides=overrides, return_hydra_config=True)


def test_plot_steps_exist_in_the_default_run():
    (line,) = [line for line in command_lines() if "plot" in line and "--steps" in line]
    steps = [int(s) for s in line.split("--steps")[1].split("--")[0].split()]
    spectral = yaml.safe_load((REPO_ROOT / "conf/spectral/default.yaml").read_text())
    trainer = yaml.safe_load((REPO_ROOT / "conf/trainer/default.yaml").read_text())
    schedule = snapshot_steps(
        trainer["max_steps"], spectral["every_n_steps"], spectral["log_points"]
    )
    assert set(steps) <= set(schedule), (steps, schedule)
    assert len(schedule) == 28  # what the README says of the default run


@pytest.mark.slow
def test_help_runs():
    done = subprocess.run(
        [sys.executable, "train.py", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert done.returncode == 0, done.stderr
    assert "spectral: default, off" in done.stdout
