"""Every bad input is refused before training with one ``error: ...`` line and exit status 2.

In-process (Hydra's compose API and train.py's `build`, which validates first): each bad input
of the reliability issue, and one invalid value for every key of the README's table of keys.
In subprocesses (slow): a handful of the same through ``python train.py``, checking the exit
status, the absence of a traceback and that the run folder holds nothing but Hydra's files; and
resumes from damaged checkpoints and from a run folder whose overrides name foreign code.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from pipeline_helpers import REPO_ROOT, load_entry_point, run_train, write_mnist_files

from sgd_dynamics.config_schema import SCHEMA
from sgd_dynamics.data import write_idx
from sgd_dynamics.utils import ConfigError, SetupError

ENTRY = load_entry_point()
HYDRA_FILES = {".hydra", "train.log", ".lock"}  # Hydra's files, and the run folder's lock


def refusal(overrides: list[str], tmp_path: Path) -> SetupError:
    """The error train.py's `build` raises for `overrides` (it validates before building)."""
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"run_dir={tmp_path / 'run'}"])
    with pytest.raises(SetupError) as info:
        ENTRY.build(cfg)
    return info.value


@pytest.fixture
def text_file(tmp_path) -> Path:
    path = tmp_path / "notes.ckpt"
    path.write_text("hello, I am not a checkpoint\n")
    return path


# --------------------------------------------------------------------- the bad inputs
CONFIG_ERRORS = [
    (["lr=-1"], "lr=-1: a finite number > 0"),
    (["lr=0"], "lr=0: a finite number > 0"),
    (["lr=nan"], "lr=nan: a finite number > 0"),
    (["lr=abc"], "lr=abc: a finite number > 0"),
    (["seed=-1"], "seed=-1: an integer from 0 to 4294967295"),
    (["batch_size=1000"], "batch_size=1000: an integer from 1 to 100, the number of training"),
    (["batch_size=1000", "spectral=off"], "batch_size=1000: an integer from 1 to 100, the num"),
    (["spectral.k=100000"], "spectral.k=100000: an integer from 1 to 1002, the number of param"),
    (["spectral.every_n_steps=0"], "spectral.every_n_steps=0: null or an integer >= 1"),
    (["spectral.every_n_steps=-5"], "spectral.every_n_steps=-5: null or an integer >= 1"),
    (["spectral.log_points=0"], "spectral.log_points=0: auto or null or an integer >= 2"),
    (["+foo=1"], "foo=1: unknown key; valid keys of the top level: batch_size, callbacks, ckpt"),
    (["+spectral.bogus=3"], "spectral.bogus=3: unknown key; valid keys of spectral: _target_, c"),
    (["trainer.max_steps=0"], "trainer.max_steps=0: an integer >= 1 or -1"),
    (["dataset.n_train=50", "batch_size=64"], "batch_size=64: an integer from 1 to 50, the num"),
    (["spectral.n_samples=4", "batch_size=5"], "spectral.n_samples=4: null or an integer >= bat"),
    (["trainer=ddp_cpu", "batch_size=5"], "batch_size=5: a multiple of the 2 DDP processes"),
    (["trainer=slurm_multinode", "batch_size=12"], "batch_size=12: a multiple of the 8 DDP proc"),
]


@pytest.mark.parametrize("overrides, message", CONFIG_ERRORS)
def test_bad_config_values_are_refused(overrides, message, tmp_path):
    error = refusal(overrides, tmp_path)
    assert isinstance(error, ConfigError)
    assert str(error).startswith(message)


def test_a_checkpoint_that_is_a_text_file_is_refused(text_file, tmp_path):
    error = refusal([f"ckpt_path={text_file}"], tmp_path)
    assert isinstance(error, ConfigError)
    assert str(error).startswith(f"cannot read checkpoint {text_file}: not a readable PyTorch")


def corrupt_deflate(path: Path) -> None:
    """Keep the gzip header, make the first deflate block use the reserved block type 3."""
    data = bytearray(path.read_bytes())
    data[10] = 0xFF
    path.write_bytes(bytes(data))


def labels_out_of_range(path: Path) -> None:
    labels = gzip.decompress(path.read_bytes())
    array = np.frombuffer(labels[8:], dtype=np.uint8).copy()
    array[3] = 12
    path.write_bytes(gzip.compress(labels[:8] + array.tobytes()))


def float_labels(path: Path) -> None:
    path.unlink()
    write_idx(path.with_suffix(""), np.zeros(40, dtype=np.float32))


def no_samples(path: Path) -> None:
    """Training images (0, 28, 28) and labels (0,), as plain IDX files."""
    for name, shape in (
        ("train-images-idx3-ubyte", (0, 28, 28)),
        ("train-labels-idx1-ubyte", (0,)),
    ):
        (path.parent / f"{name}.gz").unlink()
        write_idx(path.parent / name, np.zeros(shape, dtype=np.uint8))


@pytest.mark.parametrize(
    "damage, file, message",
    [
        (corrupt_deflate, "train-images-idx3-ubyte.gz", "corrupt gzip stream (Error -3 "),
        (labels_out_of_range, "train-labels-idx1-ubyte.gz", "labels must lie in [0, 9], found 12 "),
        (float_labels, "train-labels-idx1-ubyte", "labels must be integers in [0, 9], found dtype"),
        (no_samples, "train-images-idx3-ubyte", "it holds 0 samples"),
    ],
)
def test_damaged_data_files_are_refused_naming_the_file(damage, file, message, tmp_path):
    root = tmp_path / "mnist"
    write_mnist_files(root, n_train=40, n_test=10)
    damage(root / "train-labels-idx1-ubyte.gz" if "labels" in file else root / file)
    error = refusal(["dataset=mnist", f"dataset.root={root}"], tmp_path)
    assert str(error).startswith(f"dataset mnist: {root / file}: {message}")


# --------------------------------------------------------------------- every key of the README
# key -> (the invalid value as typed, further overrides the key needs)
INVALID = {
    "seed": ("-1", []),
    "batch_size": ("0", []),
    "lr": ("abc", []),
    "ckpt_path": ("5", []),
    "threads": ("0", []),
    "dataset.n_train": ("0", []),
    "dataset.label_noise": ("1.5", []),
    "dataset.eval_batch_size": ("0", []),
    "dataset.drop_last": ("maybe", []),
    "dataset.num_workers": ("-1", []),
    "dataset.root": ("null", ["dataset=mnist"]),
    "dataset.download": ("yes", ["dataset=cifar10"]),
    "dataset.n_test": ("0", []),
    "dataset.input_dim": ("0", []),
    "dataset.num_classes": ("1", []),
    "dataset.mean_scale": ("0", []),
    "dataset.noise_std": ("-1", []),
    "model.depth": ("-1", []),
    "model.width": ("0", []),
    "model.activation": ("swish", []),
    "model.bias": ("2", []),
    "optimizer.momentum": ("-0.5", []),
    "optimizer.weight_decay": ("nan", []),
    "optimizer.nesterov": ("sometimes", []),
    "trainer.max_steps": ("0", []),
    "trainer.max_epochs": ("0", []),
    "trainer.accelerator": ("tpu9", []),
    "trainer.devices": ("0", []),
    "trainer.strategy": ("fsdp", ["trainer=ddp_cpu"]),
    "trainer.num_nodes": ("0", ["trainer=slurm_multinode"]),
    "trainer.use_distributed_sampler": ("3", []),
    "trainer.val_check_interval": ("0", []),
    "trainer.check_val_every_n_epoch": ("0", []),
    "trainer.log_every_n_steps": ("0", []),
    "trainer.num_sanity_val_steps": ("-2", []),
    "trainer.enable_model_summary": ("on", []),
    "trainer.enable_progress_bar": ("1", []),
    "trainer.deterministic": ("always", []),
    "logger.wandb.project": ("null", []),
    "logger.wandb.name": ("5", []),
    "logger.wandb.group": ("[a]", []),
    "logger.wandb.offline": ("no", []),
    "logger.wandb.log_model": ("best", []),
    "logger.csv.name": ("null", ["logger=csv"]),
    "callbacks.checkpoint.every_n_steps": ("0", []),
    "callbacks.checkpoint.every_n_seconds": ("-5", []),
    "callbacks.progress.every_n_seconds": ("0", []),
    "spectral.progress_every": ("0", []),
    "spectral.k": ("0", []),
    "spectral.method": ("lanczos", []),
    "spectral.n_samples": ("0", []),
    "spectral.dtype": ("float16", []),
    "spectral.log_points": ("1", []),
    "spectral.every_n_steps": ("0", []),
    "spectral.chunk_size": ("0", []),
    "spectral.warm_start": ("maybe", []),
    "spectral.hp_method": ("exact", []),
    "spectral.draw_every": ("-1", []),
    "spectral.draw_at_end": ("2", []),
    "spectral.density": ("often", []),
    "spectral.density_points": ("0", []),
}


def documented_rows() -> list[tuple[str, str, str]]:
    """(key, accepted, meaning) of every key of docs/configuration.md's generated table."""
    return [(k.name, k.kind.text, k.meaning) for k in SCHEMA if not k.set_by_group]


def test_every_documented_key_has_an_invalid_value_here():
    assert set(INVALID) == {key for key, _, _ in documented_rows()}


@pytest.mark.parametrize("key", sorted(INVALID))
def test_an_invalid_value_of_every_key_is_refused(key, tmp_path):
    value, extra = INVALID[key]
    accepted = {k: a for k, a, _ in documented_rows()}[key]
    error = refusal([*extra, f"++{key}={value}"], tmp_path)
    assert isinstance(error, ConfigError)
    assert str(error) == f"{key}={value}: {accepted}"


# --------------------------------------------------------------------- through train.py
def run_folder_files(cwd: Path) -> set[str]:
    """The names in the run folder under `cwd` (none when no folder was created, or the refused
    run's folder was removed)."""
    runs = cwd / "outputs" / "runs"
    folders = list(runs.iterdir()) if runs.exists() else []
    assert len(folders) <= 1, folders
    return {p.name for folder in folders for p in folder.iterdir()}


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, message",
    [
        (["lr=-1"], "error: lr=-1: a finite number > 0\n"),
        (["+foo=1"], "error: foo=1: unknown key; valid keys of the top level: batch_size, "),
        (["batch_size=1000", "spectral=off"], "error: batch_size=1000: an integer from 1 to 100,"),
        (["ckpt_path={text}"], "error: ckpt_path={text}: not a checkpoint of a run folder"),
    ],
)
def test_train_py_refuses_before_creating_anything(args, message, text_file, tmp_path):
    """Exit status 2, one error line, no traceback, and no run folder: refused before Hydra
    runs (`check_command_line`)."""
    args = [a.format(text=text_file) for a in args]
    result = run_train(args, cwd=tmp_path)  # the default logger: wandb
    assert result.returncode == 2, result.stderr
    assert message.format(text=text_file) in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.ckpt"]


@pytest.mark.slow
def test_train_py_refuses_a_bad_size_found_once_the_data_is_read(tmp_path):
    """A batch larger than the 40 samples of the data files: found by `validate_sizes` in
    `build`, after Hydra made the run folder, which then holds Hydra's files only (no
    status.json, no wandb run, no checkpoint, no snapshot)."""
    write_mnist_files(tmp_path / "mnist", n_train=40, n_test=10)
    args = ["dataset=mnist", f"dataset.root={tmp_path / 'mnist'}", "batch_size=64"]
    result = run_train(args, cwd=tmp_path)  # the default logger: wandb
    assert result.returncode == 2, result.stderr
    assert "error: batch_size=64: an integer from 1 to 40" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert run_folder_files(tmp_path) <= HYDRA_FILES


@pytest.mark.slow
def test_train_py_refuses_a_damaged_data_file(tmp_path):
    root = tmp_path / "mnist"
    write_mnist_files(root, n_train=40, n_test=10)
    corrupt_deflate(root / "t10k-labels-idx1-ubyte.gz")
    result = run_train(["dataset=mnist", f"dataset.root={root}"], cwd=tmp_path)
    assert result.returncode == 2
    expected = f"error: dataset mnist: {root / 't10k-labels-idx1-ubyte.gz'}: corrupt gzip stream"
    assert expected in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    # refused before training: the folder Hydra made for it is removed
    assert run_folder_files(tmp_path) == set()


@pytest.fixture(scope="module")
def completed_run(tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("completed")
    run_dir = cwd / "run"
    args = [f"hydra.run.dir={run_dir}", "trainer.max_steps=5", "spectral=off", "logger=none"]
    result = run_train(args, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return run_dir


def resume(run_dir: Path, checkpoint: Path, *extra: str):
    before = {p: p.read_bytes() for p in (run_dir / "status.json", run_dir / "summary.json")}
    result = run_train([f"ckpt_path={checkpoint}", *extra], cwd=run_dir.parent)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for path, content in before.items():  # the completed run's record is untouched
        assert path.read_bytes() == content
    return result.stderr


@pytest.mark.slow
def test_damaged_checkpoints_are_refused_on_resume(completed_run):
    checkpoints = completed_run / "checkpoints"
    overrides = (completed_run / ".hydra" / "overrides.yaml").read_bytes()
    text = checkpoints / "notes.ckpt"
    text.write_text("not a checkpoint\n")
    truncated = checkpoints / "truncated.ckpt"
    truncated.write_bytes((checkpoints / "last.ckpt").read_bytes()[:3000])
    empty = checkpoints / "empty.ckpt"
    empty.write_bytes(b"")
    # the real checkpoint less its optimizer state (Lightning: KeyError) or its loops (Lightning
    # would start again at step 0, over the run's snapshots)
    weights_only, no_loops = checkpoints / "weights.ckpt", checkpoints / "no_loops.ckpt"
    full = torch.load(checkpoints / "last.ckpt", weights_only=True)
    torch.save({k: v for k, v in full.items() if k != "optimizer_states"}, weights_only)
    torch.save({k: v for k, v in full.items() if k != "loops"}, no_loops)
    training_state = "it holds the weights but not the training state a resume needs (no "
    for path, reason in [
        (weights_only, f"{training_state}optimizer_states)"),
        (no_loops, f"{training_state}loops)"),
        (text, "not a readable PyTorch checkpoint (UnpicklingError"),
        (truncated, "not a readable PyTorch checkpoint (RuntimeError"),
        (empty, "the file is empty"),
        (checkpoints / "missing.ckpt", "no such file"),
    ]:
        stderr = resume(completed_run, path)
        assert f"error: cannot read checkpoint {path}: {reason}" in stderr
        # refused before Hydra ran: the run's own overrides are as they were
        assert (completed_run / ".hydra" / "overrides.yaml").read_bytes() == overrides
    stderr = resume(completed_run, checkpoints / "last.ckpt", "model.width=64")
    assert (
        f"error: cannot read checkpoint {checkpoints / 'last.ckpt'}: it was written by another "
        "model: net.0.bias has shape (32,) in the checkpoint and (64,) in this run's model"
    ) in stderr
    # refused after Hydra rewrote the run's .hydra files: they are put back as they were
    assert (completed_run / ".hydra" / "overrides.yaml").read_bytes() == overrides


def hydra_record(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run_dir / ".hydra").iterdir())}


@pytest.mark.slow
def test_a_refused_resume_leaves_the_runs_record_and_the_next_resume_works(tmp_path):
    """A resume refused while the run is built (a bad value, another model) must not leave its
    overrides in RUN_DIR/.hydra/overrides.yaml: the next resume would replay them and be
    refused again, and reports would read the run's settings wrong."""
    run_dir = tmp_path / "run"
    args = [f"hydra.run.dir={run_dir}", "trainer.max_steps=5", "spectral=off", "logger=none"]
    assert run_train(args, cwd=tmp_path).returncode == 0
    record = hydra_record(run_dir)
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    for bad, message in [
        ("optimizer.lr=-1", "error: optimizer.lr=-1: a finite number > 0"),
        ("model.depth=5", "it was written by another model"),
    ]:
        stderr = resume(run_dir, checkpoint, "trainer.max_steps=8", bad)
        assert message in stderr
        assert hydra_record(run_dir) == record
    result = run_train([f"ckpt_path={checkpoint}", "trainer.max_steps=8"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    replayed = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
    # the run's own overrides, less the one the command sets again, then the command's
    assert replayed == [
        "spectral=off",
        "logger=none",
        f"ckpt_path={checkpoint}",
        "trainer.max_steps=8",
    ]
    assert sorted(p.name for p in (run_dir / ".hydra").iterdir()) == sorted(record)


@pytest.mark.slow
def test_a_foreign_target_in_the_run_overrides_is_not_replayed(completed_run, tmp_path):
    """The override from the issue, appended to overrides.yaml: copying a file on resume."""
    marker = tmp_path / "copied"
    overrides_file = completed_run / ".hydra" / "overrides.yaml"
    original = overrides_file.read_text()
    injected = [
        "+callbacks.x._target_=shutil.copyfile",
        f"+callbacks.x.src={REPO_ROOT / 'README.md'}",
        f"+callbacks.x.dst={marker}",
    ]
    overrides_file.write_text(yaml.safe_dump([*yaml.safe_load(original), *injected]))
    try:
        stderr = resume(completed_run, completed_run / "checkpoints" / "last.ckpt")
    finally:
        overrides_file.write_text(original)
    assert (
        f"error: {overrides_file}: refusing to replay the override "
        "'+callbacks.x._target_=shutil.copyfile': it sets a key outside the project's "
        "configuration schema"
    ) in stderr
    assert not marker.exists()
    shutil.copyfile(REPO_ROOT / "README.md", marker)  # the payload would have worked
    assert marker.exists()
