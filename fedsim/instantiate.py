"""The one place where config nodes become objects."""

from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig


def build(node: DictConfig, **runtime: Any) -> Any:
    """Instantiate ``node`` (a config with ``_target_``), adding runtime-only arguments.

    Errors raised by the target reach the caller unwrapped, so callers can turn the
    ones a user caused into one clear sentence.
    """
    factory = instantiate(node, _partial_=True, _convert_="all")
    return factory(**runtime)
