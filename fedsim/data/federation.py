"""The clients' data: one partition per client, turned into tensors when first asked for."""

from dataclasses import dataclass

import numpy as np
import torch
from flwr_datasets.partitioner import Partitioner

from fedsim.data.dataset import FederatedData


@dataclass(frozen=True)
class ClientData:
    """One client's examples: a local training part and a local evaluation part."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    eval_x: torch.Tensor
    eval_y: torch.Tensor


class Federation:
    """Partitions of a dataset's training split, materialized per client on demand.

    Parameters
    ----------
    data : FederatedData
        The dataset.
    partitioner : Partitioner
        A partitioner whose ``dataset`` is already set (see ``build_partitioner``).
    eval_fraction : float
        Share of each client's partition kept for federated evaluation (at least one
        example, at most all but one).
    seed : int
        Seed of the train/evaluation split inside each partition.
    """

    def __init__(
        self, data: FederatedData, partitioner: Partitioner, eval_fraction: float, seed: int
    ) -> None:
        self.data = data
        self.partitioner = partitioner
        self.eval_fraction = eval_fraction
        self.seed = seed
        self._clients: dict[int, ClientData] = {}
        self._test: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def num_clients(self) -> int:
        return self.partitioner.num_partitions

    def client(self, partition_id: int) -> ClientData:
        """The tensors of client ``partition_id`` (cached after the first call)."""
        if partition_id not in self._clients:
            x, y = self.data.to_tensors(self.partitioner.load_partition(partition_id))
            rng = np.random.default_rng([self.seed, partition_id])
            order = torch.from_numpy(rng.permutation(len(y)))
            num_eval = min(len(y) - 1, max(1, round(self.eval_fraction * len(y))))
            train, evaluate = order[num_eval:], order[:num_eval]
            self._clients[partition_id] = ClientData(x[train], y[train], x[evaluate], y[evaluate])
        return self._clients[partition_id]

    def test_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The held-out test split, for centralized evaluation."""
        if self._test is None:
            self._test = self.data.to_tensors(self.data.test)
        return self._test
