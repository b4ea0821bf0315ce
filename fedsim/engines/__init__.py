"""Engines run the same Flower ServerApp and ClientApp objects in different runtimes."""

from fedsim.engines.local import LocalEngine, LocalGrid
from fedsim.engines.ray import RayEngine
from fedsim.engines.workers import WorkerPool

__all__ = ["LocalEngine", "LocalGrid", "RayEngine", "WorkerPool"]
