"""End-to-end runs: results on disk, reproducibility, and the same numbers on every engine."""

import math
import random

import numpy as np
import pandas as pd
import pytest
from flwr.serverapp import ServerApp

from fedsim.callbacks import Callback
from fedsim.config import ConfigError
from fedsim.instantiate import build
from fedsim.models import build_model
from fedsim.plan import build_plan
from fedsim.results import load, round_table
from fedsim.runner import execute, run
from tests.conftest import compose_config


def metric_values(run_dir) -> pd.DataFrame:
    """Every recorded metric except wall times, indexed for comparison."""
    frame = load(run_dir)
    frame = frame[frame["metric"] != "round_seconds"]
    return frame.set_index(["round", "stage", "client", "metric"])["value"].sort_index()


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    cfg = compose_config("num_clients=6", "clients_per_round=4", "eval_clients_per_round=3")
    run_dir = tmp_path_factory.mktemp("local")
    summary = run(cfg, run_dir, choices={"strategy": "fedavg", "engine": "local"}, quiet=True)
    return cfg, summary


def test_a_run_writes_config_metrics_model_and_figure(local_run):
    _, summary = local_run
    for name in ("config.yaml", "choices.yaml", "status.yaml", "metrics.csv", "model.pt", "rounds.png"):
        assert (summary.run_dir / name).is_file(), name
    table = round_table(load(summary.run_dir))
    assert list(table.index) == [0, 1, 2]
    assert table["centralized_accuracy"].between(0, 1).all()
    assert table.loc[1:, ["federated_accuracy", "train_loss", "system_round_seconds"]].notna().all().all()
    assert summary.final["centralized_accuracy"] == table["centralized_accuracy"].iloc[-1]


def test_per_client_rows_name_the_sampled_partitions(local_run):
    from fedsim.sampling import sample_partitions

    cfg, summary = local_run
    frame = load(summary.run_dir)
    for server_round in (1, 2):
        rows = frame[(frame["round"] == server_round) & frame["client"].notna()]
        trained = sorted(rows[rows["stage"] == "train"]["client"].unique())
        evaluated = sorted(rows[rows["stage"] == "federated"]["client"].unique())
        assert trained == sample_partitions(cfg.seed, server_round, "train", 6, 4)
        assert evaluated == sample_partitions(cfg.seed, server_round, "evaluate", 6, 3)


def test_aggregates_are_example_weighted_means_of_client_metrics(local_run):
    _, summary = local_run
    frame = load(summary.run_dir)
    clients = frame[(frame["round"] == 2) & (frame["stage"] == "federated") & frame["client"].notna()]
    wide = clients.pivot(index="client", columns="metric", values="value")
    expected = (wide["accuracy"] * wide["num-examples"]).sum() / wide["num-examples"].sum()
    aggregate = frame[(frame["round"] == 2) & (frame["stage"] == "federated") & frame["client"].isna()]
    assert aggregate.set_index("metric").loc["accuracy", "value"] == pytest.approx(expected, rel=1e-12)


def test_load_flattens_config_and_choices_into_columns(local_run):
    _, summary = local_run
    frame = load(summary.run_dir)
    assert {"round", "stage", "client", "metric", "value"} <= set(frame.columns)
    assert (frame["strategy"] == "fedavg").all()
    assert (frame["seed"] == 0).all()
    assert (frame["partitioner.alpha"] == 0.5).all()
    assert (frame["client.lr"] == 0.05).all()


def test_fairness_rows_summarize_the_evaluated_clients(local_run):
    _, summary = local_run
    frame = load(summary.run_dir)
    for server_round in (1, 2):
        rows = frame[(frame["round"] == server_round) & (frame["stage"] == "federated")]
        accuracies = rows[(rows["metric"] == "accuracy") & rows["client"].notna()]["value"].sort_values()
        aggregate = rows[rows["client"].isna()].set_index("metric")["value"]
        assert len(accuracies) == 3
        mean = accuracies.mean()
        expected_std = math.sqrt(sum((a - mean) ** 2 for a in accuracies) / 3)
        assert aggregate["accuracy_std"] == pytest.approx(expected_std, rel=1e-12)
        assert aggregate["accuracy_worst10pct"] == accuracies.iloc[0]  # ceil(0.1 * 3) = 1 client


def test_bytes_per_round_count_the_model_once_per_message(local_run):
    cfg, summary = local_run
    model = build_model(cfg.model, (64,), 10, 0)
    model_bytes = sum(tensor.numel() * 4 for tensor in model.state_dict().values())  # float32
    assert model_bytes == (64 * 200 + 200 + 200 * 200 + 200 + 200 * 10 + 10) * 4
    system = round_table(load(summary.run_dir)).loc[1:]
    assert (system["system_train_bytes_down"] == 4 * model_bytes).all()
    assert (system["system_train_bytes_up"] == 4 * model_bytes).all()
    assert (system["system_federated_bytes_down"] == 3 * model_bytes).all()
    assert (system["system_federated_bytes_up"] == 0).all()  # evaluation replies carry metrics only
    assert (system["system_train_failures"] == 0).all()


def test_load_of_a_folder_without_a_run_says_so(tmp_path):
    with pytest.raises(ConfigError, match="no fedsim run in"):
        load(tmp_path)


def test_each_round_is_on_disk_when_it_ends(tmp_path):
    rounds_on_disk = []

    class ReadMetricsFile(Callback):
        def on_round_end(self, server_round, rows, history):
            written = pd.read_csv(tmp_path / "metrics.csv")
            rounds_on_disk.append((server_round, sorted(written["round"].unique())))

    plan = build_plan(compose_config("num_clients=4", "num_rounds=3"))
    plan.callbacks.append(ReadMetricsFile())  # after the metrics.csv writer
    execute(plan, tmp_path, quiet=True)
    assert rounds_on_disk == [(r, list(range(r + 1))) for r in range(4)]


def test_rerun_gives_identical_metrics_whatever_the_global_random_state(tmp_path):
    cfg = compose_config("num_clients=6", "clients_per_round=3")
    random.seed(1)
    np.random.seed(1)
    run(cfg, tmp_path / "a", quiet=True)
    random.seed(2)
    np.random.seed(2)
    random.random()
    run(cfg, tmp_path / "b", quiet=True)
    first, second = metric_values(tmp_path / "a"), metric_values(tmp_path / "b")
    assert first.index.equals(second.index)
    assert (first.values == second.values).all()
    # the files themselves match, row order included (clients' rows by partition id, not node id)
    lines = [
        [line for line in (tmp_path / name / "metrics.csv").read_text().splitlines() if "round_seconds" not in line]
        for name in ("a", "b")
    ]
    assert lines[0] == lines[1]


def test_another_seed_gives_other_metrics(tmp_path):
    run(compose_config("num_clients=6"), tmp_path / "a", quiet=True)
    run(compose_config("num_clients=6", "seed=1"), tmp_path / "b", quiet=True)
    first, second = round_table(load(tmp_path / "a")), round_table(load(tmp_path / "b"))
    assert first.loc[2, "centralized_loss"] != second.loc[2, "centralized_loss"]


def test_ray_engine_gives_the_local_engine_numbers(local_run, tmp_path):
    pytest.importorskip("ray")
    cfg, summary = local_run
    ray_cfg = compose_config("num_clients=6", "clients_per_round=4", "eval_clients_per_round=3", "engine=ray")
    run(ray_cfg, tmp_path / "first", quiet=True)
    local, ray = metric_values(summary.run_dir), metric_values(tmp_path / "first")
    assert local.index.equals(ray.index)
    np.testing.assert_allclose(ray.values, local.values, rtol=0, atol=1e-6)

    # the next run in this process reuses the first run's actors, with the same numbers
    from fedsim.engines import ray as ray_engine

    kept = ray_engine._kept_actors[1]
    run(ray_cfg, tmp_path / "second", quiet=True)
    assert ray_engine._kept_actors[1] is kept
    again = metric_values(tmp_path / "second")
    assert again.index.equals(ray.index) and (again.values == ray.values).all()

    # a run that fails leaves no actors behind for the next one
    failing = ServerApp()

    @failing.main()
    def main(grid, context):
        raise ValueError("the server app failed")

    with pytest.raises(ValueError, match="the server app failed"):
        build(ray_cfg.engine).run(failing, build_plan(ray_cfg).client_app(), ray_cfg.num_clients)
    assert ray_engine._kept_actors is None


def test_tensorboard_callback_writes_the_aggregate_metrics_of_every_round(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run(compose_config("num_clients=4", "+callbacks=tensorboard"), tmp_path, quiet=True)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    table = round_table(load(tmp_path))
    expected_tags = {column.replace("_", "/", 1) for column in table.columns}
    assert set(events.Tags()["scalars"]) == expected_tags
    for column in ("centralized_accuracy", "federated_loss", "federated_accuracy_std", "system_train_bytes_down"):
        logged = {event.step: event.value for event in events.Scalars(column.replace("_", "/", 1))}
        recorded = table[column].dropna()
        assert sorted(logged) == list(recorded.index)
        np.testing.assert_allclose([logged[r] for r in recorded.index], recorded.values, rtol=1e-6)


def test_the_embedded_default_reaches_its_accuracy(tmp_path):
    summary = run(compose_config(tiny=False), tmp_path, quiet=True)
    table = round_table(load(tmp_path))
    assert list(table.index) == list(range(21))
    assert summary.final["centralized_accuracy"] >= 0.85


def test_whole_partitions_train_on_every_example_without_federated_evaluation(tmp_path):
    cfg = compose_config("client.eval_fraction=0", "eval_clients_per_round=0")
    summary = run(cfg, tmp_path, quiet=True)
    frame = load(summary.run_dir)
    examples = frame[(frame["stage"] == "train") & frame["client"].notna() & (frame["metric"] == "num-examples")]
    # all 5 clients train every round, together on the whole training split
    training_split = len(build_plan(cfg).federation.data.train)
    assert examples.groupby("round")["value"].sum().tolist() == [training_split] * cfg.num_rounds
    assert frame[frame["stage"] == "federated"].empty
