"""The description of a federation's data: the settings that decide every client's examples."""

import functools
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from fedsim.data.federation import Federation
from fedsim.data.partitioners import build_partitioner
from fedsim.instantiate import build


@dataclass(frozen=True)
class FederationSpec:
    """The dataset and partitioner options, the number of clients, the seed and the evaluation share, as YAML.

    Small and picklable: it travels to Ray actors and worker processes, each of which
    loads the federation once (``load``) and shares it among the clients it serves.
    """

    settings: str

    @classmethod
    def from_config(cls, cfg: DictConfig) -> "FederationSpec":
        keys = ["dataset", "partitioner", "num_clients", "seed", "client.eval_fraction"]
        return cls(OmegaConf.to_yaml({key: OmegaConf.select(cfg, key) for key in keys}, resolve=True))

    def load(self) -> Federation:
        """The federation, loaded once per process (every target checks its own settings)."""
        return _load(self.settings)


@functools.lru_cache(maxsize=2)
def _load(settings: str) -> Federation:
    cfg = OmegaConf.create(settings)
    data = build(cfg.dataset)
    partitioner = build_partitioner(cfg.partitioner, data, cfg.num_clients, cfg.seed)
    return Federation(data, partitioner, cfg["client.eval_fraction"], cfg.seed)
