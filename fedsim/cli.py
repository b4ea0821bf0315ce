"""The ``fedsim`` command: compose the Hydra config, run it, report."""

import os
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from fedsim.config import ConfigError, register_schemas, validate

CONFIG_PATH = "pkg://fedsim.conf"


@hydra.main(config_path=CONFIG_PATH, config_name="config", version_base=None)
def _run_from_hydra(cfg: DictConfig) -> float | None:
    runtime = HydraConfig.get().runtime
    choices = {group: option for group, option in runtime.choices.items() if not group.startswith(("hydra", "schema"))}
    try:
        validate(cfg)  # before the heavy imports, so a mistyped value fails fast
        from fedsim.runner import run

        summary = run(cfg, runtime.output_dir, choices)
    except ConfigError as error:
        print(f"fedsim: error: {error}", file=sys.stderr)
        sys.exit(2)
    return summary.final.get("centralized_accuracy")


def main() -> None:
    """Entry point of the ``fedsim`` console script."""
    os.environ.setdefault("TQDM_DISABLE", "1")  # libraries' progress bars; fedsim prints its own
    register_schemas()
    _run_from_hydra()  # pylint: disable=no-value-for-parameter


if __name__ == "__main__":
    main()
