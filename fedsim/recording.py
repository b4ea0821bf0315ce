"""A strategy wrapper that records every round (per-client and aggregated metrics, bytes, time) and hands it to the callbacks."""

import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from logging import INFO

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.common import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedsim.callbacks.base import Callback, Failure, History, Row
from fedsim.config.checks import FedsimWarning
from fedsim.divergence import NONFINITE_WEIGHTS, nonfinite_count
from fedsim.strategy_wrapper import StrategyWrapper
from fedsim.training import LR_KEY


def content_bytes(content: RecordDict) -> int:
    """Bytes of the arrays a message's content carries: the tensors' data, without serialization overhead."""
    return sum(
        math.prod(array.shape) * np.dtype(array.dtype).itemsize
        for record in content.array_records.values()
        for array in record.values()
    )


NO_REPLY = "no reply"


class ClientsFailed(RuntimeError):
    """Every client of a round failed (``faults.all_failed: stop``)."""


class RoundRecorder(StrategyWrapper):
    """Wrap a strategy and hand each round's rows to the callbacks as soon as the round ends.

    A round ends with the centralized evaluation, so ``run_rounds`` always evaluates the
    global model on the server with ``evaluate_fn`` and then ends the round. Besides
    every client's metrics and the strategy's aggregates it records, per stage, the
    clients sent a message, the partitions that failed (a ``failed`` row each, and their
    reasons in ``history.failures``), the array bytes sent down and up, and the learning
    rate the training messages carry (the ``train`` stage's ``lr``). When the new
    global model holds NaN or infinite values it records their count (a ``system``
    ``train_nonfinite_weights`` row; see ``fedsim.divergence``). A stage whose clients
    all fail stops the run (``ClientsFailed``) or, with ``skip_failed_rounds``, is
    skipped: the strategy does not aggregate it, the global model stays as it was, and
    the first such round gives one warning. At the end of a round
    the callbacks that add metrics run first, then the round's aggregates enter
    ``history``, then the other callbacks run, those that may stop the run last (see
    ``fedsim.callbacks``).

    Parameters
    ----------
    strategy : Strategy
        The strategy to wrap.
    node_partitions : dict[int, int]
        Partition id of every node id, to name clients by partition id.
    callbacks : Sequence[Callback]
        The run's round observers.
    history : History
        Where the aggregates of every round are kept.
    skip_failed_rounds : bool (default: False)
        Skip a stage whose clients all fail rather than stop the run.
    """

    def __init__(
        self,
        strategy: Strategy,
        node_partitions: dict[int, int],
        callbacks: Sequence[Callback],
        history: History,
        skip_failed_rounds: bool = False,
    ) -> None:
        super().__init__(strategy)
        self.node_partitions = node_partitions
        self.skip_failed_rounds = skip_failed_rounds
        self._skipped: list[tuple[int, str, str]] = []  # (round, stage, first error) of every skipped stage
        self.callbacks = sorted(callbacks, key=lambda callback: (not callback.adds_metrics, callback.stops_run))
        self.history = history
        self._rows: list[Row] = []
        self._failures: list[Failure] = []
        self._sent: dict[str, list[int]] = {}
        self._round_started = time.perf_counter()

    def _record(self, server_round: int, stage: str, client: int | None, metrics: MetricRecord | dict) -> None:
        for name, value in metrics.items():
            if isinstance(value, (int, float)):
                self._rows.append((server_round, stage, client, name, float(value)))

    def _record_sent(self, server_round: int, stage: str, messages: Iterable[Message]) -> list[Message]:
        messages = list(messages)
        self._sent[stage] = [message.metadata.dst_node_id for message in messages]
        bytes_down = sum(content_bytes(message.content) for message in messages)
        self._rows.append((server_round, "system", None, f"{stage}_bytes_down", float(bytes_down)))
        return messages

    def _record_replies(self, server_round: int, stage: str, replies: Iterable[Message]) -> list[Message] | None:
        """Record a stage's replies and failures; the replies, or None when every client failed and the stage is skipped."""
        replies = list(replies)
        answered = [reply for reply in replies if not reply.has_error()]
        sent = self._sent.pop(stage, [])
        answered_nodes = {reply.metadata.src_node_id for reply in answered}
        failed = sorted(self.node_partitions[node] for node in sent if node not in answered_nodes)
        reasons = {  # an error reply names its node: the exception type and message (fedsim.engines.replies)
            self.node_partitions[reply.metadata.src_node_id]: reply.error.reason
            for reply in replies
            if reply.has_error() and reply.metadata.src_node_id in self.node_partitions
        }
        self._failures += [Failure(server_round, stage, client, reasons.get(client, NO_REPLY)) for client in failed]
        for reply in sorted(answered, key=lambda reply: self.node_partitions[reply.metadata.src_node_id]):
            client = self.node_partitions[reply.metadata.src_node_id]
            for record in reply.content.metric_records.values():
                self._record(server_round, stage, client, record)
        self._rows += [(server_round, stage, client, "failed", 1.0) for client in failed]
        bytes_up = sum(content_bytes(reply.content) for reply in answered)
        self._rows += [
            (server_round, "system", None, f"{stage}_clients", float(len(sent))),
            (server_round, "system", None, f"{stage}_failures", float(len(failed))),
            (server_round, "system", None, f"{stage}_bytes_up", float(bytes_up)),
        ]
        if sent and not answered:
            first = next((failure.reason for failure in self._failures if failure.stage == stage), NO_REPLY)
            if self.skip_failed_rounds:
                if not self._skipped:  # one line for the run (a bug that fails every client shows at once)
                    warnings.warn(
                        f"every client failed in round {server_round} ({stage}; the first error: {first}); such "
                        "rounds are skipped (faults.all_failed=skip; stop ends the run instead).",
                        FedsimWarning,
                        stacklevel=2,
                    )
                self._skipped.append((server_round, stage, first))
                return None
            self._end_round(server_round)  # the failed partitions and their reasons stay on record
            raise ClientsFailed(f"every client failed in round {server_round} ({stage}); the first error: {first}")
        return replies

    def _end_round(self, server_round: int) -> None:
        """Hand the round's rows to the callbacks (those that add metrics first) and keep its aggregates."""
        rows, self._rows = self._rows, []
        failures, self._failures = self._failures, []
        self.history.failures += failures
        adding = [callback for callback in self.callbacks if callback.adds_metrics]
        for callback in adding:
            callback.on_round_end(server_round, rows, self.history)
        self.history.add(server_round, rows)
        for callback in self.callbacks[len(adding):]:
            callback.on_round_end(server_round, rows, self.history)

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._round_started = time.perf_counter()
        if LR_KEY in config:  # the round's learning rate, as the server sends it
            self._rows.append((server_round, "train", None, "lr", float(config[LR_KEY])))
        return self._record_sent(
            server_round, "train", self.strategy.configure_train(server_round, arrays, config, grid)
        )

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = self._record_replies(server_round, "train", replies)
        if replies is None:
            return None, None
        arrays, metrics = self.strategy.aggregate_train(server_round, replies)
        if metrics is not None:
            self._record(server_round, "train", None, metrics)
        if arrays is not None and (nonfinite := nonfinite_count(arrays)):
            self._rows.append((server_round, "system", None, NONFINITE_WEIGHTS, float(nonfinite)))
        return arrays, metrics

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        messages = self.strategy.configure_evaluate(server_round, arrays, config, grid)
        return self._record_sent(server_round, "federated", messages)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        replies = self._record_replies(server_round, "federated", replies)
        if replies is None:
            return None
        metrics = self.strategy.aggregate_evaluate(server_round, replies)
        if metrics is not None:
            self._record(server_round, "federated", None, metrics)
        return metrics

    def evaluate(self, server_round: int, arrays: ArrayRecord, evaluate_fn: Callable[[int, ArrayRecord], MetricRecord]) -> None:
        """Evaluate the global model centrally and end the round: its rows go to the callbacks."""
        self._record(server_round, "centralized", None, evaluate_fn(server_round, arrays))
        if server_round > 0:
            seconds = time.perf_counter() - self._round_started
            self._rows.append((server_round, "system", None, "round_seconds", seconds))
        self._end_round(server_round)

    def run_rounds(  # pylint: disable=too-many-arguments
        self,
        grid: Grid,
        arrays: ArrayRecord,
        *,
        first_round: int,
        num_rounds: int,
        train_config: Callable[[int], ConfigRecord],
        evaluate_config: ConfigRecord,
        evaluate_fn: Callable[[int, ArrayRecord], MetricRecord],
        after_round: Callable[[int, ArrayRecord], None],
        timeout: float = 3600,
    ) -> ArrayRecord:
        """Run rounds ``first_round`` to ``num_rounds`` from the global ``arrays``; the last global arrays.

        Each round is Flower's ``Strategy.start`` round (train, federated evaluation,
        centralized evaluation) on this strategy's hooks; a run that starts at round 1
        first evaluates the initial model (round 0). ``after_round`` sees every finished
        round's global arrays (checkpoints). Unlike ``start``, it can begin at a later
        round: a resumed run continues after its checkpoint's round. ``train_config(round)``
        is what the round's training messages carry (its learning rate under a schedule).
        """
        if first_round == 1:
            self.evaluate(0, arrays, evaluate_fn)
        for server_round in range(first_round, num_rounds + 1):
            log(INFO, "[ROUND %s/%s]", server_round, num_rounds)
            messages = self.configure_train(server_round, arrays, train_config(server_round), grid)
            new_arrays, _ = self.aggregate_train(server_round, grid.send_and_receive(messages, timeout=timeout))
            if new_arrays is not None:
                arrays = new_arrays
            messages = self.configure_evaluate(server_round, arrays, evaluate_config, grid)
            self.aggregate_evaluate(server_round, grid.send_and_receive(messages, timeout=timeout))
            self.evaluate(server_round, arrays, evaluate_fn)
            after_round(server_round, arrays)
        skipped_training = [(r, first) for r, stage, first in self._skipped if stage == "train"]
        if len(skipped_training) == num_rounds - first_round + 1:  # skipping is for some rounds, not a whole run
            first_error = skipped_training[0][1]
            raise ClientsFailed(f"every client failed in every round's training; the first error: {first_error}")
        return arrays
