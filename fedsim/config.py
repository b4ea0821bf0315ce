"""Structured-config schemas for every config option, and the one place that checks values."""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig


class ConfigError(ValueError):
    """A configuration value a user set is outside what fedsim allows."""


# --- top level -------------------------------------------------------------------------


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
    verbose: bool = False
    dataset: Any = MISSING
    partitioner: Any = MISSING
    model: Any = MISSING
    strategy: Any = MISSING
    privacy: Any = MISSING
    engine: Any = MISSING


# --- dataset ---------------------------------------------------------------------------


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


# --- partitioner -----------------------------------------------------------------------


@dataclass
class IidPartitionerConfig:
    _target_: str = "flwr_datasets.partitioner.IidPartitioner"
    num_partitions: int = MISSING


@dataclass
class DirichletPartitionerConfig:
    _target_: str = "flwr_datasets.partitioner.DirichletPartitioner"
    num_partitions: int = MISSING
    partition_by: str = "label"
    alpha: float = 0.5
    min_partition_size: int = 10
    self_balancing: bool = False
    seed: int = 0


@dataclass
class PathologicalPartitionerConfig:
    _target_: str = "flwr_datasets.partitioner.PathologicalPartitioner"
    num_partitions: int = MISSING
    partition_by: str = "label"
    num_classes_per_partition: int = 2
    class_assignment_mode: str = "random"
    seed: int = 0


@dataclass
class ShardPartitionerConfig:
    _target_: str = "flwr_datasets.partitioner.ShardPartitioner"
    num_partitions: int = MISSING
    partition_by: str = "label"
    num_shards_per_partition: int = 2
    seed: int = 0


@dataclass
class QuantitySkewPartitionerConfig:
    _target_: str = "fedsim.data.QuantitySkewPartitioner"
    num_partitions: int = MISSING
    beta: float = 0.5
    min_partition_size: int = 10
    seed: int = 0


@dataclass
class NaturalIdPartitionerConfig:
    _target_: str = "flwr_datasets.partitioner.NaturalIdPartitioner"
    partition_by: str | None = None


# --- model -----------------------------------------------------------------------------


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


# --- strategy --------------------------------------------------------------------------


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


# --- privacy and engine ----------------------------------------------------------------


@dataclass
class NoPrivacyConfig:
    mechanism: str = "none"


@dataclass
class ClientResources:
    num_cpus: float = 1.0
    num_gpus: float = 0.0


@dataclass
class LocalEngineConfig:
    _target_: str = "fedsim.engines.LocalEngine"


@dataclass
class RayEngineConfig:
    _target_: str = "fedsim.engines.RayEngine"
    client_resources: ClientResources = field(default_factory=ClientResources)
    address: str | None = None


SCHEMAS: dict[str, dict[str, type]] = {
    "dataset": {
        "digits": DigitsConfig,
        "synthetic": SyntheticConfig,
        "huggingface": HuggingFaceConfig,
    },
    "partitioner": {
        "iid": IidPartitionerConfig,
        "dirichlet": DirichletPartitionerConfig,
        "pathological": PathologicalPartitionerConfig,
        "shards": ShardPartitionerConfig,
        "quantity_skew": QuantitySkewPartitionerConfig,
        "natural": NaturalIdPartitionerConfig,
    },
    "model": {"logreg": LogisticRegressionConfig, "mlp": MLPConfig, "cnn": CNNConfig},
    "strategy": {
        "fedavg": FedAvgConfig,
        "fedavgm": FedAvgMConfig,
        "fedopt": FedOptConfig,
        "fedadagrad": FedAdagradConfig,
        "fedmedian": FedMedianConfig,
    },
    "privacy": {"none": NoPrivacyConfig},
    "engine": {"local": LocalEngineConfig, "ray": RayEngineConfig},
}


def register_schemas() -> None:
    """Store the schemas where the YAML options find them (``/schema/GROUP/NAME``)."""
    store = ConfigStore.instance()
    store.store(name="schema", node=Config)
    for group, options in SCHEMAS.items():
        for name, node in options.items():
            store.store(group=f"schema/{group}", name=name, node=node)


# --- value checks ----------------------------------------------------------------------


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def validate(cfg: DictConfig) -> None:
    """Check every value that types alone cannot check; raise ConfigError on the first."""
    _require(cfg.num_rounds >= 1, f"num_rounds must be at least 1 (got {cfg.num_rounds}).")
    _require(cfg.num_clients >= 1, f"num_clients must be at least 1 (got {cfg.num_clients}).")
    _require(
        1 <= cfg.clients_per_round <= cfg.num_clients,
        f"clients_per_round must be between 1 and num_clients={cfg.num_clients} "
        f"(got {cfg.clients_per_round}).",
    )
    _require(
        0 <= cfg.eval_clients_per_round <= cfg.num_clients,
        f"eval_clients_per_round must be between 0 and num_clients={cfg.num_clients} "
        f"(got {cfg.eval_clients_per_round}).",
    )
    client = cfg.client
    _require(client.local_epochs >= 1, f"client.local_epochs must be at least 1 (got {client.local_epochs}).")
    _require(client.batch_size >= 1, f"client.batch_size must be at least 1 (got {client.batch_size}).")
    _require(client.lr > 0, f"client.lr must be greater than 0 (got {client.lr}).")
    _require(
        0 < client.eval_fraction < 1,
        f"client.eval_fraction must be strictly between 0 and 1 (got {client.eval_fraction}).",
    )
    _validate_dataset(cfg.dataset)
    _validate_partitioner(cfg.partitioner)
    _validate_strategy(cfg.strategy)
    _validate_engine(cfg.engine)


def _validate_dataset(dataset: DictConfig) -> None:
    if "test_fraction" in dataset:
        _require(
            0 < dataset.test_fraction < 1,
            f"dataset.test_fraction must be strictly between 0 and 1 (got {dataset.test_fraction}).",
        )
    if "num_users" in dataset:
        _require(dataset.num_users >= 1, f"dataset.num_users must be at least 1 (got {dataset.num_users}).")
    for key in ("alpha", "beta"):
        if key in dataset:
            _require(dataset[key] >= 0, f"dataset.{key} must be at least 0 (got {dataset[key]}).")


def _validate_partitioner(partitioner: DictConfig) -> None:
    for key in ("alpha", "beta"):
        if key in partitioner:
            _require(
                partitioner[key] > 0,
                f"partitioner.{key} must be greater than 0 (got {partitioner[key]}).",
            )
    for key in ("num_classes_per_partition", "num_shards_per_partition"):
        if key in partitioner:
            _require(
                partitioner[key] >= 1,
                f"partitioner.{key} must be at least 1 (got {partitioner[key]}).",
            )
    if "min_partition_size" in partitioner:
        _require(
            partitioner.min_partition_size >= 0,
            f"partitioner.min_partition_size must be at least 0 (got {partitioner.min_partition_size}).",
        )


def _validate_strategy(strategy: DictConfig) -> None:
    for key in ("eta", "eta_l", "server_learning_rate"):
        if key in strategy:
            _require(strategy[key] > 0, f"strategy.{key} must be greater than 0 (got {strategy[key]}).")
    for key in ("beta_1", "beta_2", "server_momentum"):
        if key in strategy:
            _require(
                0 <= strategy[key] < 1,
                f"strategy.{key} must be in [0, 1) (got {strategy[key]}).",
            )
    if "tau" in strategy:
        _require(strategy.tau > 0, f"strategy.tau must be greater than 0 (got {strategy.tau}).")


def _validate_engine(engine: DictConfig) -> None:
    if "client_resources" in engine:
        resources = engine.client_resources
        _require(
            resources.num_cpus > 0,
            f"engine.client_resources.num_cpus must be greater than 0 (got {resources.num_cpus}).",
        )
        _require(
            resources.num_gpus >= 0,
            f"engine.client_resources.num_gpus must be at least 0 (got {resources.num_gpus}).",
        )
