"""Seeded client sampling that depends on neither node ids nor Python's global random state."""

from collections.abc import Iterable

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedsim.grid_view import GridView
from fedsim.seeds import generator
from fedsim.strategy_wrapper import StrategyWrapper

_STAGE_STREAM = {"train": "sampling-train", "evaluate": "sampling-evaluate"}


def sample_partitions(seed: int, server_round: int, stage: str, num_clients: int, size: int) -> list[int]:
    """The partition ids drawn for ``stage`` ("train" or "evaluate") of a round, ascending.

    Each (seed, round, stage) has its own generator, so the draw is the same whatever
    ran before it, whichever engine runs, and whatever order nodes are listed in.
    """
    rng = generator(seed, _STAGE_STREAM[stage], server_round)
    return sorted(rng.choice(num_clients, size=size, replace=False).tolist())


class NodeSubsetGrid(GridView):
    """A view of a grid that lists only the given nodes; everything else is delegated."""

    def __init__(self, grid: Grid, node_ids: list[int]) -> None:
        super().__init__(grid)
        self._node_ids = node_ids

    def get_node_ids(self) -> Iterable[int]:
        return list(self._node_ids)


class SeededSampling(StrategyWrapper):
    """Wrap a strategy so each round's clients are a seeded draw over partition ids.

    The wrapped strategy sees a grid listing only the drawn nodes (configure it to
    take every node it sees), and receives replies in partition-id order so that
    aggregation sums in the same order on every engine.

    Parameters
    ----------
    strategy : Strategy
        The strategy to wrap.
    node_partitions : dict[int, int]
        Partition id of every node id.
    clients_per_round : int
        Clients drawn for training each round.
    eval_clients_per_round : int
        Clients drawn for federated evaluation each round (0 skips it).
    seed : int
        Seed of the draws.
    """

    def __init__(
        self,
        strategy: Strategy,
        node_partitions: dict[int, int],
        clients_per_round: int,
        eval_clients_per_round: int,
        seed: int,
    ) -> None:
        super().__init__(strategy)
        self.node_partitions = node_partitions
        self.clients_per_round = clients_per_round
        self.eval_clients_per_round = eval_clients_per_round
        self.seed = seed
        self._node_of = {partition: node for node, partition in node_partitions.items()}

    def _grid_for(self, grid: Grid, server_round: int, stage: str, size: int) -> Grid:
        partitions = sample_partitions(self.seed, server_round, stage, len(self._node_of), size)
        return NodeSubsetGrid(grid, [self._node_of[p] for p in partitions])

    def _in_partition_order(self, replies: Iterable[Message]) -> list[Message]:
        return sorted(replies, key=lambda reply: self.node_partitions[reply.metadata.src_node_id])

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        subset = self._grid_for(grid, server_round, "train", self.clients_per_round)
        return self.strategy.configure_train(server_round, arrays, config, subset)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        return self.strategy.aggregate_train(server_round, self._in_partition_order(replies))

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        if self.eval_clients_per_round == 0:
            return []
        subset = self._grid_for(grid, server_round, "evaluate", self.eval_clients_per_round)
        return self.strategy.configure_evaluate(server_round, arrays, config, subset)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        return self.strategy.aggregate_evaluate(server_round, self._in_partition_order(replies))
