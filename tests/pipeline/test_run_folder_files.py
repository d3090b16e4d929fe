"""Files of a run or sweep folder are data: read within limits (size, YAML anchors and aliases,
nesting), never resolved, and a crafted run folder is refused before anything runs.

The crafted folders hold the attack of a resume that ran code: a pickle payload that creates a
marker file when unpickled, and an override whose value builds ``{_target_: torch.load, f:
<payload>}`` only when OmegaConf resolves it (``oc.create``/``oc.decode``, the key spliced with
``oc.select``), in the forms that reached the old text check (escaped ``\\${`` in the YAML) and
the plain one, and with the payload found through ``${hydra:runtime.output_dir}``.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pipeline_helpers import REPO_ROOT, load_entry_point

from sgd_dynamics.report.analysis import read_job
from sgd_dynamics.run_folder import hydra_record
from sgd_dynamics.utils import ConfigError
from sgd_dynamics.utils.safe_files import (
    MAX_BYTES,
    MAX_DEPTH,
    FileOverLimit,
    FileRefused,
    read_json_file,
    read_yaml,
)

ENTRY = load_entry_point()

BILLION_LAUGHS = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(f"{chr(98 + i)}: &{chr(98 + i)} [{','.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)),
    ]
)
BOMB_LIST = "- &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"- &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)


class CreatesMarker:
    """Unpickled, it creates `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def attack_lines(payload: str) -> list[str]:
    """The issue's override, in the YAML text Hydra would write: escaped ``\\${`` (which an
    OmegaConf reader of overrides.yaml turns into ``${``) and plain."""
    value = (
        '${oc.create:${oc.decode:"{_tar${oc.select:zz,}get_: torch.load, f: '
        f'{payload}, weights_only: false}}"}}}}'
    )
    return [
        f"+trainer.profiler='{value.replace('${', chr(92) + '${')}'",
        f"+trainer.profiler='{value}'",
    ]  # noqa: E501


def crafted_run(tmp_path: Path, lines: list[str]) -> tuple[Path, Path]:
    """A run folder with `lines` as overrides.yaml, a payload and a checkpoint file; returns
    (checkpoint, marker)."""
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / "checkpoints").mkdir()
    marker = tmp_path / "marker"
    (run_dir / "payload.pkl").write_bytes(pickle.dumps(CreatesMarker(marker)))
    (run_dir / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump(["trainer.max_steps=4", "spectral=off", "logger=none", *lines])
    )
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    checkpoint.write_bytes(b"stand-in: the overrides are refused before it is read")
    return checkpoint, marker


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("form", [0, 1])
@pytest.mark.parametrize("where", ["absolute", "hydra"])
def test_a_crafted_run_folder_is_refused_before_anything_runs(form, where, tmp_path):
    payload = (
        str(tmp_path / "run" / "payload.pkl")
        if where == "absolute"
        else "${hydra:runtime.output_dir}/payload.pkl"
    )
    checkpoint, marker = crafted_run(tmp_path, [attack_lines(payload)[form]])
    before = folder_bytes(tmp_path)
    with pytest.raises(ConfigError) as info:
        ENTRY.resume_argv([f"ckpt_path={checkpoint}"])
    assert "refusing to replay the override '+trainer.profiler=" in str(info.value)
    assert "its value holds an OmegaConf interpolation" in str(info.value)
    assert not marker.exists()
    assert folder_bytes(tmp_path) == before
    # the payload is real: unpickled, it creates the marker
    pickle.loads((tmp_path / "run" / "payload.pkl").read_bytes())
    assert marker.exists()


def test_an_overrides_yaml_line_that_is_an_interpolation_is_not_resolved_when_read(tmp_path):
    """Reading overrides.yaml evaluates nothing: a line that is itself an interpolation stays
    text (an OmegaConf reader would have resolved it while reading)."""
    checkpoint, marker = crafted_run(tmp_path, ["${oc.env:HOME}"])
    with pytest.raises(ConfigError, match=r"override '\$\{oc.env:HOME\}': Hydra cannot parse"):
        ENTRY.resume_argv([f"ckpt_path={checkpoint}"])


# ----------------------------------------------------------------------------- limits
@pytest.mark.parametrize("text", [BILLION_LAUGHS, BOMB_LIST, "- &x a\n- *x\n", "a: &x 1\n"])
def test_yaml_anchors_and_aliases_are_refused(text, tmp_path):
    path = tmp_path / "overrides.yaml"
    path.write_text(text)
    with pytest.raises(FileOverLimit, match=r"a YAML anchor or alias at line \d+"):
        read_yaml(path)


def test_size_depth_and_encoding_limits(tmp_path):
    path = tmp_path / "f.yaml"
    path.write_text("- " + "x" * MAX_BYTES + "\n")
    with pytest.raises(FileOverLimit, match=f"larger than {MAX_BYTES} bytes"):
        read_yaml(path)
    path.write_text("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    with pytest.raises(FileOverLimit, match="nested deeper than"):
        read_yaml(path)
    path.write_text("[" * 50000)  # deeper than Python's recursion: refused, no RecursionError
    with pytest.raises(FileOverLimit, match="nested deeper than"):
        read_yaml(path)
    path.write_text("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    assert read_yaml(path) is not None
    json_path = tmp_path / "f.json"
    json_path.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(FileOverLimit, match="nested deeper than"):
        read_json_file(json_path)
    json_path.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(FileRefused, match="not UTF-8"):
        read_json_file(json_path)
    path.write_text("a: !!python/object/apply:os.system [true]\n")
    with pytest.raises(FileRefused, match="not valid YAML"):
        read_yaml(path)
    with pytest.raises(FileRefused, match="no such file"):
        read_yaml(tmp_path / "missing.yaml")


def test_what_hydra_writes_reads_as_it_was_written(tmp_path):
    overrides = ["batch_size=5", "+trainer.profiler='a: b'", "logger=[wandb,csv]"]
    path = tmp_path / "overrides.yaml"
    path.write_text(yaml.safe_dump(overrides))
    assert read_yaml(path) == overrides
    status = {"status": "completed", "loss": float("nan"), "nested": {"a": [1, 2]}}
    (tmp_path / "s.json").write_text(json.dumps(status))
    read = read_json_file(tmp_path / "s.json")
    assert read["nested"] == status["nested"] and read["loss"] != read["loss"]


CHILD = """
import sys
from sgd_dynamics.utils.safe_files import FileOverLimit, read_yaml
try:
    read_yaml(sys.argv[1])
except FileOverLimit as exc:
    print("refused:", exc)
"""


def test_an_alias_bomb_is_refused_in_a_subprocess_that_returns(tmp_path):
    path = tmp_path / "overrides.yaml"
    path.write_text(BOMB_LIST)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"refused: {path}: a YAML anchor or alias at line 1")


# ----------------------------------------------------------------------------- sweep jobs
def test_a_sweep_job_with_an_alias_bomb_is_skipped_naming_the_file(tmp_path):
    job = tmp_path / "0"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text(BILLION_LAUGHS)
    (job / ".hydra" / "overrides.yaml").write_text("- seed=1\n")
    (job / "status.json").write_text('{"status": "completed"}')
    read = read_job(job)
    assert read.skip_reason == (
        f"refused: {job / '.hydra' / 'config.yaml'}: a YAML anchor or alias at line 1, which "
        "the project's files never hold; refused"
    )
    (job / "summary.json").write_text(" " * (MAX_BYTES + 1))
    (job / ".hydra" / "config.yaml").write_text("seed: 1\n")
    assert read_job(job).skip_reason.startswith(f"refused: {job / 'summary.json'}: larger than")


def test_a_job_config_is_resolved_without_resolvers(tmp_path, monkeypatch):
    """Plain ``${key}`` interpolations are resolved; resolver calls (the environment, nodes
    built from text) stay as written, also when a plain interpolation points at one."""
    monkeypatch.setenv("SGD_DYNAMICS_TEST_SECRET", "s3cr3t")
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "seed": 3,
                "dataset": {"seed": "${seed}", "root": "${oc.env:SGD_DYNAMICS_TEST_SECRET}/x"},
                "name": "${dataset.root}-${seed}",
                "node": "${oc.create:{a: 1}}",
                "bad": "${ oc . env : X}",
            }
        )
    )
    config = hydra_record.read_run_config(tmp_path)
    assert config == {
        "seed": 3,
        "dataset": {"seed": 3, "root": "${oc.env:SGD_DYNAMICS_TEST_SECRET}/x"},
        "name": "${oc.env:SGD_DYNAMICS_TEST_SECRET}/x-3",
        "node": "${oc.create:{a: 1}}",
        "bad": "${ oc . env : X}",
    }
    assert "s3cr3t" not in json.dumps(config)
