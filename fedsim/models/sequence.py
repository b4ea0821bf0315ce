"""Models of sequences: a 1-D CNN for signals and LEAF's character LSTM for text."""

import torch
from torch import nn

from fedsim.config.checks import require
from fedsim.models.classic import check_size, check_sizes


class CNN1D(nn.Module):
    """Three strided 1-D convolutions and a linear layer: the CNN of the MNIST-1D paper.

    Greydanus (2020), "Scaling down deep learning": kernels 5, 3, 3 with stride 2 and
    padding 1, ReLU after each, 25 channels; a length-40 signal leaves 5 positions.
    Takes signals of shape (length,) or (channels, length).

    Parameters
    ----------
    input_shape : tuple[int, ...]
        (length,) or (channels, length) of one signal (given by fedsim at run time).
    num_classes : int
        Number of output logits (given by fedsim at run time).
    channels : list[int]
        Output channels of each convolution, each at least 1.
    kernel_sizes : list[int]
        Kernel size of each convolution, one per entry of ``channels``, each at least 1.
    """

    def __init__(
        self, input_shape: tuple[int, ...], num_classes: int, *, channels: list[int], kernel_sizes: list[int]
    ) -> None:
        check_sizes("channels", channels)
        check_sizes("kernel_sizes", kernel_sizes)
        require(
            len(kernel_sizes) == len(channels),
            f"model.kernel_sizes must give one kernel size per convolution of model.channels "
            f"({len(channels)}), not {len(kernel_sizes)}.",
        )
        super().__init__()
        if len(input_shape) not in (1, 2):
            raise ValueError(f"the 1-D CNN needs signals (length,) or (channels, length), not shape {tuple(input_shape)}")
        in_channels, length = (1, input_shape[0]) if len(input_shape) == 1 else input_shape
        layers: list[nn.Module] = []
        for out_channels, kernel_size in zip(channels, kernel_sizes):
            layers += [nn.Conv1d(in_channels, out_channels, kernel_size, stride=2, padding=1), nn.ReLU()]
            in_channels = out_channels
            length = (length + 2 - kernel_size) // 2 + 1
        if length < 1:
            raise ValueError(f"signals of length {input_shape[-1]} are too short for {len(channels)} strided convolutions")
        self.flat_input = len(input_shape) == 1
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(in_channels * length, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.flat_input:
            x = x.unsqueeze(1)
        return self.classifier(self.features(x).flatten(1))


class CharLSTM(nn.Module):
    """LEAF's next-character model: embedding, stacked LSTM, linear map of the last output.

    Caldas et al. (2018), "LEAF: A Benchmark for Federated Settings": an 8-dimensional
    embedding of each character, two LSTM layers of 256 units, and a linear layer from
    the last position's output to one logit per character. Inputs are token ids (int64)
    of shape (sequence length,); the vocabulary is the dataset's classes.

    Parameters
    ----------
    input_shape : tuple[int, ...]
        (sequence length,) of one example (given by fedsim at run time).
    num_classes : int
        Vocabulary size: embedded tokens and output logits (given by fedsim at run time).
    embedding_size : int
        Dimension of each character's embedding; at least 1.
    hidden_size : int
        Units of each LSTM layer; at least 1.
    num_layers : int
        Number of stacked LSTM layers; at least 1.
    """

    input_dtype = torch.int64

    def __init__(
        self, input_shape: tuple[int, ...], num_classes: int, *, embedding_size: int, hidden_size: int, num_layers: int
    ) -> None:
        check_size("embedding_size", embedding_size)
        check_size("hidden_size", hidden_size)
        check_size("num_layers", num_layers)
        super().__init__()
        if len(input_shape) != 1:
            raise ValueError(f"the LSTM needs sequences of token ids, shape (length,), not shape {tuple(input_shape)}")
        self.embedding = nn.Embedding(num_classes, embedding_size)
        self.lstm = nn.LSTM(embedding_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.classifier = nn.Linear(hidden_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.lstm(self.embedding(x))
        return self.classifier(outputs[:, -1])
