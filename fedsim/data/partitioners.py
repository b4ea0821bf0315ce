"""Partitioners fedsim adds to flwr-datasets', and building the configured one."""

from collections.abc import Sequence

import datasets
import numpy as np
from flwr_datasets.partitioner import IidPartitioner, Partitioner
from omegaconf import DictConfig

from fedsim.config import ConfigError
from fedsim.data.dataset import FederatedData
from fedsim.instantiate import build


class QuantitySkewPartitioner(Partitioner):
    """Quantity skew: client sizes follow Dirichlet(beta) proportions, labels stay IID.

    The quantity-based skew of NIID-Bench (Li et al. 2022, "Federated Learning on
    Non-IID Data Silos: An Experimental Study"). Proportions are redrawn until every
    client holds at least ``min_partition_size`` examples (at most 100 draws).

    Parameters
    ----------
    num_partitions : int
        Number of clients.
    beta : float
        Dirichlet concentration; small values give very unequal sizes.
    min_partition_size : int (default: 10)
        Smallest allowed client size.
    seed : int (default: 0)
        Seed of the size draw and of the example assignment.
    """

    def __init__(
        self, num_partitions: int, beta: float, min_partition_size: int = 10, seed: int = 0
    ) -> None:
        super().__init__()
        if num_partitions < 1:
            raise ValueError("num_partitions must be at least 1")
        if beta <= 0:
            raise ValueError("beta must be greater than 0")
        self._num_partitions = num_partitions
        self._beta = beta
        self._min_partition_size = min_partition_size
        self._seed = seed
        self._indices: list[np.ndarray] | None = None

    @property
    def num_partitions(self) -> int:
        return self._num_partitions

    def load_partition(self, partition_id: int) -> datasets.Dataset:
        if self._indices is None:
            self._indices = self._assign()
        return self.dataset.select(self._indices[partition_id])

    def _assign(self) -> list[np.ndarray]:
        num_examples = len(self.dataset)
        if num_examples < self._num_partitions * self._min_partition_size:
            raise ValueError(
                f"{num_examples} examples cannot give {self._num_partitions} clients "
                f"{self._min_partition_size} examples each"
            )
        rng = np.random.default_rng(self._seed)
        for _ in range(100):
            proportions = rng.dirichlet(np.full(self._num_partitions, self._beta))
            cuts = (np.cumsum(proportions) * num_examples).astype(int)[:-1]
            if np.diff(np.concatenate([[0], cuts, [num_examples]])).min() >= self._min_partition_size:
                return np.split(rng.permutation(num_examples), cuts)
        raise ValueError(
            f"no Dirichlet({self._beta}) draw in 100 gave every client "
            f"{self._min_partition_size} examples; raise beta or lower min_partition_size"
        )


def build_partitioner(
    partitioner_cfg: DictConfig, data: FederatedData, num_clients: int, seed: int
) -> Partitioner:
    """Instantiate the configured partitioner over ``data.train`` and check its partitions.

    The training split is shuffled with ``seed`` first, so partitioners that cut
    contiguous blocks (IID) do not inherit the order the examples were stored in.

    A natural-id partitioner with ``partition_by: null`` uses the dataset's natural id.
    Every user-caused failure (too many partitions, an impossible split, a missing
    column) becomes a ConfigError.
    """
    runtime = {}
    if "partition_by" in partitioner_cfg and partitioner_cfg.partition_by is None:
        if data.natural_id_column is None:
            raise ConfigError(
                "partitioner.partition_by: this dataset has no natural id column; name one of "
                f"its columns {data.train.column_names}."
            )
        runtime["partition_by"] = data.natural_id_column
    column = runtime.get("partition_by", partitioner_cfg.get("partition_by"))
    if column is not None and column not in data.train.column_names:
        raise ConfigError(
            f"partitioner.partition_by: column '{column}' is not in the dataset; its columns are "
            f"{data.train.column_names}."
        )
    if "num_partitions" in partitioner_cfg and partitioner_cfg.num_partitions > len(data.train):
        raise ConfigError(
            f"num_clients={partitioner_cfg.num_partitions} is more than the {len(data.train)} training "
            "examples, and each client needs at least 2."
        )
    try:
        partitioner = build(partitioner_cfg, **runtime)
        partitioner.dataset = data.train.shuffle(seed=seed)
        num_partitions = partitioner.num_partitions
        if num_partitions != num_clients:
            raise ConfigError(
                f"num_clients: the partitioner makes {num_partitions} partitions "
                f"(one per value of '{column}'), so set num_clients={num_partitions}."
            )
        sizes = _partition_sizes(partitioner)
    except ConfigError:
        raise
    except (ValueError, IndexError, ZeroDivisionError) as error:
        raise ConfigError(
            f"the partitioner cannot split {len(data.train)} examples over {num_clients} clients "
            f"({_one_clause(error)}); use fewer clients or change the partitioner's settings."
        ) from error
    if min(sizes) < 2:
        raise ConfigError(
            f"partitioner: client {int(np.argmin(sizes))} gets {min(sizes)} example(s) but each client "
            f"needs at least 2 (one to train, one to evaluate); use fewer clients or another partitioner."
        )
    return partitioner


def _partition_sizes(partitioner: Partitioner) -> list[int]:
    """Every partition's size, from ``partition_rows`` where the partitioner keeps its rows.

    Loading each partition as a ``datasets.Dataset`` costs about a millisecond, which
    is seconds at 10,000 clients. Other partitioners are loaded.
    """
    num_partitions = partitioner.num_partitions
    first = len(partitioner.load_partition(0))  # lets a partitioner assign its indices (or fail)
    rows = [partition_rows(partitioner, pid) for pid in range(num_partitions)]
    if all(r is not None for r in rows):
        return [len(r) for r in rows]
    return [first] + [len(partitioner.load_partition(pid)) for pid in range(1, num_partitions)]


def partition_rows(partitioner: Partitioner, partition_id: int) -> Sequence[int] | None:
    """Positions in ``partitioner.dataset`` of the rows ``load_partition(partition_id)`` returns, in order.

    Read from where the partitioner keeps them (IID: the arithmetic of
    ``Dataset.shard(contiguous=True)``; the others: their index lists, filled by their
    first ``load_partition``), so a client's rows can be read without building a
    ``Dataset`` for it. None for a partitioner that keeps no index lists.
    """
    if isinstance(partitioner, IidPartitioner):
        base, extra = divmod(len(partitioner.dataset), partitioner.num_partitions)
        start = base * partition_id + min(partition_id, extra)
        return range(start, start + base + (partition_id < extra))
    if isinstance(partitioner, QuantitySkewPartitioner):
        return partitioner._indices[partition_id]  # pylint: disable=protected-access
    indices = getattr(partitioner, "_partition_id_to_indices", None)
    if isinstance(indices, dict) and partition_id in indices:
        return indices[partition_id]
    return None


def _one_clause(error: Exception) -> str:
    """A library's error message as one clause that fits inside a fedsim sentence."""
    text = str(error).strip().rstrip(".") or type(error).__name__
    return text[0].lower() + text[1:].replace(". ", "; ").replace("\n", " ")
