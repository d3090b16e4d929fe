"""Run folders are the project's own, checked in-process on crafted folders: no symbolic link
inside, one process per folder (DDP ranks of the launching process excepted), a new run never
takes another run's results, a resume that cannot work is refused with what to do instead."""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from store_plots.snapshot_factory import dense_snapshot

from sgd_dynamics.launch import entry
from sgd_dynamics.launch.run_folder import (
    RunFolderGuard,
    check_run_settings,
    claim_resume_folder,
)
from sgd_dynamics.lifecycle import run_lock
from sgd_dynamics.lifecycle.outcomes import RunInterrupted
from sgd_dynamics.lightning.announce import exit_for
from sgd_dynamics.run_folder.files import write_json_atomic
from sgd_dynamics.run_folder.ownership import (
    NoFollowFileHandler,
    damaged_snapshot,
    find_symlink,
    is_launching_process,
    read_record,
)
from sgd_dynamics.run_folder.snapshots import save_snapshot
from sgd_dynamics.utils import ConfigError
from sgd_dynamics.utils.commands import remember_original_command

RANKS = ("RANK", "SLURM_PROCID", "NODE_RANK", "LOCAL_RANK", "GROUP_RANK")
TRAINER_STATE = {"loops": {"fit_loop": {}}, "optimizer_states": [], "lr_schedulers": []}


@pytest.fixture(autouse=True)
def launching_process(monkeypatch):
    """This process as a run's launching process; every lock it took is given back after."""
    for name in (*RANKS, "SLURM_JOB_ID"):
        monkeypatch.delenv(name, raising=False)
    yield
    for folder in list(run_lock._held):
        run_lock.release_run_lock(folder)


def make_run(
    folder: Path,
    status: str | None = "completed",
    step: int | None = 20,
    overrides: str = "- seed=3\n- batch_size=7\n",
) -> Path:
    """A crafted run folder: .hydra/overrides.yaml, status.json, and a checkpoint at `step`
    (none when None)."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(overrides)
    (folder / ".hydra" / "config.yaml").write_text("seed: 3\n")
    if status is not None:
        (folder / "status.json").write_text(f'{{"status": "{status}"}}\n')
    if step is not None:
        (folder / "checkpoints").mkdir()
        torch.save({"state_dict": {}, "global_step": step, **TRAINER_STATE}, last_ckpt(folder))
    return folder


def last_ckpt(folder: Path) -> Path:
    return folder / "checkpoints" / "last.ckpt"


def refusal(call, capsys) -> str:
    """The one error line of `call`, which must exit with status 2."""
    with pytest.raises(SystemExit) as info:
        call()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err.removeprefix("error: ").rstrip("\n")


def new_run(folder: Path, ckpt_path: str | None = None) -> None:
    """What Hydra does before it writes a single run's folder: the guard's on_run_start."""
    literal = str(folder).replace("${", "\\${")  # the folder's path as OmegaConf resolves it
    cfg = OmegaConf.create({"hydra": {"run": {"dir": literal}}, "ckpt_path": ckpt_path})
    RunFolderGuard().on_run_start(cfg)


def contents(folder: Path) -> dict[str, bytes | str]:
    """Every entry under `folder` (links not followed): file bytes, link targets, folders."""
    out: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            out[key] = f"-> {os.readlink(path)}"
        elif path.is_file():
            out[key] = path.read_bytes()
        else:
            out[key] = "folder"
    return out


# ------------------------------------------------------------------------ symbolic links
@pytest.mark.parametrize(
    "link, target_is_dir",
    [
        (".hydra/config.yaml", False),
        (".hydra/overrides.yaml", False),
        ("train.log", False),
        ("status.json", False),
        ("checkpoints/last.ckpt", False),
        ("spectra", True),
        ("checkpoints", True),
        ("wandb/offline-run-1/files", True),
    ],
)
def test_a_resume_of_a_folder_holding_a_link_is_refused_and_nothing_outside_changes(
    link, target_is_dir, tmp_path, capsys
):
    run_dir = make_run(tmp_path / "run")
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "target"
    if target_is_dir:
        target.mkdir()
        (target / "step_00000005.npz").write_bytes(b"someone else's file")
    else:
        target.write_bytes(b"export PATH=/usr/bin\n")
    if (run_dir / link).exists():
        if (run_dir / link).is_dir():
            for child in (run_dir / link).iterdir():
                (target / child.name).write_bytes(child.read_bytes())
                child.unlink()
            (run_dir / link).rmdir()
        else:
            (run_dir / link).unlink()
    (run_dir / link).parent.mkdir(parents=True, exist_ok=True)
    (run_dir / link).symlink_to(target, target_is_directory=target_is_dir)
    before_outside, before_run = contents(outside), contents(run_dir)
    message = refusal(
        lambda: entry.prepare_command_line([f"ckpt_path={last_ckpt(run_dir)}"]), capsys
    )
    assert message.startswith(f"{run_dir / link} is a symbolic link (to {target})")
    assert contents(outside) == before_outside and contents(run_dir) == before_run
    # the same folder as a new run's (hydra.run.dir=...): refused before Hydra writes
    message = refusal(lambda: new_run(run_dir), capsys)
    assert message.startswith(f"{run_dir / link} is a symbolic link")
    assert contents(outside) == before_outside and contents(run_dir) == before_run


def test_the_links_wandb_makes_are_allowed_and_others_in_wandb_are_not(tmp_path):
    run_dir = tmp_path / "run"
    logs = run_dir / "wandb" / "offline-run-20260101_000000-abc" / "logs"
    logs.mkdir(parents=True)
    (logs / "debug.log").write_text("")
    (logs / "debug-core.log").symlink_to(tmp_path / "core.log")  # wandb: to its cache
    (run_dir / "wandb" / "latest-run").symlink_to(logs.parent.name)
    (run_dir / "wandb" / "debug.log").symlink_to(f"{logs.parent.name}/logs/debug.log")
    assert find_symlink(run_dir) is None
    (run_dir / "wandb" / "run-x.wandb").symlink_to(tmp_path / "elsewhere")
    assert find_symlink(run_dir) == run_dir / "wandb" / "run-x.wandb"


def test_links_on_the_way_to_the_run_folder_are_the_users(tmp_path):
    """A run folder reached through a link (a scratch disk) is resumed in the real folder."""
    real = make_run(tmp_path / "disk" / "run")
    (tmp_path / "outputs").symlink_to(tmp_path / "disk")
    claim_resume_folder([f"ckpt_path={tmp_path / 'outputs' / 'run' / 'checkpoints/last.ckpt'}"])
    assert run_lock.lock_holder(real) == os.getpid()


# ------------------------------------------------------------------------ one process per folder
HOLD = textwrap.dedent(
    """
    import sys, time
    from sgd_dynamics.lifecycle.run_lock import acquire_run_lock
    acquire_run_lock(sys.argv[1])
    print("held", flush=True)
    time.sleep(120)
    """
)


@pytest.fixture
def held_run(tmp_path):
    """A completed run folder whose lock another process holds; (folder, that process)."""
    run_dir = make_run(tmp_path / "run")
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    yield run_dir, proc
    proc.kill()
    proc.wait()


def test_a_second_resume_or_new_run_is_refused_while_the_folder_is_in_use(held_run, capsys):
    run_dir, holder = held_run
    before = contents(run_dir)
    in_use = f"{run_dir} is in use by process {holder.pid}: wait for it to end, or stop it first"
    resume = [f"ckpt_path={last_ckpt(run_dir)}"]
    assert refusal(lambda: entry.prepare_command_line(resume), capsys) == in_use
    assert refusal(lambda: new_run(run_dir), capsys) == in_use
    assert contents(run_dir) == before
    holder.send_signal(signal.SIGKILL)  # a dead holder frees the folder
    holder.wait()
    claim_resume_folder(resume)
    assert run_lock.lock_holder(run_dir) == os.getpid()


def test_ddp_ranks_of_the_launching_process_join_its_folder(held_run, monkeypatch):
    """Lightning re-launches train.py for ranks > 0 with the parent's command line and
    ``hydra.run.dir``; under SLURM every rank starts the same command. None of them checks or
    locks the folder the launching process (rank 0) holds."""
    run_dir, _ = held_run
    argv = [f"ckpt_path={last_ckpt(run_dir)}", f"hydra.run.dir={run_dir}"]
    for name, value in [("LOCAL_RANK", "1"), ("SLURM_PROCID", "3"), ("RANK", "2")]:
        monkeypatch.setenv(name, value)
        assert not is_launching_process()
        claim_resume_folder(argv)  # no refusal: not this process's to check
        new_run(run_dir)
        monkeypatch.delenv(name)
    assert is_launching_process({"LOCAL_RANK": "0", "NODE_RANK": "0"})
    assert not is_launching_process({"NODE_RANK": "1"})


# ------------------------------------------------------------------------ a new run
def test_a_new_run_refuses_a_folder_holding_another_runs_results(tmp_path, capsys):
    run_dir = make_run(tmp_path / "run", status="interrupted")
    before = contents(run_dir)
    message = refusal(lambda: new_run(run_dir), capsys)
    head, command = message.split("; resume it with: ")
    assert head == (
        f"{run_dir} already holds a run (status interrupted, checkpoint {last_ckpt(run_dir)}): "
        "a new run never writes into another run's folder"
    )
    argv = shlex.split(command.removesuffix("; or give another hydra.run.dir"))
    assert argv[2:] == [f"ckpt_path={last_ckpt(run_dir)}"]
    assert contents(run_dir) == before  # no lock file either
    # results without a checkpoint: a completed run, snapshots, a summary
    for name, make in [
        ("completed", lambda d: make_run(d, status="completed", step=None)),
        ("summary", lambda d: (make_run(d, "failed", None) / "summary.json").write_text("{}")),
        ("snapshot", lambda d: save_snapshot(make_run(d, "running", None), snapshot(0))),
    ]:
        folder = tmp_path / name
        make(folder)
        message = refusal(lambda f=folder: new_run(f), capsys)
        assert message.startswith(f"{folder} already holds a run (status ")
        assert "it has no checkpoint to resume from" in message


def test_a_new_run_takes_over_a_folder_whose_run_trained_nothing(tmp_path, monkeypatch):
    """A run stopped before its first checkpoint (set-up interrupted, killed at once) left
    Hydra's record and a status: nothing to keep, and its original command may be re-run."""
    for status in ("running", "interrupted", "failed", None):
        folder = make_run(tmp_path / f"run_{status}", status=status, step=None)
        new_run(folder)
        assert run_lock.lock_holder(folder) == os.getpid()
    new_run(tmp_path / "new" / "run")  # a folder that does not exist yet: made and locked
    assert run_lock.lock_holder(tmp_path / "new" / "run") == os.getpid()
    # a SLURM job requeued by Lightning continues from its hpc_ckpt_<n>.ckpt
    requeued = make_run(tmp_path / "slurm", status="interrupted")
    (requeued / "hpc_ckpt_1.ckpt").write_bytes(last_ckpt(requeued).read_bytes())
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    new_run(requeued)


@pytest.mark.parametrize(
    "name, reason",
    [
        ("a\nb", "its path holds a control character"),
        ("tab\there", "its path holds a control character"),
        ("x${y}", "its path holds '${', which Hydra reads as an interpolation"),
    ],
)
def test_a_run_folder_path_hydra_cannot_hold_is_refused(name, reason, tmp_path, capsys):
    message = refusal(lambda: new_run(tmp_path / name), capsys)
    assert reason in message
    assert list(tmp_path.iterdir()) == []  # nothing created


# ------------------------------------------------------------------------ a resume
def test_a_checkpoint_outside_a_run_folder_or_with_another_folder_is_refused(tmp_path, capsys):
    loose = tmp_path / "weights.ckpt"
    loose.write_bytes(b"")
    message = refusal(lambda: entry.prepare_command_line([f"ckpt_path={loose}"]), capsys)
    assert message.startswith(f"ckpt_path={loose}: not a checkpoint of a run folder")
    run_dir = make_run(tmp_path / "run")
    argv = [f"ckpt_path={last_ckpt(run_dir)}", f"hydra.run.dir={tmp_path / 'other'}"]
    message = refusal(lambda: entry.prepare_command_line(argv), capsys)
    assert message.endswith(
        f"a run is resumed in its own folder ({run_dir}); leave hydra.run.dir out"
    )
    (run_dir / ".hydra" / "overrides.yaml").unlink()
    message = refusal(lambda: entry.prepare_command_line(argv[:1]), capsys)
    assert message == (
        f"{run_dir} is not a run folder that can be resumed: .hydra/overrides.yaml, the run's "
        "settings, is missing"
    )
    assert not (tmp_path / "outputs").exists()  # no new default run anywhere


def test_a_run_killed_before_its_first_checkpoint_gets_the_command_that_starts_it_again(
    tmp_path, capsys
):
    run_dir = make_run(tmp_path / "run", status="running", step=None)
    message = refusal(
        lambda: entry.prepare_command_line([f"ckpt_path={last_ckpt(run_dir)}"]), capsys
    )
    head, command = message.split(": start it again with: ")
    assert head == (
        f"{run_dir} holds no checkpoint: its run was killed before it wrote its first checkpoint "
        "(status.json says running, and no process holds the folder); nothing was trained, so "
        "there is nothing to resume"
    )
    argv = shlex.split(command)
    assert argv[:2] == [sys.executable, str(Path(sys.argv[0]).resolve())]
    assert argv[2:] == ["seed=3", "batch_size=7", f"hydra.run.dir={run_dir}"]
    # the command given takes the folder over (nothing in it to keep)
    run_lock.release_run_lock(run_dir)
    new_run(run_dir)
    # with a step-0 snapshot the folder has something to keep: the command starts a new folder
    run_lock.release_run_lock(run_dir)
    save_snapshot(run_dir, snapshot(0))
    message = refusal(
        lambda: entry.prepare_command_line([f"ckpt_path={last_ckpt(run_dir)}"]), capsys
    )
    assert shlex.split(message.split(": start it again with: ")[1])[2:] == [
        "seed=3",
        "batch_size=7",
    ]


def test_the_start_again_command_never_carries_what_the_replay_guard_refuses(tmp_path, capsys):
    run_dir = make_run(tmp_path / "run", "running", None, "- +model._target_=os.system\n")
    message = refusal(
        lambda: entry.prepare_command_line([f"ckpt_path={last_ckpt(run_dir)}"]), capsys
    )
    assert "refusing to replay the override '+model._target_=os.system'" in message
    assert "start it again" not in message


def test_a_missing_checkpoint_beside_others_names_them(tmp_path, capsys):
    run_dir = make_run(tmp_path / "run")
    missing = run_dir / "checkpoints" / "epoch_3.ckpt"
    message = refusal(lambda: entry.prepare_command_line([f"ckpt_path={missing}"]), capsys)
    assert message == (
        f"cannot read checkpoint {missing}: no such file (the run folder has {last_ckpt(run_dir)})"
    )


def resume_cfg(run_dir: Path, max_steps: int | None, **more) -> OmegaConf:
    checkpoint = {"dirpath": str(run_dir / "checkpoints"), **more}
    return OmegaConf.create(
        {
            "ckpt_path": str(last_ckpt(run_dir)),
            "trainer": {"max_steps": max_steps},
            "callbacks": {"checkpoint": checkpoint},
        }
    )


def test_a_resume_below_the_checkpoints_step_is_refused_and_equal_redoes_the_end(tmp_path):
    run_dir = make_run(tmp_path / "run", step=20)
    with pytest.raises(ConfigError) as info:
        check_run_settings(resume_cfg(run_dir, 19), run_dir)
    assert str(info.value) == (
        f"trainer.max_steps=19: the checkpoint {last_ckpt(run_dir)} is at step 20, and a resume "
        "continues from there: give trainer.max_steps >= 20 (or leave it out)"
    )
    for accepted in (20, 21, -1, None):  # -1 / None: the epochs decide
        check_run_settings(resume_cfg(run_dir, accepted), run_dir)


def test_a_checkpoint_folder_outside_the_run_folder_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    cfg = OmegaConf.create(
        {"ckpt_path": None, "callbacks": {"checkpoint": {"dirpath": str(tmp_path / "x")}}}
    )
    with pytest.raises(
        ConfigError, match=r"callbacks.checkpoint.dirpath=.*: the checkpoint is kept"
    ):
        check_run_settings(cfg, run_dir)
    cfg.callbacks.checkpoint.dirpath = str(run_dir / "sub" / ".." / "checkpoints")
    check_run_settings(cfg, run_dir)  # the same folder, spelled otherwise
    cfg.callbacks.checkpoint = None  # no checkpoint callback: nothing to check
    check_run_settings(cfg, run_dir)


# ------------------------------------------------------------------------ damaged snapshots
def snapshot(step: int) -> dict:
    return dense_snapshot(step, np.random.default_rng(step))


def test_snapshots_up_to_the_checkpoints_step_are_verified(tmp_path):
    run_dir = make_run(tmp_path / "run", step=20)
    paths = {step: save_snapshot(run_dir, snapshot(step)) for step in (0, 10, 20, 30)}
    check_run_settings(resume_cfg(run_dir, 40), run_dir)
    assert damaged_snapshot(run_dir, 20) is None
    # after the checkpoint's step: replaced by the resume anyway, not checked
    paths[30].write_bytes(paths[30].read_bytes()[:100])
    assert damaged_snapshot(run_dir, 20) is None
    # truncated at the checkpoint's step
    intact = paths[20].read_bytes()
    paths[20].write_bytes(intact[: len(intact) // 2])
    path, reason = damaged_snapshot(run_dir, 20)
    assert path == paths[20] and reason.startswith("BadZipFile")
    with pytest.raises(ConfigError) as info:
        check_run_settings(resume_cfg(run_dir, 40), run_dir)
    assert str(info.value).startswith(f"snapshot {paths[20]} is damaged (BadZipFile")
    assert f"move it out of {run_dir / 'spectra'} to resume without it" in str(info.value)
    paths[20].write_bytes(intact)
    # one flipped byte inside an array's data: the zip CRC check finds it
    with zipfile.ZipFile(paths[10]) as archive:
        info_hf = archive.getinfo("hf_top.npy")
    data = bytearray(paths[10].read_bytes())
    data[info_hf.header_offset + 30 + len(info_hf.filename) + info_hf.file_size - 1] ^= 0xFF
    paths[10].write_bytes(bytes(data))
    path, reason = damaged_snapshot(run_dir, 20)
    assert path == paths[10] and "CRC" in reason


# ------------------------------------------------------------------------ what is printed
def test_a_run_stopped_without_a_checkpoint_prints_the_command_that_starts_it_again(capsys):
    remember_original_command(["seed=1", "hydra.run.dir=/tmp/a b"])
    with pytest.raises(SystemExit) as info:
        exit_for(RunInterrupted(signal.SIGINT, 0, None))
    assert info.value.code == 130
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "interrupted by SIGINT at step 0 (no checkpoint yet)"
    prefix = "no checkpoint to resume from: start again with: "
    assert lines[1].startswith(prefix)
    assert shlex.split(lines[1].removeprefix(prefix))[2:] == ["seed=1", "hydra.run.dir=/tmp/a b"]


def test_record_of_a_folder(tmp_path):
    run_dir = make_run(tmp_path / "run", status="interrupted", step=5)
    record = read_record(run_dir)
    assert record.status == "interrupted" and record.checkpoints == (last_ckpt(run_dir),)
    assert record.holds_results and record.n_snapshots == 0 and not record.has_summary


def test_the_job_log_is_appended_to_without_following_a_link(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("earlier\n")
    handler = NoFollowFileHandler(log)
    handler.emit(logging.makeLogRecord({"msg": "later", "levelno": logging.INFO}))
    handler.close()
    assert log.read_text() == "earlier\nlater\n"
    outside = tmp_path / "bashrc"
    outside.write_text("alias ls=ls\n")
    (tmp_path / "linked.log").symlink_to(outside)
    with pytest.raises(OSError):
        NoFollowFileHandler(tmp_path / "linked.log")
    assert outside.read_text() == "alias ls=ls\n"


def test_an_atomic_write_replaces_a_link_and_leaves_its_target_alone(tmp_path):
    """Every run file is written by `atomic_write`: a new file renamed onto the name, so a link
    in the file's place is replaced, never written through."""
    target = tmp_path / "bashrc"
    target.write_bytes(b"alias ls=ls\n")
    (tmp_path / "status.json").symlink_to(target)
    write_json_atomic(tmp_path / "status.json", {"status": "running"})
    assert target.read_bytes() == b"alias ls=ls\n"
    assert not (tmp_path / "status.json").is_symlink()
    assert json.loads((tmp_path / "status.json").read_text()) == {"status": "running"}
