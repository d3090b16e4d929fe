"""The trust boundary through ``python train.py`` (slow: subprocesses).

- A real run folder, made hostile: the issue's payload (a pickle that creates a marker file)
  and the override whose value builds ``{_target_: torch.load, f: <payload>}`` only when
  OmegaConf resolves it. Resuming it exits with status 2 and one ``error:`` line; the payload
  does not run; not a byte of the folder changes.
- An alias bomb in the run's overrides.yaml: refused, and the resume returns.
- ``logger.wandb.name=${oc.env:SECRET}``: refused before anything is created; the secret is in
  no file.
"""

from __future__ import annotations

import pickle
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from pipeline_helpers import PYTHON, REPO_ROOT, run_train, train_env
from test_run_folder_files import BOMB_LIST, CreatesMarker, attack_lines, folder_bytes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("finished")
    run_dir = cwd / "run"
    args = [f"hydra.run.dir={run_dir}", "trainer.max_steps=3", "spectral=off", "logger=none"]
    result = run_train(args, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return run_dir


def hostile_copy(finished_run: Path, tmp_path: Path, lines: list[str]) -> tuple[Path, Path]:
    """A copy of `finished_run` with the payload and `lines` added to its overrides.yaml;
    returns (run folder, marker)."""
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    marker = tmp_path / "marker"
    (run_dir / "payload.pkl").write_bytes(pickle.dumps(CreatesMarker(marker)))
    overrides = run_dir / ".hydra" / "overrides.yaml"
    overrides.write_text(yaml.safe_dump([*yaml.safe_load(overrides.read_text()), *lines]))
    return run_dir, marker


def refused_resume(run_dir: Path, timeout: float = 240) -> str:
    """Resume `run_dir`: exit status 2, one ``error:`` line, no traceback, no byte changed."""
    before = folder_bytes(run_dir.parent)
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    result = run_train([f"ckpt_path={checkpoint}"], run_dir.parent, timeout)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert folder_bytes(run_dir.parent) == before
    return errors[0]


@pytest.mark.parametrize("form", ["escaped", "through hydra:runtime.output_dir"])
def test_the_crafted_run_folder_runs_nothing(form, finished_run, tmp_path):
    payload = (
        str(tmp_path / "run" / "payload.pkl")
        if form == "escaped"
        else "${hydra:runtime.output_dir}/payload.pkl"
    )
    run_dir, marker = hostile_copy(finished_run, tmp_path, [attack_lines(payload)[0]])
    error = refused_resume(run_dir)
    assert error.startswith(
        f"error: {run_dir / '.hydra' / 'overrides.yaml'}: refusing to replay the override "
        "'+trainer.profiler="
    )
    assert "its value holds an OmegaConf interpolation" in error
    assert not marker.exists()


def test_an_alias_bomb_in_overrides_yaml_is_refused(finished_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    overrides = run_dir / ".hydra" / "overrides.yaml"
    overrides.write_text(BOMB_LIST)
    error = refused_resume(run_dir, timeout=120)
    assert error == (
        f"error: {overrides}: a YAML anchor or alias at line 1, which the project's files "
        "never hold; refused"
    )


def test_an_environment_value_is_not_resolved_into_the_record(tmp_path):
    secret = "s3cr3t-value-for-the-test"
    env_run = {**train_env(), "SGD_DYNAMICS_TEST_SECRET": secret}
    result = subprocess.run(
        [
            PYTHON,
            str(REPO_ROOT / "train.py"),
            "logger.wandb.name=${oc.env:SGD_DYNAMICS_TEST_SECRET}",
            "trainer.max_steps=2",
        ],
        cwd=tmp_path,
        env=env_run,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(
        "error: logger.wandb.name=${oc.env:SGD_DYNAMICS_TEST_SECRET}: the resolver oc.env is not "
        "accepted in an override"
    )
    assert list(tmp_path.iterdir()) == []  # refused before Hydra made a folder: no file at all
    assert secret not in result.stdout + result.stderr
