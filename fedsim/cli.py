"""The ``fedsim`` command: compose the Hydra config, run it, report.

In a sweep (``fedsim -m ...``) a run that fails is recorded as failed in its folder
and the sweep goes on; the sweep's root gets ``sweep.yaml``, its overrides. A run that
diverges (``stop_on_divergence``) is recorded ``diverged`` and exits with code 3. When the
sweep ends, ``k of n runs failed`` and one line per failed run go to stderr and the
exit code is 1, whichever Hydra launcher ran the jobs (``hydra/launcher=joblib`` or
``submitit_*`` run them in other processes): each job notes itself at the sweep's root and
the summary reads those notes and the jobs' ``status.yaml``. SIGINT or SIGTERM ends a run
(and its sweep) with one line on stderr, ``status: interrupted`` and exit code 130 or 143.
"""

import os
import sys
import threading
import warnings
from importlib import resources
from pathlib import Path
from typing import NoReturn

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from fedsim.compose import group_choices
from fedsim.config import GROUPS, Config, ConfigError, register_schemas
from fedsim.config.checks import FedsimWarning
from fedsim.divergence import Diverged
from fedsim.interrupt import RunInterrupted, handle_signals
from fedsim.results import (
    CHOICES_FILE,
    CONFIG_FILE,
    STATUS_FILE,
    read_status,
    record_failure,
    running_details,
    save_sweep,
    write_status,
)
from fedsim.run_folder import (
    RunFolderTaken,
    claim,
    configured_folder,
    literal_folder,
    register_resolver,
    why_unwritable,
)
from fedsim.versions import check_versions

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
        prepare_job_process()
        job = (Path(hydra_cfg.sweep.dir), hydra_cfg.job.num, list(hydra_cfg.overrides.task), run_dir)
        note_sweep_job(*job)
    resuming = RESUME_VARIABLE in os.environ  # fedsim resume=SWEEP_DIR runs the sweep again
    if resuming and (done := finished(run_dir)):
        print(f"{label}  already {done}; not run again  {run_dir}")
        return None
    try:
        claim(run_dir, OVERWRITE[0] or resuming, "hydra.sweep.dir" if sweeping else "hydra.run.dir")
        if resuming:
            check_versions(run_dir, os.environ[RESUME_VARIABLE] == "force")
    except (RunFolderTaken, ConfigError) as taken:
        if sweeping:
            note_sweep_job(*job, refused=str(taken))
            from fedsim.terminal import print_run_line

            print_run_line(label, run_dir, failure=str(taken))
            return None
        say(f"fedsim: error: {taken}")
        sys.exit(2)
    choices = group_choices(hydra_cfg.runtime.choices, cfg)
    if resuming and (run_dir / CONFIG_FILE).is_file():
        cfg, choices = load_run_config(run_dir)
    return run_and_report(cfg, run_dir, choices, quiet, label if sweeping else None, resuming)


def run_and_report(  # pylint: disable=too-many-arguments,too-many-positional-arguments
    cfg: DictConfig, run_dir: Path, choices: dict, quiet: bool, sweep_label: str | None, resume: bool = False
) -> float | None:
    """Run ``cfg`` in the claimed ``run_dir`` (resumed from its checkpoint if ``resume``) and report how it ended.

    A run of a sweep (``sweep_label``) that fails or diverges prints its one line and
    returns; a single run exits with the code of how it ended. The final centralized
    accuracy is returned (Hydra's sweepers may optimise it).
    """
    sweeping = sweep_label is not None
    label = sweep_label or "run"
    write_status(run_dir, "running", **running_details())
    try:
        with handle_signals():
            from fedsim.runner import run

            summary = run(cfg, run_dir, choices, quiet=quiet, resume=resume)
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
            say(f"fedsim: error: {error}")
            sys.exit(2)
        raise
    if quiet:
        from fedsim.terminal import print_run_line

        print_run_line(label, run_dir, summary.final, summary.seconds)
    return summary.final.get("centralized_accuracy")


SWEEP_DIR: list[Path] = []  # the folder of the sweep this process launched (SweepSummary), for its summary
JOBS_FOLDER = ".jobs"  # at a sweep's root: one note per job that started, written by the job wherever it runs
OVERWRITE = [False]  # overwrite=true on the command line: run into a folder that holds another run's results
FORCE = [False]  # force=true with resume=: resume under other versions than the run ran under
# Set while fedsim resume=SWEEP_DIR runs a sweep again ("force": force=true); its jobs, in whatever process, read it.
RESUME_VARIABLE = "FEDSIM_RESUME"
FINISHED_STATUSES = ("completed", "diverged")  # outcomes: a resumed sweep does not run them again
# Hydra's flags after which no run starts here, or a sweep does (its jobs claim their folders).
NO_SINGLE_RUN = {"-m", "--multirun", "--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i",
                 "--shell-completion", "-sc", "--resolve", "-p", "--package"}


def report_interruption(stop: KeyboardInterrupt, run_dir: Path, num_rounds: int) -> NoReturn:
    """End the command after a signal: one line on stderr, exit 128 + the signal (130 for SIGINT, 143 for SIGTERM)."""
    status = read_status(run_dir)
    if status["status"] != "interrupted":  # stopped before the runner could record it
        write_status(run_dir, "interrupted", last_round=0)
        status = read_status(run_dir)
    say(f"fedsim: interrupted after round {status.get('last_round', 0)} of {num_rounds}; results so far in {run_dir}")
    sys.exit(stop.exit_code if isinstance(stop, RunInterrupted) else 130)


class SweepSummary(Callback):
    """Hydra callback (``hydra.callbacks`` in conf/config.yaml), called in the process that launches a sweep.

    Before the first job starts, wherever the launcher runs it, the sweep's root gets
    ``sweep.yaml`` (its overrides and swept parameters) and loses the job notes of an
    earlier sweep in the same folder; ``report_sweep`` then reads the notes of this one.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: object) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        params = OmegaConf.select(config, "hydra.sweeper.params")
        save_sweep(sweep_dir, list(config.hydra.overrides.task), OmegaConf.to_container(params) if params else {})
        for stale in (sweep_dir / JOBS_FOLDER).glob("*.yaml"):
            stale.unlink()
        SWEEP_DIR[:] = [sweep_dir]


def prepare_job_process() -> None:
    """Set up a process that runs sweep jobs as ``main`` sets up its own: a launcher's workers did not start there."""
    warnings.showwarning = show_warning
    # tqdm's default lock is a multiprocessing semaphore; a worker that its launcher kills
    # at Ctrl-C leaves it to Python's resource tracker, which then warns of a leaked one.
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())


def note_sweep_job(  # pylint: disable=too-many-arguments,too-many-positional-arguments
    sweep_dir: Path, number: int, overrides: list[str], run_dir: Path, refused: str | None = None
) -> None:
    """Note a job at its sweep's root for ``report_sweep``, with why its folder was refused if it was."""
    note = {"number": number, "overrides": overrides, "run_dir": str(run_dir)}
    if refused is not None:
        note["refused"] = refused
    folder = sweep_dir / JOBS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{number}.{os.getpid()}.tmp"  # then renamed: the summary never reads half a note
    temporary.write_text(yaml.safe_dump(note, sort_keys=False))
    os.replace(temporary, folder / f"{number}.yaml")


def report_sweep() -> int:
    """After a sweep: ``k of n runs failed`` and one line per failed run on stderr; the exit code (1 if any failed).

    The jobs are those that noted themselves at the sweep's root, in whatever process
    or machine the launcher ran them; a job's outcome is its folder's ``status.yaml``.
    """
    if not SWEEP_DIR:
        return 0
    notes = [yaml.safe_load(path.read_text()) for path in (SWEEP_DIR[0] / JOBS_FOLDER).glob("*.yaml")]
    failed = []
    for note in sorted(notes, key=lambda note: note["number"]):
        run_dir = Path(note["run_dir"])
        reason = note.get("refused") or why_not_completed(run_dir)
        if reason:
            failed.append(f"  #{note['number']} {' '.join(note['overrides'])}: {reason}  {run_dir}")
    if not failed:
        return 0
    say(f"fedsim: {len(failed)} of {len(notes)} runs failed:")
    for line in failed:
        say(line)
    return 1


def why_not_completed(run_dir: Path) -> str | None:
    """Why the run of an ended sweep job did not complete, or None if it did."""
    if not (run_dir / STATUS_FILE).is_file():
        return "its job ended before the run started"
    status = read_status(run_dir)
    if status["status"] == "completed":
        return None
    if status["status"] == "running":  # its process may be on another host, but the sweep is over
        return "its job ended without recording the end of the run"
    return str(status.get("reason") or status["status"])


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


def take_flags(args: list[str]) -> tuple[list[str], str | None]:
    """Read fedsim's own flags (not part of the run's config) and drop them from the arguments.

    ``overwrite=BOOL`` and ``force=BOOL`` set ``OVERWRITE`` and ``FORCE``; the value of
    ``resume=PATH`` is returned with the arguments that remain.
    """
    kept, resume = [], None
    for arg in args:
        key, equals, value = arg.partition("=")
        key = key.lstrip("+")
        if equals and key in ("overwrite", "force"):
            (OVERWRITE if key == "overwrite" else FORCE)[0] = value.strip().lower() in ("true", "1", "yes")
        elif equals and key == "resume":
            resume = value
        else:
            kept.append(arg)
    return kept, resume


def finished(run_dir: Path) -> str | None:
    """The outcome of the run in ``run_dir`` if it has one (completed, diverged), else None."""
    if not (run_dir / STATUS_FILE).is_file():
        return None
    status = read_status(run_dir)["status"]
    return status if status in FINISHED_STATUSES else None


def load_run_config(run_dir: Path) -> tuple[DictConfig, dict]:
    """The config and group choices a run folder recorded, typed by the schema as when it was composed.

    A folder written by an earlier fedsim (a resume with ``force=true``) lacks the settings
    and groups fedsim gained since: they get their defaults, which change nothing the
    earlier fedsim did (device cpu, attack none, no faults, ...).
    """
    choices_path = run_dir / CHOICES_FILE
    choices = (yaml.safe_load(choices_path.read_text()) or {}) if choices_path.is_file() else {}
    recorded = OmegaConf.load(run_dir / CONFIG_FILE)
    conf = resources.files("fedsim.conf")
    defaults = OmegaConf.load(conf / "config.yaml")
    for item in defaults.defaults:  # the default option of every group the folder does not name
        group, option = next(iter(item.items())) if isinstance(item, DictConfig) else (None, None)
        if group in GROUPS and group not in recorded:
            recorded[group] = OmegaConf.load(conf / group / f"{option}.yaml")
            choices.setdefault(group, option)
    for key, value in defaults.items():  # and of every setting
        if key in ("defaults", "hydra", *GROUPS):
            continue
        if key not in recorded:
            recorded[key] = value
        elif isinstance(value, DictConfig):  # client, checkpoint, faults: the keys gained since
            recorded[key] = OmegaConf.merge(value, recorded[key])
    return OmegaConf.merge(OmegaConf.structured(Config), recorded), choices


def resume(path: str, args: list[str]) -> NoReturn:
    """``fedsim resume=PATH``: continue the run in PATH after its checkpoint, or every unfinished run of a sweep."""
    if args:
        fail(f"resume={path} takes no other settings (got {' '.join(args)}): the run goes on with its own config.yaml.")
    run_dir = Path(path)
    if (run_dir / HYDRA_SWEEP_FILE).is_file():
        resume_sweep(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        fail(f"resume={path} names no fedsim run folder or sweep folder (it holds no {CONFIG_FILE} or {HYDRA_SWEEP_FILE}).")
    if done := finished(run_dir):
        say(f"fedsim: {path} already {done}; there is nothing to resume.")
        sys.exit(0)
    try:
        claim(run_dir, overwrite=True)
    except RunFolderTaken:
        fail(f"{path} is in use by another fedsim run; resume it once that run has ended.")
    try:
        check_versions(run_dir, FORCE[0])
    except ConfigError as error:
        fail(str(error))
    cfg, choices = load_run_config(run_dir)
    run_and_report(cfg, run_dir, choices, bool(cfg.quiet), None, resume=True)
    sys.exit(0)


def resume_sweep(sweep_dir: Path) -> NoReturn:
    """Run the sweep in ``sweep_dir`` again with its own overrides: finished runs are skipped, the others resumed."""
    hydra_node = yaml.safe_load((sweep_dir / HYDRA_SWEEP_FILE).read_text())["hydra"]
    own = [o for o in hydra_node["overrides"]["hydra"] if o.split("=")[0] not in ("hydra.mode", "hydra.sweep.dir")]
    sys.argv[1:] = ["-m", *hydra_node["overrides"]["task"], *own, f"hydra.sweep.dir={sweep_dir}"]
    os.environ[RESUME_VARIABLE] = "force" if FORCE[0] else "1"
    run_hydra()
    sys.exit(report_sweep())


def say(line: str) -> None:
    """One line on stderr in one write: the lines of a sweep's parallel jobs and its own never interleave."""
    sys.stderr.write(f"{line}\n")
    sys.stderr.flush()


def fail(sentence: str) -> NoReturn:
    """Bad input: one sentence on stderr, exit code 2."""
    say(f"fedsim: error: {sentence}")
    sys.exit(2)


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
                say(f"fedsim: error: {taken}")
                sys.exit(2)


def refuse_unwritable_output(args: list[str]) -> None:
    """Refuse, in one sentence and before Hydra writes anything, an output folder no run could write into."""
    multirun = {"-m", "--multirun"}
    if (NO_SINGLE_RUN - multirun) & set(args):
        return  # Hydra only prints
    setting = "hydra.sweep.dir" if multirun & set(args) else "hydra.run.dir"
    given = [value for key, equals, value in (arg.partition("=") for arg in args) if equals and key == setting]
    folder = literal_folder(given[-1] if given else configured_folder(setting))
    reason = folder and why_unwritable(folder)
    if reason and given:
        fail(f"{setting}={given[-1]} cannot be written: {reason}; choose a folder you can write to.")
    if reason:
        fail(f"the output folder {Path(folder).absolute()} (the default {setting}) cannot be written: {reason}; "
             f"run fedsim from a folder you can write to, or set {setting}.")


def main() -> None:
    """Entry point of the ``fedsim`` console script."""
    os.environ.setdefault("TQDM_DISABLE", "1")  # libraries' progress bars; fedsim prints its own
    warnings.showwarning = show_warning
    register_schemas()
    register_resolver()
    sys.argv[1:], resume_path = take_flags(sys.argv[1:])
    if resume_path is not None:
        resume(resume_path, sys.argv[1:])
    refuse_unwritable_output(sys.argv[1:])
    claim_explicit_run_dir(sys.argv[1:])
    run_hydra()
    if SWEEP_DIR:
        sys.exit(report_sweep())


def run_hydra() -> None:
    """Compose the config from the command line and run it (or its sweep) through Hydra."""
    try:
        # SIGTERM too ends the command through the except below, and so ends a launcher's worker processes
        # (hydra/launcher=joblib) rather than leaving them running after it
        with handle_signals():
            _run_from_hydra()  # pylint: disable=no-value-for-parameter
    except KeyboardInterrupt as stop:  # outside a run: Hydra composing, between a sweep's jobs, workers running them
        say("fedsim: interrupted")
        sys.exit(stop.exit_code if isinstance(stop, RunInterrupted) else 130)


if __name__ == "__main__":
    # python -m fedsim.cli: run the module Hydra imports (fedsim.cli.SweepSummary), not this copy of it
    from fedsim.cli import main as main_of_the_module

    main_of_the_module()
