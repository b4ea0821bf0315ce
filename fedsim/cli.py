"""The ``fedsim`` command: compose the Hydra config, run it, report.

In a sweep (``fedsim -m ...``) a run that fails is recorded as failed in its folder
and the sweep goes on; the sweep's root gets ``sweep.yaml``, its overrides.
"""

import os
import sys
import warnings
from pathlib import Path

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from fedsim.compose import group_choices
from fedsim.config import ConfigError, register_schemas
from fedsim.config.checks import FedsimWarning
from fedsim.results import SWEEP_FILE, read_status, record_failure, save_sweep, write_status

CONFIG_PATH = "pkg://fedsim.conf"
HYDRA_SWEEP_FILE = "multirun.yaml"  # Hydra writes it at the sweep root before the first job


@hydra.main(config_path=CONFIG_PATH, config_name="config", version_base=None)
def _run_from_hydra(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN
    quiet = sweeping if cfg.quiet is None else cfg.quiet
    label = f"#{hydra_cfg.job.num} {' '.join(hydra_cfg.overrides.task)}" if sweeping else "run"
    if sweeping:
        describe_sweep(Path(hydra_cfg.sweep.dir))
    write_status(run_dir, "running")
    try:
        from fedsim.runner import run

        summary = run(cfg, run_dir, group_choices(hydra_cfg.runtime.choices, cfg), quiet=quiet)
    except Exception as error:  # pylint: disable=broad-exception-caught
        if read_status(run_dir)["status"] != "failed":  # the runner records what fails inside it
            record_failure(run_dir, error)
        if sweeping:
            from fedsim.terminal import print_run_line

            print_run_line(label, run_dir, failure=str(read_status(run_dir)["reason"]))
            return None
        if isinstance(error, ConfigError):
            print(f"fedsim: error: {error}", file=sys.stderr)
            sys.exit(2)
        raise
    if quiet:
        from fedsim.terminal import print_run_line

        print_run_line(label, run_dir, summary.final, summary.seconds)
    return summary.final.get("centralized_accuracy")


def describe_sweep(sweep_dir: Path) -> None:
    """Write the sweep's overrides and swept parameters at its root, once."""
    if (sweep_dir / SWEEP_FILE).is_file():
        return
    hydra_node = yaml.safe_load((sweep_dir / HYDRA_SWEEP_FILE).read_text())["hydra"]
    save_sweep(sweep_dir, hydra_node["overrides"]["task"], hydra_node["sweeper"].get("params") or {})


def show_warning(  # pylint: disable=too-many-arguments,too-many-positional-arguments
    message, category, filename, lineno, file=None, line=None
) -> None:
    """Show fedsim's own warnings (``FedsimWarning``) as one line, ``fedsim: warning: ...``; others as Python does.

    A fedsim warning is a sentence for the user, so the file, line and source line
    Python adds would only repeat it.
    """
    if issubclass(category, FedsimWarning):
        print(f"fedsim: warning: {message}", file=file or sys.stderr)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def main() -> None:
    """Entry point of the ``fedsim`` console script."""
    os.environ.setdefault("TQDM_DISABLE", "1")  # libraries' progress bars; fedsim prints its own
    warnings.showwarning = show_warning
    register_schemas()
    _run_from_hydra()  # pylint: disable=no-value-for-parameter


if __name__ == "__main__":
    main()
