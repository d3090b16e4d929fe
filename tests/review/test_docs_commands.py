"""The shell commands of the README and of docs/*.md as printed: `.venv/bin/` paths throughout,
every `train.py` command line composes with Hydra, every script named exists, `plot --steps`
names steps a default run has, `--help` works."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import open_dict

from sgd_dynamics.schedule import snapshot_steps

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
PLACEHOLDERS = {"<partition>": "debug", "${SLURM_JOB_ID}": "123", "<date>_<time>_<id>": "x"}


def command_lines(pages: list[Path] = PAGES) -> list[tuple[str, str]]:
    """(page name, command) of each command of the ```bash blocks: continuation lines joined,
    comments dropped."""
    lines = []
    for page in pages:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" # ")[0].strip()
                if line and not line.startswith("#"):
                    lines.append((page.name, line))
    return lines


def test_every_page_with_commands_is_read():
    pages = {name for name, _ in command_lines()}
    for expected in ("README.md", "running.md", "configuration.md", "scaling.md"):
        assert expected in pages, pages


def test_programs_are_called_from_the_projects_environment():
    programs = ("python", "pip", "sgd-dynamics", "wandb", "pre-commit", "ruff", "pytest")
    for page, line in command_lines():
        for token in line.split():
            if os.path.basename(token) in programs:
                assert token == f".venv/bin/{os.path.basename(token)}", (page, line)


def test_every_script_named_exists():
    """`bash X`, `.venv/bin/python X.py` and `benchmarks/...`: each file is in the repository."""
    named = set()
    for _, line in command_lines():
        for token in shlex.split(line.replace("${", "{")):
            if token.endswith((".py", ".sh")) or token == ".ci/run":
                named.add(token)
    assert {"train.py", "scripts/setup.sh", ".ci/run", "scripts/gen_docs.py"} <= named
    for path in named:
        assert (REPO_ROOT / path).is_file(), path


def train_commands() -> list[tuple[str, list[str]]]:
    """(page, overrides) of each `train.py` command line, one value per swept key."""
    commands = []
    parser = OverridesParser.create()
    for page, line in command_lines():
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
        commands.append((page, overrides))
    return commands


def test_every_train_command_composes_and_passes_the_schema(monkeypatch):
    """Each command builds a configuration that Hydra composes and the schema accepts: the run
    it starts is not refused with `error: ...`."""
    import inspect

    import pytorch_lightning as pl

    from sgd_dynamics.config_schema import validate_config

    trainer_arguments = inspect.signature(pl.Trainer).parameters
    commands = train_commands()
    assert len(commands) >= 25
    monkeypatch.setenv("SGD_DYNAMICS_RUN_ID", "abcdef")
    import train  # noqa: F401  (registers the run_name and sweep_name resolvers)

    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        for page, overrides in commands:
            try:
                cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
                cfg.hydra.runtime.output_dir = str(REPO_ROOT / "outputs/runs/x")  # as in a job
                HydraConfig.instance().set_config(cfg)  # resolves ${hydra:...} as in a run
                with open_dict(cfg):
                    del cfg["hydra"]
                validate_config(cfg, trainer_arguments=trainer_arguments)
            except Exception as exc:  # name the page and the command
                raise AssertionError(f"{page}: {overrides}: {exc}") from exc


def test_the_documented_default_schedule_is_the_default_runs():
    spectral = yaml.safe_load((REPO_ROOT / "conf/spectral/default.yaml").read_text())
    trainer = yaml.safe_load((REPO_ROOT / "conf/trainer/default.yaml").read_text())
    schedule = snapshot_steps(
        trainer["max_steps"], spectral["every_n_steps"], spectral["log_points"]
    )
    plots = [line for _, line in command_lines() if " plot " in line and "--steps" in line]
    assert plots
    for line in plots:
        steps = [int(s) for s in line.split("--steps")[1].split("--")[0].split()]
        assert set(steps) <= set(schedule), (steps, schedule)
    running = (REPO_ROOT / "docs/running.md").read_text()
    listed = re.search(r"takes (\d+) snapshots, at steps\n?(.*?)\.\n", running, re.S)
    assert listed, "running.md lists the default run's snapshot steps"
    assert int(listed.group(1)) == len(schedule)
    steps = [int(s) for s in re.findall(r"\d+", listed.group(2))]
    assert steps == list(schedule)


def run_help(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args, "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT)),
    )


def test_the_cli_commands_printed_have_a_help():
    """Each `sgd-dynamics <command>` printed in the docs exists (its --help succeeds)."""
    commands = {
        line.split("sgd-dynamics", 1)[1].split()[0]
        for _, line in command_lines()
        if ".venv/bin/sgd-dynamics " in line
    }
    assert commands == {"plot", "report", "resume"}, commands
    for command in sorted(commands):
        done = run_help("-m", "sgd_dynamics.cli", command)
        assert done.returncode == 0, done.stderr
        assert f"sgd-dynamics {command}" in done.stdout


def test_the_documentation_generator_has_a_help():
    done = run_help("scripts/gen_docs.py")
    assert done.returncode == 0, done.stderr
    assert "--check" in done.stdout


@pytest.mark.slow
def test_help_runs():
    done = run_help("train.py")
    assert done.returncode == 0, done.stderr
    assert "spectral: default, off" in done.stdout
