"""The configuration schema: it agrees with conf/ and with the classes it configures, it
accepts every shipped option, and its kinds accept and refuse what they say."""

from __future__ import annotations

import ast
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from pipeline_helpers import REPO_ROOT, config_options, load_entry_point

from sgd_dynamics.config_schema import (
    SCHEMA,
    allowed_targets,
    validate_config,
    validate_sizes,
)
from sgd_dynamics.models import ACTIVATIONS
from sgd_dynamics.utils import ConfigError

CONF = REPO_ROOT / "conf"
load_entry_point()  # registers the resolvers the configs use


def documented_choices(key: str) -> list[str]:
    """The choices the schema documents for `key` (the text of docs/configuration.md's table)."""
    accepted = next(k for k in SCHEMA if k.name == key).kind.text
    assert accepted.startswith("one of "), accepted
    return accepted.removeprefix("one of ").split(", ")


def test_documented_choices_are_what_the_classes_accept(tmp_path):
    """Each documented choice builds the class that takes it; the classes take nothing else."""
    from callbacks.spectral import SpectralSnapshots
    from sgd_dynamics.models import MLP

    assert set(documented_choices("model.activation")) == set(ACTIVATIONS)
    for activation in documented_choices("model.activation"):
        MLP(4, 3, activation=activation)
    for key in ("dtype", "method", "hp_method"):
        for value in documented_choices(f"spectral.{key}"):
            SpectralSnapshots(tmp_path, **{key: value})
        with pytest.raises(ValueError, match=f"spectral.{key}"):
            SpectralSnapshots(tmp_path, **{key: "other"})


def conf_targets() -> set[str]:
    targets: set[str] = set()

    def walk(node: object) -> None:  # Hydra's own section (hydra.callbacks) is not the run's
        if isinstance(node, dict):
            targets.update(str(v) for k, v in node.items() if k == "_target_")
            for key, value in node.items():
                if key != "hydra":
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in CONF.rglob("*.yaml"):
        if "hydra" not in path.relative_to(CONF).parts:
            walk(yaml.safe_load(path.read_text()))
    return targets


def test_the_allowed_targets_are_those_of_conf():
    assert allowed_targets() == conf_targets()


def options() -> list[tuple[str, str]]:
    return config_options()


@pytest.mark.parametrize("group, option", options())
def test_every_shipped_option_is_valid(group, option, tmp_path):
    """Every key of every option of conf/ is in the schema and holds an accepted value."""
    # the DDP options split the global batch over 2 or 8 processes: a batch of 8 splits evenly
    batch = ["batch_size=8"] if group == "trainer" else []
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"{group}={option}", *batch, f"run_dir={tmp_path}"])
    plain = validate_config(cfg)
    assert plain["run_dir"] == str(tmp_path)
    assert plain["dataset"]["seed"] == plain["seed"]  # interpolations resolved


@pytest.mark.parametrize(
    "config, message",
    [
        ({"lr": True}, "lr=true: a finite number > 0"),
        ({"lr": math.inf}, "lr=inf: a finite number > 0"),
        ({"seed": 2**32}, "seed=4294967296: an integer from 0 to 4294967295"),
        ({"batch_size": 5.0}, "batch_size=5.0: an integer >= 1"),
        ({"threads": 0}, "threads=0: an integer >= 1 or auto"),
        ({"threads": "all"}, "threads=all: an integer >= 1 or auto"),
        ({"spectral": 3}, "spectral=3: a mapping of the keys of that section"),
        ({"dataset": None}, "dataset=null: a mapping of the keys of that section"),
        ({"model": {"activation": "swish"}}, "model.activation=swish: one of relu, tanh"),
        ({"trainer": {"devices": [0, -1]}}, "trainer.devices=[0, -1]: an integer >= 1 or -1"),
        (
            {"optimizer": {"nesterov": True, "momentum": 0.0}},
            "optimizer.nesterov=true: needs optimizer.momentum > 0",
        ),
        (
            {"batch_size": 11, "dataset": {"n_train": 10}},
            "batch_size=11: an integer from 1 to 10, the number of training samples",
        ),
        (
            {"dataset": {"_target_": "sgd_dynamics.lightning.Gauss10DataModule", "n_train": None}},
            "dataset.n_train=null: an integer >= 1 (Gauss-10",
        ),
        (
            {"dataset": {"_target_": "sgd_dynamics.lightning.MNISTDataModule", "n_test": 5}},
            "dataset.n_test=5: unknown key; valid keys of dataset: _target_, batch_size, download",
        ),
        (
            {"callbacks": {"x": {"_target_": "shutil.copyfile"}}},
            "callbacks.x={_target_: shutil.copyfile}: unknown key; valid keys of callbacks: "
            "checkpoint, progress",
        ),
        ({"model": {"_target_": "os.system"}}, "model._target_=os.system: sgd_dynamics.models.MLP"),
        ({"trainer": {"logger": True}}, "trainer.logger=true: unknown key"),
    ],
)
def test_values_refused(config, message):
    with pytest.raises(ConfigError) as info:
        validate_config(config, trainer_arguments=["logger", "precision"])
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    "config",
    [
        {"lr": 1, "seed": 0, "threads": "auto", "batch_size": 1},
        {"lr": 1e-300, "seed": 2**32 - 1, "threads": 4},
        {"spectral": None, "logger": {}, "callbacks": {"progress": None}},
        {"trainer": {"max_steps": -1, "max_epochs": 2, "devices": "auto", "precision": 64}},
        {"trainer": {"val_check_interval": 0.5, "devices": [0, 1], "deterministic": "warn"}},
        {"optimizer": {"nesterov": True, "momentum": 0.9}},
    ],
)
def test_values_accepted(config):
    validate_config(config, trainer_arguments=["precision"])


def test_rules_that_need_the_data_and_the_model():
    config = {"batch_size": 64, "spectral": {"k": 15, "n_samples": 2000}}
    validate_sizes(config, n_train=60000, n_params=89610)
    with pytest.raises(ConfigError, match=r"^batch_size=64: an integer from 1 to 50, the number"):
        validate_sizes(config, n_train=50, n_params=89610)
    with pytest.raises(ConfigError, match=r"^spectral.k=15: an integer from 1 to 14, the number"):
        validate_sizes(config, n_train=60000, n_params=14)
    small = {"batch_size": 64, "spectral": {"k": 15, "n_samples": 32}}
    with pytest.raises(ConfigError, match=r"^spectral.n_samples=32: null or an integer >= "):
        validate_sizes(small, n_train=60000, n_params=89610)
    validate_sizes({"batch_size": 64, "spectral": None}, n_train=64, n_params=1)


def test_the_library_modules_import_neither_hydra_nor_lightning(tmp_path):
    # The resume check lives in the launch layer, whose package imports Hydra; the check's
    # own module imports neither Hydra nor Lightning (read from its source).
    guard = REPO_ROOT / "sgd_dynamics" / "launch" / "resume_guard.py"
    imported = set()
    for node in ast.walk(ast.parse(guard.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            imported.add((node.module or "").split(".")[0])
    assert "torch" in imported
    assert imported.isdisjoint({"hydra", "omegaconf", "pytorch_lightning", "lightning"})
    code = (
        "import sys, sgd_dynamics.config_schema;"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('hydra', 'omegaconf', 'pytorch_lightning', 'lightning', 'lightning_fabric')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=Path(tmp_path), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
