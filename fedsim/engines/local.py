"""The local engine: an in-process Flower Grid that hands each Message to the ClientApp."""

import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING
from uuid import uuid4

from flwr.app import Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from fedsim.config.checks import require
from fedsim.engines.replies import run_client_app
from fedsim.engines.workers import WorkerPool
from fedsim.flower_internals import Run, create_run, set_message_id, set_task_identity
from fedsim.resident import make_resident

if TYPE_CHECKING:
    import torch

SERVER_NODE_ID = 0


class LocalGrid(Grid):
    """A Grid whose nodes live in this process.

    Each node has a random id (as in Flower's simulation), a ``Context`` kept between
    rounds, and ``partition-id``/``num-partitions`` in its node config. Pushing
    messages runs the ClientApp on them at once: here, one after the other, or spread
    over ``workers``, which send each node's updated Context back with its reply. A
    ClientApp exception becomes an error reply, as it would from a real SuperNode.
    The arrays of pushed messages are made resident (``fedsim.resident``) first: the
    messages of a round share one record, so its ``.npy`` bytes are decoded once, not
    once per client.
    """

    def __init__(self, client_app: ClientApp, num_nodes: int, run: Run, workers: WorkerPool | None = None) -> None:
        self.client_app = client_app
        self.workers = workers
        self._run = run
        self.contexts: dict[int, Context] = {}
        while len(self.contexts) < num_nodes:
            node_id = secrets.randbits(63) or 1
            if node_id in self.contexts:
                continue
            self.contexts[node_id] = Context(
                run_id=run.run_id,
                node_id=node_id,
                node_config={"partition-id": len(self.contexts), "num-partitions": num_nodes},
                state=RecordDict(),
                run_config={},
            )
        self._replies: dict[str, Message] = {}

    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(
        self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str, ttl: float | None = None
    ) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        messages = list(messages)
        message_ids = []
        for message in messages:
            for record in message.content.array_records.values():
                make_resident(record)
            message_id = str(uuid4())
            set_message_id(message, message_id)
            message_ids.append(message_id)
        for message_id, reply in zip(message_ids, self._handle(messages)):
            self._replies[message_id] = reply
        return message_ids

    def _handle(self, messages: list[Message]) -> list[Message]:
        tasks = [(message, self.contexts[message.metadata.dst_node_id]) for message in messages]
        if self.workers is None or len(tasks) < 2:
            return [run_client_app(self.client_app, message, context) for message, context in tasks]
        replies = []
        for (message, _), (reply, context) in zip(tasks, self.workers.run(tasks)):
            self.contexts[message.metadata.dst_node_id] = context
            replies.append(reply)
        return replies

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self._replies.pop(message_id) for message_id in message_ids if message_id in self._replies]

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        return self.pull_messages(self.push_messages(messages))


class LocalEngine:
    """Run a ServerApp against ``num_nodes`` nodes of a ClientApp in this process. No Ray.

    Parameters
    ----------
    workers : int
        Worker processes that run the clients of a round side by side, started for
        the run and stopped when it ends; 0 runs every client in this process, one
        after the other.
    threads : int
        torch's intra-op threads in this process during the run (1 with workers, as in
        each worker: a forked process hangs in OpenMP's thread pool once its parent has
        used it). Another number than 1 may change the last bits of the results (it
        changes the order of floating-point sums).
    """

    def __init__(self, *, workers: int, threads: int) -> None:
        require(
            workers >= 0,
            f"engine.workers must be at least 0, where 0 runs the clients in this process (got {workers}).",
        )
        require(threads >= 1, f"engine.threads must be at least 1 (got {threads}).")
        require(
            threads == 1 or workers == 0,
            f"engine.threads={threads} needs engine.workers=0: forked workers hang in torch's OpenMP thread pool "
            "once this process has used it, so they run one thread each (more threads or more workers, not both).",
        )
        self.workers = workers
        self.threads = threads

    def client_device(self, device: "torch.device") -> str:
        """The device clients train on for a run on ``device``: the same one, here and in the workers."""
        return str(device)

    def run(self, server_app: ServerApp, client_app: ClientApp, num_nodes: int) -> None:
        run = create_run(secrets.randbits(63))
        # Messages read the sender's identity from here; Flower's runtimes set it the same way.
        set_task_identity(run.run_id, SERVER_NODE_ID)
        with torch_threads(self.threads), (
            WorkerPool(client_app, self.workers) if self.workers else nullcontext()
        ) as workers:
            grid = LocalGrid(client_app, num_nodes, run, workers)
            context = Context(run_id=run.run_id, node_id=SERVER_NODE_ID, node_config={}, state=RecordDict(), run_config={})
            server_app(grid, context)


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run torch with ``threads`` intra-op threads, as every worker does, then restore the setting.

    Clients then compute the same bits whether they run here or in workers (the
    thread count changes the order of floating-point sums). One thread, the default,
    suits small models: on two cores a second intra-op thread made W1's rounds several
    times slower (see benchmarks/README.md).
    """
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)
