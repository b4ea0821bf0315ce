"""A dataset as fedsim sees it: Hugging Face splits plus what a model needs to know."""

from dataclasses import dataclass

import datasets
import numpy as np
import torch


@dataclass(frozen=True)
class FederatedData:
    """Training and held-out test split of one dataset.

    Parameters
    ----------
    train, test : datasets.Dataset
        The splits; ``train`` is what the partitioner divides among clients and
        ``test`` is the server's held-out set for centralized evaluation.
    feature_columns : list[str]
        One column holding arrays or images, or several scalar columns.
    label_column : str
        Integer class labels.
    input_shape : tuple[int, ...]
        Shape of one example as the model sees it, e.g. (1, 8, 8) or (60,).
    num_classes : int
        Number of classes.
    feature_scale : float
        Features are divided by this (255 for 8-bit images).
    natural_id_column : str | None
        Column naming the natural owner of each example (a user, a writer), if any.
    """

    train: datasets.Dataset
    test: datasets.Dataset
    feature_columns: list[str]
    label_column: str
    input_shape: tuple[int, ...]
    num_classes: int
    feature_scale: float = 1.0
    natural_id_column: str | None = None

    def to_tensors(self, split: datasets.Dataset) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (float32, ``input_shape`` per example) and labels (int64) of ``split``."""
        columns = split.with_format("numpy")[:]
        x = features_array(columns, self.feature_columns) / np.float32(self.feature_scale)
        if x.ndim == 4:  # colour images arrive height x width x channels
            x = x.transpose(0, 3, 1, 2)
        x = np.ascontiguousarray(x.reshape(len(split), *self.input_shape))
        y = np.asarray(columns[self.label_column], dtype=np.int64)
        return torch.from_numpy(x), torch.from_numpy(y)


def features_array(columns: dict, feature_columns: list[str]) -> np.ndarray:
    """Stack the feature columns of a numpy-formatted batch into one float32 array."""
    if len(feature_columns) == 1:
        return np.asarray(columns[feature_columns[0]], dtype=np.float32)
    return np.stack([np.asarray(columns[c], dtype=np.float32) for c in feature_columns], axis=1)


def infer_input_shape(example: np.ndarray) -> tuple[int, ...]:
    """Model input shape of one example: 2-D arrays become 1-channel images, HWC becomes CHW."""
    if example.ndim == 2:
        return (1, *example.shape)
    if example.ndim == 3:
        height, width, channels = example.shape
        return (channels, height, width)
    return tuple(example.shape)
