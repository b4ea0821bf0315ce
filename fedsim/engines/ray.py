"""The ray engine: Flower's Simulation Engine, for many cores, GPUs or a Ray cluster."""

import logging
import os

from flwr.clientapp import ClientApp
from flwr.serverapp import ServerApp


class _DropRunSimulationDeprecation(logging.Filter):
    """fedsim calls ``run_simulation`` on purpose (it takes app objects); hide its notice."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`run_simulation` function is deprecated" not in record.getMessage()


class RayEngine:
    """Run the apps with ``flwr.simulation.run_simulation`` on Ray.

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
        notice_filter = _DropRunSimulationDeprecation()
        flwr_logger = logging.getLogger("flwr")
        flwr_logger.addFilter(notice_filter)
        try:
            run_simulation(
                server_app=server_app,
                client_app=client_app,
                num_supernodes=num_nodes,
                backend_config={"client_resources": self.client_resources, "init_args": init_args},
            )
        finally:
            flwr_logger.removeFilter(notice_filter)
