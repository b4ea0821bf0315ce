"""The models of McMahan et al. (2017) and multinomial logistic regression."""

import math

import torch
from torch import nn


class LogisticRegression(nn.Module):
    """Multinomial logistic regression on the flattened input."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(math.prod(input_shape), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


class MLP(nn.Module):
    """Fully connected ReLU network on the flattened input (the 2NN with [200, 200])."""

    def __init__(
        self, input_shape: tuple[int, ...], num_classes: int, hidden_sizes: list[int] = (200, 200)
    ) -> None:
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
    height and width of at least 4 usable. ``batch_norm`` adds BatchNorm after each
    convolution (for FedBN).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        channels: list[int] = (32, 64),
        hidden_size: int = 512,
        batch_norm: bool = False,
    ) -> None:
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
