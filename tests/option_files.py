"""The config options shipped in conf/GROUP/NAME.yaml, read as plain YAML (no Hydra composition).

Tests call a target with the settings its YAML states, so the defaults they rely on are
the ones a user gets, stated once, in the YAML.
"""

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

import fedsim.conf

CONF = Path(fedsim.conf.__path__[0])
# The top-level keys the options interpolate (seed: ${seed}, num_partitions: ${num_clients}).
TOP_LEVEL = {"seed": 0, "num_clients": 20}


def option_names(group: str) -> list[str]:
    """The options of a group: the YAML files of conf/GROUP, without .yaml."""
    return sorted(path.stem for path in (CONF / group).glob("*.yaml"))


def option_node(group: str, name: str, **top_level: Any) -> DictConfig:
    """conf/GROUP/NAME.yaml as a node under a root with the top-level keys, so its interpolations resolve."""
    root = OmegaConf.create({**TOP_LEVEL, **top_level, group: OmegaConf.load(CONF / group / f"{name}.yaml")})
    return root[group]


def option_settings(group: str, name: str, **settings: Any) -> dict[str, Any]:
    """The settings conf/GROUP/NAME.yaml states (interpolations resolved, no ``_target_``), some replaced."""
    stated = OmegaConf.to_container(option_node(group, name), resolve=True)
    del stated["_target_"]
    unknown = set(settings) - set(stated)
    assert not unknown, f"{group}/{name} has no setting {unknown}"
    return {**stated, **settings}
