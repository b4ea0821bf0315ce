"""The metrics.csv writer: every recorded row, appended as each round ends; failed clients' reasons in failures.csv."""

from fedsim.callbacks.base import Callback, History, Row, RunInfo
from fedsim.failures import FailuresWriter
from fedsim.results import MetricsWriter


class MetricsCSV(Callback):
    """Writes every round's rows to the run's ``metrics.csv`` (see ``fedsim.results``), flushed per round,
    and the round's failed clients with their reasons to ``failures.csv`` (see ``fedsim.failures``)."""

    def __init__(self) -> None:
        self._writer: MetricsWriter | None = None
        self._failures: FailuresWriter | None = None

    def on_run_start(self, run: RunInfo) -> None:
        resumed = run.resumed_after > 0  # the files hold the rounds up to the checkpoint: go on after them
        self._writer = MetricsWriter(run.run_dir, append=resumed)
        self._failures = FailuresWriter(run.run_dir, append=resumed)

    def on_round_end(self, server_round: int, rows: list[Row], history: History) -> None:
        self._writer.write(rows)
        self._failures.write(history.failures_in(server_round))

    def on_run_end(self, run: RunInfo, history: History, error: BaseException | None = None) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._failures is not None:
            self._failures.close()
            self._failures = None
