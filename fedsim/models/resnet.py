"""ResNet-18 for small images, with GroupNorm in place of BatchNorm for federated training."""

import torch
from torch import nn
from torch.nn import functional as F

from fedsim.config.checks import require
from fedsim.models.classic import check_size


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (projected when the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, num_groups: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(num_groups, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(num_groups, out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.GroupNorm(num_groups, out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 (He et al. 2016) as used for CIFAR-10: a 3x3 stem and no max pooling.

    BatchNorm's running statistics do not average well over non-IID clients, so every
    normalization is GroupNorm (Hsieh et al. 2020, "The Non-IID Data Quagmire"), with
    ``num_groups`` groups. Four stages of two basic blocks (64, 128, 256, 512 channels,
    the last three halving the resolution), global average pooling, a linear layer.

    Parameters
    ----------
    input_shape : tuple[int, ...]
        (channels, height, width) of one image (given by fedsim at run time).
    num_classes : int
        Number of output logits (given by fedsim at run time).
    num_groups : int
        GroupNorm groups; at least 1 and a divisor of every stage's width (64, 128, 256, 512).
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, *, num_groups: int) -> None:
        check_size("num_groups", num_groups)
        widths = [64, 128, 256, 512]
        require(
            all(width % num_groups == 0 for width in widths),
            f"model.num_groups={num_groups} must divide every stage's width {widths}.",
        )
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"the ResNet needs image input (channels, height, width), not shape {tuple(input_shape)}")
        self.stem = nn.Sequential(
            nn.Conv2d(input_shape[0], 64, 3, padding=1, bias=False), nn.GroupNorm(num_groups, 64), nn.ReLU()
        )
        blocks: list[nn.Module] = []
        in_channels = 64
        for stage, width in enumerate(widths):
            for block in range(2):
                stride = 2 if stage > 0 and block == 0 else 1
                blocks.append(BasicBlock(in_channels, width, stride, num_groups))
                in_channels = width
        self.blocks = nn.Sequential(*blocks)
        self.classifier = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.blocks(self.stem(x))
        return self.classifier(F.adaptive_avg_pool2d(features, 1).flatten(1))
