"""A sweep's jobs from its record: the expansion against Hydra's basic sweeper run with a
recording launcher (job numbers and overrides as Hydra launches them, batches included), and
the record read as data (refusals of what this project's sweeps never write)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from hydra.errors import HydraException
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from sgd_dynamics.launch.overrides import parse_overrides
from sgd_dynamics.launch.sweep_jobs import (
    BASIC_LAUNCHER,
    BASIC_SWEEPER,
    JOBLIB_LAUNCHER,
    MAX_RECORD_BYTES,
    expand_sweep,
    read_sweep_record,
)
from sgd_dynamics.launch.sweep_resume import hydra_quoted
from sgd_dynamics.utils.errors import SetupError


class RecordingLauncher:
    """Hydra's launcher interface: records job number -> overrides, as Hydra numbers them."""

    def __init__(self) -> None:
        self.jobs: dict[int, list[str]] = {}

    def launch(self, job_overrides, initial_job_idx):
        for index, overrides in enumerate(job_overrides):
            assert initial_job_idx + index not in self.jobs
            self.jobs[initial_job_idx + index] = list(overrides)
        return [SimpleNamespace(return_value=None) for _ in job_overrides]


def hydra_launches(overrides: list[str], max_batch_size: int | None, tmp: Path) -> dict:
    """Job number -> overrides, as Hydra's BasicSweeper.sweep launches `overrides`. The class
    is looked up at call time: Hydra's plugin discovery re-executes its plugin modules, so a
    subclass of a class imported earlier would no longer be one of BasicSweeper's own."""
    from hydra._internal.core_plugins import basic_sweeper

    class UncheckedSweeper(basic_sweeper.BasicSweeper):
        def validate_batch_is_legal(self, batch) -> None:  # needs the app's config loader
            pass

    sweeper = UncheckedSweeper(max_batch_size=max_batch_size)
    sweeper.config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp)}}})
    sweeper.hydra_context = SimpleNamespace(config_loader=None)
    sweeper.launcher = RecordingLauncher()
    sweeper.sweep(overrides)
    return sweeper.launcher.jobs


KEYS = ["seed", "batch_size", "lr", "model.width", "dataset.label_noise", "+trainer.precision"]
VALUES = st.one_of(
    st.integers(-5, 500).map(str),
    st.sampled_from(["0.1", "1e-3", "null", "true", "relu", "'a b'", '"x,y"']),
)


@st.composite
def sweep_overrides(draw) -> list[str]:
    keys = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=4, unique=True))
    overrides = []
    for key in keys:
        kind = draw(st.sampled_from(["plain", "list", "range", "choice"]))
        if kind == "plain":
            overrides.append(f"{key}={draw(VALUES)}")
        elif kind == "list":
            values = draw(st.lists(VALUES, min_size=2, max_size=3))
            overrides.append(f"{key}={','.join(values)}")
        elif kind == "range":
            start, size = draw(st.integers(0, 5)), draw(st.integers(1, 3))
            overrides.append(f"{key}=range({start},{start + size})")
        else:
            values = draw(st.lists(VALUES, min_size=1, max_size=3))
            overrides.append(f"{key}=choice({','.join(values)})")
    return overrides


@settings(max_examples=60, deadline=None)
@given(overrides=sweep_overrides(), max_batch_size=st.sampled_from([None, 1, 2, 3]))
def test_jobs_are_numbered_and_overridden_as_hydra_launches_them(
    overrides, max_batch_size, tmp_path_factory
):
    try:
        launched = hydra_launches(overrides, max_batch_size, tmp_path_factory.mktemp("sweep"))
    except HydraException:  # e.g. choice(null): refused by both
        with pytest.raises(SetupError):
            expand_sweep(overrides)
        return
    assert dict(enumerate(expand_sweep(overrides))) == launched


def write_record(folder: Path, task: list[str], **hydra) -> Path:
    """A multirun.yaml with Hydra's layout: hydra.{overrides.task, sweeper, launcher, sweep}."""
    section = {
        "sweep": {"dir": "outputs/multirun/x", "subdir": "${hydra.job.num}"},
        "launcher": {"_target_": BASIC_LAUNCHER},
        "sweeper": {"_target_": BASIC_SWEEPER, "max_batch_size": None, "params": None},
        "overrides": {"hydra": ["hydra.mode=MULTIRUN"], "task": task},
    }
    for key, value in hydra.items():
        section[key] = value
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "multirun.yaml").write_text(yaml.safe_dump({"hydra": section, "seed": 0}))
    return folder


def test_the_record_gives_jobs_folders_and_launcher(tmp_path):
    sweep = write_record(tmp_path / "s", ["logger=none", "seed=0,1", "batch_size=5,50"])
    record = read_sweep_record(sweep)
    assert record.launcher == "basic" and record.n_jobs is None
    assert [(job.number, job.folder) for job in record.jobs] == [
        (n, sweep.absolute() / str(n)) for n in range(4)
    ]
    assert record.jobs[1].overrides == ("logger=none", "seed=0", "batch_size=50")

    joblib = {"_target_": JOBLIB_LAUNCHER, "n_jobs": 3}
    assert (
        read_sweep_record(write_record(tmp_path / "j", ["seed=0,1"], launcher=joblib)).n_jobs == 3
    )
    params = {"_target_": BASIC_SWEEPER, "max_batch_size": 2, "params": {"lr": "0.1,0.2"}}
    record = read_sweep_record(write_record(tmp_path / "p", ["seed=3"], sweeper=params))
    assert [job.overrides for job in record.jobs] == [("lr=0.1", "seed=3"), ("lr=0.2", "seed=3")]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sweeper": {"_target_": "hydra_plugins.optuna.OptunaSweeper"}}, "basic sweeper"),
        ({"sweep": {"dir": "x", "subdir": "${hydra.job.override_dirname}"}}, "hydra.sweep.subdir"),
        ({"launcher": {"_target_": "hydra_plugins.x.SlurmLauncher"}}, "basic or joblib"),
        ({"launcher": {"_target_": JOBLIB_LAUNCHER, "n_jobs": "${oc.env:N}"}}, "not an integer"),
        ({"overrides": {"task": "seed=1"}}, "not a list of overrides"),
    ],
)
def test_records_this_project_never_writes_are_refused(tmp_path, change, message):
    sweep = write_record(tmp_path / "s", ["seed=0,1"], **change)
    with pytest.raises(SetupError, match=message):
        read_sweep_record(sweep)


def test_a_record_that_names_code_or_holds_aliases_is_refused(tmp_path):
    sweep = write_record(tmp_path / "code", ["seed=0,1", "+trainer.profiler._target_=os.system"])
    with pytest.raises(SetupError, match="outside the project's configuration schema"):
        read_sweep_record(sweep)
    sweep = write_record(tmp_path / "hydra", ["seed=0,1", "hydra.callbacks.x._target_=a.B"])
    with pytest.raises(SetupError, match="Hydra's own configuration"):
        read_sweep_record(sweep)
    bomb = tmp_path / "bomb"
    bomb.mkdir()
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    lines += [
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}]"
        for p, c in zip("abcdefg", "bcdefgh", strict=True)
    ]
    (bomb / "multirun.yaml").write_text("\n".join(lines) + "\n")
    with pytest.raises(SetupError, match="alias"):
        read_sweep_record(bomb)
    big = write_record(tmp_path / "big", ["seed=0"])
    (big / "multirun.yaml").write_text("x: " + "y" * MAX_RECORD_BYTES + "\n")
    with pytest.raises(SetupError, match="larger than"):
        read_sweep_record(big)
    with pytest.raises(SetupError, match="holds no multirun.yaml"):
        read_sweep_record(tmp_path)
    with pytest.raises(SetupError, match="glob"):
        read_sweep_record(write_record(tmp_path / "glob", ["dataset=glob(*)"]))


@settings(max_examples=200, deadline=None)
@given(text=st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=40))
def test_a_quoted_path_reads_back_through_hydras_grammar(text):
    if "${" in text:
        with pytest.raises(SetupError):
            hydra_quoted(text)
        return
    (override,) = parse_overrides([f"ckpt_path={hydra_quoted(text)}"])
    assert override.value() == text
