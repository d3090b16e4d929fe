"""The MLP and the LightningModule: parameter counts, one SGD step against a hand-written
float64 update, logged metrics against an independent evaluation."""

from __future__ import annotations

import copy
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from trainer_helpers import quiet_trainer

from sgd_dynamics.data import StepShuffleSampler
from sgd_dynamics.lightning import Gauss10DataModule
from sgd_dynamics.lightning.module import ClassifierModule
from sgd_dynamics.models import MLP, evaluate, num_parameters


@pytest.mark.parametrize(
    "input_dim, depth, width, classes, expected",
    [
        (20, 1, 32, 10, 20 * 32 + 32 + 32 * 10 + 10),  # the default: 1002
        (784, 2, 100, 10, 784 * 100 + 100 + 100 * 100 + 100 + 100 * 10 + 10),
        (20, 0, 32, 10, 20 * 10 + 10),
        (5, 3, 4, 3, 5 * 4 + 4 + 2 * (4 * 4 + 4) + 4 * 3 + 3),
    ],
)
def test_mlp_parameter_count(input_dim, depth, width, classes, expected):
    net = MLP(input_dim, classes, depth=depth, width=width)
    assert num_parameters(net) == expected
    assert net(torch.zeros(7, input_dim)).shape == (7, classes)
    assert sum(isinstance(m, torch.nn.Linear) for m in net) == depth + 1


def test_default_gauss10_network_has_1002_parameters():
    assert num_parameters(MLP(20, 10)) == 1002


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"activation": "swish"}, "activation"),
        ({"depth": -1}, "depth"),
        ({"width": 0}, "width"),
    ],
)
def test_mlp_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLP(20, 10, **kwargs)


def test_module_rejects_bad_optimizer_settings():
    with pytest.raises(ValueError, match="lr"):
        ClassifierModule(MLP(4, 2), partial(torch.optim.SGD, lr=0))
    with pytest.raises(ValueError, match="nesterov"):
        ClassifierModule(MLP(4, 2), partial(torch.optim.SGD, lr=0.1, nesterov=True))


def test_two_sgd_steps_match_hand_written_momentum_sgd_in_float64():
    """theta <- theta - lr * v, v <- mu v + grad(mean CE of the batch) + wd theta."""
    torch.manual_seed(0)
    lr, mu, wd = 0.1, 0.9, 1e-3
    dm = Gauss10DataModule(batch_size=5, seed=4, label_noise=0.2)
    net = MLP(20, 10, depth=1, width=8)
    start = copy.deepcopy(net).double()
    module = ClassifierModule(net, partial(torch.optim.SGD, lr=lr, momentum=mu, weight_decay=wd))
    quiet_trainer(max_steps=2).fit(module, datamodule=dm)

    order = StepShuffleSampler(dm.n_train, 5, dm.seed).order(0)
    params = list(start.parameters())
    velocity = [torch.zeros_like(p) for p in params]
    for step in range(2):
        idx = order[5 * step : 5 * step + 5]
        x = dm.train_set.inputs[idx].double()
        y = dm.train_set.targets[idx]
        loss = F.cross_entropy(start(x), y)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g, v in zip(params, grads, velocity, strict=True):
                v.mul_(mu).add_(g + wd * p)
                p.sub_(lr * v)
    for trained, reference in zip(net.parameters(), params, strict=True):
        assert torch.allclose(trained.double(), reference, atol=1e-6)


def test_logged_metrics_match_an_independent_evaluation():
    torch.manual_seed(1)
    dm = Gauss10DataModule(batch_size=10, seed=0, n_test=300)
    module = ClassifierModule(MLP(20, 10), partial(torch.optim.SGD, lr=0.1))
    trainer = quiet_trainer(
        max_steps=20, limit_val_batches=1.0, val_check_interval=20, check_val_every_n_epoch=None
    )
    trainer.fit(module, datamodule=dm)
    metrics = trainer.callback_metrics
    assert {"train/loss", "train/acc", "test/loss", "test/acc"} <= set(metrics)
    net = module.net.double()
    x, y = dm.test_set.inputs.double(), dm.test_set.targets
    with torch.no_grad():
        logits = net(x)
    ce = -torch.log_softmax(logits, dim=1)[torch.arange(len(y)), y].mean()
    acc = (logits.argmax(1) == y).double().mean()
    assert float(metrics["test/loss"]) == pytest.approx(float(ce), abs=1e-5)
    assert float(metrics["test/acc"]) == pytest.approx(float(acc), abs=1e-6)
    summary = evaluate(net.float(), dm.eval_dataloader("test"))
    assert summary["loss"] == pytest.approx(float(ce), abs=1e-5) and summary["n"] == 300


def test_training_seconds_add_up_over_resumed_segments(monkeypatch):
    """The checkpoint carries the training time so far; a resumed module adds its own segment."""
    clock = iter([10.0, 12.5, 100.0, 104.0])  # perf_counter: fit start / save; fit start / read
    monkeypatch.setattr("sgd_dynamics.lightning.module.time.perf_counter", lambda: next(clock))
    first = ClassifierModule(MLP(4, 3, depth=1, width=5), partial(torch.optim.SGD, lr=0.1))
    first.on_fit_start()
    checkpoint: dict = {}
    first.on_save_checkpoint(checkpoint)
    assert checkpoint["training_seconds"] == 2.5
    resumed = ClassifierModule(MLP(4, 3, depth=1, width=5), partial(torch.optim.SGD, lr=0.1))
    resumed.on_load_checkpoint(checkpoint)
    resumed.on_fit_start()
    assert resumed.training_seconds() == 2.5 + 4.0
    never_fitted = ClassifierModule(MLP(4, 3), partial(torch.optim.SGD, lr=0.1))
    assert never_fitted.training_seconds() == 0.0
