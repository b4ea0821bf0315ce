"""Worker processes that run a ClientApp on messages sent to them with their node's Context."""

import os
import signal
from collections import deque
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from fedsim.engines.replies import error_reply, run_client_app
from fedsim.flower_internals import ErrorCode

PARENT_CHECK_SECONDS = 1.0
STOP_SECONDS = 5.0

Task = tuple[Message, Context]


@dataclass
class _Worker:
    process: BaseProcess
    connection: Connection


class WorkerPool:
    """``num_workers`` processes that each run the ClientApp on one message at a time.

    A task is a message together with its node's Context; the worker sends back the
    reply and the Context as the ClientApp left it, so a node's state persists
    whichever worker runs it (Flower's Ray backend does the same). Workers are forked,
    so they inherit the ClientApp and the data the parent already loaded, and each
    uses one torch thread: a small model gains nothing from a second one, the cores
    are the workers', and a forked process would hang in OpenMP's thread pool once the
    parent has used it. Once this process has used CUDA a forked child cannot, so
    workers are then spawned: each builds the ClientApp from what it was built from
    (``fedsim.apps.BuiltClientApp``) and loads its data itself. A worker that dies
    turns its task into an error reply and is replaced; an exception in the
    ClientApp is an error reply as in-process.

    Use it as a context manager, or call ``close``.
    """

    def __init__(self, client_app: ClientApp, num_workers: int) -> None:
        self._client_app = client_app
        self._workers = [self._start_worker() for _ in range(num_workers)]

    def _start_worker(self) -> _Worker:
        import torch

        context = get_context("spawn" if torch.cuda.is_initialized() else "fork")
        parent_end, child_end = context.Pipe()
        process = context.Process(
            target=_serve, args=(self._client_app, child_end, parent_end, os.getpid()), daemon=True
        )
        process.start()
        child_end.close()
        return _Worker(process, parent_end)

    def _replace(self, worker: _Worker) -> _Worker:
        worker.connection.close()
        worker.process.join(timeout=STOP_SECONDS)
        new_worker = self._start_worker()
        self._workers[self._workers.index(worker)] = new_worker
        return new_worker

    def run(self, tasks: list[Task]) -> list[tuple[Message, Context]]:
        """Run every task; the (reply, context) pairs come back in task order."""
        results: list[tuple[Message, Context] | None] = [None] * len(tasks)
        pending = deque(range(len(tasks)))
        idle = list(self._workers)
        busy: list[tuple[_Worker, int]] = []
        while pending or busy:
            while pending and idle:
                worker, index = idle.pop(), pending.popleft()
                try:
                    worker.connection.send(tasks[index])
                except (BrokenPipeError, ConnectionResetError):  # it died while idle: replace, retry
                    pending.appendleft(index)
                    idle.append(self._replace(worker))
                    continue
                busy.append((worker, index))
            ready = wait([w.connection for w, _ in busy] + [w.process.sentinel for w, _ in busy])
            for worker, index in [(w, i) for w, i in busy if w.connection in ready or w.process.sentinel in ready]:
                busy.remove((worker, index))
                try:
                    reply, context = worker.connection.recv()
                    results[index] = (reply, context if context is not None else tasks[index][1])
                    idle.append(worker)
                except (EOFError, ConnectionResetError, OSError):
                    message, context = tasks[index]
                    worker.process.join(timeout=STOP_SECONDS)
                    reason = f"the worker process running this client died (exit code {worker.process.exitcode})"
                    results[index] = (error_reply(message, ErrorCode.CLIENT_APP_CRASHED, reason), context)
                    idle.append(self._replace(worker))
        return results  # type: ignore[return-value]

    def close(self) -> None:
        """Ask every worker to stop, and end the ones that do not."""
        for worker in self._workers:
            try:
                worker.connection.send(None)
            except (BrokenPipeError, ConnectionResetError, OSError):
                pass
        for worker in self._workers:
            worker.process.join(timeout=STOP_SECONDS)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.connection.close()
        self._workers = []

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _serve(client_app: ClientApp, connection: Connection, parent_end: Connection, parent_pid: int) -> None:
    """A worker's loop: answer tasks until told to stop or until the parent is gone."""
    parent_end.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops the workers
    import torch

    torch.set_num_threads(1)  # more would hang in OpenMP's pool, which the parent has used before the fork
    while True:
        while not connection.poll(PARENT_CHECK_SECONDS):
            if os.getppid() != parent_pid:
                return
        try:
            task = connection.recv()
        except EOFError:
            return
        if task is None:
            return
        message, context = task
        reply = run_client_app(client_app, message, context)
        try:
            connection.send((reply, context))
        except Exception as error:  # pylint: disable=broad-exception-caught
            reason = f"the reply could not be sent back from the worker ({type(error).__name__}: {error})"
            connection.send((error_reply(message, ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason), None))
