"""The end of a sweep names its folder and the report command."""

from __future__ import annotations

import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from sgd_dynamics.launch.sweep_outputs import SweepOutputs, report_command

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_sweep_folder_and_report_command_are_printed(tmp_path, capsys):
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "sweep")}}})
    SweepOutputs().on_multirun_end(config)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"Sweep outputs: {tmp_path / 'sweep'}"
    assert out[1] == f"Report: {report_command(tmp_path / 'sweep')}"
    assert out[1].endswith(f"report {tmp_path / 'sweep'}")
    script = Path(sys.executable).parent / "sgd-dynamics"
    assert out[1].split()[1] in (str(script), "sgd-dynamics") or Path(out[1].split()[1]).samefile(
        script
    )


def test_train_yaml_registers_the_callback(monkeypatch):
    monkeypatch.setenv("SGD_DYNAMICS_RUN_ID", "abcdef")
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", return_hydra_config=True)
    callback = instantiate(cfg.hydra.callbacks.sweep_outputs)
    assert isinstance(callback, SweepOutputs)
