"""Run results on disk: written as each round finishes, loaded back into pandas.

A run folder holds ``config.yaml`` (the resolved config), ``choices.yaml`` (the option
picked in each config group), ``status.yaml`` (running, completed or failed, with the
reason) and ``metrics.csv``, a tidy long table with one row per (round, stage, client,
metric). Stages: ``centralized`` (the server's held-out test split), ``federated``
(client-side evaluation), ``train`` (local training) and ``system`` (wall time, clients,
failures, bytes). ``client`` is the partition id, or empty for the aggregate over
clients. A sweep folder holds one run folder per job and ``sweep.yaml``, the sweep's
overrides.
"""

import csv
import re
import traceback
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd
import yaml

from fedsim.config.checks import ConfigError

METRICS_FILE = "metrics.csv"
CONFIG_FILE = "config.yaml"
CHOICES_FILE = "choices.yaml"
STATUS_FILE = "status.yaml"
SWEEP_FILE = "sweep.yaml"
TRACEBACK_FILE = "traceback.txt"
COLUMNS = ["round", "stage", "client", "metric", "value"]
RUN_MARKERS = (METRICS_FILE, STATUS_FILE)


class MetricsWriter:
    """Appends rows to a run's ``metrics.csv`` and flushes after every round."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / METRICS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w", newline="")
        self._writer = csv.writer(self._file)
        self._writer.writerow(COLUMNS)
        self._file.flush()

    def write(self, rows: Iterable[tuple[int, str, int | None, str, float]]) -> None:
        for server_round, stage, client, metric, value in rows:
            self._writer.writerow([server_round, stage, "" if client is None else client, metric, repr(float(value))])
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def save_config(run_dir: Path, resolved_config: dict, choices: dict[str, str]) -> None:
    """Write the resolved config and the chosen option of each group next to the metrics."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(resolved_config, sort_keys=False))
    (run_dir / CHOICES_FILE).write_text(yaml.safe_dump(choices, sort_keys=False))


def write_status(run_dir: str | Path, status: str, **details: object) -> None:
    """Record a run's state (``running``, ``completed`` or ``failed``) and details such as ``reason``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / STATUS_FILE).write_text(yaml.safe_dump({"status": status, **details}, sort_keys=False))


def record_failure(run_dir: str | Path, error: Exception, seconds: float | None = None) -> None:
    """Mark a run failed with the error's one-line reason; keep the traceback of anything but bad input."""
    run_dir = Path(run_dir)
    reason = str(error) if isinstance(error, ConfigError) else f"{type(error).__name__}: {error}"
    details = {"reason": reason} if seconds is None else {"reason": reason, "seconds": round(seconds, 3)}
    write_status(run_dir, "failed", **details)
    if not isinstance(error, ConfigError):
        (run_dir / TRACEBACK_FILE).write_text("".join(traceback.format_exception(error)))


def read_status(run_dir: Path) -> dict[str, object]:
    """A run's ``status.yaml``; a run from before status files existed counts as completed."""
    path = run_dir / STATUS_FILE
    if not path.is_file():
        return {"status": "completed"}
    return yaml.safe_load(path.read_text()) or {"status": "completed"}


def save_sweep(sweep_dir: str | Path, overrides: Sequence[str], params: dict[str, str]) -> None:
    """Describe a sweep at its root: the command-line overrides and the swept parameters."""
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    description = {"overrides": list(overrides), "params": dict(params)}
    (sweep_dir / SWEEP_FILE).write_text(yaml.safe_dump(description, sort_keys=False))


def find_runs(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    """The run folders in ``paths``: each a run folder or a folder holding runs (a sweep).

    Raises ConfigError when a path does not exist or holds no run.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    runs: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise ConfigError(f"no run or sweep folder at '{path}'.")
        if any((path / marker).is_file() for marker in RUN_MARKERS):
            found = [path]
        else:
            found = sorted(
                {marker_path.parent for marker in RUN_MARKERS for marker_path in path.rglob(marker)},
                key=_natural_key,
            )
        if not found:
            raise ConfigError(f"no fedsim run in '{path}': no folder below it holds {METRICS_FILE} or {STATUS_FILE}.")
        runs.extend(found)
    return runs


def _natural_key(path: Path) -> list[object]:
    """Sort sweep jobs 0, 1, 2, ..., 10 rather than 0, 1, 10, 2."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def load(paths: str | Path | Sequence[str | Path]) -> pd.DataFrame:
    """The metrics of runs as one long DataFrame, with each run's config flattened into columns.

    Parameters
    ----------
    paths : str | Path | sequence of them
        Run folders, sweep folders (searched recursively for runs), or a list of both.

    Returns
    -------
    pandas.DataFrame
        Columns: round, stage, client (nullable Int64), metric, value, ``run`` (the run
        folder), ``status``, then one column per config group holding the chosen option
        (``strategy``, ``dataset``, ...) and one per config value (``seed``,
        ``partitioner.alpha``, ``client.lr``, ...). Failed runs are left out with a
        warning naming them; ``load_runs`` lists every run with its status.
    """
    frames, failed = [], []
    for run_dir in find_runs(paths):
        status = read_status(run_dir)
        if status["status"] == "failed" or not (run_dir / METRICS_FILE).is_file():
            failed.append(f"{run_dir} ({status.get('reason', 'no metrics')})")
            continue
        frames.append(_load_run(run_dir, status))
    if failed:
        warnings.warn(f"left out {len(failed)} failed run(s): {'; '.join(failed)}", stacklevel=2)
    if not frames:
        raise ConfigError(f"no completed fedsim run in {_describe(paths)}: every run there failed.")
    return pd.concat(frames, ignore_index=True)


def _describe(paths: str | Path | Sequence[str | Path]) -> str:
    return f"'{paths}'" if isinstance(paths, (str, Path)) else ", ".join(f"'{path}'" for path in paths)


def _load_run(run_dir: Path, status: dict[str, object]) -> pd.DataFrame:
    frame = pd.read_csv(run_dir / METRICS_FILE, dtype={"stage": "string", "metric": "string"})
    frame["client"] = frame["client"].astype("Int64")
    columns = {"run": str(run_dir), "status": status["status"], **run_columns(run_dir)}
    config = pd.DataFrame({key: [value] * len(frame) for key, value in columns.items()}, index=frame.index)
    return pd.concat([frame, config], axis=1)


def load_runs(paths: str | Path | Sequence[str | Path]) -> pd.DataFrame:
    """One row per run, failed ones included: ``run``, ``status``, ``reason``, ``seconds`` and the config."""
    rows = []
    for run_dir in find_runs(paths):
        status = read_status(run_dir)
        rows.append({"run": str(run_dir), **status, **run_columns(run_dir)})
    return pd.DataFrame(rows)


def run_columns(run_dir: Path) -> dict[str, object]:
    """The chosen options and the flattened config values of a run, as column values."""
    columns: dict[str, object] = {}
    choices_path, config_path = run_dir / CHOICES_FILE, run_dir / CONFIG_FILE
    if choices_path.is_file():
        columns.update(yaml.safe_load(choices_path.read_text()) or {})
    if config_path.is_file():
        columns.update(_flatten(yaml.safe_load(config_path.read_text()) or {}))
    return upgrade_columns(columns)


# The round observers every run had before they became the ``callbacks`` config group.
FORMER_CALLBACKS = "progress,metrics_csv,fairness"


def upgrade_columns(columns: dict[str, object]) -> dict[str, object]:
    """The columns of a run written by an earlier fedsim, under today's names.

    ``privacy.mechanism`` named the privacy option (today the ``privacy`` column and
    ``privacy._target_``); the ``logger`` group became a callback next to the observers
    every run had; ``strategy.num_clients`` is no longer a setting (it is ``num_clients``).
    """
    columns = dict(columns)
    mechanism = columns.pop("privacy.mechanism", None)
    if mechanism is not None:
        columns.setdefault("privacy", mechanism)
    logger = columns.pop("logger", None)
    if logger is not None:
        columns.setdefault("callbacks", FORMER_CALLBACKS + (f",{logger}" if logger != "none" else ""))
    for key in [key for key in columns if key.startswith("logger.")]:
        value = columns.pop(key)
        if key != "logger._target_":  # the logger classes are gone; the callback's target is today's
            columns.setdefault(f"callbacks.{logger}.{key.removeprefix('logger.')}", value)
    columns.pop("strategy.num_clients", None)
    return columns


def _flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        elif isinstance(value, list):
            flat[name] = str(value)
        else:
            flat[name] = value
    return flat


def round_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per round, one column per aggregate metric, named ``stage_metric`` (one run)."""
    aggregate = frame[frame["client"].isna()]
    wide = aggregate.pivot_table(index="round", columns=["stage", "metric"], values="value", aggfunc="first")
    wide.columns = [f"{stage}_{metric}" for stage, metric in wide.columns]
    return wide.sort_index()


def final_table(frame: pd.DataFrame, metric: str = "accuracy", stage: str = "centralized") -> pd.DataFrame:
    """The last round's aggregate ``metric`` of every run, one row per run, with its config."""
    chosen = frame[(frame["stage"] == stage) & (frame["metric"] == metric) & frame["client"].isna()]
    last = chosen.loc[chosen.groupby("run")["round"].idxmax()]
    return last.drop(columns=["stage", "client", "metric"]).rename(columns={"value": metric}).reset_index(drop=True)
