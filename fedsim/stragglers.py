"""System heterogeneity as in the FedProx paper: some clients finish fewer local epochs.

Li et al. (2020), "Federated Optimization in Heterogeneous Networks", Section 5.2:
each round a fraction of the selected devices are stragglers that can only run a
random number of local epochs in [1, E]. FedAvg drops them; FedProx keeps their
partial work.
"""

from collections.abc import Iterable

from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedsim.seeds import generator
from fedsim.strategy_wrapper import StrategyWrapper, with_config


def draw_stragglers(
    seed: int, server_round: int, partitions: list[int], fraction: float, max_epochs: int
) -> dict[int, int]:
    """Which of a round's training partitions straggle, and the epochs each can run.

    ``round(fraction * len(partitions))`` of them, each with epochs uniform in
    [1, max_epochs]; drawn from (seed, round) and the sorted partitions only, so the
    same clients straggle in the same rounds whichever strategy runs.
    """
    rng = generator(seed, "stragglers", server_round)
    ordered = sorted(partitions)
    chosen = rng.choice(ordered, size=int(round(fraction * len(ordered))), replace=False)
    epochs = rng.integers(1, max_epochs + 1, size=len(chosen))
    return {int(p): int(e) for p, e in zip(chosen, epochs)}


class Stragglers(StrategyWrapper):
    """Wrap a strategy so that a seeded fraction of each round's clients straggle.

    Parameters
    ----------
    strategy : Strategy
        The strategy to wrap.
    node_partitions : dict[int, int]
        Partition id of every node id.
    fraction : float
        Share of each round's training clients that straggle, in [0, 1].
    drop : bool
        True: stragglers' partial work is dropped (they get no training message, as
        FedAvg does in the paper); False: they train for fewer epochs and their
        update is aggregated (FedProx).
    seed : int
        Seed of the draws.
    """

    def __init__(
        self, strategy: Strategy, node_partitions: dict[int, int], fraction: float, drop: bool, seed: int
    ) -> None:
        super().__init__(strategy)
        self.node_partitions = node_partitions
        self.fraction = fraction
        self.drop = drop
        self.seed = seed

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        messages = list(self.strategy.configure_train(server_round, arrays, config, grid))
        if self.fraction == 0 or not messages:
            return messages
        partitions = [self.node_partitions[m.metadata.dst_node_id] for m in messages]
        max_epochs = int(messages[0].content["config"]["local-epochs"])
        stragglers = draw_stragglers(self.seed, server_round, partitions, self.fraction, max_epochs)
        kept = []
        for message, partition in zip(messages, partitions):
            if partition not in stragglers:
                kept.append(message)
            elif not self.drop:
                kept.append(with_config(message, {"local-epochs": stragglers[partition]}))
        return kept
