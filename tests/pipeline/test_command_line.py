"""train.py's command line is checked before Hydra runs it (`check_command_line`, called by
`prepare_command_line`): Hydra's own errors, the schema, the run limits and the output folder,
each refused with one line naming what was wrong and what is accepted.

In-process, with the function train.py calls; the composition it uses is compared with Hydra's
own compose API; the experiments compose with ``spectral=off`` into a run without snapshots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import pytorch_lightning as pl
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from pipeline_helpers import REPO_ROOT, config_options, load_entry_point

from callbacks.spectral import SpectralSnapshots
from sgd_dynamics.launch.build import instantiate_named
from sgd_dynamics.launch.command_line import check_command_line, composer
from sgd_dynamics.launch.overrides import parse_overrides
from sgd_dynamics.utils import ConfigError

load_entry_point()  # the resolvers conf/ uses
EXPERIMENTS = sorted(option for group, option in config_options() if group == "experiment")


@pytest.fixture(autouse=True)
def run_id(monkeypatch):
    monkeypatch.setenv("SGD_DYNAMICS_RUN_ID", "abc123")


def refusal(argv: list[str], cwd: Path) -> str:
    """The one-line message `check_command_line` refuses `argv` with, run in `cwd`; asserts
    that nothing was created there."""
    before = sorted(cwd.iterdir())
    with pytest.raises(ConfigError) as info:
        check_command_line(argv, cwd=cwd)
    assert sorted(cwd.iterdir()) == before
    message = str(info.value)
    assert "\n" not in message and message.strip() == message
    return message


# --------------------------------------------------------------------- Hydra's own errors
HYDRA_ERRORS = [
    (
        ["experiment=nonexistent"],
        "experiment=nonexistent: no such option of the group experiment; one of paper_cifar10, "
        "paper_gauss10, paper_mnist, quick, seed_cifar10, seed_gauss10, seed_mnist",
    ),
    (
        ["dataset=mnsit"],
        "dataset=mnsit: no such option of the group dataset; one of cifar10, fashion_mnist, "
        "gauss10, mnist; did you mean `mnist`?",
    ),
    (["hydra/launcher=jolib"], "hydra/launcher=jolib: no such option of the group hydra/launcher"),
    (["batchsize=5"], "batchsize=5: unknown key; did you mean `batch_size`?"),
    (["spectral.kk=3"], "spectral.kk=3: unknown key; did you mean `spectral.k`?"),
    (["dataset.ntrain=3"], "dataset.ntrain=3: unknown key; did you mean `dataset.n_train`?"),
    (["spectarl.k=3"], "spectarl.k=3: unknown key; did you mean `spectral.k`?"),
    (["foo=1"], "foo=1: unknown key; keys of the top level: dataset, model, optimizer, module,"),
    (["trainer.foo=1"], "trainer.foo=1: unknown key; keys of trainer: _target_, accelerator"),
    (["+bach_size=5"], "bach_size=5: unknown key; valid keys of the top level: batch_size,"),
    (["++foo=1"], "foo=1: unknown key; valid keys of the top level: batch_size, callbacks,"),
    (["batch_size=5,"], "cannot parse the override 'batch_size=5,' (mismatched input '<EOF>'"),
    (["batch_size=[1,2"], "cannot parse the override 'batch_size=[1,2' (no viable alternative"),
    (["seed=é"], "cannot parse the override 'seed=é' (LexerNoViableAltException"),
    (["a b=1"], "cannot parse the override 'a b=1'"),
    (["~dataset"], "dataset: deleted: a run needs its dataset section (a mapping with _target_)"),
    (["~trainer"], "trainer: deleted: a run needs its trainer section"),
    (["~seed"], "dataset.seed: cannot be resolved: Interpolation key 'seed' not found"),
    (["~spectral"], "callbacks.spectral: cannot be resolved: Interpolation key 'spectral' not"),
    (["+batch_size=5"], "+batch_size=5: batch_size already exists; set it with batch_size=..."),
    (["~foo"], "~foo: there is no key foo to delete; keys of the top level: dataset, model"),
    (["~batch_size=6"], "~batch_size=6: batch_size is 5, not 6; delete it with ~batch_size"),
    (["+dataset=mnist"], "+dataset=mnist: the group dataset already has an option; choose"),
    (["batch_size=5,10"], "batch_size=5,10: several values make a sweep, which runs with -m"),
    (["batch_size=${nope}"], "dataset.batch_size: cannot be resolved: Interpolation key 'nope'"),
    (["--foo"], "unrecognized arguments: --foo: train.py takes key=value overrides and Hydra's"),
    (["--cfg"], "argument --cfg/-c: expected one argument: train.py takes key=value overrides"),
    (["--cfg", "job", "batchsize=3"], "batchsize=3: unknown key; did you mean `batch_size`?"),
    (["-m", "batch_size=5,10,1000"], "sweep job 2 (batch_size=1000): batch_size=1000: an integ"),
    (["-m", "batch_size=interval(1,2)"], "cannot expand the sweep: BasicSweeper does not support"),
]


@pytest.mark.parametrize("argv, message", HYDRA_ERRORS)
def test_hydras_errors_are_one_line_with_a_suggestion(argv, message, tmp_path):
    assert refusal(argv, tmp_path).startswith(message)


# --------------------------------------------------------------------- values that cannot work
LIMITS = [
    (["threads=100000"], "threads=100000: auto or an integer from 1 to "),
    (["dataset.n_train=1000000000"], "dataset.n_train=1000000000: the run would need at least"),
    (["dataset.n_train=1e9"], "dataset.n_train=1000000000.0: null or an integer >= 1"),
    (["model.width=1000000", "spectral.method=dense"], "spectral.method=dense: the run would n"),
    (
        ["spectral.every_n_steps=1", "trainer.max_steps=1000000000000"],
        "spectral.every_n_steps=1: the run would write at least",
    ),
    (["trainer.max_steps=0"], "trainer.max_steps=0: an integer >= 1 or -1"),
    (["trainer.max_epochs=0"], "trainer.max_epochs=0: null or an integer >= 1 or -1"),
    (["trainer.max_steps=-1", "trainer.max_epochs=-1"], "trainer.max_epochs=-1: null or an int"),
    (["+trainer.limit_train_batches=0"], "trainer.limit_train_batches=0: null, an integer >= 1"),
    (["+trainer.limit_train_batches=0.0"], "trainer.limit_train_batches=0.0: null, an integer"),
    (["+trainer.limit_train_batches=1.5"], "trainer.limit_train_batches=1.5: null, an integer"),
    (["+trainer.fast_dev_run=true"], "trainer.fast_dev_run=true: false (a debugging mode"),
    (["+trainer.fast_dev_run=3"], "trainer.fast_dev_run=3: false (a debugging mode"),
    (["+trainer.max_time=00:00:00:00"], "trainer.max_time=00:00:00:00: null or a positive durat"),
    (["+trainer.max_time={seconds: 0}"], "trainer.max_time={seconds: 0}: null or a positive"),
    (["+trainer.accumulate_grad_batches=4"], "trainer.accumulate_grad_batches=4: 1 (the SGD bat"),
    (["+trainer.min_epochs=-3"], "trainer.min_epochs=-3: null or an integer >= 0"),
    (["spectral=off", "++spectral.k=3"], "spectral={k: 3}: an option of its group, or null"),
    (["~logger.wandb._target_"], "logger.wandb={save_dir: "),
    (["callbacks.spectral=null"], "callbacks.spectral=null: the spectral section"),
    (["spectral.k=100000"], "spectral.k=100000: an integer from 1 to 1002, the number of param"),
    (["dataset=mnist", "dataset.root=nowhere"], "dataset.root=nowhere: data files not found in "),
    (["ckpt_path=nowhere.ckpt"], "cannot read checkpoint "),
]


@pytest.mark.parametrize("argv, message", LIMITS)
def test_values_that_cannot_make_a_run_are_refused(argv, message, tmp_path):
    assert refusal(argv, tmp_path).startswith(message)


def test_output_folders_that_cannot_hold_a_run_are_refused(tmp_path):
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    cases = {
        "hydra.run.dir=": "hydra.run.dir='': is the current folder or holds it",
        "hydra.run.dir=.": "hydra.run.dir='.': is the current folder or holds it",
        "hydra.run.dir=..": "hydra.run.dir='..': is the current folder or holds it",
        "hydra.run.dir=dangling": f"hydra.run.dir: cannot write {tmp_path / 'dangling'}: "
        f"{tmp_path / 'dangling'} is a symbolic link to {tmp_path / 'nowhere'}, which does not",
        "hydra.run.dir=dangling/run": f"hydra.run.dir: cannot write {tmp_path / 'dangling/run'}",
        "hydra.run.dir=file/run": f"hydra.run.dir: cannot write {tmp_path / 'file/run'}: "
        f"{tmp_path / 'file'} is not a folder",
        "hydra.run.dir=/proc/x": "hydra.run.dir: cannot write /proc/x: /proc is on a file system "
        "that stores no files",
        "hydra.run.dir=" + "a" * 300: "hydra.run.dir: cannot write ",
        "hydra.run.dir=" + "/".join(["b" * 200] * 20): "hydra.run.dir: cannot write ",
    }
    for override, message in cases.items():
        assert refusal([override], tmp_path).startswith(message), override
    assert "a folder name of 300 bytes; at most 255" in refusal(
        ["hydra.run.dir=" + "a" * 300], tmp_path
    )
    sweep = refusal(["-m", "hydra.sweep.dir=.", "seed=1,2"], tmp_path)
    assert sweep.startswith("sweep job 0 (hydra.sweep.dir=. seed=1): hydra.sweep.dir='.': is the")
    assert not (tmp_path / "nowhere").exists()


# --------------------------------------------------------------------- accepted command lines
@pytest.mark.parametrize(
    "argv, jobs",
    [
        ([], 1),
        (["dataset=mnist", "dataset.download=true", "batch_size=64"], 1),
        (["+trainer.limit_train_batches=0.5", "+trainer.max_time=00:01:00:00"], 1),
        (["threads=2", "trainer.max_steps=-1", "trainer.max_epochs=3"], 1),
        (["-m", "batch_size=5,10", "dataset.label_noise=0,0.5", "model.depth=1,2"], 8),
        (["--multirun", "seed=range(3)", "spectral=off"], 3),
        (["--help", "batchsize=3"], 0),  # Hydra answers --help itself
        (["--hydra-help"], 0),
        # jobs that run on other machines: this machine's CPUs do not bound their threads
        (["-m", "hydra/launcher=submitit_slurm", "seed=1,2", "threads=1000"], 2),
        (["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=1,2"], 2),
    ],
)
def test_good_command_lines_pass(argv, jobs, tmp_path):
    assert check_command_line(argv, cwd=tmp_path) == jobs
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_trains_without_snapshots_with_spectral_off(experiment, tmp_path):
    """``experiment=X spectral=off`` composes (Hydra's compose API) into a run whose callbacks
    hold no spectral snapshots, and is accepted; without spectral=off the experiment's spectral
    settings are those of the option it chooses."""
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        off = compose("train", overrides=[f"experiment={experiment}", "spectral=off"])
        on = compose("train", overrides=[f"experiment={experiment}", f"run_dir={tmp_path}"])
    assert off.spectral is None and off.callbacks.spectral is None
    OmegaConf.update(off, "run_dir", str(tmp_path))
    built = instantiate_named(off.callbacks)
    assert built and all(isinstance(c, pl.Callback) for c in built)
    assert not any(isinstance(c, SpectralSnapshots) for c in built)
    assert on.spectral._target_ == "callbacks.spectral.SpectralSnapshots"
    files = ["dataset.download=true"] if "root" in on.dataset else []  # fetched by the run
    argv = [f"experiment={experiment}", "spectral=off", *files]
    assert check_command_line(argv, cwd=tmp_path) == 1


COMPOSED = [
    [],
    ["experiment=paper_mnist", "spectral=off"],
    ["dataset=cifar10", "batch_size=8", "+trainer.gradient_clip_val=1.0", "~logger.wandb"],
    ["logger=[wandb,csv]", "callbacks.checkpoint=null", "hydra.run.dir=x/y"],
    ["++spectral.k=3", "model.activation=tanh", "trainer=ddp_cpu", "batch_size=4"],
]


@pytest.mark.parametrize("argv", COMPOSED)
def test_the_cached_composition_is_hydras(argv, tmp_path):
    """The configuration `check_command_line` checks is the one Hydra's compose API makes."""
    parsed = composer().compose(parse_overrides(argv))
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        expected = compose("train", overrides=argv, return_hydra_config=True)
    mine, hydras = (OmegaConf.to_container(c) for c in (parsed, expected))
    for cfg in (mine, hydras):
        del cfg["hydra"]
    assert mine == hydras


def test_prepare_command_line_refuses_with_one_line_and_status_2(capsys, tmp_path, monkeypatch):
    from sgd_dynamics.launch import prepare_command_line

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        prepare_command_line(["batchsize=5"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err == "error: batchsize=5: unknown key; did you mean `batch_size`?\n"
    assert list(tmp_path.iterdir()) == []
    assert os.environ["SGD_DYNAMICS_RUN_ID"]
