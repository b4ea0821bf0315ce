"""Partitioners fedsim adds to flwr-datasets', the ones it configures, and building the configured one.

The flwr-datasets partitioners a config option names are subclassed here only to
check their settings, with one sentence naming the setting, before the parent's
``__init__`` (and, for the Dirichlet and shard ones, to hide library warnings that
are nothing for a user to act on); everything else, partitions included, is the parent's.
"""

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import datasets
import flwr_datasets.partitioner as flwr_partitioner
import numpy as np
from flwr_datasets.partitioner import Partitioner
from omegaconf import DictConfig

from fedsim.config.checks import ConfigError, require
from fedsim.data.dataset import FederatedData
from fedsim.flower_internals import partition_indices
from fedsim.instantiate import build

CLASS_ASSIGNMENT_MODES = ("random", "deterministic", "first-deterministic")


def check_num_partitions(num_partitions: int) -> None:
    """Raise ConfigError unless ``partitioner.num_partitions`` is at least 1."""
    require(num_partitions >= 1, f"partitioner.num_partitions must be at least 1 (got {num_partitions}).")


def check_min_partition_size(min_partition_size: int) -> None:
    """Raise ConfigError unless ``partitioner.min_partition_size`` is at least 0."""
    require(
        min_partition_size >= 0,
        f"partitioner.min_partition_size must be at least 0 (got {min_partition_size}).",
    )


def check_concentration(setting: str, concentration: float) -> None:
    """Raise ConfigError unless the Dirichlet concentration ``partitioner.<setting>`` is greater than 0."""
    require(concentration > 0, f"partitioner.{setting} must be greater than 0 (got {concentration}).")


class IidPartitioner(flwr_partitioner.IidPartitioner):
    """flwr-datasets' IID partitioner: contiguous, equal blocks of the (shuffled) training split.

    Parameters
    ----------
    num_partitions : int
        Number of clients; at least 1.
    """

    def __init__(self, *, num_partitions: int) -> None:
        check_num_partitions(num_partitions)
        super().__init__(num_partitions=num_partitions)


class HiddenWarnings:
    """A partitioner mixin: the parent's split (drawn when first asked for its size or a
    partition) runs with the library warnings of ``hidden_warnings`` (message start,
    category) hidden, warnings about nothing a fedsim user can change."""

    hidden_warnings: tuple[tuple[str, type[Warning]], ...] = ()

    @contextmanager
    def _hiding_warnings(self) -> Iterator[None]:
        with warnings.catch_warnings():
            for message, category in self.hidden_warnings:
                warnings.filterwarnings("ignore", message=message, category=category)
            yield

    @property
    def num_partitions(self) -> int:
        with self._hiding_warnings():
            return super().num_partitions

    def load_partition(self, partition_id: int) -> datasets.Dataset:
        with self._hiding_warnings():
            return super().load_partition(partition_id)


class DirichletPartitioner(HiddenWarnings, flwr_partitioner.DirichletPartitioner):
    """flwr-datasets' label-skew partitioner: each class split over clients by Dirichlet(alpha).

    The parent's ``shuffle`` keeps its own default (True).

    Parameters
    ----------
    num_partitions : int
        Number of clients; at least 1.
    partition_by : str
        Column whose classes are split (the label).
    alpha : float
        Dirichlet concentration, greater than 0; small values give strong skew.
    min_partition_size : int
        Smallest client size the draws are repeated for; at least 0.
    self_balancing : bool
        Stop giving a class to clients that already hold more than an equal share.
    seed : int
        Seed of the draws.
    """

    def __init__(
        self,
        *,
        num_partitions: int,
        partition_by: str,
        alpha: float,
        min_partition_size: int,
        self_balancing: bool,
        seed: int,
    ) -> None:
        check_num_partitions(num_partitions)
        check_concentration("alpha", alpha)
        check_min_partition_size(min_partition_size)
        super().__init__(
            num_partitions=num_partitions,
            partition_by=partition_by,
            alpha=alpha,
            min_partition_size=min_partition_size,
            self_balancing=self_balancing,
            seed=seed,
        )

    # The parent draws the split when first asked for its size or a partition, and draws
    # again (at most 10 times) while a client is below min_partition_size, warning each
    # time. Redrawing is what min_partition_size asks for, and ten failed draws stop the
    # run with a ConfigError (build_partitioner): the warnings are hidden.
    hidden_warnings = (("The specified min_partition_size", UserWarning),)


class PathologicalPartitioner(flwr_partitioner.PathologicalPartitioner):
    """flwr-datasets' pathological partitioner: each client holds ``num_classes_per_partition`` classes.

    The parent's ``shuffle`` keeps its own default (True).

    Parameters
    ----------
    num_partitions : int
        Number of clients; at least 1.
    partition_by : str
        Column whose classes are assigned (the label).
    num_classes_per_partition : int
        Classes each client holds; at least 1.
    class_assignment_mode : str
        ``random``, ``deterministic`` or ``first-deterministic`` (flwr-datasets' modes).
    seed : int
        Seed of the assignment.
    """

    def __init__(
        self,
        *,
        num_partitions: int,
        partition_by: str,
        num_classes_per_partition: int,
        class_assignment_mode: str,
        seed: int,
    ) -> None:
        check_num_partitions(num_partitions)
        require(
            num_classes_per_partition >= 1,
            f"partitioner.num_classes_per_partition must be at least 1 (got {num_classes_per_partition}).",
        )
        require(
            class_assignment_mode in CLASS_ASSIGNMENT_MODES,
            f"partitioner.class_assignment_mode must be one of {', '.join(CLASS_ASSIGNMENT_MODES)} "
            f"(got {class_assignment_mode!r}).",
        )
        super().__init__(
            num_partitions=num_partitions,
            partition_by=partition_by,
            num_classes_per_partition=num_classes_per_partition,
            class_assignment_mode=class_assignment_mode,
            seed=seed,
        )


class ShardPartitioner(HiddenWarnings, flwr_partitioner.ShardPartitioner):
    """flwr-datasets' shard partitioner (McMahan et al. 2017): label-sorted shards, a few per client.

    The shard size follows from the number of shards; the parent's ``shard_size``,
    ``keep_incomplete_shard`` and ``shuffle`` keep their own defaults.

    Parameters
    ----------
    num_partitions : int
        Number of clients; at least 1.
    partition_by : str
        Column the examples are sorted by (the label).
    num_shards_per_partition : int
        Shards each client gets; at least 1.
    seed : int
        Seed of the shard assignment.
    """

    def __init__(self, *, num_partitions: int, partition_by: str, num_shards_per_partition: int, seed: int) -> None:
        check_num_partitions(num_partitions)
        require(
            num_shards_per_partition >= 1,
            f"partitioner.num_shards_per_partition must be at least 1 (got {num_shards_per_partition}).",
        )
        super().__init__(
            num_partitions=num_partitions,
            partition_by=partition_by,
            num_shards_per_partition=num_shards_per_partition,
            seed=seed,
        )

    # The parent sorts the split by label when first asked for its size or a partition:
    # ``datasets``' call to pyarrow passes an argument pyarrow 25 deprecated.
    hidden_warnings = (("Specifying null_placement in SortOptions", FutureWarning),)


class NaturalIdPartitioner(flwr_partitioner.NaturalIdPartitioner):
    """flwr-datasets' natural-id partitioner: one client per value of a column.

    Parameters
    ----------
    partition_by : str | None
        The column; null in a config stands for the dataset's natural id column, which
        ``build_partitioner`` puts in its place before this class is built.
    """

    def __init__(self, *, partition_by: str | None) -> None:
        require(
            partition_by is not None,
            "partitioner.partition_by must name a column (null stands for the dataset's natural id column, "
            "which fedsim puts in its place before building the partitioner).",
        )
        super().__init__(partition_by=partition_by)


class QuantitySkewPartitioner(Partitioner):
    """Quantity skew: client sizes follow Dirichlet(beta) proportions, labels stay IID.

    The quantity-based skew of NIID-Bench (Li et al. 2022, "Federated Learning on
    Non-IID Data Silos: An Experimental Study"). Proportions are redrawn until every
    client holds at least ``min_partition_size`` examples (at most 100 draws).

    Parameters
    ----------
    num_partitions : int
        Number of clients; at least 1.
    beta : float
        Dirichlet concentration, greater than 0; small values give very unequal sizes.
    min_partition_size : int
        Smallest allowed client size; at least 0.
    seed : int
        Seed of the size draw and of the example assignment.
    """

    def __init__(self, *, num_partitions: int, beta: float, min_partition_size: int, seed: int) -> None:
        check_num_partitions(num_partitions)
        check_concentration("beta", beta)
        check_min_partition_size(min_partition_size)
        super().__init__()
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
    # flwr-datasets' class, so a config naming it directly is read the same way as fedsim's subclass.
    if isinstance(partitioner, flwr_partitioner.IidPartitioner):
        base, extra = divmod(len(partitioner.dataset), partitioner.num_partitions)
        start = base * partition_id + min(partition_id, extra)
        return range(start, start + base + (partition_id < extra))
    if isinstance(partitioner, QuantitySkewPartitioner):
        return partitioner._indices[partition_id]  # pylint: disable=protected-access
    return partition_indices(partitioner, partition_id)


def _one_clause(error: Exception) -> str:
    """A library's error message as one clause that fits inside a fedsim sentence."""
    text = str(error).strip().rstrip(".") or type(error).__name__
    return text[0].lower() + text[1:].replace(". ", "; ").replace("\n", " ")
