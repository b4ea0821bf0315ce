"""Results on disk and back: fairness, bytes, failed clients, run status, loading runs and sweeps."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

from fedsim.callbacks.fairness import fairness
from fedsim.config import ConfigError
from fedsim.plan import RunPlan, build_plan
from fedsim.recording import ClientsFailed, content_bytes
from fedsim.runner import execute
from fedsim.results import (
    MetricsWriter,
    find_runs,
    final_table,
    load,
    load_runs,
    record_failure,
    save_config,
    write_status,
)
from tests.conftest import compose_config


def write_run(run_dir, accuracies: list[float], config: dict, choices: dict, status: str | None = "completed"):
    """A run folder as fedsim writes it, with centralized accuracy ``accuracies[r]`` in round r."""
    save_config(run_dir, config, choices)
    writer = MetricsWriter(run_dir)
    writer.write([(r, "centralized", None, "accuracy", value) for r, value in enumerate(accuracies)])
    writer.close()
    if status is not None:
        write_status(run_dir, status)


def test_fairness_is_the_spread_and_the_worst_tenth_of_client_accuracy():
    accuracies = [0.9, 0.5, 0.7, 0.3, 0.8, 0.6, 0.4, 0.2, 1.0, 0.1, 0.55]  # 11 clients: worst 10% is 2
    summary = fairness(accuracies)
    mean = sum(accuracies) / 11
    assert summary["accuracy_std"] == pytest.approx(math.sqrt(sum((a - mean) ** 2 for a in accuracies) / 11))
    assert summary["accuracy_worst10pct"] == pytest.approx((0.1 + 0.2) / 2)
    assert fairness([0.4])["accuracy_worst10pct"] == 0.4


def test_content_bytes_sum_the_array_data_of_every_array_record():
    content = RecordDict(
        {
            "arrays": ArrayRecord({"w": Array(np.zeros((3, 4), np.float32)), "b": Array(np.zeros(4, np.float64))}),
            "extra": ArrayRecord({"c": Array(np.zeros((2, 5), np.int8))}),
            "config": ConfigRecord({"lr": 0.1}),
        }
    )
    assert content_bytes(content) == 12 * 4 + 4 * 8 + 10 * 1


class FailingPartitions:
    """A ClientApp that raises on the given partitions and delegates the others."""

    def __init__(self, client_app, failing: set[int]) -> None:
        self.client_app = client_app
        self.failing = failing

    def __call__(self, message, context):
        if int(context.node_config["partition-id"]) in self.failing and message.metadata.message_type != "query":
            raise RuntimeError("client down")
        return self.client_app(message, context)


def failing_partitions(monkeypatch, failing: set[int]) -> None:
    """Make every plan's ClientApp raise on the ``failing`` partitions."""
    client_app = RunPlan.client_app
    monkeypatch.setattr(RunPlan, "client_app", lambda plan: FailingPartitions(client_app(plan), failing))


def test_failed_clients_are_recorded_by_partition_id(tmp_path, monkeypatch):
    failing_partitions(monkeypatch, {1, 3})
    execute(build_plan(compose_config("num_clients=4", "num_rounds=1")), tmp_path, quiet=True)
    frame = load(tmp_path)
    failed = frame[frame["metric"] == "failed"]
    assert sorted(failed[failed["stage"] == "train"]["client"]) == [1, 3]
    assert sorted(failed[failed["stage"] == "federated"]["client"]) == [1, 3]
    system = frame[frame["stage"] == "system"].set_index("metric")["value"]
    assert system["train_clients"] == 4 and system["train_failures"] == 2
    trained = frame[(frame["stage"] == "train") & (frame["metric"] == "loss") & frame["client"].notna()]
    assert sorted(trained["client"]) == [0, 2]


def test_a_run_whose_clients_all_fail_is_recorded_as_failed(tmp_path, monkeypatch):
    import fedsim.runner

    cfg = compose_config("num_clients=3", "num_rounds=1", "faults.all_failed=stop")
    failing_partitions(monkeypatch, {0, 1, 2})
    with pytest.raises(ClientsFailed):
        fedsim.runner.run(cfg, tmp_path, quiet=True)
    status = yaml.safe_load((tmp_path / "status.yaml").read_text())
    assert status["status"] == "failed"
    assert status["reason"].startswith("ClientsFailed: every client failed in round 1 (train)")
    assert "RuntimeError: client down" in status["reason"]
    assert "Traceback" in (tmp_path / "traceback.txt").read_text()
    assert sorted(load_runs(tmp_path)["status"]) == ["failed"]


@pytest.fixture
def sweep(tmp_path):
    """A sweep folder: two strategies x two seeds, and one job that failed on bad input."""
    accuracies = {
        ("fedavg", 0): [0.1, 0.5],
        ("fedavg", 1): [0.1, 0.7],
        ("fedadam", 0): [0.1, 0.8],
        ("fedadam", 1): [0.1, 0.6],
    }
    for number, ((strategy, seed), values) in enumerate(accuracies.items()):
        config = {"seed": seed, "partitioner": {"alpha": 0.5}, "model": {"hidden_sizes": [200, 200]}}
        write_run(tmp_path / str(number), values, config, {"strategy": strategy})
    record_failure(tmp_path / "4", ConfigError("partitioner.alpha must be greater than 0 (got 0.0)."))
    return tmp_path


def test_load_of_a_sweep_returns_every_completed_run_with_its_config(sweep):
    with pytest.warns(UserWarning, match=r"left out 1 failed run\(s\): .*4 \(partitioner.alpha must be"):
        frame = load(sweep)
    assert frame["run"].nunique() == 4
    assert (frame["status"] == "completed").all()
    assert (frame["partitioner.alpha"] == 0.5).all()
    assert frame["model.hidden_sizes"].iloc[0] == "[200, 200]"
    final = final_table(frame)
    means = final.groupby("strategy")["accuracy"].mean()
    assert means["fedavg"] == pytest.approx(0.6) and means["fedadam"] == pytest.approx(0.7)
    assert sorted(final["seed"]) == [0, 0, 1, 1]


def test_load_takes_a_list_of_runs_and_sweeps(sweep):
    frame = load([sweep / "0", sweep / "3"])
    assert list(frame.drop_duplicates("run")["strategy"]) == ["fedavg", "fedadam"]
    assert list(frame["value"]) == [0.1, 0.5, 0.1, 0.6]


def test_load_runs_lists_failed_runs_with_the_reason(sweep):
    runs = load_runs(sweep)
    assert list(runs["status"]) == ["completed"] * 4 + ["failed"]
    assert runs["reason"].iloc[4] == "partitioner.alpha must be greater than 0 (got 0.0)."


def test_runs_are_found_in_job_order(tmp_path):
    for number in (0, 2, 10, 1):
        write_run(tmp_path / str(number), [0.5], {"seed": number}, {})
    assert [path.name for path in find_runs(tmp_path)] == ["0", "1", "2", "10"]


def test_a_run_without_a_status_file_counts_as_completed(tmp_path):
    write_run(tmp_path, [0.2, 0.4], {"seed": 0}, {"strategy": "fedavg"}, status=None)
    frame = load(tmp_path)
    assert list(frame["status"].unique()) == ["completed"]
    assert list(frame["value"]) == [0.2, 0.4]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: root / "missing", "no run or sweep folder at '.*missing'"),
        (lambda root: root, "no fedsim run in '.*': no folder below it holds metrics.csv or status.yaml"),
    ],
    ids=["missing path", "empty folder"],
)
def test_a_path_with_no_runs_gives_one_sentence(tmp_path, make, message):
    with pytest.raises(ConfigError, match=message):
        load(make(tmp_path))


def test_a_sweep_whose_runs_all_failed_says_so(tmp_path):
    record_failure(tmp_path / "0", RuntimeError("boom"))
    with (
        pytest.warns(UserWarning),
        pytest.raises(ConfigError, match="no completed fedsim run in .*every run there failed"),
    ):
        load(tmp_path)


def test_a_run_line_shows_final_metrics_or_the_reason_it_failed(tmp_path):
    from io import StringIO

    from rich.console import Console

    from fedsim.terminal import print_run_line

    out = StringIO()
    console = Console(file=out, width=300)
    final = {"centralized_accuracy": 0.91234, "train_loss": 0.5, "system_round_seconds": 0.1}
    print_run_line("#0 model.hidden_sizes=[64]", tmp_path, final, seconds=2.04, console=console)
    print_run_line(
        "#1 seed=1", tmp_path, failure="partitioner.alpha must be greater than 0 (got 0.0).", console=console
    )
    assert out.getvalue().splitlines() == [
        f"#0 model.hidden_sizes=[64]  test acc 0.9123  train loss 0.5000  2.0 s  {tmp_path}",
        f"#1 seed=1  failed: partitioner.alpha must be greater than 0 (got 0.0).  {tmp_path}",
    ]


def test_the_metrics_file_is_plain_csv(sweep):
    table = pd.read_csv(sweep / "0" / "metrics.csv")
    assert list(table.columns) == ["round", "stage", "client", "metric", "value"]
    assert yaml.safe_load((sweep / "0" / "status.yaml").read_text()) == {"status": "completed"}


FIXTURES = Path(__file__).parent / "fixtures"


def test_runs_written_before_the_run_plan_load_under_todays_column_names(tmp_path):
    from fedsim.compose import compose
    from fedsim.runner import run

    cfg, choices = compose(
        "num_clients=4", "num_rounds=1", "client.local_epochs=1", "privacy=central_dp", "strategy.weighting=uniform"
    )
    run(cfg, tmp_path / "new", choices, quiet=True)
    old_private, old_tensorboard = FIXTURES / "run_before_plan_central_client", FIXTURES / "run_before_plan_tensorboard"
    frame = load([old_private, old_tensorboard, tmp_path / "new"])
    assert "privacy.mechanism" not in frame.columns and "logger" not in frame.columns
    by_run = frame.groupby("run").first()
    assert by_run.loc[str(old_private), "privacy"] == "central_dp"
    assert by_run.loc[str(tmp_path / "new"), "privacy"] == "central_dp"
    assert by_run.loc[str(old_private), "callbacks"] == "progress,metrics_csv,fairness"
    assert by_run.loc[str(tmp_path / "new"), "callbacks"] == "progress,metrics_csv,fairness"
    assert by_run.loc[str(old_tensorboard), "callbacks"] == "progress,metrics_csv,fairness,tensorboard"
    assert by_run.loc[str(old_tensorboard), "callbacks.tensorboard.log_dir"] == "tensorboard"
    # clients trained with plain SGD at a constant rate before the optimizer and lr_schedule groups
    for column in ("optimizer", "optimizer.momentum", "optimizer.weight_decay", "optimizer.keep_state", "lr_schedule"):
        assert by_run.loc[str(old_private), column] == by_run.loc[str(tmp_path / "new"), column], column
    # and FedAvg weighted its clients by their examples before strategy.weighting (central DP now needs uniform)
    assert by_run.loc[str(old_private), "strategy.weighting"] == "examples"
    assert by_run.loc[str(old_tensorboard), "strategy.weighting"] == "examples"
    assert by_run.loc[str(tmp_path / "new"), "strategy.weighting"] == "uniform"
    final = final_table(frame)
    assert len(final) == 3 and final["accuracy"].between(0, 1).all()
    assert list(final.sort_values("run")["round"]) == [1, 1, 1]


def test_every_run_has_a_method_label_its_config_method_or_else_its_strategy(tmp_path):
    write_run(tmp_path / "0", [0.5], {"seed": 0, "method": "fedprox_mu0.1", "strategy": {"proximal_mu": 0.1}},
              {"strategy": "fedprox", "method": "fedprox_mu0.1"})
    write_run(tmp_path / "1", [0.5], {"seed": 0, "method": None}, {"strategy": "fedadam"})
    write_run(tmp_path / "2", [0.5], {"seed": 0, "method": "  "}, {"strategy": "scaffold"})
    write_run(tmp_path / "3", [0.5], {"seed": 0}, {"strategy": "fedavg"})  # written before methods existed
    write_run(tmp_path / "4", [0.5], {"seed": 0}, {})  # neither: no label
    record_failure(tmp_path / "5", ConfigError("bad."))
    save_config(tmp_path / "5", {"seed": 0, "method": None}, {"strategy": "fedyogi"})
    with pytest.warns(UserWarning, match="left out 1 failed run"):
        frame = load(tmp_path)
    assert list(frame.columns[:8]) == ["round", "stage", "client", "metric", "value", "run", "status", "method"]
    assert list(frame["method"][:4]) == ["fedprox_mu0.1", "fedadam", "scaffold", "fedavg"]
    assert frame["method"].isna().tolist() == [False] * 4 + [True]
    runs = load_runs(tmp_path)
    assert list(runs["method"][:4]) == ["fedprox_mu0.1", "fedadam", "scaffold", "fedavg"]
    assert runs["method"].iloc[5] == "fedyogi" and runs["status"].iloc[5] == "failed"
    assert list(load([FIXTURES / "run_before_plan_tensorboard"])["method"].unique()) == ["fedavg"]


@pytest.fixture
def grid(tmp_path):
    """Runs over alpha (0.1, 0.5, 1 as 1.0), strategy and seed, one failed, one with a list and a flag."""
    number = 0
    for alpha in (0.1, 0.5, 1.0):
        for strategy in ("fedavg", "fedprox"):
            for seed in (0, 1):
                config = {"seed": seed, "partitioner": {"alpha": alpha}, "drop_stragglers": seed == 1,
                          "model": {"hidden_sizes": [64] if seed else [200, 200]}, "quiet": None}
                write_run(tmp_path / str(number), [0.1, alpha], config, {"strategy": strategy})
                number += 1
    record_failure(tmp_path / str(number), RuntimeError("boom"))
    save_config(tmp_path / str(number), {"seed": 9, "partitioner": {"alpha": 0.1}}, {"strategy": "fedavg"})
    return tmp_path


def per_run(frame):
    return frame.drop_duplicates("run")[["strategy", "partitioner.alpha", "seed"]].to_records(index=False).tolist()


@pytest.mark.parametrize(
    "where",
    [
        {"partitioner.alpha": 1, "strategy": "fedprox"},
        {"partitioner.alpha": "1", "strategy": "fedprox"},
        ["partitioner.alpha=1.0", "strategy=fedprox"],
        ("partitioner.alpha=1", "strategy=fedprox"),
    ],
    ids=["numbers", "number as text", "strings", "tuple"],
)
def test_where_keeps_the_runs_whose_config_equals_every_value(grid, where):
    frame = load(grid, where=where)
    assert per_run(frame) == [("fedprox", 1.0, 0), ("fedprox", 1.0, 1)]
    assert list(load_runs(grid, where=where)["seed"]) == [0, 1]


def test_where_compares_lists_flags_and_nulls_as_the_config_states_them(grid):
    assert per_run(load(grid, where=["model.hidden_sizes=[64]", "partitioner.alpha=0.1"])) == [
        ("fedavg", 0.1, 1), ("fedprox", 0.1, 1)
    ]
    assert per_run(load(grid, where={"drop_stragglers": False, "partitioner.alpha": 0.5, "strategy": "fedavg"})) == [
        ("fedavg", 0.5, 0)
    ]
    with pytest.warns(UserWarning, match="left out 1 failed run"):  # it has no quiet key: null matches it too
        assert load(grid, where=["quiet=null"])["run"].nunique() == 12
    assert load(grid, where={"seed": 1.0})["run"].nunique() == 6


def test_where_warns_only_about_failed_runs_it_selects(grid, recwarn):
    load(grid, where={"partitioner.alpha": 0.5})
    assert not recwarn.list
    with pytest.warns(UserWarning, match=r"left out 1 failed run\(s\)"):
        load(grid, where={"partitioner.alpha": 0.1})


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({"alpha": 0.1}, "where key 'alpha' is not a config key of these runs; some available keys: "
                         "method, strategy, seed, partitioner.alpha, drop_stragglers, model.hidden_sizes, quiet."),
        (["partitioner.alpha=0.3", "strategy=fedavg"],
         "no run in '{grid}' has partitioner.alpha=0.3 and strategy=fedavg "
         "(partitioner.alpha is 0.1, 0.5 or 1 there; strategy is fedavg or fedprox there)."),
        (["strategy"], "a where filter is KEY=VALUE, such as partitioner.alpha=0.1 (got 'strategy')."),
    ],
    ids=["unknown key", "no run left", "not key=value"],
)
def test_a_bad_where_is_one_sentence(grid, where, message):
    with pytest.raises(ConfigError) as error:
        load(grid, where=where)
    assert str(error.value) == message.format(grid=grid)
