"""Structured-config schemas for every config option, and the one place that checks values.

Each config group has a module here holding the schema of each of its options
(``SCHEMAS``) and the value checks types alone cannot make (``validate``).
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

from fedsim.config import dataset, engine, logger, model, partitioner, privacy, strategy
from fedsim.config.checks import ConfigError, require

GROUPS = {
    "dataset": dataset,
    "partitioner": partitioner,
    "model": model,
    "strategy": strategy,
    "privacy": privacy,
    "engine": engine,
    "logger": logger,
}


@dataclass
class ClientConfig:
    local_epochs: int = 5
    batch_size: int = 10
    lr: float = 0.05
    eval_fraction: float = 0.1


@dataclass
class Config:
    seed: int = 0
    num_rounds: int = 20
    num_clients: int = 20
    clients_per_round: int = 20
    eval_clients_per_round: int = 20
    client: ClientConfig = field(default_factory=ClientConfig)
    stragglers: float = 0.0
    drop_stragglers: bool = False
    centralized_train_metrics: bool = False
    verbose: bool = False
    quiet: bool | None = None
    dataset: Any = MISSING
    partitioner: Any = MISSING
    model: Any = MISSING
    strategy: Any = MISSING
    privacy: Any = MISSING
    engine: Any = MISSING
    logger: Any = MISSING


def register_schemas() -> None:
    """Store the schemas where the YAML options find them (``/schema/GROUP/NAME``)."""
    store = ConfigStore.instance()
    store.store(name="schema", node=Config)
    for group, module in GROUPS.items():
        for name, node in module.SCHEMAS.items():
            store.store(group=f"schema/{group}", name=name, node=node)


def validate(cfg: DictConfig) -> None:
    """Check every value that types alone cannot check; raise ConfigError on the first."""
    require(cfg.num_rounds >= 1, f"num_rounds must be at least 1 (got {cfg.num_rounds}).")
    require(cfg.num_clients >= 1, f"num_clients must be at least 1 (got {cfg.num_clients}).")
    require(
        1 <= cfg.clients_per_round <= cfg.num_clients,
        f"clients_per_round must be between 1 and num_clients={cfg.num_clients} "
        f"(got {cfg.clients_per_round}).",
    )
    require(
        0 <= cfg.eval_clients_per_round <= cfg.num_clients,
        f"eval_clients_per_round must be between 0 and num_clients={cfg.num_clients} "
        f"(got {cfg.eval_clients_per_round}).",
    )
    client = cfg.client
    require(client.local_epochs >= 1, f"client.local_epochs must be at least 1 (got {client.local_epochs}).")
    require(client.batch_size >= 1, f"client.batch_size must be at least 1 (got {client.batch_size}).")
    require(client.lr > 0, f"client.lr must be greater than 0 (got {client.lr}).")
    require(
        0 < client.eval_fraction < 1,
        f"client.eval_fraction must be strictly between 0 and 1 (got {client.eval_fraction}).",
    )
    require(0 <= cfg.stragglers <= 1, f"stragglers must be a fraction in [0, 1] (got {cfg.stragglers}).")
    for group, module in GROUPS.items():
        module.validate(cfg[group], cfg)


__all__ = ["Config", "ConfigError", "register_schemas", "require", "validate"]
