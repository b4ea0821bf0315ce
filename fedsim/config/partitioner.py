"""Schemas and value checks of the partitioner options."""

from dataclasses import dataclass

from omegaconf import MISSING, DictConfig

from fedsim.config.checks import require


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
    class_assignment_mode: str = "first-deterministic"
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


SCHEMAS: dict[str, type] = {
    "iid": IidPartitionerConfig,
    "dirichlet": DirichletPartitionerConfig,
    "pathological": PathologicalPartitionerConfig,
    "shards": ShardPartitionerConfig,
    "quantity_skew": QuantitySkewPartitionerConfig,
    "natural": NaturalIdPartitionerConfig,
}


def validate(partitioner: DictConfig, cfg: DictConfig) -> None:
    """Check the values of the partitioner option."""
    for key in ("alpha", "beta"):
        if key in partitioner:
            require(
                partitioner[key] > 0,
                f"partitioner.{key} must be greater than 0 (got {partitioner[key]}).",
            )
    for key in ("num_classes_per_partition", "num_shards_per_partition"):
        if key in partitioner:
            require(
                partitioner[key] >= 1,
                f"partitioner.{key} must be at least 1 (got {partitioner[key]}).",
            )
    if "min_partition_size" in partitioner:
        require(
            partitioner.min_partition_size >= 0,
            f"partitioner.min_partition_size must be at least 0 (got {partitioner.min_partition_size}).",
        )
