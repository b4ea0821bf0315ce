"""The base of fedsim's strategy wrappers: delegate every hook to the wrapped strategy."""

from collections.abc import Iterable

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy


class StrategyWrapper(Strategy):
    """A strategy around another, as Flower's DP wrappers are; subclasses override only
    the hooks they change (sampling, stragglers, recording, privacy accounting)."""

    def __init__(self, strategy: Strategy) -> None:
        self.strategy = strategy

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return self.strategy.configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        return self.strategy.aggregate_train(server_round, replies)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return self.strategy.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        return self.strategy.aggregate_evaluate(server_round, replies)

    def summary(self) -> None:
        self.strategy.summary()


def with_config(message: Message, entries: dict) -> Message:
    """A copy of a message whose config record also holds ``entries`` (replacing those it had).

    Strategies share one content record among all their messages, so the config is
    copied rather than changed in place.
    """
    config = ConfigRecord({**message.content["config"], **entries})
    content = RecordDict({**message.content, "config": config})
    metadata = message.metadata
    return Message(content, dst_node_id=metadata.dst_node_id, message_type=metadata.message_type,
                   group_id=metadata.group_id, ttl=metadata.ttl)
