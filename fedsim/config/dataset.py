"""Schemas and value checks of the dataset options."""

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig

from fedsim.config.checks import require


@dataclass
class DigitsConfig:
    _target_: str = "fedsim.data.load_digits"
    test_fraction: float = 0.2
    seed: int = 0


@dataclass
class SyntheticConfig:
    _target_: str = "fedsim.data.load_synthetic"
    alpha: float = 0.0
    beta: float = 0.0
    iid: bool = False
    num_users: int = 30
    test_fraction: float = 0.1
    seed: int = 0


@dataclass
class HuggingFaceConfig:
    _target_: str = "fedsim.data.load_huggingface"
    path: str = MISSING
    data_files: Any = None
    name: str | None = None
    train_split: str = "train"
    test_split: str | None = "test"
    test_fraction: float = 0.2
    feature_columns: list[str] = field(default_factory=lambda: ["image"])
    label_column: str = "label"
    natural_id_column: str | None = None
    feature_scale: float = 1.0
    mean: list[float] | None = None
    std: list[float] | None = None
    augment: bool = False
    seed: int = 0


@dataclass
class FashionMNISTConfig:
    _target_: str = "fedsim.data.load_fashion_mnist"
    directory: str = "/usr/share/datasets/fashion-mnist"
    hub_path: str = "zalando-datasets/fashion_mnist"
    mean: list[float] | None = None
    std: list[float] | None = None


@dataclass
class MNIST1DConfig:
    _target_: str = "fedsim.data.load_mnist1d"
    num_samples: int = 5000
    test_fraction: float = 0.2
    seed: int = 0


@dataclass
class ShakespeareConfig:
    _target_: str = "fedsim.data.load_shakespeare"
    plays: list[str] | None = None
    sequence_length: int = 80
    test_fraction: float = 0.2
    min_examples_per_role: int = 100
    max_examples_per_role: int | None = 1000


SCHEMAS: dict[str, type] = {
    "digits": DigitsConfig,
    "synthetic": SyntheticConfig,
    "huggingface": HuggingFaceConfig,
    "fashion_mnist": FashionMNISTConfig,
    "mnist1d": MNIST1DConfig,
    "shakespeare": ShakespeareConfig,
}


def validate(dataset: DictConfig, cfg: DictConfig) -> None:
    """Check the values of the dataset option."""
    if "test_fraction" in dataset:
        require(
            0 < dataset.test_fraction < 1,
            f"dataset.test_fraction must be strictly between 0 and 1 (got {dataset.test_fraction}).",
        )
    if "num_users" in dataset:
        require(dataset.num_users >= 1, f"dataset.num_users must be at least 1 (got {dataset.num_users}).")
    for key in ("alpha", "beta"):
        if key in dataset:
            require(dataset[key] >= 0, f"dataset.{key} must be at least 0 (got {dataset[key]}).")
    if "mean" in dataset:
        _validate_normalization(dataset)
    if "num_samples" in dataset:
        require(
            dataset.num_samples >= 20,
            f"dataset.num_samples must be at least 20, two per class (got {dataset.num_samples}).",
        )
    if "sequence_length" in dataset:
        require(
            dataset.sequence_length >= 1, f"dataset.sequence_length must be at least 1 (got {dataset.sequence_length})."
        )
        require(
            dataset.min_examples_per_role >= 2,
            f"dataset.min_examples_per_role must be at least 2 (got {dataset.min_examples_per_role}).",
        )
        maximum = dataset.max_examples_per_role
        require(
            maximum is None or maximum >= dataset.min_examples_per_role,
            f"dataset.max_examples_per_role must be null or at least dataset.min_examples_per_role="
            f"{dataset.min_examples_per_role} (got {maximum}).",
        )


def _validate_normalization(dataset: DictConfig) -> None:
    mean, std = dataset.mean, dataset.std
    require(
        (mean is None) == (std is None),
        "dataset.mean and dataset.std go together: set both (one value per channel) or neither.",
    )
    if mean is not None:
        require(
            len(mean) == len(std) and len(mean) >= 1,
            f"dataset.mean and dataset.std must have the same number of values (got {len(mean)} and {len(std)}).",
        )
        require(all(value > 0 for value in std), f"dataset.std values must be greater than 0 (got {list(std)}).")
