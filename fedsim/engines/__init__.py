"""Engines run the same Flower ServerApp and ClientApp objects in different runtimes."""

from fedsim.engines.local import LocalEngine, LocalGrid
from fedsim.engines.ray import RayEngine

__all__ = ["LocalEngine", "LocalGrid", "RayEngine"]
