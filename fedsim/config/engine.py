"""Schemas and value checks of the engine options."""

from dataclasses import dataclass, field

from omegaconf import DictConfig

from fedsim.config.checks import require


@dataclass
class ClientResources:
    num_cpus: float = 1.0
    num_gpus: float = 0.0


@dataclass
class LocalEngineConfig:
    _target_: str = "fedsim.engines.LocalEngine"
    workers: int = 0


@dataclass
class RayEngineConfig:
    _target_: str = "fedsim.engines.RayEngine"
    client_resources: ClientResources = field(default_factory=ClientResources)
    address: str | None = None


SCHEMAS: dict[str, type] = {
    "local": LocalEngineConfig,
    "ray": RayEngineConfig,
}


def validate(engine: DictConfig, cfg: DictConfig) -> None:
    """Check the values of the engine option."""
    if "workers" in engine:
        require(
            engine.workers >= 0,
            f"engine.workers must be at least 0, where 0 runs the clients in this process (got {engine.workers}).",
        )
    if "client_resources" in engine:
        resources = engine.client_resources
        require(
            resources.num_cpus > 0,
            f"engine.client_resources.num_cpus must be greater than 0 (got {resources.num_cpus}).",
        )
        require(
            resources.num_gpus >= 0,
            f"engine.client_resources.num_gpus must be at least 0 (got {resources.num_gpus}).",
        )
