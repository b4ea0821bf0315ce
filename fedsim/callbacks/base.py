"""Round observers: the hooks a run calls as it starts, after every round, and as it ends."""

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from fedsim.failures import Failure

# One recorded value: (round, stage, client partition id or None for an aggregate, metric, value).
Row = tuple[int, str, int | None, str, float]


@dataclass(frozen=True)
class RunInfo:
    """What a callback may want to know about the run it observes.

    Attributes
    ----------
    run_dir : Path
        The run folder.
    num_rounds : int
        Rounds the run is configured for.
    config : dict
        The resolved config, as written to ``config.yaml``.
    choices : dict[str, object]
        The option chosen in each config group, as written to ``choices.yaml``.
    quiet : bool
        Whether the run prints one line in all instead of its progress (sweeps).
    resumed_after : int
        The round of the checkpoint a resumed run continues after (``fedsim resume=``);
        0 for a run from the start. The results files then hold the rounds up to it.
    """

    run_dir: Path
    num_rounds: int
    config: dict = field(default_factory=dict)
    choices: dict = field(default_factory=dict)
    quiet: bool = False
    resumed_after: int = 0


@dataclass
class History:
    """The aggregate metrics of every finished round, keyed ``stage_metric`` (``centralized_accuracy``),
    and every failed client with its reason (``failures``, in the order they failed)."""

    rounds: dict[int, dict[str, float]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)

    def failures_in(self, server_round: int) -> list[Failure]:
        """The clients that failed in ``server_round``, with their reasons."""
        return [failure for failure in self.failures if failure.round == server_round]

    def add(self, server_round: int, rows: list[Row]) -> dict[str, float]:
        """Keep the aggregate rows (client None) of a round; return them as a dict."""
        aggregates = {f"{stage}_{metric}": value for _, stage, client, metric, value in rows if client is None}
        self.rounds[server_round] = aggregates
        return aggregates

    @property
    def final(self) -> dict[str, float]:
        """The aggregates of the last finished round (empty before the first)."""
        return self.rounds[max(self.rounds)] if self.rounds else {}

    def best(self, key: str) -> tuple[int, float] | None:
        """The round with the highest ``key`` and its value (the first such round), if any round has it."""
        found = [(r, m[key]) for r, m in sorted(self.rounds.items()) if key in m and not math.isnan(m[key])]
        return max(found, key=lambda item: item[1]) if found else None


class Callback:
    """Base of every round observer; override only the hooks you need.

    The run calls ``on_run_start`` before round 0 (the initial model's centralized
    evaluation), ``on_round_end`` with every round's rows as soon as the round ends, and
    ``on_run_end`` once at the end, also when the run fails (``error`` is then the
    exception). Callbacks that derive new metrics from a round's rows (fairness, say)
    set ``adds_metrics = True``: they run first and may append rows, which the others
    then see; the round's aggregates enter ``history`` after them. The round's failed
    clients (``history.failures_in(round)``) are in ``history`` before any callback runs.
    """

    adds_metrics: ClassVar[bool] = False
    # A callback that may stop the run (raise from on_round_end) sets this: it runs last, so
    # every other callback has seen the round that stopped the run.
    stops_run: ClassVar[bool] = False

    def on_run_start(self, run: RunInfo) -> None:
        """The run is about to start its first round."""

    def on_round_end(self, server_round: int, rows: list[Row], history: History) -> None:
        """Round ``server_round`` ended with ``rows``; ``history`` already holds its aggregates."""

    def on_run_end(self, run: RunInfo, history: History, error: BaseException | None = None) -> None:
        """The run ended: completed (``error`` None) or failed."""
