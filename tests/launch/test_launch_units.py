"""The launch layer's functions on their own: DDP re-launch handling, override parsing, the
command line before Hydra, resolvers, building named sections, thread sizing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

from sgd_dynamics.launch import ddp, entry, overrides, register_resolvers, resume_argv
from sgd_dynamics.launch.build import instantiate_named, set_threads
from sgd_dynamics.models import MLP
from sgd_dynamics.utils import SetupError

REPO_ROOT = Path(__file__).resolve().parents[2]
CHILD = f"hydra.job.name={ddp.DDP_CHILD_JOB_NAME}0"


# ------------------------------------------------------------------------ a Hydra job's config
@pytest.fixture
def hydra_job(tmp_path, monkeypatch):
    """Compose conf/ with Hydra's own section and make it the current job's (HydraConfig),
    as Hydra does before it calls the job; returns a function (overrides, mode) -> cfg."""
    monkeypatch.setenv("SGD_DYNAMICS_RUN_ID", "abc123")
    register_resolvers()

    def make(task: list[str], mode: RunMode):
        with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
            cfg = compose(config_name="train", overrides=task, return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.mode = mode
            cfg.hydra.runtime.output_dir = str(tmp_path / "job")
            cfg.hydra.overrides.task = task
        HydraConfig.instance().set_config(cfg)
        return cfg

    yield make
    HydraConfig.instance().cfg = None


# ------------------------------------------------------------------------ DDP
def test_a_relaunched_ddp_child_logs_to_the_console_only(monkeypatch):
    argv = ["batch_size=10", CHILD, "hydra.run.dir=/x"]
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert ddp.ddp_child_argv(argv) == [
        *argv,
        "hydra.job_logging.root.handlers=[console]",
        "~hydra.job_logging.handlers.file",
    ]
    assert ddp.ddp_child_argv(["batch_size=10"]) == ["batch_size=10"]  # not a DDP child
    monkeypatch.setenv("LOCAL_RANK", "0")  # rank 0 is the launching process itself
    assert ddp.ddp_child_argv(argv) == argv
    monkeypatch.delenv("LOCAL_RANK")
    assert ddp.ddp_child_argv(argv) == argv


SCRIPT = """
import sys
from sgd_dynamics.launch.ddp import main_is_script
print(main_is_script(sys.argv[1]), main_is_script(sys.argv[2]))
"""


def test_main_is_script_tells_the_script_from_a_module(tmp_path):
    script = tmp_path / "entry.py"
    script.write_text(SCRIPT)
    other = tmp_path / "other.py"
    ran = subprocess.run(
        [sys.executable, str(script), str(script), str(other)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert ran.stdout.split() == ["True", "False"]
    # this process runs pytest as a module (`python -m pytest`) or its console script
    assert not ddp.main_is_script(script)


def test_ddp_in_a_launcher_worker_is_refused(hydra_job, monkeypatch):
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    cfg = hydra_job(["trainer=ddp_cpu", "batch_size=10"], RunMode.MULTIRUN)
    with pytest.raises(SetupError, match=r"^trainer.strategy=ddp in a job run by a launcher"):
        ddp.check_ddp_launch(cfg, REPO_ROOT / "train.py")  # pytest is not train.py
    monkeypatch.setattr(ddp, "main_is_script", lambda script: True)  # train.py's own process
    ddp.check_ddp_launch(cfg, REPO_ROOT / "train.py")


def test_ddp_is_allowed_in_single_runs_under_slurm_and_without_ddp(hydra_job, monkeypatch):
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    ddp.check_ddp_launch(hydra_job(["trainer=ddp_cpu", "batch_size=10"], RunMode.RUN), "x.py")
    ddp.check_ddp_launch(hydra_job([], RunMode.MULTIRUN), "x.py")  # strategy auto
    monkeypatch.setenv("SLURM_NTASKS", "4")  # srun starts every rank
    ddp.check_ddp_launch(hydra_job(["trainer=ddp_cpu", "batch_size=10"], RunMode.MULTIRUN), "x")


def test_a_sweep_job_relaunches_with_its_own_overrides_and_folder(hydra_job, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["train.py", "-m", "seed=0,1"])
    cfg = hydra_job(["seed=1"], RunMode.MULTIRUN)
    ddp.prepare_ddp_relaunch("train.py")  # not this process's script: nothing changes
    assert sys.argv == ["train.py", "-m", "seed=0,1"]
    monkeypatch.setattr(ddp, "main_is_script", lambda script: True)
    ddp.prepare_ddp_relaunch("train.py")
    assert sys.argv == ["train.py", "seed=1"]
    assert HydraConfig.get().run.dir == cfg.hydra.runtime.output_dir
    hydra_job(["seed=1"], RunMode.RUN)  # a single run: Lightning's own re-launch is right
    monkeypatch.setattr(sys, "argv", ["train.py", "seed=1"])
    ddp.prepare_ddp_relaunch("train.py")
    assert sys.argv == ["train.py", "seed=1"]


def test_end_ddp_run_destroys_the_group_and_restores_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("MASTER_PORT", "1234")
    environment = {"LOCAL_RANK": None, "MASTER_PORT": "999"}
    store = f"file://{tmp_path / 'store'}"
    dist.init_process_group("gloo", init_method=store, rank=0, world_size=1)
    assert dist.is_initialized()
    ddp.end_ddp_run(environment)
    assert not dist.is_initialized()
    assert "LOCAL_RANK" not in os.environ and os.environ["MASTER_PORT"] == "999"
    ddp.end_ddp_run({})  # no group: nothing to do


# ------------------------------------------------------------------------ overrides
@pytest.mark.parametrize(
    "text, key",
    [
        ("batch_size=5", "batch_size"),
        ("+trainer.precision=64", "trainer.precision"),
        ("++seed=3", "seed"),
        ("~callbacks.progress", "callbacks.progress"),
        ("dataset=mnist", "dataset"),
        ("hydra/launcher=joblib", "hydra/launcher"),
        ("+foo@bar=x", "foo@bar"),
        ("ckpt_path='/a b/c=d.ckpt'", "ckpt_path"),
    ],
)
def test_override_keys_as_hydra_parses_them(text, key):
    (parsed,) = overrides.parse_overrides([text])
    assert overrides.override_key(parsed) == key


def test_an_unparsable_replayed_override_is_refused():
    with pytest.raises(SetupError, match=r"^R: refusing to replay the override 'a=\[': Hydra"):
        overrides.check_replayed_overrides(["a=["], "R")


@pytest.mark.parametrize(
    "argv, folder",
    [
        (["hydra.run.dir=/a/b", "seed=1"], "/a/b"),
        (["hydra.run.dir=/first", "hydra.run.dir=/last"], "/last"),
        (["+hydra.run.dir=/a/b"], "/a/b"),
        (["++hydra.run.dir=/a/b"], "/a/b"),
        (["hydra.run.dir='/a b/c=d'"], "/a b/c=d"),  # quoted, with a space and an '='
        ([r"hydra.run.dir=/a\ b"], "/a b"),  # Hydra's escape of a space
        (["-m", "hydra.sweep.dir=/s", "hydra.run.dir=/r"], "/s"),
        (["--multirun", "hydra.sweep.dir='/s t'"], "/s t"),
        (["hydra.sweep.dir=/s", "hydra.run.dir=/r"], "/r"),  # a single run: run.dir
        (["-m", "hydra.run.dir=/r"], "outputs"),  # a sweep: only sweep.dir counts
        (["hydra.mode=MULTIRUN", "hydra.sweep.dir=/s", "hydra.run.dir=/r"], "/s"),
        (["hydra.mode=MULTIRUN", "hydra.mode=RUN", "hydra.sweep.dir=/s", "hydra.run.dir=/r"], "/r"),
        (["hydra.run.dir=/runs/${now:%Y-%m-%d}/x"], "/runs/"),
        (["hydra.run.dir='/runs/a ${now:%H}'"], "/runs/a "),
        (["seed=1"], "outputs"),
        ([], "outputs"),
        (["--config-name", "train", "-cn", "train", "hydra.run.dir=/x"], "/x"),
        (["hydra.run.dir='/a'b'"], "outputs"),  # unparsable: Hydra reports it later
        (["hydra.run.dir=/x", "a=["], "/x"),  # another unparsable override: passed over
        (["hydra.run.dir=/a,/b"], "outputs"),  # a sweep of run.dir: Hydra refuses it later
    ],
)
def test_the_output_folder_as_hydra_parses_the_command_line(argv, folder):
    assert overrides.output_folder(argv) == folder


def test_resume_argv_leaves_other_command_lines_alone(tmp_path):
    for argv in (["ckpt_path=null"], ["ckpt_path="], ["a=["], ["--help"], ["seed=1"]):
        assert resume_argv(argv) == argv
    assert resume_argv([f"ckpt_path={tmp_path}/x.ckpt", "hydra.run.dir=/y"]) == [
        f"ckpt_path={tmp_path}/x.ckpt",
        "hydra.run.dir=/y",
    ]


# ------------------------------------------------------------------------ before Hydra
def test_prepare_command_line_draws_a_run_id_and_passes_argv(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    ids = set()
    for _ in range(3):
        assert entry.prepare_command_line(["seed=1"]) == ["seed=1"]
        ids.add(os.environ["SGD_DYNAMICS_RUN_ID"])
    assert all(len(i) == 6 and set(i) <= set("0123456789abcdef") for i in ids)
    assert len(ids) >= 2  # drawn per invocation (three equal draws: 1 in 2.8e14)


def test_prepare_command_line_refuses_an_unwritable_folder(tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        entry.prepare_command_line([f"hydra.run.dir={tmp_path / 'file' / 'run'}"])
    assert info.value.code == 2
    assert capsys.readouterr().err.startswith(f"error: cannot write {tmp_path / 'file' / 'run'}")


@pytest.mark.parametrize("prefix", ["", "+", "++"])
def test_prepare_command_line_refuses_a_quoted_folder_under_a_file(prefix, tmp_path, capsys):
    (tmp_path / "a file").write_text("")
    run = tmp_path / "a file" / "run"
    with pytest.raises(SystemExit) as info:
        entry.prepare_command_line([f"{prefix}hydra.run.dir='{run}'"])
    assert info.value.code == 2
    message = f"error: cannot write {run}: {tmp_path / 'a file'} is not a folder\n"
    assert capsys.readouterr().err == message


def test_prepare_command_line_refuses_a_foreign_resume(tmp_path, capsys):
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text("- +model._target_=os.system\n")
    with pytest.raises(SystemExit) as info:
        entry.prepare_command_line([f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}"])
    assert info.value.code == 2
    assert "refusing to replay the override '+model._target_=os.system'" in capsys.readouterr().err


def test_the_resolvers_name_runs_and_sweeps(tmp_path):
    register_resolvers()
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "multirun.yaml").write_text("{}")
    cfg = OmegaConf.create(
        {
            "single": "${run_name:" + str(tmp_path / "run") + "}",
            "job": "${run_name:" + str(tmp_path / "sweep" / "3") + "}",
            "group": "${sweep_name:" + str(tmp_path / "sweep" / "3") + "}",
            "no_group": "${sweep_name:" + str(tmp_path / "run") + "}",
        }
    )
    assert (cfg.single, cfg.job, cfg.group, cfg.no_group) == ("run", "sweep/3", "sweep", None)


# ------------------------------------------------------------------------ building
def test_named_sections_keep_their_order_and_drop_nulls():
    section = OmegaConf.create(
        {
            "b": {"_target_": "builtins.dict", "x": 1},
            "off": None,
            "a": {"_target_": "builtins.list"},
        }
    )
    assert instantiate_named(section) == [{"x": 1}, []]
    assert instantiate_named(None) == [] and instantiate_named({}) == []


def test_set_threads_applies_the_setting(hydra_job):
    before = torch.get_num_threads()
    try:
        cfg = hydra_job(["threads=1"], RunMode.RUN)
        line = set_threads(cfg, MLP(20, 10), n_train=100)
        assert line.startswith("threads: 1 ")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_the_launch_layer_loads_neither_torch_nor_lightning_nor_the_callbacks():
    """``train.py --help`` stays fast: torch and Lightning load only when a run is built; and
    the launch layer names the Lightning callbacks only through conf/'s ``_target_``."""
    code = (
        "import sys, runpy; sys.argv = ['train.py']; "
        "runpy.run_path(sys.argv[0], run_name='not_main'); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'torch', 'pytorch_lightning', 'lightning', 'callbacks'}))"
    )
    ran = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    )
    assert ran.stdout.split() == ["[]"]
