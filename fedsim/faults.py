"""Injected client faults: each round, each training client fails with a seeded probability.

The server decides (``InjectedFaults``, a strategy wrapper): it draws the round's
failing clients from the seed tree and marks their training messages with the kind
of fault; ``faults_mod``, the outermost client mod, then answers such a message with
the failure instead of training. ``no_reply`` answers what Flower's SuperLink answers
for a reply that never arrives (``REPLY_MESSAGE_UNAVAILABLE``, recorded as ``no reply``);
``error`` answers an error reply, as a client whose ClientApp raised. The round goes on
with the replies it has; a round whose clients all fail is skipped or stops the run
(``all_failed``, applied by ``fedsim.recording.RoundRecorder``).
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Error, Message, MessageType
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedsim.config.checks import require
from fedsim.flower_internals import ErrorCode
from fedsim.recording import NO_REPLY
from fedsim.seeds import generator
from fedsim.strategy_wrapper import StrategyWrapper, with_config

FAULT_KEY = "fault"  # in the config of a training message whose client is to fail: the kind of fault
KINDS = ("no_reply", "error")
ALL_FAILED = ("skip", "stop")
INJECTED_ERROR = "InjectedFault: this client was drawn to fail (faults.kind=error)"


@dataclass(frozen=True)
class FaultSettings:
    """The ``faults.*`` settings of a run (see conf/config.yaml).

    Attributes
    ----------
    dropout : float
        Probability that a training client fails in a round, in [0, 1].
    kind : str
        ``no_reply`` or ``error``.
    all_failed : str
        A round whose training clients all fail: ``skip`` it (the global model stays as
        it was) or ``stop`` the run (``fedsim.recording.ClientsFailed``).
    """

    dropout: float
    kind: str
    all_failed: str

    def __post_init__(self) -> None:
        require(0 <= self.dropout <= 1, f"faults.dropout must be a probability in [0, 1] (got {self.dropout}).")
        require(self.kind in KINDS, f"faults.kind must be one of {', '.join(KINDS)} (got {self.kind}).")
        require(
            self.all_failed in ALL_FAILED,
            f"faults.all_failed must be one of {', '.join(ALL_FAILED)} (got {self.all_failed}).",
        )

    @property
    def skip_failed_rounds(self) -> bool:
        return self.all_failed == "skip"

    def wrap(self, strategy: Strategy, node_partitions: dict[int, int], seed: int) -> Strategy:
        """``strategy`` inside ``InjectedFaults`` when clients may fail; as it is otherwise."""
        if self.dropout == 0:
            return strategy
        return InjectedFaults(strategy, node_partitions, self.dropout, self.kind, seed)


def draw_failures(seed: int, server_round: int, num_clients: int, dropout: float) -> frozenset[int]:
    """The partitions that fail if drawn for training in ``server_round``: each with probability ``dropout``.

    One uniform draw per partition of the federation, so a client's fate in a round does
    not depend on which other clients train with it, nor on the strategy.
    """
    draws = generator(seed, "faults", server_round).random(num_clients)
    return frozenset(np.flatnonzero(draws < dropout).tolist())


class InjectedFaults(StrategyWrapper):
    """Wrap a strategy so that a seeded share of each round's training clients fails.

    Parameters
    ----------
    strategy : Strategy
        The strategy to wrap.
    node_partitions : dict[int, int]
        Partition id of every node id.
    dropout : float
        Probability that a training client fails in a round.
    kind : str
        ``no_reply`` or ``error``: what a failing client's message asks ``faults_mod`` for.
    seed : int
        Seed of the draws.
    """

    def __init__(
        self, strategy: Strategy, node_partitions: dict[int, int], dropout: float, kind: str, seed: int
    ) -> None:
        super().__init__(strategy)
        self.node_partitions = node_partitions
        self.dropout = dropout
        self.kind = kind
        self.seed = seed

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        messages = self.strategy.configure_train(server_round, arrays, config, grid)
        failing = draw_failures(self.seed, server_round, len(self.node_partitions), self.dropout)
        return [
            with_config(message, {FAULT_KEY: self.kind})
            if self.node_partitions[message.metadata.dst_node_id] in failing
            else message
            for message in messages
        ]


def faults_mod(message: Message, context: Context, call_next: Callable[[Message, Context], Message]) -> Message:
    """A Flower client mod: fail a training message the server marked with a fault, without training.

    ``no_reply``: the error reply Flower's SuperLink gives for a reply that never came
    (``REPLY_MESSAGE_UNAVAILABLE``), with the reason ``no reply``; ``error``: an error
    reply as from a ClientApp that raised. Other messages pass on.
    """
    if message.metadata.message_type != MessageType.TRAIN or FAULT_KEY not in message.content["config"]:
        return call_next(message, context)
    if message.content["config"][FAULT_KEY] == "no_reply":
        error = Error(code=ErrorCode.REPLY_MESSAGE_UNAVAILABLE, reason=NO_REPLY)
    else:
        error = Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=INJECTED_ERROR)
    return Message(error, reply_to=message)
