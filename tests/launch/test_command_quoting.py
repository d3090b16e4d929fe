"""The printed commands read back exactly: for any text a path may hold, the shell's split of
the command, then Hydra's override grammar, then OmegaConf's interpolation give the text back."""

from __future__ import annotations

import shlex
import string
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from sgd_dynamics.launch import register_resolvers
from sgd_dynamics.launch.overrides import parse_overrides
from sgd_dynamics.utils.commands import (
    hydra_quoted,
    override_argument,
    train_command,
    unusable_run_folder_path,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
# the characters that break quoting, and any other character but NUL and lone surrogates
NASTY = ",='\"()[]{}~#&$\\: \t\n${}*?!;|<>`%@+-./"
TEXT = st.text(
    st.one_of(
        st.sampled_from(NASTY),
        st.sampled_from(string.ascii_letters + string.digits),
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    ),
    min_size=1,
    max_size=40,
)


def read_back(command: str) -> str:
    """The value of the last argument of `command`, as the shell, Hydra and OmegaConf read it."""
    argument = shlex.split(command)[-1]
    (override,) = parse_overrides([argument])
    return OmegaConf.create({"value": override.value()}).value


@settings(max_examples=400, deadline=None)
@given(TEXT)
def test_any_text_reads_back_exactly_through_shell_hydra_and_omegaconf(text):
    command = train_command([override_argument("ckpt_path", text)])
    assert shlex.split(command)[:2] == [sys.executable, str(Path(sys.argv[0]).resolve())]
    assert read_back(command) == text


@settings(max_examples=200, deadline=None)
@given(st.lists(TEXT, min_size=1, max_size=4))
def test_any_path_of_folder_names_reads_back_exactly(names):
    path = "/" + "/".join(n.replace("/", "_") for n in names) + "/checkpoints/last.ckpt"
    assert read_back(train_command([override_argument("ckpt_path", path)])) == path


def test_plain_paths_stay_readable():
    assert hydra_quoted("/tmp/run-1/checkpoints/last.ckpt") == "/tmp/run-1/checkpoints/last.ckpt"
    assert hydra_quoted("5") == "'5'" and hydra_quoted("null") == "'null'"  # not a number
    assert train_command(["ckpt_path=/a/b.ckpt"]).endswith(" ckpt_path=/a/b.ckpt")


@pytest.mark.parametrize(
    "path",
    [
        "/tmp/ä b,c=d'e\"f(g)[h]{i}~j#k&l$m\\n:o/checkpoints/last.ckpt",
        "/tmp/${oc.env:HOME}/x\\${y}\\\\/z\\",
        "/tmp/\\'\\\\'/'",
    ],
)
def test_the_composed_configuration_holds_the_path(path, monkeypatch):
    """Through Hydra's composition of conf/ (what train.py gets), not only its parser."""
    monkeypatch.setenv("SGD_DYNAMICS_RUN_ID", "abc123")
    register_resolvers()
    argument = shlex.split(train_command([override_argument("ckpt_path", path)]))[-1]
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[argument])
    assert cfg.ckpt_path == path


@given(TEXT)
@settings(max_examples=200, deadline=None)
def test_a_folder_path_is_refused_exactly_when_hydra_could_not_hold_it(text):
    """Refused: control characters (the command would not be one line) and ``${`` (Hydra keeps
    the folder in its configuration, where it would be an interpolation)."""
    refused = unusable_run_folder_path(text) is not None
    assert refused == ("${" in text or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text))


def test_a_folder_path_that_is_not_utf8_is_refused():
    """A Linux name may hold any bytes; Python reads the undecodable ones as lone surrogates."""
    name = b"/tmp/caf\xe9".decode("utf-8", "surrogateescape")
    assert "its path is not UTF-8 text" in unusable_run_folder_path(name)
