"""Hydra configs: every option of every group composes and instantiates; top-level knobs
reach the groups; the helpers of train.py (resolvers, resume command line, error reporting)."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from pipeline_helpers import (
    REPO_ROOT,
    config_options,
    load_entry_point,
    write_cifar_files,
    write_mnist_files,
)

from callbacks.spectral import SpectralSnapshots
from sgd_dynamics.lightning import ClassificationDataModule
from sgd_dynamics.lightning.module import ClassifierModule

CONF = REPO_ROOT / "conf"
ENTRY = load_entry_point()


def group_options() -> list[tuple[str, str]]:
    """(group, option) for every yaml file of every config group (conf/hydra/ excepted)."""
    return config_options()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    # as many training samples as the experiments' batches (64 for MNIST, 256 for CIFAR-10)
    write_mnist_files(root / "mnist", n_train=64, n_test=10)
    write_mnist_files(root / "fashion_mnist", n_train=40, n_test=10, gz=False)
    write_cifar_files(root / "cifar10", n_per_batch=52)
    return root


def compose_train(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def test_every_group_has_options():
    groups = {g for g, _ in group_options()}
    assert {
        "dataset",
        "model",
        "optimizer",
        "trainer",
        "logger",
        "callbacks",
        "experiment",
        "spectral",
    } <= groups


@pytest.mark.parametrize("group, option", group_options())
def test_every_option_composes_and_instantiates(group, option, data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("SGD_DYNAMICS_DATA", str(data_root))
    # the DDP options split the global batch over 2 or 8 processes: a batch of 8 splits evenly
    batch = ["batch_size=8"] if group == "trainer" else []
    cfg = compose_train([f"{group}={option}", *batch, f"run_dir={tmp_path}"])
    if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        with pytest.raises(InstantiationException, match="gpu|GPU|CUDA|cuda"):
            ENTRY.build(cfg)
        return
    parts = ENTRY.build(cfg)
    assert isinstance(parts["datamodule"], ClassificationDataModule)
    assert isinstance(parts["module"], ClassifierModule)
    assert isinstance(parts["trainer"], pl.Trainer)
    assert parts["datamodule"].batch_size == cfg.batch_size
    net = parts["module"].net
    x, _ = parts["datamodule"].spectral_samples(3)
    assert net(x).shape == (3, parts["datamodule"].num_classes)
    assert parts["config"]["seed"] == cfg.seed
    spectral = [c for c in parts["trainer"].callbacks if isinstance(c, SpectralSnapshots)]
    assert len(spectral) == (0 if cfg.spectral is None else 1)


def test_top_level_knobs_reach_the_groups(tmp_path):
    cfg = compose_train(
        ["dataset=mnist", "batch_size=64", "lr=0.03", "seed=9", f"run_dir={tmp_path}"]
    )
    assert cfg.dataset._target_.endswith("MNISTDataModule")
    assert (cfg.dataset.batch_size, cfg.optimizer.lr, cfg.dataset.seed) == (64, 0.03, 9)
    assert cfg.callbacks.checkpoint.dirpath == f"{tmp_path}/checkpoints"


@pytest.mark.parametrize(
    "experiment, dataset, batch, depth",
    [
        ("paper_gauss10", "Gauss10", 5, 1),
        ("paper_mnist", "MNIST", 64, 2),
        ("paper_cifar10", "CIFAR10", 256, 2),
    ],
)
def test_experiments_reproduce_the_paper_settings(experiment, dataset, batch, depth, tmp_path):
    cfg = compose_train([f"experiment={experiment}", f"run_dir={tmp_path}"])
    assert cfg.dataset._target_.endswith(f".{dataset}DataModule")
    assert (cfg.dataset.batch_size, cfg.model.depth) == (batch, depth)
    # the command line still wins over an experiment
    cfg = compose_train([f"experiment={experiment}", "batch_size=7", f"run_dir={tmp_path}"])
    assert cfg.dataset.batch_size == 7


@pytest.mark.parametrize("name", ["gauss10", "mnist", "cifar10"])
def test_the_deprecated_seed_names_compose_the_paper_experiments(name, tmp_path):
    """experiment=seed_<name> (the old name, kept for one release) is experiment=paper_<name>."""
    old = compose_train([f"experiment=seed_{name}", f"run_dir={tmp_path}"])
    new = compose_train([f"experiment=paper_{name}", f"run_dir={tmp_path}"])
    assert OmegaConf.to_container(old) == OmegaConf.to_container(new)
    assert OmegaConf.to_container(new) != OmegaConf.to_container(
        compose_train([f"run_dir={tmp_path}"])
    )


def test_default_run_is_gauss10_batch5_depth1(tmp_path):
    cfg = compose_train([f"run_dir={tmp_path}"])
    assert cfg.dataset._target_.endswith("Gauss10DataModule")
    assert (cfg.batch_size, cfg.model.depth, cfg.model.width, cfg.dataset.input_dim) == (
        5,
        1,
        32,
        20,
    )
    assert cfg.logger.wandb.offline is True


def test_two_loggers_at_once(tmp_path):
    cfg = compose_train(["logger=[wandb,csv]", f"run_dir={tmp_path}"])
    parts = ENTRY.build(cfg)
    from pytorch_lightning.loggers import CSVLogger, WandbLogger

    loggers = parts["trainer"].loggers
    assert len(loggers) == 2
    assert sum(isinstance(lg, WandbLogger) for lg in loggers) == 1
    assert sum(isinstance(lg, CSVLogger) for lg in loggers) == 1
    assert compose_train(["logger=none", f"run_dir={tmp_path}"]).logger == {}


def test_wandb_names_from_the_run_folder(tmp_path):
    sweep = tmp_path / "2026-01-01_00-00-00_abc123"
    (sweep / "3").mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("{}\n")
    cfg = compose_train([f"run_dir={sweep / '3'}"])
    assert cfg.logger.wandb.group == sweep.name
    assert cfg.logger.wandb.name == f"{sweep.name}/3"
    single = tmp_path / "2026-01-01_00-00-00_def456"
    single.mkdir()
    cfg = compose_train([f"run_dir={single}"])
    assert cfg.logger.wandb.group is None and cfg.logger.wandb.name == single.name


def test_resume_command_line_continues_the_run_folder(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / "checkpoints").mkdir()
    (run_dir / ".hydra" / "overrides.yaml").write_text(
        "- dataset=mnist\n- batch_size=64\n- trainer.max_steps=100\n"
    )
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    # resume_argv refuses a checkpoint it cannot read: a Trainer's keys
    state = {"loops": {"fit_loop": {}}, "optimizer_states": [], "lr_schedulers": []}
    torch.save({"state_dict": {}, **state}, ckpt)
    argv = ENTRY.resume_argv([f"ckpt_path={ckpt}", "trainer.max_steps=200"])
    assert argv == [
        "dataset=mnist",
        "batch_size=64",
        f"ckpt_path={ckpt}",
        "trainer.max_steps=200",
        f"hydra.run.dir={run_dir.resolve()}",
    ]
    # a checkpoint outside a run folder, a sweep, or an explicit run dir: unchanged
    other = tmp_path / "elsewhere.ckpt"
    assert ENTRY.resume_argv([f"ckpt_path={other}"]) == [f"ckpt_path={other}"]
    assert ENTRY.resume_argv(["-m", f"ckpt_path={ckpt}"]) == ["-m", f"ckpt_path={ckpt}"]
    assert ENTRY.resume_argv(["batch_size=3"]) == ["batch_size=3"]


def test_user_errors_are_recognised_through_instantiation(tmp_path):
    cfg = compose_train(["dataset.label_noise=1.5", f"run_dir={tmp_path}"])
    with pytest.raises(Exception) as info:
        instantiate(cfg.dataset)  # what build would do, had the schema not refused it first
    assert isinstance(info.value, InstantiationException)
    assert "label_noise must be in [0, 1], got 1.5" in ENTRY.user_error(info.value)
    assert ENTRY.user_error(RuntimeError("a bug")) is None
    with pytest.raises(Exception) as info:
        ENTRY.build(cfg)
    assert ENTRY.user_error(info.value) == "dataset.label_noise=1.5: a number in [0, 1]"
