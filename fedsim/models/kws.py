"""TC-ResNet, a keyword-spotting CNN of temporal convolutions (Choi et al., Interspeech 2019)."""

import itertools

import torch
from torch import nn
from torch.nn import functional as F

from fedsim.config.checks import require


class TCResNet(nn.Module):
    """TC-ResNet: 1-D convolutions over time, with the spectrogram's frequency bins as channels.

    Choi, Seo, Shin, Byun, Kersner, Kim, Kim, Ha. "Temporal Convolution for Real-time
    Keyword Spotting on Mobile Devices." Interspeech 2019 (arXiv:1904.03814), layer for
    layer as the authors' code builds it (``audio_nets/tc_resnet.py`` in
    github.com/hyperconnect/TC-ResNet):

    conv 3 (``channels[0]``) -> BN -> ReLU, then one residual block per further entry of
    ``channels``: conv 9 -> BN -> ReLU -> conv 9 -> BN, plus the input, -> ReLU; a block
    that changes the width strides by 2 and its shortcut is conv 1 (stride 2) -> BN ->
    ReLU. Then average pooling over time, dropout and a linear layer to the logits.
    Convolutions have no bias (BatchNorm follows each); neither has the last layer, as
    in the authors' code. ``channels=[16, 24, 32, 48]`` is TC-ResNet8 (66k weights on 40
    mel bins x 98 frames and 12 classes), ``[16, 24, 24, 32, 32, 48, 48]`` TC-ResNet14;
    ``width_multiplier`` scales every width (the paper's TC-ResNet8-1.5 is 1.5).

    The authors' BatchNorm decay of 0.997 (PyTorch momentum 0.003) is PyTorch's default
    0.1 here: a federated client takes a few dozen steps a round, too few for the slow
    average to follow its data.

    Parameters
    ----------
    input_shape : tuple[int, ...]
        (1, frequency bins, frames) of a spectrogram, or (frequency bins, frames)
        (given by fedsim at run time).
    num_classes : int
        Number of output logits (given by fedsim at run time).
    channels : list[int]
        Width of the first convolution, then of each residual block; at least two entries, each at least 1.
    width_multiplier : float
        Every width is ``int(channels[i] * width_multiplier)``, which must stay at least 1.
    dropout : float
        Dropout before the last layer, in [0, 1) (the authors' keep probability 0.5 is 0.5).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        channels: list[int],
        width_multiplier: float,
        dropout: float,
    ) -> None:
        require(
            len(channels) >= 2 and all(width >= 1 for width in channels),
            f"model.channels must give at least two widths, each at least 1 (got {list(channels)}).",
        )
        require(width_multiplier > 0, f"model.width_multiplier must be greater than 0 (got {width_multiplier}).")
        widths = [int(width * width_multiplier) for width in channels]
        require(
            min(widths) >= 1,
            f"model.width_multiplier={width_multiplier} makes a width of model.channels={list(channels)} zero; "
            "raise it or widen the channels.",
        )
        require(0 <= dropout < 1, f"model.dropout must be in [0, 1) (got {dropout}).")
        super().__init__()
        shape = tuple(input_shape)
        if len(shape) == 3 and shape[0] == 1:
            shape = shape[1:]
        if len(shape) != 2:
            raise ValueError(
                f"TC-ResNet needs a spectrogram (1, frequency bins, frames) or (frequency bins, frames), "
                f"not shape {tuple(input_shape)}"
            )
        self.input_bins = shape[0]
        self.stem = nn.Sequential(
            nn.Conv1d(shape[0], widths[0], 3, padding=1, bias=False), nn.BatchNorm1d(widths[0]), nn.ReLU()
        )
        self.blocks = nn.Sequential(
            *(TemporalBlock(fan_in, fan_out) for fan_in, fan_out in itertools.pairwise(widths))
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(widths[-1], num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], self.input_bins, x.shape[-1])
        x = self.blocks(self.stem(x))
        return self.classifier(self.dropout(x.mean(dim=-1)))


class TemporalBlock(nn.Module):
    """TC-ResNet's residual block; it halves the frames (stride 2) when it changes the width."""

    def __init__(self, fan_in: int, fan_out: int) -> None:
        super().__init__()
        stride = 1 if fan_in == fan_out else 2
        self.conv1 = nn.Conv1d(fan_in, fan_out, 9, stride=stride, padding=4, bias=False)
        self.bn1 = nn.BatchNorm1d(fan_out)
        self.conv2 = nn.Conv1d(fan_out, fan_out, 9, padding=4, bias=False)
        self.bn2 = nn.BatchNorm1d(fan_out)
        self.shortcut = (
            nn.Identity()
            if stride == 1
            else nn.Sequential(nn.Conv1d(fan_in, fan_out, 1, stride=2, bias=False), nn.BatchNorm1d(fan_out), nn.ReLU())
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))
