"""Classifiers: a fully connected network (MLP). Any nn.Module mapping inputs to logits works
elsewhere in the project."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "identity": nn.Identity,
}


def _check(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"model.{name} must be an integer >= {minimum}, got {value!r}")
    return value


class MLP(nn.Sequential):
    """``input_dim -> [Linear(width), activation] x depth -> Linear(num_classes)`` (logits).

    `depth` counts hidden layers: the paper's "2-layer" network is depth 1, its "3-layer"
    network depth 2; depth 0 is multinomial logistic regression. Inputs (b, input_dim)
    float, logits (b, num_classes). With biases the parameter count is
    ``P = (input_dim + 1) w + (depth - 1)(w + 1) w + (w + 1) num_classes`` for depth >= 1
    (20-32-10: P = 1002). Layers use PyTorch's default initialisation.
    """

    def __init__(
        self,
        input_dim: int,
        num_classes: int,
        depth: int = 1,
        width: int = 32,
        activation: str = "relu",
        bias: bool = True,
    ) -> None:
        _check("input_dim", input_dim, 1)
        _check("num_classes", num_classes, 2)
        _check("depth", depth, 0)
        _check("width", width, 1)
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"model.activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}"
            )
        layers: list[nn.Module] = []
        size = input_dim
        for _ in range(depth):
            layers += [nn.Linear(size, width, bias=bias), ACTIVATIONS[activation]()]
            size = width
        layers.append(nn.Linear(size, num_classes, bias=bias))
        super().__init__(*layers)
        self.input_dim = input_dim
        self.num_classes = num_classes
        self.depth = depth
        self.width = width
        self.activation = activation


def num_parameters(net: nn.Module) -> int:
    """Number of trainable parameters P."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


@torch.no_grad()
def evaluate(net: nn.Module, loader: DataLoader) -> dict[str, float]:
    """Mean cross-entropy and accuracy of `net` over every batch of `loader`.

    Returns {"loss": (1/n) sum_i -log softmax(z_i)[y_i], "acc": fraction of argmax hits, "n": n}.
    The network is evaluated in eval mode and put back in the mode it was in.
    """
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    total_loss, correct, n = 0.0, 0, 0
    try:
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            logits = net(x)
            total_loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += int((logits.argmax(dim=-1) == y).sum())
            n += y.shape[0]
    finally:
        net.train(was_training)
    return {"loss": total_loss / n, "acc": correct / n, "n": n}
