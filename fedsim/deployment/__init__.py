"""From simulation to a real federation: fedsim's apps on a Flower SuperLink and SuperNodes over TLS.

``engine=deployment`` (``DeploymentEngine``) starts a SuperLink and SuperNodes on this
machine, or uses an existing SuperLink, and runs the same ServerApp and ClientApp as
the simulation engines; ``fedsim.deployment.app`` holds the components ``flwr run`` loads.
"""

from fedsim.deployment.engine import DeploymentEngine

__all__ = ["DeploymentEngine"]
