"""Run folders through train.py: a folder with any name resumes from the command it printed;
crafted folders (links, another run's results, a damaged snapshot) are refused with one line
before Hydra writes anything, and nothing inside or outside them changes."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pipeline.pipeline_helpers import train_env
from reliability_helpers import (
    REPO_ROOT,
    RESUME_PREFIX,
    SMALL_RUN,
    assert_same_results,
    resume_command,
    strict_json,
    train,
)

from sgd_dynamics.utils.commands import override_argument

pytestmark = pytest.mark.slow

NASTY_NAME = "ä b,c=d'e\"f(g)[h]{i}~j#k&l$m\\n:o 'x' $ {q} \\"


def files(folder: Path) -> dict[str, bytes | str]:
    """Every entry under `folder`, links not followed: bytes, link targets, folders (but the
    lock file, which holds the process id of the folder's last holder)."""
    out: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if key == ".lock":
            continue
        if path.is_symlink():
            out[key] = f"-> {path.readlink()}"
        else:
            out[key] = path.read_bytes() if path.is_file() else "folder"
    return out


def one_error(result: subprocess.CompletedProcess) -> str:
    """The refusal's one line: exit status 2, no traceback."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0].removeprefix("error: ")


def test_a_run_in_a_folder_with_any_name_resumes_from_the_printed_command(tmp_path, reference_run):
    """SIGINT at step 70 of a run whose folder's name holds , = ' " ( ) [ ] { } ~ # & $ \\ :
    and non-ASCII letters; the printed command, run by bash, completes it exactly as the
    uninterrupted run."""
    run_dir = tmp_path / NASTY_NAME
    args = [*SMALL_RUN, override_argument("hydra.run.dir", run_dir)]
    stopped = train(args, tmp_path, fault="step:70=sigint")
    assert stopped.returncode == 130, stopped.stderr[-3000:]
    printed = [ln for ln in stopped.stderr.splitlines() if ln.startswith("resume with: ")]
    assert len(printed) == 1
    command = printed[0].removeprefix("resume with: ")
    assert resume_command(stopped) == shlex.split(command)  # the line printed at the start
    resumed = subprocess.run(
        ["bash", "-c", command], cwd=tmp_path, env=train_env(), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert strict_json(run_dir / "status.json")["status"] == "completed"
    assert_same_results(run_dir, reference_run)


@pytest.mark.parametrize(
    "link, outside_is_dir",
    [(".hydra/config.yaml", False), ("train.log", False), ("spectra", True)],
)
def test_a_folder_holding_a_link_is_refused_before_hydra_writes_through_it(
    link, outside_is_dir, tmp_path, reference_run
):
    """Three attacks: Hydra rewriting .hydra/config.yaml through a link, train.log
    appended through one, snapshots written into (and deleted from) a linked spectra/. The
    resume and a new run into the folder are refused; the files outside keep their bytes."""
    run_dir = tmp_path / "run"
    shutil.copytree(reference_run, run_dir)
    outside = tmp_path / "outside"
    if outside_is_dir:
        shutil.move(run_dir / link, outside)
    else:
        outside.write_bytes(b"# a shell rc file\nexport PATH=/usr/bin\n")
        (run_dir / link).unlink()
    (run_dir / link).symlink_to(outside, target_is_directory=outside_is_dir)
    before_outside = files(outside) if outside_is_dir else outside.read_bytes()
    before_run = files(run_dir)
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    for args in (
        [f"ckpt_path={ckpt}", "trainer.max_steps=200"],
        [*SMALL_RUN, f"hydra.run.dir={run_dir}"],
    ):
        error = one_error(train(args, tmp_path))
        assert error.startswith(f"{run_dir / link} is a symbolic link (to {outside})"), error
        assert (files(outside) if outside_is_dir else outside.read_bytes()) == before_outside
        assert files(run_dir) == before_run


def test_a_new_run_into_a_finished_runs_folder_is_refused_and_changes_nothing(
    tmp_path, reference_run
):
    run_dir = tmp_path / "run"
    shutil.copytree(reference_run, run_dir)
    before = files(run_dir)
    error = one_error(train([*SMALL_RUN, "seed=1", f"hydra.run.dir={run_dir}"], tmp_path))
    assert error.startswith(f"{run_dir} already holds a run (status completed, checkpoint ")
    assert "resume it with: " in error and "ckpt_path=" in error
    assert files(run_dir) == before


def test_a_resume_over_a_damaged_snapshot_or_below_its_step_is_refused_before_training(
    tmp_path, reference_run
):
    """The checkpoint is at step 120: a truncated snapshot of step 60 stops the resume before
    it trains (no traceback later, the run's record as it was); so does max_steps=100."""
    run_dir = tmp_path / "run"
    shutil.copytree(reference_run, run_dir)
    damaged = run_dir / "spectra" / "step_00000060.npz"
    damaged.write_bytes(damaged.read_bytes()[:500])
    before = files(run_dir)
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    error = one_error(train([f"ckpt_path={ckpt}", "trainer.max_steps=140"], tmp_path))
    assert error.startswith(f"snapshot {damaged} is damaged (BadZipFile"), error
    assert "checkpoint's step 120" in error and "move it out of" in error
    assert files(run_dir) == before
    error = one_error(train([f"ckpt_path={ckpt}", "trainer.max_steps=100"], tmp_path))
    assert error.startswith(f"trainer.max_steps=100: the checkpoint {ckpt} is at step 120")
    assert files(run_dir) == before


def test_a_second_process_on_a_running_runs_folder_is_refused(tmp_path):
    """While a run trains, a resume of its folder and a new run into it stop at once with
    the training process's id; the running run is not disturbed."""
    run_dir = tmp_path / "run"
    args = [*SMALL_RUN, "trainer.max_steps=100000", f"hydra.run.dir={run_dir}"]
    running = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "train.py"), *args],
        cwd=tmp_path,
        env=train_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        for line in running.stdout:  # training has started: the checkpoint exists
            if line.startswith(RESUME_PREFIX):
                break
        in_use = f"{run_dir} is in use by process {running.pid}: wait for it to end, or stop it"
        ckpt = run_dir / "checkpoints" / "last.ckpt"
        for second in ([f"ckpt_path={ckpt}", "trainer.max_steps=50"], args):
            assert one_error(train(second, tmp_path)).startswith(in_use)
        assert running.poll() is None
    finally:
        running.kill()
        running.wait()
