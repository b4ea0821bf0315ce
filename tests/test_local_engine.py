"""The local engine's in-process Grid: node contexts, identities and failures."""

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from fedsim.engines import LocalEngine, LocalGrid
from fedsim.flower_internals import create_run, set_task_identity


def counting_client_app() -> ClientApp:
    """Counts calls per node in the node's Context.state; fails on partition 2."""
    app = ClientApp()

    @app.train()
    def train(message: Message, context: Context) -> Message:
        partition = int(context.node_config["partition-id"])
        if partition == 2:
            raise RuntimeError("partition 2 is broken")
        previous = context.state["count"]["calls"] if "count" in context.state else 0
        context.state["count"] = MetricRecord({"calls": previous + 1})
        reply = MetricRecord({"calls": previous + 1, "partition": partition})
        return Message(RecordDict({"metrics": reply}), reply_to=message)

    return app


def make_grid(num_nodes: int) -> LocalGrid:
    run = create_run(3)
    set_task_identity(run_id=run.run_id, node_id=0)
    return LocalGrid(counting_client_app(), num_nodes, run)


def train_messages(grid: LocalGrid, node_ids) -> list[Message]:
    return [Message(RecordDict(), dst_node_id=n, message_type="train") for n in node_ids]


def test_nodes_have_random_ids_and_partition_ids_zero_to_n():
    grid = make_grid(6)
    contexts = [grid.contexts[n] for n in grid.get_node_ids()]
    assert sorted(int(c.node_config["partition-id"]) for c in contexts) == list(range(6))
    assert {int(c.node_config["num-partitions"]) for c in contexts} == {6}
    assert len(set(grid.get_node_ids())) == 6
    assert list(grid.get_node_ids()) != list(range(6))


def test_context_state_persists_between_rounds_per_node():
    grid = make_grid(4)
    healthy = [n for n in grid.get_node_ids() if grid.contexts[n].node_config["partition-id"] != 2]
    for _ in range(3):
        grid.send_and_receive(train_messages(grid, healthy))
    replies = grid.send_and_receive(train_messages(grid, healthy[:1]))
    assert [r.content["metrics"]["calls"] for r in replies] == [4]
    assert [grid.contexts[n].state["count"]["calls"] for n in healthy[1:]] == [3, 3]


def test_client_exception_becomes_an_error_reply_from_that_node():
    grid = make_grid(4)
    broken = next(n for n in grid.get_node_ids() if grid.contexts[n].node_config["partition-id"] == 2)
    replies = list(grid.send_and_receive(train_messages(grid, grid.get_node_ids())))
    errors = [r for r in replies if r.has_error()]
    assert len(replies) == 4 and len(errors) == 1
    assert errors[0].metadata.src_node_id == broken
    assert "partition 2 is broken" in errors[0].error.reason


def test_replies_are_pulled_once_by_message_id():
    grid = make_grid(3)
    ids = list(grid.push_messages(train_messages(grid, list(grid.get_node_ids())[:2])))
    assert len(set(ids)) == 2
    assert len(list(grid.pull_messages(ids))) == 2
    assert list(grid.pull_messages(ids)) == []


def test_engine_runs_a_server_app_against_its_nodes():
    seen = {}
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        messages = [Message(RecordDict({"arrays": ArrayRecord(), "config": ConfigRecord()}), dst_node_id=n,
                            message_type="train") for n in grid.get_node_ids()]
        replies = grid.send_and_receive(messages)
        seen["partitions"] = sorted(int(r.content["metrics"]["partition"]) for r in replies if not r.has_error())

    LocalEngine(workers=0, threads=1).run(server_app, counting_client_app(), num_nodes=5)
    assert seen["partitions"] == [0, 1, 3, 4]
