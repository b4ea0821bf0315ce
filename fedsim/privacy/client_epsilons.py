"""A strategy wrapper that turns the epsilons clients report under local DP into the run's epsilon each round."""

from collections.abc import Iterable

from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import Strategy

from fedsim.strategy_wrapper import StrategyWrapper

EPSILON_METRIC = "epsilon"


class ClientEpsilons(StrategyWrapper):
    """Wrap a strategy; add the epsilon spent so far to each round's aggregated train metrics.

    Every client reports its cumulative ``epsilon``. A client that did not train this
    round keeps the epsilon of its last round, so over the clients that have trained
    so far the aggregate ``epsilon`` is the largest (the run's guarantee: every
    client's data is protected at least this well) and ``epsilon_mean`` the mean.
    Clients are told apart by partition id.
    """

    checkpointed = ("epsilons",)  # server state between rounds (fedsim.checkpoint)

    def __init__(self, strategy: Strategy, node_partitions: dict[int, int]) -> None:
        super().__init__(strategy)
        self.node_partitions = node_partitions
        self.epsilons: dict[int, float] = {}

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        for reply in replies:
            if reply.has_error():
                continue
            for record in reply.content.metric_records.values():
                if EPSILON_METRIC in record:
                    self.epsilons[self.node_partitions[reply.metadata.src_node_id]] = float(record[EPSILON_METRIC])
        arrays, metrics = self.strategy.aggregate_train(server_round, replies)
        if not self.epsilons:
            return arrays, metrics
        metrics = MetricRecord(dict(metrics or {}))
        spent = list(self.epsilons.values())
        metrics[EPSILON_METRIC] = max(spent)
        metrics["epsilon_mean"] = sum(spent) / len(spent)
        return arrays, metrics
