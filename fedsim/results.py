"""Run results on disk: written as each round finishes, loaded back into pandas.

A run folder holds ``config.yaml`` (the resolved config), ``choices.yaml`` (the option
picked in each config group) and ``metrics.csv``, a tidy long table with one row per
(round, stage, client, metric). Stages: ``centralized`` (the server's held-out test
split), ``federated`` (client-side evaluation), ``train`` (local training) and
``system`` (wall time, clients, failures). ``client`` is the partition id, or empty for
the aggregate over clients.
"""

import csv
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import yaml

METRICS_FILE = "metrics.csv"
CONFIG_FILE = "config.yaml"
CHOICES_FILE = "choices.yaml"
COLUMNS = ["round", "stage", "client", "metric", "value"]


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


def load(run_dir: str | Path) -> pd.DataFrame:
    """The metrics of one run as a long DataFrame, with the config flattened into columns.

    Columns: round, stage, client (nullable Int64), metric, value, then one column per
    config group holding the chosen option (``strategy``, ``dataset``, ...) and one per
    config value (``seed``, ``partitioner.alpha``, ``client.lr``, ...).
    """
    run_dir = Path(run_dir)
    metrics_path = run_dir / METRICS_FILE
    if not metrics_path.is_file():
        raise FileNotFoundError(f"no fedsim run in '{run_dir}': {METRICS_FILE} is missing")
    frame = pd.read_csv(metrics_path, dtype={"stage": "string", "metric": "string"})
    frame["client"] = frame["client"].astype("Int64")
    for key, value in run_columns(run_dir).items():
        frame[key] = value
    return frame


def run_columns(run_dir: Path) -> dict[str, object]:
    """The chosen options and the flattened config values of a run, as column values."""
    columns: dict[str, object] = {}
    choices_path, config_path = run_dir / CHOICES_FILE, run_dir / CONFIG_FILE
    if choices_path.is_file():
        columns.update(yaml.safe_load(choices_path.read_text()) or {})
    if config_path.is_file():
        columns.update(_flatten(yaml.safe_load(config_path.read_text()) or {}))
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
    """One row per round, one column per aggregate metric, named ``stage_metric``."""
    aggregate = frame[frame["client"].isna()]
    wide = aggregate.pivot_table(index="round", columns=["stage", "metric"], values="value", aggfunc="first")
    wide.columns = [f"{stage}_{metric}" for stage, metric in wide.columns]
    return wide.sort_index()
