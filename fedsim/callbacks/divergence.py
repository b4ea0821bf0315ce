"""The divergence check every run has: a non-finite loss or weight warns once and, by default, stops the run."""

import warnings

from fedsim.callbacks.base import Callback, History, Row
from fedsim.config.checks import FedsimWarning
from fedsim.divergence import Diverged, divergence_message, find_divergence


class DivergenceCheck(Callback):
    """After each round, looks for a non-finite centralized loss, aggregated train loss or global weight.

    The first round that has one gives one ``FedsimWarning`` (``fedsim: warning: the run
    diverged in round 4: ...``); with ``stop`` (``stop_on_divergence``, the default) it
    then raises ``fedsim.divergence.Diverged``, else the run goes on and its rows keep
    the non-finite values. It runs after every other callback (``stops_run``), so
    ``metrics.csv`` and the progress line hold the round that diverged. The ServerApp
    adds it to every run (``fedsim.apps``).
    """

    stops_run = True

    def __init__(self, stop: bool = True) -> None:
        self.stop = stop
        self.diverged: Diverged | None = None

    def on_round_end(self, server_round: int, rows: list[Row], history: History) -> None:
        if self.diverged is not None or (found := find_divergence(rows)) is None:
            return
        what, value = found
        self.diverged = Diverged(server_round, what, value)
        then = "the run stops" if self.stop else "the run goes on (stop_on_divergence=false)"
        warnings.warn(f"{divergence_message(server_round, what, value)}; {then}.", FedsimWarning, stacklevel=2)
        if self.stop:
            raise self.diverged
