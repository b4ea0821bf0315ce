"""The metrics.csv writer: every recorded row, appended as each round ends."""

from fedsim.callbacks.base import Callback, History, Row, RunInfo
from fedsim.results import MetricsWriter


class MetricsCSV(Callback):
    """Writes every round's rows to the run's ``metrics.csv`` (see ``fedsim.results``), flushed per round."""

    def __init__(self) -> None:
        self._writer: MetricsWriter | None = None

    def on_run_start(self, run: RunInfo) -> None:
        self._writer = MetricsWriter(run.run_dir)

    def on_round_end(self, server_round: int, rows: list[Row], history: History) -> None:
        self._writer.write(rows)

    def on_run_end(self, run: RunInfo, history: History, error: BaseException | None = None) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
