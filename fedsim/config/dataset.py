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
    seed: int = 0


SCHEMAS: dict[str, type] = {
    "digits": DigitsConfig,
    "synthetic": SyntheticConfig,
    "huggingface": HuggingFaceConfig,
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
