"""Which clients are malicious, and the strategy wrapper through which they attack."""

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedsim.seeds import generator
from fedsim.strategy_wrapper import StrategyWrapper, with_config

if TYPE_CHECKING:
    from fedsim.attacks.base import Attack

MALICIOUS_METRIC = "malicious"  # train metric: malicious clients among the round's training clients


def num_malicious(fraction: float, num_clients: int) -> int:
    """How many of ``num_clients`` clients a malicious ``fraction`` makes: the rounded product."""
    return round(fraction * num_clients)


def draw_malicious(seed: int, num_clients: int, fraction: float) -> frozenset[int]:
    """The malicious partitions of a run: ``num_malicious(fraction, num_clients)`` drawn from the seed alone.

    The same for every strategy, every round and every rerun with the seed.
    """
    rng = generator(seed, "attackers")
    return frozenset(rng.choice(num_clients, size=num_malicious(fraction, num_clients), replace=False).tolist())


class Adversaries(StrategyWrapper):
    """Wrap a strategy so that the run's malicious clients attack in every round they train.

    Each malicious client's training message carries its client-side attack in the
    config record (``Attack.client_attack``). A server-side attack (ALIE, IPM) is an
    omniscient adversary, as its paper assumes: it sees the round's benign updates and
    replaces the arrays of every malicious reply with ``sent + Attack.craft_update``
    before the strategy aggregates. The number of malicious clients among the round's
    training clients is added to the aggregated train metrics (``malicious``).

    Parameters
    ----------
    strategy : Strategy
        The strategy to wrap.
    attack : Attack
        The attack option.
    node_partitions : dict[int, int]
        Partition id of every node id.
    seed : int
        The run's seed: which clients are malicious, and their draws.
    """

    def __init__(self, strategy: Strategy, attack: "Attack", node_partitions: dict[int, int], seed: int) -> None:
        super().__init__(strategy)
        self.attack = attack
        self.node_partitions = node_partitions
        self.seed = seed
        self.malicious = draw_malicious(seed, len(node_partitions), attack.fraction)
        self._sent: ArrayRecord | None = None
        self._num_training = 0

    def _is_malicious(self, node_id: int) -> bool:
        return self.node_partitions[node_id] in self.malicious

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._sent = arrays
        messages = list(self.strategy.configure_train(server_round, arrays, config, grid))
        self._num_training = 0
        for position, message in enumerate(messages):
            partition = self.node_partitions[message.metadata.dst_node_id]
            if partition in self.malicious:
                self._num_training += 1
                attack = self.attack.client_attack(self.seed, server_round, partition)
                if attack is not None:
                    messages[position] = with_config(message, attack.to_config())
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        if self.attack.server_side:
            self._attack_replies(replies)
        arrays, metrics = self.strategy.aggregate_train(server_round, replies)
        metrics = MetricRecord(dict(metrics or {}))
        metrics[MALICIOUS_METRIC] = self._num_training
        return arrays, metrics

    def _attack_replies(self, replies: list[Message]) -> None:
        """Replace the float arrays of every malicious reply with sent + the crafted update (in place).

        Nothing changes in a round without a malicious or without a benign reply: there is
        no one to attack with, or no benign update to craft from.
        """
        answered = sorted(  # partition order: the benign statistics sum in the same order on every engine
            (reply for reply in replies if not reply.has_error()),
            key=lambda reply: self.node_partitions[reply.metadata.src_node_id],
        )
        malicious = [reply for reply in answered if self._is_malicious(reply.metadata.src_node_id)]
        benign = [reply for reply in answered if not self._is_malicious(reply.metadata.src_node_id)]
        if not malicious or not benign:
            return
        benign_arrays = [numpy_arrays(reply.content["arrays"]) for reply in benign]
        crafted = {}
        for name, global_array in numpy_arrays(self._sent).items():
            if np.issubdtype(global_array.dtype, np.floating):
                updates = [arrays[name] - global_array for arrays in benign_arrays]
                update = self.attack.craft_update(updates, len(answered), len(malicious))
                crafted[name] = (global_array + update).astype(global_array.dtype)
        for reply in malicious:
            own = numpy_arrays(reply.content["arrays"])
            reply.content["arrays"] = ArrayRecord({name: Array(crafted.get(name, array)) for name, array in own.items()})


def numpy_arrays(record: ArrayRecord) -> dict[str, np.ndarray]:
    """The arrays of a record by name."""
    return dict(zip(record.keys(), record.to_numpy_ndarrays(), strict=True))
