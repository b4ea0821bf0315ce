"""Run a ServerApp object in this process as the ServerApp of a run on a SuperLink (Flower's Runtime API).

A SuperLink started with ``--isolation process`` launches no ServerApp itself: it keeps
each submitted run's ServerApp task pending until a process claims it, as Flower's
``flower-superexec`` does before it starts ``flwr-serverapp``. fedsim claims the task of
its own run and runs its ServerApp object on the grid of that task, so the run's
callbacks, progress lines and run folder stay in the ``fedsim`` process, exactly as on
the other engines.

Flower's internal APIs used here, in one place (checked against flwr 1.42; the
deployment tests run them on loopback): the Runtime API client and its ``AcquireTask``
(``flwr.supercore.runtime.RuntimeHttpClient``, with the version header every Runtime
API caller sends), the task's grid ``flwr.superlink.grid.HttpGrid`` and its private
``_runtime_client`` (``PullTaskInput``, ``PushTaskOutput``, heartbeats), and how
``flwr-serverapp`` sets up a task (``flwr/superlink/runtime/run_serverapp.py``): the task
identity, the run config fused from the FAB, the final status; and the ``should_giveup``
of Flower's retry invoker, which fedsim extends to check its federation's processes. ``HttpGrid`` waits 3 s
between polls for replies; ``PollingGrid`` polls every ``POLL_SECONDS`` and checks the
federation's processes while it waits.
"""

import time
from collections.abc import Callable, Iterable

from flwr.app import Context, Message, RecordDict
from flwr.serverapp import ServerApp

from fedsim.deployment.processes import Connection
from fedsim.deployment.wire import FlowerArraysGrid
from fedsim.flower_internals import set_task_identity

POLL_SECONDS = 0.1
ACQUIRE_SECONDS = 60.0  # how long the SuperLink may take to offer the run's ServerApp task


class TaskNotOffered(RuntimeError):
    """The SuperLink did not offer fedsim the ServerApp task of its run."""


def _root_certificates(connection: Connection) -> bytes | None:
    return None if connection.insecure else connection.root_certificates.read_bytes()


def _watched(invoker, watch: Callable[[], None]) -> None:
    """Make a Flower retry invoker check the federation's processes before each retry.

    Flower retries a Runtime API call that cannot connect forever; when fedsim's own
    SuperLink has died, ``watch`` raises instead, and the run ends saying so.
    """
    flower_giveup = invoker.should_giveup

    def should_giveup(error: Exception) -> bool:
        watch()
        return flower_giveup(error)

    invoker.should_giveup = should_giveup


def _runtime_client(connection: Connection, watch: Callable[[], None]):
    from flwr.supercore.interceptors import RuntimeVersionHttpInterceptor
    from flwr.supercore.retry import make_simple_http_retry_invoker
    from flwr.supercore.runtime import RuntimeHttpClient

    retry_invoker = make_simple_http_retry_invoker()
    _watched(retry_invoker, watch)
    return RuntimeHttpClient.from_server_address(
        server_address=connection.address,
        insecure=connection.insecure,
        root_certificates=_root_certificates(connection),
        interceptors=[RuntimeVersionHttpInterceptor(component_name="SuperExec")],
        retry_invoker=retry_invoker,
    )


def acquire_server_task(connection: Connection, run_id: int, watch: Callable[[], None]) -> str:
    """The token of run ``run_id``'s ServerApp task, claimed from the SuperLink."""
    from flwr.proto.runtime_pb2 import AcquireTaskRequest  # pylint: disable=no-name-in-module
    from flwr.supercore.constant import TaskType

    client = _runtime_client(connection, watch)
    deadline = time.monotonic() + ACQUIRE_SECONDS
    try:
        while time.monotonic() < deadline:
            watch()
            answer = client.AcquireTask(AcquireTaskRequest(supported_task_types=[TaskType.SERVER_APP]))
            if answer.HasField("task") and answer.token:
                if answer.task.run_id != run_id:
                    raise TaskNotOffered(
                        f"the SuperLink at {connection.address} offered the ServerApp of run {answer.task.run_id}, "
                        f"not fedsim's run {run_id}: give fedsim a SuperLink of its own."
                    )
                return answer.token
            time.sleep(POLL_SECONDS)
    finally:
        client.close()
    raise TaskNotOffered(
        f"the SuperLink at {connection.address} did not offer fedsim the ServerApp of run {run_id} within "
        f"{ACQUIRE_SECONDS:g} s: start it with --isolation process, so that fedsim runs the ServerApp."
    )


def polling_grid(connection: Connection, token: str, watch: Callable[[], None]):
    """Flower's ``HttpGrid`` for the task ``token`` names, polling for replies every ``POLL_SECONDS``."""
    from flwr.superlink.grid import HttpGrid

    class PollingGrid(HttpGrid):
        def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
            waiting = set(self.push_messages(messages))
            end = None if timeout is None else time.monotonic() + timeout
            replies: list[Message] = []
            while waiting and (end is None or time.monotonic() < end):
                pulled = list(self.pull_messages(waiting))
                replies += pulled
                waiting -= {reply.metadata.reply_to_message_id for reply in pulled}
                if waiting:
                    watch()
                    time.sleep(POLL_SECONDS)
            return replies

    grid = PollingGrid(
        runtime_api_address=connection.address, insecure=connection.insecure,
        root_certificates=_root_certificates(connection), token=token,
    )
    _watched(grid._retry_invoker, watch)  # pylint: disable=protected-access
    return grid


def wait_for_nodes(grid, num_nodes: int, seconds: float, address: str, watch: Callable[[], None]) -> None:
    """Wait until ``num_nodes`` SuperNodes are connected; RuntimeError after ``seconds``."""
    deadline = time.monotonic() + seconds
    while (connected := len(list(grid.get_node_ids()))) < num_nodes:
        watch()
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{connected} of {num_nodes} SuperNodes connected to the SuperLink at {address} within {seconds:g} s."
            )
        time.sleep(POLL_SECONDS)


def serve_server_app(  # pylint: disable=too-many-arguments
    connection: Connection,
    run_id: int,
    server_app: ServerApp,
    num_nodes: int,
    node_seconds: float,
    watch: Callable[[], None] = lambda: None,
) -> None:
    """Claim run ``run_id``'s ServerApp task and run ``server_app`` as it, once ``num_nodes`` nodes are connected.

    The task ends ``completed``, or ``failed`` with the error (an interruption too), as
    ``flwr-serverapp`` ends it. ``watch`` is called while waiting; it raises to give up.
    """
    from flwr.common.config import get_fused_config_from_fab
    from flwr.common.constant import SubStatus
    from flwr.common.serde import (
        context_from_proto,
        context_to_proto,
        fab_from_proto,
        run_from_proto,
    )
    from flwr.proto.runtime_pb2 import PullTaskInputRequest, PushTaskOutputRequest  # pylint: disable=no-name-in-module
    from flwr.supercore.heartbeat import HeartbeatSender, make_task_heartbeat_fn_http

    token = acquire_server_task(connection, run_id, watch)
    grid = polling_grid(connection, token, watch)
    runtime = grid._runtime_client  # pylint: disable=protected-access
    heartbeat = HeartbeatSender(make_task_heartbeat_fn_http(runtime))
    heartbeat.start()
    context: Context | None = None
    status, details = SubStatus.FAILED, "the ServerApp ended without saying why"
    try:
        task_input = runtime.PullTaskInput(PullTaskInputRequest())
        run = run_from_proto(task_input.run)
        set_task_identity(run.run_id, task_input.context.node_id, task_input.task_id)
        context = context_from_proto(task_input.context)
        context.run_config = get_fused_config_from_fab(fab_from_proto(task_input.fab).content, run)
        grid.set_run(run)
        wait_for_nodes(grid, num_nodes, node_seconds, connection.address, watch)
        try:
            server_app(FlowerArraysGrid(grid), context)
        except BaseException as error:
            details = f"{type(error).__name__}: {error}"
            raise
        status, details = SubStatus.COMPLETED, ""
    finally:
        try:
            if context is not None:
                context.state = RecordDict()  # as flwr-serverapp: the state stays in this process
            request = PushTaskOutputRequest(
                context=context_to_proto(context) if context is not None else None, sub_status=status, details=details
            )
            grid._retry_invoker.max_tries = 1  # pylint: disable=protected-access  # the SuperLink may be gone
            runtime.PushTaskOutput(request)
        except Exception:  # noqa: BLE001, S110  # pylint: disable=broad-exception-caught  # the run's outcome is what matters
            pass
        finally:
            if heartbeat.is_running:  # its thread ends by itself when a heartbeat raises
                heartbeat.stop()
            grid.close()
