"""The models of McMahan et al. (2017) and multinomial logistic regression."""

import math
from collections.abc import Sequence

import torch
from torch import nn

from fedsim.config.checks import require


def check_size(setting: str, size: int) -> None:
    """Raise ConfigError unless the layer size ``model.<setting>`` is at least 1."""
    require(size >= 1, f"model.{setting} must be at least 1 (got {size}).")


def check_sizes(setting: str, sizes: Sequence[int]) -> None:
    """Raise ConfigError unless every layer size in ``model.<setting>`` is at least 1."""
    require(all(size >= 1 for size in sizes), f"model.{setting} values must be at least 1 (got {list(sizes)}).")


class LogisticRegression(nn.Module):
    """Multinomial logistic regression on the flattened input."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(math.prod(input_shape), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


class MLP(nn.Module):
    """Fully connected ReLU network on the flattened input (the 2NN with [200, 200]).

    Parameters
    ----------
    input_shape : tuple[int, ...]
        Shape of one example, flattened at the input (given by fedsim at run time).
    num_classes : int
        Number of output logits (given by fedsim at run time).
    hidden_sizes : list[int]
        Units of each hidden layer, each at least 1; empty gives logistic regression.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, *, hidden_sizes: list[int]) -> None:
        check_sizes("hidden_sizes", hidden_sizes)
        super().__init__()
        sizes = [math.prod(input_shape), *hidden_sizes]
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.flatten(1))


class CNN(nn.Module):
    """Two 5x5 convolutions with 2x2 max pooling, one dense layer, softmax output.

    Needs image input of shape (channels, height, width); 'same' padding keeps any
    height and width of at least 4 usable.

    Parameters
    ----------
    input_shape : tuple[int, ...]
        (channels, height, width) of one image (given by fedsim at run time).
    num_classes : int
        Number of output logits (given by fedsim at run time).
    channels : list[int]
        Output channels of each convolution, each at least 1.
    hidden_size : int
        Units of the dense layer; at least 1.
    batch_norm : bool
        Add BatchNorm after each convolution (for FedBN).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        channels: list[int],
        hidden_size: int,
        batch_norm: bool,
    ) -> None:
        check_sizes("channels", channels)
        check_size("hidden_size", hidden_size)
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(
                f"the CNN needs image input (channels, height, width), not shape {tuple(input_shape)}"
            )
        in_channels, height, width = input_shape
        if min(height, width) < 2 ** len(channels):
            raise ValueError(
                f"the CNN pools {len(channels)} times and needs images of at least "
                f"{2 ** len(channels)}x{2 ** len(channels)}, not {height}x{width}"
            )
        layers: list[nn.Module] = []
        for out_channels in channels:
            layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=5, padding=2))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers += [nn.ReLU(), nn.MaxPool2d(2)]
            in_channels = out_channels
            height, width = height // 2, width // 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_channels * height * width, hidden_size),
            nn.ReLU(),
            nn.Linear(hidden_size, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
