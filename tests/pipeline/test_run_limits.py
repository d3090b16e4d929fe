"""`run_limits`: the sizes it estimates are lower bounds of what a run really holds and writes
(checked against a built MLP, generated Gauss-10 arrays, the snapshot schedule and snapshot
files written by the store), and its refusals say what is accepted."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pipeline_helpers import REPO_ROOT

from sgd_dynamics.config_schema import GAUSS10
from sgd_dynamics.data.gauss10 import make_gauss10
from sgd_dynamics.launch import run_limits
from sgd_dynamics.models import MLP, num_parameters
from sgd_dynamics.run_folder.snapshots import save_snapshot
from sgd_dynamics.schedule import snapshot_steps
from sgd_dynamics.utils import ConfigError

sys.path.insert(0, str(REPO_ROOT / "tests" / "store_plots"))
from snapshot_factory import dense_snapshot, iterative_snapshot  # noqa: E402

MNIST = "sgd_dynamics.lightning.MNISTDataModule"


def config(**parts) -> dict:
    """A validated-looking configuration: Gauss-10 defaults, MLP 20-32-10, dense snapshots."""
    base = {
        "batch_size": 5,
        "threads": "auto",
        "dataset": {"_target_": GAUSS10, "n_train": 100, "n_test": 1000, "input_dim": 20},
        "model": {"depth": 1, "width": 32, "bias": True},
        "trainer": {"max_steps": 3000, "max_epochs": None},
        "spectral": {"k": 15, "method": "auto", "n_samples": 2000, "dtype": "float64"},
    }
    for name, value in parts.items():
        base[name] = value if not isinstance(value, dict) else {**base.get(name, {}), **value}
    return base


@settings(max_examples=25, deadline=None)
@given(
    depth=st.integers(0, 3),
    width=st.integers(1, 40),
    bias=st.booleans(),
    input_dim=st.integers(1, 30),
    classes=st.integers(2, 12),
)
def test_parameter_count_is_the_built_networks(depth, width, bias, input_dim, classes):
    cfg = config(
        dataset={"input_dim": input_dim, "num_classes": classes},
        model={"depth": depth, "width": width, "bias": bias},
    )
    net = MLP(input_dim, classes, depth=depth, width=width, bias=bias)
    assert run_limits.parameter_count(cfg) == num_parameters(net)


@pytest.mark.parametrize("n_train, n_test, input_dim", [(100, 1000, 20), (7, 3, 5), (50, 1, 64)])
def test_the_data_set_estimate_is_the_generated_arrays(n_train, n_test, input_dim):
    data = make_gauss10(0, n_train=n_train, n_test=n_test, input_dim=input_dim)
    held = sum(a.nbytes for a in (data.x_train, data.y_train, data.x_test, data.y_test))
    cfg = config(dataset={"n_train": n_train, "n_test": n_test, "input_dim": input_dim})
    assert run_limits.memory_needed(cfg).parts["data set"] == held


def test_the_memory_refusal_names_the_largest_part():
    with pytest.raises(ConfigError) as info:
        run_limits.check_memory(config(dataset={"n_train": 10**9}), available=16 * 10**9)
    assert str(info.value).startswith(
        "dataset.n_train=1000000000: the run would need at least 88.0 GB (data set 88.0 GB, "
    )
    assert str(info.value).endswith("of memory and 16.0 GB are available; choose a smaller value")
    dense = config(model={"width": 10**5}, spectral={"method": "dense"})
    with pytest.raises(ConfigError, match=r"^spectral\.method=dense: the run would need"):
        run_limits.check_memory(dense, available=16 * 10**9)
    run_limits.check_memory(config(), available=16 * 10**9)  # the default job fits
    mnist = config(dataset={"_target_": MNIST, "n_train": None})
    assert run_limits.memory_needed(mnist).parts["data set"] == 70000 * 784


@settings(max_examples=60, deadline=None)
@given(
    last=st.integers(0, 5000),
    every=st.one_of(st.none(), st.integers(1, 700)),
    points=st.one_of(st.none(), st.integers(2, 60)),
)
def test_the_snapshot_count_is_a_lower_bound_of_the_schedule(last, every, points):
    cfg = config(
        trainer={"max_steps": last}, spectral={"every_n_steps": every, "log_points": points}
    )
    steps = snapshot_steps(last, every_n_steps=every, log_points=points)
    count = run_limits.snapshot_count(cfg)
    assert count <= len(steps)
    if every is not None:
        assert count >= last // every + 1


@pytest.mark.parametrize("dense", [True, False])
def test_the_snapshot_size_is_a_lower_bound_of_the_stored_file(dense, tmp_path):
    rng = np.random.default_rng(0)
    p, k = 40, 5
    arrays = dense_snapshot(3, rng, p=p, k=k) if dense else iterative_snapshot(3, rng, k=k)
    path = save_snapshot(tmp_path, arrays)
    # an MLP with P = 40: depth 0, 3 inputs, 10 classes (3*10 + 10)
    cfg = config(
        dataset={"input_dim": 3, "num_classes": 10},
        model={"depth": 0},
        trainer={"max_steps": 0},
        spectral={"k": k, "method": "dense" if dense else "iterative"},
    )
    assert run_limits.parameter_count(cfg) == p
    estimate = run_limits.disk_needed(cfg).parts["snapshots"]
    assert run_limits.snapshot_count(cfg) == 1
    assert 0 < estimate <= path.stat().st_size


def test_a_schedule_that_does_not_fit_on_the_disk_is_refused(tmp_path, monkeypatch):
    class Usage:
        free = 10**6

    monkeypatch.setattr(run_limits.shutil, "disk_usage", lambda path: Usage)
    every = config(trainer={"max_steps": 10**6}, spectral={"every_n_steps": 1})
    with pytest.raises(ConfigError) as info:
        run_limits.check_disk(every, tmp_path / "run")
    assert str(info.value).startswith("spectral.every_n_steps=1: the run would write at least ")
    assert f"into {tmp_path / 'run'} and 1.0 MB are free there" in str(info.value)
    run_limits.check_disk(config(trainer={"max_steps": 10}), tmp_path / "run")


def test_threads_are_at_most_four_per_cpu():
    run_limits.check_threads("auto", cpus=2)
    run_limits.check_threads(8, cpus=2)
    with pytest.raises(ConfigError, match=r"^threads=9: auto or an integer from 1 to 8 \(4 per"):
        run_limits.check_threads(9, cpus=2)
    with pytest.raises(ConfigError, match=r"^threads=100000: "):
        run_limits.check_threads(100000)


@pytest.mark.parametrize(
    "argument, good, bad",
    [
        ("limit_train_batches", [None, 1, 10, 0.25, 1.0], [0, 0.0, -1, 1.5, float("nan"), "a"]),
        ("limit_val_batches", [None, 0, 0.0, 3, 0.5], [-1, 2.0, "all"]),
        ("overfit_batches", [0, 0.0, 2, 0.5], [-1, 1.5, None]),
        ("fast_dev_run", [False, 0], [True, 1, 5, "yes"]),
        ("accumulate_grad_batches", [1], [0, 2, 4, 1.0, True]),
        ("max_time", [None, "00:01:00:00", {"hours": 1}], ["00:00:00:00", {"seconds": 0}, "1h", 5]),
        ("min_steps", [None, -1, 0, 10], [-2, 1.5]),
        ("min_epochs", [None, 0, 3], [-1, "x"]),
    ],
)
def test_trainer_arguments_that_train_nothing_are_refused(argument, good, bad):
    for value in good:
        run_limits.check_training_loop({argument: value})
    for value in bad:
        with pytest.raises(ConfigError, match=rf"^trainer\.{argument}="):
            run_limits.check_training_loop({argument: value})
    with pytest.raises(ConfigError, match=r"^trainer\.max_epochs=-1: .*the run never ends"):
        run_limits.check_training_loop({"max_steps": -1, "max_epochs": -1})


def test_available_memory_reads_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  100 kB\nMemAvailable:    2048 kB\n")
    available = run_limits.available_memory(meminfo)
    assert available is not None and available <= 2048 * 1024


def test_accelerators_this_machine_lacks_are_refused(monkeypatch):
    counts = {"gpu": 0, "cuda": 0, "mps": 0}
    monkeypatch.setattr(run_limits, "device_count", lambda a: counts.get(a))
    run_limits.check_devices({"accelerator": "cpu", "devices": 4})
    run_limits.check_devices({"accelerator": "auto", "devices": "auto"})
    with pytest.raises(ConfigError, match=r"^trainer\.accelerator=gpu: cpu or auto: this machine"):
        run_limits.check_devices({"accelerator": "gpu", "devices": 1})
    counts["cuda"] = 2
    run_limits.check_devices({"accelerator": "cuda", "devices": 2})
    run_limits.check_devices({"accelerator": "cuda", "devices": -1})
    with pytest.raises(ConfigError, match=r"^trainer\.devices=\[0, 1, 2\]: at most 2 \(cuda"):
        run_limits.check_devices({"accelerator": "cuda", "devices": [0, 1, 2]})
