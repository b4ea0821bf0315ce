"""The versions a run ran under, recorded in its folder; a resume under others is refused unless forced."""

import functools
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import yaml

from fedsim.config.checks import ConfigError

VERSIONS_FILE = "versions.yaml"
PACKAGES = ("fedsim", "flwr", "torch")
DEVICE_KEY = "device"  # recorded for the reader; a resume may run on another device (device=...)


def current_versions() -> dict[str, str]:
    """The versions of fedsim (and its git commit, in a git checkout), Flower, PyTorch and Python."""
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
        if package == "fedsim" and (commit := git_commit()):
            versions["fedsim_commit"] = commit
    versions["python"] = platform.python_version()
    return versions


@functools.cache  # one git call per process, not one per run of a sweep
def git_commit() -> str | None:
    """The commit of the git checkout fedsim is imported from, if it is imported from one."""
    checkout = Path(__file__).resolve().parents[1]
    if not (checkout / ".git").exists():
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def save_versions(run_dir: Path, device: str) -> None:
    """Record the versions this process runs under in ``run_dir``, and the device it computes on."""
    record = current_versions() | {DEVICE_KEY: device}
    (Path(run_dir) / VERSIONS_FILE).write_text(yaml.safe_dump(record, sort_keys=False))


def check_versions(run_dir: Path, force: bool) -> None:
    """Refuse (ConfigError) to resume the run in ``run_dir`` under other versions than it ran under, unless ``force``.

    A run that recorded none never started training: it starts anew under any versions.
    A forced resume under other versions adds them to the folder's record as ``resumed_under``.
    """
    path = Path(run_dir) / VERSIONS_FILE
    if not path.is_file():
        return
    recorded = yaml.safe_load(path.read_text()) or {}
    recorded_versions = {key: value for key, value in recorded.items() if key not in ("resumed_under", DEVICE_KEY)}
    now = current_versions()
    changed = [
        f"{name} {recorded_versions.get(name, 'unrecorded')} (now {now.get(name, 'none')})"
        for name in dict.fromkeys([*recorded_versions, *now])
        if recorded_versions.get(name) != now.get(name)
    ]
    if not changed:
        return
    if not force:
        raise ConfigError(
            f"{run_dir} ran under {', '.join(changed)}; resume it under the versions it ran under, "
            "or add force=true to resume it anyway (its numbers may then differ from an uninterrupted run)."
        )
    path.write_text(yaml.safe_dump({**recorded, "resumed_under": now}, sort_keys=False))
