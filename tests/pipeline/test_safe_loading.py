"""Loading that runs no code: CIFAR-10 batches through the restricted unpickler, checkpoints
checked before a resume, overrides replayed from a run folder."""

from __future__ import annotations

import os
import pickle
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from pipeline_helpers import load_entry_point, write_cifar_files

from sgd_dynamics.data import read_cifar_batch
from sgd_dynamics.launch.overrides import check_replayed_overrides
from sgd_dynamics.launch.resume_guard import check_checkpoint
from sgd_dynamics.lightning import CIFAR10DataModule
from sgd_dynamics.lightning.module import ClassifierModule
from sgd_dynamics.models import MLP
from sgd_dynamics.utils import ConfigError, SetupError

ENTRY = load_entry_point()


class CreatesFile:
    """Unpickled, it opens (creates) `marker`: what a crafted pickle can do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def crafted_batch(path: Path, marker: Path) -> None:
    batch = {b"data": CreatesFile(marker), b"labels": [0, 1], b"batch_label": b"x"}
    path.write_bytes(pickle.dumps(batch, protocol=2))


def test_a_crafted_cifar_batch_is_refused_and_runs_nothing(tmp_path):
    write_cifar_files(tmp_path / "cifar10", n_per_batch=4)
    batch = tmp_path / "cifar10" / "cifar-10-batches-py" / "data_batch_1"
    marker = tmp_path / "marker"
    crafted_batch(batch, marker)
    data = CIFAR10DataModule(root=tmp_path / "cifar10", batch_size=2)
    with pytest.raises(SetupError) as info:
        data.load()
    assert str(info.value) == (
        f"dataset cifar10: cannot read {batch}: it refers to io.open, which a CIFAR-10 "
        "batch never holds (only dicts, lists, strings, numbers and numpy arrays are read; "
        "nothing is executed)"
    )
    assert not marker.exists()
    # the same file through the plain unpickler does create the file: the payload is real
    with open(batch, "rb") as f:
        pickle.load(f, encoding="bytes")
    assert marker.exists()


def test_other_callables_are_refused_by_name(tmp_path):
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({"data": os.getcwd, "labels": []}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match=r"refers to posix.getcwd"):
        read_cifar_batch(path)
    # _codecs.encode(text, "latin1") is how Python 3 pickles bytes; no other codec is run
    call = b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x06\x00\x00\x00rot_13\x86R."
    path.write_bytes(call)
    with pytest.raises(pickle.UnpicklingError, match="encoding 'rot_13' refused"):
        read_cifar_batch(path)


@pytest.mark.parametrize(
    "batch, message",
    [
        ({b"data": np.zeros((0, 3072), np.uint8), b"labels": []}, "it holds 0 samples"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "found 10 at position 1"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0.0, 1.0]}, "found dtype float64"),
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "must be a uint8 array"),
        ({b"labels": [0, 1]}, "no data entry in the batch"),
        ([1, 2], "a dict of arrays expected, found list"),
    ],
)
def test_bad_cifar_contents_are_refused(batch, message, tmp_path):
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        read_cifar_batch(path)


def test_the_published_layout_still_reads(tmp_path):
    """A batch as Python 2 pickled it (bytes keys, numpy 1.x module names) and as Python 3
    does: both read to the same arrays."""
    batches = write_cifar_files(tmp_path, n_per_batch=3)
    data, labels = read_cifar_batch(tmp_path / "cifar-10-batches-py" / "test_batch")
    np.testing.assert_array_equal(data, batches["test_batch"][0])
    np.testing.assert_array_equal(labels, batches["test_batch"][1])
    legacy = pickle.dumps({b"data": data, b"labels": labels.tolist()}, protocol=2).replace(
        b"numpy._core.multiarray", b"numpy.core.multiarray"
    )
    path = tmp_path / "legacy"
    path.write_bytes(legacy)
    np.testing.assert_array_equal(read_cifar_batch(path)[0], data)


# --------------------------------------------------------------------- checkpoints
def module(width: int = 8) -> ClassifierModule:
    torch.manual_seed(0)
    return ClassifierModule(MLP(5, 3, depth=1, width=width), partial(torch.optim.SGD, lr=0.1))


def lightning_like_checkpoint(path: Path, width: int = 8, **changes) -> None:
    """The keys a Lightning Trainer writes, with `changes` (None: key left out)."""
    checkpoint = {
        "state_dict": module(width).state_dict(),
        "global_step": 3,
        "loops": {"fit_loop": {"epoch_progress": {}}},
        "optimizer_states": [{"state": {}, "param_groups": []}],
        "lr_schedulers": [],
    }
    checkpoint.update(changes)
    torch.save({k: v for k, v in checkpoint.items() if v is not None}, path)


def test_a_good_checkpoint_passes(tmp_path):
    path = tmp_path / "last.ckpt"
    lightning_like_checkpoint(path)
    check_checkpoint(path)
    check_checkpoint(path, module())


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda p: p.write_text("text\n"), "not a readable PyTorch checkpoint ("),
        (lambda p: p.write_bytes(p.read_bytes()[:200]), "not a readable PyTorch checkpoint"),
        (lambda p: p.write_bytes(b""), "the file is empty"),
        (lambda p: p.unlink(), "no such file"),
        (lambda p: (p.unlink(), p.mkdir()), "not a file"),
        (lambda p: torch.save({"weights": torch.zeros(2)}, p), "not a Lightning checkpoint"),
        (lambda p: torch.save([1, 2], p), "not a Lightning checkpoint"),
        (
            lambda p: lightning_like_checkpoint(p, optimizer_states=None, lr_schedulers=None),
            "it holds the weights but not the training state a resume needs (no "
            "optimizer_states, lr_schedulers): it was saved with weights only or not by a Trainer",
        ),
        (
            lambda p: lightning_like_checkpoint(p, loops=None),
            "it holds the weights but not the training state a resume needs (no loops)",
        ),
        (
            lambda p: lightning_like_checkpoint(p, loops={"validate_loop": {}}),
            "it holds the weights but not the training state a resume needs (no loops)",
        ),
        (
            lambda p: lightning_like_checkpoint(p, lr_schedulers={}),
            "it holds the weights but not the training state a resume needs (no lr_schedulers)",
        ),
        (
            lambda p: lightning_like_checkpoint(p, width=9),
            "it was written by another model: net.0.bias has shape (9,) in the checkpoint and "
            "(8,) in this run's model",
        ),
    ],
)
def test_unusable_checkpoints_are_refused(damage, reason, tmp_path):
    path = tmp_path / "last.ckpt"
    lightning_like_checkpoint(path)
    damage(path)
    with pytest.raises(ConfigError) as info:
        check_checkpoint(path, module())
    assert str(info.value).startswith(f"cannot read checkpoint {path}: {reason}")


def test_a_pickled_object_in_a_checkpoint_is_not_run(tmp_path):
    path, marker = tmp_path / "last.ckpt", tmp_path / "marker"
    torch.save({"state_dict": {}, "x": CreatesFile(marker)}, path)
    with pytest.raises(ConfigError, match="not a readable PyTorch checkpoint"):
        check_checkpoint(path)
    assert not marker.exists()


# --------------------------------------------------------------------- replayed overrides
SOURCE = Path("RUN/.hydra/overrides.yaml")


@pytest.mark.parametrize(
    "override",
    [
        "batch_size=10",
        "dataset=mnist",
        "~callbacks.progress",
        "dataset._target_=sgd_dynamics.lightning.MNISTDataModule",
        "+callbacks.checkpoint._target_='callbacks.last_checkpoint.LastCheckpoint'",
        "ckpt_path=/a/hydra_folder/last.ckpt",
        "logger=[wandb,csv]",
        "experiment=paper_mnist",
        "+trainer.profiler=simple",
        "+trainer.gradient_clip_val=1.5",
        "logger.wandb.name='a b: c'",
        "+trainer.plugins=[{_target_: sgd_dynamics.lightning.checkpoint_io.AtomicCheckpointIO}]",
    ],
)
def test_the_project_overrides_replay(override):
    check_replayed_overrides([override], SOURCE)


@pytest.mark.parametrize(
    "override, reason",
    [
        ("+callbacks.x._target_=shutil.copyfile", "a key outside the project's configuration"),
        ("+model._target_=os.system", "model._target_=os.system: one of the classes of the"),
        ("+callbacks.x={_target_: shutil.copyfile}", "a key outside the project's configuration"),
        ("+trainer.profiler={_target_: torch.load}", "trainer.profiler._target_=torch.load: one"),
        ("+trainer.plugins=[{_target_: os.system}]", "trainer.plugins[0]._target_=os.system: "),
        ("trainer.profiler='${oc.env:HOME}'", "its value holds an OmegaConf interpolation"),
        ("logger.wandb.name=\\${oc.env:HOME}", "its value holds an OmegaConf interpolation"),
        ("batch_size=5,6", "it is a sweep"),
        ("trainer.default_root_dir=/tmp", "folders derived from the run folder are not"),
        ("dataset=../../x", "a config group's option is a name of conf/dataset/"),
        ("hydra.callbacks.x._target_=os.system", "it changes Hydra's own configuration"),
        ("+hydra.job.env_set.X=1", "it changes Hydra's own configuration"),
        ("hydra/launcher=joblib", "it changes Hydra's own configuration"),
    ],
)
def test_foreign_overrides_are_refused(override, reason):
    with pytest.raises(ConfigError) as info:
        check_replayed_overrides(["batch_size=10", override], SOURCE)
    assert str(info.value).startswith(f"{SOURCE}: refusing to replay the override {override!r}: ")
    assert reason in str(info.value)


def test_resume_argv_applies_the_guard(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / "checkpoints").mkdir()
    overrides = run_dir / ".hydra" / "overrides.yaml"
    overrides.write_text("- batch_size=10\n- +callbacks.x._target_=shutil.copyfile\n")
    with pytest.raises(ConfigError, match="refusing to replay"):
        ENTRY.resume_argv([f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}"])


def test_a_line_the_new_command_line_replaces_is_dropped_not_checked():
    lines = ["batch_size=10", "logger.wandb.name=${oc.env:HOME}"]
    with pytest.raises(ConfigError, match="set that key on the resume's command line"):
        check_replayed_overrides(lines, SOURCE)
    check_replayed_overrides(lines, SOURCE, replaced={"logger.wandb.name"})
    with pytest.raises(ConfigError, match="Hydra cannot parse it"):  # parsed all the same
        check_replayed_overrides(["a=b=c=${"], SOURCE, replaced={"a"})
