"""train.py end to end in subprocesses: a short run, a two-job sweep, resume from last.ckpt,
bad input, run folders of simultaneous starts."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from pipeline_helpers import PYTHON, REPO_ROOT, outputs_line, run_train

from sgd_dynamics.data import make_gauss10
from sgd_dynamics.models import MLP
from sgd_dynamics.run_folder.files import read_json

pytestmark = pytest.mark.slow
RUN_DIR_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}_[0-9a-f]{6}$")


def final_net(run_dir: Path, depth: int = 1, width: int = 32) -> MLP:
    state = torch.load(
        run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False
    )
    net = MLP(20, 10, depth=depth, width=width)
    net.load_state_dict({k.removeprefix("net."): v for k, v in state["state_dict"].items()})
    return net


def cross_entropy_and_accuracy(net: MLP, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Reference evaluation in float64, from the generator's arrays."""
    net = net.double()
    with torch.no_grad():
        logits = net(torch.from_numpy(x.astype(np.float64)))
    logp = torch.log_softmax(logits, dim=1)
    target = torch.from_numpy(y)
    loss = -logp[torch.arange(len(y)), target].mean().item()
    return loss, (logits.argmax(1) == target).double().mean().item()


def test_short_default_run(tmp_path):
    result = run_train(["trainer.max_steps=600"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    run_dir = outputs_line(result.stdout)
    assert run_dir.parent == (tmp_path / "outputs" / "runs").resolve()
    assert RUN_DIR_NAME.match(run_dir.name)
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert len(list((run_dir / "wandb").glob("offline-run-*/*.wandb"))) == 1
    status = read_json(run_dir / "status.json")
    assert status["status"] == "completed" and status["global_step"] == 600
    summary = read_json(run_dir / "summary.json")
    assert summary["global_step"] == 600 and summary["n_params"] == 1002
    # the summary's numbers equal an independent evaluation of the final checkpoint
    data = make_gauss10(seed=0)
    loss, acc = cross_entropy_and_accuracy(final_net(run_dir), data.x_train, data.y_train)
    assert summary["train_loss"] == pytest.approx(loss, abs=1e-5)
    assert summary["train_acc"] == acc == 1.0  # Gauss-10 is fitted exactly
    loss, acc = cross_entropy_and_accuracy(final_net(run_dir), data.x_test, data.y_test)
    assert summary["test_loss"] == pytest.approx(loss, abs=1e-5)
    assert summary["test_acc"] == pytest.approx(acc, abs=1e-9)
    assert 0.5 < acc < 0.95  # learnable, not trivial


def test_two_job_sweep(tmp_path):
    sweep = tmp_path / "my_sweep"
    result = run_train(
        ["-m", f"hydra.sweep.dir={sweep}", "batch_size=5,10", "trainer.max_steps=30"], cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert (sweep / "multirun.yaml").is_file()
    run_ids = set()
    for job, batch in ((0, 5), (1, 10)):
        job_dir = sweep / str(job)
        assert read_json(job_dir / "status.json")["status"] == "completed"
        assert yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text()) == [
            f"batch_size={batch}",
            "trainer.max_steps=30",
        ]
        (record,) = list((job_dir / "wandb").glob("offline-run-*/*.wandb"))
        run_ids.add(record.parent.name)
        content = record.read_bytes()
        # the wandb run is named after the job and grouped by the sweep folder
        assert f"my_sweep/{job}".encode() in content and b"my_sweep" in content
        assert f'"batch_size":{batch}'.encode() in content  # the resolved config is logged
    assert len(run_ids) == 2


def test_resume_from_last_checkpoint_continues_the_same_folder(tmp_path):
    run_dir = tmp_path / "run"
    first = run_train(
        [f"hydra.run.dir={run_dir}", "logger=csv", "batch_size=10", "trainer.max_steps=45"],
        cwd=tmp_path,
    )
    assert first.returncode == 0, first.stderr
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    first_seconds = checkpoint["training_seconds"]
    resumed = run_train(
        [f"ckpt_path={run_dir}/checkpoints/last.ckpt", "trainer.max_steps=80"], cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr
    assert outputs_line(resumed.stdout) == run_dir.resolve()
    assert not (tmp_path / "outputs").exists()  # no new run folder
    summary = read_json(run_dir / "summary.json")
    assert summary["global_step"] == 80 and summary["resumed_from"].endswith("last.ckpt")
    assert summary["wall_time_s"] > first_seconds > 0  # both segments
    overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
    assert "batch_size=10" in overrides and "trainer.max_steps=80" in overrides
    # one CSV file for both segments, every training step once
    assert sorted(p.name for p in (run_dir / "csv").iterdir()) == ["hparams.yaml", "metrics.csv"]
    steps = [
        int(r["step"])
        for r in csv.DictReader((run_dir / "csv" / "metrics.csv").open())
        if r["train/loss"]
    ]
    assert steps == list(range(80))
    # resumed in the middle of an epoch (45 = 4.5 epochs), the run is the uninterrupted one
    straight = tmp_path / "straight"
    full = run_train(
        [f"hydra.run.dir={straight}", "logger=none", "batch_size=10", "trainer.max_steps=80"],
        cwd=tmp_path,
    )
    assert full.returncode == 0, full.stderr
    for a, b in zip(final_net(run_dir).parameters(), final_net(straight).parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "args, code, message",
    [
        (
            ["dataset=imagenet"],
            2,
            "error: dataset=imagenet: no such option of the group dataset; one of cifar10, "
            "fashion_mnist, gauss10, mnist\n",
        ),
        (["dataset.label_noise=1.5"], 2, "error: dataset.label_noise=1.5: a number in [0, 1]"),
        (
            ["dataset=mnist", "dataset.root=/no/such/folder"],
            2,
            "data files not found in /no/such/folder",
        ),
        (["batch_size=0"], 2, "error: batch_size=0: an integer >= 1"),
    ],
)
def test_bad_input_gives_a_clear_message_and_no_traceback(tmp_path, args, code, message):
    result = run_train([*args, "logger=none"], cwd=tmp_path)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout


def test_simultaneous_starts_get_separate_folders(tmp_path):
    """Three short runs started together: three folders, each with its own record."""
    env_cmd = [
        PYTHON,
        str(REPO_ROOT / "train.py"),
        "trainer.max_steps=2",
        "spectral=off",
        "logger=none",
    ]
    procs = [
        subprocess.Popen(env_cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    folders = sorted((tmp_path / "outputs" / "runs").iterdir())
    assert len(folders) == 3 and all(RUN_DIR_NAME.match(f.name) for f in folders)
    for folder in folders:
        assert (folder / ".hydra" / "overrides.yaml").is_file()
        assert json.loads((folder / "status.json").read_text())["status"] == "completed"


def test_train_py_runs_from_another_directory_with_python_dash_c_import(tmp_path):
    """The library imports neither Hydra nor the callbacks package."""
    code = (
        "import sys, sgd_dynamics, sgd_dynamics.lightning, sgd_dynamics.data;"
        "bad = [m for m in sys.modules if m == 'hydra' or m.startswith(('hydra.', 'callbacks'))];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
