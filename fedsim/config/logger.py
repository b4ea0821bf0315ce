"""Schemas and value checks of the logger options (where per-round metrics go besides metrics.csv)."""

from dataclasses import dataclass

from omegaconf import DictConfig

from fedsim.config.checks import require


@dataclass
class NoLoggerConfig:
    _target_: str = "fedsim.loggers.NoLogger"


@dataclass
class TensorBoardLoggerConfig:
    _target_: str = "fedsim.loggers.TensorBoardLogger"
    log_dir: str = "tensorboard"


SCHEMAS: dict[str, type] = {
    "none": NoLoggerConfig,
    "tensorboard": TensorBoardLoggerConfig,
}


def validate(logger: DictConfig, cfg: DictConfig) -> None:
    """Check the values of the logger option."""
    if "log_dir" in logger:
        require(bool(logger.log_dir.strip()), "logger.log_dir must name a folder (got an empty string).")
