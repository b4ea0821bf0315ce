"""The ray engine: Flower's Simulation Engine, for many cores, GPUs or a Ray cluster."""

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from flwr.clientapp import ClientApp
from flwr.serverapp import ServerApp

from fedsim.config.checks import require
from fedsim.flower_internals import ray_backend_class

if TYPE_CHECKING:
    from fedsim.flower_internals import BasicActorPool, RayBackend

# The arguments this process's Ray runtime was started with by fedsim, if it was.
_started_with: dict | None = None
# The idle actor pool the last run left, with the client resources it was made for.
_kept_actors: tuple[dict, "BasicActorPool"] | None = None


class _DropRunSimulationDeprecation(logging.Filter):
    """fedsim calls ``run_simulation`` on purpose (it takes app objects); hide its notice."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`run_simulation` function is deprecated" not in record.getMessage()


class RayEngine:
    """Run the apps with ``flwr.simulation.run_simulation`` on Ray.

    The Ray runtime and the backend's ClientApp actors are started once per process
    and kept for the next run (the runs of a Hydra sweep share them): Flower's Ray
    backend ends its actors and Ray after every run, which costs each run Ray's start-up
    and new actor processes that import torch and fedsim again. Ray ends both when the
    process ends.

    Parameters
    ----------
    client_resources : dict[str, float]
        ``num_cpus`` (greater than 0) and ``num_gpus`` (at least 0, fractions share a
        GPU) reserved for each ClientApp actor.
    address : str | None
        Address of a running Ray cluster to join; None starts a local Ray runtime.
    """

    def __init__(self, *, client_resources: dict[str, float], address: str | None) -> None:
        require(
            sorted(client_resources) == ["num_cpus", "num_gpus"],
            f"engine.client_resources must set exactly num_cpus and num_gpus (got {sorted(client_resources)}).",
        )
        num_cpus, num_gpus = client_resources["num_cpus"], client_resources["num_gpus"]
        # The nested values reach here unchecked by the signature's types, so a string fails here too.
        require(
            isinstance(num_cpus, (int, float)) and num_cpus > 0,
            f"engine.client_resources.num_cpus must be greater than 0 (got {num_cpus!r}).",
        )
        require(
            isinstance(num_gpus, (int, float)) and num_gpus >= 0,
            f"engine.client_resources.num_gpus must be at least 0 (got {num_gpus!r}).",
        )
        self.client_resources = dict(client_resources)
        self.address = address

    def run(self, server_app: ServerApp, client_app: ClientApp, num_nodes: int) -> None:
        from flwr.simulation import run_simulation

        # Keep Ray's current behaviour (and silence its notice about changing it).
        os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
        init_args = {"address": self.address} if self.address else {}
        start_ray(init_args)
        notice_filter = _DropRunSimulationDeprecation()
        flwr_logger = logging.getLogger("flwr")
        flwr_logger.addFilter(notice_filter)
        try:
            with ray_kept_running():
                run_simulation(
                    server_app=server_app,
                    client_app=client_app,
                    num_supernodes=num_nodes,
                    backend_config={"client_resources": self.client_resources, "init_args": init_args},
                )
        except BaseException:
            discard_kept_actors()  # a failed run may leave its actors busy or broken
            raise
        finally:
            flwr_logger.removeFilter(notice_filter)


def start_ray(init_args: dict) -> None:
    """Start Ray as Flower's Ray backend would, unless this process already runs it so."""
    global _started_with  # pylint: disable=global-statement
    import ray

    if ray.is_initialized() and _started_with in (None, init_args):
        return  # ours with these arguments, or started by the user: use it
    if ray.is_initialized():
        ray.shutdown()
    pythonpath = os.pathsep.join(sys.path)  # Ray's workers need this process's import path
    ray.init(
        runtime_env={"env_vars": {"PYTHONPATH": pythonpath}},
        include_dashboard=False,
        # Ray's own log lines from WARNING up, forwarded to this process: the defaults of
        # Flower's simulation config (`flwr run`), which run_simulation does not pass.
        logging_level="WARNING",
        log_to_driver=True,
        **init_args,
    )
    _started_with = dict(init_args)


@contextmanager
def ray_kept_running() -> Iterator[None]:
    """Let Flower's Ray backend keep the Ray runtime and its idle actors for the next run.

    A run whose actors are all idle and alive at its end leaves them to the next run
    with the same client resources, which uses them instead of starting new ones
    (Flower's actors load the ClientApp anew for every message, so nothing of a run's
    apps stays behind in them); otherwise they are ended as Flower ends them.
    """
    backend_class = ray_backend_class()

    def build_or_reuse(backend: "RayBackend", app_fn) -> None:
        global _kept_actors  # pylint: disable=global-statement
        if _kept_actors is not None and _kept_actors[0] == backend.client_resources:
            backend.pool, backend.app_fn = _kept_actors[1], app_fn
            _kept_actors = None
            return
        discard_kept_actors()
        build(backend, app_fn)

    def keep_idle_actors(backend: "RayBackend") -> None:
        global _kept_actors  # pylint: disable=global-statement
        pool = backend.pool
        if pool is None:
            return
        if pool.num_actors and len(pool.pool) == pool.num_actors and _alive(pool.pool):
            _kept_actors = (dict(backend.client_resources), pool)
        else:
            end_idle_actors(pool)

    build, terminate = backend_class.build, backend_class.terminate
    backend_class.build, backend_class.terminate = build_or_reuse, keep_idle_actors
    try:
        yield
    finally:
        backend_class.build, backend_class.terminate = build, terminate


def discard_kept_actors() -> None:
    """End the actors a previous run left for the next one, if any."""
    global _kept_actors  # pylint: disable=global-statement
    if _kept_actors is not None:
        end_idle_actors(_kept_actors[1])
        _kept_actors = None


def end_idle_actors(pool: "BasicActorPool") -> None:
    """End the idle actors of ``pool``, as Flower's ``terminate_all_actors`` does, but silently.

    Flower's way asks each actor to end itself, and each logs "Manually terminating
    ClientAppActor" first, a line Ray forwards to this terminal. ``ray.kill`` ends an
    idle actor from outside, before its next task, without running its code.
    """
    import ray

    for actor in pool.pool:
        ray.kill(actor)


def _alive(actors: list) -> bool:
    """Whether every actor answers (a crashed actor would fail every message sent to it)."""
    import ray

    try:
        ray.get([actor.__ray_ready__.remote() for actor in actors], timeout=30)
    except ray.exceptions.RayError:
        return False
    return True
