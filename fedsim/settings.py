"""The run-wide settings of a config (its top level and ``client``), checked once."""

import math
from dataclasses import dataclass

from omegaconf import DictConfig

from fedsim.config.checks import require
from fedsim.faults import FaultSettings


@dataclass(frozen=True)
class ClientSettings:
    """How clients train and evaluate by default (``client.*``)."""

    local_epochs: int
    batch_size: int
    lr: float
    eval_fraction: float

    def __post_init__(self) -> None:
        require(self.local_epochs >= 1, f"client.local_epochs must be at least 1 (got {self.local_epochs}).")
        require(self.batch_size >= 1, f"client.batch_size must be at least 1 (got {self.batch_size}).")
        require(
            math.isfinite(self.lr) and self.lr > 0, f"client.lr must be greater than 0 and finite (got {self.lr})."
        )
        require(
            0 <= self.eval_fraction < 1,
            f"client.eval_fraction must be at least 0 and below 1, where 0 trains on whole partitions "
            f"(got {self.eval_fraction}).",
        )


@dataclass(frozen=True)
class RunSettings:
    """The settings of a run that belong to no config group; see conf/config.yaml for each."""

    seed: int
    num_rounds: int
    num_clients: int
    clients_per_round: int
    eval_clients_per_round: int
    client: ClientSettings
    stragglers: float
    drop_stragglers: bool
    centralized_train_metrics: bool
    verbose: bool
    quiet: bool | None
    faults: FaultSettings
    stop_on_divergence: bool = True
    checkpoint_every: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        require(0 <= self.seed < 2**63, f"seed must be at least 0 and below 2**63 (got {self.seed}).")
        require(self.num_rounds >= 1, f"num_rounds must be at least 1 (got {self.num_rounds}).")
        require(self.num_clients >= 1, f"num_clients must be at least 1 (got {self.num_clients}).")
        require(
            1 <= self.clients_per_round <= self.num_clients,
            f"clients_per_round must be between 1 and num_clients={self.num_clients} "
            f"(got {self.clients_per_round}).",
        )
        require(
            0 <= self.eval_clients_per_round <= self.num_clients,
            f"eval_clients_per_round must be between 0 and num_clients={self.num_clients} "
            f"(got {self.eval_clients_per_round}).",
        )
        require(
            self.client.eval_fraction > 0 or self.eval_clients_per_round == 0,
            f"client.eval_fraction=0 keeps no examples for federated evaluation, so it needs "
            f"eval_clients_per_round=0 (got {self.eval_clients_per_round}).",
        )
        require(0 <= self.stragglers <= 1, f"stragglers must be a fraction in [0, 1] (got {self.stragglers}).")
        require(
            self.checkpoint_every >= 0,
            f"checkpoint.every must be at least 0, where 0 writes no checkpoints (got {self.checkpoint_every}).",
        )

    @classmethod
    def from_config(cls, cfg: DictConfig) -> "RunSettings":
        """The run-wide settings of a composed config (its types were checked by the schema)."""
        names = [name for name in cls.__dataclass_fields__ if name not in ("client", "faults", "checkpoint_every")]
        return cls(
            client=ClientSettings(**cfg.client),
            faults=FaultSettings(**cfg.faults),
            checkpoint_every=cfg.checkpoint.every,
            **{name: cfg[name] for name in names},
        )

    @property
    def sample_rate(self) -> float:
        """The share of the federation drawn for training each round."""
        return self.clients_per_round / self.num_clients
