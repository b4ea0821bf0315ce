"""Schemas of the model options."""

from dataclasses import dataclass, field

from omegaconf import DictConfig

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
    batch_norm: bool = False


@dataclass
class CNN1DConfig:
    _target_: str = "fedsim.models.CNN1D"
    channels: list[int] = field(default_factory=lambda: [25, 25, 25])
    kernel_sizes: list[int] = field(default_factory=lambda: [5, 3, 3])


@dataclass
class LSTMConfig:
    _target_: str = "fedsim.models.CharLSTM"
    embedding_size: int = 8
    hidden_size: int = 256
    num_layers: int = 2


@dataclass
class ResNet18Config:
    _target_: str = "fedsim.models.ResNet18"
    num_groups: int = 2


SCHEMAS: dict[str, type] = {
    "logreg": LogisticRegressionConfig,
    "mlp": MLPConfig,
    "cnn": CNNConfig,
    "cnn1d": CNN1DConfig,
    "lstm": LSTMConfig,
    "resnet18": ResNet18Config,
}


def validate(model: DictConfig, cfg: DictConfig) -> None:
    """Check the sizes of the model option; whether it fits the data is checked when it is built."""
    for key in ("hidden_size", "embedding_size", "num_layers", "num_groups"):
        if key in model:
            require(model[key] >= 1, f"model.{key} must be at least 1 (got {model[key]}).")
    for key in ("channels", "hidden_sizes", "kernel_sizes"):
        if key in model:
            require(
                all(value >= 1 for value in model[key]),
                f"model.{key} values must be at least 1 (got {list(model[key])}).",
            )
