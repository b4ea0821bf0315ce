"""Compose a run's config from Python (a notebook, a script) as the ``fedsim`` command does."""

from collections.abc import Mapping

from omegaconf import DictConfig, open_dict

from fedsim.config import register_schemas


def group_choices(choices: Mapping[str, str | None], cfg: DictConfig) -> dict[str, object]:
    """The option chosen in each fedsim config group, without Hydra's own groups.

    ``callbacks`` holds several options at once: it is recorded as their names, comma-separated.
    """
    chosen: dict[str, object] = {
        group: option
        for group, option in choices.items()
        if option is not None and not group.startswith(("hydra", "schema", "callbacks"))
    }
    chosen["callbacks"] = ",".join(cfg.get("callbacks") or {})
    return chosen


def compose(*overrides: str) -> tuple[DictConfig, dict[str, str]]:
    """The config ``fedsim OVERRIDES`` would run, and the option chosen in each group.

    >>> cfg, choices = compose("strategy=fedadam", "num_rounds=5")
    >>> fedsim.runner.run(cfg, "runs/fedadam", choices)
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    register_schemas()
    with initialize_config_module("fedsim.conf", version_base=None):
        cfg = hydra_compose("config", overrides=list(overrides), return_hydra_config=True)
    choices = group_choices(cfg.hydra.runtime.choices, cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, choices
