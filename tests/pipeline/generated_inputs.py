"""Hypothesis strategies for generated command lines of train.py: keys drawn from the schema
(`config_schema.SCHEMA`), the config groups, the Trainer's open arguments, typos of real keys and
unknown keys; values of every kind (wrong types, out of range, nan/inf, huge, negative, empty,
lists, dicts, interpolations to missing keys, unicode, and the characters that break Hydra's
override grammar); ``+``/``++``/``~`` prefixes; sweeps with ``-m``."""

from __future__ import annotations

import inspect

from hypothesis import strategies as st
from pipeline_helpers import config_options

from sgd_dynamics.config_schema import SCHEMA

SCHEMA_KEYS = [k.name for k in SCHEMA]
GROUPS = sorted({group for group, _ in config_options()})
OPTIONS = config_options()
HYDRA_KEYS = ["hydra.run.dir", "hydra.sweep.dir", "hydra.job.chdir", "hydra.verbose", "hydra.mode"]


def trainer_arguments() -> list[str]:
    import pytorch_lightning as pl

    return [f"trainer.{name}" for name in inspect.signature(pl.Trainer).parameters]


def typo(key: str, position: int, kind: int) -> str:
    """`key` with one letter dropped, doubled, or swapped with its neighbour."""
    i = position % len(key)
    if kind == 0:
        return key[:i] + key[i + 1 :] or key + "x"
    if kind == 1:
        return key[:i] + key[i] + key[i:]
    j = min(i + 1, len(key) - 1)
    return key[:i] + key[j] + key[i] + key[j + 1 :] if j > i else key + key[-1]


NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
keys = st.one_of(
    st.sampled_from(SCHEMA_KEYS),
    st.sampled_from(GROUPS),
    st.sampled_from(HYDRA_KEYS),
    st.sampled_from(trainer_arguments()),
    st.builds(typo, st.sampled_from(SCHEMA_KEYS), st.integers(0, 60), st.integers(0, 2)),
    NAME,
    st.builds(lambda s, n: f"{s}.{n}", st.sampled_from(GROUPS), NAME),
)

GRAMMAR_BREAKERS = list(",[]{}()'\"= \\:$@~+")
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, -1, 2, 10**9, 10**18, 2**32, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 0.5, 1.0, 1.5, 1e-300, 1e300]),
    st.sampled_from(["nan", "inf", "-inf", "auto", "null", "true", "abc", "", "é", "日本"]),
    st.sampled_from(["${nope}", "${seed}", "${oc.env:NOPE_NOT_SET}", "${hydra:nope}", "${"]),
    st.text(max_size=8),
    st.text(alphabet=GRAMMAR_BREAKERS + list("ab1"), min_size=1, max_size=6),
)


def render(value: object) -> str:
    """`value` as written on a command line (strings as typed: they may break the grammar)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ",".join(render(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{render(v)}" for k, v in value.items()) + "}"
    return str(value)


values = st.one_of(
    scalars.map(render),
    st.lists(scalars, max_size=3).map(render),
    st.dictionaries(NAME, scalars, max_size=2).map(render),
    st.sampled_from([o for _, o in OPTIONS] + ["nonexistent", "mnsit"]),
    scalars.map(lambda v: "'" + render(v).replace("'", "\\'") + "'"),
)


PLAUSIBLE = [0, 1, 2, 3, 5, 7, 64, -1, 0.05, 0.5, 1.0, True, False, None, "auto", "relu"]


def accepted_values(key) -> list[str]:
    """Values of `PLAUSIBLE` (and the key's choices) that the schema accepts for `key`."""
    candidates = [*PLAUSIBLE, *key.kind.values]
    return [render(v) for v in candidates if key.kind.accepts(v)]


plausible = st.sampled_from([k for k in SCHEMA if not k.set_by_group and accepted_values(k)])
good_overrides = plausible.flatmap(
    lambda k: st.sampled_from(accepted_values(k)).map(lambda v: f"{k.name}={v}")
)


@st.composite
def overrides(draw) -> str:
    if draw(st.integers(0, 2)) == 0:
        return draw(good_overrides)
    prefix = draw(st.sampled_from(["", "", "", "+", "++", "~"]))
    key = draw(keys)
    if prefix == "~" and draw(st.booleans()):
        return f"~{key}"
    return f"{prefix}{key}={draw(values)}"


@st.composite
def command_lines(draw, flags: bool = True) -> list[str]:
    """One to three overrides; sometimes a group option and, with `flags`, a sweep (``-m``
    and a value list ``a,b``) or an unknown flag."""
    argv = draw(st.lists(overrides(), min_size=1, max_size=3))
    if draw(st.integers(0, 9)) == 0:
        group, option = draw(st.sampled_from(OPTIONS))
        argv.insert(0, f"{group}={option}")
    kind = draw(st.integers(0, 19)) if flags else -1
    if kind == 0:
        key = draw(st.sampled_from(SCHEMA_KEYS))
        argv = ["-m", *argv, f"{key}={draw(values)},{draw(values)}"]
    elif kind == 1:
        argv.append(draw(st.sampled_from(["--foo", "-x", "--cfg", "--multirun", "-m"])))
    return argv
