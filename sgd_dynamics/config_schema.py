"""The one typed description of a run's configuration, and its validation.

`SCHEMA` lists every key of the composed configuration (conf/train.yaml with its groups): the
values it accepts and a one-line meaning. Defaults live in the YAML files only. `validate_config`
checks a composed configuration (any mapping: a plain dict or an OmegaConf DictConfig) before
anything is built: unknown keys, types, ranges, choices and the rules between keys.
`validate_sizes` adds the rules that need the loaded data set and the built model (batch size
against n_train, spectral k against the number of parameters P). Both raise `ConfigError` with
the message ``<key>=<value>: <what is accepted>``.

Adding a key is one line in `SCHEMA`; `scripts/gen_docs.py` renders the table of keys in
docs/configuration.md from it (a test checks that the page is current).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from sgd_dynamics.curvature.options import DTYPES, HP_METHODS, METHODS
from sgd_dynamics.models import ACTIVATIONS
from sgd_dynamics.utils.dotted import get_dotted as _get
from sgd_dynamics.utils.errors import ConfigError
from sgd_dynamics.utils.suggest import did_you_mean
from sgd_dynamics.utils.validate import is_integer as _is_int

__all__ = [
    "SCHEMA",
    "ConfigError",
    "Key",
    "allowed_targets",
    "check_setting",
    "format_value",
    "validate_config",
    "validate_sizes",
]


# ----------------------------------------------------------------------------- value kinds
def format_value(value: object) -> str:
    """A value as it is written on the command line: null, true, 0.1, nan, abc, [0, 1]."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {format_value(v)}" for k, v in value.items()) + "}"
    return str(value)


@dataclass(frozen=True)
class Kind:
    """A set of accepted values: `accepts(value)`, the text that describes them and, for a
    choice, the values themselves."""

    accepts: Callable[[object], bool]
    text: str
    values: tuple[object, ...] = ()

    def __or__(self, other: Kind) -> Kind:
        return Kind(
            lambda v: self.accepts(v) or other.accepts(v),
            f"{self.text} or {other.text}",
            self.values + other.values,
        )


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


NULL = Kind(lambda v: v is None, "null")
BOOL = Kind(lambda v: isinstance(v, bool), "true or false")
PATH = Kind(lambda v: isinstance(v, str) and v != "", "a path")
TEXT = Kind(lambda v: isinstance(v, str) and v != "", "a name")
SECTION = Kind(lambda v: isinstance(v, Mapping), "a mapping")


def integer(low: int, high: int | None = None) -> Kind:
    """Integers in [low, high] (high None: no upper bound)."""
    text = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
    return Kind(
        lambda v: _is_int(v) and v >= low and (high is None or v <= high),
        text,
    )


def number(low: float, high: float | None = None, low_open: bool = False) -> Kind:
    """Finite real numbers >= low (> low when low_open) and <= high."""
    if high is None:
        text = f"a finite number {'>' if low_open else '>='} {low:g}"
    else:
        text = f"a number in {'(' if low_open else '['}{low:g}, {high:g}]"
    return Kind(
        lambda v: (
            _is_number(v)
            and math.isfinite(v)
            and (v > low if low_open else v >= low)
            and (high is None or v <= high)
        ),
        text,
    )


def choice(*values: object) -> Kind:
    """One of `values` (compared with ==, booleans kept apart from numbers)."""
    shown = ", ".join(format_value(v) for v in values)
    shown = f"one of {shown}" if len(values) > 1 else shown
    return Kind(
        lambda v: any(v == c and type(v) is type(c) for c in values),
        shown,
        values,
    )


def choice_of(values: Iterable[object]) -> Kind:
    """One of a choice list defined elsewhere (a tuple, the keys of a dict, or a str Enum, whose
    members are written by their values): the list is defined once, where it is used."""
    return choice(*(getattr(v, "value", v) for v in values))


def int_list(low: int) -> Kind:
    """A non-empty list of integers >= low."""
    return Kind(
        lambda v: isinstance(v, list) and len(v) > 0 and all(_is_int(i) and i >= low for i in v),
        f"a list of integers >= {low}",
    )


def target_list(*targets: str) -> Kind:
    """A list of ``{_target_: <one of targets>}`` entries (Lightning plugins built by Hydra)."""
    return Kind(
        lambda v: (
            isinstance(v, list)
            and all(
                isinstance(i, dict) and set(i) == {"_target_"} and i["_target_"] in targets
                for i in v
            )
        ),
        f"a list of {{_target_: {' | '.join(targets)}}}",
        targets,
    )


# ----------------------------------------------------------------------------- the schema
GAUSS10 = "sgd_dynamics.lightning.Gauss10DataModule"
FILE_DATA = (
    "sgd_dynamics.lightning.MNISTDataModule",
    "sgd_dynamics.lightning.FashionMNISTDataModule",
    "sgd_dynamics.lightning.CIFAR10DataModule",
)


@dataclass(frozen=True)
class Key:
    """One configuration key.

    Attributes:
        name: dotted path in the composed configuration (``spectral.k``).
        kind: the values it accepts.
        meaning: one line for the table of keys in docs/configuration.md.
        only: the ``_target_`` values of its section it belongs to (empty: every one).
        set_by_group: chosen by a group option or interpolated from a top-level key (``_target_``,
            ``dataset.seed``, output folders): listed apart from the table of keys users set.
    """

    name: str
    kind: Kind
    meaning: str
    only: tuple[str, ...] = ()
    set_by_group: bool = False


def _target(name: str, *targets: str) -> Key:
    return Key(name, choice(*targets), "the class this section builds", set_by_group=True)


def _derived(name: str, kind: Kind, meaning: str, only: tuple[str, ...] = ()) -> Key:
    return Key(name, kind, meaning, only=only, set_by_group=True)


INT_OR_NULL_1 = NULL | integer(1)
SEED_MAX = 2**32 - 1  # the range Lightning's seed_everything accepts

# fmt: off
SCHEMA: tuple[Key, ...] = (
    # top level
    Key("seed", integer(0, SEED_MAX), "model initialisation and data seed (generation, subset, label noise, order)"),  # noqa: E501
    Key("batch_size", integer(1), "SGD mini-batch size (the global batch under DDP); at most the number of training samples"),  # noqa: E501
    Key("lr", number(0, low_open=True), "SGD learning rate"),
    Key("ckpt_path", NULL | PATH, "checkpoint to resume from (`RUN_DIR/checkpoints/last.ckpt` continues RUN_DIR)"),  # noqa: E501
    Key("threads", integer(1) | choice("auto"), "CPU threads of this process for torch and BLAS (auto: chosen from the free cores)"),  # noqa: E501
    _derived("run_dir", PATH, "this run's output folder, set by Hydra"),
    # dataset
    _target("dataset._target_", GAUSS10, *FILE_DATA),
    _derived("dataset.seed", integer(0, SEED_MAX), "= seed"),
    _derived("dataset.batch_size", integer(1), "= batch_size"),
    Key("dataset.n_train", INT_OR_NULL_1, "training samples: a subset drawn from the seed (null: all; Gauss-10: the number generated)"),  # noqa: E501
    Key("dataset.label_noise", number(0, 1), "fraction of training labels replaced by uniformly random labels"),  # noqa: E501
    Key("dataset.eval_batch_size", integer(1), "batch size of the test-set and final evaluations"),
    Key("dataset.drop_last", BOOL, "drop the last incomplete training batch of each epoch"),
    Key("dataset.num_workers", integer(0), "DataLoader worker processes (0: load in the training process)"),  # noqa: E501
    Key("dataset.root", PATH, "folder holding the data files (MNIST, Fashion-MNIST, CIFAR-10)", only=FILE_DATA),  # noqa: E501
    Key("dataset.download", BOOL, "fetch missing files from the public mirrors (md5-checked)", only=FILE_DATA),  # noqa: E501
    Key("dataset.n_test", integer(1), "Gauss-10: held-out test samples", only=(GAUSS10,)),
    Key("dataset.input_dim", integer(1), "Gauss-10: input dimension", only=(GAUSS10,)),
    Key("dataset.num_classes", integer(2), "Gauss-10: number of classes", only=(GAUSS10,)),
    Key("dataset.mean_scale", number(0, low_open=True), "Gauss-10: spread of the class means", only=(GAUSS10,)),  # noqa: E501
    Key("dataset.noise_std", number(0, low_open=True), "Gauss-10: within-class standard deviation per input dimension", only=(GAUSS10,)),  # noqa: E501
    # model
    _target("model._target_", "sgd_dynamics.models.MLP"),
    Key("model.depth", integer(0), "hidden layers (the paper's \"2-layer\" net is depth 1)"),
    Key("model.width", integer(1), "units per hidden layer"),
    Key("model.activation", choice(*ACTIVATIONS), "activation after each hidden layer"),
    Key("model.bias", BOOL, "layers with biases"),
    # optimizer: a partial torch.optim.SGD, called by the module with the network's parameters
    _target("optimizer._target_", "torch.optim.SGD"),
    _derived("optimizer._partial_", choice(True), "the module calls it with the parameters"),
    _derived("optimizer.lr", number(0, low_open=True), "= lr"),
    Key("optimizer.momentum", number(0), "heavy-ball momentum (0: plain SGD)"),
    Key("optimizer.weight_decay", number(0), "L2 penalty added by the optimiser"),
    Key("optimizer.nesterov", BOOL, "Nesterov momentum (needs optimizer.momentum > 0)"),
    # module: the LightningModule, given the model and the optimizer when it is built
    _target("module._target_", "sgd_dynamics.lightning.module.ClassifierModule"),
    # trainer (also any other pytorch_lightning.Trainer argument, unchecked here)
    _target("trainer._target_", "pytorch_lightning.Trainer"),
    _derived("trainer.plugins", target_list("sgd_dynamics.lightning.checkpoint_io.AtomicCheckpointIO"), "atomic checkpoint writes"),  # noqa: E501
    Key("trainer.max_steps", integer(1) | choice(-1), "SGD steps (-1: trainer.max_epochs decides)"),
    Key("trainer.max_epochs", NULL | integer(1) | choice(-1), "epochs (null: no limit when max_steps is set, 1000 when it is -1)"),  # noqa: E501
    Key("trainer.accelerator", choice("cpu", "gpu", "cuda", "mps", "auto"), "device kind"),
    Key("trainer.devices", integer(1) | choice(-1) | choice("auto") | int_list(0), "devices (processes under DDP; -1: all visible GPUs)"),  # noqa: E501
    Key("trainer.strategy", choice("auto", "ddp"), "ddp: data-parallel training (trainer=ddp, ddp_cpu)"),  # noqa: E501
    Key("trainer.num_nodes", integer(1), "nodes of a multi-node DDP run"),
    Key("trainer.use_distributed_sampler", BOOL, "Lightning's distributed sampler (false: the data module shards each global batch)"),  # noqa: E501
    Key("trainer.val_check_interval", integer(1) | number(0, 1, low_open=True), "evaluate the test set every this many steps (a fraction: of an epoch)"),  # noqa: E501
    Key("trainer.check_val_every_n_epoch", INT_OR_NULL_1, "null: val_check_interval counts global steps across epochs"),  # noqa: E501
    Key("trainer.log_every_n_steps", integer(1), "log train/loss and train/acc every this many steps"),  # noqa: E501
    Key("trainer.num_sanity_val_steps", integer(-1), "validation batches run before training (-1: all)"),  # noqa: E501
    Key("trainer.enable_model_summary", BOOL, "print Lightning's model summary"),
    Key("trainer.enable_progress_bar", BOOL, "Lightning's progress bar (a TQDM bar on a terminal, plain lines otherwise)"),  # noqa: E501
    Key("trainer.deterministic", BOOL | choice("warn"), "deterministic torch algorithms"),
    _derived("trainer.default_root_dir", PATH, "= run_dir"),
    # loggers, by name
    _target("logger.wandb._target_", "sgd_dynamics.lightning.loggers.wandb_logger"),
    _derived("logger.wandb.save_dir", PATH, "= run_dir"),
    Key("logger.wandb.project", TEXT, "wandb project"),
    Key("logger.wandb.name", NULL | TEXT, "wandb run name (the run folder's name)"),
    Key("logger.wandb.group", NULL | TEXT, "wandb group (the sweep folder's name)"),
    Key("logger.wandb.offline", BOOL, "false: log online (after `wandb login`)"),
    Key("logger.wandb.log_model", BOOL | choice("all"), "upload checkpoints to wandb"),
    _target("logger.csv._target_", "sgd_dynamics.lightning.loggers.csv_logger"),
    _derived("logger.csv.save_dir", PATH, "= run_dir"),
    Key("logger.csv.name", TEXT, "subfolder of the run folder for the CSV files"),
    # callbacks, by name
    _target("callbacks.checkpoint._target_", "callbacks.last_checkpoint.LastCheckpoint"),  # noqa: E501
    _derived("callbacks.checkpoint.dirpath", PATH, "= run_dir/checkpoints"),
    Key("callbacks.checkpoint.every_n_steps", NULL | integer(1), "write checkpoints/last.ckpt every this many steps (also at step 0, the last step and on SIGINT/SIGTERM)"),  # noqa: E501
    Key("callbacks.checkpoint.every_n_seconds", NULL | number(0, low_open=True), "and/or every this many seconds, whichever comes first"),  # noqa: E501
    _target("callbacks.progress._target_", "callbacks.progress.console_progress_bar"),
    Key("callbacks.progress.every_n_seconds", number(0, low_open=True), "seconds between progress lines"),  # noqa: E501
    _derived("callbacks.spectral", NULL | SECTION, "= spectral (the spectral snapshots, built like every callback)"),  # noqa: E501
    # spectral snapshots
    _target("spectral._target_", "callbacks.spectral.SpectralSnapshots"),
    _derived("spectral.run_dir", PATH, "= run_dir"),
    Key("spectral.k", integer(1), "top eigenpairs of H_f, M and H_p and principal angles per snapshot; at most P"),  # noqa: E501
    Key("spectral.method", choice_of(METHODS), "dense: exact P×P matrices, all eigenvalues; iterative: matrix-free; auto: dense when P ≤ 3000"),  # noqa: E501
    Key("spectral.n_samples", INT_OR_NULL_1, "fixed subset of the training set the spectra are computed on (null: all); at least batch_size"),  # noqa: E501
    # the engine's dtypes, float64 (the default) first
    Key("spectral.dtype", choice_of(reversed(DTYPES)), "precision of the curvature computation"),
    Key("spectral.log_points", choice("auto") | NULL | integer(2), "about this many snapshots spaced evenly in log(step + 1) (auto: one per 100 steps, 10 to 30; null: off)"),  # noqa: E501
    Key("spectral.every_n_steps", INT_OR_NULL_1, "and/or one snapshot every this many steps (null: off)"),  # noqa: E501
    Key("spectral.chunk_size", INT_OR_NULL_1, "samples per chunk in the matrix-free products (null: the engine's choice)"),  # noqa: E501
    Key("spectral.warm_start", BOOL, "start each iterative solve from the previous snapshot's eigenvectors"),  # noqa: E501
    Key("spectral.hp_method", choice_of(HP_METHODS), "H_p's extremes (iterative): converged solve, Rayleigh-Ritz estimates, or none"),  # noqa: E501
    Key("spectral.draw_every", integer(0), "draw the figures (and log them to wandb) every this many snapshots and at the end (0: only at the end)"),  # noqa: E501
    Key("spectral.progress_every", number(0, low_open=True), "seconds between progress lines inside a long snapshot"),  # noqa: E501
    Key("spectral.draw_at_end", BOOL, "draw the figures at the end of training (false: later with `sgd-dynamics plot`)"),  # noqa: E501
    Key("spectral.density", BOOL, "spectral densities of H_f, M and H_p and W1(H_p, -H_f) at density_points snapshots (docs/densities.md)"),  # noqa: E501
    Key("spectral.density_points", integer(1), "how many snapshots get densities: log-spaced among them, always the last"),  # noqa: E501
)
# fmt: on

# sections that may be null (spectral=off, logger=none, callbacks.progress=null, ...)
NULLABLE = ("spectral", "logger", "callbacks")
# sections whose other keys are arguments of a third-party class, passed in by the caller
OPEN_SECTIONS = ("trainer",)
# the config groups of conf/ (``dataset=mnist``; conf/hydra/ is Hydra's own)
CONFIG_GROUPS = (
    "dataset",
    "model",
    "optimizer",
    "module",
    "trainer",
    "logger",
    "callbacks",
    "spectral",
    "experiment",
)
# Trainer arguments that train.py sets itself
RESERVED_TRAINER_ARGUMENTS = ("logger", "callbacks")

KEYS: dict[str, Key] = {k.name: k for k in SCHEMA}
SECTIONS: frozenset[str] = frozenset(
    ".".join(k.name.split(".")[:i]) for k in SCHEMA for i in range(1, k.name.count(".") + 1)
)


def allowed_targets() -> frozenset[str]:
    """Every ``_target_`` the configuration may name: the classes of the project's conf/."""
    names = (k for k in SCHEMA if k.name.endswith("._target_") or k.name == "trainer.plugins")
    return frozenset(str(v) for k in names for v in k.kind.values)


def check_setting(name: str, value: object) -> None:
    """Check one setting given outside a composed configuration (a callback built in Python)
    against its key in `SCHEMA`, so that the rule stays in one place.

    Raises:
        ValueError: ``<name> must be <what is accepted>, got <value>``.
    """
    kind = KEYS[name].kind
    if not kind.accepts(value):
        raise ValueError(f"{name} must be {kind.text}, got {value!r}")


# ----------------------------------------------------------------------------- validation
def _refuse(key: str, value: object, accepted: str) -> ConfigError:
    return ConfigError(f"{key}={format_value(value)}: {accepted}")


def _plain(node: object, path: str) -> object:
    """`node` with every mapping turned into a dict and every list into a list, interpolations
    resolved (an OmegaConf DictConfig resolves them on access)."""
    if isinstance(node, Mapping):
        places = [(f"{path}.{key}" if path else str(key), key) for key in list(node.keys())]
    elif isinstance(node, Sequence) and not isinstance(node, (str, bytes)):
        places = [(f"{path}[{index}]", index) for index in range(len(node))]
    else:
        return node
    values = []
    for where, key in places:
        try:
            value = node[key]
        except Exception as exc:  # an interpolation that cannot be resolved
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError(f"{where}: cannot be resolved: {message}") from None
        values.append(_plain(value, where))
    if isinstance(node, Mapping):
        return {str(key): value for (_, key), value in zip(places, values, strict=True)}
    return values


def _applies(key: Key, section: Mapping[str, object]) -> bool:
    return not key.only or section.get("_target_") in key.only


def _leaves(
    node: Mapping[str, object], path: str, open_keys: Mapping[str, Collection[str]]
) -> Iterator[tuple[str, object]]:
    """(key, value) of every key of the schema present under `node`; `ConfigError` for a key
    the schema does not know (with the valid keys of that section) or a section of the wrong
    type."""
    for name, value in node.items():
        where = f"{path}.{name}" if path else name
        if where in SECTIONS and where not in KEYS:
            if value is None and where.split(".")[0] in NULLABLE:
                continue
            if not isinstance(value, Mapping):
                raise _refuse(where, value, "a mapping of the keys of that section")
            yield from _leaves(value, where, open_keys)
        elif where in KEYS and _applies(KEYS[where], node):
            yield where, value
        elif name in open_keys.get(path, ()):
            continue
        else:
            valid = _valid_keys(node, path, open_keys)
            names = [f"{path}.{n}" if path else n for n in valid.split(": ", 1)[1].split(", ")]
            raise _refuse(where, value, f"unknown key; {valid}{did_you_mean(where, names)}")


def _valid_keys(
    node: Mapping[str, object], path: str, open_keys: Mapping[str, Collection[str]]
) -> str:
    """``valid keys of <section>: a, b, c`` (those that apply to its ``_target_``)."""
    prefix = f"{path}." if path else ""
    names = sorted(
        {
            name[len(prefix) :].split(".")[0]
            for name in [*KEYS, *SECTIONS]
            if name.startswith(prefix) and (name not in KEYS or _applies(KEYS[name], node))
        }
        | set(open_keys.get(path, ()))
    )
    return f"valid keys of {path or 'the top level'}: {', '.join(names)}"


def validate_config(
    config: Mapping[str, object], trainer_arguments: Collection[str] = ()
) -> dict[str, object]:
    """Check a composed configuration against `SCHEMA`, before anything is built.

    Args:
        config: the composed configuration (without Hydra's own ``hydra`` section); a
            DictConfig's interpolations are resolved on access.
        trainer_arguments: the argument names of the Trainer class: further ``trainer.*`` keys
            with these names are accepted unchecked (the class checks them).

    Returns:
        the configuration as plain dicts and lists, interpolations resolved.

    Raises:
        ConfigError: ``<key>=<value>: <what is accepted>`` for the first key that is unknown,
            of the wrong type, out of range, or breaks a rule between keys.
    """
    plain = _plain(config, "")
    if not isinstance(plain, dict):
        raise ConfigError(f"the configuration must be a mapping, got {type(config).__name__}")
    plain.pop("hydra", None)
    extra = [a for a in trainer_arguments if a not in RESERVED_TRAINER_ARGUMENTS]
    present = dict(_leaves(plain, "", {"trainer": extra}))
    for key in SCHEMA:  # in the schema's order: a top-level key before its copies in the groups
        if key.name in present and not key.kind.accepts(present[key.name]):
            raise _refuse(key.name, present[key.name], key.kind.text)
    for rule in RULES:
        rule(plain)
    return plain


def _nesterov_needs_momentum(config: Mapping[str, object]) -> None:
    if _get(config, "optimizer.nesterov") is True and not _get(config, "optimizer.momentum"):
        raise _refuse("optimizer.nesterov", True, "needs optimizer.momentum > 0")


def _generated_sets_need_n_train(config: Mapping[str, object]) -> None:
    dataset = config.get("dataset") or {}
    if dataset.get("_target_") == GAUSS10 and dataset.get("n_train", 0) is None:
        raise _refuse(
            "dataset.n_train", None, "an integer >= 1 (Gauss-10 generates n_train samples)"
        )  # noqa: E501


def _batch_within_generated_set(config: Mapping[str, object]) -> None:
    n_train = _get(config, "dataset.n_train")
    if _is_int(n_train):
        _check_batch(config, int(n_train))


def _check_batch(config: Mapping[str, object], n_train: int) -> None:
    batch = config.get("batch_size")
    if _is_int(batch) and batch > n_train:
        raise _refuse(
            "batch_size", batch, f"an integer from 1 to {n_train}, the number of training samples"
        )


def _ddp_batch_splits_evenly(config: Mapping[str, object]) -> None:
    """Under DDP each of the R = devices × num_nodes processes trains on B/R samples."""
    trainer = config.get("trainer") or {}
    devices, nodes = trainer.get("devices"), trainer.get("num_nodes", 1)
    if not str(trainer.get("strategy", "auto")).startswith("ddp"):
        return
    if isinstance(devices, list):
        devices = len(devices)
    batch = config.get("batch_size")
    if _is_int(devices) and devices >= 1 and _is_int(nodes) and _is_int(batch):
        if batch % (devices * nodes):
            raise _refuse(
                "batch_size",
                batch,
                f"a multiple of the {devices * nodes} DDP processes (trainer.devices × "
                "trainer.num_nodes): the global batch is split evenly",
            )


# rules between keys that the configuration alone decides
RULES: tuple[Callable[[Mapping[str, object]], None], ...] = (
    _nesterov_needs_momentum,
    _generated_sets_need_n_train,
    _batch_within_generated_set,
    _ddp_batch_splits_evenly,
)


def validate_sizes(config: Mapping[str, object], n_train: int, n_params: int) -> None:
    """The rules that need the loaded data set and the built model, checked before training.

    - ``batch_size <= n_train`` (the training samples after the subset);
    - ``spectral.k <= P`` (`n_params`, the parameters of the model);
    - ``batch_size <= min(spectral.n_samples, n_train)``: the mini-batch second moment M_b
      averages over batches of the spectral subset.

    Raises:
        ConfigError: ``<key>=<value>: <what is accepted>``.
    """
    _check_batch(config, n_train)
    spectral = config.get("spectral")
    if not isinstance(spectral, Mapping):
        return
    k = spectral.get("k")
    if _is_int(k) and k > n_params:
        raise _refuse(
            "spectral.k", k, f"an integer from 1 to {n_params}, the number of parameters P"
        )
    n_samples = spectral.get("n_samples")
    batch = config.get("batch_size")
    if _is_int(n_samples) and _is_int(batch) and n_samples < min(batch, n_train):
        raise _refuse(
            "spectral.n_samples",
            n_samples,
            f"null or an integer >= batch_size = {batch} (M_b averages over mini-batches of "
            "the spectral samples)",
        )
