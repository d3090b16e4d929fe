"""The trust boundary, checked on what is built: every ``_target_`` that reaches
`hydra.utils.instantiate` after resolution is one of the project's classes; replayed overrides
are data; typed overrides call only the accepted resolvers; run-folder files are read within
limits.

Generated values (hypothesis) build nodes, ``_target_`` keys and targets through OmegaConf's
resolvers (``oc.create``, ``oc.decode``, ``oc.select`` splicing, interpolations of other keys),
nested in lists and dicts, on schema keys and open ``trainer.*`` keys. They are applied to the
composed config exactly as Hydra applies command-line overrides, and `build` runs with a
recording `instantiate`: it either refuses with a `ConfigError`, or every target it hands to
`instantiate` (nested ones included) is in the allow-list.
"""

from __future__ import annotations

import copy
import importlib
import warnings
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from sgd_dynamics.config_schema import SCHEMA, allowed_targets
from sgd_dynamics.launch import register_resolvers
from sgd_dynamics.launch.overrides import (
    check_replayed_overrides,
    check_typed_resolvers,
    parse_overrides,
)
from sgd_dynamics.launch.targets import check_instantiable
from sgd_dynamics.utils import ConfigError

build_module = importlib.import_module("sgd_dynamics.launch.build")  # the module, not build()
REPO_ROOT = Path(__file__).resolve().parents[2]
ALLOWED = allowed_targets()
FOREIGN = ("torch.load", "os.system", "builtins.exec", "subprocess.run", "pickle.loads")
SOURCE = Path("RUN/.hydra/overrides.yaml")
TRAINER_ARGUMENTS = ("profiler", "plugins", "strategy", "gradient_clip_val", "detect_anomaly")

pytestmark = pytest.mark.filterwarnings("ignore:In the sequence")


@pytest.fixture(scope="module")
def base_config():
    """conf/ composed once (Hydra's compose API), its run folder given."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=["run_dir=/nonexistent/run"])


def with_overrides(base, texts: list[str]):
    """`base` with the key overrides `texts`, applied as Hydra applies command-line ones."""
    cfg = copy.deepcopy(base)
    ConfigLoaderImpl._apply_overrides_to_config(parse_overrides(texts), cfg)
    return cfg


def targets_in(node: Any) -> list[object]:
    """Every ``_target_`` value in plain or OmegaConf containers (nested, in lists too)."""
    if OmegaConf.is_config(node):
        node = OmegaConf.to_container(node, resolve=True)
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "_target_":
                found.append(value)
            found.extend(targets_in(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(targets_in(value))
    return found


def build_recording(cfg) -> list[object]:
    """`build(cfg)` with `instantiate` replaced by a recorder of the targets it is handed (the
    node's and its nested ones, as Hydra's recursive instantiation would build them); returns
    them. Nothing is built."""
    seen: list[object] = []

    def record(config, *args, **kwargs):
        seen.extend(targets_in(config))
        return mock.MagicMock(n_train=100, input_dim=20, num_classes=10)

    with (
        mock.patch.object(build_module, "instantiate", record),
        mock.patch.object(build_module, "set_threads", lambda *a: "threads"),
        mock.patch("sgd_dynamics.models.num_parameters", lambda net: 1000),
    ):
        build_module.build(cfg)
    return seen


# ----------------------------------------------------------------------------- the attack
ATTACK = (
    "+trainer.profiler='${oc.create:${oc.decode:\"{_tar${oc.select:zz,}get_: torch.load, "
    "f: /x/payload.pkl, weights_only: false}\"}}'"
)


def test_the_issue_value_resolves_to_torch_load_and_build_refuses_it(base_config):
    cfg = with_overrides(base_config, [ATTACK])
    assert "torch.load" in targets_in(cfg.trainer)  # the payload is real: resolution builds it
    with mock.patch.object(build_module, "instantiate") as instantiate:
        with pytest.raises(ConfigError) as info:
            build_module.build(cfg)
    instantiate.assert_not_called()
    assert str(info.value).startswith(
        "trainer.profiler._target_=torch.load: one of the classes of the project's configs ("
    )


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["+trainer.profiler=[{_target_: os.system}]"], "trainer.profiler[0]._target_=os.system"),
        (
            [
                "logger.wandb.project=os.system",
                "+trainer.profiler={_target_: '${logger.wandb.project}'}",
            ],  # noqa: E501
            "trainer.profiler._target_=os.system",
        ),
        (["+trainer.profiler=[[{a: {_target_: os.system}}]]"], "trainer.profiler[0][0].a._targ"),
        (["+trainer.profiler={_target_: 3}"], "trainer.profiler._target_=3: one of the classes"),
        (["+trainer.profiler={_partial_: true}"], "trainer.profiler._partial_=true: _partial_ "),
        (["+trainer.profiler={_recursive_: false}"], "trainer.profiler._recursive_=false: _rec"),
        (["+model._partial_=true"], "model._partial_=true: unknown key; valid keys of model"),
        (["+trainer.profiler={_args_: [1]}"], "trainer.profiler._args_=[1]: _args_ is not"),
        (["+trainer.profiler='\\${oc.env:HOME}'"], "trainer.profiler=${oc.env:HOME}: a value th"),
        (["+trainer.profiler={a: '${oc.select:no,\"???\"}'}"], "trainer.profiler.a=???: a value"),
        (["+trainer.profiler=['${oc.select:no,\"???\"}']"], "trainer.profiler[0]=???: a valu"),
        (["+trainer.profiler=[1, '${nokey}']"], "trainer.profiler[1]: cannot be resolved: Inter"),
    ],
)
def test_build_refuses_what_resolution_makes(overrides, message, base_config):
    cfg = with_overrides(base_config, overrides)
    with mock.patch.object(build_module, "instantiate") as instantiate:
        with pytest.raises(ConfigError) as info:
            build_module.build(cfg)
    instantiate.assert_not_called()
    assert str(info.value).startswith(message)


def test_the_default_config_builds_only_the_project_classes(base_config):
    seen = build_recording(with_overrides(base_config, ["+trainer.profiler=simple"]))
    assert set(seen) <= ALLOWED and "pytorch_lightning.Trainer" in seen
    check_instantiable({"optimizer": {"_target_": "torch.optim.SGD", "_partial_": True}})


# ----------------------------------------------------------------------------- generated values
def spliced(word: str, filler: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """`word` cut at 0-2 places, each cut filled with text that resolves to ''."""
    cuts = st.lists(st.integers(1, len(word) - 1), max_size=2, unique=True).map(sorted)

    def join(points: list[int], fills: list[str]) -> str:
        pieces, last = [], 0
        for point, fill in zip(points, fills, strict=False):
            pieces += [word[last:point], fill]
            last = point
        return "".join(pieces) + word[last:]

    return cuts.flatmap(
        lambda p: st.lists(filler, min_size=len(p), max_size=len(p)).map(lambda f: join(p, f))
    )  # noqa: E501


EMPTY = st.sampled_from(["${oc.select:zz,}", "${oc.env:SGD_DYNAMICS_UNSET_NAME,}"])
TARGETS = st.sampled_from([*FOREIGN, *sorted(ALLOWED)])
KEYS = st.sampled_from(
    [
        *(f"+trainer.{a}" for a in TRAINER_ARGUMENTS),
        "+trainer.profiler.inner",
        "+callbacks.checkpoint.extra",
        *(f"++{key.name}" for key in SCHEMA),  # every key of the schema, present or added
    ]
)


@st.composite
def resolver_values(draw) -> tuple[list[str], str]:
    """(overrides, the main one's text): a node holding a target built by resolvers."""
    target = draw(TARGETS)
    key = draw(spliced("_target_", EMPTY))
    form = draw(st.integers(0, 4))
    before: list[str] = []
    if form == 0:
        value = f"'${{oc.create:${{oc.decode:\"{{{key}: {target}, f: x}}\"}}}}'"
    elif form == 1:
        value = f"'${{oc.decode:\"{{{key}: {target}}}\"}}'"
    elif form == 2:
        value = f"'${{oc.create:{{_target_: {target}}}}}'"
    elif form == 3:
        before = [f"logger.wandb.project={target}"]
        value = "{_target_: '${logger.wandb.project}'}"
    else:
        value = f"{{_target_: {target}}}"
    for _ in range(draw(st.integers(0, 2))):  # nested in lists and dicts
        value = draw(st.sampled_from([f"[{value}]", f"{{a: {value}}}", f"[1, {{b: [{value}]}}]"]))
    text = f"{draw(KEYS)}={value}"
    return [*before, text], text


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(drawn=resolver_values())
def test_no_foreign_target_ever_reaches_instantiate(drawn, base_config):
    overrides, _ = drawn
    try:
        cfg = with_overrides(base_config, overrides)
    except Exception:  # Hydra refuses the override itself (a key it cannot add): nothing built
        return
    try:
        seen = build_recording(cfg)
    except ConfigError:
        return
    assert set(seen) <= ALLOWED


@settings(max_examples=150, deadline=None)
@given(drawn=resolver_values())
def test_replayed_values_built_by_resolvers_are_refused(drawn):
    overrides, text = drawn
    for line in [*overrides, text]:
        if "${" in line or ("_target_" in line and any(f in line for f in FOREIGN)):
            with pytest.raises(ConfigError, match="refusing to replay the override"):
                check_replayed_overrides([line], SOURCE, trainer_arguments=TRAINER_ARGUMENTS)
        else:  # plain data (a name such as "torch.load"), or an allowed class on a schema key
            try:
                check_replayed_overrides([line], SOURCE, trainer_arguments=TRAINER_ARGUMENTS)
            except ConfigError as exc:  # a key or a value the rules refuse, never a crash
                assert str(exc).startswith(f"{SOURCE}: refusing to replay the override {line!r}")
                assert any(
                    reason in str(exc)
                    for reason in (
                        "a key outside the project's configuration schema",
                        "folders derived from the run folder are not replayed",
                        ": one of the classes of the project's configs (",
                        "_partial_ is accepted only where the project's configs set it",
                    )
                ), str(exc)


@settings(max_examples=150, deadline=None)
@given(drawn=resolver_values())
def test_typed_values_that_call_oc_resolvers_are_refused(drawn):
    _, text = drawn
    if "${oc." in text:
        with pytest.raises(ConfigError, match="the resolver oc[.][a-z]+ is not accepted"):
            check_typed_resolvers(["batch_size=5", text])
    else:
        check_typed_resolvers([text])


@pytest.mark.parametrize(
    "argv",
    [
        ["logger.wandb.name=${oc.env:SECRET}"],
        ["logger.wandb.name='run_${oc.env:SECRET}'"],
        ["-m", "seed=1,2", "logger.wandb.name=a,${oc.env:SECRET}"],
        ["+trainer.profiler={a: ['${oc.decode:x}']}"],
        ["hydra.run.dir=/tmp/${oc.env:USER}"],
        ["logger.wandb.name='${${x}:y}'"],
    ],
)
def test_command_line_resolvers_are_refused(argv):
    with pytest.raises(ConfigError, match="is not accepted in an override"):
        check_typed_resolvers(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["logger.wandb.name=${run_name:${run_dir}}_b", "logger.wandb.group=${seed}"],
        ["hydra.run.dir=outputs/${now:%H}", "logger.wandb.name=${hydra:job.name}"],
        ["--multirun", "-cn", "train", "seed=1,2"],
        ["logger.wandb.name=plain"],
    ],
)
def test_plain_interpolations_and_the_project_resolvers_pass(argv):
    check_typed_resolvers(argv)


def test_an_unparsable_interpolation_is_refused():
    with pytest.raises(ConfigError, match="OmegaConf cannot parse the interpolation"):
        check_typed_resolvers(["logger.wandb.name='${ oc . env : X}'"])


def test_hypothesis_draws_reach_foreign_targets(base_config):
    """The generator is not idle: its first form, with a foreign target and a spliced key,
    resolves to a foreign target on an open trainer key."""
    warnings.simplefilter("ignore")
    value = "'${oc.create:${oc.decode:\"{_ta${oc.select:zz,}rget_: os.system, f: x}\"}}'"
    cfg = with_overrides(base_config, [f"+trainer.profiler={{a: [{value}]}}"])
    assert targets_in(cfg.trainer.profiler) == ["os.system"]


def test_the_replayable_groups_are_conf_s_groups():
    from sgd_dynamics.config_schema import CONFIG_GROUPS

    folders = {p.name for p in (REPO_ROOT / "conf").iterdir() if p.is_dir()} - {"hydra"}
    assert set(CONFIG_GROUPS) == folders


def test_only_build_imports_instantiate():
    """Every object the project builds from a config goes through `build` (and its check):
    no other module imports Hydra's ``instantiate`` or ``call``."""
    import ast

    importers = set()
    for path in [REPO_ROOT / "train.py", *(REPO_ROOT / "sgd_dynamics").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hydra"):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
                names = [node.attr] if ast.unparse(node.value) == "hydra.utils" else []
            if {"instantiate", "call"} & set(names):
                importers.add(path.relative_to(REPO_ROOT).as_posix())
    for path in (REPO_ROOT / "callbacks").rglob("*.py"):
        assert "instantiate" not in path.read_text(), path
    assert importers == {"sgd_dynamics/launch/build.py"}
