"""``strategy.weighting``: how much each client's model counts in a strategy's average."""

from collections.abc import Iterable

import numpy as np
from flwr.app import Array, ArrayRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg

from fedsim.config.checks import require
from fedsim.flower_internals import check_and_log_replies

WEIGHTINGS = ("examples", "uniform")


def check_weighting(weighting: str) -> str:
    """``weighting`` if it is one of WEIGHTINGS, else ConfigError with one sentence."""
    require(
        weighting in WEIGHTINGS,
        f"strategy.weighting must be one of {', '.join(WEIGHTINGS)} (got {weighting!r}).",
    )
    return weighting


def reported(content: RecordDict, key: str) -> float:
    """The value a reply reports as ``key`` in its MetricRecord."""
    return float(next(iter(content.metric_records.values()))[key])


class Weighted(FedAvg):
    """FedAvg whose average of the clients' models follows ``weighting``.

    ``examples``: client i counts n_i / sum_j n_j, its share of the training examples
    of the clients that replied (McMahan et al. 2017, Flower's default).
    ``uniform``: every client that replied counts 1 / |S| (FedLab's default).

    Only the models' average follows the weighting. The round's aggregated train
    metrics and federated-evaluation metrics stay means over examples (weighted by
    ``weighted_by_key``, which fedsim sets to ``num-examples``), so runs that differ in
    their weighting report numbers that mean the same.

    Flower's strategies that step from FedAvg's average (FedAvgM, FedAdam, FedProx, ...)
    get the weighting by listing this class after their Flower class, ``class
    FedAvgM(flower.FedAvgM, Weighted)``: it then sits between that class and FedAvg, so
    their ``super().aggregate_train`` reaches the weighted average. Their ``__init__``
    takes no extra arguments, so every subclass sets ``self.weighting`` (checked with
    ``check_weighting``) in its own ``__init__``.
    """

    weighting: str

    def client_weights(self, contents: list[RecordDict]) -> list[float]:
        """Each reply's weight before normalization: n_i (examples) or 1 (uniform)."""
        if self.weighting == "uniform":
            return [1.0] * len(contents)
        return [reported(content, self.weighted_by_key) for content in contents]

    def shares(self, contents: list[RecordDict]) -> list[float]:
        """Each reply's share of the average: its weight over the sum of the weights."""
        weights = self.client_weights(contents)
        total = sum(weights)
        return [weight / total for weight in weights]

    def average(self, contents: list[RecordDict]) -> ArrayRecord:
        """The weighted mean of the replies' models, computed as Flower's FedAvg computes it."""
        averaged: dict[str, np.ndarray] = {}
        for content, share in zip(contents, self.shares(contents), strict=True):
            for key, array in content[self.arrayrecord_key].items():
                if key in averaged:
                    averaged[key] += array.numpy() * share
                else:
                    averaged[key] = array.numpy() * share
        return ArrayRecord({key: Array(np.asarray(value)) for key, value in averaged.items()})

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        contents = train_contents(self, replies)
        if not contents:
            return None, None
        return self.average(contents), self.train_metrics_aggr_fn(contents, self.weighted_by_key)


def train_contents(strategy: FedAvg, replies: Iterable[Message], validate: bool = True) -> list[RecordDict]:
    """The contents of the valid training replies, checked and logged as Flower's FedAvg does (empty: none valid)."""
    valid_replies, _ = check_and_log_replies(strategy, replies, is_train=True, validate=validate)
    return [reply.content for reply in valid_replies]
