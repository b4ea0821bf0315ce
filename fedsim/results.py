"""Run folders: written as each round finishes, found, and loaded back into pandas.

A run folder holds ``config.yaml`` (the resolved config), ``choices.yaml`` (the option
picked in each config group), ``status.yaml`` (running with its pid, host and
heartbeat; completed; failed with the reason; interrupted with the last round) and ``metrics.csv``, a tidy long table with one row per (round, stage, client,
metric). Stages: ``centralized`` (the server's held-out test split), ``federated``
(client-side evaluation), ``train`` (local training) and ``system`` (wall time, clients,
failures, bytes). ``client`` is the partition id, or empty for the aggregate over
clients. A sweep folder holds one run folder per job and ``sweep.yaml``, the sweep's
overrides.

``load`` and ``load_runs`` read runs back (filtered with ``where``, older runs under
today's column names), labelling each with a ``method``; ``round_table`` and
``final_table`` reshape what ``load`` returns, one row per round or per run.

Statistics over seeds live in ``fedsim.statistics`` (``run_table``, ``summary_table``,
``compare_methods``, ``Comparison``), grouping runs by config keys in ``fedsim.grouping``
and comparing and formatting config values in ``fedsim.config_values``. The statistics
are still importable from here: ``fedsim.results.summary_table`` is
``fedsim.statistics.summary_table``.
"""

import csv
import io
import os
import re
import socket
import traceback
import warnings
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import yaml

from fedsim.config.checks import ConfigError, FedsimWarning
from fedsim.config_values import KEYS_LISTED, format_value, join_values, values_equal

METRICS_FILE = "metrics.csv"
CONFIG_FILE = "config.yaml"
CHOICES_FILE = "choices.yaml"
STATUS_FILE = "status.yaml"
SWEEP_FILE = "sweep.yaml"
TRACEBACK_FILE = "traceback.txt"
COLUMNS = ["round", "stage", "client", "metric", "value"]
RUN_MARKERS = (METRICS_FILE, STATUS_FILE)


class MetricsWriter:
    """Appends rows to a run's ``metrics.csv`` and flushes after every round.

    A new file starts with its header; ``append`` (a resumed run) goes on after the
    rows already there.
    """

    def __init__(self, run_dir: Path, append: bool = False) -> None:
        self.path = Path(run_dir) / METRICS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        append = append and self.path.is_file() and self.path.stat().st_size > 0
        self._file = self.path.open("a" if append else "w", newline="")
        self._writer = csv.writer(self._file)
        if not append:
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
    """Record a run's state (``running``, ``completed``, ``failed`` or ``interrupted``) and details such as ``reason``.

    The file is replaced in one step (a temporary file, then ``os.replace``), so a
    reader never sees half of it.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    temporary = run_dir / f".{STATUS_FILE}.{os.getpid()}.tmp"
    temporary.write_text(yaml.safe_dump({"status": status, **details}, sort_keys=False))
    os.replace(temporary, run_dir / STATUS_FILE)


def running_details(**details: object) -> dict[str, object]:
    """What ``status: running`` records besides: this process's ``pid``, ``host`` and a ``heartbeat`` (ISO time, UTC)."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "heartbeat": now_iso(), **details}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def record_failure(run_dir: str | Path, error: Exception, seconds: float | None = None) -> None:
    """Mark a run failed with the error's one-line reason; keep the traceback of anything but bad input."""
    run_dir = Path(run_dir)
    reason = str(error) if isinstance(error, ConfigError) else f"{type(error).__name__}: {error}"
    details = {"reason": reason} if seconds is None else {"reason": reason, "seconds": round(seconds, 3)}
    write_status(run_dir, "failed", **details)
    if not isinstance(error, ConfigError):
        (run_dir / TRACEBACK_FILE).write_text("".join(traceback.format_exception(error)))


def read_status(run_dir: Path) -> dict[str, object]:
    """A run's ``status.yaml``; a run from before status files existed counts as completed.

    A run still marked ``running`` whose process is gone is reported ``interrupted``
    (with a ``reason``): on this host, when its ``pid`` no longer exists; on another
    host, when its ``heartbeat`` is older than ``STALE_HEARTBEAT`` seconds.
    """
    path = Path(run_dir) / STATUS_FILE
    if not path.is_file():
        return {"status": "completed"}
    status = yaml.safe_load(path.read_text()) or {"status": "completed"}
    if status.get("status") == "running":
        reason = _why_not_running(status)
        if reason:
            status = {**status, "status": "interrupted", "reason": reason}
    return status


STALE_HEARTBEAT = 600.0  # seconds without a heartbeat after which a run on another host counts as gone


def _why_not_running(status: dict[str, object]) -> str | None:
    """Why a run marked running is not running any more, or None when it may still be."""
    pid, host = status.get("pid"), status.get("host")
    if isinstance(pid, int) and host == socket.gethostname():
        if not _process_exists(pid):
            return f"its process {pid} ended without recording the end of the run"
        return None
    heartbeat = status.get("heartbeat")
    if heartbeat is None:
        return None
    try:
        beat = datetime.fromisoformat(str(heartbeat))
    except ValueError:
        return None
    if beat.tzinfo is None:
        beat = beat.replace(tzinfo=UTC)
    age = (datetime.now(UTC) - beat).total_seconds()
    if age > STALE_HEARTBEAT:
        return f"no heartbeat from host {host} since {heartbeat}"
    return None


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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

Where = Mapping[str, object] | Sequence[str] | None


def load(paths: str | Path | Sequence[str | Path], where: Where = None, incomplete: bool = False) -> pd.DataFrame:
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
    incomplete : bool
        Also keep the rounds recorded by runs that did not complete (interrupted,
        still running, or failed after some rounds); their ``status`` column says so.

    Returns
    -------
    pandas.DataFrame
        Columns: round, stage, client (nullable Int64), metric, value, ``run`` (the run
        folder), ``status``, ``method`` (the config's ``method`` when it is a non-empty
        string, else the strategy chosen), then one column per config group holding the
        chosen option (``strategy``, ``dataset``, ...) and one per config value
        (``seed``, ``partitioner.alpha``, ``client.lr``, ...). Runs that did not
        complete (failed, interrupted, running) are left out with one warning naming
        them, unless ``incomplete``; a run without metrics is always left out.
        ``load_runs`` lists every run with its status.
    """
    runs = []
    for run_dir in find_runs(paths):
        status = read_status(run_dir)
        runs.append((run_dir, status, {"run": str(run_dir), "status": status["status"], **run_columns(run_dir)}))
    runs = select_runs(runs, parse_where(where), paths, columns_of=lambda run: run[2])
    frames, failed, unfinished = [], [], []
    for run_dir, status, columns in runs:
        has_metrics = (run_dir / METRICS_FILE).is_file()
        if status["status"] == "failed" and not (incomplete and has_metrics) or not has_metrics:
            failed.append(f"{run_dir} ({status.get('reason', 'no metrics')})")
            continue
        if status["status"] not in ("completed", "failed") and not incomplete:
            last = status.get("last_round")
            unfinished.append(f"{run_dir} ({status['status']}" + ("" if last is None else f" after round {last}") + ")")
            continue
        frames.append(_load_run(run_dir, columns))
    if failed or unfinished:
        parts = [f"{len(failed)} failed run(s): {'; '.join(failed)}"] if failed else []
        if unfinished:
            parts.append(f"{len(unfinished)} unfinished run(s): {'; '.join(unfinished)}")
        hint = "" if incomplete else " (load(..., incomplete=True) keeps the rounds of runs that did not complete)"
        warnings.warn(f"left out {' and '.join(parts)}{hint}", stacklevel=2)
    if not frames:
        raise ConfigError(f"no completed fedsim run in {_describe(paths)}: every run there failed or did not finish.")
    return pd.concat(frames, ignore_index=True)


def _describe(paths: str | Path | Sequence[str | Path]) -> str:
    return f"'{paths}'" if isinstance(paths, (str, Path)) else ", ".join(f"'{path}'" for path in paths)


def _load_run(run_dir: Path, columns: dict[str, object]) -> pd.DataFrame:
    frame = read_metrics(run_dir / METRICS_FILE)
    config = pd.DataFrame({key: [value] * len(frame) for key, value in columns.items()}, index=frame.index)
    return pd.concat([frame, config], axis=1)


DAMAGED = "the file is damaged"


def read_metrics(path: str | Path) -> pd.DataFrame:
    """A ``metrics.csv`` as a DataFrame of ``COLUMNS`` (client: nullable Int64), every row checked.

    A last line without its line end, which a run stopped while writing it leaves, is
    left out with a ``FedsimWarning`` naming the file and the line. Any other line that
    is not a row fedsim writes (another number of fields, a round, client or value that
    is not a number, bytes that are not text) is a ``ConfigError`` naming the file and
    the line.
    """
    path = Path(path)
    text = _complete_lines(path)
    try:  # pandas' own parsing first (a sweep's files hold many rows), checked by the column types it gives
        frame = pd.read_csv(
            io.StringIO(text),
            dtype={"stage": "string", "metric": "string"},
            keep_default_na=False,
            na_values={"client": [""], "value": ["nan"]},
        )
    except pd.errors.EmptyDataError:  # not even a header
        frame = pd.DataFrame(columns=COLUMNS)
    except pd.errors.ParserError:  # a line with too many fields
        frame = None
    if frame is None or not _well_typed(frame):
        return _read_damaged(path, text)  # line by line, to name the line
    return frame.astype({"round": "int64", "stage": "string", "client": "Int64", "metric": "string", "value": "float64"})


def _well_typed(frame: pd.DataFrame) -> bool:
    """Whether pandas read every field of metrics.csv as a row fedsim writes holds it."""
    if list(frame.columns) != COLUMNS:
        return False
    if frame.empty:
        return True
    numeric = all(pd.api.types.is_numeric_dtype(frame[field]) for field in ("round", "client", "value"))
    return (
        numeric
        and pd.api.types.is_integer_dtype(frame["round"])
        and bool((frame["client"].dropna() % 1 == 0).all())
        and not (frame["stage"].isna() | (frame["stage"] == "") | frame["metric"].isna() | (frame["metric"] == "")).any()
    )


def _complete_lines(path: Path) -> str:
    """The text of ``path`` up to its last line end (a line cut short is left out with a warning)."""
    data = path.read_bytes()
    if data and not data.endswith((b"\n", b"\r")):
        complete = data.rfind(b"\n") + 1
        line = data.count(b"\n", 0, complete) + 1
        warnings.warn(
            f"{path} line {line} is cut short (the run was stopped while writing it); read without it.",
            FedsimWarning,
            stacklevel=3,
        )
        data = data[:complete]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ConfigError(f"{path} line {line} is not UTF-8 text; {DAMAGED}.") from None


def _read_damaged(path: Path, text: str) -> pd.DataFrame:
    """Read ``text`` row by row with the csv module; ConfigError names the first line that is not a row fedsim writes."""
    reader = csv.reader(io.StringIO(text, newline=""))
    records, lines = [], []
    try:
        header = next(reader, COLUMNS)
        if header != COLUMNS:
            raise ConfigError(
                f"{path} line 1 is '{','.join(header)}', not the header {','.join(COLUMNS)}: "
                "it is not a metrics file fedsim wrote."
            )
        for row in filter(None, reader):  # blank lines are nothing
            if len(row) != len(COLUMNS):
                raise ConfigError(
                    f"{path} line {reader.line_num} has {len(row)} fields where a row has {len(COLUMNS)} "
                    f"({','.join(COLUMNS)}); {DAMAGED}."
                )
            records.append(row)
            lines.append(reader.line_num)
    except csv.Error as error:
        raise ConfigError(f"{path} line {reader.line_num}: {error}; {DAMAGED}.") from None
    raw = pd.DataFrame(records, columns=COLUMNS, dtype=object)
    wrong = _first_wrong_field(raw)
    if wrong is not None:
        row, field, what = wrong
        raise ConfigError(f"{path} line {lines[row]}: {field} '{raw.at[row, field]}' {what}; {DAMAGED}.")
    return _typed(raw)


def _first_wrong_field(raw: pd.DataFrame) -> tuple[int, str, str] | None:
    """The first (row, field, what is wrong with it) among metrics.csv's rows as text, or None."""
    rounds, clients, values = (pd.to_numeric(raw[field], errors="coerce") for field in ("round", "client", "value"))
    problems = {  # field: the rows where it is wrong, and how
        "round": (rounds.isna() | (rounds % 1 != 0), "is not a whole number"),
        "stage": (raw["stage"] == "", "is empty"),
        "client": (clients.isna() & (raw["client"] != "") | (clients % 1 > 0), "is neither empty nor a whole number"),
        "metric": (raw["metric"] == "", "is empty"),
        "value": (values.isna() & (raw["value"].str.strip().str.lower() != "nan"), "is not a number"),
    }
    wrong = [(int(bad.to_numpy().argmax()), field, what) for field, (bad, what) in problems.items() if bad.any()]
    return min(wrong, default=None)


def _typed(raw: pd.DataFrame) -> pd.DataFrame:
    """metrics.csv's checked rows, as text, in their types."""
    return pd.DataFrame(
        {
            "round": pd.to_numeric(raw["round"]).astype("int64"),
            "stage": raw["stage"].astype("string"),
            "client": pd.to_numeric(raw["client"]).astype("Int64"),
            "metric": raw["metric"].astype("string"),
            "value": pd.to_numeric(raw["value"], errors="coerce").astype("float64"),
        }
    )


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
    present = "; ".join(f"{key} is {join_values(row.get(key) for row in rows)} there" for key in where)
    raise ConfigError(f"no run{place} has {wanted} ({present}).")


def config_keys(frame: pd.DataFrame) -> list[str]:
    """The config columns of ``frame`` (runs or their rows): those that differ between runs first, then the rest."""
    keys = [column for column in frame.columns if column not in RUN_COLUMNS]
    per_run = frame.drop_duplicates("run")[keys] if "run" in frame else frame[keys]
    varying = [key for key in keys if per_run[key].astype(str).nunique() > 1]
    return varying + [key for key in keys if key not in varying]


# The round observers every run had before they became the ``callbacks`` config group.
FORMER_CALLBACKS = "progress,metrics_csv,fairness"
# How clients trained before the ``optimizer`` and ``lr_schedule`` groups: plain SGD at client.lr in every round.
FORMER_OPTIMIZER = {
    "optimizer": "sgd", "optimizer._target_": "fedsim.optimizers.SGD", "optimizer.momentum": 0.0,
    "optimizer.dampening": 0.0, "optimizer.nesterov": False, "optimizer.weight_decay": 0.0,
    "optimizer.keep_state": False, "lr_schedule": "constant", "lr_schedule._target_": "fedsim.lr_schedules.Constant",
}

# How each strategy averaged its clients' models before ``strategy.weighting`` (by _target_; the others weight none).
FORMER_WEIGHTING = {
    target: "examples"
    for target in (
        "flwr.serverapp.strategy.FedAvg", "strategies.fedprox.FedProx", "strategies.fedopt.FedAvgM",
        "strategies.fedopt.FedAdagrad", "strategies.fedopt.FedAdam", "strategies.fedopt.FedYogi",
        "strategies.scaffold.Scaffold", "strategies.fednova.FedNova", "strategies.fedbn.FedBN",
        "strategies.ditto.Ditto", "strategies.robust.MultiKrum",
    )
} | {"strategies.feddyn.FedDyn": "uniform", "strategies.qfedavg.QFedAvg": "uniform"}


def upgrade_columns(columns: dict[str, object]) -> dict[str, object]:
    """The columns of a run written by an earlier fedsim, under today's names.

    ``privacy.mechanism`` named the privacy option (today the ``privacy`` column and
    ``privacy._target_``); the ``logger`` group became a callback next to the observers
    every run had; ``strategy.num_clients`` is no longer a setting (it is ``num_clients``);
    a run from before the ``optimizer`` group trained with plain SGD at a constant rate;
    one from before ``strategy.weighting`` averaged as its strategy's default does today
    (unless it weighted by another key, ``strategy.weighted_by_key``).
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
    if "client.lr" in columns and "optimizer._target_" not in columns:
        columns = FORMER_OPTIMIZER | columns
    former = FORMER_WEIGHTING.get(str(columns.get("strategy._target_")))
    if former is not None and "strategy.weighted_by_key" not in columns:
        columns.setdefault("strategy.weighting", former)
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

