"""The heartbeat every run has: ``status: running`` kept fresh, so a killed run can be told from a running one."""

import time

from fedsim.callbacks.base import Callback, History, Row, RunInfo
from fedsim.results import running_details, write_status


class Heartbeat(Callback):
    """Rewrites ``status: running`` (pid, host, heartbeat, last round) as rounds end, at most every ``every`` seconds."""

    def __init__(self, every: float = 2.0) -> None:
        self.every = every
        self.run_dir = None
        self._last = time.monotonic()

    def on_run_start(self, run: RunInfo) -> None:
        self.run_dir = run.run_dir

    def on_round_end(self, server_round: int, rows: list[Row], history: History) -> None:
        if time.monotonic() - self._last >= self.every:
            self._last = time.monotonic()
            write_status(self.run_dir, "running", **running_details(last_round=server_round))
