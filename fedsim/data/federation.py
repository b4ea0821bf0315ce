"""The clients' data: one partition per client, turned into tensors when first asked for."""

from collections import OrderedDict
from dataclasses import dataclass

import datasets
import torch
from flwr_datasets.partitioner import Partitioner

from fedsim.data.dataset import FederatedData
from fedsim.data.partitioners import partition_rows
from fedsim.seeds import generator

DEFAULT_CACHE_BYTES = 256 * 2**20


@dataclass(frozen=True)
class ClientData:
    """One client's examples: a local training part and a local evaluation part."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    eval_x: torch.Tensor
    eval_y: torch.Tensor

    @property
    def num_bytes(self) -> int:
        tensors = (self.train_x, self.train_y, self.eval_x, self.eval_y)
        return sum(t.element_size() * t.nelement() for t in tensors)

    def to(self, device: torch.device) -> "ClientData":
        """The same examples on ``device`` (this object itself where they are there already)."""
        if self.train_x.device == device:
            return self
        tensors = (self.train_x, self.train_y, self.eval_x, self.eval_y)
        return ClientData(*(tensor.to(device) for tensor in tensors))


class Federation:
    """Partitions of a dataset's training split, materialized per client on demand.

    Materialized clients are kept in a least-recently-used cache bounded by bytes, so
    memory follows the clients a run touches, not the clients in the federation:
    a small federation stays cached whole (re-materializing a client costs about as
    much as one local epoch of a small model), a large one keeps its recent clients.

    Parameters
    ----------
    data : FederatedData
        The dataset.
    partitioner : Partitioner
        A partitioner whose ``dataset`` is already set (see ``build_partitioner``).
    eval_fraction : float
        Share of each client's partition kept for federated evaluation (see
        ``eval_size``); 0 keeps none.
    seed : int
        Seed of the train/evaluation split inside each partition.
    cache_bytes : int (default: 256 MiB)
        Most bytes of client tensors kept cached; the most recent client is always kept.
    """

    def __init__(
        self,
        data: FederatedData,
        partitioner: Partitioner,
        eval_fraction: float,
        seed: int,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.data = data
        self.partitioner = partitioner
        self.eval_fraction = eval_fraction
        self.seed = seed
        self.cache_bytes = cache_bytes
        self._clients: OrderedDict[int, ClientData] = OrderedDict()
        self._cached_bytes = 0
        self._test: tuple[torch.Tensor, torch.Tensor] | None = None
        self._tensor_view: datasets.Dataset | None = None

    @property
    def num_clients(self) -> int:
        return self.partitioner.num_partitions

    def eval_size(self, partition_size: int) -> int:
        """How many of a partition's examples its client keeps for federated evaluation.

        ``eval_fraction`` of them, rounded, at least one and at most all but one; with
        ``eval_fraction`` 0 none: the client trains on its whole partition.
        """
        if self.eval_fraction == 0:
            return 0
        return min(partition_size - 1, max(1, round(self.eval_fraction * partition_size)))

    @property
    def cached_clients(self) -> list[int]:
        """Partition ids whose tensors are cached, least recently used first."""
        return list(self._clients)

    def client(self, partition_id: int) -> ClientData:
        """The tensors of client ``partition_id`` (cached while the cache has room)."""
        if partition_id in self._clients:
            self._clients.move_to_end(partition_id)
            return self._clients[partition_id]
        client = self._materialize(partition_id)
        self._clients[partition_id] = client
        self._cached_bytes += client.num_bytes
        while self._cached_bytes > self.cache_bytes and len(self._clients) > 1:
            _, evicted = self._clients.popitem(last=False)
            self._cached_bytes -= evicted.num_bytes
        return client

    def _materialize(self, partition_id: int) -> ClientData:
        rows = partition_rows(self.partitioner, partition_id)
        if rows is None:
            x, y = self.data.to_tensors(self.partitioner.load_partition(partition_id))
        else:  # read the rows directly: building a Dataset per client costs more than reading it
            if self._tensor_view is None:
                self._tensor_view = self.partitioner.dataset.with_transform(self.data.transform)
            batch = self._tensor_view[rows]
            x, y = batch["inputs"], batch["labels"]
        rng = generator(self.seed, "client-split", partition_id)
        order = torch.from_numpy(rng.permutation(len(y)))
        num_eval = self.eval_size(len(y))
        train, evaluate = order[num_eval:], order[:num_eval]
        return ClientData(x[train], y[train], x[evaluate], y[evaluate])

    def test_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The held-out test split, for centralized evaluation."""
        if self._test is None:
            self._test = self.data.to_tensors(self.data.test)
        return self._test
