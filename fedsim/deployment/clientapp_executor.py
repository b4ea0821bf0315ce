"""fedsim's ClientApp for a SuperNode started with ``--isolation process``: one process that serves all its messages.

Flower's default (``--isolation subprocess``) starts a new ``flwr-clientapp`` process for
every message; it imports torch and fedsim and loads the node's data each time, which
costs seconds per message. With ``--isolation process`` the SuperNode runs no ClientApp
itself and this executor claims each ClientApp task from the SuperNode's Runtime API
(on 127.0.0.1), as Flower's ``flower-superexec`` would, and runs it here with the data
and model it already built, so a round costs what training costs.

It runs fedsim's ClientApp of this installation only (``fedsim.deployment.app:client_app``),
never code that came with the run: a run whose app names another ClientApp is answered
with an error, one line in the log. The node's Context (its state between rounds)
travels with each task, as for ``flwr-clientapp``.

Flower's internal APIs used here (checked against flwr 1.42; the deployment tests run
them on loopback): ``RuntimeHttpClient`` with its version and token headers,
``AcquireTask``, and ``flwr-clientapp``'s own steps (``pull_task_input``,
``push_message``, ``push_task_output`` in ``flwr/supernode/runtime/run_clientapp.py``).
"""

import logging
import time

from flwr.app import Context, Message
from flwr.common import log

from fedsim.deployment.project import COMPONENTS
from fedsim.engines.replies import error_reply
from fedsim.flower_internals import ErrorCode

POLL_SECONDS = 0.05


def _client(address: str, component: str, token: str | None = None):
    from flwr.supercore.interceptors import (
        RuntimeTokenHttpInterceptor,
        RuntimeVersionHttpInterceptor,
    )
    from flwr.supercore.retry import make_simple_http_retry_invoker
    from flwr.supercore.runtime import RuntimeHttpClient

    interceptors = [RuntimeVersionHttpInterceptor(component_name=component)]
    if token is not None:
        interceptors.append(RuntimeTokenHttpInterceptor(token))
    return RuntimeHttpClient.from_server_address(
        server_address=address, insecure=True, root_certificates=None, interceptors=interceptors,
        retry_invoker=make_simple_http_retry_invoker(),
    )


def names_fedsim_client(fab_content: bytes) -> str | None:
    """Why the app of a run is not fedsim's (the ClientApp it names), or None if it is."""
    from flwr.common.config import get_fab_config

    named = get_fab_config(fab_content)["tool"]["flwr"]["app"]["components"].get("clientapp")
    if named != COMPONENTS["clientapp"]:
        return f"this node runs fedsim's ClientApp ({COMPONENTS['clientapp']}) only; the run's app names {named}."
    return None


def answer(message: Message, context: Context, fab_content: bytes) -> Message:
    """The reply of fedsim's ClientApp to ``message``; an error reply if the run is not fedsim's or the ClientApp raises."""
    from fedsim.deployment.app import client_app

    refused = names_fedsim_client(fab_content)
    if refused:
        log(logging.ERROR, "fedsim: %s", refused)
        return error_reply(message, ErrorCode.LOAD_CLIENT_APP_EXCEPTION, refused)
    try:
        return client_app(message, context)
    except Exception as error:  # noqa: BLE001  # pylint: disable=broad-exception-caught  # as flwr-clientapp: an error reply
        log(logging.ERROR, "fedsim: the ClientApp raised an exception", exc_info=error)
        return error_reply(message, ErrorCode.CLIENT_APP_RAISED_EXCEPTION, f"{type(error).__name__}: {error}")


def run_task(address: str, token: str) -> None:
    """Run one ClientApp task: pull its message and Context, answer it, push the reply and the Context back."""
    from flwr.common.constant import SubStatus
    from flwr.supercore.heartbeat import HeartbeatSender, make_task_heartbeat_fn_http
    from flwr.supernode.runtime.run_clientapp import (
        pull_task_input,
        push_message,
        push_task_output,
    )

    client = _client(address, "flwr-clientapp", token)
    heartbeat = HeartbeatSender(make_task_heartbeat_fn_http(client))
    heartbeat.start()
    context, status, details = None, SubStatus.FAILED, "the ClientApp ended without saying why"
    try:
        message, context, _run, fab = pull_task_input(client)
        push_message(client, answer(message, context, fab.content), context)
        status, details = SubStatus.COMPLETED, ""
    except KeyboardInterrupt:  # the SuperNode stopped the task (its heartbeat answer raises SIGINT)
        details = "the task was stopped"
    except Exception as error:  # noqa: BLE001  # pylint: disable=broad-exception-caught  # Flower's calls; the next task may succeed
        details = f"{type(error).__name__}: {error}"
        log(logging.ERROR, "fedsim: a ClientApp task failed: %s", details)
    finally:
        push_task_output(client, context, status, details)
        if heartbeat.is_running:  # its thread ends by itself when a heartbeat raises
            heartbeat.stop()
        client.close()


def serve(address: str) -> None:
    """Claim and run the ClientApp tasks of the SuperNode whose Runtime API is at ``address``, until stopped."""
    from flwr.proto.runtime_pb2 import AcquireTaskRequest  # pylint: disable=no-name-in-module
    from flwr.supercore.constant import TaskType

    from fedsim.deployment.app import client_app  # noqa: F401  # imported once, before the first task

    acquirer = _client(address, "SuperExec")
    request = AcquireTaskRequest(supported_task_types=[TaskType.CLIENT_APP])
    log(logging.INFO, "fedsim: serving the ClientApp tasks of the SuperNode at %s", address)
    try:
        while True:
            answer = acquirer.AcquireTask(request)
            if answer.HasField("task") and answer.token:
                run_task(address, answer.token)
            else:
                time.sleep(POLL_SECONDS)
    finally:
        acquirer.close()
