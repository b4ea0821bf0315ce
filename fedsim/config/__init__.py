"""The config's top-level schema, the error a user's config value raises, and the checks of options against their targets.

Each config group's option (``conf/GROUP/NAME.yaml``) names its ``_target_`` and states
its settings with their defaults; the target checks the values (one sentence each)
and ``fedsim.config.options`` checks names and types against the target's signature.
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from fedsim.config.checks import ConfigError, require

GROUPS = (
    "dataset", "partitioner", "model", "optimizer", "lr_schedule", "strategy", "privacy", "attack", "engine", "callbacks",
)


@dataclass
class ClientConfig:
    local_epochs: int = MISSING
    batch_size: int = MISSING
    lr: float = MISSING
    eval_fraction: float = MISSING


@dataclass
class CheckpointConfig:
    every: int = MISSING


@dataclass
class FaultsConfig:
    dropout: float = MISSING
    kind: str = MISSING
    all_failed: str = MISSING


@dataclass
class Config:
    """Types of the top-level settings; their values are stated in conf/config.yaml."""

    seed: int = MISSING
    num_rounds: int = MISSING
    num_clients: int = MISSING
    clients_per_round: int = MISSING
    eval_clients_per_round: int = MISSING
    client: ClientConfig = field(default_factory=ClientConfig)
    stragglers: float = MISSING
    drop_stragglers: bool = MISSING
    faults: FaultsConfig = field(default_factory=FaultsConfig)
    centralized_train_metrics: bool = MISSING
    verbose: bool = MISSING
    quiet: bool | None = MISSING
    stop_on_divergence: bool = MISSING
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    device: str = MISSING
    dataset: Any = MISSING
    partitioner: Any = MISSING
    model: Any = MISSING
    optimizer: Any = MISSING
    lr_schedule: Any = MISSING
    strategy: Any = MISSING
    privacy: Any = MISSING
    attack: Any = MISSING
    engine: Any = MISSING
    callbacks: Any = None
    # The label of a method (conf/method/NAME.yaml: a strategy with its own settings); null: the strategy's name.
    method: str | None = None


def register_schemas() -> None:
    """Store the top-level schema where conf/config.yaml finds it (``schema``)."""
    ConfigStore.instance().store(name="schema", node=Config)


__all__ = ["GROUPS", "Config", "ConfigError", "register_schemas", "require"]
