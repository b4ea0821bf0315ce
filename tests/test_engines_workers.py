"""Worker processes of the local engine: same numbers as serial, node state, failures."""

import os
import random

import numpy as np
import pytest
from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedsim.config import ConfigError
from fedsim.engines import LocalGrid, WorkerPool
from fedsim.engines.local import torch_threads
from fedsim.flower_internals import ErrorCode
from fedsim.plan import build_plan
from fedsim.results import load
from fedsim.runner import run
from tests.conftest import compose_config
from tests.test_local_engine import counting_client_app, make_grid, train_messages


def crashing_client_app() -> ClientApp:
    """Partition 1's process dies mid-message; the others echo their partition id."""
    app = ClientApp()

    @app.train()
    def train(message: Message, context: Context) -> Message:
        partition = int(context.node_config["partition-id"])
        if partition == 1:
            os._exit(3)  # pylint: disable=protected-access
        return Message(RecordDict({"metrics": MetricRecord({"partition": partition})}), reply_to=message)

    return app


def grid_with_workers(client_app: ClientApp, num_nodes: int, pool: WorkerPool) -> LocalGrid:
    template = make_grid(num_nodes)
    return LocalGrid(client_app, num_nodes, template.run, pool)


def partition_of(grid: LocalGrid, node_id: int) -> int:
    return int(grid.contexts[node_id].node_config["partition-id"])


def test_workers_give_the_serial_metrics_bit_for_bit(tmp_path):
    frames = {}
    for workers in (0, 2):
        random.seed(0)  # Flower's FedAvg orders its messages with Python's global random
        cfg = compose_config("num_clients=6", "clients_per_round=4", "eval_clients_per_round=3", f"engine.workers={workers}")
        run(cfg, tmp_path / str(workers), quiet=True)
        frame = load(tmp_path / str(workers))
        frame = frame[frame["metric"] != "round_seconds"]
        frames[workers] = frame.set_index(["round", "stage", "client", "metric"])["value"].sort_index()
    assert frames[0].index.equals(frames[2].index)
    assert len(frames[0]) > 50
    np.testing.assert_array_equal(frames[2].values, frames[0].values)


def test_context_state_persists_across_rounds_whatever_worker_runs_the_node():
    with WorkerPool(counting_client_app(), 2) as pool:
        grid = grid_with_workers(counting_client_app(), 5, pool)
        healthy = [n for n in grid.get_node_ids() if partition_of(grid, n) != 2]
        for _ in range(3):
            grid.send_and_receive(train_messages(grid, healthy))
        replies = list(grid.send_and_receive(train_messages(grid, healthy[:2])))
    assert [r.content["metrics"]["calls"] for r in replies] == [4, 4]
    assert [grid.contexts[n].state["count"]["calls"] for n in healthy] == [4, 4, 3, 3]


def test_client_exception_under_workers_is_an_error_reply_from_that_node():
    with WorkerPool(counting_client_app(), 2) as pool:
        grid = grid_with_workers(counting_client_app(), 4, pool)
        replies = list(grid.send_and_receive(train_messages(grid, grid.get_node_ids())))
    errors = [r for r in replies if r.has_error()]
    assert len(replies) == 4 and len(errors) == 1
    assert partition_of(grid, errors[0].metadata.src_node_id) == 2
    assert errors[0].error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION
    assert "partition 2 is broken" in errors[0].error.reason


def test_a_dead_worker_becomes_an_error_reply_and_is_replaced():
    with WorkerPool(crashing_client_app(), 2) as pool:
        grid = grid_with_workers(crashing_client_app(), 4, pool)
        for _ in range(2):  # the second round runs on the replacement worker
            replies = list(grid.send_and_receive(train_messages(grid, grid.get_node_ids())))
            errors = [r for r in replies if r.has_error()]
            assert len(replies) == 4 and len(errors) == 1
            assert partition_of(grid, errors[0].metadata.src_node_id) == 1
            assert errors[0].error.code == ErrorCode.CLIENT_APP_CRASHED
            assert "exit code 3" in errors[0].error.reason
            answered = sorted(int(r.content["metrics"]["partition"]) for r in replies if not r.has_error())
            assert answered == [0, 2, 3]


def test_closed_pool_leaves_no_worker_running():
    pool = WorkerPool(counting_client_app(), 2)
    processes = [worker.process for worker in pool._workers]  # pylint: disable=protected-access
    assert all(p.is_alive() for p in processes)
    pool.close()
    assert not any(p.is_alive() for p in processes)
    assert [p.exitcode for p in processes] == [0, 0]


def test_negative_workers_is_a_config_error():
    with pytest.raises(ConfigError, match=r"^engine.workers must be at least 0, .*\(got -1\)\.$"):
        build_plan(compose_config("engine.workers=-1"))


def thread_reporting_client_app() -> ClientApp:
    """Every node replies with the number of intra-op threads torch uses where it runs."""
    app = ClientApp()

    @app.train()
    def train(message: Message, context: Context) -> Message:
        import torch

        return Message(RecordDict({"metrics": MetricRecord({"threads": torch.get_num_threads()})}), reply_to=message)

    return app


def test_a_worker_uses_one_torch_thread_and_the_engine_sets_its_own_for_the_run():
    import torch

    with WorkerPool(thread_reporting_client_app(), 2) as pool:
        grid = grid_with_workers(thread_reporting_client_app(), 4, pool)
        replies = list(grid.send_and_receive(train_messages(grid, list(grid.get_node_ids()))))
    assert [reply.content["metrics"]["threads"] for reply in replies] == [1] * 4
    before = torch.get_num_threads()
    with torch_threads(3):
        assert torch.get_num_threads() == 3
    assert torch.get_num_threads() == before


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["engine.threads=0"], r"^engine.threads must be at least 1 \(got 0\)\.$"),
        (["engine.workers=2", "engine.threads=2"], r"^engine.threads=2 needs engine.workers=0: .*\.$"),
    ],
)
def test_thread_settings_out_of_range_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_plan(compose_config(*overrides))
