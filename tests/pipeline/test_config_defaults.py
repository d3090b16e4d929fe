"""One source of defaults: where a constructor of the project that conf/ names also has a
Python default for a key the YAML sets, the two agree (so notebook use and a run cannot drift)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf
from pipeline_helpers import REPO_ROOT, config_options, load_entry_point

CONF = REPO_ROOT / "conf"
PROJECT_MODULES = ("sgd_dynamics.", "callbacks.")  # third-party classes keep their own defaults
load_entry_point()  # registers the resolvers the configs use


def group_defaults() -> list[tuple[str, str]]:
    """(group, option) of every option of every group but `experiment` and the options an
    experiment chooses (``spectral=paper_mnist``), whose values are the paper's settings,
    overriding the defaults on purpose, and conf/hydra."""
    experiments = {option for group, option in config_options() if group == "experiment"}
    return [
        (group, option)
        for group, option in config_options(skip=("hydra", "experiment"))
        if option not in experiments
    ]


def target_nodes(node: object, path: str = "") -> Iterator[tuple[str, DictConfig]]:
    """(dotted path, node) of every mapping with a ``_target_`` under `node`."""
    if OmegaConf.is_dict(node):
        if "_target_" in node:
            yield path, node
        for key in node:
            child = node._get_node(key)
            if OmegaConf.is_dict(child) or OmegaConf.is_list(child):
                yield from target_nodes(child, f"{path}.{key}" if path else str(key))
    elif OmegaConf.is_list(node):
        for i, child in enumerate(node):
            yield from target_nodes(child, f"{path}[{i}]")


@pytest.mark.parametrize("group, option", group_defaults())
def test_python_defaults_equal_the_yaml(group, option, tmp_path):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"{group}={option}", f"run_dir={tmp_path}"])
    checked = 0
    for path, node in target_nodes(cfg):
        if path.startswith("callbacks.spectral") or not node._target_.startswith(PROJECT_MODULES):
            continue  # callbacks.spectral is the spectral node itself, checked as `spectral`
        for name, parameter in inspect.signature(get_object(node._target_)).parameters.items():
            if parameter.default is inspect.Parameter.empty or name not in node:
                continue
            value = OmegaConf.select(node, name)
            value = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
            assert value == parameter.default, f"{path}.{name}: YAML {value!r}, Python default"
            checked += 1
    assert checked > 0 or group in ("logger", "optimizer", "module", "trainer")


def test_the_spectral_callback_defaults_are_the_yaml_values(tmp_path):
    """The spectral callback in particular: every key of conf/spectral/default.yaml but run_dir
    is a constructor default, equal to the YAML's value."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"run_dir={tmp_path}"])
    parameters = inspect.signature(get_object(cfg.spectral._target_)).parameters
    yaml_values = OmegaConf.to_container(cfg.spectral, resolve=True)
    yaml_values.pop("_target_")
    yaml_values.pop("run_dir")
    assert {k: parameters[k].default for k in yaml_values} == yaml_values
