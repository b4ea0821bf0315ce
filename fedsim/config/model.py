"""Schemas of the model options."""

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig

from fedsim.config.checks import require


@dataclass
class LogisticRegressionConfig:
    _target_: str = "fedsim.models.LogisticRegression"


@dataclass
class MLPConfig:
    _target_: str = "fedsim.models.MLP"
    hidden_sizes: list[int] = field(default_factory=lambda: [200, 200])


@dataclass
class CNNConfig:
    _target_: str = "fedsim.models.CNN"
    channels: list[int] = field(default_factory=lambda: [32, 64])
    hidden_size: int = 512


SCHEMAS: dict[str, type] = {
    "logreg": LogisticRegressionConfig,
    "mlp": MLPConfig,
    "cnn": CNNConfig,
}


def validate(model: DictConfig, cfg: DictConfig) -> None:
    """The model options have no values beyond what their types check."""
