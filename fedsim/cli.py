"""The ``fedsim`` command: compose the Hydra config, run it, report.

In a sweep (``fedsim -m ...``) a run that fails is recorded as failed in its folder
and the sweep goes on; the sweep's root gets ``sweep.yaml``, its overrides. A run that
diverges (``stop_on_divergence``) is recorded ``diverged`` and exits with code 3. When the
sweep ends, ``k of n runs failed`` and one line per failed run go to stderr and the
exit code is 1. SIGINT or SIGTERM ends a run (and its sweep) with one line on stderr,
``status: interrupted`` and exit code 130 or 143.
"""

import os
import sys
import warnings
from pathlib import Path
from typing import NoReturn

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from fedsim.compose import group_choices
from fedsim.config import ConfigError, register_schemas
from fedsim.config.checks import FedsimWarning
from fedsim.divergence import Diverged
from fedsim.interrupt import RunInterrupted, handle_signals
from fedsim.results import (
    SWEEP_FILE,
    read_status,
    record_failure,
    running_details,
    save_sweep,
    write_status,
)
from fedsim.run_folder import RunFolderTaken, claim, register_resolver

CONFIG_PATH = "pkg://fedsim.conf"
DIVERGED_EXIT_CODE = 3  # 1: a bug or Hydra's own error, 2: bad input
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
        SWEEP_JOBS.append((hydra_cfg.job.num, list(hydra_cfg.overrides.task), run_dir))
    try:
        claim(run_dir, OVERWRITE[0], "hydra.sweep.dir" if sweeping else "hydra.run.dir")
    except RunFolderTaken as taken:
        if sweeping:
            REFUSED[run_dir] = str(taken)
            from fedsim.terminal import print_run_line

            print_run_line(label, run_dir, failure=str(taken))
            return None
        print(f"fedsim: error: {taken}", file=sys.stderr)
        sys.exit(2)
    write_status(run_dir, "running", **running_details())
    try:
        with handle_signals():
            from fedsim.runner import run

            summary = run(cfg, run_dir, group_choices(hydra_cfg.runtime.choices, cfg), quiet=quiet)
    except KeyboardInterrupt as stop:  # RunInterrupted (SIGINT, SIGTERM) or a plain Ctrl-C
        report_interruption(stop, run_dir, cfg.num_rounds)
    except Diverged as diverged:  # an outcome, recorded by the runner; its warning line already said it
        if sweeping:
            from fedsim.terminal import print_run_line

            print_run_line(label, run_dir, failure=str(diverged))
            return None
        sys.exit(DIVERGED_EXIT_CODE)
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


# The jobs of the sweep this process runs (Hydra's basic launcher runs them here, one
# after the other): (job number, overrides, run folder), for the summary at its end.
SWEEP_JOBS: list[tuple[int, list[str], Path]] = []
REFUSED: dict[Path, str] = {}  # sweep jobs refused because their folder holds another run: why
OVERWRITE = [False]  # overwrite=true on the command line: run into a folder that holds another run's results
# Hydra's flags after which no run starts here, or a sweep does (its jobs claim their folders).
NO_SINGLE_RUN = {"-m", "--multirun", "--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i",
                 "--shell-completion", "-sc", "--resolve", "-p", "--package"}


def report_interruption(stop: KeyboardInterrupt, run_dir: Path, num_rounds: int) -> NoReturn:
    """End the command after a signal: one line on stderr, exit 128 + the signal (130 for SIGINT, 143 for SIGTERM)."""
    status = read_status(run_dir)
    if status["status"] != "interrupted":  # stopped before the runner could record it
        write_status(run_dir, "interrupted", last_round=0)
        status = read_status(run_dir)
    print(
        f"fedsim: interrupted after round {status.get('last_round', 0)} of {num_rounds}; "
        f"results so far in {run_dir}",
        file=sys.stderr,
    )
    sys.exit(stop.exit_code if isinstance(stop, RunInterrupted) else 130)


def report_sweep() -> int:
    """After a sweep: ``k of n runs failed`` and one line per failed run on stderr; the exit code (1 if any failed)."""
    failed = []
    for number, overrides, run_dir in SWEEP_JOBS:
        status = {"reason": REFUSED[run_dir]} if run_dir in REFUSED else read_status(run_dir)
        if status.get("status") != "completed":
            reason = status.get("reason") or status.get("status")
            failed.append(f"  #{number} {' '.join(overrides)}: {reason}  {run_dir}")
    if not failed:
        return 0
    print(f"fedsim: {len(failed)} of {len(SWEEP_JOBS)} runs failed:", file=sys.stderr)
    for line in failed:
        print(line, file=sys.stderr)
    return 1


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


def take_overwrite(args: list[str]) -> list[str]:
    """Read fedsim's own ``overwrite=BOOL`` flag (not part of the run's config) and drop it from the arguments."""
    kept = []
    for arg in args:
        key, equals, value = arg.partition("=")
        if equals and key.lstrip("+") == "overwrite":
            OVERWRITE[0] = value.strip().lower() in ("true", "1", "yes")
        else:
            kept.append(arg)
    return kept


def claim_explicit_run_dir(args: list[str]) -> None:
    """Claim a single run's ``hydra.run.dir=DIR`` before Hydra writes ``DIR/.hydra``: a refusal leaves DIR as it was."""
    if NO_SINGLE_RUN & set(args):
        return
    for arg in args:
        key, equals, value = arg.partition("=")
        if equals and key == "hydra.run.dir" and "${" not in value:
            try:
                claim(value, OVERWRITE[0])
            except RunFolderTaken as taken:
                print(f"fedsim: error: {taken}", file=sys.stderr)
                sys.exit(2)


def main() -> None:
    """Entry point of the ``fedsim`` console script."""
    os.environ.setdefault("TQDM_DISABLE", "1")  # libraries' progress bars; fedsim prints its own
    warnings.showwarning = show_warning
    register_schemas()
    register_resolver()
    sys.argv[1:] = take_overwrite(sys.argv[1:])
    claim_explicit_run_dir(sys.argv[1:])
    try:
        _run_from_hydra()  # pylint: disable=no-value-for-parameter
    except KeyboardInterrupt:  # Ctrl-C outside a run (while Hydra composes, between a sweep's jobs)
        print("fedsim: interrupted", file=sys.stderr)
        sys.exit(130)
    if SWEEP_JOBS:
        sys.exit(report_sweep())


if __name__ == "__main__":
    main()
