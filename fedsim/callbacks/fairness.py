"""Fairness across clients: the spread of the clients' federated-evaluation accuracy each round."""

import math

import numpy as np

from fedsim.callbacks.base import Callback, History, Row

WORST_SHARE = 0.1


def fairness(accuracies: list[float]) -> dict[str, float]:
    """Spread of client accuracies: the standard deviation and the mean of the worst 10%.

    The worst 10% are the ``ceil(0.1 * n)`` lowest accuracies, so at least one client.
    """
    ordered = sorted(accuracies)  # sums in a fixed order: replies arrive in any order
    worst = ordered[: math.ceil(WORST_SHARE * len(ordered))]
    return {"accuracy_std": float(np.std(ordered)), "accuracy_worst10pct": float(np.mean(worst))}


class Fairness(Callback):
    """Adds ``federated`` ``accuracy_std`` and ``accuracy_worst10pct`` to every round with federated evaluation.

    Derived from the clients' ``accuracy`` rows of the round's federated evaluation.
    """

    adds_metrics = True

    def on_round_end(self, server_round: int, rows: list[Row], history: History) -> None:
        accuracies = [value for _, stage, client, metric, value in rows
                      if stage == "federated" and client is not None and metric == "accuracy"]
        if accuracies:
            rows += [(server_round, "federated", None, name, value) for name, value in fairness(accuracies).items()]
