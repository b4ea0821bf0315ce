"""Divergence: a non-finite loss or weight after a round, the exception that stops the run, and its check."""

import math
from typing import TYPE_CHECKING

import numpy as np
from flwr.app import ArrayRecord

if TYPE_CHECKING:  # fedsim.callbacks imports this module (its divergence check)
    from fedsim.callbacks.base import Row

# The system row the recorder adds when the new global model holds NaN or infinite values (their count).
NONFINITE_WEIGHTS = "train_nonfinite_weights"
# What is checked after every round, in this order: the aggregate row (stage, metric), its short
# name (Diverged.what) and its name in a sentence.
CHECKED = (
    ("centralized", "loss", "centralized loss", "the centralized test loss"),
    ("train", "loss", "train loss", "the aggregated train loss"),
    ("system", NONFINITE_WEIGHTS, "weights", "the global model's weights"),
)


class Diverged(RuntimeError):
    """The run diverged: after round ``round``, ``what`` was not finite (``value``).

    Raised after every callback has seen the round (so ``metrics.csv`` holds it), when
    ``stop_on_divergence`` is true. ``str(error)`` is one sentence naming the round.

    Attributes
    ----------
    round : int
        The first round whose loss or weights were not finite.
    what : str
        What was not finite: ``centralized loss``, ``train loss`` or ``weights``.
    value : float
        The non-finite loss, or for ``weights`` the number of NaN or infinite values.
    """

    def __init__(self, server_round: int, what: str, value: float) -> None:
        self.round = server_round
        self.what = what
        self.value = value
        super().__init__(f"{divergence_message(server_round, what, value)}.")

    def __reduce__(self):  # pickles (Ray, worker processes) with its fields
        return type(self), (self.round, self.what, self.value)


def divergence_message(server_round: int, what: str, value: float) -> str:
    """One sentence, without its full stop: the round and what was not finite."""
    name = {short: long for _, _, short, long in CHECKED}.get(what, what)
    if what == "weights":
        return f"the run diverged in round {server_round}: {name} hold {int(value)} NaN or infinite values"
    return f"the run diverged in round {server_round}: {name} is {value}"


def nonfinite_count(arrays: ArrayRecord) -> int:
    """How many NaN or infinite values the floating-point arrays of ``arrays`` hold (one numpy pass each)."""
    count = 0
    for array in arrays.values():
        values = array.numpy()
        if np.issubdtype(values.dtype, np.inexact):
            count += values.size - int(np.count_nonzero(np.isfinite(values)))
    return count


def find_divergence(rows: "list[Row]") -> tuple[str, float] | None:
    """The first non-finite check of a round's rows, as (``what``, value), or None if the round is finite."""
    aggregates = {(stage, metric): value for _, stage, client, metric, value in rows if client is None}
    for stage, metric, what, _ in CHECKED:
        value = aggregates.get((stage, metric))
        if value is None:
            continue
        if metric == NONFINITE_WEIGHTS and value > 0 or metric != NONFINITE_WEIGHTS and not math.isfinite(value):
            return what, value
    return None
