"""The Flower App folder of a run: a ``pyproject.toml`` that ``flwr run`` bundles and sends to the SuperLink.

The app ships no code: its components are ``fedsim.deployment.app:server_app`` and
``:client_app`` of the fedsim installed where they run (the SuperLink's machine and every
SuperNode's), so a node runs only the fedsim its operator installed. Its run config
(``[tool.flwr.app.config]``) is the run's: see ``fedsim.deployment.app``. It declares no
dependencies, so a SuperLink that installs apps' dependencies (Flower's default) has
nothing to install.
"""

from collections.abc import Mapping
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from fedsim.deployment.app import (
    CHOICES_KEY,
    CONFIG_KEY,
    FEDERATION_KEY,
    MODEL_KEY,
    MODEL_SEED_KEY,
    RUN_DIR_KEY,
)

APP_NAME = "fedsim-run"
PUBLISHER = "fedsim"
COMPONENTS = {"serverapp": "fedsim.deployment.app:server_app", "clientapp": "fedsim.deployment.app:client_app"}


def run_config(
    federation: str, model: str, model_seed: int, config: str = "", choices: str = "", run_dir: str = ""
) -> dict[str, str | int]:
    """The run config of a run: what the nodes build from, and what Flower's runtime runs (see ``fedsim.deployment.app``)."""
    return {
        FEDERATION_KEY: federation, MODEL_KEY: model, MODEL_SEED_KEY: int(model_seed),
        CONFIG_KEY: config, CHOICES_KEY: choices, RUN_DIR_KEY: run_dir,
    }


def run_config_of(cfg: DictConfig, choices: Mapping[str, str] | None = None, run_dir: str = "") -> dict[str, str | int]:
    """The run config of the experiment ``cfg`` (a composed fedsim config), for Flower's runtime to run whole."""
    import yaml

    from fedsim.data.spec import FederationSpec

    return run_config(
        federation=FederationSpec.from_config(cfg).settings,
        model=OmegaConf.to_yaml(cfg.model, resolve=True),
        model_seed=int(cfg.seed),
        config=OmegaConf.to_yaml(cfg, resolve=True),
        choices=yaml.safe_dump(dict(choices or {}), sort_keys=False),
        run_dir=run_dir,
    )


def write_app(folder: str | Path, config: Mapping[str, str | int]) -> Path:
    """Write the Flower App folder with run config ``config`` to ``folder`` (created); return the folder."""
    import tomli_w

    from fedsim import __version__

    project = {
        "project": {
            "name": APP_NAME,
            "version": __version__,
            "description": "A fedsim experiment as a Flower App: fedsim's ServerApp and ClientApp, its config.",
            "license": "Apache-2.0",
            "dependencies": [],
        },
        "tool": {"flwr": {"app": {"publisher": PUBLISHER, "components": COMPONENTS, "config": dict(config)}}},
    }
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(tomli_w.dumps(project, multiline_strings=True))
    return folder
