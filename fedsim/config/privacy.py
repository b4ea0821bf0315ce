"""Schemas of the privacy options."""

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig

from fedsim.config.checks import require


@dataclass
class NoPrivacyConfig:
    mechanism: str = "none"


SCHEMAS: dict[str, type] = {
    "none": NoPrivacyConfig,
}


def validate(privacy: DictConfig, cfg: DictConfig) -> None:
    """The privacy options have no values beyond what their types check."""
