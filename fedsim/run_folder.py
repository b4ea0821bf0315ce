"""One writer per run folder: unique default folders, a lock held for the run's lifetime,
and a refusal to run into a folder that holds another run's results.

The default folders (``outputs/DATE/TIME-UNIQUE``, ``multirun/DATE/TIME-UNIQUE``) end in
``${fedsim_unique:}``, this process's pid and a random suffix, resolved once per process
(Hydra copies the resolved value to every job of a sweep, so its jobs share one sweep
folder). ``claim`` takes an exclusive ``fcntl.flock`` on ``RUN_DIR/.lock`` that lasts
until the process ends; a folder whose lock another process holds, or that holds
``metrics.csv`` or a completed, running or interrupted ``status.yaml``, is refused with
``RunFolderTaken`` unless ``overwrite`` is true, before anything in it is written.
``why_unwritable`` says why a run could not write its folder at all (``/proc/x``, a path
through a file, a read-only mount), so that the command can say so before Hydra writes.
"""

import fcntl
import os
import secrets
import tempfile
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from fedsim.results import METRICS_FILE, STATUS_FILE

LOCK_FILE = ".lock"
RESOLVER = "fedsim_unique"
TAKEN_STATUSES = ("completed", "running", "interrupted")
_held: dict[Path, int] = {}  # folder -> descriptor of its locked .lock, open until the process ends


class RunFolderTaken(Exception):
    """The run folder belongs to another run; the message is one sentence for the user."""


def unique_suffix() -> str:
    """This process's id and a random part: distinct for runs started in the same second."""
    return f"{os.getpid()}-{secrets.token_hex(2)}"


def register_resolver() -> None:
    """Make ``${fedsim_unique:}`` available to the config (cached: one value per process)."""
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, unique_suffix, use_cache=True)


def claim(run_dir: str | Path, overwrite: bool = False, setting: str = "hydra.run.dir") -> None:
    """Lock ``run_dir`` for this process's lifetime, or raise ``RunFolderTaken`` without writing into it.

    ``setting`` is the one the message tells the user to change. Claiming a folder this
    process already holds does nothing.
    """
    path = Path(run_dir).absolute()
    if path in _held:
        return
    lock_path = path / LOCK_FILE
    if lock_path.is_file():  # look before creating anything: is another process running here?
        descriptor = os.open(lock_path, os.O_RDWR)
        try:
            _lock(descriptor, run_dir, setting)
        finally:
            os.close(descriptor)
    if not overwrite:
        held = results_in(path)
        if held:
            raise RunFolderTaken(
                f"{run_dir} already holds {held}; choose another {setting} "
                "(or the default, a new folder), or add overwrite=true to replace it."
            )
    path.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _lock(descriptor, run_dir, setting)
    except RunFolderTaken:
        os.close(descriptor)
        raise
    _held[path] = descriptor


def _lock(descriptor: int, run_dir: str | Path, setting: str) -> None:
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise RunFolderTaken(f"{run_dir} is in use by another fedsim run; choose another {setting}.") from None


def release(run_dir: str | Path) -> None:
    """Give up the lock on ``run_dir`` before the process ends (tests, notebooks)."""
    descriptor = _held.pop(Path(run_dir).absolute(), None)
    if descriptor is not None:
        os.close(descriptor)


def why_unwritable(folder: str | Path) -> str | None:
    """Why a run could not write into ``folder`` (made if missing), in words, or None when it could.

    Tried rather than foretold: a temporary folder is made, then removed, where the run
    would make its first one (in ``folder``, or in the nearest part of its path that
    exists). Permission bits do not stop root, but ``/proc``, a read-only mount or a
    path through a file stop anyone.
    """
    existing = Path(folder).absolute()
    while not os.path.exists(existing):
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    try:
        tempfile.TemporaryDirectory(prefix=".fedsim-write-check-", dir=existing).cleanup()
    except OSError as error:
        return f"no folder can be made in {existing} ({error.strerror})"
    return None


def configured_folder(setting: str) -> str:
    """The default of ``hydra.run.dir`` or ``hydra.sweep.dir``, as conf/config.yaml sets it (unresolved)."""
    from importlib.resources import files

    node = yaml.safe_load(files("fedsim.conf").joinpath("config.yaml").read_text())
    for key in setting.split("."):
        node = node[key]
    return node


def literal_folder(value: str) -> str | None:
    """The folder part of an output folder setting that is known before Hydra resolves it, or None if none is.

    ``outputs/${now:%Y-%m-%d}/...`` is under ``outputs``, ``/data/run-${seed}`` under
    ``/data``; ``${oc.env:HOME}/runs`` could be anywhere.
    """
    literal, interpolated, _ = value.partition("${")
    if not interpolated:
        return value
    if not literal:
        return None
    return literal if literal.endswith("/") else str(Path(literal).parent)


def results_in(path: Path) -> str | None:
    """What of another run's results ``path`` holds, in words, or None."""
    status_path = path / STATUS_FILE
    if status_path.is_file():
        try:
            status = (yaml.safe_load(status_path.read_text()) or {}).get("status")
        except yaml.YAMLError:
            status = None
        if status in TAKEN_STATUSES:
            return f"the results of another run (status: {status})"
    if (path / METRICS_FILE).is_file():
        return f"the results of another run ({METRICS_FILE})"
    return None
