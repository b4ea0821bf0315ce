"""MLflow: the run's config as params, its group choices as tags, each round's aggregate metrics.

MLflow is imported only when a run with this callback starts (``pip install
'fedsim[mlflow]'``): importing it costs most of a second, and runs without it must not pay.
Everything goes through an ``MlflowClient`` with the run's id, never through MLflow's
process-wide active run or tracking URI, so the runs of a sweep in one process (and any
MLflow use of the caller's own) do not step on each other.
"""

import importlib.util
import logging
import math
import os
import re
import time
import warnings
from pathlib import Path
from urllib.parse import urlparse

from fedsim.callbacks.base import Callback, History, Row, RunInfo
from fedsim.config.checks import ConfigError, require

DEFAULT_STORE = "mlflow.db"  # in the run folder, when tracking_uri is null
ARTIFACTS_FOLDER = "mlartifacts"  # the default store's artifact root, beside it
RUN_DIR_TAG = "fedsim.run_dir"  # the tag that names the run folder an MLflow run logs
# MLflow's limits (mlflow.utils.validation), used if that module ever stops naming them.
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
MAX_ENTITY_KEY_LENGTH = 250
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
TRUNCATED = "..."
# Characters MLflow accepts in param and metric names (Windows: no colon); others become "_".
INVALID_KEY_CHARACTER = re.compile(r"[^/\w.\- ]")


class MLflow(Callback):
    """Tracks the run in MLflow: one MLflow run per fedsim run.

    At the start it logs the resolved config, flattened with dotted keys
    (``strategy._target_``, ``client.lr``), as params, and the option chosen in each
    config group as tags (``strategy``, ``dataset``, ...; also ``fedsim.run_dir``). After
    every round it logs the round's aggregate metrics (``centralized_accuracy``, ...) with
    the round as step (round 0 is the initial model). The run ends ``FINISHED``, or
    ``FAILED`` when the fedsim run fails (``KILLED`` on Ctrl-C). A resumed run
    (``fedsim resume=``) goes on in the MLflow run of its folder; the rounds its first run
    logged after the checkpoint are logged again, so their metric histories hold both.

    Param values longer than MLflow allows (6000 characters) are cut and end in ``...``;
    characters MLflow refuses in a key become ``_``. NaN metric values are logged (MLflow
    keeps them, and its charts leave a gap); infinite values are left out, because
    MLflow's database stores clamp them to +-1.8e308, which would read as a real number.

    Parameters
    ----------
    tracking_uri : str | None
        Where to track, any MLflow tracking URI (``http://host:5000``,
        ``sqlite:///path/mlflow.db``, ...); null: a SQLite store ``mlflow.db`` in the
        run folder, which needs no server (view it with the full ``mlflow`` package:
        ``mlflow ui --backend-store-uri sqlite:///RUN_DIR/mlflow.db``). MLflow refuses
        plain file stores unless ``MLFLOW_ALLOW_FILE_STORE=true``.
    experiment_name : str
        The MLflow experiment, created if it does not exist.
    run_name : str | None
        The MLflow run's name; null: the run folder's name.
    """

    def __init__(self, tracking_uri: str | None, experiment_name: str, run_name: str | None) -> None:
        require(
            tracking_uri is None or bool(tracking_uri.strip()),
            "callbacks.mlflow.tracking_uri must be an MLflow tracking URI, or null for mlflow.db in the run folder "
            "(got an empty string).",
        )
        require(
            tracking_uri is None or not _is_file_store(tracking_uri),
            f"callbacks.mlflow.tracking_uri={tracking_uri} is a plain file store, which MLflow refuses: use "
            "sqlite:///PATH/mlflow.db, or null for mlflow.db in the run folder (or set MLFLOW_ALLOW_FILE_STORE=true).",
        )
        require(
            bool(experiment_name.strip()),
            "callbacks.mlflow.experiment_name must name an MLflow experiment (got an empty string).",
        )
        require(
            run_name is None or bool(run_name.strip()),
            "callbacks.mlflow.run_name must be a name, or null for the run folder's name (got an empty string).",
        )
        require(
            importlib.util.find_spec("mlflow") is not None,
            "callbacks.mlflow needs the mlflow package, which is not installed: pip install 'fedsim[mlflow]'.",
        )
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.run_name = run_name
        self._client = None
        self._run_id: str | None = None

    def on_run_start(self, run: RunInfo) -> None:
        from mlflow import MlflowClient
        from mlflow.entities import Param, RunTag

        run_dir = Path(run.run_dir).resolve()
        default_store = self.tracking_uri is None
        if default_store:
            run_dir.mkdir(parents=True, exist_ok=True)
            _quiet_store_creation()
        uri = f"sqlite:///{run_dir / DEFAULT_STORE}" if default_store else self.tracking_uri
        self._client = MlflowClient(tracking_uri=uri)
        artifacts = (run_dir / ARTIFACTS_FOLDER).as_uri() if default_store else None
        experiment_id = self._experiment_id(uri, artifacts)
        limits = _limits()
        if run.resumed_after:  # a resumed run goes on in the MLflow run of its folder, if it has one
            self._run_id = self._run_of(experiment_id, run_dir)
            if self._run_id is not None:
                self._client.update_run(self._run_id, status="RUNNING")
                return
        tags = {RUN_DIR_TAG: str(run_dir), **{group: str(option) for group, option in run.choices.items()}}
        created = self._client.create_run(experiment_id, run_name=self.run_name or run_dir.name)
        self._run_id = created.info.run_id
        params = [
            Param(_key(key), _cut(value, limits["MAX_PARAM_VAL_LENGTH"])) for key, value in flatten(run.config).items()
        ]
        tag_list = [RunTag(_key(key), _cut(value, limits["MAX_TAG_VAL_LENGTH"])) for key, value in tags.items()]
        batch = limits["MAX_PARAMS_TAGS_PER_BATCH"]
        try:
            for start in range(0, max(len(params), len(tag_list)), batch):
                self._client.log_batch(
                    self._run_id, params=params[start : start + batch], tags=tag_list[start : start + batch]
                )
        except BaseException as error:  # the run will not call on_run_end for a start that failed
            self.on_run_end(run, History(), error)
            raise

    def _run_of(self, experiment_id: str, run_dir: Path) -> str | None:
        """The id of the MLflow run that logs the fedsim run in ``run_dir``, if there is one."""
        found = self._client.search_runs([experiment_id], filter_string=f"tags.`{RUN_DIR_TAG}` = '{run_dir}'")
        return found[0].info.run_id if found else None

    def _experiment_id(self, uri: str, artifact_location: str | None) -> str:
        """The id of the experiment named ``experiment_name``, created if needed."""
        from mlflow.exceptions import MlflowException

        experiment = self._client.get_experiment_by_name(self.experiment_name)
        if experiment is None:
            try:
                return self._client.create_experiment(self.experiment_name, artifact_location=artifact_location)
            except MlflowException:  # another process of a sweep may have created it meanwhile
                experiment = self._client.get_experiment_by_name(self.experiment_name)
                if experiment is None:
                    raise
        if experiment.lifecycle_stage == "deleted":
            raise ConfigError(
                f"callbacks.mlflow.experiment_name={self.experiment_name} names a deleted experiment in {uri}; "
                "restore it or choose another name."
            )
        return experiment.experiment_id

    def on_round_end(self, server_round: int, rows: list[Row], history: History) -> None:
        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)
        metrics = [
            Metric(_key(key), float(value), timestamp, server_round)
            for key, value in history.rounds[server_round].items()
            if not math.isinf(value)
        ]
        batch = _limits()["MAX_METRICS_PER_BATCH"]
        for start in range(0, len(metrics), batch):
            self._client.log_batch(self._run_id, metrics=metrics[start : start + batch])

    def on_run_end(self, run: RunInfo, history: History, error: BaseException | None = None) -> None:
        if self._run_id is None:
            return
        status = "FINISHED" if error is None else "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
        client, run_id = self._client, self._run_id
        self._client, self._run_id = None, None
        try:
            client.set_terminated(run_id, status)
        except Exception as failure:  # pylint: disable=broad-exception-caught
            if error is None:
                raise
            # The run's own error is what matters; do not hide it behind the tracker's.
            warnings.warn(f"MLflow run {run_id} could not be marked {status}: {failure}", stacklevel=2)


def flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    """A nested config as ``{dotted.key: str(value)}``; lists stay whole (``[200, 200]``, as in ``results.load``)
    and an empty mapping is ``{}``."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


def _is_file_store(uri: str) -> bool:
    """Whether MLflow would read ``uri`` as a plain file store (a path or ``file:``), refused unless allowed."""
    if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").strip().lower() in ("1", "true"):
        return False
    scheme = urlparse(uri).scheme
    return scheme in ("", "file") or len(scheme) == 1  # one letter: a Windows drive


def _cut(value: str, limit: int) -> str:
    """``value``, or its first characters and ``...`` when longer than ``limit``."""
    return value if len(value) <= limit else value[: limit - len(TRUNCATED)] + TRUNCATED


def _key(key: str) -> str:
    """A param, tag or metric key MLflow accepts: its refused characters replaced, its length capped."""
    return INVALID_KEY_CHARACTER.sub("_", key)[:MAX_ENTITY_KEY_LENGTH]


def _limits() -> dict[str, int]:
    """MLflow's size limits, from the installed MLflow where it names them."""
    from mlflow.utils import validation

    names = ("MAX_PARAM_VAL_LENGTH", "MAX_TAG_VAL_LENGTH", "MAX_PARAMS_TAGS_PER_BATCH", "MAX_METRICS_PER_BATCH")
    return {name: int(getattr(validation, name, globals()[name])) for name in names}


def _quiet_store_creation() -> None:
    """MLflow announces each new SQLite store (a new one per run folder) at INFO; keep runs' output to fedsim's."""
    for name in ("mlflow.store.db.utils", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)
