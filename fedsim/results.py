"""Run results on disk: written as each round finishes, loaded back into pandas.

A run folder holds ``config.yaml`` (the resolved config), ``choices.yaml`` (the option
picked in each config group), ``status.yaml`` (running, completed or failed, with the
reason) and ``metrics.csv``, a tidy long table with one row per (round, stage, client,
metric). Stages: ``centralized`` (the server's held-out test split), ``federated``
(client-side evaluation), ``train`` (local training) and ``system`` (wall time, clients,
failures, bytes). ``client`` is the partition id, or empty for the aggregate over
clients. A sweep folder holds one run folder per job and ``sweep.yaml``, the sweep's
overrides.

``load`` and ``load_runs`` read runs back (filtered with ``where``), labelling each with
a ``method``; ``final_table``, ``run_table``, ``summary_table`` and ``compare_methods``
reduce them to one value per run, statistics per group over seeds, and a paired
comparison of two methods.
"""

import csv
import math
import re
import traceback
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Number
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from fedsim.config import GROUPS
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


# Columns that describe a run rather than configure it: ``load`` adds run and status,
# ``load_runs`` the status details too.
RUN_COLUMNS = (*COLUMNS, "run", "status", "reason", "seconds")
# The label of a run: the config's ``method`` (conf/method/NAME.yaml), else the strategy chosen.
METHOD = "method"
# Keys whose value alone names a curve when they lead a hue: the method and each group's choice.
GROUP_KEYS = (METHOD, *GROUPS)
KEYS_LISTED = 8

Where = Mapping[str, object] | Sequence[str] | None


def load(paths: str | Path | Sequence[str | Path], where: Where = None) -> pd.DataFrame:
    """The metrics of runs as one long DataFrame, with each run's config flattened into columns.

    Parameters
    ----------
    paths : str | Path | sequence of them
        Run folders, sweep folders (searched recursively for runs), or a list of both.
    where : mapping or sequence of "KEY=VALUE" strings, optional
        Keep only the runs whose column equals the value, for every key:
        ``{"partitioner.alpha": 0.1, "method": "fedavg"}``, or the command line's
        ``["partitioner.alpha=0.1", "method=fedavg"]`` (each value read as YAML, as Hydra
        reads an override). Numbers compare as numbers (``1`` equals ``1.0``), anything
        else as text; ``None`` (``null``) matches a run that lacks the key or sets it null.
        A key no run has, or a filter that leaves no run, is a ConfigError.

    Returns
    -------
    pandas.DataFrame
        Columns: round, stage, client (nullable Int64), metric, value, ``run`` (the run
        folder), ``status``, ``method`` (the config's ``method`` when it is a non-empty
        string, else the strategy chosen), then one column per config group holding the
        chosen option (``strategy``, ``dataset``, ...) and one per config value
        (``seed``, ``partitioner.alpha``, ``client.lr``, ...). Failed runs are left out
        with a warning naming them; ``load_runs`` lists every run with its status.
    """
    runs = []
    for run_dir in find_runs(paths):
        status = read_status(run_dir)
        runs.append((run_dir, status, {"run": str(run_dir), "status": status["status"], **run_columns(run_dir)}))
    runs = select_runs(runs, parse_where(where), paths, columns_of=lambda run: run[2])
    frames, failed = [], []
    for run_dir, status, columns in runs:
        if status["status"] == "failed" or not (run_dir / METRICS_FILE).is_file():
            failed.append(f"{run_dir} ({status.get('reason', 'no metrics')})")
            continue
        frames.append(_load_run(run_dir, columns))
    if failed:
        warnings.warn(f"left out {len(failed)} failed run(s): {'; '.join(failed)}", stacklevel=2)
    if not frames:
        raise ConfigError(f"no completed fedsim run in {_describe(paths)}: every run there failed.")
    return pd.concat(frames, ignore_index=True)


def _describe(paths: str | Path | Sequence[str | Path]) -> str:
    return f"'{paths}'" if isinstance(paths, (str, Path)) else ", ".join(f"'{path}'" for path in paths)


def _load_run(run_dir: Path, columns: dict[str, object]) -> pd.DataFrame:
    frame = pd.read_csv(run_dir / METRICS_FILE, dtype={"stage": "string", "metric": "string"})
    frame["client"] = frame["client"].astype("Int64")
    config = pd.DataFrame({key: [value] * len(frame) for key, value in columns.items()}, index=frame.index)
    return pd.concat([frame, config], axis=1)


def load_runs(paths: str | Path | Sequence[str | Path], where: Where = None) -> pd.DataFrame:
    """One row per run, failed ones included: ``run``, ``status``, ``reason``, ``seconds``, ``method`` and the config.

    ``where`` keeps the runs whose columns equal the values, as in ``load``.
    """
    rows = []
    for run_dir in find_runs(paths):
        status = read_status(run_dir)
        rows.append({"run": str(run_dir), **status, **run_columns(run_dir)})
    return pd.DataFrame(select_runs(rows, parse_where(where), paths))


def run_columns(run_dir: Path) -> dict[str, object]:
    """The run's method label, chosen options and flattened config values, as column values."""
    columns: dict[str, object] = {}
    choices_path, config_path = run_dir / CHOICES_FILE, run_dir / CONFIG_FILE
    if choices_path.is_file():
        columns.update(yaml.safe_load(choices_path.read_text()) or {})
    if config_path.is_file():
        columns.update(_flatten(yaml.safe_load(config_path.read_text()) or {}))
    columns = upgrade_columns(columns)
    method = columns.pop(METHOD, None)
    if not (isinstance(method, str) and method.strip()):
        method = columns.get("strategy")  # runs from before methods, or run without one
    return {METHOD: method, **columns}


def parse_where(where: Where) -> dict[str, object]:
    """``where`` as ``{key: value}``: a mapping as it is, "KEY=VALUE" strings with each value read as YAML."""
    if where is None:
        return {}
    if isinstance(where, Mapping):
        return dict(where)
    if isinstance(where, str):
        where = [where]
    parsed: dict[str, object] = {}
    for item in where:
        key, equals, text = str(item).partition("=")
        if not equals or not key.strip():
            raise ConfigError(f"a where filter is KEY=VALUE, such as partitioner.alpha=0.1 (got '{item}').")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        parsed[key.strip()] = value
    return parsed


def select_runs(runs: list, where: dict[str, object], paths: object = None, columns_of=lambda run: run) -> list:
    """The ``runs`` whose columns (``columns_of(run)``, a dict) equal every value of ``where``.

    Raises ConfigError naming the keys that exist when a key of ``where`` is in no run,
    and naming the values there are when no run is left.
    """
    if not where:
        return runs
    rows = [columns_of(run) for run in runs]
    known = {key for row in rows for key in row}
    for key in where:
        if key not in known:
            listed = ", ".join(config_keys(pd.DataFrame(rows))[:KEYS_LISTED])
            raise ConfigError(f"where key '{key}' is not a config key of these runs; some available keys: {listed}.")
    kept = [
        run for run, row in zip(runs, rows) if all(values_equal(row.get(key), value) for key, value in where.items())
    ]
    if kept:
        return kept
    place = f" in {_describe(paths)}" if paths is not None else ""
    wanted = " and ".join(f"{key}={format_value(value)}" for key, value in where.items())
    present = "; ".join(f"{key} is {_join_values(row.get(key) for row in rows)} there" for key in where)
    raise ConfigError(f"no run{place} has {wanted} ({present}).")


def _join_values(values: Iterable[object], limit: int = KEYS_LISTED) -> str:
    """Distinct values, sorted, formatted and joined: ``0.1, 0.5 or 1``."""
    shown = distinct_values(values)
    if len(shown) > limit:
        shown = [*shown[: limit - 1], f"... ({len(shown)} values)"]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


def is_missing(value: object) -> bool:
    """None, NaN or pandas' NA: a run without the key."""
    if value is None or value is pd.NA:
        return True
    return isinstance(value, Number) and not isinstance(value, bool) and math.isnan(float(value))


def _as_number(value: object) -> float | None:
    if isinstance(value, (bool, np.bool_)) or is_missing(value):
        return None
    if isinstance(value, Number):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def values_equal(value: object, wanted: object) -> bool:
    """Whether a run's column ``value`` equals ``wanted``: numbers as numbers, anything else as text."""
    if is_missing(wanted) or is_missing(value):
        return is_missing(wanted) and is_missing(value)
    number, wanted_number = _as_number(value), _as_number(wanted)
    if number is not None and wanted_number is not None:
        return number == wanted_number
    return format_value(value) == format_value(wanted)


def format_value(value: object) -> str:
    """A config value as labels show it: ``0.1``, ``1`` (for 1.0), ``true``, ``fedavg``, ``[200, 200]``.

    A missing value (None, NaN) is ``unset``.
    """
    if is_missing(value):
        return "unset"
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, Number):
        number = float(value)
        if math.isfinite(number) and number.is_integer():
            return str(int(number))
        return repr(number)
    if isinstance(value, list):
        return str(value)  # as _flatten writes lists
    return str(value)


def _sort_key(value: object) -> tuple:
    """Numbers in order, then text, then missing values."""
    number = _as_number(value)
    if number is not None and not isinstance(value, str):
        return (0, number, "")
    if is_missing(value):
        return (2, 0.0, "")
    return (1, 0.0, format_value(value))


def distinct_values(values: Iterable[object]) -> list[str]:
    """The distinct values, ordered (numbers, text, then ``unset``) and formatted."""
    shown: dict[str, tuple] = {}
    for value in values:
        shown.setdefault(format_value(value), _sort_key(value))
    return sorted(shown, key=lambda text: shown[text])


def config_keys(frame: pd.DataFrame) -> list[str]:
    """The config columns of ``frame`` (runs or their rows): those that differ between runs first, then the rest."""
    keys = [column for column in frame.columns if column not in RUN_COLUMNS]
    per_run = frame.drop_duplicates("run")[keys] if "run" in frame else frame[keys]
    varying = [key for key in keys if per_run[key].astype(str).nunique() > 1]
    return varying + [key for key in keys if key not in varying]


def split_keys(keys: str | Sequence[str] | None) -> list[str]:
    """Config keys given as a string (commas separate several), a list, or None (no key)."""
    if keys is None:
        return []
    if isinstance(keys, str):
        keys = keys.split(",")
    return [key.strip() for key in keys if key and key.strip()]


def check_keys(frame: pd.DataFrame, keys: Sequence[str], role: str) -> None:
    """Raise ConfigError naming some keys that exist if one of ``keys`` is not a column of the runs."""
    for key in keys:
        if key in RUN_COLUMNS or key not in frame.columns:
            listed = ", ".join(config_keys(frame)[:KEYS_LISTED])
            raise ConfigError(f"{role} '{key}' is not a config key of these runs; some available keys: {listed}.")

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


STAGE_PREFERENCE = ["centralized", "federated", "train", "system"]


def metric_stage(frame: pd.DataFrame, metric: str, stage: str | None = None, clients: bool = False) -> str:
    """The stage to read ``metric`` from: ``stage`` if given, else the first that records it.

    Raises ConfigError naming the metrics (or stages) that exist when the choice does not.
    """
    rows = frame[frame["client"].notna()] if clients else frame[frame["client"].isna()]
    kind = "per-client metric" if clients else "metric"
    stages = sorted(rows["stage"].unique())
    if stage is not None and stage not in stages:
        raise ConfigError(f"stage '{stage}' has no {kind}s in these runs; available: {', '.join(stages)}.")
    candidates = [stage] if stage is not None else [s for s in STAGE_PREFERENCE if s in stages]
    for candidate in candidates:
        if metric in set(rows.loc[rows["stage"] == candidate, "metric"]):
            return candidate
    scope = rows if stage is None else rows[rows["stage"] == stage]
    where = "" if stage is None else f" for stage '{stage}'"
    available = ", ".join(sorted(scope["metric"].unique()))
    raise ConfigError(f"{kind} '{metric}' is not recorded{where} in these runs; available: {available}.")


# ---------------------------------------------------------------------------------------
# Labels of groups of runs, and the warning when a group pools runs of different configs.


def group_label(keys: Sequence[str], values: Sequence[object]) -> str:
    """A group's name from its values of ``keys``: the keys a run has, joined by ", ".

    A leading group choice or method shows as its value alone (``fedprox``), every other
    key as ``key=value``, without the leading group's prefix (``proximal_mu=0.1`` after
    ``strategy``): ``fedprox, proximal_mu=0.1``; a key the run lacks is left out
    (``fedavg``). A run with none of the keys is ``no KEYS``.
    """
    lead = keys[0] if keys and keys[0] in GROUP_KEYS else None
    parts = []
    for position, (key, value) in enumerate(zip(keys, values)):
        if is_missing(value):
            continue
        if position == 0 and lead is not None:
            parts.append(format_value(value))
            continue
        shown = key.removeprefix(f"{lead}.") if lead is not None and key.startswith(f"{lead}.") else key
        parts.append(f"{shown}={format_value(value)}")
    return ", ".join(parts) if parts else f"no {', '.join(keys)}"


def group_runs(runs: pd.DataFrame, keys: Sequence[str]) -> dict[str, list[str]]:
    """The runs (one row each, with ``run``) of each group of ``keys``, labelled, in the order of their values."""
    order: dict[str, tuple] = {}
    members: dict[str, list[str]] = {}
    for _, row in runs.iterrows():
        values = [row.get(key) for key in keys]
        label = group_label(keys, values) if keys else "all runs"
        order.setdefault(label, tuple(_sort_key(value) for value in values))
        members.setdefault(label, []).append(row["run"])
    return {label: members[label] for label in sorted(members, key=lambda label: order[label])}


# Keys pooled runs may differ in without a warning: the seeds, what runs and records a run
# but leaves its results alone (engine, callbacks, terminal output), and folders.
POOLABLE_KEYS = ("quiet", "verbose", "engine", "callbacks")


def poolable(key: str) -> bool:
    """Whether runs pooled into one group may differ in ``key`` without a warning."""
    last = key.rsplit(".", 1)[-1]
    return (
        key in RUN_COLUMNS
        or key in POOLABLE_KEYS
        or key.startswith(tuple(f"{prefix}." for prefix in (*POOLABLE_KEYS, "hydra")))
        or last == "seed"
        or last.endswith("dir")
        or last == "directory"
    )


def pooling_message(runs: pd.DataFrame, groups: Mapping[str, Sequence[str]], name: str, advice: str) -> str | None:
    """One line naming the groups whose runs differ in a config value other than the seed, or None.

    ``runs`` has one row per run (``run`` and the config columns); ``groups`` maps each
    group's label to its runs; ``name`` says how groups are made (``hue method``) and
    ``advice`` ends the line.
    """
    runs = runs.drop_duplicates("run").set_index("run", drop=False)
    keys = [key for key in runs.columns if not poolable(key)]
    curves: list[str] = []
    differing: dict[str, list[object]] = {}
    for label, members in groups.items():
        if len(members) < 2:
            continue
        group = runs.loc[list(members)]
        keys_differing = [key for key in keys if len(distinct_values(group[key])) > 1]
        # A group's _target_ follows its choice: name the choice only.
        keys_differing = [
            key
            for key in keys_differing
            if not (key.endswith("._target_") and key.removesuffix("._target_") in keys_differing)
        ]
        if keys_differing:
            curves.append(label)
            for key in keys_differing:
                differing.setdefault(key, []).extend(group[key])
    if not curves:
        return None
    differing = {key: differing[key] for key in keys if key in differing}  # in column order
    named = [f"'{curve}'" for curve in curves]
    named = named if len(named) <= 4 else [*named[:3], f"{len(named) - 3} more"]
    items = [f"{key} ({', '.join(_short(distinct_values(values)))})" for key, values in differing.items()]
    items = items if len(items) <= 6 else [*items[:5], f"{len(items) - 5} more keys"]
    verb = "pools" if len(curves) == 1 else "pool"
    pronoun = "it" if len(differing) == 1 else "them"
    return f"{name}: {_and(named)} {verb} runs whose configs differ in {_and(items)}; add {pronoun} to {advice}"


def _short(values: list[str], limit: int = KEYS_LISTED) -> list[str]:
    return values if len(values) <= limit else [*values[: limit - 1], f"... ({len(values)} values)"]


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


# ---------------------------------------------------------------------------------------
# Statistics over seeds.

AT = ("final", "best")
# Metrics where lower is better, by a word in their name; every other metric: higher is better.
LOWER_IS_BETTER = ("loss", "std", "epsilon", "seconds", "bytes", "fail")


def higher_is_better(metric: str) -> bool:
    """Whether a larger ``metric`` is better: False for losses, spreads, epsilon, time, bytes and failures."""
    return not any(word in metric for word in LOWER_IS_BETTER)


def run_table(
    frame: pd.DataFrame,
    metric: str = "accuracy",
    stage: str = "centralized",
    at: str = "final",
    higher: bool | None = None,
) -> pd.DataFrame:
    """Each run's aggregate ``metric`` at its last round (``at="final"``) or its best (``at="best"``), with its config.

    One row per run, as ``final_table``: ``round`` is the round the value is from. The
    best round is the one with the highest value, or the lowest for a metric where lower
    is better (``higher_is_better(metric)``, or ``higher``); ties go to the earliest.
    Raises ConfigError for a metric or stage the runs do not record, or another ``at``.
    """
    if at not in AT:
        raise ConfigError(f"at must be {' or '.join(AT)} (got '{at}').")
    metric_stage(frame, metric, stage)
    chosen = frame[(frame["stage"] == stage) & (frame["metric"] == metric) & frame["client"].isna()]
    chosen = chosen[chosen["value"].notna()]
    if at == "final":
        index = chosen.groupby("run", sort=False)["round"].idxmax()
    else:
        values = chosen.groupby("run", sort=False)["value"]
        index = values.idxmax() if (higher_is_better(metric) if higher is None else higher) else values.idxmin()
    picked = chosen.loc[index.sort_values()]
    return picked.drop(columns=["stage", "client", "metric"]).rename(columns={"value": metric}).reset_index(drop=True)


def _t_quantile(confidence: float, dof):
    from scipy.stats import t

    return t.ppf((1 + confidence) / 2, dof)


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be between 0 and 1, such as 0.95 (got {confidence}).")


def _warn_pooling(
    values: pd.DataFrame, metric: str, keys: Sequence[str], name: str, runs: Sequence[str] | None = None
) -> None:
    """Warn once if a group of ``run_table``'s rows pools runs of different configs (only groups holding ``runs``)."""
    config = values.drop(columns=[metric])
    groups = group_runs(config, keys)
    if runs is not None:
        groups = {label: members for label, members in groups.items() if set(members) & set(runs)}
    message = pooling_message(config, groups, name, "by or filter with where")
    if message:
        warnings.warn(message, UserWarning, stacklevel=3)


def summary_table(
    frame: pd.DataFrame,
    metric: str = "accuracy",
    stage: str = "centralized",
    by: str | Sequence[str] | None = METHOD,
    at: str = "final",
    confidence: float = 0.95,
    higher: bool | None = None,
) -> pd.DataFrame:
    """Per group of runs (seeds), the final or best ``metric``: n, mean, std and a confidence interval of the mean.

    Parameters
    ----------
    frame : pandas.DataFrame
        What ``load`` returns.
    metric, stage : str
        The aggregate metric and its stage (default: centralized accuracy).
    by : str or list of str, optional
        The config keys that make a group (``"method"``, ``"strategy,strategy.proximal_mu"``,
        ``["method", "partitioner.alpha"]``); None: all runs in one group. A group whose
        runs differ in a config value other than the seed gives one warning naming it.
    at : "final" or "best"
        Each run's value at its last round, or at its best round (see ``run_table``).
    confidence : float
        Coverage of the interval (0.95).
    higher : bool, optional
        Whether higher is better for ``at="best"``; by default from the metric's name.

    Returns
    -------
    pandas.DataFrame
        Indexed by the ``by`` values; columns ``n`` (runs), ``mean``, ``std`` (sample
        standard deviation, ddof=1), ``ci_low`` and ``ci_high``: mean ± t * std / sqrt(n),
        with t the (1 + confidence) / 2 quantile of Student's t with n - 1 degrees of
        freedom (NaN for a group of one run).
    """
    _check_confidence(confidence)
    keys = split_keys(by)
    check_keys(frame, keys, "by")
    values = run_table(frame, metric, stage, at, higher)
    _warn_pooling(values, metric, keys, f"by {','.join(keys)}" if keys else "no by")
    grouped = values.groupby(keys, dropna=False, sort=True) if keys else values.assign(runs="all").groupby("runs")
    table = grouped[metric].agg(n="count", mean="mean", std="std")
    half = _t_quantile(confidence, table["n"] - 1) * table["std"] / table["n"] ** 0.5
    table["ci_low"], table["ci_high"] = table["mean"] - half, table["mean"] + half
    return table


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of two groups of runs over the seeds they share (``compare_methods``)."""

    a: str
    b: str
    metric: str
    at: str
    n: int  # pairs (seeds)
    seeds: tuple
    mean_difference: float  # mean of a - b over the seeds
    std_difference: float  # sample standard deviation of a - b (ddof=1)
    ci_low: float
    ci_high: float
    t: float  # paired t statistic, n - 1 degrees of freedom
    p_value: float  # two-sided
    confidence: float = 0.95
    pairs: pd.DataFrame = field(default=None, repr=False, compare=False)  # per seed: a, b and a - b

    def __str__(self) -> str:
        return (
            f"{self.a} - {self.b} ({self.at} {self.metric}, {self.n} paired seeds): "
            f"mean difference {self.mean_difference:+.4f}, {self.confidence:.0%} CI "
            f"[{self.ci_low:+.4f}, {self.ci_high:+.4f}], t = {self.t:.3f} ({self.n - 1} dof), p = {self.p_value:.3g}"
        )


def compare_methods(
    frame: pd.DataFrame,
    a: object,
    b: object,
    metric: str = "accuracy",
    stage: str = "centralized",
    by: str = METHOD,
    at: str = "final",
    confidence: float = 0.95,
    higher: bool | None = None,
) -> Comparison:
    """A paired comparison of ``a`` and ``b`` (values of ``by``) over the seeds both have.

    Runs are paired by ``seed``: the difference a - b of each seed's final (or best)
    ``metric``, its mean, the mean's confidence interval (Student's t, n - 1 degrees of
    freedom), the paired t statistic and its two-sided p-value. Fewer than 2 shared
    seeds, or two runs of one side with the same seed, is a ConfigError; fewer than 5
    pairs gives one warning that so few seeds have little power.
    """
    _check_confidence(confidence)
    check_keys(frame, [by], "by")
    if "seed" not in frame.columns:
        raise ConfigError("runs are paired by seed, and these runs have no seed column.")
    if values_equal(a, b):
        raise ConfigError(f"compare two different {by} values (got '{format_value(a)}' twice).")
    values = run_table(frame, metric, stage, at, higher)
    values = values[values["seed"].map(lambda seed: not is_missing(seed))]
    sides, runs = {}, []
    for name in (a, b):
        rows = values[values[by].map(lambda value, name=name: values_equal(value, name))]
        if rows.empty:
            available = _join_values(values[by])
            raise ConfigError(
                f"{by} '{format_value(name)}' has no run with a seed here; {by} is {available} in these runs."
            )
        repeated = rows["seed"][rows["seed"].duplicated()]
        if not repeated.empty:
            seed = format_value(repeated.iloc[0])
            raise ConfigError(
                f"{by} '{format_value(name)}' has several runs with seed {seed}; keep one run per seed "
                f"(filter with where, or compare by a finer key)."
            )
        sides[format_value(name)] = rows.set_index("seed")[metric]
        runs.extend(rows["run"])
    _warn_pooling(values, metric, [by], f"by {by}", runs=runs)
    a_name, b_name = format_value(a), format_value(b)
    shared = sorted(set(sides[a_name].index) & set(sides[b_name].index), key=_sort_key)
    if len(shared) < 2:
        listed = f" ({', '.join(map(format_value, shared))})" if shared else ""
        raise ConfigError(
            f"{by} '{a_name}' and '{b_name}' share {len(shared)} seed{'s' if len(shared) != 1 else ''}{listed}; "
            f"a paired comparison needs at least 2."
        )
    pairs = pd.DataFrame({a_name: sides[a_name].loc[shared], b_name: sides[b_name].loc[shared]})
    pairs.index.name = "seed"
    pairs["difference"] = pairs[a_name] - pairs[b_name]
    n = len(pairs)
    mean, std = float(pairs["difference"].mean()), float(pairs["difference"].std(ddof=1))
    error = std / math.sqrt(n)
    half = float(_t_quantile(confidence, n - 1)) * error
    if error > 0:
        from scipy.stats import t as student_t

        t_statistic = mean / error
        p_value = float(2 * student_t.sf(abs(t_statistic), n - 1))
    else:  # every pair differs by the same amount
        t_statistic = math.nan if mean == 0 else math.copysign(math.inf, mean)
        p_value = math.nan if mean == 0 else 0.0
    if n < 5:
        warnings.warn(
            f"{n} seeds give little power: with {n - 1} degrees of freedom the {confidence:.0%} CI of the "
            f"difference spans ±{half:.3g}, so a real difference smaller than that easily goes unseen; "
            f"run 5 or more seeds.",
            UserWarning,
            stacklevel=2,
        )
    return Comparison(
        a=a_name, b=b_name, metric=metric, at=at, n=n, seeds=tuple(shared), mean_difference=mean,
        std_difference=std, ci_low=mean - half, ci_high=mean + half, t=t_statistic, p_value=p_value,
        confidence=confidence, pairs=pairs,
    )
