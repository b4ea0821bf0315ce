"""Ending a run on SIGINT or SIGTERM: an exception the run records as ``interrupted``.

``handle_signals`` turns either signal into ``RunInterrupted`` in the main thread (the
one the server app runs in), so the run's callbacks end, ``status.yaml`` says
``interrupted`` with the last completed round, and the command exits with 128 + the
signal's number (130 for Ctrl-C, 143 for SIGTERM) after one line on stderr.
"""

import signal
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(KeyboardInterrupt):
    """The run was stopped by a signal; ``signum`` is its number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _raise(signum: int, _frame: object) -> None:
    for number in SIGNALS:  # a second signal while the run records its end is ignored
        signal.signal(number, signal.SIG_IGN)
    raise RunInterrupted(signum)


@contextmanager
def handle_signals() -> Iterator[None]:
    """While inside, SIGINT and SIGTERM raise ``RunInterrupted``; the previous handlers come back after."""
    previous = {number: signal.signal(number, _raise) for number in SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
