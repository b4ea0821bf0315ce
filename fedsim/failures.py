"""Why clients failed: one row per failed client and round in the run folder's ``failures.csv``.

``metrics.csv`` holds numbers only (a ``failed`` row per failed client); the reasons, the
exception type and message a client's reply carried (``RuntimeError: client down``),
go here, written by the ``metrics_csv`` callback as each round ends. The file exists
only when some client failed.
"""

import csv
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import pandas as pd

FAILURES_FILE = "failures.csv"
FAILURE_COLUMNS = ("round", "stage", "client", "reason")



class Failure(NamedTuple):
    """A client that failed a round's stage (``train`` or ``federated``), and why: the error
    reason of its reply (``RuntimeError: client down``), or ``no reply``."""

    round: int
    stage: str
    client: int
    reason: str


class FailuresWriter:
    """Appends failures to ``RUN_DIR/failures.csv``, creating it (with its header) at the first one,
    or, with ``append`` (a resumed run), going on after the failures already there."""

    def __init__(self, run_dir: str | Path, append: bool = False) -> None:
        self.path = Path(run_dir) / FAILURES_FILE
        self.append = append
        self._file = None
        self._writer = None

    def write(self, failures: list[Failure]) -> None:
        """Append ``failures`` and flush, so a killed run keeps them."""
        if not failures:
            return
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            append = self.append and self.path.is_file() and self.path.stat().st_size > 0
            self._file = self.path.open("a" if append else "w", newline="", encoding="utf-8")
            self._writer = csv.writer(self._file)
            if not append:
                self._writer.writerow(FAILURE_COLUMNS)
        self._writer.writerows(failures)
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def load_failures(run_dir: str | Path) -> "pd.DataFrame":
    """The failed clients of a run: columns round, stage, client, reason (no rows if none failed)."""
    import pandas as pd

    path = Path(run_dir) / FAILURES_FILE
    if not path.is_file():
        return pd.DataFrame({"round": pd.Series(dtype="int64"), "stage": pd.Series(dtype="object"),
                             "client": pd.Series(dtype="int64"), "reason": pd.Series(dtype="object")})
    return pd.read_csv(path, dtype={"round": "int64", "stage": str, "client": "int64", "reason": str},
                       keep_default_na=False)
