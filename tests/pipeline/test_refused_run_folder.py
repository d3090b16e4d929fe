"""A run refused while it is built leaves nothing: the folder Hydra made for it is removed when
it is this invocation's own and unused (`sgd_dynamics.run_folder.refused`); any other folder is
kept, with status.json "failed"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pipeline.pipeline_helpers import run_train

from sgd_dynamics.run_folder.refused import is_fresh_hydra_folder, remove_refused_run_folder

RUN_ID = "a1b2c3"


def hydra_folder(root: Path, name: str = f"2030-01-01_00-00-00_{RUN_ID}") -> Path:
    """A run folder as Hydra leaves it when the job starts: .hydra/ with its record, an empty
    train.log."""
    folder = root / name
    (folder / ".hydra").mkdir(parents=True)
    for record in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        (folder / ".hydra" / record).write_text("a: 1\n")
    (folder / "train.log").touch()
    return folder


def test_a_fresh_folder_of_this_invocation_is_removed(tmp_path):
    folder = hydra_folder(tmp_path)
    assert remove_refused_run_folder(folder, RUN_ID)
    assert not folder.exists() and tmp_path.exists()


@pytest.mark.parametrize(
    "change",
    [
        lambda f: (f / "train.log").write_text("a line of an earlier run\n"),
        lambda f: (f / "status.json").write_text("{}"),
        lambda f: (f / "spectra").mkdir(),
        lambda f: (f / ".hydra" / "notes.txt").write_text("mine"),
        lambda f: (f / "checkpoints").mkdir(),
    ],
    ids=["log-with-lines", "status", "spectra", "foreign-file-in-record", "checkpoints"],
)
def test_a_folder_holding_anything_else_is_kept(tmp_path, change):
    folder = hydra_folder(tmp_path)
    change(folder)
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    assert not remove_refused_run_folder(folder, RUN_ID)
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before


@pytest.mark.parametrize("run_id", ["ffffff", "", None])
def test_a_folder_not_named_with_this_invocations_id_is_kept(tmp_path, run_id, monkeypatch):
    monkeypatch.delenv("SGD_DYNAMICS_RUN_ID", raising=False)
    folder = hydra_folder(tmp_path)
    assert not is_fresh_hydra_folder(folder, run_id)
    assert not remove_refused_run_folder(folder, run_id)
    assert folder.is_dir()


def test_a_user_named_folder_is_kept(tmp_path):
    folder = hydra_folder(tmp_path, name="my_run")  # hydra.run.dir=my_run: no run id in it
    assert not remove_refused_run_folder(folder, RUN_ID)
    assert folder.is_dir()


@pytest.mark.slow
def test_a_run_refused_while_it_is_built_leaves_nothing(tmp_path):
    # missing data files: refused before Hydra creates anything
    result = run_train(["dataset=mnist", f"dataset.root={tmp_path / 'absent'}"], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert not (tmp_path / "outputs").exists()
    # a Trainer argument that only the Trainer refuses: found after Hydra made the folder,
    # which is then removed (outputs/runs/ itself stays)
    bad = ["trainer.max_steps=5", "+trainer.gradient_clip_val=abc"]
    result = run_train(bad, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert list((tmp_path / "outputs" / "runs").iterdir()) == []
    # a folder the user named is kept, with the reason in status.json
    named = tmp_path / "named"
    result = run_train([*bad, f"hydra.run.dir={named}"], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    status = json.loads((named / "status.json").read_text())
    assert status["status"] == "failed" and "gradient_clip_val" in status["error"]
