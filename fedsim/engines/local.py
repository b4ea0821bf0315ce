"""The local engine: an in-process Flower Grid that hands each Message to the ClientApp."""

import secrets
from collections.abc import Iterable
from uuid import uuid4

from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import ErrorCode
from flwr.serverapp import Grid, ServerApp
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

SERVER_NODE_ID = 0


class LocalGrid(Grid):
    """A Grid whose nodes live in this process.

    Each node has a random id (as in Flower's simulation), a ``Context`` kept between
    rounds, and ``partition-id``/``num-partitions`` in its node config. Pushing a
    message runs the ClientApp on it at once; a ClientApp exception becomes an error
    reply, as it would from a real SuperNode.
    """

    def __init__(self, client_app: ClientApp, num_nodes: int, run: Run) -> None:
        self.client_app = client_app
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
        message_ids = []
        for message in messages:
            message_id = str(uuid4())
            message.metadata.__dict__["_message_id"] = message_id
            self._replies[message_id] = self._handle(message)
            message_ids.append(message_id)
        return message_ids

    def _handle(self, message: Message) -> Message:
        context = self.contexts[message.metadata.dst_node_id]
        try:
            return self.client_app(message, context)
        except Exception as error:  # pylint: disable=broad-exception-caught
            reason = f"{type(error).__name__}: {error}"
            return Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason), reply_to=message)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self._replies.pop(message_id) for message_id in message_ids if message_id in self._replies]

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        return self.pull_messages(self.push_messages(messages))


class LocalEngine:
    """Run a ServerApp against ``num_nodes`` in-process nodes of a ClientApp. No Ray."""

    def run(self, server_app: ServerApp, client_app: ClientApp, num_nodes: int) -> None:
        run = Run.create_empty(run_id=secrets.randbits(63))
        # Messages read the sender's identity from here; Flower's runtimes set it the same way.
        TaskIdentity.task_id = 1
        TaskIdentity.run_id = run.run_id
        TaskIdentity.node_id = SERVER_NODE_ID
        grid = LocalGrid(client_app, num_nodes, run)
        context = Context(run_id=run.run_id, node_id=SERVER_NODE_ID, node_config={}, state=RecordDict(), run_config={})
        server_app(grid, context)
