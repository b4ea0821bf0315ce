"""A dataset as fedsim sees it: Hugging Face splits plus what a model needs to know."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import datasets
import numpy as np
import torch

TOKEN_DTYPE = "int64"


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
    input_dtype : str (default: "float32")
        ``"float32"`` for real-valued features, ``"int64"`` for token ids (a character
        or word index), which are passed on as they are: no scaling, no normalization.
    mean, std : tuple[float, ...] | None
        Per-channel normalization applied after scaling, ``(x - mean) / std``; one value
        per channel (the first axis of ``input_shape``) or a single value.
    augmentation : Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None
        A random transform of a batch of training inputs, drawn anew for every batch
        (e.g. random crops and flips); never applied to evaluation data.
    features : Callable[[Sequence], np.ndarray] | None
        Computes the model inputs of a batch from the values of its one feature column
        (e.g. ``fedsim.data.audio.LogMelSpectrogram``: encoded audio clips -> log-mel
        spectrograms), in place of stacking and scaling them; normalization still follows.
        It must be small and picklable: ``datasets`` fingerprints it.
    """

    train: datasets.Dataset
    test: datasets.Dataset
    feature_columns: list[str]
    label_column: str
    input_shape: tuple[int, ...]
    num_classes: int
    feature_scale: float = 1.0
    natural_id_column: str | None = None
    input_dtype: str = "float32"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    augmentation: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None
    features: Callable[[Sequence], np.ndarray] | None = None

    @property
    def transform(self) -> "TensorTransform":
        """The transform from stored rows to model tensors (see ``TensorTransform``)."""
        return TensorTransform(
            feature_columns=tuple(self.feature_columns),
            label_column=self.label_column,
            input_shape=self.input_shape,
            feature_scale=self.feature_scale,
            input_dtype=self.input_dtype,
            mean=self.mean,
            std=self.std,
            features=self.features,
        )

    def to_tensors(self, split: datasets.Dataset) -> tuple[torch.Tensor, torch.Tensor]:
        """Model inputs (``input_dtype``, ``input_shape`` per example) and labels (int64) of ``split``.

        The rows go through ``split.with_transform(self.transform)``: scaling and
        normalization happen as rows are read, so the stored dataset is never rewritten
        or copied.
        """
        batch = split.with_transform(self.transform)[:]
        return batch["inputs"], batch["labels"]


@dataclass(frozen=True)
class TensorTransform:
    """A ``datasets`` transform (``Dataset.with_transform``) from stored rows to model tensors.

    It turns a batch of rows (a dict of column lists, as ``datasets`` hands a transform)
    into ``{"inputs": ..., "labels": ...}``: features stacked, divided by
    ``feature_scale``, colour images moved to channels first (or computed by
    ``features`` from the feature column's values), reshaped to ``input_shape`` and
    normalized per channel; token ids pass unchanged. It holds only
    the description of the columns, so ``datasets`` fingerprints it in microseconds.
    Random augmentation is not part of it: it is drawn per training minibatch (see
    ``FederatedData.augmentation``).
    """

    feature_columns: tuple[str, ...]
    label_column: str
    input_shape: tuple[int, ...]
    feature_scale: float = 1.0
    input_dtype: str = "float32"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    features: Callable[[Sequence], np.ndarray] | None = None

    def __call__(self, batch: dict) -> dict[str, torch.Tensor]:
        y = np.asarray(batch[self.label_column], dtype=np.int64)
        if self.input_dtype == TOKEN_DTYPE:
            x = np.asarray(batch[self.feature_columns[0]], dtype=np.int64)
            inputs = torch.from_numpy(np.ascontiguousarray(x.reshape(len(y), *self.input_shape)))
            return {"inputs": inputs, "labels": torch.from_numpy(y)}
        if self.features is not None:
            x = self.features(batch[self.feature_columns[0]])
        else:
            x = features_array(batch, list(self.feature_columns)) / np.float32(self.feature_scale)
            if x.ndim == 4:  # colour images arrive height x width x channels
                x = x.transpose(0, 3, 1, 2)
        x = np.ascontiguousarray(x.reshape(len(y), *self.input_shape))
        if self.mean is not None:
            x = normalize(x, self.mean, self.std)
        return {"inputs": torch.from_numpy(x), "labels": torch.from_numpy(y)}


def normalize(x: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """``(x - mean) / std`` per channel (axis 1 of the batch ``x``), in float32."""
    extra_axes = (1,) * (x.ndim - 2)
    mean_array = np.asarray(mean, dtype=np.float32).reshape(1, -1, *extra_axes)
    std_array = np.asarray(std, dtype=np.float32).reshape(1, -1, *extra_axes)
    return (x - mean_array) / std_array


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
