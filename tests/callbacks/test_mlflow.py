"""The MLflow tracker: a fedsim run read back with MLflow's own client."""

import math
import subprocess
import sys

from pathlib import Path

import pytest
from mlflow import MlflowClient  # the dev extra installs it (mlflow-skinny)

import fedsim.plan
import fedsim.runner
from fedsim.callbacks.base import History, RunInfo
from fedsim.callbacks.mlflow import MLflow
from fedsim.config import ConfigError
from fedsim.recording import ClientsFailed
from fedsim.results import load, round_table
from tests.conftest import compose_config

# MLflow's SQL store on SQLAlchemy 2.1 (its own code, nothing fedsim calls).
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")
REPO = Path(__file__).resolve().parents[2]


def only_run(tracking_uri: str, experiment: str = "fedsim"):
    """The one MLflow run of ``experiment`` in the store at ``tracking_uri``."""
    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r} in {tracking_uri}"
    runs = client.search_runs([found.experiment_id])
    assert len(runs) == 1
    return client, runs[0]


def test_a_run_is_tracked_in_mlflow_with_its_config_choices_and_every_aggregate_metric(tmp_path):
    cfg = compose_config("num_clients=4", "+callbacks=mlflow")
    run_dir = tmp_path / "run"
    fedsim.runner.run(cfg, run_dir, {"strategy": "fedavg", "model": "mlp"}, quiet=True)

    client, run = only_run(f"sqlite:///{run_dir / 'mlflow.db'}")
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "run"  # the run folder's name
    params = run.data.params
    assert params["strategy._target_"] == "strategies.fedavg.FedAvg"
    assert params["seed"] == "0" and params["num_clients"] == "4" and params["client.lr"] == "0.05"
    assert params["model.hidden_sizes"] == "[200, 200]"
    assert params["callbacks.mlflow.experiment_name"] == "fedsim"
    assert run.data.tags["strategy"] == "fedavg" and run.data.tags["model"] == "mlp"
    assert run.data.tags["fedsim.run_dir"] == str(run_dir.resolve())

    table = round_table(load(run_dir))
    assert list(table.index) == [0, 1, 2]
    assert set(run.data.metrics) == set(table.columns)
    for key in table.columns:
        expected = table[key].dropna()
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == list(expected.index), key
        assert [m.value for m in history] == pytest.approx(list(expected), rel=1e-12, abs=0), key


class FailingClients:
    """A ClientApp whose clients all fail to train."""

    def __init__(self, client_app) -> None:
        self.client_app = client_app

    def __call__(self, message, context):
        if message.metadata.message_type == "train":
            raise RuntimeError("client down")
        return self.client_app(message, context)


def test_a_failed_run_ends_its_mlflow_run_failed(tmp_path, monkeypatch):
    client_app = fedsim.plan.RunPlan.client_app
    monkeypatch.setattr(fedsim.plan.RunPlan, "client_app", lambda plan: FailingClients(client_app(plan)))
    cfg = compose_config("num_clients=3", "num_rounds=1", "faults.all_failed=stop", "+callbacks=mlflow")
    with pytest.raises(ClientsFailed):
        fedsim.runner.run(cfg, tmp_path, quiet=True)
    client, run = only_run(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert run.info.status == "FAILED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "centralized_accuracy")] == [0]


def test_the_hooks_share_an_experiment_cut_long_params_keep_nan_and_leave_out_infinities(tmp_path):
    uri = f"sqlite:///{tmp_path / 'shared.db'}"
    long_value = "x" * 10_000
    config = {"seed": 1, "dataset": {"hf_path": long_value, "empty": {}}, "model": {"hidden_sizes": [3, 4]}}
    for number, error in enumerate([None, RuntimeError("boom"), KeyboardInterrupt()]):
        tracker = MLflow(tracking_uri=uri, experiment_name="shared", run_name=f"run{number}")
        info = RunInfo(run_dir=tmp_path / f"r{number}", num_rounds=1, config=config, choices={"strategy": "fedavg"})
        tracker.on_run_start(info)
        history = History()
        history.add(1, [(1, "centralized", None, "loss", math.nan), (1, "centralized", None, "accuracy", 0.5),
                        (1, "train", None, "loss", math.inf), (1, "train", 3, "loss", 2.0)])
        tracker.on_round_end(1, [], history)
        tracker.on_run_end(info, history, error)

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("shared")
    runs = {run.info.run_name: run for run in client.search_runs([experiment.experiment_id])}
    assert {name: run.info.status for name, run in runs.items()} == {
        "run0": "FINISHED", "run1": "FAILED", "run2": "KILLED"
    }
    run = runs["run0"]
    params = run.data.params
    assert params["seed"] == "1" and params["model.hidden_sizes"] == "[3, 4]" and params["dataset.empty"] == "{}"
    assert len(params["dataset.hf_path"]) == 6000 and params["dataset.hf_path"] == "x" * 5997 + "..."
    assert set(run.data.metrics) == {"centralized_loss", "centralized_accuracy"}  # no inf, no client rows
    assert math.isnan(client.get_metric_history(run.info.run_id, "centralized_loss")[0].value)
    assert client.get_metric_history(run.info.run_id, "centralized_accuracy")[0].step == 1


def test_hooks_after_no_start_do_nothing(tmp_path):
    tracker = MLflow(tracking_uri=None, experiment_name="fedsim", run_name=None)
    tracker.on_run_end(RunInfo(run_dir=tmp_path, num_rounds=1), History(), RuntimeError("failed before"))
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("callbacks.mlflow.experiment_name=''", r"callbacks\.mlflow\.experiment_name must name an MLflow experiment"),
        ("callbacks.mlflow.tracking_uri=' '", r"callbacks\.mlflow\.tracking_uri must be an MLflow tracking URI"),
        ("callbacks.mlflow.run_name=''", r"callbacks\.mlflow\.run_name must be a name"),
        ("callbacks.mlflow.tracking_uri=mlruns", r"callbacks\.mlflow\.tracking_uri=mlruns is a plain file store"),
        ("callbacks.mlflow.tracking_uri='file:///tmp/mlruns'", r"callbacks\.mlflow\.tracking_uri=file:///tmp/mlruns is a plain"),
        ("callbacks.mlflow.run_name=3", r"callbacks\.mlflow\.run_name must be a string or null \(got 3\)\."),
        ("+callbacks.mlflow.tracking_url=x", r"callbacks\.mlflow\.tracking_url is not a setting of"),
    ],
)
def test_a_bad_setting_is_one_sentence(tmp_path, monkeypatch, override, message):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    cfg = compose_config("num_clients=3", "num_rounds=1", "+callbacks=mlflow", override)
    with pytest.raises(ConfigError, match=f"^{message}") as caught:
        fedsim.runner.run(cfg, tmp_path, quiet=True)
    assert str(caught.value).count(". ") == 0 and str(caught.value).endswith(".")
    assert not (tmp_path / "mlflow.db").exists()


CHECK = """
import sys
from tests.conftest import compose_config
from fedsim.plan import check_options
import fedsim.cli, fedsim.runner, fedsim.callbacks
check_options(compose_config("+callbacks=mlflow"))  # imports the callback's module
print("mlflow" in sys.modules)
"""


def test_mlflow_is_imported_only_when_a_tracked_run_starts():
    done = subprocess.run([sys.executable, "-c", CHECK], cwd=REPO, capture_output=True, text=True, check=True)
    output = done.stdout
    assert output.split() == ["False"]
