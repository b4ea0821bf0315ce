"""Schemas and value checks of the strategy options."""

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig

from fedsim.config.checks import require


@dataclass
class FedAvgConfig:
    _target_: str = "flwr.serverapp.strategy.FedAvg"


@dataclass
class FedAvgMConfig:
    _target_: str = "flwr.serverapp.strategy.FedAvgM"
    server_learning_rate: float = 1.0
    server_momentum: float = 0.9


@dataclass
class FedOptConfig:
    _target_: str = MISSING
    eta: float = 0.1
    eta_l: float = 0.1
    beta_1: float = 0.9
    beta_2: float = 0.99
    tau: float = 1e-3


@dataclass
class FedAdagradConfig:
    _target_: str = "flwr.serverapp.strategy.FedAdagrad"
    eta: float = 0.1
    eta_l: float = 0.1
    tau: float = 1e-3


@dataclass
class FedMedianConfig:
    _target_: str = "flwr.serverapp.strategy.FedMedian"


SCHEMAS: dict[str, type] = {
    "fedavg": FedAvgConfig,
    "fedavgm": FedAvgMConfig,
    "fedopt": FedOptConfig,
    "fedadagrad": FedAdagradConfig,
    "fedmedian": FedMedianConfig,
}


def validate(strategy: DictConfig, cfg: DictConfig) -> None:
    """Check the values of the strategy option."""
    for key in ("eta", "eta_l", "server_learning_rate"):
        if key in strategy:
            require(strategy[key] > 0, f"strategy.{key} must be greater than 0 (got {strategy[key]}).")
    for key in ("beta_1", "beta_2", "server_momentum"):
        if key in strategy:
            require(
                0 <= strategy[key] < 1,
                f"strategy.{key} must be in [0, 1) (got {strategy[key]}).",
            )
    if "tau" in strategy:
        require(strategy.tau > 0, f"strategy.tau must be greater than 0 (got {strategy.tau}).")
