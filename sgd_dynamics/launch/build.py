"""Build every part of a run from the composed configuration, each by
`hydra.utils.instantiate` of its config node.

The nodes and what they build: ``dataset`` (the LightningDataModule), ``model`` (the network),
``optimizer`` (a partial `torch.optim.SGD`: ``_partial_: true``, called by the module with the
network's parameters), ``module`` (the LightningModule, given ``net`` and ``optimizer``),
``logger.*`` and ``callbacks.*`` (by name; ``callbacks.spectral`` is the ``spectral`` node),
``trainer`` (given the loggers and callbacks). The one value passed at instantiate time that
the YAML cannot hold: the model's ``input_dim`` and ``num_classes``, read from the loaded data
set (MNIST's and CIFAR-10's are properties of their files).

The configuration is resolved once, to plain dicts and lists (`validate_config`), checked by
`sgd_dynamics.launch.targets.check_instantiable` (every ``_target_`` one of the project's
classes, wherever it sits), and every part is built from those checked containers: nothing is
resolved again between the check and the build.

torch and Lightning are imported inside the functions, so that importing this module (and
``train.py --help``) stays fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from sgd_dynamics.utils.console import say

__all__ = ["build", "instantiate_named", "set_threads"]


def set_threads(cfg: Mapping[str, Any], net, n_train: int) -> str:
    """Size the thread pools by ``cfg["threads"]`` (sgd_dynamics.threads); returns the start-up
    line. The run's size: the network over the spectral samples (the batch with spectra off).
    `cfg`: the resolved configuration (or a DictConfig)."""
    from sgd_dynamics.models import num_parameters
    from sgd_dynamics.threads import Work, apply_threads, threads_for_run

    spectral, batch_size = cfg.get("spectral"), cfg["batch_size"]
    samples = batch_size if spectral is None else min(spectral["n_samples"] or n_train, n_train)
    launcher = HydraConfig.get().launcher if HydraConfig.initialized() else None
    work = Work(num_parameters(net), max(samples, batch_size))
    choice = threads_for_run(cfg["threads"], trainer=cfg["trainer"], launcher=launcher, work=work)
    apply_threads(choice.threads)
    return str(choice)


def instantiate_named(section: Mapping[str, Any] | None) -> list[Any]:
    """The objects of a section of named nodes (``logger``, ``callbacks``), in its order; a
    node set to null (``callbacks.progress=null``, ``spectral=off``) is left out."""
    return [instantiate(node) for node in (section or {}).values() if node is not None]


def build(cfg: DictConfig) -> dict:
    """Instantiate everything a run needs from the composed config, after `validate_config`
    and `check_instantiable`; loads the data (so missing files and bad values stop the run
    before training).

    Returns:
        ``datamodule``, ``module``, ``trainer`` and ``config`` (the resolved configuration as
        plain containers, with ``overrides``: the command line's), the arguments of the run.
    """
    import copy
    import inspect

    import pytorch_lightning as pl

    from sgd_dynamics.config_schema import validate_config, validate_sizes
    from sgd_dynamics.launch.resume_guard import check_checkpoint
    from sgd_dynamics.launch.targets import check_instantiable
    from sgd_dynamics.lightning.run import quiet_lightning
    from sgd_dynamics.models import num_parameters

    # the one resolution of the config: every part below is built from these containers
    plain = validate_config(cfg, trainer_arguments=inspect.signature(pl.Trainer).parameters)
    check_instantiable(plain)
    config = copy.deepcopy(plain)  # the record of the run; `plain` is handed to the builders
    quiet_lightning()
    pl.seed_everything(plain["seed"], workers=True, verbose=False)
    datamodule = instantiate(plain["dataset"])
    datamodule.load()
    dims = dict(input_dim=datamodule.input_dim, num_classes=datamodule.num_classes)
    net = instantiate(plain["model"], **dims)  # the dimensions: from the loaded data set
    validate_sizes(plain, n_train=datamodule.n_train, n_params=num_parameters(net))
    say(set_threads(plain, net, datamodule.n_train))
    module = instantiate(plain["module"], net=net, optimizer=instantiate(plain["optimizer"]))
    if plain["ckpt_path"] is not None:
        check_checkpoint(plain["ckpt_path"], module)
    loggers = instantiate_named(plain.get("logger"))
    trainer = instantiate(
        plain["trainer"],
        logger=loggers or False,
        callbacks=instantiate_named(plain.get("callbacks")),
    )
    config["overrides"] = (
        list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    )
    return dict(datamodule=datamodule, module=module, trainer=trainer, config=config)
