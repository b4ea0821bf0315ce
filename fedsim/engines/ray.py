"""The ray engine: Flower's Simulation Engine, for many cores, GPUs or a Ray cluster."""

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from flwr.clientapp import ClientApp
from flwr.serverapp import ServerApp

# The arguments this process's Ray runtime was started with by fedsim, if it was.
_started_with: dict | None = None


class _DropRunSimulationDeprecation(logging.Filter):
    """fedsim calls ``run_simulation`` on purpose (it takes app objects); hide its notice."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`run_simulation` function is deprecated" not in record.getMessage()


class RayEngine:
    """Run the apps with ``flwr.simulation.run_simulation`` on Ray.

    The Ray runtime is started once per process and kept for the next run (the runs
    of a Hydra sweep share it): Flower's Ray backend shuts Ray down after every run,
    which costs each run Ray's start-up again. Ray shuts it down when the process ends.

    Parameters
    ----------
    client_resources : dict
        ``num_cpus`` and ``num_gpus`` reserved for each ClientApp actor.
    address : str | None
        Address of a running Ray cluster to join; None starts a local Ray runtime.
    """

    def __init__(self, client_resources: dict, address: str | None = None) -> None:
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
        finally:
            flwr_logger.removeFilter(notice_filter)


def start_ray(init_args: dict) -> None:
    """Start Ray as Flower's Ray backend would, unless this process already runs it so."""
    global _started_with  # pylint: disable=global-statement
    import ray
    from flwr.supercore.constant import DEFAULT_SIMULATION_CONFIG

    if ray.is_initialized() and _started_with in (None, init_args):
        return  # ours with these arguments, or started by the user: use it
    if ray.is_initialized():
        ray.shutdown()
    pythonpath = os.pathsep.join(sys.path)  # Ray's workers need this process's import path
    ray.init(
        runtime_env={"env_vars": {"PYTHONPATH": pythonpath}},
        include_dashboard=False,
        logging_level=DEFAULT_SIMULATION_CONFIG.init_args_logging_level,
        log_to_driver=DEFAULT_SIMULATION_CONFIG.init_args_log_to_driver,
        **init_args,
    )
    _started_with = dict(init_args)


@contextmanager
def ray_kept_running() -> Iterator[None]:
    """Let Flower's Ray backend end its actors but not the Ray runtime."""
    from flwr.server.superlink.fleet.vce.backend.raybackend import RayBackend

    def terminate_actors(backend: RayBackend) -> None:
        if backend.pool:
            backend.pool.terminate_all_actors()

    terminate = RayBackend.terminate
    RayBackend.terminate = terminate_actors
    try:
        yield
    finally:
        RayBackend.terminate = terminate
