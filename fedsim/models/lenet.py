"""LeNet-5 as NIID-Bench and Flower's niid_bench baseline use it."""

import torch
from torch import nn
from torch.nn import functional as F


def pooled_size(size: int) -> int:
    """An image side after the two 5x5 convolutions (no padding) and 2x2 poolings."""
    return ((size - 4) // 2 - 4) // 2


class LeNet5(nn.Module):
    """Two 5x5 convolutions without padding, each with ReLU and 2x2 max pooling, then dense 120 and 84.

    conv 5x5 (6 channels) -> ReLU -> max pool 2x2 -> conv 5x5 (16 channels) -> ReLU ->
    max pool 2x2 -> dense 120 -> ReLU -> dense 84 -> ReLU -> dense ``num_classes``
    (logits). A 28x28 image leaves 16 x 4 x 4 features for the dense layers, a 32x32
    image 16 x 5 x 5.

    This is the CNN of NIID-Bench, layer for layer, activations and pooling included:
    ``SimpleCNNMNIST`` (one input channel) and ``SimpleCNN`` (three) of model.py in
    github.com/Xtra-Computing/NIID-Bench, built with ``hidden_dims=[120, 84]`` (Li, Diao,
    Chen, He. "Federated Learning on Non-IID Data Silos: An Experimental Study." ICDE
    2022), and the ``CNNMnist`` and ``CNN`` of Flower's niid_bench baseline
    (baselines/niid_bench/niid_bench/models.py in github.com/adap/flower, ``hidden_dims:
    [120, 84]``). The layers keep those models' names, so their state dicts load. The
    layout is LeCun et al.'s LeNet-5 (1998) with ReLU and max pooling.

    Parameters
    ----------
    input_shape : tuple[int, ...]
        (channels, height, width) of one image, at least 16x16 (given by fedsim at run time).
    num_classes : int
        Number of output logits (given by fedsim at run time).
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"LeNet-5 needs image input (channels, height, width), not shape {tuple(input_shape)}")
        channels, height, width = input_shape
        if min(height, width) < 16:
            raise ValueError(
                f"LeNet-5's two 5x5 convolutions and poolings need images of at least 16x16, not {height}x{width}"
            )
        self.conv1 = nn.Conv2d(channels, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * pooled_size(height) * pooled_size(width), 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.flatten(1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)
